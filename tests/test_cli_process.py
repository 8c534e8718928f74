"""The installed `tf-reorder` command in a child process: stderr, exit codes, Ctrl-C, pipes.

What only a real process shows: TensorFlow's native libraries writing to file
descriptor 2 as they load, SIGINT arriving while Keras reads or writes a model (Keras
swallows it in places), and a reader that closes stdout early.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

PROG = "tf-reorder"
BIG = 64 * 2 ** 20  # bytes read or written before the interrupt: well inside the weights
ERROR = f"{PROG}: error: "

# pip installs the console script; under `bazel test` (TEST_SRCDIR set) it would run the
# pip-installed package, not this tree's runfiles, so only `python -m` is tested there.
UNDER_BAZEL = "TEST_SRCDIR" in os.environ
console_script = pytest.mark.skipif(
    UNDER_BAZEL,
    reason="under Bazel the tf-reorder console script is pip's install, not the runfiles")
PYTHON_M = [sys.executable, "-m", "tf_reorder.cli"]
COMMANDS = [pytest.param([PROG], marks=console_script, id="console_script"),
            pytest.param(PYTHON_M, id="python_m")]
COMMAND = PYTHON_M if UNDER_BAZEL else [PROG]  # where one way of starting it is enough


def _environment(**extra):
    """A user's environment: no TF_CPP_MIN_LOG_LEVEL (the command must quiet TF itself),
    and Python's stdout buffered, as in a shell (not PYTHONUNBUFFERED)."""
    hidden = ("TF_CPP_MIN_LOG_LEVEL", "PYTHONUNBUFFERED")
    return {**{k: v for k, v in os.environ.items() if k not in hidden}, **extra}


def _run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env=_environment(), **kwargs)


class Big(tf.Module):
    """A SavedModel whose variables take a while to copy."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(tf.zeros([3, 3, 3, 8]))
        self.ballast = tf.Variable(tf.zeros([BIG // 4 * 3]))  # 192 MB

    @tf.function(input_signature=[tf.TensorSpec([1, 16, 16, 3])])
    def __call__(self, x):
        y = tf.nn.max_pool2d(tf.sigmoid(tf.nn.conv2d(x, self.kernel, 1, "SAME")), 2, 2, "VALID")
        return y + tf.reduce_sum(self.ballast[:1])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("process")
    paths = {}
    small = keras.Sequential([keras.Input((16, 16, 3)), layers.Conv2D(4, 3, activation="relu"),
                              layers.MaxPooling2D()], name="small")
    paths["small"] = str(root / "small.keras")
    small.save(paths["small"])

    class Doubler(layers.Layer):  # a local class: Keras cannot find it when loading
        def call(self, x):
            return 2 * x

    paths["custom"] = str(root / "custom.keras")
    keras.Sequential([keras.Input((8, 8, 3)), Doubler(), layers.MaxPooling2D()]).save(
        paths["custom"])
    # About 300 MB of weights (zeros: quick to build, as slow as any to read and write).
    big = keras.Sequential([
        keras.Input((32, 32, 3)), layers.Conv2D(8, 3, activation="sigmoid"),
        layers.MaxPooling2D(), layers.Flatten(),
        layers.Dense(BIG // 4 * 5 // (15 * 15 * 8), kernel_initializer="zeros")], name="big")
    os.mkdir(root / "big")
    paths["big"] = str(root / "big" / "big.keras")
    big.save(paths["big"])
    paths["big_sm"] = str(root / "big_sm")
    tf.saved_model.save(Big(), paths["big_sm"])
    return paths


def _tree(path):
    """Every file under `path`: size and mtime, to show it was not touched."""
    out = {}
    for directory, _, names in os.walk(path):
        for name in names:
            stat = os.stat(os.path.join(directory, name))
            out[os.path.relpath(os.path.join(directory, name), path)] = (stat.st_size,
                                                                         stat.st_mtime_ns)
    return out


def _bytes_under(path):
    return sum(size for size, _ in _tree(path).values()) if os.path.isdir(path) else 0


def _read_bytes(pid):
    """Bytes the process has read so far (read(2) and friends)."""
    with open(f"/proc/{pid}/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


def _interrupt_when(command, ready, *, timeout=120.0):
    """Runs `command`; sends SIGINT once `ready(process, stderr_so_far)`; returns the result."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=_environment())
    stderr = []
    reader = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while not ready(process, "".join(stderr)):
            if process.poll() is not None:
                pytest.fail(f"{command} ended (exit {process.returncode}) before the moment to "
                            f"interrupt it; stderr:\n{''.join(stderr)[-3000:]}")
            assert time.monotonic() < deadline, "".join(stderr)[-3000:]
            time.sleep(0.001)
        process.send_signal(signal.SIGINT)
        stdout = process.stdout.read()
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(timeout=10)
    return subprocess.CompletedProcess(command, process.returncode, stdout, "".join(stderr))


def _assert_interrupted(done, *, verbose=False):
    assert done.returncode == 130, (done.returncode, done.stderr[-3000:])
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    if verbose:  # progress logs come before the one error line
        assert lines[-1] == f"{ERROR}interrupted", done.stderr[-3000:]
    else:
        assert lines == [f"{ERROR}interrupted"], done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


