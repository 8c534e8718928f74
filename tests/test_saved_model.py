"""SavedModel conversion end to end: serving, TFLite, tf2onnx + ONNX Runtime, files."""

import hashlib
import os
import subprocess
import sys

import keras
import numpy as np
import onnx
import onnxruntime
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from keras import layers

import tf_reorder
from tf_reorder import cli, policy, saved_model
from tf_reorder.policy import load_policy
from policy_files import LABELS, RELU_ON_TFLITE, SIGMOID_ON_TF, write_policy

X = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype("float32")


def tree_digest(path):
    """Every file under `path` with its bytes' hash (and mtime), to show it is untouched."""
    digest = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                digest[os.path.relpath(full, path)] = (hashlib.sha256(f.read()).hexdigest(),
                                                       os.stat(full).st_mtime_ns)
    return digest


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = keras.Sequential([keras.Input((32, 32, 3)),
                              layers.Conv2D(8, 3, activation="sigmoid"), layers.MaxPooling2D(),
                              layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(),
                              layers.Flatten(), layers.Dense(4)])
    directory = tmp_path_factory.mktemp("sm")
    src = str(directory / "exported")
    model.export(src, verbose=False)
    before = tree_digest(src)
    dst = str(directory / "reordered")
    report = tf_reorder.convert_saved_model(src, dst)
    assert tree_digest(src) == before, "the source SavedModel was changed"
    return model, src, dst, report


def test_report_moves_both_sites(exported):
    _, _, _, report = exported
    assert len(report.moved) == 2 and {s.function for s in report.moved} == {"Sigmoid", "Relu"}
    assert all(s.elements_after * 4 <= s.elements_before for s in report.moved)


def test_serving_signature_gives_the_same_outputs(exported):
    model, src, dst, _ = exported
    original, reordered = tf.saved_model.load(src), tf.saved_model.load(dst)
    assert set(reordered.signatures) == set(original.signatures)
    a = original.signatures["serving_default"](tf.constant(X))
    b = reordered.signatures["serving_default"](tf.constant(X))
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(reordered.serve(X)), np.asarray(model(X)),
                               rtol=1e-5, atol=1e-6)


def test_variables_and_assets_are_copied_byte_for_byte(exported):
    _, src, dst, _ = exported
    a, b = tree_digest(src), tree_digest(dst)
    assert set(a) == set(b)
    for name in a:
        if name.startswith(("variables", "assets")):
            assert a[name][0] == b[name][0], name
    assert a["saved_model.pb"][0] != b["saved_model.pb"][0]


def test_fingerprint_matches_the_new_graph(exported):
    _, src, dst, _ = exported
    old = tf.saved_model.experimental.read_fingerprint(src)
    new = tf.saved_model.experimental.read_fingerprint(dst)
    assert new.saved_model_checksum != old.saved_model_checksum
    assert new.checkpoint_hash == old.checkpoint_hash
    from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting
    from tensorflow.core.protobuf import fingerprint_pb2
    recomputed = fingerprint_pb2.FingerprintDef.FromString(
        fingerprinting.CreateFingerprintDef(dst))
    assert recomputed.saved_model_checksum == new.saved_model_checksum


def _tflite_ops(path):
    content = tf.lite.TFLiteConverter.from_saved_model(path).convert()
    return [op["op_name"] for op in Interpreter(model_content=content)._get_ops_details()]


def test_tflite_runs_the_sigmoid_after_the_pool(exported):
    _, src, dst, _ = exported
    before, after = _tflite_ops(src), _tflite_ops(dst)
    assert before.index("LOGISTIC") < before.index("MAX_POOL_2D")
    assert after.index("MAX_POOL_2D") < after.index("LOGISTIC")


def _onnx(path, out):
    subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", path,
                    "--output", out, "--opset", "17"], check=True, capture_output=True)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(out, options, providers=["CPUExecutionProvider"])
    (result,) = session.run(None, {session.get_inputs()[0].name: X})
    return [n.op_type for n in onnx.load(out).graph.node], result


