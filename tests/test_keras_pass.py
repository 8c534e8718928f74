"""The Keras front end on hand-built models: every rule moves where valid, and only there."""

import os

import keras
import numpy as np
import pytest
from keras import layers

import tf_reorder
from tf_reorder import algebra, policy, verify
from tf_reorder.keras_vocabulary import describe_activation
from tf_reorder.policy import load_policy
from policy_files import LABELS, RELU_ON_TFLITE, SIGMOID_ON_TF, write_policy
from rewrite_checks import check_rewrite, model_fingerprint, roundtrip

MONOTONE = sorted(n for n, f in algebra.KERAS_ACTIVATIONS.items()
                  if f.monotonicity.keeps_order and f.elementwise and not f.identity)
REFUSED_NAMES = ["silu", "gelu", "mish", "hard_silu", "softmax", "log_softmax"]


def seq(input_shape, *stack, name=None):
    return keras.Sequential([keras.Input(input_shape), *stack], name=name)


def exact(name):
    return algebra.KERAS_ACTIVATIONS[name].exact


# -- activations -------------------------------------------------------------


@pytest.mark.parametrize("name", MONOTONE)
def test_fused_monotone_activation_moves(name):
    model = seq((12, 12, 3), layers.Conv2D(4, 3, activation=name), layers.MaxPooling2D())
    new, report = check_rewrite(model, moved=1, exact=exact(name))
    (site,) = report.sites
    assert site.fused and site.function == name
    assert (site.elements_before, site.elements_after) == (10 * 10 * 4, 5 * 5 * 4)
    conv = new.layers[0]
    assert keras.activations.serialize(conv.activation) == "linear"
    assert [type(layer).__name__ for layer in new.layers] == ["Conv2D", "MaxPooling2D",
                                                               "Activation"]


@pytest.mark.parametrize("name", MONOTONE)
def test_standalone_activation_layer_moves(name):
    model = seq((12, 12, 3), layers.Conv2D(4, 3), layers.Activation(name, name="act"),
                layers.MaxPooling2D(name="pool"))
    new, _ = check_rewrite(model, moved=1, exact=exact(name))
    # The pool's output is the model output, so the activation after it takes the
    # pool's name (the output name stays) and the pool is a renamed copy.
    assert [(type(layer).__name__, layer.name) for layer in new.layers][-2:] == [
        ("MaxPooling2D", "pool_pool"), ("Activation", "pool")]


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_non_monotone_or_non_elementwise_activation_is_refused(name):
    model = seq((12, 12, 3), layers.Conv2D(4, 3, activation=name), layers.MaxPooling2D())
    _, report = check_rewrite(model, moved=0)
    (site,) = report.sites
    assert not site.moved
    assert ("not monotone" in site.reason) or ("not elementwise" in site.reason)


def test_unknown_callable_is_refused_and_registration_moves_it():
    def scaled_tanh(x):
        return 1.7 * keras.ops.tanh(x)

    model = seq((12, 12, 3), layers.Conv2D(4, 3, activation=scaled_tanh), layers.MaxPooling2D())
    _, report = check_rewrite(model, moved=0)
    assert "unknown" in report.sites[0].reason and "register_monotone" in report.sites[0].reason
    tf_reorder.register_monotone(scaled_tanh, zero_at_zero=True)
    try:
        check_rewrite(model, moved=1, exact=False)
    finally:
        tf_reorder.unregister_monotone(scaled_tanh)
    check_rewrite(model, moved=0)


def _clamp(x):  # not registered with Keras: no config can name it
    return keras.ops.minimum(keras.ops.maximum(x, 0.0), 6.0)


def _keep(weights):
    return weights


@pytest.mark.parametrize("position", ["", "output"])
def test_registered_monotone_function_in_an_activation_layer_moves(position):
    # Keras cannot rebuild the layer from its config (it cannot find `_clamp`); the
    # moved layer holds the function itself. As an output, the activation is a new layer
    # (it takes the pool's name); inside, the same layer moves.
    tail = [layers.Flatten(), layers.Dense(3)] if position != "output" else []
    model = seq((8, 8, 3), layers.Conv2D(4, 3), layers.Activation(_clamp, name="act"),
                layers.MaxPooling2D(name="pool"), *tail)
    tf_reorder.register_monotone(_clamp, zero_at_zero=True, exact=True)
    try:
        new, _ = check_rewrite(model, moved=1)
    finally:
        tf_reorder.unregister_monotone(_clamp)
    (activation,) = [layer for layer in new.layers if isinstance(layer, layers.Activation)]
    assert activation.activation is _clamp


def test_unregistered_functions_in_a_changed_layers_config_are_kept():
    # The producer that loses its activation, and a PReLU that moves, are rebuilt with
    # the regularizer and constraint functions they hold.
    regularizer = keras.regularizers.L2(0.01)
    model = seq((8, 8, 3),
                layers.Conv2D(4, 3, activation="relu", kernel_constraint=_keep,
                              kernel_regularizer=regularizer, name="conv"),
                layers.MaxPooling2D(name="pool"), layers.Conv2D(4, 1, name="conv2"),
                layers.PReLU(shared_axes=[1, 2], alpha_constraint=_keep,
                             alpha_initializer="ones", name="prelu"),
                layers.MaxPooling2D(name="pool2"), layers.Flatten())
    new, _ = check_rewrite(model, moved=2)
    by_name = {layer.name: layer for layer in new.layers}
    conv = next(layer for layer in new.layers if isinstance(layer, layers.Conv2D)
                and layer.kernel_constraint is _keep)
    assert conv is not model.get_layer("conv")
    assert conv.kernel_regularizer is regularizer
    assert keras.activations.serialize(conv.activation) == "linear"
    prelu = next(layer for layer in new.layers if isinstance(layer, layers.PReLU))
    assert prelu.alpha_constraint is _keep and "prelu" in by_name


