"""flags_parser: usage errors exit 2 with one line, help exits 0."""

import pytest
from absl import app, flags

from tf_reorder.flags_parsing import flags_parser


@pytest.fixture(autouse=True)
def unparsed_flags():
    yield
    flags.FLAGS.unparse_flags()


def test_unknown_flag_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as done:
        flags_parser("bench.py")(["bench.py", "--no_such_flag_anywhere=1"])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench.py: error: ")
    assert "no_such_flag_anywhere" in err[0] and err[0].endswith("(see bench.py --help)")


def test_help_exits_0(capsys):
    app.define_help_flags()  # as app.run does
    with pytest.raises(SystemExit) as done:
        flags_parser("bench.py")(["bench.py", "--helpshort"])
    assert done.value.code == 0
    assert capsys.readouterr().out


def test_arguments_pass_through():
    assert flags_parser("bench.py")(["bench.py", "positional"]) == ["bench.py", "positional"]
