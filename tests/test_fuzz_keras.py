"""Differential fuzzing of the Keras pass: 300 random models with fixed seeds.

Each seed is one model from `fuzz_keras_models` (Sequential, functional and nested
models; every producer, activation and pool kind; mixed_float16; runtime targets),
checked by `fuzz_keras_checks.check_model`: outputs, untouched input, weights, names,
the report against an independent count, the max and min reductions a moved negative
flipped, idempotence and a `.keras` round trip. Every
fifteenth seed runs again on the JAX backend, in one child process. A soak over thousands of
seeds: ``python tools/fuzz_soak.py --kind=keras --count=2000``; what it finds becomes a
minimized regression test in tests/regressions/.
"""

import dataclasses
import functools
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import layers

import tf_reorder
import fuzz_keras_checks
import fuzz_keras_models
from fuzz_keras_checks import BITWISE, CLOSE, EQUAL, FuzzFailure, check_pair, compare, predict
from tf_reorder import verify

# Random models put softmax on axes of size 1 now and then, which Keras warns about.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")

SEEDS = range(300)
JAX_SEEDS = SEEDS[::15]  # each costs about 4 s of XLA compilation on JAX
HERE = os.path.dirname(os.path.abspath(__file__))
SOAK = os.path.join(os.path.dirname(HERE), "tools", "fuzz_soak.py")


@functools.lru_cache(maxsize=None)
def _spec(seed):
    return fuzz_keras_models.random_spec(seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_model(seed):
    model, description = fuzz_keras_models.model_of(_spec(seed))
    try:
        fuzz_keras_checks.check_model(model, description)
    except Exception as error:
        error.add_note(str(description))
        raise


def test_jax_backend_share():
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "fuzz_keras_checks.py"), *map(str, JAX_SEEDS)],
        env=env, capture_output=True, text=True, timeout=900, cwd=os.path.dirname(HERE))
    lines = result.stdout.splitlines()
    detail = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-6000:]}"
    assert lines and lines[0].startswith("backend jax,"), detail
    assert [line for line in lines if line.startswith("FAIL")] == [], detail
    assert result.returncode == 0, detail
    assert {int(line.split()[1][len("seed="):]) for line in lines if line.startswith("OK ")} \
        == set(JAX_SEEDS), detail


# -- what the seeds cover --------------------------------------------------------------


def test_the_seeds_cover_every_activation_layer_and_structure():
    features = set().union(*(_spec(seed).features for seed in SEEDS))
    wanted = {f"act:{name}" for name in fuzz_keras_models.ALL_ACTIVATIONS}
    wanted |= {f"layer:{cls}" for classes in fuzz_keras_models.PRODUCERS.values()
               for cls in classes}
    wanted |= {f"layer:{cls}" for classes in fuzz_keras_models.POOLS.values() for cls in classes}
    wanted |= {f"layer:{cls}" for cls in fuzz_keras_models.ACTIVATION_LAYERS}
    wanted |= {f"layer:{cls}" for cls in (
        "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D",
        "Cropping3D", "Reshape", "Flatten", "Permute", "Identity", "Add", "Concatenate",
        "BatchNormalization", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
        "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
        "ActivityRegularization")}
    wanted |= {f"op:{name}" for name in fuzz_keras_models.OP_ACTIVATIONS
               + fuzz_keras_models.OP_STEPS}
    wanted |= {f"target:{t}" for t in ["any", *fuzz_keras_models.TARGETS]}
    wanted |= {"inference:True", "inference:False"}
    wanted |= {"sequential", "functional", "nested_sequential", "nested_functional",
               "nested_twice", "nested_two_deep", "nested_boundary", "shared_layer",
               "second_consumer", "activation_output", "multi_input", "multi_output",
               "inputs_as:dict", "outputs_as:dict", "mixed_float16", "float32_in_mixed",
               "channels_first", "negative:ELU.alpha", "refused_by_keras:LeakyReLU",
               "refused_by_keras:ReLU", "prelu_alpha:negative", "prelu_alpha:mixed",
               "prelu_alpha:zero", "prelu_alpha:positive", "bn_no_center", "bn_no_scale",
               "bn_spatial_axis", "bn_frozen", "bn_gamma:positive", "bn_gamma:mixed",
               "bn_gamma:zero"}
    assert wanted - features == set()


