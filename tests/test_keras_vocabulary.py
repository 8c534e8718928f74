"""Keras' vocabulary: layers and `keras.ops` / `keras.activations` nodes, moved like twins.

Keras 3 functional graphs hold ``keras.ops`` calls as operation nodes. Each activation,
data movement and max reduction among them moves (or is refused) as its layer twin does,
and the result still saves and loads as ``.keras`` with no custom objects.
"""

import keras
import numpy as np
import pytest
from keras import layers

import tf_reorder
from tf_reorder import algebra, keras_vocabulary
from rewrite_checks import check_rewrite, roundtrip

ops = keras.ops


def _model(net, shape=(10, 10, 3), name="net"):
    inputs = keras.Input(shape)
    return keras.Model(inputs, net(inputs), name=name)


def _conv(x):
    return layers.Conv2D(4, 3, name="conv")(x)


# -- the four snippets of issue 14 ------------------------------------------------------


def test_ops_sigmoid_then_ops_max_moves(tmp_path):
    model = _model(lambda i: ops.max(ops.sigmoid(_conv(i)), axis=(1, 2)))
    new, report = check_rewrite(model, moved=1, exact=False)
    (site,) = report.sites
    assert (site.function, site.elements_before, site.elements_after) == ("sigmoid", 256, 4)
    _same_after_a_round_trip(new, tmp_path)


def test_activations_relu_with_parameters_then_a_pool_moves(tmp_path):
    model = _model(lambda i: layers.MaxPooling2D(name="pool")(
        keras.activations.relu(_conv(i), max_value=6.0)))
    new, report = check_rewrite(model, moved=1)
    assert report.sites[0].function == "ReLU(max_value=6)"
    _same_after_a_round_trip(new, tmp_path)


def test_an_elementwise_layer_in_the_way_is_a_near_miss():
    model = _model(lambda i: layers.MaxPooling2D(name="pool")(layers.Rescaling(
        2.0, name="scale")(layers.Conv2D(4, 3, activation="relu", name="conv")(i))))
    _, report = check_rewrite(model, moved=0)
    (site,) = report.sites
    kind = "Rescaling 'scale'"
    assert not site.moved and site.reason.startswith(f"{kind} between relu and 'pool'")
    assert site.between == ("scale",) and site.pool == "pool"
    assert kind in str(report)  # the CLI's table shows the row


# -- BatchNormalization: a per-channel affine map at inference ---------------------------


def _trained_bn(bn, *, gamma=None, seed=0):
    """Sets a built BatchNormalization's weights to trained-looking values."""
    rng = np.random.default_rng(seed)
    channels = bn.moving_mean.shape[0]
    values = {"gamma": rng.uniform(0.5, 2.0, channels) if gamma is None else gamma,
              "beta": rng.standard_normal(channels),
              "moving_mean": rng.standard_normal(channels),
              "moving_variance": rng.uniform(0.1, 3.0, channels)}
    for variable in bn.weights:
        variable.assign(np.asarray(values[variable.name], "float32"))
    return bn


def _bn_model(*, pool=None, gamma=None, trainable=True, training=None, **bn_args):
    inputs = keras.Input((10, 10, 3))
    y = layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    bn = layers.BatchNormalization(name="bn", **bn_args)
    y = bn(y, training=training) if training is not None else bn(y)
    y = (pool or layers.MaxPooling2D(name="pool"))(y)
    model = keras.Model(inputs, layers.Flatten(name="flat")(y), name="cifar_block")
    _trained_bn(bn, gamma=gamma)
    bn.trainable = trainable
    return model


def _by_activation(report):
    return {site.activation: site for site in report.sites}


@pytest.mark.parametrize("bn_args", [{}, {"center": False}, {"scale": False},
                                     {"center": False, "scale": False}],
                         ids=["default", "no_center", "no_scale", "neither"])