@pytest.mark.parametrize("kwargs, moves", [
    ({}, True),
    ({"max_value": 6.0}, True),
    ({"negative_slope": 0.1}, True),
    ({"threshold": 0.5}, True),
    ({"max_value": 2.0, "negative_slope": 0.05, "threshold": 0.25}, True),
])
def test_relu_layer_parameters(kwargs, moves):
    model = seq((12, 12, 3), layers.Conv2D(4, 3), layers.ReLU(**kwargs), layers.MaxPooling2D())
    check_rewrite(model, moved=int(moves), exact=True)


@pytest.mark.parametrize("slope", [0.0, 0.3, 1.0])
def test_leaky_relu_layer(slope):
    model = seq((12, 12, 3), layers.Conv2D(4, 3), layers.LeakyReLU(negative_slope=slope),
                layers.MaxPooling2D())
    check_rewrite(model, moved=1, exact=True)


def test_negative_slope_is_refused_and_really_breaks_the_identity():
    # Keras' LeakyReLU layer rejects a negative slope; the function accepts one.
    def negative_leaky(x):
        return keras.activations.leaky_relu(x, negative_slope=-0.5)

    model = seq((12, 12, 3), layers.Conv2D(4, 3, activation=negative_leaky),
                layers.MaxPooling2D())
    check_rewrite(model, moved=0)
    x = keras.ops.convert_to_tensor(np.array([[[[-3.0], [1.0]], [[0.5], [-0.1]]]], "float32"))
    pool = layers.MaxPooling2D()
    assert not np.array_equal(np.asarray(pool(negative_leaky(x))),
                              np.asarray(negative_leaky(pool(x))))


@pytest.mark.parametrize("alpha, moves", [(1.0, True), (0.0, True), (-1.0, False)])
def test_elu_layer_sign_of_alpha(alpha, moves):
    model = seq((12, 12, 3), layers.Conv2D(4, 3), layers.ELU(alpha=alpha), layers.MaxPooling2D())
    check_rewrite(model, moved=int(moves), exact=alpha == 0.0)


def _prelu_model(shared_axes, alpha, pool):
    model = seq((12, 12, 3), layers.Conv2D(4, 3),
                layers.PReLU(shared_axes=shared_axes, name="prelu"), pool)
    prelu = model.get_layer("prelu")
    rng = np.random.default_rng(1)
    prelu.alpha.assign(alpha(rng, tuple(prelu.alpha.shape)).astype("float32"))
    return model


@pytest.mark.parametrize("pool", [layers.MaxPooling2D, layers.GlobalMaxPooling2D,
                                  lambda: layers.GlobalMaxPooling2D(keepdims=True)])
def test_prelu_shared_over_pooled_axes_with_non_negative_alpha_moves(pool):
    model = _prelu_model([1, 2], lambda rng, s: rng.uniform(0, 1, s), pool())
    _, report = check_rewrite(model, moved=1, exact=True)
    assert any("trained weights" in n for n in report.sites[0].notes)


def test_prelu_with_a_negative_alpha_is_refused():
    model = _prelu_model([1, 2], lambda rng, s: rng.uniform(-1, 1, s), layers.MaxPooling2D())
    _, report = check_rewrite(model, moved=0)
    assert "not monotone" in report.sites[0].reason


def test_prelu_with_one_alpha_per_position_is_refused():
    model = _prelu_model(None, lambda rng, s: rng.uniform(0, 1, s), layers.MaxPooling2D())
    _, report = check_rewrite(model, moved=0)
    assert "different function at different positions" in report.sites[0].reason


def test_prelu_per_position_would_really_change_outputs():
    x = np.array([[[[-1.0], [-4.0]], [[-3.0], [-2.0]]]], "float32")
    alpha = np.array([[[1.0], [0.1]], [[1.0], [1.0]]], "float32")
    prelu = lambda v: np.where(v >= 0, v, alpha[: v.shape[1], : v.shape[2]] * v)  # noqa: E731
    pooled_first = prelu(x.max(axis=(1, 2), keepdims=True))
    activated_first = prelu(x).max(axis=(1, 2), keepdims=True)
    assert not np.array_equal(pooled_first, activated_first)


# -- producers -----------------------------------------------------------------

PRODUCERS = [
    ("Conv1D", (16, 3), lambda a: layers.Conv1D(4, 3, activation=a), layers.MaxPooling1D),
    ("Conv2D", (12, 12, 3), lambda a: layers.Conv2D(4, 3, activation=a), layers.MaxPooling2D),
    ("Conv3D", (6, 6, 6, 2), lambda a: layers.Conv3D(3, 3, activation=a), layers.MaxPooling3D),
    ("DepthwiseConv1D", (16, 3), lambda a: layers.DepthwiseConv1D(3, activation=a),
     layers.MaxPooling1D),
    ("DepthwiseConv2D", (12, 12, 3), lambda a: layers.DepthwiseConv2D(3, activation=a),
     layers.MaxPooling2D),
    ("SeparableConv1D", (16, 3), lambda a: layers.SeparableConv1D(4, 3, activation=a),
     layers.MaxPooling1D),
    ("SeparableConv2D", (12, 12, 3), lambda a: layers.SeparableConv2D(4, 3, activation=a),
     layers.MaxPooling2D),
    ("Conv1DTranspose", (8, 3), lambda a: layers.Conv1DTranspose(4, 3, activation=a),
     layers.MaxPooling1D),
    ("Conv2DTranspose", (6, 6, 3), lambda a: layers.Conv2DTranspose(4, 3, activation=a),
     layers.MaxPooling2D),
    ("Conv3DTranspose", (4, 4, 4, 2), lambda a: layers.Conv3DTranspose(3, 3, activation=a),
     layers.MaxPooling3D),
    ("Dense", (16, 5), lambda a: layers.Dense(6, activation=a), layers.MaxPooling1D),
    ("EinsumDense", (16, 5),
     lambda a: layers.EinsumDense("btc,cd->btd", (16, 6), bias_axes="d", activation=a),
     layers.MaxPooling1D),
]


