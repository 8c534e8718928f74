"""`keras_rebuild`: the new layers a rewrite makes, and the names they take.

The rewrites themselves (what moves, outputs equal, weights shared) are tested through
`tf_reorder.reorder` in `tests/test_keras_pass.py` and `tests/test_keras_vocabulary.py`.
"""

import keras
import numpy as np
import pytest
from keras import layers

import tf_reorder
from tf_reorder import keras_rebuild


def test_a_layer_keras_cannot_rebuild_is_a_clear_error():
    with pytest.raises(tf_reorder.ReorderError,
                       match=r"cannot make a copy of layer 'dense' \(Dense\) to test: Keras "
                             r"cannot rebuild it from its config \(.*units"):
        keras_rebuild.rebuilt(layers.Dense(2, name="dense"), "to test", units=-1)


def _keep(weights):  # not registered with Keras
    return weights


def test_a_copy_holds_the_functions_of_the_original():
    conv = layers.Conv2D(3, 1, activation="relu", kernel_constraint=_keep, name="conv")
    copy = keras_rebuild.rebuilt(conv, "to test", name="copy", activation="linear")
    assert (copy.name, copy.kernel_constraint) == ("copy", _keep)
    assert keras.activations.serialize(copy.activation) == "linear"
    op = keras.ops.max(keras.Input((4, 4)), axis=1)._keras_history.operation
    assert keras_rebuild.rebuilt(op, "to test", name="max_copy").get_config() == \
        {**op.get_config(), "name": "max_copy"}


def test_an_activation_layer_names_a_builtin_by_its_name():
    layer = keras_rebuild.activation_layer(keras.activations.get("relu"), "act", "float32")
    assert layer.get_config()["activation"] == "relu"
    layer = keras_rebuild.activation_layer(_keep, "act", "float32")
    assert layer.activation is _keep


@pytest.mark.parametrize("shared, pooled_shape, alpha_shape", [
    ([1, 2], (None, 4, 4, 3), (1, 1, 3)),
    ([1, 2], (None, 3), (3,)),  # after a global pool: one alpha per channel still
    ([1, 2, 3], (None, 4, 4, 3), (1, 1, 1)),
])
def test_a_moved_prelu_keeps_its_alphas_per_channel(shared, pooled_shape, alpha_shape):
    source = layers.PReLU(shared_axes=shared, name="prelu")
    source.build((None, 8, 8, 3))
    source.alpha.assign(np.linspace(0.1, 0.3, source.alpha.shape[-1]).reshape(
        source.alpha.shape).astype("float32"))
    pooled = keras.KerasTensor(pooled_shape)
    new = keras_rebuild.prelu_for(source, pooled, layers.MaxPooling2D(), "moved")
    assert tuple(new.alpha.shape) == alpha_shape
    assert np.asarray(new.alpha).tobytes() == np.asarray(source.alpha).tobytes()


@pytest.mark.parametrize("sequential", [True, False])
@pytest.mark.parametrize("pool, moved", [(layers.MaxPooling2D, 2), (layers.AveragePooling2D, 0)])
def test_frozen_layers_of_the_input_stay_frozen(sequential, pool, moved):
    stack = [layers.Conv2D(4, 3, activation="relu", name="conv"),
             layers.BatchNormalization(name="bn", trainable=False),
             pool(2, name="pool"), layers.Flatten(name="flat")]
    if sequential:
        model = keras.Sequential([keras.Input((8, 8, 3)), *stack])
    else:
        inputs = keras.Input((8, 8, 3))
        y = inputs
        for layer in stack:
            y = layer(y)
        model = keras.Model(inputs, y)
    model.get_layer("conv").trainable = False
    new, report = tf_reorder.reorder(model, return_report=True)
    assert len(report.moved) == moved, str(report)
    assert not model.get_layer("conv").trainable and not model.get_layer("bn").trainable
    assert not new.get_layer("conv").trainable and not new.get_layer("bn").trainable
    assert model.trainable and new.trainable