def test_batch_norm_moves_with_the_relu_at_inference(bn_args, tmp_path):
    model = _bn_model(**bn_args)
    new, report = check_rewrite(model, moved=2, exact=False, inference=True)
    sites = _by_activation(report)
    assert sites["bn"].function.startswith("BatchNormalization(min scale=")
    assert (sites["bn"].elements_before, sites["bn"].elements_after) == (256, 64)
    assert any("inference only" in note for note in sites["bn"].notes), sites["bn"]
    assert any("trained weights" in note for note in sites["bn"].notes), sites["bn"]
    assert ops_in_order(new) == ["Flatten", "BatchNormalization", "Activation",
                                 "MaxPooling2D", "Conv2D"]
    assert any(layer is model.get_layer("bn") for layer in new.layers)  # reused, not copied
    _close_after_a_round_trip(model, new, tmp_path)


def test_batch_norm_moves_alone_after_a_separable_conv(tmp_path):
    inputs = keras.Input((10, 10, 3))
    y = layers.SeparableConv2D(4, 3, name="sep")(inputs)
    bn = layers.BatchNormalization(name="bn")
    y = layers.MaxPooling2D(3, 2, padding="same", name="pool")(bn(y))
    model = keras.Model(inputs, y)
    _trained_bn(bn)
    new, report = check_rewrite(model, moved=1, exact=False, inference=True)
    assert report.moved[0].activation == "bn" and report.moved[0].pool == "pool"
    _close_after_a_round_trip(model, new, tmp_path)


def test_batch_norm_in_a_sequential_model_whose_output_is_the_pool(tmp_path):
    model = keras.Sequential([keras.Input((10, 10, 3)), layers.Conv2D(4, 3, name="conv"),
                              layers.BatchNormalization(name="bn"),
                              layers.MaxPooling2D(name="pool")])
    _trained_bn(model.get_layer("bn"))
    new, report = check_rewrite(model, moved=1, exact=False, inference=True)
    # The output keeps its name, so the BatchNormalization is a renamed copy.
    assert [(type(layer).__name__, layer.name) for layer in new.layers[-2:]] == [
        ("MaxPooling2D", "pool_pool"), ("BatchNormalization", "pool")]
    _close_after_a_round_trip(model, new, tmp_path)


def test_batch_norm_is_refused_by_default_and_the_relu_near_miss_names_it():
    _, report = check_rewrite(_bn_model(), moved=0)
    sites = _by_activation(report)
    assert "inference=True would move it" in sites["bn"].reason, sites["bn"]
    assert sites["conv"].reason.startswith(
        "BatchNormalization 'bn' between relu and 'pool' stays before it: "), sites["conv"]
    assert "inference=True would move it" in sites["conv"].reason


def test_a_frozen_batch_norm_moves_without_inference_mode(tmp_path):
    model = _bn_model(trainable=False)
    new, report = check_rewrite(model, moved=2, exact=False)
    notes = _by_activation(report)["bn"].notes
    assert any("frozen (trainable=False)" in note for note in notes), notes
    assert not any("inference only" in note for note in notes), notes
    _close_after_a_round_trip(model, new, tmp_path)


@pytest.mark.parametrize("gamma, channel, words", [
    ([1.0, 0.5, -0.25, 2.0], 2, "scaled by -"),
    ([1.0, 0.0, 1.0, 1.0], 1, "scaled by 0"),
    ([1.0, 1.0, 1.0, np.nan], 3, "scaled by nan"),
])
def test_batch_norm_with_a_scale_that_is_not_positive_is_refused(gamma, channel, words):
    _, report = check_rewrite(_bn_model(gamma=gamma), moved=0, exact=False, inference=True)
    sites = _by_activation(report)
    assert f"channel {channel} is {words}" in sites["bn"].reason, sites["bn"]
    assert "is not monotone" in sites["bn"].reason
    assert "BatchNormalization 'bn' between relu and 'pool' stays before it" in \
        sites["conv"].reason


@pytest.mark.parametrize("make, words", [
    (lambda: _bn_model(training=True), "not data movement, padding or a max"),
    (lambda: _bn_model(pool=layers.AveragePooling2D(2, name="pool")), "averages"),
    (lambda: _bn_model(axis=1), "is a different function at different positions"),
])
def test_batch_norm_is_refused_where_it_would_be_wrong(make, words):
    model = make()
    _, report = check_rewrite(model, moved=0, exact=False, inference=True)
    assert any(words in site.reason for site in report.sites), str(report)