@pytest.mark.parametrize("kind, shape, make, pool", PRODUCERS, ids=[p[0] for p in PRODUCERS])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_every_producer_loses_only_its_activation(kind, shape, make, pool, activation):
    producer = make(activation)
    model = seq(shape, producer, pool())
    new, _ = check_rewrite(model, moved=1, exact=exact(activation))
    split = new.layers[0]
    assert type(split).__name__ == kind and split is not producer
    assert split.name == producer.name
    old_config, new_config = producer.get_config(), split.get_config()
    assert new_config.pop("activation") == "linear"
    assert old_config.pop("activation") == activation
    assert old_config == new_config  # initializers and all else as before
    for a, b in zip(producer.weights, split.weights, strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
        assert a is not b  # the split layer holds a copy, the input keeps its own


# -- pools -----------------------------------------------------------------------

POOLS = [
    ("max2d_2", (12, 12, 3), lambda: layers.MaxPooling2D()),
    ("max2d_3_stride2_same", (13, 13, 3), lambda: layers.MaxPooling2D(3, 2, padding="same")),
    ("max2d_3x2_stride_1x2_valid", (12, 12, 3),
     lambda: layers.MaxPooling2D((3, 2), (1, 2), padding="valid")),
    ("max2d_channels_first", (3, 12, 12),
     lambda: layers.MaxPooling2D(data_format="channels_first")),
    ("max1d_4", (32, 3), lambda: layers.MaxPooling1D(4)),
    ("max1d_same", (31, 3), lambda: layers.MaxPooling1D(3, padding="same")),
    ("max3d", (6, 6, 6, 2), lambda: layers.MaxPooling3D()),
    ("max3d_same", (5, 5, 5, 2), lambda: layers.MaxPooling3D(2, padding="same")),
    ("gmax1d", (32, 3), lambda: layers.GlobalMaxPooling1D()),
    ("gmax1d_keepdims", (32, 3), lambda: layers.GlobalMaxPooling1D(keepdims=True)),
    ("gmax2d", (12, 12, 3), lambda: layers.GlobalMaxPooling2D()),
    ("gmax2d_keepdims", (12, 12, 3), lambda: layers.GlobalMaxPooling2D(keepdims=True)),
    ("gmax2d_channels_first", (3, 12, 12),
     lambda: layers.GlobalMaxPooling2D(data_format="channels_first")),
    ("gmax3d", (6, 6, 6, 2), lambda: layers.GlobalMaxPooling3D()),
    ("gmax3d_keepdims", (6, 6, 6, 2), lambda: layers.GlobalMaxPooling3D(keepdims=True)),
    ("adaptive1d", (32, 3), lambda: layers.AdaptiveMaxPooling1D(5)),
    ("adaptive2d", (12, 12, 3), lambda: layers.AdaptiveMaxPooling2D((3, 4))),
    ("adaptive3d", (6, 6, 6, 2), lambda: layers.AdaptiveMaxPooling3D(2)),
]


@pytest.mark.parametrize("name, shape, pool", POOLS, ids=[p[0] for p in POOLS])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_every_max_pool_kind(name, shape, pool, activation):
    model = seq(shape, layers.Activation(activation), pool())
    check_rewrite(model, moved=1, exact=exact(activation))


AVERAGE_POOLS = [
    ("avg2d", (12, 12, 3), lambda: layers.AveragePooling2D(2)),
    ("avg1d", (32, 3), lambda: layers.AveragePooling1D(2)),
    ("avg3d", (6, 6, 6, 2), lambda: layers.AveragePooling3D(2)),
    ("gavg2d", (12, 12, 3), lambda: layers.GlobalAveragePooling2D()),
    ("gavg1d", (32, 3), lambda: layers.GlobalAveragePooling1D()),
    ("gavg3d", (6, 6, 6, 2), lambda: layers.GlobalAveragePooling3D()),
    ("adaptive_avg2d", (12, 12, 3), lambda: layers.AdaptiveAveragePooling2D(3)),
]


@pytest.mark.parametrize("name, shape, pool", AVERAGE_POOLS, ids=[p[0] for p in AVERAGE_POOLS])
def test_average_pools_are_refused(name, shape, pool):
    model = seq(shape, layers.Activation("relu"), pool())
    _, report = check_rewrite(model, moved=0)
    assert "averages" in report.sites[0].reason


def test_average_pool_really_differs():
    x = keras.ops.convert_to_tensor(np.array([[[[-1.0], [3.0]], [[-2.0], [0.5]]]], "float32"))
    pool, f = layers.AveragePooling2D(2), layers.Activation("relu")
    assert not np.array_equal(np.asarray(pool(f(x))), np.asarray(f(pool(x))))


# -- between the activation and the pool --------------------------------------------


@pytest.mark.parametrize("activation, moves", [("relu", True), ("tanh", True), ("elu", True),
                                               ("sigmoid", False), ("softplus", False)])
def test_zero_padding_needs_f_of_zero_to_be_zero(activation, moves):
    model = seq((12, 12, 3), layers.Conv2D(4, 3, activation=activation), layers.ZeroPadding2D(),
                layers.MaxPooling2D())
    _, report = check_rewrite(model, moved=int(moves), exact=exact(activation))
    if not moves:
        assert "cannot cross the zero padding" in report.sites[0].reason


@pytest.mark.parametrize("stack, shape", [
    ([layers.Cropping2D(1)], (12, 12, 3)),
    ([layers.Reshape((6, 24, 3))], (12, 12, 3)),
    ([layers.Permute((2, 1, 3))], (12, 10, 3)),
    ([layers.Identity()], (12, 12, 3)),
    ([layers.Flatten(), layers.Reshape((144, 3))], (12, 12, 3)),
    ([layers.Cropping1D(2)], (32, 3)),
    ([layers.ZeroPadding1D(2), layers.Cropping1D(1), layers.Identity()], (32, 3)),
    ([layers.Cropping3D(1), layers.ZeroPadding3D(1)], (6, 6, 6, 2)),
], ids=["crop2d", "reshape", "permute", "identity", "flatten_reshape", "crop1d", "chain1d",
        "chain3d"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_data_movement_between_activation_and_pool(stack, shape, activation):
    rank = len(shape)
    pool = {2: layers.MaxPooling1D, 3: layers.MaxPooling2D, 4: layers.MaxPooling3D}
    probe = keras.Input(shape)
    for layer in stack:
        probe = layer(probe)
    out_rank = len(probe.shape) - 1
    model = seq(shape, layers.Activation(activation), *stack, pool[out_rank]())
    _, report = check_rewrite(model, moved=1, exact=exact(activation))
    assert len(report.sites[0].between) == len(stack)
    assert rank >= 2


def test_move_that_adds_work_is_refused():
    # Padding then a stride-1 'same' pool: the pooled tensor is larger than the activation's.
    model = seq((12, 12, 3), layers.Activation("relu"), layers.ZeroPadding2D(1),
                layers.MaxPooling2D(3, 1, padding="same"))
    _, report = check_rewrite(model, moved=0)
    assert "not smaller" in report.sites[0].reason


def test_activation_travels_through_consecutive_pools():
    model = seq((16, 16, 3), layers.Conv2D(4, 3, activation="relu", padding="same"),
                layers.MaxPooling2D(), layers.MaxPooling2D(), layers.GlobalMaxPooling2D(),
                name="chain")
    new, report = check_rewrite(model, moved=1)
    assert report.sites[0].elements_after == 4
    assert type(new.layers[-1]).__name__ == "Activation"


# -- structure -------------------------------------------------------------------------


def test_second_consumer_is_refused():
    inp = keras.Input((12, 12, 3))
    act = layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    pooled = layers.MaxPooling2D()(act)
    other = layers.Conv2D(2, 3)(act)
    model = keras.Model(inp, [layers.Flatten()(pooled), layers.Flatten()(other)])
    _, report = check_rewrite(model, moved=0)
    assert "2 consumers" in report.sites[0].reason


def test_activation_that_is_a_model_output_is_refused():
    inp = keras.Input((12, 12, 3))
    act = layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    model = keras.Model(inp, [act, layers.MaxPooling2D()(act)])
    _, report = check_rewrite(model, moved=0)
    assert "model output" in report.sites[0].reason


def test_intermediate_tensor_with_second_consumer_stops_the_move():
    inp = keras.Input((12, 12, 3))
    act = layers.Activation("relu")(inp)
    padded = layers.ZeroPadding2D(name="pad")(act)
    model = keras.Model(inp, [layers.MaxPooling2D()(padded), padded])
    _, report = check_rewrite(model, moved=0)
    assert "'pad'" in report.sites[0].reason


def test_pool_output_as_model_output_keeps_its_name():
    inp = keras.Input((12, 12, 3), name="image")
    x = layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    out = layers.GlobalMaxPooling2D(name="features")(x)
    model = keras.Model(inp, out)
    new, _ = check_rewrite(model, moved=1)
    assert new.output_names == ["features"]
    assert type(new.get_layer("features")).__name__ == "Activation"


def test_shared_producer_moves_at_one_call_and_keeps_the_other():
    inp = keras.Input((12, 12, 3))
    conv = layers.Conv2D(4, 3, activation="tanh", name="shared")
    a = layers.MaxPooling2D(name="max")(conv(inp))
    b = layers.AveragePooling2D(2, name="avg")(conv(layers.Identity()(inp)))
    model = keras.Model(inp, [a, b])
    new, report = check_rewrite(model, moved=1, exact=False)
    assert [s.moved for s in report.sites].count(True) == 1
    convs = [layer for layer in new.layers if isinstance(layer, layers.Conv2D)]
    assert len(convs) == 1 and len(convs[0]._inbound_nodes) == 2  # still one shared layer
    assert len(new.get_weights()) == 2


def test_shared_standalone_activation_layer():
    inp = keras.Input((12, 12, 3))
    act = layers.ReLU(max_value=1.0, name="act")
    a = layers.MaxPooling2D()(act(layers.Conv2D(3, 1)(inp)))
    b = layers.Conv2D(3, 1)(act(inp))
    model = keras.Model(inp, [a, b])
    check_rewrite(model, moved=1)


def test_multi_input_multi_output_dict():
    img = keras.Input((12, 12, 3), name="img")
    seq_in = keras.Input((20, 5), name="tokens")
    a = layers.GlobalMaxPooling2D()(layers.Conv2D(4, 3, activation="relu")(img))
    b = layers.GlobalMaxPooling1D()(layers.Conv1D(4, 3, activation="sigmoid")(seq_in))
    joined = layers.Concatenate()([a, b])
    model = keras.Model({"img": img, "tokens": seq_in},
                        {"joined": layers.Dense(2, name="head")(joined), "image_features": a})
    # `a` is a pool output that is also a model output: the relu moves after it.
    new, _ = check_rewrite(model, moved=2, exact=False)
    assert set(new.output) == {"joined", "image_features"}


def test_multi_input_list_outputs():
    x1 = keras.Input((12, 12, 3), name="a")
    x2 = keras.Input((12, 12, 3), name="b")
    p1 = layers.MaxPooling2D(name="p1")(layers.Conv2D(2, 3, activation="relu")(x1))
    p2 = layers.MaxPooling2D(name="p2")(layers.Conv2D(2, 3, activation="elu")(x2))
    model = keras.Model([x1, x2], [p1, p2])
    new, _ = check_rewrite(model, moved=2, exact=False)
    assert new.output_names == ["p1", "p2"]


def _block(name, activation="relu"):
    return keras.Sequential([layers.Conv2D(4, 3, padding="same", activation=activation),
                             layers.MaxPooling2D()], name=name)


def test_nested_sequential_in_functional_in_sequential():
    inner = keras.Sequential([keras.Input((16, 16, 3)), _block("block_a")], name="inner")
    inp = keras.Input((16, 16, 3))
    middle = keras.Model(inp, _block("block_b", "tanh")(inner(inp)), name="middle")
    outer = seq((16, 16, 3), middle, layers.Flatten(), layers.Dense(3), name="outer")
    new, report = check_rewrite(outer, moved=2, exact=False)
    assert {s.scope for s in report.moved} == {"outer/middle/inner/block_a",
                                               "outer/middle/block_b"}
    assert new.layers[0].name == "middle"
    untouched = keras.Sequential([keras.Input((4,)), layers.Dense(2)], name="plain")
    inp = keras.Input((16, 16, 3))
    model = keras.Model(inp, [untouched(layers.Dense(4)(layers.Flatten()(inp))),
                              _block("block_c")(inp)])
    new, _ = check_rewrite(model, moved=1)
    assert new.get_layer("plain") is untouched  # nothing to change: reused as is


def test_shared_nested_model_is_rewritten_once():
    block = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(3, 3, padding="same",
                              activation="relu"), layers.MaxPooling2D(), layers.UpSampling2D()],
                             name="block")
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, block(block(inp)))
    new, report = check_rewrite(model, moved=1)
    assert len(report.sites) == 1
    assert len([layer for layer in new.layers if layer.name == "block"]) == 1


