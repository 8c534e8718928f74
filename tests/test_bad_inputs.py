"""The bad-input matrix (`bad_inputs.MATRIX`), run cell by cell, and killed conversions.

Every cell checks the whole promise: a failure is one line naming the problem
(`ReorderError`, or `OSError` when the disk fails; the CLI: exit 1, or 2 for a
usage error, and exactly one stderr line ``tf-reorder: error: ...``); the inputs
(files, directories, models, graphs) are byte-for-byte unchanged; a failed call
leaves nothing where outputs go, not even a temporary file. A class that is not
an error (a Lambda layer, a TF1 SavedModel, ...) works and is checked.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import tf_reorder
from cli_runner import PROG, run_cli
from bad_inputs import (CLI_ENTRIES, ENTRIES, MATRIX, Fails, World, build_world,
                        markdown_table, rows, tree_digest)

DOC = pathlib.Path(__file__).resolve().parents[1] / "README.md"
STAGING = (".tf-reorder-", ".partial")  # how a leftover temporary output is named


def output_digest(path: pathlib.Path) -> dict[str, tuple[str, int]]:
    """Files and directories under `path` with their contents (not directory mtimes)."""
    return {name: (content, mode) for name, (content, mode, _) in tree_digest(path).items()}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("inputs"))


# -- the matrix ------------------------------------------------------------------


@pytest.mark.parametrize("cell", MATRIX, ids=[cell.id for cell in MATRIX])
def test_cell(cell, world, tmp_path, capsys, monkeypatch):
    with contextlib.ExitStack() as stack:
        paths = {"in": str(world.root), "out": str(tmp_path)}
        if cell.setup is not None:
            paths.update(cell.setup(world, tmp_path, stack, monkeypatch))
        inputs, outputs = world.digest(), output_digest(tmp_path)
        expect = cell.expect
        if isinstance(cell.call, tuple):
            result = run_cli(capsys, *(arg.format(**paths) for arg in cell.call))
            if isinstance(expect, Fails):
                assert result.code == expect.code, result
                assert result.out == "" or not expect.quiet, result.out
                lines = result.err.splitlines()
                assert len(lines) == 1, result.err
                (line,) = lines
                assert line.startswith(f"{PROG}: error: "), line
                assert expect.message.format(**paths) in line, line
                assert "Traceback" not in line and len(line) < 400, line
            else:
                assert (result.code, result.err) == (0, ""), result
        elif isinstance(expect, Fails):
            with pytest.raises(expect.error) as raised:
                cell.call(world, paths)
            message = str(raised.value)
            assert expect.message.format(**paths) in message, message
            assert "\n" not in message and len(message) < 400, message
        else:
            result = cell.call(world, paths)
        if isinstance(expect, Fails):  # nothing written, not even a temporary file
            assert output_digest(tmp_path) == outputs
        elif expect.check is not None:
            expect.check(result, world, paths)
        assert world.digest() == inputs, "an input was changed"


def test_the_matrix_is_big_enough():
    assert len(rows()) >= 20
    ids = [(cell.row, cell.entry) for cell in MATRIX]
    assert len(ids) == len(set(ids)), "a (row, entry) cell is listed twice"
    for entry in ENTRIES:
        assert sum(cell.entry == entry for cell in MATRIX) >= 3, entry
    for entry in CLI_ENTRIES:
        assert any(isinstance(c.call, tuple) for c in MATRIX if c.entry == entry), entry
    for cell in MATRIX:  # "works" is a claim: each says what it checks
        assert isinstance(cell.expect, Fails) or cell.expect.check is not None, cell.id


def test_the_docs_table_is_the_matrix():
    """The README's "Bad input" table says what this module checks."""
    assert markdown_table() in DOC.read_text(encoding="utf-8"), \
        f"regenerate the table: python tests/bad_inputs.py, and paste it into {DOC}"


# -- killed while writing ------------------------------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    """A .keras file and a SavedModel of about 60 MB: saving them takes a while."""
    root = tmp_path_factory.mktemp("big")
    model = keras.Sequential([keras.Input((32, 32, 3)), layers.Conv2D(8, 3, activation="relu"),
                              layers.MaxPooling2D(), layers.Flatten(), layers.Dense(8000)])
    model.save(root / "big.keras")
    model.export(str(root / "big_sm"), verbose=False)
    return {"keras": root / "big.keras", "sm": root / "big_sm"}


def _staging_entries(directory: pathlib.Path) -> list[str]:
    return [n for n in os.listdir(directory) if n.startswith(STAGING[0])]


def _kill_while_writing(args: list[str], directory: pathlib.Path) -> int:
    """Runs `python -m tf_reorder.cli ARGS` and SIGKILLs it once it has begun writing
    the output (a temporary directory beside it is no longer empty); its exit status."""
    process = subprocess.Popen([sys.executable, "-m", "tf_reorder.cli", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.monotonic() + 120
    try:
        while process.poll() is None and time.monotonic() < deadline:
            started = [n for n in _staging_entries(directory)
                       if os.path.isdir(directory / n) and os.listdir(directory / n)]
            if started:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.0005)
    finally:
        if process.poll() is None and time.monotonic() >= deadline:
            process.kill()
        process.wait()
    return process.returncode


def _leftovers_are_staging(directory: pathlib.Path, expected: set[str]) -> list[str]:
    """What the kill left beside the output: only hidden `.tf-reorder-*.partial` dirs."""
    names = set(os.listdir(directory))
    left = sorted(names - expected)
    for name in left:
        assert name.startswith(STAGING[0]) and name.endswith(STAGING[1]), name
        assert (directory / name).is_dir(), name
    return left


def test_sigkill_while_saving_keras_leaves_no_output(big, tmp_path, capsys):
    before = tree_digest(big["keras"].parent)
    out = tmp_path / "out.keras"
    code = _kill_while_writing(["convert", str(big["keras"]), str(out)], tmp_path)
    assert code == -signal.SIGKILL, f"not killed mid-write (exit {code}): model too small?"
    assert not out.exists()
    left = _leftovers_are_staging(tmp_path, expected=set())
    assert len(left) == 1
    assert tree_digest(big["keras"].parent) == before

    # The next run writes the output; the dead run's directory is left alone (a
    # concurrent run's looks the same), to delete by hand.
    result = run_cli(capsys, "convert", str(big["keras"]), str(out))
    assert result.code == 0, result
    assert keras.saving.load_model(out, compile=False).count_params() > 10_000_000
    assert _leftovers_are_staging(tmp_path, expected={"out.keras"}) == left


def test_sigkill_while_replacing_a_saved_model_keeps_the_old_one(big, tmp_path, capsys):
    before = tree_digest(big["sm"].parent)
    out = tmp_path / "out_sm"
    tf_reorder.convert_saved_model(big["sm"], out)
    (out / "assets").mkdir(exist_ok=True)
    (out / "assets" / "marker.txt").write_text("the old output")
    old = tree_digest(out)
    code = _kill_while_writing(["convert", str(big["sm"]), str(out), "--overwrite"], tmp_path)
    assert code == -signal.SIGKILL, f"not killed mid-write (exit {code}): model too small?"
    _leftovers_are_staging(tmp_path, expected={"out_sm"})
    if (out / "assets" / "marker.txt").exists():
        assert tree_digest(out) == old  # the kill came before the swap: the old one, whole
    else:  # after the swap (atomic): the new one, whole
        x = np.zeros((1, 32, 32, 3), "float32")
        a = tf.saved_model.load(str(big["sm"])).serve(x)
        b = tf.saved_model.load(str(out)).serve(x)
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    assert tree_digest(big["sm"].parent) == before