def test_batch_norm_with_a_second_consumer_is_refused():
    inputs = keras.Input((10, 10, 3))
    bn = layers.BatchNormalization(name="bn")
    y = bn(layers.Conv2D(4, 3, name="conv")(inputs))
    model = keras.Model(inputs, [layers.MaxPooling2D(name="pool")(y),
                                 layers.GlobalAveragePooling2D(name="gap")(y)])
    _trained_bn(bn)
    _, report = check_rewrite(model, moved=0, exact=False, inference=True)
    (site,) = report.sites
    assert "has 2 consumers" in site.reason, site


def test_describe_batch_norm_reads_the_trained_values():
    bn = layers.BatchNormalization(epsilon=0.5)
    bn.build((None, 6, 6, 2))
    bn.gamma.assign([2.0, 3.0])
    bn.moving_variance.assign([3.5, 0.5])
    function, axis = keras_vocabulary.describe_batch_norm(bn, rank=4)
    assert axis == 3 and function.name == "BatchNormalization(min scale=1)"
    assert function.inference_only and function.weight_dependent and function.zero_at_zero
    assert keras_vocabulary.describe_batch_norm(bn, rank=4, training=True) is None
    assert keras_vocabulary.describe_batch_norm(layers.BatchNormalization(), rank=4) is None
    bn.moving_mean.assign([0.0, 1.0])
    assert not keras_vocabulary.describe_batch_norm(bn, rank=4)[0].zero_at_zero


def ops_in_order(model):
    """The layer classes from the output back to the input along the first input."""
    kinds, tensor = [], model.outputs[0]
    while True:
        operation, node_index, _ = tensor._keras_history
        if isinstance(operation, layers.InputLayer):
            return kinds
        kinds.append(type(operation).__name__)
        tensor = operation._inbound_nodes[node_index].input_tensors[0]


def _close_after_a_round_trip(model, new, tmp_path):
    x = np.random.default_rng(1).standard_normal((2, *model.input_shape[1:])).astype("float32")
    loaded = roundtrip(new, tmp_path)
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), expected, rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(new(x)))


def _same_after_a_round_trip(new, tmp_path):
    x = np.random.default_rng(1).standard_normal((2, *new.input_shape[1:])).astype("float32")
    loaded = roundtrip(new, tmp_path)
    assert np.asarray(loaded(x)).tobytes() == np.asarray(new(x)).tobytes()


# -- every activation node -----------------------------------------------------------------

MOVED = [  # (name, the op on x, exact)
    ("relu", ops.relu, True), ("relu6", ops.relu6, True), ("sigmoid", ops.sigmoid, False),
    ("tanh", ops.tanh, False), ("elu", lambda x: ops.elu(x, alpha=0.5), False),
    ("selu", ops.selu, False), ("softplus", ops.softplus, False),
    ("softsign", ops.softsign, False), ("leaky_relu", lambda x: ops.leaky_relu(x, 0.1), True),
    ("hard_sigmoid", ops.hard_sigmoid, True), ("log_sigmoid", ops.log_sigmoid, False),
    ("sparse_sigmoid", ops.sparse_sigmoid, True), ("hard_tanh", ops.hard_tanh, True),
    ("sparse_plus", ops.sparse_plus, False), ("celu", lambda x: ops.celu(x, alpha=0.7), False),
    ("tanh_shrink", ops.tanh_shrink, False),
    ("soft_shrink", lambda x: ops.soft_shrink(x, 0.3), True),
    ("hard_shrink", lambda x: ops.hard_shrink(x, 0.3), True), ("exp", ops.exp, False),
    ("clip", lambda x: ops.clip(x, -1.0, 6.0), True),
    ("threshold", lambda x: ops.threshold(x, 0.1, 0.0), True),
    ("activations.relu", lambda x: keras.activations.relu(x, negative_slope=0.1,
                                                           max_value=6.0, threshold=0.0), True),
    ("activations.elu", lambda x: keras.activations.elu(x, alpha=1.0), False),
]
REFUSED = [  # (name, the op on x, a fragment of the reason)
    ("silu", ops.silu, "not monotone"), ("gelu", ops.gelu, "not monotone"),
    ("softmax", ops.softmax, "not elementwise"), ("negative", ops.negative, "non-increasing"),
    ("leaky_relu", lambda x: ops.leaky_relu(x, -0.1), "not monotone"),
    ("threshold", lambda x: ops.threshold(x, 0.0, 1.0), "not monotone"),
    ("squareplus", ops.squareplus, "not monotone"),
]


