"""The exception type tf_reorder raises for bad input, and argument checks.

Example:

    require_bool("overwrite", overwrite)     # ReorderError unless True or False
    path = require_path("src", src)          # the path as a str; ReorderError otherwise
"""

from __future__ import annotations

import os
from typing import Any


class ReorderError(ValueError):
    """Input tf_reorder cannot rewrite; the message names the problem."""


class OutputExistsError(ReorderError):
    """The output ``path`` exists and the caller did not ask to replace it."""

    def __init__(self, path: str, hint: str = "pass overwrite=True to replace it") -> None:
        super().__init__(f"{path}: already exists ({hint})")
        self.path = path


def require_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool; a `ReorderError` naming ``name`` otherwise.

    A truthy string such as ``"no"`` would otherwise silently mean True.

    Example:

        require_bool("return_report", True)   # True
        require_bool("overwrite", "no")       # ReorderError
    """
    if not isinstance(value, bool):
        raise ReorderError(f"{name} must be True or False, not {type(value).__name__} "
                           f"{value!r:.40}")
    return value


def require_path(name: str, value: Any) -> str:
    """``value`` as a non-empty ``str`` path; a `ReorderError` naming ``name`` otherwise.

    Example:

        require_path("dst", pathlib.Path("out"))   # "out"
        require_path("src", None)                  # ReorderError
    """
    if not isinstance(value, (str, os.PathLike)):
        raise ReorderError(f"{name} must be a path (str or os.PathLike), not "
                           f"{type(value).__name__}")
    path = os.fspath(value)
    if not isinstance(path, str):
        raise ReorderError(f"{name} must be a str path, not {type(path).__name__}")
    if not path:
        raise ReorderError(f"{name} is an empty path")
    return path
