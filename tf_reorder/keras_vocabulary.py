"""Keras' vocabulary for the rules: which layers and `keras.ops` nodes are what.

A Keras 3 functional graph holds layer calls and operation nodes (``keras.ops.sigmoid``,
``keras.activations.relu(x, max_value=6.0)``, ``keras.ops.max``, ``x[:, 1:]``). This
module says, for each, what `algebra` calls it: an activation (`describe_activation`),
a step (`describe_step`: data movement, padding, a max, a min, an average or an argmax,
with what the planner needs besides), or nothing. It decides no move itself.

Example:

    describe_activation(keras.layers.ReLU(max_value=6.0))  # algebra's ReLU(max_value=6)
    describe_step(keras.layers.MaxPooling2D(), rank=4)     # a max pool, channel axis 3
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import layers
from keras.src.activations import activations as keras_activations
from keras.src.ops import core as ops_core
from keras.src.ops import nn as ops_nn
from keras.src.ops import numpy as ops_numpy

from tf_reorder import algebra
from tf_reorder.algebra import Step, StepKind

# Exact types: a user subclass may override call() and not apply `activation` last.
PRODUCER_TYPES: tuple[type, ...] = (
    layers.Conv1D, layers.Conv2D, layers.Conv3D,
    layers.DepthwiseConv1D, layers.DepthwiseConv2D,
    layers.SeparableConv1D, layers.SeparableConv2D,
    layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose,
    layers.Dense, layers.EinsumDense,
)
ACTIVATION_LAYER_TYPES: tuple[type, ...] = (
    layers.Activation, layers.ReLU, layers.LeakyReLU, layers.ELU, layers.PReLU,
    layers.Softmax,
)
_LAYER_STEPS: dict[type, StepKind] = {
    **{t: StepKind.DATA_MOVEMENT for t in (
        layers.Reshape, layers.Permute, layers.Flatten, layers.Identity,
        layers.Cropping1D, layers.Cropping2D, layers.Cropping3D)},
    **{t: StepKind.ZERO_PADDING for t in (
        layers.ZeroPadding1D, layers.ZeroPadding2D, layers.ZeroPadding3D)},
    **{t: StepKind.MAX_POOL for t in (
        layers.MaxPooling1D, layers.MaxPooling2D, layers.MaxPooling3D,
        layers.GlobalMaxPooling1D, layers.GlobalMaxPooling2D, layers.GlobalMaxPooling3D,
        layers.AdaptiveMaxPooling1D, layers.AdaptiveMaxPooling2D,
        layers.AdaptiveMaxPooling3D)},
    **{t: StepKind.AVERAGE_POOL for t in (
        layers.AveragePooling1D, layers.AveragePooling2D, layers.AveragePooling3D,
        layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D,
        layers.GlobalAveragePooling3D, layers.AdaptiveAveragePooling1D,
        layers.AdaptiveAveragePooling2D, layers.AdaptiveAveragePooling3D)},
}
# Layers that are the identity at inference (dropout and noise; an activity
# regularizer adds a loss in training): data movement for a pass for inference.
INFERENCE_IDENTITY_TYPES: tuple[type, ...] = (
    layers.Dropout, layers.SpatialDropout1D, layers.SpatialDropout2D,
    layers.SpatialDropout3D, layers.GaussianNoise, layers.GaussianDropout,
    layers.AlphaDropout, layers.ActivityRegularization,
)
# Layers that map their input element by element (or channel by channel) that no rule
# crosses: an activation they stop short of a max is reported as a near miss. An
# inference identity called with ``training=True`` is one too.
ELEMENTWISE_LAYER_TYPES: tuple[type, ...] = (
    layers.BatchNormalization, layers.Rescaling, *INFERENCE_IDENTITY_TYPES,
    # keras.ops nodes: a clamp by a tensor, arithmetic with another tensor.
    ops_numpy.Maximum, ops_numpy.Minimum, ops_numpy.Clip, ops_numpy.Add,
    ops_numpy.Subtract, ops_numpy.Multiply, ops_numpy.Divide, ops_numpy.Abs,
    ops_numpy.Square, ops_numpy.Sqrt,
)
# Layers that leave every axis where it is (a PReLU's alphas stay aligned across them).
_AXIS_PRESERVING = (layers.Identity, layers.Cropping1D, layers.Cropping2D,
                    layers.Cropping3D, layers.ZeroPadding1D, layers.ZeroPadding2D,
                    layers.ZeroPadding3D)

# keras.ops / keras.activations nodes: the operation's class -> its catalogue name.
_OP_ACTIVATIONS: dict[type, str] = {
    ops_nn.Relu: "relu", ops_nn.Relu6: "relu6", ops_nn.Sigmoid: "sigmoid",
    ops_nn.Softplus: "softplus", ops_nn.Softsign: "softsign", ops_nn.Selu: "selu",
    ops_nn.HardSigmoid: "hard_sigmoid", ops_nn.LogSigmoid: "log_sigmoid",
    ops_nn.SparseSigmoid: "sparse_sigmoid", ops_nn.HardTanh: "hard_tanh",
    ops_nn.SparsePlus: "sparse_plus", ops_nn.TanhShrink: "tanh_shrink",
    ops_nn.Silu: "silu", ops_nn.Gelu: "gelu", ops_nn.Squareplus: "squareplus",
    ops_nn.Softmax: "softmax", ops_nn.LogSoftmax: "log_softmax", ops_nn.Glu: "glu",
    ops_nn.Sparsemax: "sparsemax",
    ops_nn.HardSilu: "hard_silu", ops_numpy.Tanh: "tanh", ops_numpy.Exp: "exponential",
}
_OP_DATA_MOVEMENT: tuple[type, ...] = (
    ops_numpy.Reshape, ops_numpy.Transpose, ops_numpy.Squeeze, ops_numpy.ExpandDims,
    ops_numpy.GetItem, ops_core.Slice,
)


def step_kind(layer: Any) -> StepKind | None:
    """The step a layer is (None: not one)."""
    return _LAYER_STEPS.get(type(layer))


# ---------------------------------------------------------------------------
# Activations.

_builtin_names: dict[int, str] | None = None


def _builtin_activation_names() -> dict[int, str]:
    global _builtin_names
    if _builtin_names is None:
        names: dict[int, str] = {}
        for name in algebra.KERAS_ACTIVATIONS:
            try:
                fn = keras.activations.get(name)
            except ValueError:
                continue
            names.setdefault(id(fn), name)  # first name wins ("silu" before "swish")
        _builtin_names = names
    return _builtin_names


def builtin_activation_name(fn: Callable[..., Any]) -> str | None:
    """The name Keras knows a built-in activation function by (None for others)."""
    return _builtin_activation_names().get(id(fn))


def describe_callable(fn: Callable[..., Any]) -> algebra.Function:
    """The algebra's view of an activation function object."""
    declared = algebra.registered(fn)
    if declared is not None:
        return declared
    name = builtin_activation_name(fn)
    if name is not None:
        return algebra.KERAS_ACTIVATIONS[name]
    try:
        serialized = keras.activations.serialize(fn)
    except (ValueError, TypeError):
        serialized = None
    if isinstance(serialized, str):
        declared = algebra.keras_activation(serialized)
        if declared.monotonicity is not algebra.Monotonicity.UNKNOWN:
            return declared
    label = getattr(fn, "__name__", None) or type(fn).__name__
    return algebra.unknown(label)