def _backbone(activation="relu", name="backbone"):
    return keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(3, 3, activation=activation)],
                            name=name)


@pytest.mark.parametrize("activation, standalone", [("relu", False), ("tanh", True)])
def test_activation_leaves_a_nested_model_to_follow_the_outer_pool(activation, standalone):
    if standalone:
        backbone = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(3, 3),
                                     layers.Activation(activation, name="act")], name="backbone")
    else:
        backbone = _backbone(activation)
    model = seq((8, 8, 3), backbone, layers.GlobalMaxPooling2D(), layers.Dense(2), name="outer")
    new, report = check_rewrite(model, moved=1, exact=exact(activation))
    (site,) = report.sites
    assert site.scope == "outer" and site.activation.startswith("backbone/")
    assert (site.elements_before, site.elements_after) == (36 * 3, 3)
    new_backbone = new.get_layer("backbone")
    assert new_backbone is not backbone
    assert all(type(layer).__name__ != "Activation" for layer in new_backbone.layers)


def test_nested_model_called_twice_keeps_its_activation():
    backbone = _backbone()
    inp = keras.Input((8, 8, 3))
    a = layers.GlobalMaxPooling2D()(backbone(inp))
    b = layers.Flatten()(backbone(layers.Identity()(inp)))
    model = keras.Model(inp, [a, b])
    _, report = check_rewrite(model, moved=0)
    assert "called at 2 places" in report.sites[0].reason


