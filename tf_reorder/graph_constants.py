"""Values a GraphDef body computes from constants alone: the parameters of affine maps.

`ConstantFolder` evaluates, in numpy, a node that is a Const, an Identity of one, a
ReadVariableOp of a function argument whose variable value is known (a SavedModel's,
`tf_reorder.saved_variables`), or the arithmetic of
`graph_vocabulary.FOLDED_ARITHMETIC` (plus Reshape and Cast) on such values, as
`tf.nn.batch_normalization` computes its scale ``rsqrt(variance + eps) * gamma``. Only
finite, normal floats are folded: TF's kernels flush denormals to zero and numpy does
not, and the pass decides on the sign and finiteness of a value, where the two then
agree.

Example:

    folder = ConstantFolder({n.name: n for n in graph_def.node}, variables={})
    folder.value("batchnorm/mul")        # an ndarray, or None
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorflow.core.framework import node_def_pb2
from tensorflow.python.framework import dtypes as tf_dtypes
from tensorflow.python.framework import tensor_util

from tf_reorder import graph_vocabulary as ops


class ConstantFolder:
    """The constant values of a body's nodes, each computed once until `forget`."""

    def __init__(self, nodes: Mapping[str, node_def_pb2.NodeDef],
                 variables: Mapping[str, Any]) -> None:
        self._nodes = nodes  # the body's, kept current by the pass
        self._variables = variables  # argument -> its variable's value
        self._values: dict[str, tuple[Any, bool]] = {}

    def value(self, name: str) -> Any:
        """The node's value if it is computed from constants alone, else None."""
        return self._folded(name)[0]

    def reads_variable(self, name: str) -> bool:
        """Whether the node's value depends on a variable's value."""
        return self._folded(name)[1]

    def forget(self) -> None:
        """Drops what was computed (the graph changed)."""
        self._values.clear()

    def _folded(self, name: str) -> tuple[Any, bool]:
        """``(value or None, reads a variable)`` of the node `name`, computed once.

        Iterative (a chain of thousands of Adds is no recursion); inputs are visited
        one at a time, Consts last, so a node stops at its first input that is no
        constant; a cycle (a malformed graph) is no constant.
        """
        folded, nodes = self._values, self._nodes
        known = folded.get(name)
        if known is not None:
            return known
        node = nodes.get(name)
        if node is None or node.op not in _LOOKED_THROUGH:  # most nodes: a leaf
            known = folded[name] = self._leaf(node)
            return known
        stack, on_stack, inputs_of = [name], {name}, {}
        while stack:
            current = stack[-1]
            node = nodes.get(current)
            if current not in inputs_of:
                inputs_of[current] = None if node is None else _fold_inputs(node)
            inputs = inputs_of[current]
            if inputs is None:
                folded[current] = self._leaf(node)
            else:
                verdict = _first_open(inputs, folded, nodes, on_stack)
                if isinstance(verdict, str):
                    stack.append(verdict)
                    on_stack.add(verdict)
                    continue
                folded[current] = verdict if verdict is not None else self._combine(
                    node, [folded[i] for i in inputs])
            stack.pop()
            on_stack.discard(current)
        return folded[name]

    @staticmethod
    def _combine(node: node_def_pb2.NodeDef, parts: list[tuple[Any, bool]]) -> tuple[Any, bool]:
        value = parts[0][0] if node.op == "Identity" else _fold_op(node, [v for v, _ in parts])
        return _NOT_CONSTANT if value is None else (value, any(reads for _, reads in parts))

    def _leaf(self, node: node_def_pb2.NodeDef | None) -> tuple[Any, bool]:
        """A node `_fold_inputs` does not look through: a Const, a variable, or no
        constant."""
        if node is None:
            return _NOT_CONSTANT
        if node.op == "Const":
            return tensor_util.MakeNdarray(node.attr["value"].tensor), False
        if node.op == "ReadVariableOp" and node.input:
            value = self._variables.get(node.input[0])
            if value is not None:
                return value, True
        return _NOT_CONSTANT


_NOT_CONSTANT: tuple[Any, bool] = (None, False)
_FOLDED_OPS = frozenset(ops.FOLDED_ARITHMETIC) | {"Reshape", "Cast"}
_LOOKED_THROUGH = _FOLDED_OPS | {"Identity"}
_FOLDED_ELEMENTS = 1 << 20  # larger values are no per-channel parameter


def _fold_inputs(node: node_def_pb2.NodeDef) -> list[str] | None:
    """The node names an Identity or a `_FOLDED_OPS` node computes from; None for
    any other node (a leaf of the folding)."""
    if node.op not in _LOOKED_THROUGH:
        return None
    inputs = [text.partition(":")[0] for text in node.input if text[0] != "^"]
    return inputs or None


def _first_open(inputs: list[str], folded: dict[str, tuple[Any, bool]],
                nodes: Mapping[str, node_def_pb2.NodeDef],
                on_stack: set[str]) -> str | tuple[Any, bool] | None:
    """The next input to fold (a name); `_NOT_CONSTANT` if an input is no constant
    or on the stack (a cycle); None if every input has a constant value."""
    later = []
    for name in inputs:
        known = folded.get(name)
        if known is None:
            node = nodes.get(name)
            if node is not None and node.op == "Const":
                later.append(name)
                continue
            return _NOT_CONSTANT if name in on_stack else name
        if known[0] is None:
            return _NOT_CONSTANT
    return later[0] if later else None


def _normal(value: Any) -> bool:
    """Finite, and no denormal (TF's kernels flush denormals to zero, numpy does not)."""
    if value.dtype.kind != "f" or value.size > _FOLDED_ELEMENTS:
        return False
    magnitude = np.abs(value)
    return bool(np.isfinite(value).all()) and not bool(
        ((magnitude > 0) & (magnitude < np.finfo(value.dtype).tiny)).any())


def _fold_op(node: node_def_pb2.NodeDef, values: list[Any]) -> Any:
    """The value of a `_FOLDED_OPS` node on constant inputs, or None."""
    op = node.op
    if op == "Reshape":
        if len(values) != 2 or values[1].dtype.kind not in "iu" or not _normal(values[0]):
            return None
        try:
            return np.reshape(values[0], values[1].astype(np.int64))
        except ValueError:
            return None
    if not all(_normal(value) for value in values):
        return None
    if op == "Cast":
        target = tf_dtypes.as_dtype(node.attr["DstT"].type)
        if len(values) != 1 or not target.is_floating:
            return None
        result = values[0].astype(target.as_numpy_dtype)
    else:
        if len({value.dtype for value in values}) != 1:
            return None
        with np.errstate(all="ignore"):
            result = np.asarray(ops.FOLDED_ARITHMETIC[op](*values), dtype=values[0].dtype)
    return result if _normal(result) else None
