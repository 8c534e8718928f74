"""The `tf-reorder` command: inspect, convert, demo, and how it treats bad input.

All runs are in-process (`cli.parse_flags` + `cli.main`, as `app.run` would call them)
for speed; `tests/test_cli_process.py` runs the installed command in a child process.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
import zipfile

import keras
import numpy as np
import pytest
from keras import layers

import tf_reorder
from tf_reorder import policy, verify
from cli_runner import PROG, Result, run_cli
from policy_files import LABELS, RELU_ON_TFLITE, write_policy


# -- running the CLI -----------------------------------------------------------


def assert_error(result: Result, *fragments: str, code: int = 1) -> None:
    """Exit `code`, nothing on stdout, one `tf-reorder: error:` line naming the problem."""
    assert result.code == code, result
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith(f"{PROG}: error: "), lines[0]
    assert len(lines[0]) < 400, lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def fingerprint(path: os.PathLike) -> tuple[bytes, int]:
    """A file's bytes and mtime, to show it was not touched."""
    return open(path, "rb").read(), os.stat(path).st_mtime_ns


# -- models --------------------------------------------------------------------


def relu_sigmoid_model() -> keras.Model:
    return keras.Sequential([
        keras.Input((16, 16, 3)),
        layers.Conv2D(4, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(4, 3, activation="sigmoid"),
        layers.MaxPooling2D(),
    ], name="relu_sigmoid")


def relu_model() -> keras.Model:
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(4, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(6, 3)(x)
    x = layers.ReLU()(x)
    x = layers.GlobalMaxPooling2D()(x)
    return keras.Model(inputs, layers.Dense(3)(x), name="relu_only")


@keras.saving.register_keras_serializable(package="tf_reorder_test_cli")
class Subclassed(keras.Model):
    """A subclassed model: it saves and loads (registered), but cannot be walked."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = layers.Conv2D(2, 3, activation="relu")
        self.pool = layers.MaxPooling2D()

    def call(self, x):
        return self.pool(self.conv(x))


@keras.saving.register_keras_serializable(package="tf_reorder_test_cli")
class Deprecated(layers.Layer):
    """A custom layer that warns when it is loaded, as user code may."""

    def call(self, x):
        return x

    @classmethod
    def from_config(cls, config):
        warnings.warn("Deprecated will be removed", UserWarning)
        return cls(**config)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Paths of good and bad inputs, saved once for the module; never to be modified."""
    root = tmp_path_factory.mktemp("models")
    paths = {}

    def save(name: str, model: keras.Model) -> None:
        paths[name] = str(root / f"{name}.keras")
        model.save(paths[name])

    save("relu_sigmoid", relu_sigmoid_model())
    save("relu", relu_model())
    save("dropout", keras.Sequential([keras.Input((8, 8, 3)),
                                      layers.Conv2D(2, 3, activation="sigmoid"),
                                      layers.Dropout(0.5, name="drop"),
                                      layers.MaxPooling2D(), layers.Flatten()],
                                     name="with_dropout"))

    class Doubler(layers.Layer):  # a local class: Keras cannot find it when loading
        def call(self, x):
            return 2 * x

    save("custom", keras.Sequential([keras.Input((8, 8, 3)), Doubler(), layers.MaxPooling2D()]))
    subclassed = Subclassed()
    subclassed(np.zeros((1, 8, 8, 3), "float32"))
    save("subclassed", subclassed)
    save("warns", keras.Sequential([keras.Input((8, 8, 3)), Deprecated(),
                                    layers.Conv2D(2, 3, activation="relu"),
                                    layers.MaxPooling2D()]))

    good = open(paths["relu_sigmoid"], "rb").read()
    bad = {
        "random": np.random.default_rng(0).bytes(4096),
        "truncated": good[: len(good) // 2],
        "empty": b"",
    }
    for name, data in bad.items():
        paths[name] = str(root / f"{name}.keras")
        with open(paths[name], "wb") as f:
            f.write(data)
    paths["no_config"] = str(root / "no_config.keras")
    with zipfile.ZipFile(paths["no_config"], "w") as archive:
        archive.writestr("metadata.json", "{}")
    paths["h5_name"] = str(root / "model.h5")
    shutil.copyfile(paths["relu_sigmoid"], paths["h5_name"])
    paths["directory"] = str(root / "directory.keras")
    os.mkdir(paths["directory"])
    paths["missing"] = str(root / "missing.keras")
    return paths


@pytest.fixture(scope="module")
def originals(models: dict[str, str]) -> dict[str, tuple[bytes, int]]:
    """Fingerprints of every input file, to check at the end that none was changed."""
    return {name: fingerprint(path) for name, path in models.items() if os.path.isfile(path)}


# -- inspect -------------------------------------------------------------------


def test_inspect_prints_the_table(capsys, models):
    result = run_cli(capsys, "inspect", models["relu_sigmoid"])
    assert result.code == 0, result
    assert result.err == ""
    expected = str(tf_reorder.plan(keras.saving.load_model(models["relu_sigmoid"],
                                                           compile=False)))
    assert result.out == expected + "\n"
    assert "relu_sigmoid: 2 of 2 candidate sites moved" in result.out
    assert "activation" in result.out.splitlines()[1]  # the table's header


def test_inspect_json(capsys, models):
    result = run_cli(capsys, "inspect", models["relu"], "--json")
    assert result.code == 0, result
    report = json.loads(result.out)
    assert report["subject"] == "relu_only"
    assert report["moved"] == 2 and len(report["sites"]) == 2
    assert report["elements_saved"] == 14 * 14 * 4 - 7 * 7 * 4 + 5 * 5 * 6 - 6


def test_inspect_says_what_inference_would_move(capsys, models):
    result = run_cli(capsys, "inspect", models["dropout"])
    assert result.code == 0, result
    assert "0 of 1 candidate sites moved" in result.out
    assert "inference=True would let sigmoid cross it" in result.out
    result = run_cli(capsys, "inspect", models["dropout"], "--inference")
    assert result.code == 0, result
    assert "1 of 1 candidate sites moved" in result.out
    assert "note: inference only: 'drop' is the identity at inference" in result.out


# -- convert -------------------------------------------------------------------


def test_convert_for_inference(capsys, models, tmp_path):
    target = tmp_path / "out.keras"
    result = run_cli(capsys, "convert", models["dropout"], target, "--inference", "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["moved"] == 1
    original = keras.saving.load_model(models["dropout"], compile=False)
    converted = keras.saving.load_model(target, compile=False)
    assert [type(layer).__name__ for layer in converted.layers][-2:] == ["Activation",
                                                                        "Flatten"]
    comparison = verify.compare_models(original, converted, batch=3)
    assert comparison.close, comparison


@pytest.mark.parametrize("name, bitwise", [("relu", True), ("relu_sigmoid", False)])
def test_convert_writes_an_equivalent_model(capsys, models, tmp_path, name, bitwise):
    source, target = models[name], tmp_path / "out.keras"
    before = fingerprint(source)
    result = run_cli(capsys, "convert", source, target)
    assert result.code == 0, result
    assert result.err == ""
    assert "2 of 2 candidate sites moved" in result.out
    assert f"wrote {target}" in result.out
    assert fingerprint(source) == before
    assert sorted(os.listdir(tmp_path)) == ["out.keras"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600

    original = keras.saving.load_model(source, compile=False)
    converted = keras.saving.load_model(target, compile=False)
    assert len(tf_reorder.plan(converted).moved) == 0  # the activations are after the pools
    comparison = verify.compare_models(original, converted, batch=3)
    assert comparison.bitwise if bitwise else comparison.close, comparison


def test_convert_json(capsys, models, tmp_path):
    result = run_cli(capsys, "convert", models["relu"], tmp_path / "out.keras", "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["moved"] == 2
    assert (tmp_path / "out.keras").is_file()


def test_convert_refuses_an_existing_output(capsys, models, tmp_path):
    target = tmp_path / "out.keras"
    target.write_bytes(b"precious")
    before = fingerprint(target)
    result = run_cli(capsys, "convert", models["relu"], target)
    assert_error(result, str(target), "already exists", "--overwrite")
    assert fingerprint(target) == before
    assert os.listdir(tmp_path) == ["out.keras"]


def test_convert_overwrite_replaces_the_output(capsys, models, tmp_path):
    target = tmp_path / "out.keras"
    target.write_bytes(b"old")
    result = run_cli(capsys, "convert", models["relu"], target, "--overwrite")
    assert result.code == 0, result
    assert keras.saving.load_model(target, compile=False).name == "relu_only"
    assert os.listdir(tmp_path) == ["out.keras"]


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink", "hardlink"])
def test_convert_refuses_output_equal_to_input(capsys, models, tmp_path, spelling):
    source = tmp_path / "model.keras"
    shutil.copyfile(models["relu"], source)
    target = {
        "same": source,
        "dotted": tmp_path / "." / ".." / tmp_path.name / "model.keras",
        "symlink": tmp_path / "link.keras",
        "hardlink": tmp_path / "hard.keras",
    }[spelling]
    if spelling == "symlink":
        os.symlink(source, target)
    elif spelling == "hardlink":
        os.link(source, target)
    files = sorted(os.listdir(tmp_path))
    before = fingerprint(source)
    result = run_cli(capsys, "convert", source, target, "--overwrite")
    assert_error(result, "the output is the input")
    assert fingerprint(source) == before
    assert sorted(os.listdir(tmp_path)) == files


def test_convert_refuses_a_missing_output_directory(capsys, models, tmp_path):
    target = tmp_path / "nowhere" / "out.keras"
    result = run_cli(capsys, "convert", models["relu"], target)
    assert_error(result, "does not exist", str(tmp_path / "nowhere"))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("target", ["out.h5", "out", "sub.keras"])
def test_convert_refuses_a_bad_output_name(capsys, models, tmp_path, target):
    (tmp_path / "sub.keras").mkdir()
    result = run_cli(capsys, "convert", models["relu"], tmp_path / target)
    assert_error(result, target)
    assert os.listdir(tmp_path) == ["sub.keras"]
    assert os.listdir(tmp_path / "sub.keras") == []


BAD_INPUTS = {
    "missing": "no such file",
    "directory": "is a directory",
    "random": "not a zip archive",
    "truncated": "not a zip archive",
    "empty": "not a zip archive",
    "no_config": "no config.json",
    "h5_name": "must end in .keras",
    "custom": "'Doubler'",  # the class Keras could not find
    "subclassed": "subclassed model",  # loads, then tf_reorder refuses it
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_clear_line(capsys, models, tmp_path, name):
    path = models[name]
    result = run_cli(capsys, "inspect", path)
    assert_error(result, BAD_INPUTS[name], os.path.basename(path))
    assert result.out == ""

    target = tmp_path / "out.keras"
    result = run_cli(capsys, "convert", path, target)
    assert_error(result, BAD_INPUTS[name])
    assert result.out == ""
    assert os.listdir(tmp_path) == []  # no output, no temporary file


def test_custom_class_message_says_how_to_fix_it(capsys, models):
    result = run_cli(capsys, "inspect", models["custom"])
    assert_error(result, "class 'Doubler'", "register_keras_serializable")


def test_failed_save_leaves_nothing_behind(capsys, models, tmp_path, monkeypatch):
    def broken_save(model, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    result = run_cli(capsys, "convert", models["relu"], tmp_path / "out.keras")
    assert_error(result, "No space left on device")
    assert os.listdir(tmp_path) == []

    target = tmp_path / "out.keras"
    target.write_bytes(b"precious")
    before = fingerprint(target)
    result = run_cli(capsys, "convert", models["relu"], target, "--overwrite")
    assert_error(result, "No space left on device")
    assert fingerprint(target) == before
    assert os.listdir(tmp_path) == ["out.keras"]


def test_interrupted_save_leaves_nothing_behind(capsys, models, tmp_path, monkeypatch):
    def interrupted_save(model, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save", interrupted_save)
    result = run_cli(capsys, "convert", models["relu"], tmp_path / "out.keras")
    assert_error(result, "interrupted", code=130)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("verbose", [False, True])
def test_library_warnings_are_hidden_unless_verbose(capsys, models, verbose):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = run_cli(capsys, "inspect", models["warns"], *(["--verbose"] if verbose else []))
    assert result.code == 0, result
    assert ["Deprecated will be removed" in str(w.message) for w in seen] == \
        ([True] if verbose else [])


def test_verbose_logs_the_traceback(capsys, caplog, models):
    result = run_cli(capsys, "inspect", models["subclassed"], "--verbose")
    assert_error(result, "subclassed model")  # stderr still one line in-process
    assert "Traceback" in caplog.text and "ReorderError" in caplog.text


# -- --target ------------------------------------------------------------------


@pytest.fixture
def packaged_policy(tmp_path, monkeypatch):
    """The runtime policy of `policy_files.CELLS`, as the package's own."""
    path = write_policy(tmp_path / "runtime_policy.json")
    monkeypatch.setattr(policy, "PACKAGED_POLICY", path)
    return path


def test_inspect_with_a_target(capsys, models, packaged_policy):
    result = run_cli(capsys, "inspect", models["relu_sigmoid"], "--target=tflite")
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].startswith("relu_sigmoid: 1 of 2 candidate sites moved")
    assert lines[1] == f"policy: {LABELS['tflite']}"
    assert any(line.endswith(RELU_ON_TFLITE) for line in lines)
    model = keras.saving.load_model(models["relu_sigmoid"], compile=False)
    expected = tf_reorder.plan(model, target=tf_reorder.load_policy("tflite"))
    assert result.out == str(expected) + "\n"

    result = run_cli(capsys, "inspect", models["relu_sigmoid"], "--target=all", "--json")
    assert result.code == 0, result
    sites = json.loads(result.out)["sites"]
    assert [s["policy"] for s in sites] == [LABELS["all"]] * 2
    assert [s["moved"] for s in sites] == [False, False]  # relu slower on tflite, sigmoid on tf


def test_convert_with_a_target(capsys, models, tmp_path, packaged_policy):
    source, target = models["relu_sigmoid"], tmp_path / "out.keras"
    result = run_cli(capsys, "convert", source, target, "--target=tflite")
    assert result.code == 0, result
    assert "1 of 2 candidate sites moved" in result.out and f"wrote {target}" in result.out
    original = keras.saving.load_model(source, compile=False)
    converted = keras.saving.load_model(target, compile=False)
    activations = [keras.activations.serialize(layer.activation)
                   for layer in converted.layers if isinstance(layer, layers.Conv2D)]
    assert activations == ["relu", "linear"]  # the relu kept, fused; the sigmoid moved
    comparison = verify.compare_models(original, converted, batch=3)
    assert comparison.close, comparison
    assert [s.function for s in tf_reorder.plan(converted).moved] == ["relu"]


@pytest.mark.parametrize("command", ["inspect", "convert", "demo"])
def test_unknown_target_is_one_clear_line(capsys, models, tmp_path, packaged_policy, command):
    args = {"inspect": [models["relu"]], "convert": [models["relu"], tmp_path / "out.keras"],
            "demo": [f"--out={tmp_path / 'demo.keras'}"]}[command]
    start = time.perf_counter()
    result = run_cli(capsys, command, *args, "--target=tflite_gpu")
    assert_error(result, "--target=tflite_gpu: unknown target 'tflite_gpu'; known targets: "
                 "any, all, tflite, tf, xla")
    assert result.out == ""
    assert time.perf_counter() - start < 5  # refused before loading or building a model
    assert sorted(os.listdir(tmp_path)) == ["runtime_policy.json"]


def test_missing_policy_file_is_one_clear_line(capsys, models, tmp_path, monkeypatch):
    missing = tmp_path / "runtime_policy.json"
    monkeypatch.setattr(policy, "PACKAGED_POLICY", str(missing))
    result = run_cli(capsys, "convert", models["relu"], tmp_path / "out.keras", "--target=tf")
    assert_error(result, f"--target=tf: runtime policy {missing}: no such file")
    assert os.listdir(tmp_path) == []
    result = run_cli(capsys, "inspect", models["relu"])  # the default, any, reads no file
    assert result.code == 0, result


def test_inputs_were_never_modified(models, originals):
    # Runs after the tests above in file order; also checks the module's inputs.
    for name, before in originals.items():
        assert fingerprint(models[name]) == before, name


# -- usage errors --------------------------------------------------------------


@pytest.mark.parametrize("args, fragment", [
    ((), "no command given"),
    (("frobnicate",), "unknown command 'frobnicate'"),
    (("inspect",), "inspect takes 1 argument"),
    (("inspect", "a.keras", "b.keras"), "inspect takes 1 argument"),
    (("convert", "a.keras"), "convert takes 2 arguments"),
    (("demo", "extra"), "demo takes 0 arguments"),
    (("inspect", "a.keras", "--bogus"), "Unknown command line flag 'bogus'"),
    (("demo", "--batch=0"), "--batch"),
    (("inspect", "a.keras", "--overwrite"), "--overwrite does not apply to inspect"),
    (("demo", "--json"), "--json does not apply to demo"),
    (("demo", "--inference"), "--inference does not apply to demo"),
])
def test_usage_errors_exit_2(capsys, args, fragment):
    result = run_cli(capsys, *args)
    assert_error(result, fragment, code=2)


# -- demo ----------------------------------------------------------------------


def test_demo_vgg16(capsys, tmp_path):
    target = tmp_path / "vgg16.keras"
    start = time.perf_counter()
    result = run_cli(capsys, "demo", f"--out={target}")
    elapsed = time.perf_counter() - start
    try:
        assert result.code == 0, result
        assert result.err == ""
        assert "vgg16: 5 of 5 candidate sites moved" in result.out
        assert "outputs on a random batch of 1: bitwise equal" in result.out
        assert "6,121,472 -> 1,530,368 (saved 4,591,104, 75.0%)" in result.out
        assert f"saved the reordered model to {target}" in result.out
        assert "reloaded model vs original: bitwise equal" in result.out
        assert os.listdir(tmp_path) == ["vgg16.keras"]
        assert elapsed < 60, f"demo took {elapsed:.0f} s"
    finally:
        if target.exists():
            target.unlink()  # about 550 MB


def test_demo_without_out_removes_its_scratch_file(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where TemporaryDirectory goes
    result = run_cli(capsys, "demo", "--model=MobileNetV3Small")
    assert result.code == 0, result
    assert "removed at the end; pass --out=PATH.keras to keep it" in result.out
    assert "reloaded model vs original:" in result.out and result.out.endswith("ok\n")
    assert os.listdir(tmp_path) == []


def test_demo_refuses_before_building(capsys, tmp_path):
    target = tmp_path / "out.keras"
    target.write_bytes(b"precious")
    start = time.perf_counter()
    assert_error(run_cli(capsys, "demo", f"--out={target}"), "already exists")
    assert_error(run_cli(capsys, "demo", f"--out={tmp_path / 'out.h5'}"), "must end in .keras")
    assert_error(run_cli(capsys, "demo", "--model=VGG61"), "did you mean", "VGG16")
    assert time.perf_counter() - start < 5
    assert target.read_bytes() == b"precious"
