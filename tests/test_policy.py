"""Runtime policies: built from measurements, read from files, and the decisions they give."""

import copy
import dataclasses
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tf_reorder import ReorderError, algebra, policy
from tf_reorder.policy import Decision, Policy, load_policy, policy_from_measurements
from policy_files import CELLS, LABELS, PROVENANCE, RELU_ON_TFLITE, cell, write_policy


@pytest.fixture
def path(tmp_path):
    return write_policy(tmp_path / "runtime_policy.json")


def write_json(tmp_path, data, name="policy.json"):
    target = tmp_path / name
    target.write_text(json.dumps(data))
    return str(target)


# -- policy_from_measurements ------------------------------------------------------


def test_worst_model_decides():
    cells = [cell("tflite", "relu", 0.90, "a"), cell("tflite", "relu", 1.04, "b"),
             cell("tflite", "relu", 0.95, "c")]
    data = policy_from_measurements(cells, PROVENANCE)
    assert data["runtimes"] == {"tflite": {"relu": {
        "move": False, "ratio": 1.04, "q1": 1.03, "q3": 1.05, "model": "b"}}}


def test_every_model_faster_moves_and_the_worst_is_recorded():
    cells = [cell("tf", "sigmoid", 0.80, "a"), cell("tf", "sigmoid", 0.97, "b"),
             cell("tf", "sigmoid", 0.85, "c")]
    entry = policy_from_measurements(cells, PROVENANCE)["runtimes"]["tf"]["sigmoid"]
    assert entry["move"] is True and entry["model"] == "b" and entry["ratio"] == 0.97


@pytest.mark.parametrize("ratio, threshold, move", [
    (1.01, 1.01, True),  # the edge: equal to the threshold moves
    (math.nextafter(1.01, 2.0), 1.01, False),
    (1.0, 1.0, True),
    (1.001, 1.0, False),
    (0.96, 0.95, False),
])
def test_threshold_edge(ratio, threshold, move):
    data = policy_from_measurements([cell("xla", "relu", ratio)], PROVENANCE, threshold)
    assert data["runtimes"]["xla"]["relu"]["move"] is move
    assert data["provenance"]["threshold"] == threshold


def test_none_ratios_are_skipped():
    cells = [
        cell("onnx", "relu", None, "resnet50"),  # onnx could not run resnet50
        cell("onnx", "relu", 0.93, "vgg_style"),
        cell("jax", "relu", None, "resnet50"),  # jax ran nothing
        cell("tflite", "relu", 1.2, "resnet50"),
        # As the benchmark records a runtime that cannot run a model: no quartiles.
        {"model": "conv3d", "activation": "relu", "runtime": "tflite", "ratio": None,
         "error": "TFLite: needs TF Select ops: MaxPool3D"},
    ]
    runtimes = policy_from_measurements(cells, PROVENANCE)["runtimes"]
    assert list(runtimes) == ["onnx", "tflite"]
    assert runtimes["tflite"]["relu"]["model"] == "resnet50"
    assert runtimes["onnx"]["relu"] == {"move": True, "ratio": 0.93, "q1": 0.92, "q3": 0.94,
                                        "model": "vgg_style"}


def test_only_none_ratios_is_an_error():
    with pytest.raises(ReorderError, match="no runtime was measured"):
        policy_from_measurements([cell("jax", "relu", None)], PROVENANCE)


def test_several_models_runtimes_and_families():
    data = policy_from_measurements(CELLS, PROVENANCE)
    assert list(data["runtimes"]) == ["tflite", "tf", "xla"]  # in order of appearance
    assert list(data["runtimes"]["tflite"]) == ["relu", "sigmoid", "leaky_relu", "elu"]
    decisions = {(r, f): e["move"] for r, fs in data["runtimes"].items() for f, e in fs.items()}
    assert decisions == {
        ("tflite", "relu"): False, ("tflite", "sigmoid"): True, ("tflite", "leaky_relu"): True,
        ("tflite", "elu"): True, ("tf", "relu"): True, ("tf", "sigmoid"): False,
        ("tf", "elu"): True, ("tf", "tanh"): True, ("xla", "relu"): True,
        ("xla", "sigmoid"): True, ("xla", "elu"): True,
    }
    assert data["runtimes"]["tflite"]["relu"]["model"] == "resnet50"


