"""The equivalence check itself: it must see differences, not only agree."""

import keras
import numpy as np
import pytest
from keras import layers

from tf_reorder import verify


def _pair(second_activation):
    inp = keras.Input((6, 6, 2), name="x")
    conv = layers.Conv2D(2, 3, name="conv")
    a = keras.Model(inp, layers.MaxPooling2D(name="pool")(layers.Activation("relu")(conv(inp))))
    b = keras.Model(inp, layers.Activation(second_activation, name="pool")(
        layers.MaxPooling2D()(conv(inp))))
    return a, b


def test_equal_models_compare_bitwise():
    a, b = _pair("relu")
    result = verify.compare_models(a, b)
    assert result.bitwise and result.close
    assert result.max_abs_diff == {"pool": 0.0}


def test_different_models_are_caught():
    a, b = _pair("tanh")  # differs from relu at every value but 0
    result = verify.compare_models(a, b, batch=4)
    assert not result.bitwise and not result.close
    assert result.max_abs_diff["pool"] > 1e-3


def test_one_ulp_is_close_but_not_bitwise():
    inp = keras.Input((4,))
    a = keras.Model(inp, layers.Identity(name="out")(inp))
    b = keras.Model(inp, layers.Lambda(lambda t: t * (1 + 2.0 ** -23), name="out")(inp))
    x = np.ones((2, 4), "float32")
    result = verify.compare_models(a, b, x)
    assert not result.bitwise and result.close


def test_mismatched_outputs_raise():
    inp = keras.Input((4,))
    a = keras.Model(inp, layers.Dense(2, name="out")(inp))
    b = keras.Model(inp, layers.Dense(3, name="out")(inp))
    with pytest.raises(ValueError, match="shape or dtype"):
        verify.compare_models(a, b)


def test_random_inputs_follow_the_input_structure():
    img = keras.Input((None, 5, 3), name="img")
    ids = keras.Input((7,), dtype="int32", name="ids")
    model = keras.Model({"img": img, "ids": ids},
                        layers.Concatenate()([layers.GlobalMaxPooling2D()(img),
                                              layers.Embedding(10, 3)(ids)[:, 0]]))
    inputs = verify.random_inputs(model, batch=2, free_dim=9)
    assert inputs["img"].shape == (2, 9, 5, 3) and inputs["img"].dtype == np.float32
    assert inputs["ids"].shape == (2, 7) and inputs["ids"].dtype == np.int32
    assert np.all((inputs["ids"] >= 0) & (inputs["ids"] < 10))
    model(inputs)
