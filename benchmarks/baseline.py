"""Another checkout's tf_reorder, importable beside this one: for timing both in one process.

`load(path)` copies ``path/tf_reorder`` into a temporary directory as the package
``tf_reorder_baseline`` (its own imports of ``tf_reorder`` renamed to match) and imports
it, so a benchmark can run this tree's pass and another commit's interleaved, in one
process, on the same inputs:

    git worktree add /tmp/tf_reorder_base HEAD~5     # the commit to compare with
    python benchmarks/reorder_speed.py --baseline=/tmp/tf_reorder_base
"""

from __future__ import annotations

import atexit
import importlib
import os
import re
import shutil
import sys
import tempfile
from types import ModuleType

NAME = "tf_reorder_baseline"
_IMPORT = re.compile(r"^(\s*(?:from|import)\s+)tf_reorder\b", re.MULTILINE)


def from_flag(path: str | None) -> ModuleType | None:
    """`load(path)` for a benchmark's ``--baseline`` flag (None: no baseline); a bad path
    is a usage error."""
    if not path:
        return None
    from absl import app  # pylint: disable=g-import-not-at-top

    try:
        return load(path)
    except ValueError as error:
        raise app.UsageError(str(error)) from error


def load(path: str) -> ModuleType:
    """The ``tf_reorder`` package of the checkout at `path`, as ``tf_reorder_baseline``."""
    source = os.path.join(path, "tf_reorder")
    if not os.path.isfile(os.path.join(source, "__init__.py")):
        raise ValueError(f"--baseline={path}: no tf_reorder package there")
    if NAME in sys.modules:
        return sys.modules[NAME]
    root = tempfile.mkdtemp(prefix="tf-reorder-baseline-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    target = os.path.join(root, NAME)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    for directory, _, names in os.walk(target):
        for name in names:
            if name.endswith(".py"):
                file = os.path.join(directory, name)
                with open(file, encoding="utf-8") as f:
                    text = f.read()
                with open(file, "w", encoding="utf-8") as f:
                    f.write(_IMPORT.sub(rf"\g<1>{NAME}", text))
    sys.path.insert(0, root)
    return importlib.import_module(NAME)