def test_the_first_seeds_cover_min_reductions_flips_clamps_and_indices():
    """The first 60 seeds already hold min reductions, a negative the rules move past
    a reduction (flipping it), a clip, and an argmax or argmin (the first 300: a clip
    into a reduction, and amin)."""
    features = set().union(*(_spec(seed).features for seed in range(60)))
    assert {"op:min", "op:clip", "negative_reduction", "negative_must_move",
            "index_output"} <= features
    assert {"clip_reduction", "op:amin"} <= set().union(*(_spec(seed).features
                                                          for seed in SEEDS))
    assert features & {"op:argmax", "op:argmin"}
    assert any(_spec(seed).must_move for seed in range(60))


def test_every_keras_activation_is_drawn_from():
    exported = {name for name in dir(keras.activations) if not name.startswith("_")
                and name not in ("get", "serialize", "deserialize")}
    # threshold(x, threshold, default_value) needs two more arguments.
    assert exported - set(fuzz_keras_models.ALL_ACTIVATIONS) == {"threshold"}


def test_the_generator_is_a_pure_function_of_the_seed():
    for seed in (3, 41):
        (a, da), (b, db) = fuzz_keras_models.random_model(seed), \
            fuzz_keras_models.random_model(seed)
        assert da == db
        assert fuzz_keras_checks.config_json(a) == fuzz_keras_checks.config_json(b)
        assert fuzz_keras_checks.weight_bytes(a) == fuzz_keras_checks.weight_bytes(b)
    assert fuzz_keras_models.random_model(4)[1].text != fuzz_keras_models.random_model(5)[1].text


# -- the checks themselves fail where they should ---------------------------------------


def _relu_then(pool):
    return keras.Sequential([keras.Input((8, 8, 3)),
                             layers.Conv2D(4, 3, activation="relu", name="conv"),
                             pool], name="model")


def test_checks_catch_an_activation_moved_past_an_average_pool():
    model = _relu_then(layers.AveragePooling2D(2, name="pool"))
    wrong = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3, name="conv"),
                              layers.AveragePooling2D(2, name="pool_pool"),
                              layers.Activation("relu", name="pool")], name="model")
    wrong.set_weights(model.get_weights())
    inputs = verify.random_inputs(model, seed=1)
    with pytest.raises(FuzzFailure, match="outputs differ: output 0 not bitwise equal"):
        check_pair(model, wrong, tf_reorder.plan(model), inputs, predict(model, inputs))


def _negative_then_max():
    inputs = keras.Input((6, 6, 3))
    x = keras.ops.negative(layers.Conv2D(4, 3, name="conv")(inputs))
    return keras.Model(inputs, keras.ops.max(x, axis=(1, 2)), name="model")


def test_checks_catch_a_flip_left_undone(monkeypatch):
    model = _negative_then_max()
    inputs = verify.random_inputs(model, seed=1)
    new, report = tf_reorder.reorder(model, return_report=True)
    assert check_pair(model, new, report, inputs, predict(model, inputs))[0] is EQUAL
    assert fuzz_keras_checks.reduction_counts(new)["Min"] == 1
    from tf_reorder import keras_rebuild
    monkeypatch.setattr(keras_rebuild, "flipped_reduction",
                        lambda op, name: type(op)(axis=op.axis, keepdims=op.keepdims, name=name))
    wrong, report = tf_reorder.reorder(model, return_report=True)
    with pytest.raises(FuzzFailure, match="outputs differ"):
        check_pair(model, wrong, report, inputs, predict(model, inputs))
    with pytest.raises(FuzzFailure, match="reductions: the rewritten model holds "
                       "{'Max': 1, 'Min': 0"):
        fuzz_keras_checks.check_flips(model, wrong, report)


def test_checks_catch_a_negative_kept_where_the_rules_move_it(monkeypatch):
    model = _negative_then_max()
    negative = next(op.name for op in model.operations if type(op).__name__ == "Negative")
    description = fuzz_keras_models.Description(0, "negative -> max", frozenset(), False,
                                                "any", must_move=(negative,))
    fuzz_keras_checks.check_model(model, description)
    from tf_reorder import algebra, keras_vocabulary
    monkeypatch.setattr(keras_vocabulary.algebra, "NEGATIVE", dataclasses.replace(
        algebra.NEGATIVE, monotonicity=algebra.Monotonicity.NOT_MONOTONE))
    with pytest.raises(FuzzFailure, match=f"the rules move '{negative}'"):
        fuzz_keras_checks.check_model(model, description)


