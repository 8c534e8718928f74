"""TensorFlow's vocabulary for the rules: which ops are activations, steps, or else.

The GraphDef front end (`graph_pass`) asks this module what an op is: an activation
(`activation_of`; a clamp by constants, `clamp_of`; a per-channel affine map,
`affine_of`), a step between an activation and a pool (`step_of`: data movement, padding,
a max, a min, an average or an argmax), an elementwise op that makes a near miss, or one that
Grappler's arithmetic optimizer swaps with a max after it itself. It decides no move.

Example:

    activation_of(node)        # algebra.TF_OPS["Relu"] for a Relu NodeDef, else None
    step_of(node, constant)    # Step(MAX_POOL, ...) for a MaxPool NodeDef
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from tensorflow.core.framework import node_def_pb2
from tensorflow.python.framework import op_def_registry

from tf_reorder import algebra, view
from tf_reorder.algebra import Step, StepKind
from tf_reorder.errors import ReorderError

POOL_OPS: dict[str, StepKind] = {
    "MaxPool": StepKind.MAX_POOL,
    "MaxPoolV2": StepKind.MAX_POOL,
    "MaxPool3D": StepKind.MAX_POOL,
    "Max": StepKind.MAX_POOL,
    "Min": StepKind.MIN,
    "ArgMax": StepKind.ARG_EXTREMUM,
    "ArgMin": StepKind.ARG_EXTREMUM,
    "MaxPoolWithArgmax": StepKind.MAX_POOL_WITH_ARGMAX,
    "AvgPool": StepKind.AVERAGE_POOL,
    "AvgPool3D": StepKind.AVERAGE_POOL,
    "Mean": StepKind.AVERAGE_POOL,
}
REDUCTION_OPS = frozenset({"Max", "Min", "Mean", "ArgMax", "ArgMin"})
FLIPPED_REDUCTIONS = {"Max": "Min", "Min": "Max"}  # past a non-increasing activation
DATA_MOVEMENT_OPS = frozenset({"Identity", "Reshape", "Transpose", "Squeeze", "ExpandDims",
                               "MirrorPad"})
# Ops Grappler's arithmetic optimizer swaps with a max after them
# (IsElementWiseMonotonic in tensorflow/core/grappler/op_types.cc); a non-increasing
# one turns a Max reduction into a Min, and is not swapped with a pool.
GRAPPLER_NON_DECREASING_OPS = frozenset({
    "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Elu", "Erf", "Exp", "Expm1", "Floor",
    "Log", "Log1p", "Relu", "Relu6", "Rint", "Selu", "Sigmoid", "Sign", "Sinh", "Softsign",
    "Softplus", "Sqrt", "Tanh"})
GRAPPLER_NON_INCREASING_OPS = frozenset({"Acos", "Erfc", "Neg", "Rsqrt"})
GRAPPLER_SWAPS = {**{op: "max" for op in GRAPPLER_NON_DECREASING_OPS},
                   **{op: "reduction" for op in GRAPPLER_NON_INCREASING_OPS}}
GRAPPLER_HAZARD = ("which Grappler's arithmetic optimizer swaps with the pool itself, and "
                   "TF 2.21 gets that swap wrong in some graphs (a Split's second output, a "
                   "Reshape in a tf.cond branch)")
ACTIVATION_OPS = frozenset(algebra.TF_OPS) | {"LeakyRelu"}


def step_of(node: node_def_pb2.NodeDef,
            constant: Callable[[str], Any]) -> Step | None:
    """The algebra's view of a node between an activation and a pool.

    `constant(input)` is the value of a Const input (None if it is not one).
    """
    op = node.op
    if op in POOL_OPS:  # `shrinks` is looked up only where sizes are unknown
        return Step(POOL_OPS[op], node.name, reduction=op in REDUCTION_OPS)
    if op in DATA_MOVEMENT_OPS:
        return Step(StepKind.DATA_MOVEMENT, node.name)
    if op == "Pad":
        return Step(StepKind.ZERO_PADDING, node.name)
    if op == "PadV2":
        value = constant(node.input[2]) if len(node.input) > 2 else None
        if value is None or value.size != 1:
            return Step(StepKind.OTHER, node.name)
        return Step(StepKind.ZERO_PADDING, node.name, pad_value=float(value.reshape(())))
    return None


def shrinks(node: node_def_pb2.NodeDef) -> bool:
    """Whether a max makes every input larger than its window smaller (unknown sizes)."""
    if node.op in ("Max", "Min"):
        return True
    if node.op in ("MaxPool", "MaxPool3D", "MaxPoolWithArgmax"):
        strides = list(node.attr["strides"].list.i)
        ksize = list(node.attr["ksize"].list.i)
        padding = node.attr["padding"].s.decode()
        return any(s > 1 for s in strides) or (padding == "VALID" and any(k > 1 for k in ksize))
    return False


def activation_of(node: node_def_pb2.NodeDef) -> algebra.Function | None:
    if node.op not in ACTIVATION_OPS:  # most nodes: no attr look-up
        return None
    attrs = {"alpha": node.attr["alpha"].f} if "alpha" in node.attr else {}
    return algebra.tf_op(node.op, attrs)


_first_output_args: dict[str, str] = {}


def first_output_arg(op: str) -> str:
    if op not in _first_output_args:
        op_def = op_def_registry.get(op)
        if op_def is None or not op_def.output_arg:
            raise ReorderError(f"op '{op}' is not registered in this TensorFlow")
        _first_output_args[op] = op_def.output_arg[0].name
    return _first_output_args[op]


_single_output: dict[str, bool] = {}


def has_one_output(op: str) -> bool:
    """Whether every op of this type has exactly one output (most ops: yes)."""
    if op not in _single_output:
        op_def = op_def_registry.get(op)
        _single_output[op] = op_def is not None and len(op_def.output_arg) == 1 and \
            not op_def.output_arg[0].number_attr and not op_def.output_arg[0].type_list_attr
    return _single_output[op]


def dtype(node: node_def_pb2.NodeDef) -> int | None:
    """The node's T attr; SavedModels strip attrs equal to the op's default."""
    if "T" in node.attr:
        return node.attr["T"].type
    op_def = op_def_registry.get(node.op)
    for attr in op_def.attr if op_def is not None else ():
        if attr.name == "T" and attr.HasField("default_value"):
            return attr.default_value.type
    return None


# Ops that map their input element by element (or channel by channel) that no rule
# crosses: an activation they stop short of a max is reported as a near miss.
ELEMENTWISE_OPS = frozenset({
    "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "BiasAdd", "Add", "AddV2",
    "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "ClipByValue", "Cast", "Abs", "Square",
    "Sqrt", "Rsqrt", "Reciprocal", "Log", "Log1p", "Sin", "Cos", "Sinh", "Cosh", "Asin",
    "Acos", "Acosh", "Atanh", "Erfc"})
FACTS_OF_OP = {
    **{op: view.Facts(elementwise=True) for op in ELEMENTWISE_OPS},
    **{op: view.Facts(grows=True) for op in ("Pad", "PadV2", "MirrorPad")},  # they enlarge
    "Identity": view.Facts(keeps_axes=True),
    **{op: view.Facts(runtime_swap=swap, runtime_swap_reason=GRAPPLER_HAZARD,
                         elementwise=op in ELEMENTWISE_OPS)
       for op, swap in GRAPPLER_SWAPS.items()},
}


# ---------------------------------------------------------------------------
# Per-channel affine maps with constant parameters.

FUSED_BATCH_NORM_OPS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
_SCALING_OPS = frozenset({"Mul"})
_SHIFTING_OPS = frozenset({"Add", "AddV2", "BiasAdd", "Sub"})
AFFINE_OPS = FUSED_BATCH_NORM_OPS | _SCALING_OPS | _SHIFTING_OPS
# Ops that TF's remapper fuses a following bias, scale or batch normalization into (and
# that TFLite and ONNX Runtime fold one into): moving that off would undo the fusion.
CLAMP_OPS = frozenset({"ClipByValue", "Maximum", "Minimum"})
CANDIDATE_OPS = ACTIVATION_OPS | AFFINE_OPS | CLAMP_OPS  # what the planner is asked to move
CONTRACTION_OPS = frozenset({
    "Conv2D", "Conv3D", "DepthwiseConv2dNative", "MatMul", "BatchMatMul", "BatchMatMulV2",
    "BatchMatMulV3", "Conv2DBackpropInput", "Conv3DBackpropInputV2", "_FusedConv2D",
    "_FusedMatMul", "_FusedDepthwiseConv2dNative", "Einsum"})


# Ops a parameter of an affine map may be computed with from constants and variables
# (tf.nn.batch_normalization: Rsqrt(variance + eps) * gamma, beta - mean * scale), in
# numpy with TF's broadcasting and the inputs' float dtype. Only the sign and the
# finiteness of such a value are decided on; `graph_constants` folds only finite, normal
# floats, where numpy and TF's kernels (which flush denormals) agree on both.
FOLDED_ARITHMETIC: dict[str, Callable[..., Any]] = {
    "Add": np.add, "AddV2": np.add, "Sub": np.subtract, "Mul": np.multiply,
    "RealDiv": np.divide, "Neg": np.negative, "Sqrt": np.sqrt, "Square": np.square,
    "Rsqrt": lambda x: np.reciprocal(np.sqrt(x)), "Reciprocal": np.reciprocal,
}


def attr_or_default(node: node_def_pb2.NodeDef, name: str) -> Any:
    """The node's attr `name` (an AttrValue), or the op's default where it is stripped."""
    if name in node.attr:
        return node.attr[name]
    op_def = op_def_registry.get(node.op)
    for attr in op_def.attr if op_def is not None else ():
        if attr.name == name and attr.HasField("default_value"):
            return attr.default_value
    return None


def channel_of(node: node_def_pb2.NodeDef, rank: int) -> int:
    """The channel axis of an op with a ``data_format`` attr (``NHWC``: the last)."""
    data_format = attr_or_default(node, "data_format")
    text = data_format.s.decode() if data_format is not None else ""
    return 1 if text.startswith("NC") else rank - 1


def affine_of(node: node_def_pb2.NodeDef, constant: Callable[[str], Any],
              shape: Callable[[str], list[int] | None]) -> tuple[algebra.Function,
                                                                frozenset[int]] | None:
    """A per-channel affine map with constant parameters, and the axes it varies along
    (counted from the end: -1 is the last).

    `constant(input)` is a Const input's value (None if not one); `shape(input)` the
    static shape of an input, if known. None if `node` is not one: a variable parameter,
    a FusedBatchNorm in training, the data in the second input, a broadcast that grows
    the data.
    """
    op = node.op
    if op in FUSED_BATCH_NORM_OPS:
        return _fused_batch_norm(node, constant, shape)
    if len(node.input) != 2 or node.input[1].startswith("^"):
        return None
    if constant(node.input[0]) is not None:
        return None  # the data is a constant too: a parameter being computed
    value = constant(node.input[1])
    if value is None or value.dtype.kind != "f":
        return None
    x_shape = shape(node.input[0])
    if op == "BiasAdd":
        if x_shape is None or value.ndim != 1:
            return None
        axes = frozenset({channel_of(node, len(x_shape)) - len(x_shape)})
    else:
        axes = _broadcast_axes(value.shape, x_shape)
        if axes is None:
            return None
    flat = value.astype("float64").ravel()
    if op == "Mul":
        return algebra.per_channel_affine("Mul(by a constant)", flat.tolist(),
                                          zero_at_zero=True, family="mul"), axes
    name = "BiasAdd" if op == "BiasAdd" else f"{op}(a constant)"
    return algebra.per_channel_affine(
        name, [1.0] * flat.size, flat.tolist(), zero_at_zero=not flat.any(),
        family="bias_add" if op == "BiasAdd" else op.lower()), axes


def clamp_of(node: node_def_pb2.NodeDef, constant: Callable[[str], Any],
             shape: Callable[[str], list[int] | None]) -> tuple[algebra.Function,
                                                               frozenset[int]] | None:
    """A clamp of its first input, and the axes its bounds vary along (from the end).

    ``ClipByValue(x, lo, hi)``, ``Maximum(x, lo)`` and ``Minimum(x, hi)`` with constant
    bounds are non-decreasing and exact; per-channel bounds vary along the channel. A
    bound computed at run time may clamp each position differently, or be NaN: such a
    clamp is described as not monotone, with the reason. None where the
    first input is the constant, or a bound would broadcast ``x`` larger.

    Example:

        clamp_of(clip_by_value_node, body.constant, body.shape)   # (clip(0, 6), {})
    """
    op = node.op
    inputs = [text for text in node.input if not text.startswith("^")]
    if len(inputs) != (3 if op == "ClipByValue" else 2):
        return None
    values = [constant(text) for text in inputs[1:]]
    if constant(inputs[0]) is not None:
        return None  # the data is not the first input
    if any(v is None or v.dtype.kind != "f" for v in values):
        return algebra.Function(
            f"{op}(x, a bound computed at run time)", algebra.Monotonicity.NOT_MONOTONE,
            family="clip", detail="its bound may differ by position, or be NaN, which a "
            "max pool skips before the clamp and not after it"), frozenset()
    x_shape = shape(inputs[0])
    axes: frozenset[int] = frozenset()
    for value in values:
        varies = _broadcast_axes(value.shape, x_shape)
        if varies is None:
            return None
        axes |= varies
    if op == "Maximum":
        low, high = values[0].astype("float64"), np.array(np.inf)
    elif op == "Minimum":
        low, high = np.array(-np.inf), values[0].astype("float64")
    else:
        low, high = (v.astype("float64") for v in values)
    with np.errstate(invalid="ignore"):
        nan = bool(np.isnan(low).any() or np.isnan(high).any())
        zero = bool(np.all(low <= 0) and np.all(high >= 0))
    if not axes:
        described = algebra.clip(float(low.max()), float(high.min()),
                                 name=f"{op}({_bounds(op, low, high)})")
    else:
        described = algebra.clip(-np.inf, np.inf, name=f"{op}(per-channel constants)")
    if nan:
        described = algebra.clip(np.nan, np.nan, name=described.name)
    return dataclasses.replace(described, zero_at_zero=zero and not nan), axes


def _bounds(op: str, low: Any, high: Any) -> str:
    if op == "Maximum":
        return f"x, {float(low.max()):g}"
    if op == "Minimum":
        return f"x, {float(high.min()):g}"
    return f"x, {float(low.max()):g}, {float(high.min()):g}"


def needs_rank(node: node_def_pb2.NodeDef, constant: Callable[[str], Any]) -> bool:
    """Whether an affine op works only on tensors of the rank it reads: a FusedBatchNorm
    (4-D), a BiasAdd in NCHW, a constant of rank 2 or more (it would broadcast a tensor of
    lower rank larger)."""
    if node.op in FUSED_BATCH_NORM_OPS:
        return True
    if node.op == "BiasAdd":
        return channel_of(node, 4) == 1
    values = [constant(text) for text in node.input[1:] if not text.startswith("^")]
    return any(value is None or value.ndim >= 2 for value in values)


def _broadcast_axes(value_shape: tuple[int, ...],
                    x_shape: list[int] | None) -> frozenset[int] | None:
    """The axes of x along which a constant of `value_shape` varies; None if the
    broadcast could enlarge x (or x's shape is unknown and the constant is no scalar)."""
    if not value_shape:
        return frozenset()
    if x_shape is None or len(value_shape) > len(x_shape):
        return None
    offset = len(x_shape) - len(value_shape)
    axes = set()
    for i, size in enumerate(value_shape):
        if size == 1:
            continue
        if x_shape[offset + i] != size:
            return None  # x's dim is unknown, 1 or another size: the result grows
        axes.add(i - len(value_shape))  # counted from the end
    return frozenset(axes)


def _fused_batch_norm(node: node_def_pb2.NodeDef, constant: Callable[[str], Any],
                      shape: Callable[[str], list[int] | None]) -> tuple[
                          algebra.Function, frozenset[int]] | None:
    training = attr_or_default(node, "is_training")
    if training is None or training.b or len(node.input) < 5:
        return None
    scale, offset, mean, variance = (constant(text) for text in node.input[1:5])
    if any(v is None for v in (scale, offset, mean, variance)):
        return None
    epsilon = attr_or_default(node, "epsilon")
    x_shape = shape(node.input[0])
    rank = len(x_shape) if x_shape is not None else len(
        attr_or_default(node, "data_format").s or b"NHWC")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        scales = scale.astype("float64") / np.sqrt(
            variance.astype("float64") + (epsilon.f if epsilon is not None else 1e-4))
        offsets = offset.astype("float64") - mean.astype("float64") * scales
        function = algebra.per_channel_affine(
            node.op, scales.tolist(), offsets.tolist(),
            zero_at_zero=not offset.any() and not mean.any(), family="fused_batch_norm",
            exact=False)
    return function, frozenset({channel_of(node, rank) - rank})


_SPATIAL_POOLS = frozenset({"MaxPool", "MaxPool3D", "MaxPoolWithArgmax", "MaxPoolV2",
                            "AvgPool", "AvgPool3D"})


def pool_facts(node: node_def_pb2.NodeDef, constant: Callable[[str], Any],
               shape: Callable[[str], list[int] | None]) -> view.Facts:
    """A pool's channel axis, counted from the end: the axis of its input that it never
    mixes (None: unknown or mixed, as in a depthwise max pool or a reduction over the
    last axis)."""
    if node.op in ("Max", "Min"):
        x_shape = shape(node.input[0])
        axes = constant(node.input[1]) if len(node.input) > 1 else None
        if x_shape is None or axes is None:
            return NO_CHANNEL
        rank = len(x_shape)
        reduced = {int(a) % rank for a in np.ravel(axes)} if rank else set()
        return view.Facts(channel_axis=None if rank - 1 in reduced or rank < 2 else -1)
    if node.op not in _SPATIAL_POOLS:
        return NO_CHANNEL
    rank = 5 if node.op.endswith("3D") else 4
    channel = channel_of(node, rank)
    if node.op == "MaxPoolV2":
        windows = [constant(text) for text in node.input[1:3]]
        if len(windows) != 2 or any(w is None for w in windows):
            return NO_CHANNEL
        windows = [list(np.ravel(w)) for w in windows]
    else:
        windows = [list(attr_or_default(node, name).list.i) for name in ("ksize", "strides")]
    if any(len(w) != rank or w[channel] != 1 for w in windows):
        return NO_CHANNEL  # it pools across channels
    return view.Facts(channel_axis=channel - rank)


NO_CHANNEL = view.Facts()
