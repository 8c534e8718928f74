"""`tf_reorder.interrupts`: a Ctrl-C that library code swallows is still reported."""

import gc
import os
import signal
import sys
import threading

import pytest

from tf_reorder import interrupts


def _swallowed_ctrl_c():
    """A real SIGINT to this process, inside a bare except (as Keras' loading has)."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs between bytecodes, on the way
            pass
    except:  # noqa: E722  the point: library code that catches everything
        pass


def test_a_swallowed_interrupt_is_raised_again_by_check():
    with interrupts.watch():
        interrupts.check()  # nothing yet
        _swallowed_ctrl_c()
        assert interrupts.interrupted()
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    assert not interrupts.interrupted()  # the next watch starts afresh
    interrupts.check()  # and outside a watch, check never raises


def test_an_interrupt_still_raises_where_it_arrives():
    with interrupts.watch(), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass


def test_the_previous_handler_and_hook_come_back():
    handler, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    with interrupts.watch():
        assert signal.getsignal(signal.SIGINT) is not handler
    assert signal.getsignal(signal.SIGINT) is handler
    assert sys.unraisablehook is hook


@pytest.fixture
def unraisable(monkeypatch):
    """What reaches the unraisable hook that was installed before a watch."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(type(u.exc_value)))
    return seen


class _RaisesInDel:
    """Raises `error` in __del__, as a temporary file's closer may on Ctrl-C."""

    def __init__(self, error):
        self.error = error

    def __del__(self):
        raise self.error


def test_an_interrupt_python_can_only_ignore_is_not_printed(unraisable):
    with interrupts.watch():
        _RaisesInDel(KeyboardInterrupt())
        gc.collect()
        assert unraisable == []
        _RaisesInDel(ValueError("a real problem"))  # anything else is still reported
        gc.collect()
        assert unraisable == [ValueError]
    _RaisesInDel(KeyboardInterrupt())  # outside: the hook before the watch sees it
    gc.collect()
    assert unraisable == [ValueError, KeyboardInterrupt]


def test_outside_the_main_thread_nothing_is_installed():
    seen = []

    def worker():
        with interrupts.watch():  # signal.signal would raise ValueError here
            seen.append(signal.getsignal(signal.SIGINT))

    handler = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [handler]