def test_checks_catch_a_wrong_element_count():
    model = _relu_then(layers.MaxPooling2D(name="pool"))
    new, report = tf_reorder.reorder(model, return_report=True)
    inputs = verify.random_inputs(model, seed=1)
    expected = predict(model, inputs)
    assert check_pair(model, new, report, inputs, expected)[0] is BITWISE
    (site,) = report.sites
    off_by_one = dataclasses.replace(report, sites=(
        dataclasses.replace(site, elements_after=site.elements_after + 1),))
    with pytest.raises(FuzzFailure, match="the report says 107, the models' shapes say 108"):
        check_pair(model, new, off_by_one, inputs, expected)


def test_activation_elements_counts_fused_and_standalone_activations_per_call():
    inner = keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="tanh"),
                              layers.Activation("relu")], name="inner")
    a, b = keras.Input((6, 6, 2)), keras.Input((6, 6, 2))
    out = layers.Concatenate()([inner(a), inner(b)])
    out = layers.Dense(5, activation="linear")(layers.Flatten()(out))  # linear: no count
    model = keras.Model([a, b], layers.PReLU()(out))
    assert fuzz_keras_checks.activation_elements(model) == 2 * (4 * 4 * 3 * 2) + 5


def test_compare_bounds():
    inf, nan = np.inf, np.nan
    x = np.array([1.0, 0.0, nan, inf], np.float32)
    assert "not bitwise" in compare([x], [np.array([1.0, -0.0, nan, inf], np.float32)], BITWISE)
    assert compare([x], [np.array([1.0, -0.0, nan, inf], np.float32)], EQUAL) == ""
    one_ulp = x.copy()
    one_ulp[0] = np.nextafter(one_ulp[0], np.float32(2))
    assert compare([x], [one_ulp], CLOSE) == ""
    assert "not within equal" in compare([x], [one_ulp], EQUAL)
    off = x.copy()
    off[0] += np.float32(1e-3)
    assert "not within close" in compare([x], [off], CLOSE)
    assert "NaN at different places" in compare(
        [x], [np.array([1.0, 0.0, 0.0, inf], np.float32)], CLOSE)
    assert "inf at different places" in compare(
        [x], [np.array([1.0, 0.0, nan, -inf], np.float32)], CLOSE)
    assert compare([x], [x[:2]], CLOSE) == "output 0: (4,) float32 vs (2,) float32"


def test_bounds_follow_our_own_table():
    mixed = dict(dtype="mixed_float16")
    assert fuzz_keras_checks.bound_for(layers.Activation("relu6")) is BITWISE
    assert fuzz_keras_checks.bound_for(layers.Conv2D(2, 1, activation="sigmoid")) is CLOSE
    assert fuzz_keras_checks.bound_for(layers.LeakyReLU(0.0)) is EQUAL
    assert fuzz_keras_checks.bound_for(layers.ELU(0.0)) is EQUAL
    assert fuzz_keras_checks.bound_for(layers.Activation("tanh", **mixed)) is \
        fuzz_keras_checks.CLOSE_FLOAT16
    assert fuzz_keras_checks.bound_for(layers.Activation("hard_tanh", **mixed)) is BITWISE


# -- the soak tool ----------------------------------------------------------------------


def _soak_module():
    if not os.path.exists(SOAK):
        pytest.skip(f"{SOAK} is not in this tree")
    sys.path.insert(0, os.path.dirname(SOAK))
    try:
        import fuzz_soak
    finally:
        sys.path.remove(os.path.dirname(SOAK))
    return fuzz_soak


def test_soak_reports_every_failing_seed_and_stops_at_the_time_budget():
    fuzz_soak = _soak_module()

    def check(seed):
        if seed % 3 == 0:
            raise ValueError(f"boom {seed}\nmore detail")

    lines = []
    models, seconds, failed = fuzz_soak.soak(check, range(1, 8), None, write=lines.append)
    assert (models, failed) == (7, [3, 6]) and seconds >= 0
    assert lines == ["FAIL seed=3: ValueError: boom 3", "FAIL seed=6: ValueError: boom 6"]
    assert fuzz_soak.soak(check, range(100), 0.0, write=lines.append)[:1] == (0,)
    assert set(fuzz_soak.KINDS) >= {"keras"}


def test_soak_command_line():
    _soak_module()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, SOAK, "--kind=keras", "--count=1", "--seed=7"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.splitlines()[-1].startswith(
        "kind=keras models=1 seconds="), result.stdout
    assert result.stdout.splitlines()[-1].endswith(" failures=0 seeds=7..7"), result.stdout
    bad = subprocess.run([sys.executable, SOAK, "--kind=nope"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode != 0 and "kind" in bad.stderr