def test_output_is_the_file_format():
    cells = [cell("tflite", "sigmoid", 0.81, extra_key="ignored", seconds=[0.1, 0.2])]
    provenance = copy.deepcopy(PROVENANCE)
    data = policy_from_measurements(cells, provenance)
    assert list(data) == ["format", "provenance", "runtimes"]
    assert data["format"] == 1
    assert data["provenance"] == {**PROVENANCE, "threshold": 1.01}
    assert provenance == PROVENANCE  # the caller's dict is not changed
    assert data["runtimes"]["tflite"]["sigmoid"] == {
        "move": True, "ratio": 0.81, "q1": 0.80, "q3": 0.82, "model": "vgg_style"}
    assert json.loads(json.dumps(data)) == data


def test_numpy_numbers_become_floats():
    measured = cell("tf", "relu", 0.9)
    measured.update(ratio=np.float32(0.9), q1=np.float64(0.8), q3=np.float64(1.0))
    entry = policy_from_measurements([measured], PROVENANCE)["runtimes"]["tf"]["relu"]
    assert type(entry["ratio"]) is float and type(entry["q1"]) is float
    assert json.dumps(entry)


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("runtime"), "measurement 1 has no 'runtime'"),
    (lambda c: c.pop("ratio"), "measurement 1 has no 'ratio'"),
    (lambda c: c.pop("q3"), "measurement 1 has no 'q3'"),
    (lambda c: c.update(ratio="fast"), "measurement 1 ratio must be a finite number"),
    (lambda c: c.update(ratio=float("nan")), "measurement 1 ratio must be a finite number"),
    (lambda c: c.update(ratio=True), "measurement 1 ratio must be a finite number"),
    (lambda c: c.update(q1=None), "measurement 1 q1 must be a finite number"),
    (lambda c: c.update(ratio=-0.5), "ratio must be positive"),
])
def test_bad_cells(change, message):
    bad = cell("tf", "relu", 0.9)
    change(bad)
    with pytest.raises(ReorderError, match=message):
        policy_from_measurements([cell("tf", "elu", 0.9), bad], PROVENANCE)


@pytest.mark.parametrize("missing", ["command", "date", "versions"])
def test_provenance_must_say_how_it_was_measured(missing):
    provenance = {k: v for k, v in PROVENANCE.items() if k != missing}
    with pytest.raises(ReorderError, match=f"provenance.{missing}"):
        policy_from_measurements(CELLS, provenance)


@pytest.mark.parametrize("threshold", [0, -1.0, float("inf"), "1.01"])
def test_bad_threshold(threshold):
    with pytest.raises(ReorderError, match="threshold"):
        policy_from_measurements(CELLS, PROVENANCE, threshold)


def test_importing_the_module_does_not_import_tensorflow():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, tf_reorder.policy; "
         "print(sorted(m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules))"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- load_policy ---------------------------------------------------------------------


@pytest.mark.parametrize("target", [None, "any"])
def test_any_is_no_policy_and_reads_no_file(tmp_path, target):
    assert load_policy(target, path=tmp_path / "missing.json") is None


def test_a_policy_passes_through(path):
    loaded = load_policy("tflite", path=path)
    assert load_policy(loaded) is loaded
    assert load_policy(loaded, path="/nonexistent.json") is loaded


def test_round_trip_through_the_file(path):
    data = json.loads(open(path).read())
    for runtime, families in data["runtimes"].items():
        loaded = load_policy(runtime, path=path)
        assert loaded.target == runtime
        assert list(loaded.decisions) == [runtime]
        assert loaded.decisions[runtime] == {
            family: Decision(e["move"], e["ratio"], e["q1"], e["q3"], e["model"])
            for family, e in families.items()}
        assert loaded.provenance == data["provenance"]
    everything = load_policy("all", path=path)
    assert list(everything.decisions) == ["tflite", "tf", "xla"]


