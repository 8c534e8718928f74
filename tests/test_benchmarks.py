"""The benchmark binaries run end to end on tiny inputs (no timing is asserted)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_binary(script, *flags):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *flags],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


@pytest.mark.parametrize("script", ["graph_pass_speed.py", "reorder_speed.py"])
def test_helpfull_lists_the_flags(script):
    result = run_binary(script, "--helpfull")
    assert result.returncode == 0, result.stderr
    assert "--repeats" in result.stdout and "--out" in result.stdout


def test_tf_kernels_helpfull_and_bad_model():
    result = run_binary("tf_kernels.py", "--helpfull")
    assert result.returncode == 0 and "--activation" in result.stdout, result.stderr
    result = run_binary("tf_kernels.py", "--model=lenet")
    assert result.returncode != 0 and "unknown 'lenet'" in result.stderr


def test_graph_pass_speed_writes_its_table_and_json(tmp_path):
    out = tmp_path / "speed.json"
    result = run_binary("graph_pass_speed.py", "--sizes=100,300", "--repeats=1",
                        "--applications=VGG16", f"--out={out}")
    assert result.returncode == 0, result.stderr
    assert "| synthetic 100 |" in result.stdout and "| VGG16 |" in result.stdout
    rows = json.loads(out.read_text())["results"]
    assert [r["graph"] for r in rows] == ["synthetic 100", "synthetic 300", "VGG16"]
    vgg16 = rows[-1]
    assert (vgg16["sites"], vgg16["moved"]) == (5, 5)
    assert all(r["nodes_per_s"] > 0 and r["moved"] <= r["sites"] for r in rows)
    assert not os.path.exists(f"{out}.tmp")


def test_graph_pass_speed_rejects_bad_sizes():
    result = run_binary("graph_pass_speed.py", "--sizes=ten", "--applications=")
    assert result.returncode == 1 and "--sizes must be integers" in result.stderr


def test_reorder_speed_writes_json(tmp_path):
    out = tmp_path / "reorder.json"
    result = run_binary("reorder_speed.py", "--models=VGG16", "--repeats=1", f"--out={out}")
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert [r["model"] for r in data["results"]] == ["VGG16"], data


def test_reorder_speed_times_a_baseline_checkout_in_the_same_rounds(tmp_path):
    out = tmp_path / "reorder.json"
    result = run_binary("reorder_speed.py", "--models=VGG16", "--repeats=2",
                        f"--baseline={ROOT}", f"--out={out}")
    assert result.returncode == 0, result.stderr
    assert "| vs baseline |" in result.stdout
    (row,) = json.loads(out.read_text())["results"]
    assert len(row["baseline_s"]) == 2 and min(row["baseline_s"]) > 0
    assert row["vs_baseline_q1"] <= row["vs_baseline_median"] <= row["vs_baseline_q3"]


def test_graph_pass_speed_times_a_baseline_checkout(tmp_path):
    out = tmp_path / "speed.json"
    result = run_binary("graph_pass_speed.py", "--sizes=100", "--repeats=2",
                        "--applications=", f"--baseline={ROOT}", f"--out={out}")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text())["results"]
    assert len(row["baseline_s"]) == 2 and row["vs_baseline_median"] > 0


@pytest.mark.parametrize("script, nothing_else", [("graph_pass_speed.py", "--applications="),
                                                  ("reorder_speed.py", "--models=")])
def test_a_baseline_without_tf_reorder_is_a_usage_error(script, nothing_else, tmp_path):
    result = run_binary(script, f"--baseline={tmp_path}", nothing_else)
    assert result.returncode == 1, result.stderr
    assert "no tf_reorder package there" in result.stderr


def test_unknown_flag_is_a_usage_error():
    result = run_binary("graph_pass_speed.py", "--sizez=10")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("graph_pass_speed.py: error:")


# -- bench_runtimes and its modules ------------------------------------------------------

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import bench_models  # noqa: E402
import results_output  # noqa: E402
import tf_kernel_stats  # noqa: E402
import timing  # noqa: E402


def test_interleaved_rotates_the_first_variant():
    order = []
    calls = [lambda k=k: order.append(k) for k in range(3)]
    rounds = timing.interleaved(calls, pairs=3, calls_per_sample=1)
    assert order == [0, 1, 2, 1, 2, 0, 2, 0, 1]
    assert len(rounds) == 3 and all(len(r) == 3 and min(r) >= 0 for r in rounds)


def test_a_sample_is_the_best_of_its_repeats():
    import time

    delays = iter([0.03, 0.001, 0.02])
    assert timing.sample(lambda: time.sleep(next(delays)), calls=1, repeats=3) < 0.015
    delays = iter([0.001, 0.001])
    assert timing.sample(lambda: time.sleep(next(delays)), calls=2) < 0.015


def test_pin_to_cpu_pins_and_refuses_a_cpu_it_may_not_use():
    allowed = os.sched_getaffinity(0)
    try:
        assert timing.pin_to_cpu("none") is None and os.sched_getaffinity(0) == allowed
        cpu = timing.pin_to_cpu("last")
        assert cpu == max(allowed) and os.sched_getaffinity(0) == {cpu}
        with pytest.raises(ValueError, match="not available"):
            timing.pin_to_cpu(str(max(allowed) + 1))
        with pytest.raises(ValueError, match="'last', 'none' or a CPU number"):
            timing.pin_to_cpu("fast")
    finally:
        os.sched_setaffinity(0, allowed)


def test_quartiles_and_limit():
    assert timing.quartiles([3.0]) == (3.0, 3.0, 3.0)
    assert timing.quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 3.0, 4.0)
    assert timing.limit_ratio(0.2, 0.75) == pytest.approx(0.85)
    assert timing.limit_ratio(0.0, 0.75) == 1.0


def test_linear_twin_keeps_the_weights_and_drops_every_activation():
    import keras
    import numpy as np

    model = bench_models.build("vgg_style", "sigmoid", 32)
    twin = bench_models.linearized(model)
    plain = bench_models.build("vgg_style", "linear", 32)
    plain.set_weights(model.get_weights())
    x = bench_models.sample_input(model, 2)
    np.testing.assert_array_equal(twin.predict(x, verbose=0), plain.predict(x, verbose=0))
    assert bench_models.activation_elements(twin) == 0
    # 2 convs per block: 32x32x32, 16x16x64, 8x8x128, 4x4x256 elements each.
    assert bench_models.activation_elements(model) == 2 * (32 * 32 * 32 + 16 * 16 * 64
                                                           + 8 * 8 * 128 + 4 * 4 * 256)
    resnet_twin = bench_models.linearized(bench_models.build("resnet50", "relu", 32))
    assert not any(isinstance(layer, keras.layers.Activation) and
                   layer.activation.__name__ != "linear" for layer in resnet_twin.layers
                   if not layer.name.startswith("predictions"))


def test_pivot_table_marks_unavailable_cells():
    cells = [
        {"model": "m", "activation": "relu", "runtime": "tf", "ratio": 0.9, "limit": 0.8},
        {"model": "m", "activation": "relu", "runtime": "tflite", "ratio": None,
         "error": "TFLite: needs TF Select ops: MaxPool3D"},
    ]
    table = results_output.pivot_table(cells)
    assert "| m / relu | 0.900 (0.800) | n/a |" in table
    kept = [dict(cells[0], unchanged=True, ratio=1.004)]
    assert "| m / relu | kept (A/A 1.004) |" in results_output.pivot_table(kept)


def test_tf_kernels_sees_grappler_move_softplus_in_the_original():
    """Grappler's arithmetic optimizer moves Softplus after MaxPool by itself: in the
    original, the pooled block's Softplus already runs on the pooled shape."""
    model = bench_models.build("vgg_style", "softplus", 32)
    x = bench_models.sample_input(model, 1)
    rows = tf_kernel_stats.kernel_times(model, x, runs=1)
    shapes = {name: shape for name, op, shape, _ in rows if op == "Softplus"}
    assert len(shapes) == 8, rows
    assert shapes["vgg_style_1/block1_conv2_1/Softplus"] == [1, 16, 16, 32]
    assert shapes["vgg_style_1/block1_conv1_1/Softplus"] == [1, 32, 32, 32]


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "RESULTS.md"
    results_output.write_atomic(str(path), "one")
    results_output.write_atomic(str(path), "two")
    assert path.read_text() == "two"
    assert os.listdir(path.parent) == ["RESULTS.md"]


