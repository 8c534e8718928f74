"""The variable values a SavedModel's functions read, where reading them is safe.

A TF2 SavedModel binds each restored function's captured inputs (its last
arguments) to nodes of the object graph (`SavedConcreteFunction.bound_inputs`);
the checkpoint under ``variables/`` holds each variable node's value under the
key its ``TrackableObjectGraph`` node names. `function_variables` returns, per
library function, the value behind each resource argument, so the GraphDef pass
can decide a per-channel affine map (a Keras BatchNormalization's scale) on it as
on a constant.

A value is read only where no function but the saver's may change it: every use
of a bound argument is a `ReadVariableOp` or a call that passes it on (followed
into the callee). Any other use (an assignment, an optimizer update, a
control-flow op, an Identity of the handle) makes that variable unread; a
resource use the pass cannot trace back to a variable (an unbound argument, a
``VarHandleOp``) makes every variable unread, since it may be any of them.

Example:

    values = function_variables(saved_model_proto, "exported/")
    values["__inference___call___135"]["functional_1_conv2d_1_reshape_readvariableop_resource"]
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
from absl import logging
from tensorflow.core.framework import function_pb2, node_def_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2, trackable_object_graph_pb2

READ_OP = "ReadVariableOp"
CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_VALUE_ATTRIBUTE = "VARIABLE_VALUE"
_INIT_COLLECTIONS = ("saved_model_main_op", "legacy_init_op", "saved_model_train_op")
_UNKNOWN = -1  # a resource that is not traced to a variable node



class _Values(Mapping[str, np.ndarray]):
    """Resource argument -> variable value, read from the checkpoint when first asked."""

    def __init__(self, keys: dict[str, str], reader: Any, cache: dict[str, np.ndarray]) -> None:
        self._keys, self._reader, self._cache = keys, reader, cache

    def __getitem__(self, argument: str) -> np.ndarray:
        key = self._keys[argument]
        if key not in self._cache:
            self._cache[key] = self._reader.get_tensor(key)
        return self._cache[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


FunctionVariables = dict[str, Mapping[str, np.ndarray]]


def function_variables(proto: saved_model_pb2.SavedModel,
                       directory: str | os.PathLike[str]) -> list[FunctionVariables]:
    """Per MetaGraph: function name -> resource argument -> the variable's value.

    Empty where the SavedModel has no object graph (TF1) or no checkpoint, or
    where a resource is written that cannot be traced to its variable.
    """
    prefix = os.path.join(os.fspath(directory), "variables", "variables")
    reader = _reader(prefix)
    return [_meta_graph_variables(meta_graph, reader) if reader is not None else {}
            for meta_graph in proto.meta_graphs]


def _reader(prefix: str) -> Any:
    if not os.path.exists(prefix + ".index"):
        return None
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    try:
        return tf.train.load_checkpoint(prefix)
    except Exception as error:  # a corrupt or unreadable checkpoint: read no values
        logging.warning("%s: the variables cannot be read (%s); affine maps on variables "
                        "stay", prefix, error)
        return None


def _meta_graph_variables(meta_graph: meta_graph_pb2.MetaGraphDef,
                          reader: Any) -> FunctionVariables:
    keys = _checkpoint_keys(meta_graph.object_graph_def, reader)
    if not keys:
        return {}
    functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    bindings = _bindings(meta_graph.object_graph_def, functions, keys)
    saver = _saver_functions(meta_graph, functions)
    written = _written_variables(meta_graph.graph_def.node, _loader_roots(meta_graph),
                                 functions, bindings, saver)
    if _UNKNOWN in written:
        logging.info("a resource that is not traced to a variable is written: no variable "
                     "value is read")
        return {}
    cache: dict[str, np.ndarray] = {}
    result: FunctionVariables = {}
    for name, arguments in bindings.items():
        readable = {argument: keys[node_id] for argument, node_id in arguments.items()
                    if node_id != _UNKNOWN and node_id not in written}
        if readable:
            result[name] = _Values(readable, reader, cache)
    return result


def _checkpoint_keys(object_graph: Any, reader: Any) -> dict[int, str]:
    """Variable node id -> checkpoint key; empty if the two object graphs disagree."""
    if not reader.has_tensor(_OBJECT_GRAPH_KEY):
        return {}
    checkpointed = trackable_object_graph_pb2.TrackableObjectGraph()
    checkpointed.ParseFromString(reader.get_tensor(_OBJECT_GRAPH_KEY))
    saved = object_graph.nodes
    if len(saved) != len(checkpointed.nodes) or any(
            [(c.node_id, c.local_name) for c in a.children] !=
            [(c.node_id, c.local_name) for c in b.children]
            for a, b in zip(saved, checkpointed.nodes)):
        logging.info("the SavedModel's object graph is not the checkpoint's: no variable "
                     "value is read")
        return {}
    keys = {}
    for node_id, (node, entry) in enumerate(zip(saved, checkpointed.nodes)):
        if node.WhichOneof("kind") != "variable":
            continue
        for attribute in entry.attributes:
            if attribute.name == _VALUE_ATTRIBUTE and reader.has_tensor(attribute.checkpoint_key):
                keys[node_id] = attribute.checkpoint_key
    return keys


def _bindings(object_graph: Any, functions: dict[str, function_pb2.FunctionDef],
              keys: dict[int, str]) -> dict[str, dict[str, int]]:
    """Function -> resource argument -> variable node id (or `_UNKNOWN`), from the
    bound inputs, passed on through calls to a fixed point."""
    bindings: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for name, concrete in object_graph.concrete_functions.items():
        function = functions.get(name)
        if function is None:
            continue
        arguments = [a.name for a in function.signature.input_arg]
        bound = list(concrete.bound_inputs)
        if len(bound) > len(arguments):
            continue
        for argument, node_id in zip(arguments[len(arguments) - len(bound):], bound):
            bindings[name][argument] = node_id if node_id in keys else _UNKNOWN
    pending = list(bindings)
    while pending:
        caller = pending.pop()
        for node in functions[caller].node_def:
            for callee, argument, node_id in _passed_on(node, bindings[caller], functions):
                known = bindings[callee].get(argument)
                if known == node_id or known == _UNKNOWN:
                    continue
                bindings[callee][argument] = node_id if known is None else _UNKNOWN
                pending.append(callee)
    return bindings


def _passed_on(node: node_def_pb2.NodeDef, arguments: dict[str, int],
               functions: dict[str, function_pb2.FunctionDef],
               ) -> Iterable[tuple[str, str, int]]:
    """(callee, callee argument, variable) for each bound argument a call passes on."""
    if node.op not in CALL_OPS or node.attr["f"].func.name not in functions:
        return
    callee = functions[node.attr["f"].func.name]
    parameters = [a.name for a in callee.signature.input_arg]
    for position, text in enumerate(t for t in node.input if not t.startswith("^")):
        if text in arguments and position < len(parameters):
            yield callee.signature.name, parameters[position], arguments[text]


def _saver_functions(meta_graph: meta_graph_pb2.MetaGraphDef,
                     functions: dict[str, function_pb2.FunctionDef]) -> set[str]:
    """The functions behind the saver's save and restore ops, and what they call."""
    saver = meta_graph.saver_def
    roots = {name.partition(":")[0] for name in (saver.save_tensor_name, saver.restore_op_name)
             if name}
    pending = [node.attr["f"].func.name for node in meta_graph.graph_def.node
               if node.name in roots and node.op in CALL_OPS]
    found: set[str] = set()
    while pending:
        name = pending.pop()
        if name in found or name not in functions:
            continue
        found.add(name)
        pending.extend(n.attr["f"].func.name for n in functions[name].node_def
                       if n.op in CALL_OPS)
    return found