def describe_activation(operation: Any) -> algebra.Function | None:
    """The activation a layer applies last, or an activation op node; None if neither.

    PReLU is described without its pooling context (the planner asks whether its
    alphas are shared over the pooled axes).
    """
    kind = type(operation)
    if kind in PRODUCER_TYPES or kind is layers.Activation:
        f = describe_callable(operation.activation)
        return None if f.identity else f
    if kind is layers.ReLU or kind is keras_activations.ReLU:
        return algebra.relu(float(operation.negative_slope),
                            None if operation.max_value is None else float(operation.max_value),
                            float(operation.threshold))
    if kind is layers.LeakyReLU:
        return algebra.leaky_relu(float(operation.negative_slope))
    if kind is layers.ELU:
        return algebra.elu(float(operation.alpha))
    if kind is layers.Softmax:
        return algebra.KERAS_ACTIVATIONS["softmax"]
    if kind is layers.PReLU:
        return algebra.prelu(min_alpha(operation), uniform=True)
    return _describe_op(operation)


def _describe_op(operation: Any) -> algebra.Function | None:
    kind = type(operation)
    if kind in _OP_ACTIVATIONS:
        return algebra.KERAS_ACTIVATIONS[_OP_ACTIVATIONS[kind]]
    constant = _constants(operation, _OP_PARAMETERS.get(kind, ()))
    if constant is None:
        return None  # a parameter is a tensor (or the op is not an activation)
    if kind is ops_nn.LeakyRelu:
        (slope,) = constant
        return algebra.leaky_relu(slope, name="leaky_relu" if slope == 0.2 else None)
    if kind is ops_nn.Elu:
        (alpha,) = constant
        return algebra.elu(alpha, name="elu" if alpha == 1 else None)
    if kind is ops_nn.Celu:
        (alpha,) = constant
        return algebra.celu(alpha, name="celu" if alpha == 1 else None)
    if kind in (ops_nn.SoftShrink, ops_nn.HardShrink):
        (threshold,) = constant
        name = "soft_shrink" if kind is ops_nn.SoftShrink else "hard_shrink"
        return algebra.shrink(name, threshold, name=name if threshold == 0.5 else None)
    if kind is ops_nn.Threshold:
        return algebra.threshold(*constant)
    if kind is ops_numpy.Clip:
        return algebra.clip(*constant)
    if kind is ops_numpy.Negative:
        return algebra.NEGATIVE
    return None