def test_loaded_twice_is_equal_and_hashable(path):
    a, b = load_policy("tf", path=path), load_policy("tf", path=path)
    assert a == b and hash(a) == hash(b)
    assert a != load_policy("xla", path=path)


def test_targets_lists_the_runtimes_in_the_file(path):
    assert policy.targets(path) == ("any", "all", "tflite", "tf", "xla")


def test_unknown_target_lists_the_known_ones(path):
    with pytest.raises(ReorderError) as raised:
        load_policy("tflit", path=path)
    message = str(raised.value)
    assert message == (f"unknown target 'tflit'; known targets: any, all, tflite, tf, xla "
                       f"(runtime policy {path})")


def test_a_runtime_the_file_did_not_measure(path):
    with pytest.raises(ReorderError, match="has no measurements for 'jax'; known targets: "
                                           "any, all, tflite, tf, xla"):
        load_policy("jax", path=path)


@pytest.mark.parametrize("target", [3, ["tflite"], b"tflite"])
def test_target_of_the_wrong_type(path, target):
    with pytest.raises(ReorderError, match="target must be a runtime name or a Policy"):
        load_policy(target, path=path)


VALID = json.loads(json.dumps(policy_from_measurements(CELLS, PROVENANCE)))


def _without(*keys):
    data = copy.deepcopy(VALID)
    inner = data
    for key in keys[:-1]:
        inner = inner[key]
    del inner[keys[-1]]
    return data


def _with(value, *keys):
    data = copy.deepcopy(VALID)
    inner = data
    for key in keys[:-1]:
        inner = inner[key]
    inner[keys[-1]] = value
    return data


