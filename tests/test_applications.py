"""End to end on keras.applications: the sites found, the outputs, the weights, the I/O.

Every model is built once per module (weights=None, default input shape) and
reordered once; the tests then look at the pair. All these nets use relu or
relu6, so the outputs must be bitwise equal.

Layer names that Keras generates (``activation_2``, ``max_pooling2d``, ...) depend
on what else the process built first, so the tests name such layers by their
position in the model, never by a literal generated name.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import keras
import numpy as np
import pytest
from keras import layers

import tf_reorder
from tf_reorder import verify

AVERAGES = "averages"  # the reason given for an average pool
CONSUMERS = "consumers"  # the reason given for an activation with other consumers
INFERENCE = "inference=True would move it"  # a batch normalization, in the default mode


@dataclasses.dataclass
class Case:
    original: Any
    reordered: Any
    report: tf_reorder.Report
    config_before: str
    config_after: str
    weights_before: list[bytes]
    weights_after: list[bytes]


def _config_json(model: Any) -> str:
    return json.dumps(model.get_config(), sort_keys=True, default=str)


def _weight_bytes(model: Any) -> list[bytes]:
    return [np.asarray(w).tobytes() for w in model.get_weights()]


def _reordered(model: Any) -> Case:
    config, weights = _config_json(model), _weight_bytes(model)
    new, report = tf_reorder.reorder(model, return_report=True)
    return Case(model, new, report, config, _config_json(model), weights,
                _weight_bytes(model))


def _build(name: str, **kwargs: Any) -> Case:
    return _reordered(getattr(keras.applications, name)(weights=None, **kwargs))


# One fixture per model, so a test builds only what it needs and each model once.
@pytest.fixture(scope="module")
def vgg16():
    return _build("VGG16")


@pytest.fixture(scope="module")
def vgg19():
    return _build("VGG19")


@pytest.fixture(scope="module")
def resnet50():
    return _build("ResNet50")


@pytest.fixture(scope="module")
def densenet121():
    return _build("DenseNet121")


@pytest.fixture(scope="module")
def inception_v3():
    return _build("InceptionV3")


@pytest.fixture(scope="module")
def inception_resnet_v2():
    return _build("InceptionResNetV2")


@pytest.fixture(scope="module")
def mobilenet_v2():
    return _build("MobileNetV2")


@pytest.fixture(scope="module")
def vgg16_max_pooling():
    return _build("VGG16", include_top=False, pooling="max")


FIXTURES = ["vgg16", "vgg19", "resnet50", "densenet121", "inception_v3",
            "inception_resnet_v2", "mobilenet_v2"]


def _inputs(model: Any, seed: int = 0) -> np.ndarray:
    """A random batch of 1; an unknown spatial size (include_top=False) becomes 96."""
    shape = [1] + [96 if d is None else d for d in model.inputs[0].shape[1:]]
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _activation_layers(model: Any) -> list[Any]:
    return [layer for layer in model.layers if isinstance(layer, layers.Activation)]


def _stem_activations(model: Any) -> list[str]:
    """InceptionV3 and InceptionResNetV2: the relus of conv 3 and conv 5 of the stem.

    Their stems are conv, conv, conv, maxpool, conv, conv, maxpool; each conv is
    Conv2D, BatchNormalization, Activation('relu') with generated names.
    """
    acts = _activation_layers(model)
    return [acts[2].name, acts[4].name]


def _stem_batch_norms(model: Any) -> dict[str, str]:
    """InceptionV3 and InceptionResNetV2: the batch norms before the stem's relus that
    move, refused in the default mode."""
    norms = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    return {norms[2].name: INFERENCE, norms[4].name: INFERENCE}


# name -> (moved, candidates, the moved activations, {kept activation: reason keyword});
# the kept ones may be a function of the model (for generated names).
EXPECTED = {
    "vgg16": (5, 5, lambda m: ["block1_conv2", "block2_conv2", "block3_conv3",
                               "block4_conv3", "block5_conv3"], {}),
    "vgg19": (5, 5, lambda m: ["block1_conv2", "block2_conv2", "block3_conv4",
                               "block4_conv4", "block5_conv4"], {}),
    "resnet50": (1, 3, lambda m: ["conv1_relu"],
                 {"conv1_bn": INFERENCE, "conv5_block3_out": AVERAGES}),
    "densenet121": (1, 3, lambda m: ["conv1_relu"], {"conv1_bn": INFERENCE, "relu": AVERAGES}),
    "inception_v3": (2, 4, _stem_activations, _stem_batch_norms),
    "inception_resnet_v2": (2, 7, _stem_activations,
                            lambda m: {**_stem_batch_norms(m), "block35_10_ac": CONSUMERS,
                                       "block17_20_ac": CONSUMERS, "conv_7b_ac": AVERAGES}),
    "mobilenet_v2": (0, 1, lambda m: [], {"out_relu": AVERAGES}),
}


@pytest.mark.parametrize("name", FIXTURES)
def test_sites(name, request):
    case = request.getfixturevalue(name)
    moved, candidates, moved_names, kept = EXPECTED[name]
    kept = kept(case.original) if callable(kept) else kept
    report = case.report
    assert len(report.sites) == candidates, str(report)
    assert len(report.moved) == moved, str(report)
    assert [s.activation for s in report.moved] == moved_names(case.original), str(report)
    assert {s.activation: s.reason for s in report.skipped}.keys() == kept.keys(), str(report)
    for site in report.skipped:
        assert kept[site.activation] in site.reason, str(report)
    for site in report.moved:
        assert site.reason == ""
        assert site.exact
        assert site.elements_after < site.elements_before
        # The landing pool is a max pool of the original model.
        pool = case.original.get_layer(site.pool)
        assert isinstance(pool, (layers.MaxPooling2D, layers.GlobalMaxPooling2D)), site


@pytest.mark.parametrize("name", FIXTURES + ["vgg16_max_pooling"])
def test_caller_model_untouched(name, request):
    case = request.getfixturevalue(name)
    assert case.config_after == case.config_before
    assert case.weights_after == case.weights_before
    # Still unchanged after running both models (they share layers).
    verify.compare_models(case.original, case.reordered, _inputs(case.original, seed=3))
    assert _config_json(case.original) == case.config_before
    assert _weight_bytes(case.original) == case.weights_before


@pytest.mark.parametrize("name", FIXTURES)
def test_outputs_bitwise_equal(name, request):
    case = request.getfixturevalue(name)
    comparison = verify.compare_models(case.original, case.reordered, _inputs(case.original))
    assert comparison.bitwise, comparison


@pytest.mark.parametrize("name", FIXTURES + ["vgg16_max_pooling"])
def test_weights_identical(name, request):
    case = request.getfixturevalue(name)
    before = case.original.get_weights()
    after = case.reordered.get_weights()
    assert len(after) == len(before)
    for a, b in zip(before, after):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert a.tobytes() == b.tobytes()


def _io(model: Any) -> tuple[list, list]:
    def describe(tensors):
        return [(t._keras_history.operation.name, tuple(t.shape), str(t.dtype))
                for t in tensors]
    return describe(model.inputs), describe(model.outputs)


@pytest.mark.parametrize("name", FIXTURES + ["vgg16_max_pooling"])
def test_same_inputs_and_outputs(name, request):
    case = request.getfixturevalue(name)
    assert _io(case.reordered) == _io(case.original)
    assert case.reordered.output_names == case.original.output_names
    assert case.reordered.name == case.original.name


def test_vgg16_activation_elements(vgg16):
    # VGG16 at 224x224: the relu fused into the last conv of each block feeds a
    # 2x2/2 max pool. Computed from the architecture, not from the report.
    side, blocks = 224, [(64, "block1_conv2"), (128, "block2_conv2"),
                         (256, "block3_conv3"), (512, "block4_conv3"),
                         (512, "block5_conv3")]
    expected = {}
    for channels, conv in blocks:
        expected[conv] = (side * side * channels, (side // 2) * (side // 2) * channels)
        side //= 2
    assert expected["block1_conv2"] == (3_211_264, 802_816)
    assert expected["block5_conv3"] == (14 * 14 * 512, 7 * 7 * 512)
    sites = {s.activation: (s.elements_before, s.elements_after) for s in vgg16.report.sites}
    assert sites == expected
    before = sum(b for b, _ in expected.values())
    after = sum(a for _, a in expected.values())
    assert vgg16.report.elements_before == before == 6_121_472
    assert vgg16.report.elements_after == after == before // 4
    assert vgg16.report.elements_saved == before - after


def test_vgg16_rewritten_structure(vgg16):
    # Each split conv lost its relu; an Activation('relu') follows each pool.
    new = vgg16.reordered
    names = [layer.name for layer in new.layers]
    for i in range(1, 6):
        pool = names.index(f"block{i}_pool")
        follower = new.layers[pool + 1]
        assert isinstance(follower, layers.Activation), names
        assert keras.activations.serialize(follower.activation) == "relu"
        conv = new.layers[pool - 1]
        assert isinstance(conv, layers.Conv2D)
        assert keras.activations.serialize(conv.activation) == "linear"
        # The original's conv keeps its relu.
        assert keras.activations.serialize(
            vgg16.original.get_layer(conv.name).activation) == "relu"


def test_resnet50_moves_through_zero_padding(resnet50):
    site = resnet50.report.moved[0]
    assert (site.activation, site.between, site.pool) == ("conv1_relu", ("pool1_pad",),
                                                          "pool1_pool")
    assert isinstance(resnet50.original.get_layer("pool1_pad"), layers.ZeroPadding2D)
    # conv1_relu runs on 112x112x64; pool1 (3x3/2 after padding by 1) gives 56x56x64.
    assert (site.elements_before, site.elements_after) == (112 * 112 * 64, 56 * 56 * 64)


def test_densenet121_moves_through_zero_padding(densenet121):
    (site,) = densenet121.report.moved
    assert site.pool == "pool1"
    (padding,) = site.between
    assert isinstance(densenet121.original.get_layer(padding), layers.ZeroPadding2D)
    assert (site.elements_before, site.elements_after) == (112 * 112 * 64, 56 * 56 * 64)


def test_vgg16_global_max_pooling(vgg16_max_pooling):
    case = vgg16_max_pooling
    report = case.report
    assert len(report.sites) == len(report.moved) == 5, str(report)
    last = report.sites[-1]
    gmp = case.original.get_layer(last.pool)
    assert isinstance(gmp, layers.GlobalMaxPooling2D)
    # The last relu travels through block5_pool and then the global max pool.
    assert (last.activation, last.between) == ("block5_conv3", ("block5_pool",))
    # The input size is unknown, so no element counts; the move is shown to remove work
    # for every input size instead.
    assert last.elements_before is None and last.elements_after is None
    assert any("input size unknown" in note for note in last.notes)
    # The output keeps its name: the relu after the pool takes the pool's name.
    assert case.reordered.output_names == case.original.output_names == [gmp.name]
    out_layer = case.reordered.outputs[0]._keras_history.operation
    assert isinstance(out_layer, layers.Activation) and out_layer.name == gmp.name
    assert keras.activations.serialize(out_layer.activation) == "relu"
    # The default input shape is (None, None, 3): fed as 96x96 (3x3 after block5_pool).
    comparison = verify.compare_models(case.original, case.reordered, _inputs(case.original))
    assert comparison.bitwise, comparison


# -- Xception in inference mode: its BatchNormalization -> MaxPooling2D sites ------------

XCEPTION_BN_SITES = [(f"block{b}_sepconv2_bn", f"block{b}_pool") for b in (2, 3, 4, 13)]


def _trained_batch_norms(model: Any, seed: int = 0) -> None:
    """Per-channel statistics and scales that differ (all scales > 0), as after training."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            size = gamma.shape
            layer.set_weights([rng.uniform(0.5, 1.5, size).astype("float32"),
                               rng.normal(0, 0.1, size).astype("float32"),
                               rng.normal(0, 0.1, size).astype("float32"),
                               rng.uniform(0.5, 1.5, size).astype("float32")])