def _loader_roots(meta_graph: meta_graph_pb2.MetaGraphDef) -> set[str]:
    """Top-level nodes a loader or a server runs: signature outputs and init ops."""
    roots = set()
    for signature in meta_graph.signature_def.values():
        roots.update(t.name.partition(":")[0] for t in signature.outputs.values() if t.name)
    for key in _INIT_COLLECTIONS:
        if key in meta_graph.collection_def:
            roots.update(v.partition(":")[0].lstrip("^")
                         for v in meta_graph.collection_def[key].node_list.value)
    return roots


def _ancestors(nodes: dict[str, node_def_pb2.NodeDef],
               roots: Iterable[str]) -> list[node_def_pb2.NodeDef]:
    """The nodes `roots` depend on (data and control inputs), the roots included."""
    found: dict[str, node_def_pb2.NodeDef] = {}
    pending = [name for name in roots if name in nodes]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found[name] = nodes[name]
        pending.extend(text.lstrip("^").partition(":")[0] for text in nodes[name].input
                       if text.lstrip("^").partition(":")[0] in nodes)
    return list(found.values())


def _written_variables(top_level: Iterable[node_def_pb2.NodeDef], roots: set[str],
                       functions: dict[str, function_pb2.FunctionDef],
                       bindings: dict[str, dict[str, int]], saver: set[str]) -> set[int]:
    """Variable node ids some use other than a read or a call may change; `_UNKNOWN` in
    it if such a use is on a resource that is not traced to one variable.

    Of the top-level graph, only what a loader runs counts (`roots` and what they
    depend on): a TF2 SavedModel also holds each variable's initializer there, which
    loaders do not run (they restore the checkpoint).
    """
    written: set[int] = set()
    for name, function in functions.items():
        if name in saver:
            continue
        resources = {a.name for a in function.signature.input_arg if a.type == types_pb2.DT_RESOURCE}
        arguments = bindings.get(name, {})
        handles = {n.name for n in function.node_def if n.op == "VarHandleOp"}
        for node in function.node_def:
            if node.op == READ_OP or node.op in CALL_OPS:
                continue
            for text in node.input:
                source = text.partition(":")[0]
                if source in resources:
                    written.add(arguments.get(source, _UNKNOWN))
                elif source in handles:
                    written.add(_UNKNOWN)
    nodes = {n.name: n for n in top_level}
    handles = {name for name, n in nodes.items() if n.op == "VarHandleOp"}
    for node in _ancestors(nodes, roots):
        if node.op == READ_OP or node.op in CALL_OPS:
            continue
        if any(text.partition(":")[0] in handles for text in node.input):
            written.add(_UNKNOWN)
    return written