BAD_FILES = {
    "not_json": ("{format: 1", "not valid JSON"),
    "empty": ("", "not valid JSON"),
    "truncated": (json.dumps(VALID)[:-20], "not valid JSON"),
    "binary": (b"\xff\xfe\x00garbage", "cannot read it"),
    "a_list": ([VALID], "not a runtime policy (expected a JSON object, got an array)"),
    "no_format": (_without("format"), "not a runtime policy (no 'format' field)"),
    "format_2": (_with(2, "format"), "format 2 is not supported (this tf_reorder reads "
                 "format 1)"),
    "format_true": (_with(True, "format"), "format True is not supported"),
    "no_provenance": (_without("provenance"), "provenance must be a JSON object, got nothing"),
    "no_date": (_without("provenance", "date"), "provenance.date must be a non-empty string"),
    "versions_list": (_with([], "provenance", "versions"),
                      "provenance.versions must be a JSON object, got an array"),
    "no_runtimes": (_without("runtimes"), "runtimes must be a JSON object, got nothing"),
    "empty_runtimes": (_with({}, "runtimes"), "runtimes is empty"),
    "runtime_called_all": (_with({"relu": VALID["runtimes"]["tf"]["relu"]}, "runtimes", "all"),
                           "'all' is a target, not a runtime name"),
    "families_list": (_with([], "runtimes", "tf"), "runtimes.tf must be a JSON object"),
    "move_string": (_with("yes", "runtimes", "tf", "relu", "move"),
                    "runtimes.tf.relu.move must be true or false"),
    "no_ratio": (_without("runtimes", "tflite", "sigmoid", "ratio"),
                 "runtimes.tflite.sigmoid.ratio must be a finite number, got None"),
    "ratio_string": (_with("0.8", "runtimes", "tflite", "sigmoid", "ratio"),
                     "runtimes.tflite.sigmoid.ratio must be a finite number, got '0.8'"),
    "ratio_zero": (_with(0, "runtimes", "tflite", "sigmoid", "ratio"),
                   "runtimes.tflite.sigmoid.ratio must be positive"),
    "no_model": (_without("runtimes", "xla", "elu", "model"),
                 "runtimes.xla.elu.model must be a string"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_policy_files_are_one_clear_line(tmp_path, name):
    content, message = BAD_FILES[name]
    target = tmp_path / f"{name}.json"
    if isinstance(content, bytes):
        target.write_bytes(content)
    elif isinstance(content, str):
        target.write_text(content)
    else:
        target.write_text(json.dumps(content))
    with pytest.raises(ReorderError) as raised:
        load_policy("tf", path=target)
    text = str(raised.value)
    assert text.startswith(f"runtime policy {target}: "), text
    assert message in text, text
    assert "\n" not in text


def test_missing_file(tmp_path):
    missing = tmp_path / "nowhere" / "runtime_policy.json"
    with pytest.raises(ReorderError,
                       match=f"^runtime policy {re.escape(str(missing))}: no such file$"):
        load_policy("tflite", path=missing)


def test_a_directory_is_not_a_policy_file(tmp_path):
    with pytest.raises(ReorderError,
                       match=f"^runtime policy {re.escape(str(tmp_path))}: cannot read it"):
        load_policy("tflite", path=tmp_path)


def test_extra_keys_are_allowed(tmp_path):
    data = _with("rev 1234", "provenance", "git")
    data["runtimes"]["tf"]["relu"]["p_value"] = 0.01
    data["comment"] = "hand-checked"
    loaded = load_policy("tf", path=write_json(tmp_path, data))
    assert loaded.decide("relu").ok and loaded.provenance["git"] == "rev 1234"


# -- decisions and labels -----------------------------------------------------------------


def test_decide_yes_where_measured_faster(path):
    assert load_policy("tflite", path=path).decide("sigmoid") == algebra.Verdict(True, "")
    assert load_policy("tf", path=path).decide("relu") == algebra.YES


def test_decide_no_where_measured_slower(path):
    verdict = load_policy("tflite", path=path).decide("relu")
    assert not verdict
    assert verdict.reason == RELU_ON_TFLITE


def test_decide_no_where_not_measured(path):
    verdict = load_policy("tflite", path=path).decide("relu6")
    assert not verdict.ok
    assert verdict.reason == ("no measurement of relu6 on tflite in the runtime policy "
                              "(measured 2026-11-23)")


def test_all_needs_every_runtime(path):
    everything = load_policy("all", path=path)
    assert everything.decide("elu").ok  # faster on tflite, tf and xla
    # relu: tflite (first in the file) refuses it, although tf and xla would move it.
    assert everything.decide("relu").reason == (
        "relu measured 1.04x slower on tflite (resnet50; policy all, measured 2026-11-23)")
    # sigmoid: tflite moves it, tf (second) refuses it.
    assert everything.decide("sigmoid").reason == (
        "sigmoid measured 1.12x slower on tf (vgg_style; policy all, measured 2026-11-23)")
    # tanh: measured on tf only; tflite, the first runtime, lacks it.
    assert everything.decide("tanh").reason == (
        "no measurement of tanh on tflite in the runtime policy (measured 2026-11-23)")
    assert load_policy("tf", path=path).decide("tanh").ok


def test_a_ratio_close_to_one_keeps_its_digits(tmp_path):
    path = write_policy(tmp_path / "p.json", [cell("tf", "relu", 1.004)], threshold=1.0)
    assert load_policy("tf", path=path).decide("relu").reason.startswith(
        "relu measured 1.004x slower on tf")


def test_not_faster_enough_under_a_strict_threshold(tmp_path):
    path = write_policy(tmp_path / "p.json", [cell("tf", "relu", 0.97)], threshold=0.95)
    assert load_policy("tf", path=path).decide("relu").reason == (
        "relu measured 0.97x on tf, not a clear gain (vgg_style; policy tf, measured 2026-11-23)")


def test_labels(path):
    for target in ("tflite", "tf", "all"):
        assert load_policy(target, path=path).label == LABELS[target]
    assert Policy("any", {}, {}).label == "any"
    without_tf = Policy("tf", {"date": "2026-11-23", "versions": {}}, {})
    assert without_tf.label == "tf (measured 2026-11-23)"


def test_the_any_policy_allows_everything():
    assert Policy("any", {}, {}).decide("anything") == algebra.YES


def test_policy_is_frozen(path):
    loaded = load_policy("tf", path=path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.target = "xla"


# -- the packaged policy ---------------------------------------------------------------------


def test_the_packaged_policy():
    if not os.path.exists(policy.PACKAGED_POLICY):
        pytest.skip(f"no packaged runtime policy at {policy.PACKAGED_POLICY} yet "
                    "(benchmarks/bench_runtimes.py writes it)")
    with open(policy.PACKAGED_POLICY, encoding="utf-8") as f:
        data = json.load(f)
    provenance = data["provenance"]
    assert provenance["command"] and provenance["date"]
    assert provenance["versions"]["tensorflow"]
    threshold = provenance["threshold"]
    targets = policy.targets()
    assert targets[:2] == ("any", "all") and set(targets[2:]) == set(data["runtimes"])
    assert set(targets[2:]) <= set(policy.RUNTIMES), "a runtime the benchmark does not name"
    for runtime, families in data["runtimes"].items():
        loaded = load_policy(runtime)
        assert loaded.label.startswith(f"{runtime} (measured {provenance['date']}")
        assert families, f"{runtime} has no measurements"
        for family, entry in families.items():
            assert entry["move"] == (entry["ratio"] <= threshold), (runtime, family, entry)
            assert loaded.decide(family).ok == entry["move"]
    assert load_policy("all").target == "all"


# ---------------------------------------------------------------------------
# Re-measuring one family: update_policy.

UPDATE = policy_from_measurements(
    [cell("tflite", "batch_normalization", 1.10, "xception_bn"),
     cell("tf", "batch_normalization", 0.95, "cifar_bn"),
     cell("tflite", "sigmoid", 0.70)],
    {**PROVENANCE, "command": "python benchmarks/bench_runtimes.py --models=cifar_bn",
     "date": "2026-12-04"})


def test_update_replaces_only_what_it_measured():
    base = copy.deepcopy(VALID)
    data = policy.update_policy(base, UPDATE)
    assert base == VALID  # not changed
    assert data["runtimes"]["tflite"]["relu"] == VALID["runtimes"]["tflite"]["relu"]
    assert data["runtimes"]["tflite"]["sigmoid"]["ratio"] == 0.70
    assert data["runtimes"]["tflite"]["sigmoid"]["measured"] == "2026-12-04"
    assert data["runtimes"]["tflite"]["batch_normalization"]["move"] is False
    assert data["runtimes"]["tf"]["batch_normalization"]["move"] is True
    assert data["provenance"]["date"] == "2026-11-23"
    assert data["provenance"]["updates"] == [{
        "command": "python benchmarks/bench_runtimes.py --models=cifar_bn",
        "date": "2026-12-04", "families": ["batch_normalization", "sigmoid"]}]
    again = policy.update_policy(data, UPDATE)
    assert len(again["provenance"]["updates"]) == 2


def test_an_updated_entry_gives_its_own_date(tmp_path):
    path = write_json(tmp_path, policy.update_policy(VALID, UPDATE))
    tflite = load_policy("tflite", path=path)
    assert tflite.decide("batch_normalization").reason == (
        "batch_normalization measured 1.10x slower on tflite (xception_bn; policy tflite, "
        "measured 2026-12-04)")
    assert tflite.decide("relu").reason == RELU_ON_TFLITE  # the base's date
    assert tflite.decisions["tflite"]["relu"].measured is None


def test_update_needs_the_same_threshold():
    strict = policy_from_measurements(CELLS, PROVENANCE, threshold=1.0)
    with pytest.raises(ReorderError, match="threshold 1.01 is not the update's 1.0"):
        policy.update_policy(VALID, strict)


def test_a_bad_measured_date_is_named(tmp_path):
    data = copy.deepcopy(VALID)
    data["runtimes"]["tflite"]["relu"]["measured"] = 20261204
    with pytest.raises(ReorderError, match=r"runtimes.tflite.relu.measured must be a "
                       r"non-empty string"):
        load_policy("tflite", path=write_json(tmp_path, data))
