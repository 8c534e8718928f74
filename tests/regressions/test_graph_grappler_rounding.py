"""Regression (graph soak, run 6): TF's runtime rounds or fails a graph by itself.

The soak of graph seeds 70000-74999 found ten failures of the fuzz checks' *called*
stage (`fuzz_graph_checks._check_function`); in every one the rewritten function, called
with Grappler off, gives the original graph's values bitwise, and reorder_graph_def's
result (run in a Session) is right:

1. Grappler rounds the rewritten graph differently (seeds 70849, 71174, 71721, 72662,
   73436, 73670, 74955): its arithmetic optimizer folds the adds that the move made
   adjacent into one AddN, in another order (``f(x) + f(2x)`` after a per-channel add
   moved next to it), and its remapper fuses the moved FusedBatchNorm or Mul with its new
   neighbours into a kernel that rounds once. The checks now accept a called result
   that differs from the reference only where the same function with Grappler off is
   exact, and then within the dtype's tolerance (unless a step function, Floor in
   70849, turns a rounding into a step).
2. TF fails the original too (seeds 70428, 71969, 74353): Grappler's remapper fuses
   ``FusedBatchNormV3 -> Tanh`` into a kernel that does not exist on CPU ("Fusion is not
   implemented: [FusedBatchNorm,Tanh]"), so the original and the rewritten calls both
   raise. The checks treat two calls that fail with the same error type alike.
"""

import numpy as np
import pytest
import tensorflow as tf

import tf_reorder
from fuzz_graph_checks import _feeds, check_graph, run_function, without_grappler
from fuzz_graphs import random_graph

ROUNDED_SEEDS = [70849, 73436, 73670]
FAILING_SEED = 70428


@pytest.mark.parametrize("seed", ROUNDED_SEEDS)
def test_with_grappler_off_the_rewritten_call_is_bitwise_the_original(seed):
    case = random_graph(seed)
    new, report = tf_reorder.reorder_function(case.concrete)
    assert report.moved
    feeds = _feeds(new, case.inputs)
    with without_grappler():
        original, _ = run_function(case.concrete, feeds)
        rewritten, _ = run_function(new, feeds)
    for xs, ys in zip(original, rewritten, strict=True):
        for x, y in zip(xs, ys, strict=True):
            assert x.tobytes() == y.tobytes()


@pytest.mark.parametrize("seed", [*ROUNDED_SEEDS, FAILING_SEED])
def test_the_fuzz_checks_hold(seed):
    check_graph(random_graph(seed))


def test_tf_fails_the_original_fused_batch_norm_then_tanh():
    case = random_graph(FAILING_SEED)
    feeds = _feeds(case.concrete, case.inputs)
    with pytest.raises(tf.errors.UnimplementedError, match="FusedBatchNorm,Tanh"):
        run_function(case.concrete, feeds)  # if this stops raising, TF is fixed
    with without_grappler():
        values, _ = run_function(case.concrete, feeds)
    assert all(np.isfinite(v).all() for vs in values for v in vs)