def test_nested_activation_with_an_inner_consumer_stays():
    inner_in = keras.Input((8, 8, 3))
    act = layers.Conv2D(3, 3, activation="relu")(inner_in)
    backbone = keras.Model(inner_in, [act, layers.Conv2D(2, 1)(act)], name="backbone")
    inp = keras.Input((8, 8, 3))
    features, side = backbone(inp)
    model = keras.Model(inp, [layers.GlobalMaxPooling2D()(features), side])
    _, report = check_rewrite(model, moved=0)
    assert "also feeds" in report.sites[0].reason


def test_transfer_learning_idiom_resnet50_backbone_with_global_max_pool():
    base = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3))
    model = keras.Sequential([keras.Input((64, 64, 3)), base, layers.GlobalMaxPooling2D(),
                              layers.Dense(3)], name="classifier")
    _, report = check_rewrite(model, moved=2, batch=1)
    boundary = [s for s in report.moved if s.scope == "classifier"]
    assert [s.activation for s in boundary] == ["resnet50/conv5_block3_out"]
    assert (boundary[0].elements_before, boundary[0].elements_after) == (2 * 2 * 2048, 2048)


def test_mixed_float16_policy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = seq((12, 12, 3), layers.Conv2D(4, 3, activation="sigmoid"),
                    layers.MaxPooling2D(), layers.Conv2D(4, 3, activation="relu"),
                    layers.GlobalMaxPooling2D())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    new, _ = check_rewrite(model, moved=2, exact=False)
    moved = [layer for layer in new.layers if type(layer).__name__ == "Activation"]
    assert all(layer.compute_dtype == "float16" for layer in moved)


def test_result_saves_and_loads_without_custom_objects(tmp_path):
    model = seq((12, 12, 3), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
                layers.Conv2D(4, 3), layers.PReLU(shared_axes=[1, 2]),
                layers.GlobalMaxPooling2D(), layers.Dense(2))
    new, _ = check_rewrite(model, moved=2)
    loaded = roundtrip(new, tmp_path)
    x = np.random.default_rng(0).standard_normal((2, 12, 12, 3)).astype("float32")
    assert np.asarray(loaded(x)).tobytes() == np.asarray(model(x)).tobytes()


def test_reorder_is_idempotent():
    model = seq((16, 16, 3), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
                layers.Activation("tanh"), layers.ZeroPadding2D(), layers.MaxPooling2D())
    once, first = tf_reorder.reorder(model, return_report=True)
    twice, second = tf_reorder.reorder(once, return_report=True)
    assert len(first.moved) == 2 and len(second.moved) == 0
    assert [type(layer).__name__ for layer in once.layers] == \
        [type(layer).__name__ for layer in twice.layers]


def test_plan_builds_nothing_and_matches_reorder():
    model = seq((12, 12, 3), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D())
    before = model_fingerprint(model)
    nodes = len(model.layers[0]._inbound_nodes)
    report = tf_reorder.plan(model)
    assert len(model.layers[0]._inbound_nodes) == nodes
    assert model_fingerprint(model) == before
    _, reordered = tf_reorder.reorder(model, return_report=True)
    assert report == reordered


# -- bad input ------------------------------------------------------------------------


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = layers.Conv2D(2, 3, activation="relu")

    def call(self, x):
        return self.conv(x)


@pytest.mark.parametrize("bad, message", [
    ("model.keras", "expected a keras.Model"),
    (layers.Dense(3), "expected a keras.Model"),
    (None, "expected a keras.Model"),
])
def test_not_a_model(bad, message):
    with pytest.raises(tf_reorder.ReorderError, match=message):
        tf_reorder.reorder(bad)