def test_ctrl_c_while_keras_reads_the_weights(files, tmp_path):
    # Keras reads the weights inside a bare `except:` that falls back to a slower read:
    # the interrupt is swallowed there, and the command must still stop with 130. (It
    # stops when the slower read ends; a second Ctrl-C stops it at once.) --verbose
    # logs "loading" right before Keras' load, so the interrupt lands in the weights.
    before = _tree(os.path.dirname(files["big"]))
    started = {}

    def reading_weights(process, stderr):
        if "loading " not in stderr:
            return False
        started.setdefault("bytes", _read_bytes(process.pid))
        return _read_bytes(process.pid) - started["bytes"] > BIG

    done = _interrupt_when([*COMMAND, "convert", files["big"], str(tmp_path / "out.keras"),
                            "--verbose"], reading_weights)
    _assert_interrupted(done, verbose=True)
    assert os.listdir(tmp_path) == []
    assert _tree(os.path.dirname(files["big"])) == before  # Keras' scratch files are gone too


@pytest.mark.parametrize("existing", [False, True], ids=["new", "overwrite"])
def test_ctrl_c_while_keras_writes_the_model(files, tmp_path, existing):
    # Python ignores a KeyboardInterrupt raised in a __del__ (Keras' temporary file) and
    # prints a traceback: neither may happen. Nothing is published; an old output stays.
    out = tmp_path / "out.keras"
    if existing:
        out.write_bytes(b"the old output")

    def writing(process, stderr):
        return any(_bytes_under(tmp_path / name) > BIG for name in os.listdir(tmp_path)
                   if name.startswith(".tf-reorder-"))

    done = _interrupt_when([*COMMAND, "convert", files["big"], str(out),
                            *(["--overwrite"] if existing else [])], writing)
    _assert_interrupted(done)
    assert os.listdir(tmp_path) == (["out.keras"] if existing else [])
    if existing:
        assert out.read_bytes() == b"the old output"


def test_ctrl_c_while_a_saved_model_is_written(files, tmp_path):
    before = _tree(files["big_sm"])
    out = tmp_path / "out_sm"

    def copying(process, stderr):
        return any(_bytes_under(tmp_path / name) > BIG for name in os.listdir(tmp_path)
                   if name.startswith(".tf-reorder-"))

    done = _interrupt_when([*COMMAND, "convert", files["big_sm"], str(out)], copying)
    _assert_interrupted(done)
    assert os.listdir(tmp_path) == []
    assert _tree(files["big_sm"]) == before


def test_ctrl_c_while_tensorflow_loads(files, tmp_path):
    # TensorFlow takes seconds to import; its native libraries print while fd 2 is hidden.
    start = time.monotonic()
    done = _interrupt_when([*COMMAND, "inspect", files["small"]],
                           lambda process, stderr: time.monotonic() - start > 1.0)
    _assert_interrupted(done)


@pytest.mark.parametrize("command", COMMANDS)
def test_success_prints_nothing_on_stderr(files, command):
    done = _run(command + ["inspect", files["small"], "--json"])
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert json.loads(done.stdout)["moved"] == 1


def test_a_saved_model_is_quiet_too(files, tmp_path):
    done = _run([*COMMAND, "convert", files["big_sm"], str(tmp_path / "out_sm")])
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "1 of 1 candidate sites moved" in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_an_error_is_exactly_one_line(files, command):
    done = _run(command + ["inspect", files["custom"]])
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"{ERROR}{files['custom']}: cannot load the model"), line
    assert "class 'Doubler'" in line and "register_keras_serializable" in line, line


def test_verbose_shows_the_logs(files):
    done = _run([*COMMAND, "inspect", files["small"], "--verbose"])
    assert done.returncode == 0, done.stderr
    assert f"loading {files['small']}" in done.stderr
    assert "oneDNN" in done.stderr or "absl::InitializeLog" in done.stderr, done.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_helpfull(command):
    done = _run(command + ["--helpfull"])
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    for text in ("inspect MODEL.keras", "convert IN.keras OUT.keras", "demo",
                 "--overwrite", "--json", "--model", "--batch", "--out", "--verbose",
                 "--target", "tflite", "Exit status"):
        assert text in done.stdout, text


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("args", [["--help"], ["--helpfull"], ["inspect", "{small}"],
                                  ["inspect", "{small}", "--json"]])
def test_a_closed_stdout_ends_quietly(files, args, buffered):
    # `tf-reorder --help | head -3`: the reader is gone before the command writes (or
    # before Python flushes what it wrote, at exit).
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([*COMMAND, *(a.format(**files) for a in args)], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=300,
                              env=_environment(**({} if buffered else {"PYTHONUNBUFFERED": "1"})))
    finally:
        os.close(write)
    # absl prints --helpfull itself and ignores a closed pipe (then exits as for help, 0).
    assert done.returncode in ((0, 141) if args == ["--helpfull"] else (141,)), done.stderr
    assert done.stderr == ""


def test_the_outputs_of_a_conversion_still_load(files, tmp_path):
    # The quiet import hides nothing the conversion needs: the result is a model.
    out = tmp_path / "small_out.keras"
    done = _run([*COMMAND, "convert", files["small"], str(out)])
    assert done.returncode == 0 and done.stderr == "", done.stderr
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
    a = keras.saving.load_model(files["small"])(x)
    b = keras.saving.load_model(str(out))(x)
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
