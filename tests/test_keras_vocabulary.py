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


@pytest.mark.parametrize("between, kind", [
    (lambda: layers.BatchNormalization(name="bn"), "BatchNormalization 'bn'"),
    (lambda: layers.Rescaling(2.0, name="scale"), "Rescaling 'scale'"),
])
def test_an_elementwise_layer_in_the_way_is_a_near_miss(between, kind):
    model = _model(lambda i: layers.MaxPooling2D(name="pool")(between()(
        layers.Conv2D(4, 3, activation="relu", name="conv")(i))))
    _, report = check_rewrite(model, moved=0)
    (site,) = report.sites
    assert not site.moved and site.reason.startswith(f"{kind} between relu and 'pool'")
    assert site.between == (kind.split("'")[1],) and site.pool == "pool"
    assert kind in str(report)  # the CLI's table shows the row


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
