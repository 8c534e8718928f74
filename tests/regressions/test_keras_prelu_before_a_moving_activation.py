"""Regression (keras soak seed 20736): a PReLU before an activation that moves.

    PReLU(shared_axes=[1]) -> LeakyReLU(0.258) -> Identity -> MaxPooling1D

The LeakyReLU moved after the pool; the PReLU did not: the check that its alphas are
the same at every position of a pool window asks whether the layers between keep the
axes where they are, and it did not know the LeakyReLU (an elementwise activation that
moves away too) does. The result's PReLU then fed the pool directly, and a second
`reorder` moved it: `reorder` was not idempotent. Fixed in
`planner._refined`: activations that move count as keeping the axes.
"""

import json

import keras
import numpy as np
from keras import layers

import tf_reorder
from rewrite_checks import check_rewrite


def _model():
    prelu = layers.PReLU(shared_axes=[1], alpha_initializer=keras.initializers.Constant(0.125),
                         name="prelu")
    return keras.Sequential([keras.Input((11, 3)), prelu,
                             layers.LeakyReLU(negative_slope=0.258, name="leaky"),
                             layers.Identity(name="identity"),
                             layers.MaxPooling1D(2, name="pool")], name="seed_20736")


def test_both_move_in_one_call():
    model = _model()
    model.layers[0].alpha.assign(np.array([[0.125, 0.25, 0.5]], np.float32))
    new, report = check_rewrite(model, moved=2)
    assert [(s.activation, s.pool) for s in report.moved] == [("prelu", "pool"),
                                                             ("leaky", "pool")]
    twice, second = tf_reorder.reorder(new, return_report=True)
    assert not second.moved, str(second)
    assert json.dumps(twice.get_config(), sort_keys=True, default=str) == \
        json.dumps(new.get_config(), sort_keys=True, default=str)
