"""TensorFlow's vocabulary for the rules: which ops are activations, steps, or else.

The GraphDef front end (`graph_pass`) asks this module what an op is: an activation
(`activation_of`), a step between an activation and a pool (`step_of`: data movement,
padding, a max or an average), an elementwise op that makes a near miss, or one that
Grappler's arithmetic optimizer swaps with a max after it itself. It decides no move.

Example:

    activation_of(node)        # algebra.TF_OPS["Relu"] for a Relu NodeDef, else None
    step_of(node, constant)    # Step(MAX_POOL, ...) for a MaxPool NodeDef
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    "MaxPoolWithArgmax": StepKind.MAX_POOL_WITH_ARGMAX,
    "AvgPool": StepKind.AVERAGE_POOL,
    "AvgPool3D": StepKind.AVERAGE_POOL,
    "Mean": StepKind.AVERAGE_POOL,
}
REDUCTION_OPS = frozenset({"Max", "Mean"})
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
    if node.op == "Max":
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
    **{op: view.Facts(runtime_swap=swap, runtime_swap_reason=GRAPPLER_HAZARD,
                         elementwise=op in ELEMENTWISE_OPS)
       for op, swap in GRAPPLER_SWAPS.items()},
}
