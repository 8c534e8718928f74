"""Regression (graph fuzzing): TF's own runtime gets a tf.cond branch wrong.

Found by `tests/fuzz_graphs.py` (seed 99 of the first generator): the ORIGINAL
tf.function returned an empty tensor, shape (0,), where its graph computes a
(3, 10, 5, 3) one; the rewritten function was right. Minimized, on TF 2.21 CPU:
inside a tf.cond branch, ``max_pool(reshape(relu(x)))`` with a reshape to the same
shape returns an empty tensor when the function is called (Grappler on; turning
off Grappler's arithmetic or dependency optimizer avoids it; without the
reshape, outside a cond, or with an Identity instead it is right). It is a
Grappler bug, not one of tf_reorder: Grappler's arithmetic optimizer is also
what swaps ``MaxPool(f(x))`` itself.

So the fuzz checks take the graph's meaning from a Session with Grappler off,
and where the original function called normally disagrees with it, they check
the rewritten function's graph in such a Session too (`fuzz_graph_checks`).
"""

import numpy as np
import pytest
import tensorflow as tf

import tf_reorder
from fuzz_graph_checks import check_graph
from fuzz_graphs import graph_case

X = (np.random.default_rng(0).standard_normal((1, 4, 4, 1)) + 0.5).astype("float32")
EXPECTED = np.maximum(X, 0)[:, :, ::2, :]  # relu, then a 1x1 window with stride (1, 2)


def branch(x):
    return tf.nn.max_pool2d(tf.reshape(tf.nn.relu(x), [1, 4, 4, 1]), 1, [1, 2], "VALID")


def function():
    return tf.function(lambda x: tf.cond(tf.reduce_sum(x) > 0, lambda: branch(x),
                                         lambda: tf.zeros([1, 4, 2, 1])), autograph=False)


def concrete():
    return function().get_concrete_function(tf.TensorSpec([1, 4, 4, 1], tf.float32))


@pytest.mark.xfail(strict=True, reason="TF 2.21: Grappler returns an empty tensor from "
                   "max_pool(reshape(relu(x))) in a tf.cond branch. If this passes, TF is "
                   "fixed: drop the Session fallback in fuzz_graph_checks._check_function.")
def test_tf_runs_the_original_right():
    assert X.sum() > 0
    np.testing.assert_array_equal(concrete()(tf.constant(X)).numpy(), EXPECTED)


def test_the_rewritten_function_is_right():
    new, report = tf_reorder.reorder_function(concrete())
    assert len(report.moved) == 1  # relu after the pool, inside the branch
    assert new(tf.constant(X)).numpy().tobytes() == EXPECTED.tobytes()


def test_the_fuzz_checks_hold_where_tf_gets_the_original_wrong():
    check_graph(graph_case(function(), [X], exact=True,
                           description="tf.cond(sum(x) > 0, max_pool(reshape(relu(x))), 0)"))