@pytest.mark.parametrize("name, op, exact", MOVED, ids=[m[0] for m in MOVED])
def test_every_monotone_activation_node_moves(name, op, exact, tmp_path):
    model = _model(lambda i: layers.MaxPooling2D(name="pool")(op(_conv(i))))
    new, report = check_rewrite(model, moved=1, exact=exact)
    assert report.sites[0].exact is exact
    _same_after_a_round_trip(new, tmp_path)


@pytest.mark.parametrize("name, op, reason", REFUSED, ids=[r[0] for r in REFUSED])
def test_activation_nodes_the_rules_refuse(name, op, reason):
    model = _model(lambda i: layers.MaxPooling2D(name="pool")(op(_conv(i))))
    _, report = check_rewrite(model, moved=0)
    (site,) = report.sites
    assert reason in site.reason, site.reason


def test_a_clamp_whose_bounds_are_not_numbers_is_not_an_activation():
    from keras.src.ops.numpy import Clip  # pylint: disable=g-import-not-at-top

    assert keras_vocabulary.describe_activation(Clip(np.array([0.0, 1.0]), 6.0)) is None
    assert keras_vocabulary.describe_activation(Clip(0.0, 6.0)) == algebra.clip(0.0, 6.0)


@pytest.mark.parametrize("low, high, zero", [(0.0, 6.0, True), (-1.0, 1.0, True),
                                             (0.5, 2.0, False), (-2.0, -1.0, False)])
def test_a_clamp_is_zero_at_zero_only_when_its_bounds_hold_zero(low, high, zero):
    function = keras_vocabulary.describe_activation(
        ops.clip(keras.Input((4,)), low, high)._keras_history.operation)
    assert function.exact and function.monotonicity.keeps_order
    assert function.zero_at_zero is zero and function.zero_at_zero == (
        float(np.clip(0.0, low, high)) == 0.0)


# -- data movement and max reductions ------------------------------------------------------

BETWEEN = [
    ("reshape", lambda x: ops.reshape(x, (-1, 4, 8, 4))),
    ("transpose", lambda x: ops.transpose(x, (0, 2, 1, 3))),
    ("expand_squeeze", lambda x: ops.squeeze(ops.expand_dims(x, 1), 1)),
    ("getitem", lambda x: x[:, 1:7]),
    ("slice", lambda x: ops.slice(x, (0, 0, 0, 0), (2, 6, 8, 4))),
]


@pytest.mark.parametrize("name, op", BETWEEN, ids=[b[0] for b in BETWEEN])
def test_data_movement_nodes_are_crossed(name, op, tmp_path):
    model = _model(lambda i: layers.MaxPooling2D(name="pool")(op(ops.relu(_conv(i)))))
    new, report = check_rewrite(model, moved=1, inputs=np.random.default_rng(0).standard_normal(
        (2, 10, 10, 3)).astype("float32"))
    assert len(report.sites[0].between) == 1 + (name == "expand_squeeze")
    _same_after_a_round_trip(new, tmp_path)


MAXES = [
    ("max_axes", lambda x: ops.max(x, axis=(1, 2))),
    ("max_keepdims", lambda x: ops.max(x, axis=2, keepdims=True)),
    ("max_last_axis", lambda x: ops.max(x, axis=-1)),
    ("amax", lambda x: ops.amax(x, axis=1)),
    ("max_pool", lambda x: ops.max_pool(x, 2)),
    ("max_pool_strided_same", lambda x: ops.max_pool(x, 3, strides=2, padding="same")),
]


