"""Regression (graph fuzzing): with unknown sizes, a move across MirrorPad added work.

Where static shapes are unknown, the pass moves an activation only where "no
input size could make it add work" (`reorder_graph_def`): nothing on the path
pads and some pool on it is strided. MirrorPad counted as pure data movement, so
``relu -> mirror_pad(2 each side) -> max_pool(1x1, stride 2)`` on an input of
unknown height and width was moved, and on a 3x3 input relu then ran on 16
pooled elements instead of 9. The same graph with static shapes was refused
("the pooled tensor is not smaller (16 >= 9 elements)"). Fixed: the graph front end
marks MirrorPad as a step that `grows`, and the planner's size rule (`planner._sized`)
counts it as a pad (any f still crosses it where the sizes show the move pays).
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import tf_reorder
from fuzz_graph_checks import FuzzFailure, check_graph
from fuzz_graphs import graph_case
from tf_reorder import planner
from tf_reorder.algebra import StepKind


def mirror_then_pool(x):
    padded = tf.pad(tf.nn.relu(x), [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
    return tf.nn.max_pool2d(padded, 1, 2, "VALID")


def _report(spec):
    concrete = tf.function(mirror_then_pool).get_concrete_function(spec)
    graph_def = concrete.graph.as_graph_def(add_shapes=True)
    _, report = tf_reorder.reorder_graph_def(graph_def,
                                             preserve=[t.name for t in concrete.outputs])
    return report


def test_unknown_sizes_through_mirror_pad_are_kept():
    (site,) = _report(tf.TensorSpec([1, None, None, 1], tf.float32)).sites
    assert not site.moved
    assert site.reason == ("input size unknown and 'MirrorPad' pads: cannot show that the "
                           "move removes work")


def test_known_sizes_decide_as_before():
    (site,) = _report(tf.TensorSpec([1, 3, 3, 1], tf.float32)).sites
    assert not site.moved and "16 >= 9" in site.reason
    (site,) = _report(tf.TensorSpec([1, 12, 12, 1], tf.float32)).sites
    assert site.moved and (site.elements_before, site.elements_after) == (144, 64)


def test_the_fuzz_checks_catch_the_old_rule(monkeypatch):
    """The checks compare the run-time sizes of a move whose sizes are not static."""
    x = np.random.default_rng(0).standard_normal((1, 3, 3, 1)).astype("float32")
    case = graph_case(tf.function(mirror_then_pool), [x], exact=True,
                      specs=[tf.TensorSpec([1, None, None, 1], tf.float32, name="x0")],
                      description="relu -> mirror_pad(2) -> max_pool(1, 2), 3x3 input")
    check_graph(case)
    def old_rule(view, node):  # MirrorPad as plain data movement
        step = view.step(node)
        return dataclasses.replace(step, shrinks=step.kind is StepKind.MAX_POOL
                                   and view.shrinks(node))

    monkeypatch.setattr(planner, "_sized", old_rule)
    with pytest.raises(FuzzFailure, match=r"adds work: \(1, 3, 3, 1\) -> \(1, 4, 4, 1\)"):
        check_graph(case)