def test_bench_runtimes_end_to_end(tmp_path):
    policy_path = tmp_path / "policy.json"
    result = run_binary("bench_runtimes.py", "--models=vgg_style,conv3d",
                        "--activations=sigmoid", "--runtimes=tf,tflite,jax", "--image_size=32",
                        "--pairs=2", "--warmup=1", "--min_sample_ms=1", f"--out={tmp_path}",
                        f"--policy_out={policy_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / "RESULTS.json").read_text())
    cells = {(c["model"], c["activation"], c["runtime"]): c for c in payload["cells"]}
    assert set(cells) == {(m, a, r) for m, a in [("vgg_style", "sigmoid"), ("conv3d", "relu")]
                          for r in ("tf", "tflite", "jax")}
    vgg = cells["vgg_style", "sigmoid", "tflite"]
    assert (vgg["sites_moved"], vgg["sites"]) == (4, 4)
    assert vgg["activation_elements"] == bench_models.activation_elements(
        bench_models.build("vgg_style", "sigmoid", 32))
    assert vgg["activation_elements_after"] < vgg["activation_elements"]
    for key, cell in cells.items():
        if key == ("conv3d", "relu", "tflite"):  # no builtin MaxPool3D in TFLite
            assert cell["ratio"] is None and "MaxPool3D" in cell["error"]
            continue
        assert cell["ratio"] > 0 and cell["q1"] <= cell["ratio"] <= cell["q3"], cell
        assert cell["limit"] <= 1.0 + abs(cell["share"]) and cell["max_abs_diff"] < 1e-4
    markdown = (tmp_path / "RESULTS.md").read_text()
    assert "| vgg_style / sigmoid |" in markdown and payload["command"] in markdown
    assert "--pairs=2" in payload["command"] and "--runtimes=tf,tflite,jax" in payload["command"]
    assert (tmp_path / "RESULTS.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    policy = json.loads(policy_path.read_text())
    assert set(policy["runtimes"]) == {"tf", "tflite", "jax"}
    assert policy["provenance"]["command"] == payload["command"]


# -- the batch norm models (reordered with inference=True) ----------------------------------

BN_MODELS = {  # model -> the batch norms reorder(inference=True) moves after a max pool
    "cifar_bn": {"block1_bn2", "block2_bn2", "block3_bn2"},
    "xception_bn": {"block1_bn", "block2_bn", "block3_bn", "block4_bn"},
}


def _batch_norms(model):
    import keras

    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("name", sorted(BN_MODELS))
def test_batch_norm_models_have_trained_looking_positive_statistics(name):
    import numpy as np

    model = bench_models.build(name, "relu", 32)
    again = bench_models.build(name, "relu", 32)
    for bn, bn_again in zip(_batch_norms(model), _batch_norms(again)):
        gamma, beta, mean, variance = (np.asarray(w) for w in bn.get_weights())
        assert gamma.min() > 0 and variance.min() > 0, bn.name
        assert np.abs(gamma - 1).max() > 0.1 and np.abs(mean).max() > 0.1, bn.name
        for w, w_again in zip(bn.get_weights(), bn_again.get_weights()):
            np.testing.assert_array_equal(w, w_again)  # seeded
    assert bench_models.cell_activations(name, ["sigmoid"]) == ["batch_normalization"]
    assert bench_models.reorders_for_inference(name)


@pytest.mark.parametrize("name", sorted(BN_MODELS))
def test_batch_norm_models_move_their_batch_norms_for_inference(name):
    import numpy as np
    import tf_reorder

    model = bench_models.build(name, "relu", 32)
    reordered, report = tf_reorder.reorder(model, return_report=True, inference=True)
    moved_bns = {s.activation for s in report.moved if s.function.startswith("BatchNorm")}
    assert moved_bns == BN_MODELS[name], str(report)
    # cifar_bn: each block's second relu moves with its batch norm; xception_bn: no relu.
    relus = {s.activation for s in report.moved} - moved_bns
    assert relus == ({"block1_conv2", "block2_conv2", "block3_conv2"}
                     if name == "cifar_bn" else set()), str(report)
    x = bench_models.sample_input(model, 2)
    np.testing.assert_allclose(reordered.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    # The default mode moves no trainable batch norm (nor the relus behind them).
    assert not tf_reorder.plan(model).moved


@pytest.mark.parametrize("name", sorted(BN_MODELS))
def test_linear_twin_of_a_batch_norm_model_drops_batch_norms_only_for_inference(name):
    import keras
    import numpy as np

    model = bench_models.build(name, "relu", 32)
    twin = bench_models.linearized(model, inference=True)
    bn_names = {bn.name for bn in _batch_norms(model)}
    assert not _batch_norms(twin)
    assert {layer.name for layer in twin.layers
            if isinstance(layer, keras.layers.Identity)} == bn_names
    assert bench_models.activation_elements(twin, inference=True) == 0
    for layer in model.layers:  # every other layer keeps its weights
        if layer.name not in bn_names:
            for w, w_twin in zip(layer.get_weights(), twin.get_layer(layer.name).get_weights(),
                                 strict=True):
                np.testing.assert_array_equal(w, w_twin)
    x = bench_models.sample_input(model, 1)
    assert not np.allclose(twin.predict(x, verbose=0), model.predict(x, verbose=0))
    # In the default mode a trainable batch norm does not move, so it stays in the twin.
    default_twin = bench_models.linearized(model)
    assert {bn.name for bn in _batch_norms(default_twin)} == bn_names
    for bn in _batch_norms(model):
        for w, w_twin in zip(bn.get_weights(), default_twin.get_layer(bn.name).get_weights()):
            np.testing.assert_array_equal(w, w_twin)


def test_activation_elements_count_batch_norms_for_inference():
    import tf_reorder

    # Counted before reorder: the rewritten model reuses layers, adding inbound nodes.
    cifar = bench_models.build("cifar_bn", "relu", 32)
    relus = 2 * (32 * 32 * 32 + 16 * 16 * 64 + 8 * 8 * 128)  # two convs per block
    assert bench_models.activation_elements(cifar) == relus
    assert bench_models.activation_elements(cifar, inference=True) == 2 * relus  # a BN each
    xception = bench_models.build("xception_bn", "relu", 32)
    # stem 16x16x32 (relu, BN); block BNs 16x16x64 ... 2x2x512; relus after each pool.
    relus = 16 * 16 * 32 + 8 * 8 * 64 + 4 * 4 * 128 + 2 * 2 * 256 + 1 * 1 * 512
    bns = 16 * 16 * 32 + 16 * 16 * 64 + 8 * 8 * 128 + 4 * 4 * 256 + 2 * 2 * 512
    assert bench_models.activation_elements(xception) == relus
    total = bench_models.activation_elements(xception, inference=True)
    assert total == relus + bns
    report = tf_reorder.plan(xception, inference=True)
    assert 0 < report.elements_saved <= total
    # resnet50's batch norms count only in an inference-mode cell, which it never is.
    assert not bench_models.reorders_for_inference("resnet50")
    assert bench_models.cell_activations("resnet50", ["sigmoid"]) == ["relu"]


def test_with_graph_aliases_copies_batch_normalization_to_fused_batch_norm():
    # bench_runtimes defines absl flags that tf_reorder.cli defines too (--target, --out):
    # import it in a process of its own.
    script = """if True:
        import json, sys
        sys.path.insert(0, "benchmarks")
        import bench_runtimes
        entry = {"move": False, "ratio": 1.05, "q1": 1.04, "q3": 1.06, "model": "xception_bn"}
        data = {"format": 1, "provenance": {}, "runtimes": {
            "tflite": {"batch_normalization": entry, "relu": dict(entry, move=True)},
            "onnx": {"batch_normalization": entry, "fused_batch_norm": dict(entry, ratio=0.9)},
            "tf": {"sigmoid": entry}}}
        before = json.dumps(data, sort_keys=True)
        out = bench_runtimes.with_graph_aliases(data)
        print(json.dumps({"out": out, "unchanged": json.dumps(data, sort_keys=True) == before}))
    """
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["unchanged"]
    runtimes = result["out"]["runtimes"]
    assert runtimes["tflite"]["fused_batch_norm"] == runtimes["tflite"]["batch_normalization"]
    assert runtimes["onnx"]["fused_batch_norm"]["ratio"] == 0.9  # measured itself: kept
    assert set(runtimes["tf"]) == {"sigmoid"}
    assert set(runtimes["tflite"]) == {"batch_normalization", "fused_batch_norm", "relu"}


def test_bench_runtimes_end_to_end_batch_norm_models(tmp_path):
    policy_path = tmp_path / "policy.json"
    result = run_binary("bench_runtimes.py", "--models=cifar_bn,xception_bn", "--runtimes=tf",
                        "--image_size=32", "--pairs=2", "--warmup=1", "--min_sample_ms=1",
                        f"--out={tmp_path}", f"--policy_out={policy_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / "RESULTS.json").read_text())
    cells = {c["model"]: c for c in payload["cells"]}
    assert set(cells) == set(BN_MODELS)
    for name, cell in cells.items():
        assert cell["activation"] == "batch_normalization" and cell["inference"], cell
        assert cell["sites_moved"] == {"cifar_bn": 6, "xception_bn": 4}[name], cell
        assert 0 < cell["fraction_removed"] <= 1 and cell["max_abs_diff"] < 1e-4, cell
        assert not cell["unchanged"] and cell["ratio"] > 0, cell
    assert "| cifar_bn / batch_normalization |" in (tmp_path / "RESULTS.md").read_text()
    tf_policy = json.loads(policy_path.read_text())["runtimes"]["tf"]
    assert set(tf_policy) == {"batch_normalization", "fused_batch_norm"}
    assert tf_policy["fused_batch_norm"] == tf_policy["batch_normalization"]
    assert tf_policy["batch_normalization"]["ratio"] == max(c["ratio"] for c in cells.values())
