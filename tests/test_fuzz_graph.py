"""Differential fuzzing of the GraphDef / tf.function pass: 300 fixed random graphs.

Each seed builds a random tf.function (`fuzz_graphs.random_graph`) and runs every
check of `fuzz_graph_checks.check_graph` on it: the outputs of `reorder_graph_def`'s
and `reorder_function`'s results equal the original's (bitwise for the relu
family, clamps and Neg), the input is untouched, the report's moves and
`elements_saved` match a count made from the graphs (with the Max and Min
reductions a Neg crossed flipped, and nothing moved past an ArgMax or ArgMin), and
further passes reach a fixed point. A failing
seed's message describes the graph; reproduce it with
``fuzz_graph_checks.check_graph(fuzz_graphs.random_graph(SEED))`` (from tests/),
or soak more seeds with ``python tools/fuzz_soak.py --kind=graph``. Failures
found so far are minimized under tests/regressions/test_graph_*.py. The last
tests here show that the checks do fail when the pass is broken.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import tf_reorder
from fuzz_graph_checks import FuzzFailure, check_graph, independent_moves, tag_origins
from fuzz_graphs import graph_case, random_graph
from tf_reorder import algebra, graph_pass

SEEDS = range(300)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_graph(seed):
    check_graph(random_graph(seed))


def _body_signature(graph_def):
    """The graph's nodes (op, name, inputs) per body, function names left out."""
    bodies = [sorted((n.op, n.name, tuple(n.input)) for n in graph_def.node)]
    bodies += sorted(sorted((n.op, n.name) for n in f.node_def) for f in graph_def.library.function)
    return bodies


def test_a_seed_gives_the_same_graph_every_time():
    for seed in (3, 99, 250):
        first, second = random_graph(seed), random_graph(seed)
        assert first.description == second.description
        assert _body_signature(first.concrete.graph.as_graph_def()) == \
            _body_signature(second.concrete.graph.as_graph_def())
        for a, b in zip(first.inputs, second.inputs, strict=True):
            assert a.tobytes() == b.tobytes()


def test_the_seeds_cover_every_kind_of_site():
    """The first CI seeds already reach every placement, op kind, extra and dtype."""
    descriptions = "\n".join(random_graph(seed).description for seed in range(60))
    for words in ("(top,", "(cond,", "(switch,", "(while,", "(nested,", "(nested_twice,",
                  "conv1d", "conv3d", "fused_batch_norm", "batch_normalization(scale",
                  "MaxPoolV2", "max_pool_with_argmax",
                  "reduce_max", "avg_pool", "pad(zeros", "mirror_pad", "transpose",
                  "[control input]", "[also an output]", "[fetched]", "float16", "bfloat16",
                  "float64", "with None", "multiply channels", "add channels", "bias_add [",
                  # min reductions, a Neg the rules move past a reduction (and flip it),
                  # clamps (one op, two ops, per-channel, a bound computed at run time)
                  "reduce_min", "[Neg must move past it]", "ClipByValue(x, ",
                  "minimum(maximum(x, ", "maximum(x, [", "[bound computed at run time]"):
        assert words in descriptions, words
    assert "argmax(axis" in descriptions or "argmin(axis" in descriptions


# -- the checks fail when the pass is wrong ----------------------------------------------

X = np.random.default_rng(0).standard_normal((2, 6, 6, 3)).astype("float32")


