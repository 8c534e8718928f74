"""Runs pytest on the test modules named on the command line and exits with its status.

The main of every py_test in tests/BUILD (see tools/pytest.bzl). Bazel runs it in the
runfiles tree with the module's path as the argument. Under `bazel test` it also writes
pytest's JUnit XML where Bazel reads it (XML_OUTPUT_FILE), turns `--test_filter=EXPR` into
`pytest -k EXPR`, and refuses to run if tf_reorder would be imported from anywhere but the
runfiles (a missing dependency in BUILD would otherwise go unseen behind the pip-installed
package).

pytest's temporary directories go in a fresh directory under the system's temporary
directory, removed afterwards, not in Bazel's TEST_TMPDIR: that path is about 150
characters long, and the CLI tests compare whole error messages naming such paths against
the CLI's 300-character limit.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence

import pytest


def pytest_args(modules: Sequence[str], env: Mapping[str, str], basetemp: str) -> list[str]:
    """The pytest command line for `modules` in the environment Bazel gives a test."""
    args = ["-q", f"--basetemp={basetemp}", *modules]
    if env.get("XML_OUTPUT_FILE"):
        args.append(f"--junitxml={env['XML_OUTPUT_FILE']}")
    if env.get("TESTBRIDGE_TEST_ONLY"):
        args += ["-k", env["TESTBRIDGE_TEST_ONLY"]]
    return args


def package_origin() -> str | None:
    """Where `import tf_reorder` would load the package from, without importing it."""
    spec = importlib.util.find_spec("tf_reorder")
    return None if spec is None else spec.origin


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2:
        print(f"usage: {argv[0]} TEST_MODULE...", file=sys.stderr)
        return 2
    origin = package_origin()
    print(f"pytest_main: tf_reorder from {origin}", file=sys.stderr)
    runfiles = os.environ.get("TEST_SRCDIR")
    if runfiles and not (origin or "").startswith(os.path.join(runfiles, "")):
        print(f"pytest_main: error: tf_reorder is not in the runfiles ({runfiles}); "
              "does the test depend on //:tf_reorder?", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="pytest-", ignore_cleanup_errors=True) as tmp:
        return int(pytest.main(pytest_args(argv[1:], os.environ, os.path.join(tmp, "t"))))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
