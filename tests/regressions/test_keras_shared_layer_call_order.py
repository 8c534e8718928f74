"""Regression (fuzz seed 563): a layer called at two places, where the call made first
is nearer the model's output.

The rebuild called layers in Keras' depth order, so the shared layer's calls (its
inbound nodes, as ``get_config()`` lists them) came out in another order; reordering the
result permuted them back: `reorder(reorder(m))` had another config than `reorder(m)`.
The rebuild now keeps each layer's calls in the order they were made (a model with
nothing to move keeps its config; a moved activation is called where it lands, in the
order of its landing pools).
"""

import json

import keras
from keras import layers

import tf_reorder
from rewrite_checks import check_rewrite


def _config(model):
    return json.dumps(model.get_config(), sort_keys=True, default=str)


def _inbound_layers(model, name):
    (layer,) = [c for c in model.get_config()["layers"] if c["name"] == name]
    return [node["args"][0]["config"]["keras_history"][0] for node in layer["inbound_nodes"]]


def _model():
    inp = keras.Input((8, 8, 2), name="image")
    act = layers.LeakyReLU(0.5, name="act")
    short = layers.GlobalMaxPooling2D(name="gmp")(act(inp))
    long = layers.Flatten(name="flat")(layers.MaxPooling2D(name="pool")(
        act(layers.Identity(name="identity")(inp))))
    return keras.Model(inp, layers.Concatenate(name="concat")([short, long]), name="shared")


def test_shared_layer_keeps_the_order_of_its_calls():
    model = _model()
    assert _inbound_layers(model, "act") == ["image", "identity"]
    once, _ = check_rewrite(model, moved=2)
    twice, second = tf_reorder.reorder(once, return_report=True)
    assert not second.moved
    assert _config(twice) == _config(once)


def test_a_model_with_nothing_to_move_keeps_its_config():
    inp = keras.Input((8, 8, 2), name="image")
    dense = layers.Dense(3, name="dense")
    short = layers.GlobalAveragePooling2D(name="gap")(dense(inp))
    long = layers.Flatten(name="flat")(dense(layers.Identity(name="identity")(inp)))
    model = keras.Model(inp, layers.Concatenate(name="concat")([short, long]), name="plain")
    same, report = check_rewrite(model, moved=0)
    assert not report.sites
    assert _config(same) == _config(model)