@pytest.fixture(scope="module")
def xception():
    """Xception (logits) reordered in the default mode and in inference mode."""
    model = keras.applications.Xception(weights=None, classifier_activation=None)
    _trained_batch_norms(model)
    config, weights = _config_json(model), _weight_bytes(model)
    _, default_report = tf_reorder.reorder(model, return_report=True)
    new, report = tf_reorder.reorder(model, return_report=True, inference=True)
    return Case(model, new, report, config, _config_json(model), weights,
                _weight_bytes(model)), default_report


def test_xception_moves_its_four_batch_norms_at_inference(xception):
    case, _ = xception
    assert [(s.activation, s.pool) for s in case.report.moved] == XCEPTION_BN_SITES, \
        str(case.report)
    for site in case.report.moved:
        assert site.between == () and site.elements_after * 3 < site.elements_before
        assert site.function.startswith("BatchNormalization(min scale=")
        assert any("inference only" in note for note in site.notes), site
    (kept,) = case.report.skipped
    assert AVERAGES in kept.reason
    assert case.config_after == case.config_before
    assert case.weights_after == case.weights_before


def test_xception_outputs_within_tolerance_and_after_a_round_trip(xception, tmp_path):
    case, _ = xception
    x = _inputs(case.original)
    comparison = verify.compare_models(case.original, case.reordered, x)
    assert comparison.close, comparison
    expected = np.asarray(case.original(x, training=False))
    np.testing.assert_allclose(np.asarray(case.reordered(x, training=False)), expected,
                               rtol=1e-6, atol=1e-6)
    path = tmp_path / "xception.keras"
    case.reordered.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert np.asarray(loaded(x)).tobytes() == np.asarray(case.reordered(x)).tobytes()
    assert sorted(_weight_bytes(loaded)) == sorted(case.weights_before)


def test_xception_default_mode_names_the_inference_mode(xception):
    _, report = xception
    assert not report.moved
    refused = {s.activation: s.reason for s in report.sites}
    for bn, _ in XCEPTION_BN_SITES:
        assert "inference=True would move it" in refused[bn], str(report)