def test_subclassed_model_is_refused_with_a_clear_error():
    model = Subclassed()
    model(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(tf_reorder.ReorderError, match="subclassed"):
        tf_reorder.reorder(model)


def test_unbuilt_sequential_is_refused():
    model = keras.Sequential([layers.Conv2D(2, 3, activation="relu"), layers.MaxPooling2D()])
    with pytest.raises(tf_reorder.ReorderError, match="not built"):
        tf_reorder.plan(model)


def test_subclassed_layer_inside_a_functional_model_is_kept_as_is():
    class Scale(layers.Layer):
        def call(self, x):
            return 2.0 * x

    inp = keras.Input((12, 12, 3))
    x = Scale(name="scale")(layers.Conv2D(3, 3, activation="relu")(inp))
    model = keras.Model(inp, layers.MaxPooling2D()(layers.Activation("relu")(x)))
    new, _ = check_rewrite(model, moved=1)
    assert new.get_layer("scale") is model.get_layer("scale")


# -- unknown sizes and counting ----------------------------------------------------------


@pytest.mark.parametrize("pool, moves", [
    (lambda: layers.MaxPooling2D(), True),
    (lambda: layers.GlobalMaxPooling2D(), True),
    (lambda: layers.MaxPooling2D(3, 1, padding="valid"), True),
    (lambda: layers.MaxPooling2D(3, 1, padding="same"), False),
])
def test_unknown_input_size_moves_only_where_no_input_can_grow(pool, moves):
    model = seq((None, None, 3), layers.Conv2D(4, 3, activation="relu"), pool())
    _, report = check_rewrite(model, moved=int(moves))
    (site,) = report.sites
    assert site.elements_before is None
    if moves:
        assert any("input size unknown" in note for note in site.notes)
    else:
        assert "input size unknown" in site.reason


def test_unknown_input_size_with_padding_is_refused():
    model = seq((None, None, 3), layers.Activation("relu"), layers.ZeroPadding2D(),
                layers.MaxPooling2D(3, 2))
    _, report = check_rewrite(model, moved=0)
    assert "pads" in report.sites[0].reason


def test_elements_count_every_call_of_a_shared_nested_model():
    inner = seq((16, 16, 3), layers.Conv2D(4, 3, activation="tanh"), layers.MaxPooling2D(),
                name="inner")
    a, b = keras.Input((16, 16, 3)), keras.Input((16, 16, 3))
    model = keras.Model([a, b], layers.Concatenate()([inner(a), inner(b)]))
    _, report = check_rewrite(model, moved=1, exact=False)
    (site,) = report.sites
    assert (site.elements_before, site.elements_after) == (2 * 14 * 14 * 4, 2 * 7 * 7 * 4)
    assert not site.exact


def test_site_exactness_follows_the_catalogue():
    model = seq((12, 12, 3), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
                layers.LeakyReLU(0.1), layers.MaxPooling2D(), layers.Activation("sigmoid"),
                layers.GlobalMaxPooling2D())
    _, report = check_rewrite(model, moved=3, exact=False)
    assert [s.exact for s in report.sites] == [True, True, False]


# -- runtime policies (target=) ------------------------------------------------------------


@pytest.fixture
def policy_path(tmp_path):
    return write_policy(tmp_path / "runtime_policy.json")


def _two_branch_model():
    inp = keras.Input((16, 16, 3), name="image")
    a = layers.Conv2D(4, 3, activation="relu", name="conv_relu")(inp)
    b = layers.Conv2D(4, 3, activation="sigmoid", name="conv_sigmoid")(inp)
    return keras.Model(inp, [layers.MaxPooling2D(name="pool_relu")(a),
                             layers.MaxPooling2D(name="pool_sigmoid")(b)], name="two_branch")


def _outputs(model, x):
    return [np.asarray(y) for y in model(x)]


def _site(report, function):
    (site,) = [s for s in report.sites if s.function == function]
    return site


def test_policy_keeps_what_the_runtime_measured_slower(policy_path):
    model = _two_branch_model()
    policy = load_policy("tflite", path=policy_path)
    new, report = check_rewrite(model, moved=1, exact=False, target=policy)
    relu, sigmoid = _site(report, "relu"), _site(report, "sigmoid")
    assert not relu.moved and relu.reason == RELU_ON_TFLITE
    assert relu.elements_after == relu.elements_before == 14 * 14 * 4
    assert relu.pool == "pool_relu" and relu.fused
    assert sigmoid.moved and sigmoid.elements_after == 7 * 7 * 4
    assert {s.policy for s in report.sites} == {LABELS["tflite"]}
    assert str(report).splitlines()[1] == f"policy: {LABELS['tflite']}"
    assert [s["policy"] for s in report.to_dict()["sites"]] == [LABELS["tflite"]] * 2

    # The relu stays fused in the same layer; the sigmoid is split off and moved.
    assert new.get_layer("conv_relu") is model.get_layer("conv_relu")
    assert keras.activations.serialize(new.get_layer("conv_sigmoid").activation) == "linear"
    x = verify.random_inputs(model, batch=3)
    (relu_before, sigmoid_before), (relu_after, sigmoid_after) = \
        _outputs(model, x), _outputs(new, x)
    assert relu_after.tobytes() == relu_before.tobytes()
    np.testing.assert_allclose(sigmoid_after, sigmoid_before, rtol=1e-6, atol=1e-6)

    _, everywhere = check_rewrite(model, moved=2, exact=False, target="any")
    assert {s.policy for s in everywhere.sites} == {"any"}
    assert "policy:" not in str(everywhere)


def test_policy_of_another_runtime_decides_the_other_way(policy_path):
    model = _two_branch_model()
    new, report = check_rewrite(model, moved=1, target=load_policy("tf", path=policy_path))
    assert _site(report, "relu").moved
    assert _site(report, "sigmoid").reason == SIGMOID_ON_TF
    assert new.get_layer("conv_sigmoid") is model.get_layer("conv_sigmoid")
    _, report = check_rewrite(model, moved=0, target=load_policy("all", path=policy_path))
    assert {s.policy for s in report.sites} == {LABELS["all"]}


def test_plan_with_a_target_matches_reorder(policy_path):
    model = _two_branch_model()
    policy = load_policy("tflite", path=policy_path)
    _, reordered = tf_reorder.reorder(model, return_report=True, target=policy)
    assert tf_reorder.plan(model, target=policy) == reordered
    assert tf_reorder.plan(model) != reordered


def _chain(name="chain"):
    return seq((16, 16, 3), layers.Conv2D(4, 3, padding="same", name="conv"),
               layers.Activation("relu", name="relu"), layers.MaxPooling2D(name="pool1"),
               layers.Activation("sigmoid", name="sigmoid"), layers.MaxPooling2D(name="pool2"),
               layers.Flatten(name="flat"), name=name)


@pytest.mark.parametrize("target, moved, order", [
    # No policy: the sigmoid moves after pool2, and the relu through pool1, across the
    # moved sigmoid and pool2, to land before it.
    ("any", 2, ["conv", "pool1", "pool2", "relu", "sigmoid", "flat"]),
    # The relu refused: it stays where it is; the sigmoid still moves.
    ("tflite", 1, ["conv", "relu", "pool1", "pool2", "sigmoid", "flat"]),
    # The sigmoid refused: the relu moves after pool1 only, not past the sigmoid.
    ("tf", 1, ["conv", "pool1", "relu", "sigmoid", "pool2", "flat"]),
])
def test_policy_in_a_chain_of_standalone_activations(policy_path, target, moved, order):
    model = _chain()
    policy = load_policy(target, path=policy_path)
    new, report = check_rewrite(model, moved=moved, exact=False, target=policy)
    assert [layer.name for layer in new.layers] == order
    if target == "tf":
        assert _site(report, "relu").pool == "pool1"


@pytest.mark.parametrize("target, moves", [("tf", True), ("tflite", False)])
def test_policy_on_an_activation_that_travels_through_several_pools(policy_path, target, moves):
    model = seq((16, 16, 3), layers.Conv2D(4, 3, activation="relu", padding="same"),
                layers.MaxPooling2D(name="p1"), layers.MaxPooling2D(name="p2"),
                layers.GlobalMaxPooling2D(name="gmp"), name="chain")
    new, report = check_rewrite(model, moved=int(moves),
                                target=load_policy(target, path=policy_path))
    (site,) = report.sites
    assert site.pool == "gmp"  # where it lands, or would have
    assert site.elements_after == (4 if moves else 16 * 16 * 4)
    assert (new.layers[0] is model.layers[0]) == (not moves)


@pytest.mark.parametrize("target, moved_function", [("tflite", "sigmoid"), ("tf", "relu")])
def test_policy_with_an_activation_leaving_a_nested_model(policy_path, target, moved_function):
    # Inside the backbone a relu before a pool; its output is a sigmoid that could
    # leave it to follow the outer global max pool.
    backbone = seq((16, 16, 3), layers.Conv2D(4, 3, activation="relu", name="conv_a"),
                   layers.MaxPooling2D(name="inner_pool"),
                   layers.Conv2D(4, 3, activation="sigmoid", name="conv_b"), name="backbone")
    model = seq((16, 16, 3), backbone, layers.GlobalMaxPooling2D(name="gmp"), layers.Dense(2),
                name="outer")
    new, report = check_rewrite(model, moved=1, exact=False,
                                target=load_policy(target, path=policy_path))
    assert [s.function for s in report.moved] == [moved_function]
    (kept,) = report.skipped
    assert kept.reason == (RELU_ON_TFLITE if target == "tflite" else SIGMOID_ON_TF)
    new_backbone = new.get_layer("backbone")
    assert new_backbone is not backbone
    conv_b = new_backbone.get_layer("conv_b")
    activation = keras.activations.serialize(conv_b.activation)
    assert activation == ("linear" if moved_function == "sigmoid" else "sigmoid")


def test_policy_refusing_the_only_activation_of_a_nested_model_keeps_it(policy_path):
    backbone = seq((8, 8, 3), layers.Conv2D(3, 3, activation="relu"), name="backbone")
    model = seq((8, 8, 3), backbone, layers.GlobalMaxPooling2D(), layers.Dense(2), name="outer")
    new, report = check_rewrite(model, moved=0,
                                target=load_policy("tflite", path=policy_path))
    (site,) = report.sites
    assert site.scope == "outer" and site.activation.startswith("backbone/")
    assert site.reason == RELU_ON_TFLITE
    assert new.get_layer("backbone") is backbone  # nothing changed: reused as it is


def test_policy_families_of_keras_layers(policy_path):
    model = seq((12, 12, 3), layers.Conv2D(4, 3), layers.LeakyReLU(0.3), layers.MaxPooling2D(),
                layers.ReLU(max_value=6.0), layers.MaxPooling2D(), layers.Conv2D(4, 1),
                layers.ELU(), layers.GlobalMaxPooling2D())
    _, report = check_rewrite(model, moved=2, exact=False,
                              target=load_policy("tflite", path=policy_path))
    leaky, relu6, elu = report.sites
    assert leaky.moved and elu.moved  # measured as the families leaky_relu and elu
    assert relu6.reason == ("no measurement of ReLU(max_value=6) on tflite in the runtime "
                            "policy (measured 2026-11-23)")


@pytest.mark.parametrize("layer, family", [
    (layers.Activation("relu"), "relu"),
    (layers.Activation("relu6"), "relu6"),
    (layers.Conv2D(2, 1, activation="sigmoid"), "sigmoid"),
    (layers.Dense(2, activation=keras.activations.hard_sigmoid), "hard_sigmoid"),
    (layers.ReLU(), "relu"),
    (layers.ReLU(max_value=6.0), "ReLU(max_value=6)"),
    (layers.ReLU(negative_slope=0.1), "ReLU(negative_slope=0.1)"),
    (layers.LeakyReLU(0.3), "leaky_relu"),
    (layers.Activation("leaky_relu"), "leaky_relu"),
    (layers.ELU(0.5), "elu"),
    (layers.PReLU(), "prelu"),
])
def test_activation_family_of_layers(layer, family):
    layer.build((None, 4, 4, 2))
    assert describe_activation(layer).family == family


def test_rules_still_refuse_first_under_a_policy(policy_path):
    model = seq((12, 12, 3), layers.Conv2D(4, 3, activation="sigmoid"), layers.ZeroPadding2D(),
                layers.MaxPooling2D())
    _, report = check_rewrite(model, moved=0, target=load_policy("tflite", path=policy_path))
    (site,) = report.sites
    assert "cannot cross the zero padding" in site.reason
    assert site.policy == LABELS["tflite"]


def test_a_bad_target_is_a_clear_error():
    model = _two_branch_model()
    before = model_fingerprint(model)
    with pytest.raises(tf_reorder.ReorderError, match="target must be a runtime name"):
        tf_reorder.reorder(model, target=1.01)
    if os.path.exists(policy.PACKAGED_POLICY):
        message = "unknown target 'tflite_gpu'; known targets: any, all"
    else:
        message = "runtime_policy.json: no such file"
    with pytest.raises(tf_reorder.ReorderError, match=message):
        tf_reorder.reorder(model, target="tflite_gpu")
    with pytest.raises(tf_reorder.ReorderError, match=message):
        tf_reorder.plan(model, target="tflite_gpu")
    assert model_fingerprint(model) == before


# -- Grappler's family: min reductions, the max <-> min flip, clamps, argmax ---------


def _functional(build, shape=(10, 10, 4), name=None):
    inputs = keras.Input(shape)
    return keras.Model(inputs, build(inputs), name=name)


# Halves: ties in every window, and zeros for relu to tie more.
TIES = np.round(np.random.default_rng(3).standard_normal((3, 10, 10, 4)) * 2) / 2


def _negative_tanh(x):
    return -keras.ops.tanh(x)


@pytest.fixture
def negative_tanh():
    tf_reorder.register_monotone(_negative_tanh, zero_at_zero=True, decreasing=True)
    yield _negative_tanh
    tf_reorder.unregister_monotone(_negative_tanh)


@pytest.mark.parametrize("reduce, flipped", [
    (keras.ops.max, "Min"), (keras.ops.min, "Max"), (keras.ops.amax, "Amin"),
    (keras.ops.amin, "Amax")])
def test_negative_flips_a_keras_reduction_bitwise(reduce, flipped, tmp_path):
    model = _functional(lambda x: reduce(keras.ops.negative(layers.Conv2D(3, 3)(x)),
                                         axis=(1, 2)))
    new, report = check_rewrite(model, moved=1, inputs=TIES.astype("float32"))
    (site,) = report.sites
    assert "(negative is non-increasing)" in " ".join(site.notes), site
    assert [type(op).__name__ for op in new.operations][-2:] == [flipped, "Negative"]
    again = roundtrip(new, tmp_path)
    x = TIES.astype("float32")
    assert np.array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_declared_decreasing_activation_flips_a_reduction(negative_tanh, tmp_path):
    model = _functional(lambda x: keras.ops.max(
        layers.Conv2D(3, 3, activation=negative_tanh)(x), axis=(1, 2)))
    new, report = check_rewrite(model, moved=1, exact=False)
    assert report.sites[0].fused and report.sites[0].function == "_negative_tanh"
    assert "Min" in [type(op).__name__ for op in new.operations]
    again = keras.saving.load_model(
        (new.save(path := str(tmp_path / "m.keras")), path)[1],
        custom_objects={"_negative_tanh": negative_tanh})
    x = np.random.default_rng(0).standard_normal((2, 10, 10, 4)).astype("float32")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)