def _sigmoid_pad_pool():
    fn = tf.function(lambda x: tf.nn.max_pool2d(
        tf.pad(tf.sigmoid(x), [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, "VALID"))
    return graph_case(fn, [X], description="sigmoid -> pad(zeros) -> max_pool(3, 2)",
                      exact=False)


def test_a_wrong_rule_is_caught(monkeypatch):
    check_graph(_sigmoid_pad_pool())  # refused: sigmoid(0) != 0
    monkeypatch.setitem(algebra.TF_OPS, "Sigmoid",
                        dataclasses.replace(algebra.TF_OPS["Sigmoid"], zero_at_zero=True))
    with pytest.raises(FuzzFailure, match="differs beyond"):
        check_graph(_sigmoid_pad_pool())


def test_a_wrong_count_is_caught(monkeypatch):
    fn = tf.function(lambda x: tf.nn.max_pool2d(tf.nn.relu(x), 2, 2, "VALID"))
    case = graph_case(fn, [X], description="relu -> max_pool", exact=True)
    check_graph(case)
    elements = graph_pass._Body.elements
    monkeypatch.setattr(graph_pass._Body, "elements",
                        lambda self, node: elements(self, node) + (node.op == "MaxPool"))
    with pytest.raises(FuzzFailure, match="the report saves 80 elements per sample, the "
                       "graph's tensors 81"):
        check_graph(case)


def test_a_changed_input_is_caught(monkeypatch):
    fn = tf.function(lambda x: tf.nn.max_pool2d(tf.nn.relu(x), 2, 2, "VALID"))
    case = graph_case(fn, [X], description="relu -> max_pool", exact=True)
    reorder = graph_pass.reorder_graph_def

    def in_place(graph_def, **kwargs):
        result = reorder(graph_def, **kwargs)
        graph_def.node[0].device = "/device:CPU:0"
        return result
    monkeypatch.setattr("tf_reorder.reorder_graph_def", in_place)
    with pytest.raises(FuzzFailure, match="changed its input GraphDef"):
        check_graph(case)


def _neg_max():
    fn = tf.function(lambda x: tf.reduce_max(tf.negative(x), axis=[1, 2]), autograph=False)
    return graph_case(fn, [X], description="neg -> reduce_max(axes [1, 2])", exact=True)


def test_a_flip_left_undone_is_caught(monkeypatch):
    check_graph(_neg_max())  # moves: reduce_min, then neg
    monkeypatch.setattr(graph_pass._View, "flip", lambda self, node: None)
    with pytest.raises(FuzzFailure, match="not bitwise equal"):
        check_graph(_neg_max())


def test_a_flip_without_a_neg_is_caught_on_the_nodes():
    """The node check alone (values aside): a Max that became a Min where no Neg crossed
    it, or a Min left a Max where one did."""
    case = _neg_max()
    graph_def = case.concrete.graph.as_graph_def(add_shapes=True)
    fetches = [t.name for t in case.concrete.outputs]
    traced, _ = tf_reorder.reorder_graph_def(tag_origins(graph_def), preserve=fetches)
    (move,) = independent_moves(case, graph_def, traced)
    assert graph_def.node[[n.name for n in graph_def.node].index(move.lands_as)].op == "Max"
    for node in traced.node:
        if node.op == "Min":
            node.op = "Max"  # the pass forgot to flip it
    with pytest.raises(FuzzFailure, match="the reductions flipped"):
        independent_moves(case, graph_def, traced)
    plain = tf.function(lambda x: tf.reduce_max(tf.nn.relu(x), axis=[1, 2]), autograph=False)
    case = graph_case(plain, [X], description="relu -> reduce_max", exact=True)
    graph_def = case.concrete.graph.as_graph_def(add_shapes=True)
    fetches = [t.name for t in case.concrete.outputs]
    traced, _ = tf_reorder.reorder_graph_def(tag_origins(graph_def), preserve=fetches)
    for node in traced.node:
        if node.op == "Max":
            node.op = "Min"  # flipped for a non-decreasing activation
    with pytest.raises(FuzzFailure, match="the reductions flipped"):
        independent_moves(case, graph_def, traced)


def test_a_neg_kept_where_the_rules_move_it_is_caught(monkeypatch):
    case = _neg_max()
    neg = next(op.name for op in case.concrete.graph.get_operations() if op.type == "Neg")
    case = dataclasses.replace(case, expected_moves=(neg,))
    check_graph(case)
    monkeypatch.setitem(algebra.TF_OPS, "Neg", dataclasses.replace(
        algebra.TF_OPS["Neg"], monotonicity=algebra.Monotonicity.NOT_MONOTONE))
    with pytest.raises(FuzzFailure, match="the rules move 'Neg"):
        check_graph(case)


def test_a_move_past_an_index_is_caught(monkeypatch):
    fn = tf.function(lambda x: tf.cast(tf.math.argmax(tf.nn.relu(x), axis=1), tf.float32),
                     autograph=False)
    case = graph_case(fn, [X], description="relu -> argmax(axis 1) -> cast", exact=True)
    check_graph(case)  # refused: an index
    monkeypatch.setitem(graph_pass.ops.POOL_OPS, "ArgMax", algebra.StepKind.MAX_POOL)
    graph_def = case.concrete.graph.as_graph_def(add_shapes=True)
    fetches = [t.name for t in case.concrete.outputs]
    traced, report = tf_reorder.reorder_graph_def(tag_origins(graph_def), preserve=fetches)
    assert len(report.moved) == 1
    with pytest.raises(FuzzFailure, match="now \\('ArgMax', ''\\), which is not a max or a min"):
        independent_moves(case, graph_def, traced)
