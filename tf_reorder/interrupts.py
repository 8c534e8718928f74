"""Ctrl-C that Keras and TensorFlow cannot swallow.

Both catch exceptions broadly in places: a bare ``except:`` in Keras' ``.keras``
loading falls back to a slower read when a KeyboardInterrupt arrives while it
extracts the weights, and Python ignores (and prints) a KeyboardInterrupt raised in a
``__del__``, such as a temporary file's while Keras saves. The interrupt is then lost
and the work goes on to the end. `watch()` installs a SIGINT handler that records the
interrupt as well as raising it, and `check()` raises it again where tf_reorder is
about to publish a result, so an interrupted command writes nothing.

Example:

    with interrupts.watch():
        model = keras.saving.load_model(path)  # a Ctrl-C here may be swallowed ...
        interrupts.check()                     # ... but it is not forgotten
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

_interrupted = False


def interrupted() -> bool:
    """Whether SIGINT arrived while `watch()` was active."""
    return _interrupted


def check() -> None:
    """Raises KeyboardInterrupt if SIGINT arrived while `watch()` was active.

    A no-op when nothing watches (a library caller keeps Python's own handling).
    """
    if _interrupted:
        raise KeyboardInterrupt


def _record(signum: int, frame: Any) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def watch() -> Iterator[None]:
    """Records every SIGINT (and still raises KeyboardInterrupt) inside the block.

    Inside it, a KeyboardInterrupt that Python could only ignore (raised in a
    ``__del__``) is not printed: `check()` reports it. Outside the main thread,
    where no signal handler can be installed, the block changes nothing.
    """
    global _interrupted
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_handler = signal.signal(signal.SIGINT, _record)
    previous_hook = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous_hook(unraisable)

    sys.unraisablehook = hook
    _interrupted = False
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        sys.unraisablehook = previous_hook
        _interrupted = False