def test_tf2onnx_and_onnx_runtime(exported, tmp_path):
    _, src, dst, _ = exported
    ops_before, before = _onnx(src, str(tmp_path / "original.onnx"))
    ops_after, after = _onnx(dst, str(tmp_path / "reordered.onnx"))
    assert ops_before.index("Sigmoid") < ops_before.index("MaxPool")
    assert ops_after.index("MaxPool") < ops_after.index("Sigmoid")
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)


def test_existing_output_is_refused_then_overwritten(exported, tmp_path):
    _, src, _, _ = exported
    dst = tmp_path / "out"
    tf_reorder.convert_saved_model(src, dst)
    (dst / "keep.txt").write_text("mine")
    with pytest.raises(tf_reorder.OutputExistsError, match="already exists") as refused:
        tf_reorder.convert_saved_model(src, dst)
    assert refused.value.path == str(dst) and isinstance(refused.value, tf_reorder.ReorderError)
    assert (dst / "keep.txt").read_text() == "mine"
    tf_reorder.convert_saved_model(src, dst, overwrite=True)  # a SavedModel: replaced whole
    assert saved_model.is_saved_model(dst) and not (dst / "keep.txt").exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tf-reorder-")] == []


def test_overwrite_replaces_only_a_saved_model_or_an_empty_directory(exported, tmp_path):
    _, src, _, _ = exported
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(tf_reorder.ReorderError, match="exists and is not a SavedModel"):
        tf_reorder.convert_saved_model(src, mine, overwrite=True)
    assert os.listdir(mine) == ["notes.txt"] and (mine / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    tf_reorder.convert_saved_model(src, empty, overwrite=True)
    assert saved_model.is_saved_model(empty)


def test_converting_a_converted_saved_model_moves_nothing(exported, tmp_path):
    """Idempotence: the second conversion keeps the first one's graphs, byte for byte."""
    _, _, dst, _ = exported
    again = tmp_path / "again"
    report = tf_reorder.convert_saved_model(dst, again)
    assert not report.moved, str(report)
    first, second = saved_model.read_saved_model(dst), saved_model.read_saved_model(again)
    assert [m.graph_def.SerializeToString(deterministic=True) for m in first.meta_graphs] == \
        [m.graph_def.SerializeToString(deterministic=True) for m in second.meta_graphs]


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing", "no such directory"),
    (lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt", "it is a file"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "not a SavedModel"),
    (lambda tmp: (tmp / "bad").mkdir() or (tmp / "bad" / "saved_model.pb").write_bytes(
        b"\x00garbage\xff" * 10) and tmp / "bad", "not a readable SavedModel"),
])
def test_bad_sources(tmp_path, make, message):
    src = make(tmp_path)
    with pytest.raises(tf_reorder.ReorderError, match=message):
        tf_reorder.convert_saved_model(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_output_inside_the_input_is_refused(exported):
    _, src, _, _ = exported
    with pytest.raises(tf_reorder.ReorderError, match="inside it"):
        tf_reorder.convert_saved_model(src, os.path.join(src, "nested"))
    with pytest.raises(tf_reorder.ReorderError, match="the output is the input"):
        tf_reorder.convert_saved_model(src, src, overwrite=True)


def test_cli_converts_and_inspects_saved_models(exported, tmp_path, capsys):
    _, src, _, _ = exported
    cli.parse_flags(["tf-reorder"])
    try:
        assert cli.main(["tf-reorder", "inspect", src]) == 0
        assert "2 of 2 candidate sites moved" in capsys.readouterr().out
        dst = str(tmp_path / "cli_out")
        assert cli.main(["tf-reorder", "convert", src, dst]) == 0
        assert saved_model.is_saved_model(dst)
        assert cli.main(["tf-reorder", "convert", src, dst]) == 1
        assert "already exists" in capsys.readouterr().err
    finally:
        cli.flags.FLAGS.unparse_flags()


def test_convert_with_a_target(exported, tmp_path, capsys, monkeypatch):
    _, src, _, _ = exported
    path = write_policy(tmp_path / "runtime_policy.json")
    dst = str(tmp_path / "tflite")
    report = tf_reorder.convert_saved_model(src, dst, target=load_policy("tflite", path=path))
    assert [s.function for s in report.moved] == ["Sigmoid"]
    (kept,) = report.skipped
    assert kept.function == "Relu" and kept.reason == RELU_ON_TFLITE
    assert {s.policy for s in report.sites} == {LABELS["tflite"]}
    a = tf.saved_model.load(src).signatures["serving_default"](tf.constant(X))
    b = tf.saved_model.load(dst).signatures["serving_default"](tf.constant(X))
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-6)
    ops = _tflite_ops(dst)
    assert ops.index("MAX_POOL_2D") < ops.index("LOGISTIC")

    # The CLI, with the packaged policy pointed at the test's file.
    monkeypatch.setattr(policy, "PACKAGED_POLICY", path)
    cli_dst = str(tmp_path / "cli_tf")
    try:
        cli.parse_flags(["tf-reorder", "--target=tf"])
        assert cli.main(["tf-reorder", "inspect", src]) == 0
        out = capsys.readouterr().out
        assert "1 of 2 candidate sites moved" in out and f"policy: {LABELS['tf']}" in out
        assert SIGMOID_ON_TF in out
        assert cli.main(["tf-reorder", "convert", src, cli_dst]) == 0
        assert f"wrote {cli_dst}" in capsys.readouterr().out
    finally:
        cli.flags.FLAGS.unparse_flags()
    # The relu moved for tf; the sigmoid, refused, is still before its pool.
    _, again = saved_model.rewrite_saved_model(saved_model.read_saved_model(cli_dst), cli_dst)
    assert [s.function for s in again.moved] == ["Sigmoid"]


