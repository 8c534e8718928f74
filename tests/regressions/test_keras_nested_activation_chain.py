"""Regression (fuzz seed 281): two activations in a row at a nested model's output.

The first pass moved only the last one (the nested model's output) out past the outer
pool; the activation before it became the nested output and moved on a second pass, so
`reorder` was not idempotent. Both now leave together, the first one landing no further
than the second so their order stays.
"""

import json

import keras
from keras import layers

import tf_reorder
from rewrite_checks import check_rewrite


def _config(model):
    return json.dumps(model.get_config(), sort_keys=True, default=str)


def _assert_idempotent(once):
    twice, second = tf_reorder.reorder(once, return_report=True)
    assert not second.moved, str(second)
    assert _config(twice) == _config(once)


def test_fused_then_standalone_activation_leave_the_nested_model_together():
    inner = keras.Sequential([keras.Input((8, 1)),
                              layers.Conv1D(2, 1, activation="celu", name="conv"),
                              layers.LeakyReLU(0.3, name="leaky")], name="inner")
    inp = keras.Input((8, 1))
    model = keras.Model(inp, layers.GlobalMaxPooling1D(name="gmp")(inner(inp)), name="outer")
    once, report = check_rewrite(model, moved=2, exact=False)
    assert [s.activation for s in report.moved] == ["inner/leaky", "inner/conv"]
    assert {s.pool for s in report.moved} == {"gmp"}
    _assert_idempotent(once)


def test_the_earlier_activation_lands_no_further_than_the_later_one():
    # sigmoid(0) != 0: the sigmoid stops before the zero padding, after pool1; the relu
    # could cross the padding but must stay before the sigmoid (the two do not commute).
    inner = keras.Sequential([keras.Input((8, 8, 2)), layers.Conv2D(3, 1, name="conv"),
                              layers.Activation("relu", name="relu"),
                              layers.Activation("sigmoid", name="sigmoid")], name="inner")
    inp = keras.Input((8, 8, 2))
    x = layers.MaxPooling2D(name="pool1")(inner(inp))
    x = layers.MaxPooling2D(name="pool2")(layers.ZeroPadding2D(name="pad")(x))
    model = keras.Model(inp, x, name="outer")
    once, report = check_rewrite(model, moved=2, exact=False)
    assert [(s.activation, s.pool) for s in report.moved] == [
        ("inner/sigmoid", "pool1"), ("inner/relu", "pool1")]
    assert [layer.name for layer in once.layers][2:] == ["pool1", "relu", "sigmoid", "pad",
                                                         "pool2"]
    _assert_idempotent(once)


def test_an_earlier_activation_that_is_also_returned_stays():
    inner_in = keras.Input((8, 8, 2))
    relu = layers.Activation("relu", name="relu")(layers.Conv2D(3, 1, name="conv")(inner_in))
    tanh = layers.Activation("tanh", name="tanh")(relu)
    inner = keras.Model(inner_in, [tanh, relu], name="inner")
    inp = keras.Input((8, 8, 2))
    pooled_tanh, relu_out = inner(inp)
    model = keras.Model(inp, [layers.GlobalMaxPooling2D(name="gmp")(pooled_tanh), relu_out],
                        name="outer")
    once, report = check_rewrite(model, moved=1, exact=False)
    kept = [s for s in report.sites if not s.moved]
    assert [s.activation for s in report.moved] == ["inner/tanh"]
    assert [s.reason for s in kept] == ["'inner/relu' is also returned by 'inner'"]
    _assert_idempotent(once)
