"""`tf_reorder.quiet`: TensorFlow's and Keras' own output kept off stderr, unless verbose.

The installed command's stderr, with TensorFlow really loading in a fresh process, is
tested in `tests/test_cli_process.py`.
"""

import logging
import os
import subprocess
import sys
import warnings

import pytest

from tf_reorder import quiet


def test_native_writes_to_stderr_are_hidden_and_stderr_comes_back(capfd):
    os.write(2, b"before\n")
    with quiet.native_stderr_hidden():
        os.write(2, b"native library noise\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "before\nafter\n"


def test_stderr_comes_back_after_an_error(capfd):
    with pytest.raises(RuntimeError), quiet.native_stderr_hidden():
        raise RuntimeError("in the block")
    os.write(2, b"still here\n")
    assert capfd.readouterr().err == "still here\n"


@pytest.mark.parametrize("verbose", [False, True])
def test_tensorflow_loads_quietly_unless_verbose(verbose):
    # A fresh process: the only way to see what TensorFlow prints as it loads. Without
    # TF_CPP_MIN_LOG_LEVEL, as a user's shell has it.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-c", "from tf_reorder import quiet\n"
         f"quiet.load_tensorflow(verbose={verbose})\n"
         "import tensorflow as tf, keras\nprint(tf.__version__, keras.__version__)"],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[0].startswith("2.")
    if verbose:  # what is hidden otherwise: TensorFlow 2.21's start-up lines
        assert "absl::InitializeLog" in done.stderr or "oneDNN" in done.stderr, done.stderr
    else:
        assert done.stderr == ""


def test_library_output_is_hidden_unless_verbose():
    tf_logger = logging.getLogger("tensorflow")
    before = tf_logger.level
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet.library_output_hidden(verbose=False):
            warnings.warn("hidden", UserWarning)
            assert not tf_logger.isEnabledFor(logging.ERROR)
        assert tf_logger.level == before
        with quiet.library_output_hidden(verbose=True):
            warnings.warn("shown", UserWarning)
            assert tf_logger.level == before
    assert [str(w.message) for w in seen] == ["shown"]
