"""Keeping TensorFlow's and Keras' own output off a command's stderr.

TensorFlow's native libraries log a few lines as they load, through absl's C++
logging before anything configures it, so ``TF_CPP_MIN_LOG_LEVEL`` does not reach
them: they go straight to file descriptor 2. Only pointing that descriptor elsewhere
while TensorFlow loads hides them (later C++ logs follow ``TF_CPP_MIN_LOG_LEVEL``).
Python warnings and TensorFlow's Python logging are hidden separately, for as long as
a command runs.

Example:

    quiet.load_tensorflow(verbose=False)   # nothing on stderr
    with quiet.library_output_hidden(verbose=False):
        model = keras.saving.load_model(path)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_hidden() -> Iterator[None]:
    """Points file descriptor 2 at /dev/null inside the block (a real stderr goes too)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w", encoding="utf-8") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def load_tensorflow(*, verbose: bool) -> None:
    """Imports TensorFlow and Keras; unless ``verbose``, what they print meanwhile is hidden.

    A no-op once both are imported.
    """
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    with contextlib.nullcontext() if verbose else native_stderr_hidden():
        import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
        import keras  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import


@contextlib.contextmanager
def library_output_hidden(*, verbose: bool) -> Iterator[None]:
    """Unless ``verbose``, hides Python warnings and TensorFlow's Python logging in the block."""
    if verbose:
        yield
        return
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        tf_logger.setLevel(level)
