"""Regression (graph fuzzing): a pooling window of NaNs gives different values in each order.

Found at soak seed 2123: an exp after an exp overflowed, a convolution turned
inf - inf into NaN, and the outputs of the original and the rewritten graph
differed. TF's MaxPool skips NaN (a NaN never compares greater) and starts from
the lowest finite float, so a window holding only NaNs pools to -3.4e38:

- original ``max_pool(sigmoid(x))``: sigmoid(NaN) is NaN, the window gives -3.4e38;
- rewritten ``sigmoid(max_pool(x))``: the window gives -3.4e38, then sigmoid 0.0.

A window with at least one number agrees in both orders. This is a limit of the
identity on TF's kernels, not something a rewrite can check: the move is exact
for inputs whose pooling windows are not all NaN. (TF itself makes the same
swap: called as a tf.function, the original gives 0.0 too, because Grappler's
arithmetic optimizer moves the sigmoid; op by op it gives -3.4e38.) The fuzz checks compare
outputs only where the reference is finite (`fuzz_graph_checks.comparable`),
and the generator keeps chains that feed chains from overflowing.
"""

import numpy as np
import tensorflow as tf

import tf_reorder
from fuzz_graph_checks import comparable

LOWEST = np.finfo(np.float32).min


def sigmoid_pool(x):
    return tf.nn.max_pool2d(tf.sigmoid(x), 2, 2, "VALID")


def _both(x):
    """The original op by op (no graph optimizer), and tf_reorder's rewrite."""
    concrete = tf.function(sigmoid_pool).get_concrete_function(
        tf.TensorSpec(x.shape, tf.float32))
    new, report = tf_reorder.reorder_function(concrete)
    assert len(report.moved) == 1
    return sigmoid_pool(tf.constant(x)).numpy(), new(tf.constant(x)).numpy()


def test_a_window_of_nans_differs():
    x = np.full((1, 2, 2, 1), np.nan, np.float32)
    original, rewritten = _both(x)
    assert original.item() == LOWEST
    assert rewritten.item() == 0.0  # sigmoid(-3.4e38)


def test_windows_holding_a_number_agree():
    x = np.random.default_rng(0).standard_normal((1, 4, 4, 1)).astype("float32")
    x[0, 0, 0, 0] = x[0, 2, 3, 0] = np.nan
    original, rewritten = _both(x)
    np.testing.assert_allclose(rewritten, original, rtol=1e-6, atol=1e-6)
    assert np.isfinite(original).all()


def test_the_fuzz_checks_compare_only_finite_references():
    reference = np.array([1.0, np.nan, np.inf, -np.inf, LOWEST, -LOWEST, 0.0], np.float32)
    assert comparable(reference).tolist() == [True, False, False, False, False, False, True]
