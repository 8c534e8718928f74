"""Runs the `tf-reorder` command in the test process, as `app.run(main)` would.

Example:

    result = run_cli(capsys, "inspect", "model.keras", "--json")
    assert result.code == 0 and result.err == ""
"""

from __future__ import annotations

import dataclasses

import pytest
from absl import flags

from tf_reorder import cli

PROG = "tf-reorder"


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture, *args: object) -> Result:
    """Runs `tf-reorder ARGS` in this process: the exit code and what it printed."""
    flags.FLAGS.unparse_flags()
    capsys.readouterr()
    try:
        code = cli.main(cli.parse_flags([PROG, *map(str, args)]))
    except SystemExit as done:
        code = done.code
    finally:
        flags.FLAGS.unparse_flags()
    out, err = capsys.readouterr()
    return Result(code, out, err)