def test_a_decreasing_activation_stays_before_a_max_pool_layer(negative_tanh):
    for pool in (layers.MaxPooling2D(), layers.GlobalMaxPooling2D()):
        model = seq((10, 10, 4), layers.Conv2D(3, 3, activation=negative_tanh), pool)
        _, report = check_rewrite(model, moved=0)
        assert "no min counterpart" in report.sites[0].reason, report.sites[0]


def test_register_monotone_refuses_increasing_and_decreasing_at_once():
    with pytest.raises(ValueError, match="both"):
        tf_reorder.register_monotone(_negative_tanh, zero_at_zero=True, decreasing=True,
                                     strictly_increasing=True)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "elu"])
def test_a_monotone_activation_moves_past_keras_ops_min(name):
    model = _functional(lambda x: keras.ops.min(layers.Conv2D(3, 3, activation=name)(x),
                                                axis=(1, 2)))
    _, report = check_rewrite(model, moved=1, exact=exact(name),
                              inputs=TIES.astype("float32"))
    assert (report.sites[0].elements_before, report.sites[0].elements_after) == (192, 3)


def test_a_min_over_the_batch_axis_is_no_step():
    model = _functional(lambda x: keras.ops.min(keras.ops.relu(x), axis=0))
    _, report = check_rewrite(model, moved=0)
    assert not report.moved


