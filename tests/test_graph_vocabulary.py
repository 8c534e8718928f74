"""`tf_reorder.graph_vocabulary`: what TF's ops are to the rules."""

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import node_def_pb2, types_pb2

from tf_reorder import algebra, graph_vocabulary as ops
from tf_reorder.algebra import StepKind


def _node(op, **attrs):
    node = node_def_pb2.NodeDef(name=op.lower(), op=op)
    for key, value in attrs.items():
        if isinstance(value, list):
            node.attr[key].list.i.extend(value)
        elif isinstance(value, bytes):
            node.attr[key].s = value
        elif isinstance(value, float):
            node.attr[key].f = value
    return node


def test_activations():
    assert ops.activation_of(_node("Relu")) is algebra.TF_OPS["Relu"]
    leaky = ops.activation_of(_node("LeakyRelu", alpha=0.3))
    assert leaky.name == "LeakyRelu(alpha=0.3)" and leaky.monotonicity.keeps_order
    assert ops.activation_of(_node("Conv2D")) is None


def test_steps():
    none = lambda text: None  # noqa: E731
    assert ops.step_of(_node("MaxPool"), none).kind is StepKind.MAX_POOL
    assert ops.step_of(_node("Max"), none).reduction
    assert not ops.step_of(_node("MaxPool"), none).reduction
    assert ops.step_of(_node("Mean"), none).kind is StepKind.AVERAGE_POOL
    assert ops.step_of(_node("Reshape"), none).kind is StepKind.DATA_MOVEMENT
    assert ops.step_of(_node("Pad"), none).kind is StepKind.ZERO_PADDING
    pad_v2 = _node("PadV2")
    pad_v2.input.extend(["x", "paddings", "value"])
    assert ops.step_of(pad_v2, lambda text: np.array(-1.0)).pad_value == -1.0
    assert ops.step_of(pad_v2, none).kind is StepKind.OTHER  # not a constant: unknown
    assert ops.step_of(_node("Conv2D"), none) is None


def test_shrinks():
    assert ops.shrinks(_node("MaxPool", strides=[1, 2, 2, 1], ksize=[1, 2, 2, 1],
                             padding=b"VALID"))
    assert not ops.shrinks(_node("MaxPool", strides=[1, 1, 1, 1], ksize=[1, 1, 1, 1],
                                 padding=b"VALID"))
    assert ops.shrinks(_node("Max"))


def test_outputs_and_dtypes():
    assert ops.has_one_output("Relu") and not ops.has_one_output("Split")
    assert ops.first_output_arg("MaxPoolWithArgmax") == "output"
    relu = _node("Relu")
    relu.attr["T"].type = types_pb2.DT_HALF
    assert ops.dtype(relu) == types_pb2.DT_HALF
    assert ops.dtype(_node("MaxPool")) == types_pb2.DT_FLOAT  # stripped: the op's default


def test_the_tables_name_real_ops():
    registered = set(tf.raw_ops.__dict__)
    for table in (ops.POOL_OPS, ops.DATA_MOVEMENT_OPS, ops.ELEMENTWISE_OPS,
                  ops.GRAPPLER_NON_DECREASING_OPS, ops.GRAPPLER_NON_INCREASING_OPS,
                  ops.ACTIVATION_OPS):
        assert set(table) <= registered, set(table) - registered


def test_min_reductions_and_argmax_are_steps():
    none = lambda text: None  # noqa: E731
    minimum = ops.step_of(_node("Min"), none)
    assert minimum.kind is StepKind.MIN and minimum.reduction and ops.shrinks(_node("Min"))
    for op in ("ArgMax", "ArgMin"):
        assert ops.step_of(_node(op), none).kind is StepKind.ARG_EXTREMUM
    assert ops.FLIPPED_REDUCTIONS == {"Max": "Min", "Min": "Max"}


def _clamp(op, *bounds):
    node = _node(op)
    node.input.extend(["x", *(f"bound{i}" for i in range(len(bounds)))])
    values = {f"bound{i}": b for i, b in enumerate(bounds)}
    return ops.clamp_of(node, values.get, lambda text: [2, 8, 8, 4])


def test_clamps_with_constant_bounds():
    f, axes = _clamp("ClipByValue", np.float32(-1), np.float32(6))
    assert (f.name, f.exact, f.zero_at_zero, axes) == ("ClipByValue(x, -1, 6)", True, True,
                                                       frozenset())
    f, _ = _clamp("Maximum", np.float32(0.5))
    assert f.name == "Maximum(x, 0.5)" and not f.zero_at_zero and f.monotonicity.keeps_order
    f, _ = _clamp("Minimum", np.float32(-0.5))
    assert f.name == "Minimum(x, -0.5)" and not f.zero_at_zero
    f, axes = _clamp("Maximum", np.array([0, -1, 0, -2], np.float32))
    assert axes == frozenset({-1}) and f.zero_at_zero  # varies along the channel
    assert _clamp("Maximum", np.zeros((2, 8, 8, 4, 3), np.float32)) is None  # grows x


def test_clamps_with_a_bound_that_is_no_constant_or_nan():
    f, _ = _clamp("ClipByValue", None, np.float32(1))
    assert not f.monotonicity.keeps_order and "computed at run time" in f.name
    f, _ = _clamp("Minimum", None)
    assert not f.monotonicity.keeps_order and "NaN" in f.detail
    f, _ = _clamp("ClipByValue", np.float32(np.nan), np.float32(1))
    assert not f.monotonicity.keeps_order and f.detail == "a bound is NaN"
    node = _node("Maximum")
    node.input.extend(["zero", "x"])  # the constant first: the data is not input 0
    assert ops.clamp_of(node, {"zero": np.float32(0)}.get, lambda text: None) is None