_OP_PARAMETERS: dict[type, tuple[str, ...]] = {
    ops_nn.LeakyRelu: ("negative_slope",), ops_nn.Elu: ("alpha",), ops_nn.Celu: ("alpha",),
    ops_nn.SoftShrink: ("threshold",), ops_nn.HardShrink: ("threshold",),
    ops_nn.Threshold: ("threshold", "default_value"), ops_numpy.Clip: ("x_min", "x_max"),
    ops_numpy.Negative: (),
}


def _constants(operation: Any, names: tuple[str, ...]) -> tuple[float, ...] | None:
    """The op's parameters as Python floats; None if one is not a constant number."""
    values = []
    for name in names:
        value = getattr(operation, name, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        values.append(float(value))
    return tuple(values) if type(operation) in _OP_PARAMETERS else None


def describe_batch_norm(layer: Any, rank: int,
                        training: Any = None) -> tuple[algebra.Function, int] | None:
    """A built `BatchNormalization` as a per-channel affine map, and its channel axis.

    At inference (and always when the layer is frozen: ``trainable=False``) it computes
    ``x * a_c + b_c`` with ``a_c = gamma_c / sqrt(moving_variance_c + epsilon)``;
    None if it is not built or is called with ``training=True``.

    Example:

        describe_batch_norm(bn, rank=4)   # (BatchNormalization(min scale=0.999), 3)
    """
    if type(layer) is not layers.BatchNormalization or not layer.built:
        return None
    if training is not None and training is not False:
        return None  # batch statistics whenever it is trainable
    def weight(variable: Any) -> np.ndarray:
        return keras.ops.convert_to_numpy(variable).astype("float64")

    mean = weight(layer.moving_mean)
    beta = weight(layer.beta) if layer.center else np.zeros_like(mean)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        scales = 1.0 / np.sqrt(weight(layer.moving_variance) + layer.epsilon)
        if layer.scale:
            scales = scales * weight(layer.gamma)
        offsets = beta - mean * scales
        # f(0) == 0 exactly: x * a + (beta - mean * a) with mean == beta == 0.
        function = algebra.per_channel_affine(
            "BatchNormalization", scales.tolist(), offsets.tolist(),
            zero_at_zero=not mean.any() and not beta.any(),
            inference_only=bool(layer.trainable), family="batch_normalization",
            exact=False)  # backends may fuse the multiply and add
    return function, layer.axis % rank


def min_alpha(layer: Any) -> float:
    alpha = keras.ops.convert_to_numpy(layer.alpha)
    return float(alpha.min()) if alpha.size else 0.0


# ---------------------------------------------------------------------------
# Steps.


@dataclasses.dataclass(frozen=True)
class StepInfo:
    """A step, and what the planner needs to know about it besides."""

    step: Step
    keeps_axes: bool = False
    channel_axis: int | None = None  # of a pool's input


def describe_step(operation: Any, rank: int, training: Any = None) -> StepInfo | None:
    """The step a layer or op node is, given the rank of its input and the ``training``
    argument of its call; None if not one."""
    kind = step_kind(operation)
    name = operation.name
    if type(operation) in INFERENCE_IDENTITY_TYPES:
        if training is not None and training is not False:
            return None  # called with training=True (Monte Carlo dropout): never the identity
        return StepInfo(Step(StepKind.DATA_MOVEMENT, name, inference_only=True),
                        keeps_axes=True)
    if kind is not None:
        shrinks = kind is StepKind.MAX_POOL and _pool_shrinks(operation)
        channel = channel_axis(operation, rank) if kind in (StepKind.MAX_POOL,
                                                           StepKind.AVERAGE_POOL) else None
        return StepInfo(Step(kind, name, shrinks=shrinks), type(operation) in _AXIS_PRESERVING,
                        channel)
    op = type(operation)
    if op in _OP_DATA_MOVEMENT:
        return StepInfo(Step(StepKind.DATA_MOVEMENT, name))
    if op is ops_nn.MaxPool:
        return StepInfo(Step(StepKind.MAX_POOL, name, shrinks=_pool_shrinks(operation)),
                        channel_axis=channel_axis(operation, rank))
    if op is ops_nn.AveragePool:
        return StepInfo(Step(StepKind.AVERAGE_POOL, name), channel_axis=channel_axis(operation,
                                                                                      rank))
    if op in _REDUCTIONS:
        axes = _reduced_axes(operation, rank)
        if axes is None or getattr(operation, "initial", None) is not None:
            return StepInfo(Step(StepKind.OTHER, name))  # over the batch, or from an initial
        return StepInfo(Step(_REDUCTIONS[op], name, shrinks=True, reduction=True),
                        channel_axis=rank - 1 if rank - 1 not in axes else None)
    return None


_REDUCTIONS: dict[type, StepKind] = {
    ops_numpy.Max: StepKind.MAX_POOL, ops_numpy.Amax: StepKind.MAX_POOL,
    ops_numpy.Min: StepKind.MIN, ops_numpy.Amin: StepKind.MIN,
    ops_numpy.Mean: StepKind.AVERAGE_POOL,
    ops_numpy.Argmax: StepKind.ARG_EXTREMUM, ops_numpy.Argmin: StepKind.ARG_EXTREMUM,
}
# A max reduction and the min it becomes when a non-increasing activation moves past it.
FLIPPED_REDUCTIONS: dict[type, type] = {
    ops_numpy.Max: ops_numpy.Min, ops_numpy.Min: ops_numpy.Max,
    ops_numpy.Amax: ops_numpy.Amin, ops_numpy.Amin: ops_numpy.Amax,
}


def flipped_reduction(operation: Any, name: str) -> Any:
    """``keras.ops.max`` as the ``keras.ops.min`` over the same axes, or the reverse.

    Example:

        flipped_reduction(max_node.operation, "max_as_min")   # an ops.numpy.Min
    """
    return FLIPPED_REDUCTIONS[type(operation)](axis=operation.axis,
                                              keepdims=operation.keepdims, name=name)


def _reduced_axes(operation: Any, rank: int) -> set[int] | None:
    """The axes a reduction takes, non-negative; None if the batch axis is one of them."""
    axis = operation.axis
    if axis is None:
        return None
    axes = {a % rank for a in (axis if isinstance(axis, (list, tuple)) else (axis,))}
    return None if 0 in axes else axes


def channel_axis(pool: Any, rank: int) -> int:
    data_format = getattr(pool, "data_format", "channels_last")
    return 1 if data_format == "channels_first" else rank - 1


def _pool_shrinks(pool: Any) -> bool:
    """Whether a max pool makes every input larger than its window smaller."""
    strides = getattr(pool, "strides", None)
    if strides is None and not hasattr(pool, "pool_size"):  # global and adaptive pools
        return True
    pool_size = pool.pool_size
    sizes = pool_size if isinstance(pool_size, (list, tuple)) else (pool_size,)
    if strides is None:
        strides = sizes  # an op's default: the window
    strides = strides if isinstance(strides, (list, tuple)) else (strides,)
    return any(s > 1 for s in strides) or (
        str(pool.padding).lower() == "valid" and any(k > 1 for k in sizes))


def elements(tensor: Any, calls: int = 1) -> int | None:
    """Elements per sample (times `calls`), or None if a dimension is unknown."""
    dims = tensor.shape[1:]
    if any(d is None for d in dims):
        return None
    return math.prod(dims) * calls