@pytest.mark.parametrize("low, high, pad, moves", [
    (-0.5, 0.5, False, True), (0.0, 6.0, True, True), (0.5, 6.0, True, False)])
def test_keras_ops_clip_moves_where_valid(low, high, pad, moves, tmp_path):
    def build(x):
        y = keras.ops.clip(layers.Conv2D(3, 3)(x), low, high)
        return layers.MaxPooling2D()(layers.ZeroPadding2D()(y) if pad else y)
    model = _functional(build)
    new, report = check_rewrite(model, moved=int(moves), inputs=TIES.astype("float32"))
    if moves:
        again = roundtrip(new, tmp_path)
        x = TIES.astype("float32")
        assert np.array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    else:
        assert "(0) != 0" in report.sites[0].reason, report.sites[0]


def test_a_relu_before_a_clamp_by_a_tensor_is_a_near_miss():
    # keras.ops.maximum of two tensors: no constant bound, so nothing moves past it.
    def build(x):
        y = layers.Conv2D(3, 3, activation="relu")(x)
        return layers.MaxPooling2D()(keras.ops.maximum(y, layers.Conv2D(3, 3)(x)))
    _, report = check_rewrite(_functional(build), moved=0)
    (site,) = report.sites
    assert "between relu and" in site.reason and "maximum" in site.reason.lower(), site


@pytest.mark.parametrize("reduce", [keras.ops.argmax, keras.ops.argmin])
def test_keras_argmax_is_refused_with_the_float32_reason(reduce):
    model = _functional(lambda x: reduce(layers.Conv2D(3, 3, activation="sigmoid")(x),
                                         axis=-1))
    _, report = check_rewrite(model, moved=0)
    assert "saturation and underflow" in report.sites[0].reason, report.sites[0]