def _tflite_ops_with_fused_activations(content):
    """TFLite op names, with the fused activation in brackets, e.g. ``CONV_2D[RELU]``."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    activations = {v: k for k, v in vars(schema.ActivationFunctionType).items()
                   if not k.startswith("_")}
    ops = []
    for op in model.subgraphs[0].operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = op_names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        fused = getattr(op.builtinOptions, "fusedActivationFunction", 0)
        ops.append(f"{name}[{activations[fused]}]" if fused else name)
    return ops


def _tflite_run(content, x):
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_vgg16_export_end_to_end(tmp_path):
    """A real `model.export()` of the VGG16 backbone: what changes, and what does not."""
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    src, dst = str(tmp_path / "vgg16"), str(tmp_path / "vgg16_reordered")
    model.export(src, verbose=False)
    report = tf_reorder.convert_saved_model(src, dst)
    assert (len(report.moved), len(report.sites)) == (5, 5), str(report)
    assert (report.elements_before, report.elements_after) == (6_121_472, 1_530_368)

    x = np.random.default_rng(1).standard_normal((1, 224, 224, 3)).astype("float32")
    a = tf.saved_model.load(src).signatures["serving_default"](tf.constant(x))
    b = tf.saved_model.load(dst).signatures["serving_default"](tf.constant(x))
    assert all(a[key].numpy().tobytes() == b[key].numpy().tobytes() for key in a)

    before = tf.lite.TFLiteConverter.from_saved_model(src).convert()
    after = tf.lite.TFLiteConverter.from_saved_model(dst).convert()
    ops_before = _tflite_ops_with_fused_activations(before)
    ops_after = _tflite_ops_with_fused_activations(after)
    # TFLite fuses the relu into whatever runs before it: the last conv of each
    # block before, the block's pool after. No op is added or removed.
    assert ops_before.count("MAX_POOL_2D") == 5 and "MAX_POOL_2D[RELU]" not in ops_before
    assert ops_after.count("MAX_POOL_2D[RELU]") == 5 and "MAX_POOL_2D" not in ops_after
    assert all(ops_after[i - 1] == "CONV_2D" for i, op in enumerate(ops_after)
               if op == "MAX_POOL_2D[RELU]")
    assert len(ops_before) == len(ops_after) == 18
    assert _tflite_run(before, x).tobytes() == _tflite_run(after, x).tobytes()