@pytest.mark.parametrize("name, op", MAXES, ids=[m[0] for m in MAXES])
def test_every_max_node_takes_an_activation(name, op, tmp_path):
    model = _model(lambda i: op(ops.sigmoid(_conv(i))))
    new, _ = check_rewrite(model, moved=1, exact=False)
    _same_after_a_round_trip(new, tmp_path)


@pytest.mark.parametrize("op, reason", [
    (lambda x: ops.mean(x, axis=(1, 2)), "averages"),
    (lambda x: ops.average_pool(x, 2), "averages"),
])
def test_averaging_nodes_are_refused(op, reason):
    _, report = check_rewrite(_model(lambda i: op(ops.relu(_conv(i)))), moved=0)
    assert reason in report.sites[0].reason


@pytest.mark.parametrize("op", [lambda x: ops.max(x), lambda x: ops.max(x, axis=0),
                                lambda x: ops.max(x, axis=(1, 2), initial=0.5)],
                         ids=["all_axes", "batch_axis", "initial"])
def test_a_max_over_the_batch_or_from_an_initial_value_is_not_crossed(op):
    # Over the batch the per-sample counts mean nothing; max(initial, f(x)) is not
    # f(max(initial, x)) unless f(initial) == initial.
    _, report = check_rewrite(_model(lambda i: op(ops.relu(_conv(i)))), moved=0)
    assert report.sites == ()


def test_nested_functional_models_with_ops_nodes(tmp_path):
    inner_in = keras.Input((10, 10, 3))
    sigmoid = ops.sigmoid(_conv(inner_in))
    inner = keras.Model(inner_in, sigmoid, name="inner")
    outer_in = keras.Input((10, 10, 3))
    pooled = ops.max(inner(outer_in), axis=(1, 2))
    model = keras.Model(outer_in, pooled, name="outer")
    new, report = check_rewrite(model, moved=1, exact=False)
    (site,) = report.sites
    assert (site.scope, site.activation, site.pool) == (
        "outer", f"inner/{sigmoid._keras_history.operation.name}",
        pooled._keras_history.operation.name)
    _same_after_a_round_trip(new, tmp_path)


def test_the_vocabulary_knows_every_catalogue_activation():
    # Every monotone catalogue activation with a keras.ops function has an op node here.
    for name, function in algebra.KERAS_ACTIVATIONS.items():
        op = getattr(ops, name, None)
        if op is None or function.identity or name in ("threshold",):
            continue
        node = op(keras.Input((4,)))._keras_history.operation
        described = keras_vocabulary.describe_activation(node)
        assert described is not None, name
        assert (described.monotonicity, described.elementwise, described.exact) == (
            function.monotonicity, function.elementwise, function.exact), (name, described)


def test_reorder_result_plans_nothing_more():
    model = _model(lambda i: ops.max(ops.tanh(ops.relu(_conv(i))), axis=(1, 2)))
    new = tf_reorder.reorder(model)
    assert not tf_reorder.plan(new).moved


# -- inference identities ------------------------------------------------------------------

IDENTITIES = [
    ("Dropout", lambda: layers.Dropout(0.3, name="ident")),
    ("SpatialDropout2D", lambda: layers.SpatialDropout2D(0.3, name="ident")),
    ("GaussianNoise", lambda: layers.GaussianNoise(0.5, name="ident")),
    ("GaussianDropout", lambda: layers.GaussianDropout(0.3, name="ident")),
    ("AlphaDropout", lambda: layers.AlphaDropout(0.3, name="ident")),
    ("ActivityRegularization", lambda: layers.ActivityRegularization(0.01, name="ident")),
]


def _through(identity, activation="relu", **call):
    return _model(lambda i: layers.MaxPooling2D(name="pool")(identity()(
        layers.Conv2D(4, 3, activation=activation, name="conv")(i), **call)))


