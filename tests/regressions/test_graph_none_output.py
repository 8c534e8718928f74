"""Regression (graph fuzzing): reorder_function on a function that returns None.

Found by `tests/fuzz_graphs.py` once its outputs could hold a None: a
tf.function may return None inside its structure (``return pool, None``); such
an entry has no output tensor, and `reorder_function` packed its flat outputs
into the structure as if every entry had one, so it crashed with TensorFlow's
"Could not pack sequence. Structure had 2 atoms, but flat_sequence had 1 items"
instead of rewriting. Fixed in `concrete_functions.reorder_function`: a None stays None.
"""

import numpy as np
import tensorflow as tf

import tf_reorder
from fuzz_graph_checks import check_graph
from fuzz_graphs import graph_case

X = np.random.default_rng(0).standard_normal((1, 4, 4, 2)).astype("float32")
SPEC = tf.TensorSpec([1, 4, 4, 2], tf.float32)


def pool(x):
    return tf.nn.max_pool2d(tf.nn.relu(x), 2, 2, "VALID")


def test_a_none_beside_a_tensor():
    concrete = tf.function(lambda x: (pool(x), None)).get_concrete_function(SPEC)
    new, report = tf_reorder.reorder_function(concrete)
    assert len(report.moved) == 1
    (a, nothing_a), (b, nothing_b) = concrete(tf.constant(X)), new(tf.constant(X))
    assert nothing_a is None and nothing_b is None
    assert a.numpy().tobytes() == b.numpy().tobytes()


def test_nones_inside_a_nested_structure():
    concrete = tf.function(
        lambda x: {"a": pool(x), "b": None, "c": [None, x]}).get_concrete_function(SPEC)
    new, _ = tf_reorder.reorder_function(concrete)
    a, b = concrete(tf.constant(X)), new(tf.constant(X))
    assert b["b"] is None and b["c"][0] is None
    assert a["a"].numpy().tobytes() == b["a"].numpy().tobytes()
    assert a["c"][1].numpy().tobytes() == b["c"][1].numpy().tobytes()


def test_a_function_that_returns_only_none():
    concrete = tf.function(lambda x: None).get_concrete_function(SPEC)
    new, report = tf_reorder.reorder_function(concrete)
    assert not report.sites and new(tf.constant(X)) is None


def test_every_fuzz_check_with_a_none_output():
    fn = tf.function(lambda x: {"outputs": (pool(x), tf.reduce_max(tf.sigmoid(x), [1, 2])),
                                "nothing": None})
    check_graph(graph_case(fn, [X], description="relu -> pool, sigmoid -> reduce_max; None",
                           exact=False))
