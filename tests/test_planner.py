"""The planner: its rules on hand-built views, and one decision table through both front ends.

The first part builds `planner.DataView`s by hand (no TensorFlow involved) and checks
what `planner.plan` decides: moves, chains, limits, vetoes, near misses, the fixed
point. The second part is a table of small networks, each built once as a Keras model
and once as a tf.function graph, run through `tf_reorder.reorder` and
`tf_reorder.reorder_graph_def`: both front ends must decide each case the same way,
and where they move, the outputs must stay the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import tf_reorder
from tf_reorder import algebra, planner
from tf_reorder.algebra import Step, StepKind
from tf_reorder.view import DataView, Facts, Node, Value
from policy_files import LABELS, write_policy
from rewrite_checks import check_rewrite

RELU = algebra.keras_activation("relu")
SIGMOID = algebra.keras_activation("sigmoid")
POOL = Step(StepKind.MAX_POOL, "pool")


def _chain(*specs: tuple[str, Any], elements: int = 64) -> tuple[DataView, list[Node]]:
    """A view ``input -> spec 0 -> spec 1 -> ...``; each spec is (label, Function | Step |
    None); element counts halve after every max step."""
    view = DataView("test")
    value, nodes = Value(), []
    for label, role in specs:
        function = role if isinstance(role, algebra.Function) else None
        step = role if isinstance(role, Step) else None
        if step is not None and step.kind in algebra.MAX_STEPS:
            elements //= 4
        node = view.add(Node(label, "Op", [value], function=function, step=step,
                             elements=elements, dtype="float32"))
        nodes.append(node)
        value = node.outputs[0]
    return view, nodes


def _labels(view: DataView) -> list[str]:
    return [n.label for n in view.in_order()]


def test_an_activation_moves_after_the_pool():
    view, (conv, relu, pool) = _chain(("conv", None), ("relu", RELU), ("pool", POOL))
    result = planner.plan(view)
    (site,) = result.sites
    assert site.moved and (site.pool, site.elements_before, site.elements_after) == \
        ("pool", 64, 16)
    assert [(m.activation, m.landing, m.crossed) for m in result.moves] == \
        [(relu, pool, [pool])]
    assert _labels(view) == ["conv", "pool", "relu"]
    assert pool.inputs[0] is conv.outputs[0] and relu.inputs[0] is pool.outputs[0]


def test_a_chain_moves_in_one_round_and_keeps_its_order():
    view, _ = _chain(("conv", None), ("relu", RELU), ("sigmoid", SIGMOID),
                     ("reshape", Step(StepKind.DATA_MOVEMENT, "reshape")), ("pool", POOL))
    result = planner.plan(view)
    assert [s.moved for s in result.sites] == [True, True]
    assert _labels(view) == ["conv", "reshape", "pool", "relu", "sigmoid"]
    relu_site = result.sites[0]
    assert relu_site.between == ("reshape",)  # not the sigmoid, which moved on ahead


def test_an_earlier_activation_lands_no_further_than_a_later_one():
    # sigmoid(0) != 0 stops before the padding; the relu, which could cross it, stays
    # before the sigmoid: the two do not commute.
    view, _ = _chain(("relu", RELU), ("sigmoid", SIGMOID), ("pool1", POOL),
                     ("pad", Step(StepKind.ZERO_PADDING, "pad")), ("pool2", POOL))
    result = planner.plan(view)
    assert [(s.activation, s.pool) for s in result.sites] == [("relu", "pool1"),
                                                               ("sigmoid", "pool1")]
    assert _labels(view) == ["pool1", "relu", "sigmoid", "pad", "pool2"]


def test_an_activation_moves_on_past_a_later_pool():
    view, _ = _chain(("sigmoid", SIGMOID), ("pool1", POOL), ("relu", RELU), ("pool2", POOL))
    result = planner.plan(view)
    sigmoid, relu = result.sites
    assert (sigmoid.between, sigmoid.pool, sigmoid.elements_after) == (("pool1",), "pool2", 4)
    assert (relu.pool, relu.elements_before) == ("pool2", 16)
    assert _labels(view) == ["pool1", "pool2", "sigmoid", "relu"]


def test_refusals_say_why():
    cases = [
        ([("relu", algebra.leaky_relu(-0.1)), ("pool", POOL)], "not monotone"),
        ([("f", algebra.unknown("f")), ("pool", POOL)], "register_monotone"),
        ([("relu", RELU), ("avg", Step(StepKind.AVERAGE_POOL, "avg"))], "averages"),
        ([("sigmoid", SIGMOID), ("pad", Step(StepKind.ZERO_PADDING, "pad")), ("pool", POOL)],
         "sigmoid(0) != 0"),
        ([("neg", algebra.NEGATIVE), ("pool", POOL)], "non-increasing"),
    ]
    for specs, fragment in cases:
        view, _ = _chain(*specs)
        (site,) = planner.plan(view).sites
        assert not site.moved and fragment in site.reason, (specs, site.reason)


def test_an_inference_identity_is_crossed_for_inference_only():
    dropout = Step(StepKind.DATA_MOVEMENT, "drop", inference_only=True)
    specs = [("conv", None), ("relu", RELU), ("drop", dropout), ("pool", POOL)]
    view, _ = _chain(*specs)
    (site,) = planner.plan(view).sites
    assert not site.moved and "inference=True would let relu cross it" in site.reason
    assert site.between == ("drop",) and _labels(view) == ["conv", "relu", "drop", "pool"]
    view, _ = _chain(*specs)
    (site,) = planner.plan(view, inference=True).sites
    assert site.moved and site.between == ("drop",) and site.elements_after == 16
    assert site.notes == ("inference only: 'drop' is the identity at inference, not in "
                          "training",)
    assert _labels(view) == ["conv", "drop", "pool", "relu"]


def test_a_second_consumer_or_an_exit_keeps_the_activation():
    view, (relu, pool) = _chain(("relu", RELU), ("pool", POOL))
    view.add(Node("other", "Op", [relu.outputs[0]]))
    (site,) = planner.plan(view).sites
    assert not site.moved and site.reason == \
        "the output of 'relu' has 2 consumers ('other', 'pool')"
    view, (relu, pool) = _chain(("relu", RELU), ("pool", POOL))
    relu.outputs[0].exits = ("the output of '", "' is also a model output")
    (site,) = planner.plan(view).sites
    assert site.reason == "the output of 'relu' is also a model output"


def test_vetoes_in_their_order():
    view, (relu, pool) = _chain(("relu", RELU), ("pool", POOL))
    relu.facts = Facts(veto="a veto", late_veto="a late veto")
    assert planner.plan(view).sites[0].reason == "a veto"
    relu.facts = Facts(late_veto="a late veto")
    assert planner.plan(view).sites[0].reason == "a late veto"
    view, (relu, pool) = _chain(("relu", RELU), ("pool", POOL))
    pool.cross_veto = "'pool' has control inputs"
    (site,) = planner.plan(view).sites
    assert not site.moved and site.reason == "'pool' has control inputs"
    view, (relu, pool) = _chain(("relu", RELU), ("pool", POOL))
    pool.dtype = "float16"
    assert "'pool' computes in float16, the activation in float32" in \
        planner.plan(view).sites[0].reason


def test_a_move_that_adds_work_is_refused():
    view, (relu, pool) = _chain(("relu", RELU), ("pool", POOL))
    pool.elements = 64
    (site,) = planner.plan(view).sites
    assert not site.moved and "not smaller (64 >= 64" in site.reason


def test_unknown_sizes_need_a_shrinking_max_and_no_padding():
    shrinking = dataclasses.replace(POOL, shrinks=True)
    view, nodes = _chain(("relu", RELU), ("pool", shrinking))
    for node in nodes:
        node.elements = None
    (site,) = planner.plan(view).sites
    assert site.moved and site.notes == (planner.UNKNOWN_SIZE_NOTE,)
    view, nodes = _chain(("relu", RELU), ("pad", Step(StepKind.ZERO_PADDING, "pad")),
                         ("pool", shrinking))
    for node in nodes:
        node.elements = None
    assert "pads" in planner.plan(view).sites[0].reason


def test_a_function_that_varies_by_position_is_uniform_only_per_channel():
    prelu = algebra.prelu(0.25, uniform=True)
    for varies, channel, keeps, moves in [({3}, 3, True, True), ({1, 2, 3}, 3, True, False),
                                          ({3}, 3, False, False), (set(), None, False, True)]:
        view, (act, step, pool) = _chain(("prelu", prelu),
                                         ("step", Step(StepKind.DATA_MOVEMENT, "step")),
                                         ("pool", POOL))
        act.facts = Facts(varies_along=frozenset(varies))
        pool.facts = Facts(channel_axis=channel)
        step.facts = Facts(keeps_axes=keeps)
        (site,) = planner.plan(view).sites
        assert site.moved is moves, (varies, channel, keeps, site.reason)


def test_a_near_miss_names_what_is_in_the_way():
    view, (relu, bn, pool) = _chain(("relu", RELU), ("bn", None), ("pool", POOL))
    bn.kind, bn.facts = "BatchNormalization", Facts(elementwise=True)
    (site,) = planner.plan(view).sites
    assert not site.moved and (site.between, site.pool) == (("bn",), "pool")
    assert site.reason == ("BatchNormalization 'bn' between relu and 'pool' is not data "
                           "movement, padding or a max")
    # An operation that mixes elements (a convolution) is not a near miss, nor is a max
    # further than NEAR_MISS_DEPTH operations on.
    view, (relu, conv, pool) = _chain(("relu", RELU), ("conv", None), ("pool", POOL))
    assert planner.plan(view).sites == []
    specs = [("relu", RELU)] + [(f"bn{i}", None) for i in range(planner.NEAR_MISS_DEPTH + 1)]
    view, nodes = _chain(*specs, ("pool", POOL))
    for node in nodes[1:-1]:
        node.facts = Facts(elementwise=True)
    assert planner.plan(view).sites == []


def test_a_runtime_swap_hazard_keeps_the_move_unless_the_producer_moves_too():
    view, (g, relu, pool) = _chain(("g", None), ("relu", RELU), ("pool", POOL))
    g.facts = Facts(runtime_swap="max", runtime_swap_reason="which it gets wrong")
    (site,) = planner.plan(view).sites
    assert site.reason == "'pool' would then read Op 'g', which it gets wrong"
    view, (g, relu, pool) = _chain(("g", SIGMOID), ("relu", RELU), ("pool", POOL))
    g.facts = Facts(runtime_swap="max", runtime_swap_reason="which it gets wrong")
    assert [s.moved for s in planner.plan(view).sites] == [True, True]
    view, (g, relu, pool) = _chain(("g", None), ("relu", RELU), ("pool", POOL))
    g.facts = Facts(runtime_swap="reduction", runtime_swap_reason="x")
    assert planner.plan(view).sites[0].moved  # a pool, not a reduction: no swap


def test_the_result_is_a_fixed_point():
    view, _ = _chain(("a", SIGMOID), ("pool1", POOL), ("b", RELU), ("c", SIGMOID),
                     ("pool2", POOL), ("d", algebra.keras_activation("tanh")),
                     ("pool3", POOL))
    first = planner.plan(view)
    assert all(s.moved for s in first.sites)
    again = planner.plan(view)
    assert not again.moves and not any(s.moved for s in again.sites)


def test_a_policy_decides_last(tmp_path):
    policy = tf_reorder.load_policy("tflite", path=write_policy(tmp_path / "policy.json"))
    view, _ = _chain(("relu", RELU), ("pool", POOL))  # measured slower on tflite
    (site,) = planner.plan(view, policy).sites
    assert not site.moved and site.policy == LABELS["tflite"] and "1.04" in site.reason
    view, _ = _chain(("neg", algebra.NEGATIVE), ("pool", POOL))  # the rules refuse first
    assert "non-increasing" in planner.plan(view, policy).sites[0].reason


# ---------------------------------------------------------------------------
# One decision table, two front ends.


@dataclasses.dataclass(frozen=True)
class Case:
    """A small network built both ways; what both front ends must decide."""

    name: str
    keras_net: Callable[[Any], Any]  # on keras.Input((8, 8, 4))
    graph: Callable[[Any], Any]  # on x: [1, 8, 8, 4]
    moved: tuple[bool, ...]  # per site, in order
    reason: str = ""  # a fragment of the first kept site's reason, either front end
    inference: bool = False  # the Keras pass's mode (a GraphDef is an inference graph)


def _apply(*stack: Any) -> Callable[[Any], Any]:
    def net(x: Any) -> Any:
        for layer in stack:
            x = layer(x)
        return x
    return net


def _pool(x: Any) -> Any:
    return tf.nn.max_pool2d(x, 2, 2, "VALID")


def _bn(x: Any) -> Any:
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        x, tf.ones([4]), tf.zeros([4]), tf.zeros([4]), tf.ones([4]), is_training=False)
    return y


CASES = [
    Case("relu_pool", _apply(layers.ReLU(), layers.MaxPooling2D()),
         lambda x: _pool(tf.nn.relu(x)), (True,)),
    Case("sigmoid_global_max", _apply(layers.Activation("sigmoid"), layers.GlobalMaxPooling2D()),
         lambda x: tf.reduce_max(tf.sigmoid(x), axis=[1, 2]), (True,)),
    Case("tanh_reshape_pool", _apply(layers.Activation("tanh"), layers.Reshape((8, 8, 4)),
                                     layers.MaxPooling2D()),
         lambda x: _pool(tf.reshape(tf.tanh(x), [1, 8, 8, 4])), (True,)),
    Case("tanh_pad_pool", _apply(layers.Activation("tanh"), layers.ZeroPadding2D(),
                                 layers.MaxPooling2D()),
         lambda x: _pool(tf.pad(tf.tanh(x), [[0, 0], [1, 1], [1, 1], [0, 0]])), (True,)),
    Case("sigmoid_pad_pool", _apply(layers.Activation("sigmoid"), layers.ZeroPadding2D(),
                                    layers.MaxPooling2D()),
         lambda x: _pool(tf.pad(tf.sigmoid(x), [[0, 0], [1, 1], [1, 1], [0, 0]])), (False,),
         "(0) != 0"),
    Case("relu_average", _apply(layers.ReLU(), layers.AveragePooling2D(2)),
         lambda x: tf.nn.avg_pool2d(tf.nn.relu(x), 2, 2, "VALID"), (False,), "averages"),
    Case("leaky_negative", lambda x: layers.MaxPooling2D()(keras.ops.leaky_relu(x, -0.3)),
         lambda x: _pool(tf.nn.leaky_relu(x, -0.3)), (False,), "not monotone"),
    # Grappler's family: min reductions, the max <-> min flip, clamps, argmax refused.
    Case("negative_max", lambda x: keras.ops.max(keras.ops.negative(x), axis=(1, 2)),
         lambda x: tf.reduce_max(tf.negative(x), axis=[1, 2]), (True,)),
    Case("negative_min", lambda x: keras.ops.min(keras.ops.negative(x), axis=(1, 2)),
         lambda x: tf.reduce_min(tf.negative(x), axis=[1, 2]), (True,)),
    Case("relu_min", lambda x: keras.ops.min(keras.ops.relu(x), axis=(1, 2)),
         lambda x: tf.reduce_min(tf.nn.relu(x), axis=[1, 2]), (True,)),
    Case("negative_relu_max",
         lambda x: keras.ops.max(keras.ops.relu(keras.ops.negative(x)), axis=(1, 2)),
         lambda x: tf.reduce_max(tf.nn.relu(tf.negative(x)), axis=[1, 2]), (True, True)),
    Case("negative_pool", lambda x: layers.MaxPooling2D()(keras.ops.negative(x)),
         lambda x: _pool(tf.negative(x)), (False,), "no min counterpart"),
    Case("clip_pool", lambda x: layers.MaxPooling2D()(keras.ops.clip(x, -0.5, 0.5)),
         lambda x: _pool(tf.raw_ops.ClipByValue(t=x, clip_value_min=tf.constant(-0.5),
                                                clip_value_max=tf.constant(0.5))), (True,)),
    Case("sigmoid_argmax", lambda x: keras.ops.argmax(keras.ops.sigmoid(x), axis=-1),
         lambda x: tf.argmax(tf.sigmoid(x), axis=-1), (False,), "returns an index"),
    Case("no_work_saved", _apply(layers.ReLU(), layers.MaxPooling2D(1, 1)),
         lambda x: tf.nn.max_pool2d(tf.nn.relu(x), 1, 1, "VALID"), (False,), "not smaller"),
    Case("chain", _apply(layers.ELU(), layers.ReLU(), layers.MaxPooling2D()),
         lambda x: _pool(tf.nn.relu(tf.nn.elu(x))), (True, True)),
    Case("ops_sigmoid_max", lambda x: keras.ops.max(keras.ops.sigmoid(x), axis=(1, 2)),
         lambda x: tf.reduce_max(tf.sigmoid(x), axis=[1, 2]), (True,)),
    Case("second_consumer",
         lambda x: layers.Concatenate()([layers.Flatten()(layers.MaxPooling2D()(y := layers.ReLU()(x))),
                                         layers.Flatten()(y)]),
         lambda x: tf.concat([tf.reshape(_pool(y := tf.nn.relu(x)), [1, -1]),
                              tf.reshape(y, [1, -1])], axis=1), (False,), "2 consumers"),
    Case("batch_norm_near_miss", _apply(layers.ReLU(), layers.BatchNormalization(),
                                        layers.MaxPooling2D()),
         lambda x: _pool(_bn(tf.nn.relu(x))), (True, True), inference=True),
]


def _keras_report(case: Case) -> tf_reorder.Report:
    inputs = keras.Input((8, 8, 4))
    model = keras.Model(inputs, case.keras_net(inputs), name=case.name)
    _, report = check_rewrite(model, moved=sum(case.moved), exact=False,
                              inference=case.inference)
    return report


def _graph_report(case: Case) -> tf_reorder.Report:
    concrete = tf.function(case.graph).get_concrete_function(
        tf.TensorSpec([1, 8, 8, 4], tf.float32))
    graph_def = concrete.graph.as_graph_def(add_shapes=True)
    fetches = [t.name for t in concrete.outputs]
    new, report = tf_reorder.reorder_graph_def(graph_def, preserve=fetches)
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 4)).astype("float32")
    before = _run(graph_def, fetches, x)
    after = _run(new, fetches, x)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
    return report


def _run(graph_def: Any, fetches: list[str], x: np.ndarray) -> list[np.ndarray]:
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        placeholder = next(op for op in graph.get_operations() if op.type == "Placeholder")
        return session.run(fetches, {placeholder.outputs[0]: x})


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_both_front_ends_decide_alike(case):
    keras_report = _keras_report(case)
    graph_report = _graph_report(case)
    for report in (keras_report, graph_report):
        assert tuple(s.moved for s in report.sites) == case.moved, str(report)
        kept = [s for s in report.sites if not s.moved]
        if case.reason:
            assert case.reason in kept[0].reason, str(report)
    assert [(s.elements_before, s.elements_after) for s in keras_report.sites] == \
        [(s.elements_before, s.elements_after) for s in graph_report.sites]