@pytest.mark.parametrize("name, identity", IDENTITIES, ids=[n for n, _ in IDENTITIES])
def test_an_inference_identity_is_crossed_for_inference(name, identity, tmp_path):
    model = _through(identity)
    new, report = check_rewrite(model, moved=1, inference=True)
    (site,) = report.sites
    assert site.between == ("ident",) and site.pool == "pool"
    assert (site.elements_before, site.elements_after) == (256, 64)
    assert site.notes == ("inference only: 'ident' is the identity at inference, "
                          "not in training",)
    assert [type(layer).__name__ for layer in new.layers][1:] == [
        "Conv2D", name, "MaxPooling2D", "Activation"]
    _same_after_a_round_trip(new, tmp_path)


@pytest.mark.parametrize("name, identity", IDENTITIES, ids=[n for n, _ in IDENTITIES])
def test_an_inference_identity_is_a_near_miss_by_default(name, identity):
    model = _through(identity)
    _, report = check_rewrite(model, moved=0)
    (site,) = report.sites
    assert site.reason == ("'ident' is the identity only at inference: inference=True "
                           "would let relu cross it")
    assert site.between == ("ident",) and site.pool == "pool" and site.notes == ()


def test_a_transcendental_activation_crosses_a_dropout_in_a_sequential(tmp_path):
    model = keras.Sequential([keras.Input((10, 10, 3)), layers.Conv2D(4, 3, activation="tanh"),
                              layers.Dropout(0.5), layers.MaxPooling2D(), layers.Flatten()])
    new, report = check_rewrite(model, moved=1, exact=False, inference=True)
    assert isinstance(new, keras.Sequential) and report.sites[0].function == "tanh"
    _same_after_a_round_trip(new, tmp_path)


def test_a_dropout_called_with_training_true_is_never_crossed():
    model = _through(lambda: layers.Dropout(0.3, name="ident"), training=True)
    report = tf_reorder.plan(model, inference=True)
    (site,) = report.sites
    assert not site.moved and site.reason.startswith("Dropout 'ident' between relu")


def test_a_dropout_called_with_training_false_is_crossed_for_inference(tmp_path):
    model = _through(lambda: layers.Dropout(0.3, name="ident"), training=False)
    check_rewrite(model, moved=1, inference=True)


def test_a_chain_crosses_an_identity_between_two_pools(tmp_path):
    def net(i):
        x = layers.MaxPooling2D(name="pool1")(layers.Conv2D(4, 3, activation="elu",
                                                           name="conv")(i))
        return layers.GlobalMaxPooling2D(name="pool2")(layers.GaussianNoise(0.1)(x))
    model = _model(net, shape=(18, 18, 3))
    _, default = check_rewrite(model, moved=1, exact=False)
    assert default.sites[0].pool == "pool1" and default.sites[0].notes == ()
    new, report = check_rewrite(model, moved=1, exact=False, inference=True)
    assert report.sites[0].pool == "pool2" and report.sites[0].elements_after == 4
    assert "inference only" in report.sites[0].notes[0]
    _same_after_a_round_trip(new, tmp_path)


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_inference_must_be_a_bool(bad):
    model = _through(IDENTITIES[0][1])
    with pytest.raises(tf_reorder.ReorderError, match="inference"):
        tf_reorder.reorder(model, inference=bad)
    with pytest.raises(tf_reorder.ReorderError, match="inference"):
        tf_reorder.plan(model, inference=bad)


def test_batch_norm_crosses_a_pool_and_a_global_pool(tmp_path):
    inputs = keras.Input((10, 10, 3))
    bn = layers.BatchNormalization(name="bn")
    y = layers.MaxPooling2D(name="pool")(bn(layers.Conv2D(4, 3, name="conv")(inputs)))
    model = keras.Model(inputs, layers.Dense(2, name="head")(
        layers.GlobalMaxPooling2D(name="gmp")(y)))
    _trained_bn(bn)
    new, report = check_rewrite(model, moved=1, exact=False, inference=True)
    (site,) = report.moved
    assert (site.pool, site.between, site.elements_after) == ("gmp", ("pool",), 4)
    # The pooled tensor is [batch, 4]: a copy with the same weights normalizes axis 1.
    (copy,) = [layer for layer in new.layers if isinstance(layer, layers.BatchNormalization)]
    assert copy is not bn and copy.axis == 1
    _close_after_a_round_trip(model, new, tmp_path)
