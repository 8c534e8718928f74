"""`reorder_function`: a rewritten ConcreteFunction called as the input is.

The same inputs (parameter names and kinds, keyword-only ones and traced Python values
included), the same output structure, and the same captured variables: the input's
`.variables`, watched by gradient tapes.
"""

import numpy as np
import pytest
import tensorflow as tf

import tf_reorder
from graph_helpers import RNG, SPEC, X, conv, pool


def test_reorder_function_keeps_captured_variables_and_structure():
    variable = tf.Variable(RNG.standard_normal((3, 3, 3, 4)).astype("float32"))
    inner = tf.function(lambda y: tf.nn.max_pool2d(tf.nn.elu(y), 2, 2, "VALID"))

    @tf.function
    def fn(x):
        h = tf.nn.conv2d(x, variable, 1, "SAME")
        branch = tf.cond(tf.reduce_sum(x) > 0,
                         lambda: tf.reduce_max(tf.tanh(h), axis=[1, 2]),
                         lambda: tf.reduce_max(tf.sigmoid(h), axis=[1, 2]))
        return {"relu": pool(tf.nn.relu(h)), "branch": branch, "inner": inner(h)}

    concrete = fn.get_concrete_function(SPEC)
    new, report = tf_reorder.reorder_function(concrete)
    assert len(report.moved) == 4, str(report)
    assert new.captured_inputs[0] is concrete.captured_inputs[0]
    for x in (X, -X):  # both branches of the cond
        a, b = concrete(tf.constant(x)), new(tf.constant(x))
        assert set(a) == set(b) == {"relu", "branch", "inner"}
        assert a["relu"].numpy().tobytes() == b["relu"].numpy().tobytes()
        for key in ("branch", "inner"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-6)
    variable.assign(variable * -2.0)  # the same variable: both see the change
    a, b = concrete(tf.constant(X)), new(tf.constant(X))
    assert a["relu"].numpy().tobytes() == b["relu"].numpy().tobytes()


def test_reorder_function_keeps_variables_and_their_gradients():
    # The variables are the input's (ConcreteFunction.variables and trainable_variables),
    # so a GradientTape watches them when the function runs: before, the result had no
    # variables and every gradient with respect to them was None.
    kernel = tf.Variable(RNG.standard_normal((3, 3, 3, 4)).astype("float32"), name="kernel")
    bias = tf.Variable(np.zeros(4, np.float32), trainable=False, name="bias")

    @tf.function
    def fn(x):
        return pool(tf.sigmoid(tf.nn.conv2d(x, kernel, 1, "SAME") + bias))

    concrete = fn.get_concrete_function(SPEC)
    new, report = tf_reorder.reorder_function(concrete)
    assert len(report.moved) == 1, str(report)
    assert [v.ref() for v in new.variables] == [v.ref() for v in concrete.variables] \
        == [kernel.ref(), bias.ref()]
    assert [v.ref() for v in new.trainable_variables] == [kernel.ref()]
    gradients = []
    for function in (concrete, new):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(function(tf.constant(X)))
        gradients.append(tape.gradient(loss, kernel))
    assert gradients[1] is not None
    np.testing.assert_allclose(gradients[1], gradients[0], rtol=1e-6, atol=1e-6)


def test_reorder_function_rejects_other_objects():
    with pytest.raises(tf_reorder.ReorderError, match="ConcreteFunction"):
        tf_reorder.reorder_function(lambda x: x)


def test_reorder_function_keeps_a_structured_input_signature():
    @tf.function
    def fn(inputs):
        return pool(tf.nn.relu(conv(inputs["image"]))) * inputs["scale"]

    spec = {"image": SPEC, "scale": tf.TensorSpec([], tf.float32)}
    concrete = fn.get_concrete_function(spec)
    new, report = tf_reorder.reorder_function(concrete)
    assert len(report.moved) == 1
    assert new.structured_input_signature == concrete.structured_input_signature
    feed = {"image": tf.constant(X), "scale": tf.constant(0.5)}
    assert concrete(feed).numpy().tobytes() == new(feed).numpy().tobytes()


def test_reorder_function_keeps_keyword_arguments_and_python_values():
    """Keyword-only tensors, and a Python None traced as a constant, are called as before."""
    @tf.function
    def fn(image, bias=None, *, scale, shift):
        out = pool(tf.nn.relu(conv(image) * scale - shift))
        return out if bias is None else out + bias

    concrete = fn.get_concrete_function(tf.TensorSpec(SPEC.shape, SPEC.dtype),
                                        scale=tf.TensorSpec([], tf.float32),
                                        shift=tf.TensorSpec([], tf.float32))
    new, report = tf_reorder.reorder_function(concrete)
    assert len(report.moved) == 1
    assert new.structured_input_signature == concrete.structured_input_signature
    image, scale, shift = tf.constant(X), tf.constant(0.5), tf.constant(-0.25)
    calls = [lambda f: f(image, scale=scale, shift=shift),
             lambda f: f(image, None, scale=scale, shift=shift),
             lambda f: f(shift=shift, image=image, scale=scale),
             lambda f: f(image, scale, shift),  # the flat signature, as a fallback
             lambda f: f(image, scale=scale)]  # a missing argument

    def outcome(call, f):
        try:
            return call(f).numpy().tobytes()
        except TypeError:
            return "TypeError"

    outcomes = [(outcome(call, concrete), outcome(call, new)) for call in calls]
    assert [a == b for a, b in outcomes] == [True] * len(calls)
    assert [a == "TypeError" for a, _ in outcomes] == [False, False, False, False, True]
