"""tf.function ConcreteFunctions: rewrite the graph, call it with the same captures.

`reorder_function` runs the GraphDef pass over a ConcreteFunction's graph (its function
library included) and wraps the result as a new ConcreteFunction that takes the same
inputs, returns the same structure and reads the same captured variables. Library
functions that changed get new names, so they do not clash with the originals, which
stay registered in the process.

Example:

    fn = tf.function(model).get_concrete_function(tf.TensorSpec([1, 224, 224, 3]))
    fast, report = tf_reorder.reorder_function(fn, target="tf")
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterable
from typing import Any

from tensorflow.core.framework import graph_pb2, node_def_pb2

from tf_reorder.errors import ReorderError
from tf_reorder.graph_pass import reorder_graph_def
from tf_reorder.policy import Policy, load_policy
from tf_reorder.report import Report


def _rename_changed_functions(old: graph_pb2.GraphDef, new: graph_pb2.GraphDef) -> None:
    """Gives rewritten library functions new names, and updates every reference.

    The original functions stay registered in the process under their names; a
    different body under the same name would clash with them.
    """
    before = {f.signature.name: f.SerializeToString() for f in old.library.function}
    renames = {}
    for function_def in new.library.function:
        name = function_def.signature.name
        if before.get(name) != function_def.SerializeToString():
            renames[name] = f"{name}_reordered_{uuid.uuid4().hex[:8]}"
    if not renames:
        return
    changed = True
    while changed:  # a caller of a renamed function changes too
        changed = False
        for function_def in new.library.function:
            name = function_def.signature.name
            if name not in renames and any(_refers_to(n, renames) for n in function_def.node_def):
                renames[name] = f"{name}_reordered_{uuid.uuid4().hex[:8]}"
                changed = True
    for function_def in new.library.function:
        function_def.signature.name = renames.get(function_def.signature.name,
                                                  function_def.signature.name)
        for node in function_def.node_def:
            _rename_in_attrs(node, renames)
    for node in new.node:
        _rename_in_attrs(node, renames)
    for gradient in new.library.gradient:
        gradient.function_name = renames.get(gradient.function_name, gradient.function_name)


def _python_signature(function_type: inspect.Signature,
                      traced: dict[str, Any]) -> inspect.Signature:
    """`function_type`'s parameters, with a traced Python value as the default."""
    def default(name: str) -> Any:
        value = traced.get(name, inspect.Parameter.empty)
        return value if value is None or isinstance(value, (bool, int, float, str, bytes)) \
            else inspect.Parameter.empty

    parameters = list(function_type.parameters.values())
    try:
        return inspect.Signature([inspect.Parameter(p.name, p.kind, default=default(p.name))
                                  for p in parameters])
    except ValueError:  # a default before a parameter without one: no defaults then
        return inspect.Signature([inspect.Parameter(p.name, p.kind) for p in parameters])


def _func_attrs(node: node_def_pb2.NodeDef) -> Iterable[Any]:
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func
        if value.HasField("list"):
            yield from value.list.func


def _refers_to(node: node_def_pb2.NodeDef, renames: dict[str, str]) -> bool:
    return any(func.name in renames for func in _func_attrs(node))


def _rename_in_attrs(node: node_def_pb2.NodeDef, renames: dict[str, str]) -> None:
    for func in _func_attrs(node):
        func.name = renames.get(func.name, func.name)


def reorder_function(concrete_function: Any, *,
                     target: str | Policy | None = "any") -> tuple[Any, Report]:
    """Rewrites a tf.function's ConcreteFunction; captures stay the same objects.

    `target` is as for `reorder_graph_def`.

    Example:

        fn = tf.function(model).get_concrete_function(tf.TensorSpec([1, 224, 224, 3]))
        fast, report = tf_reorder.reorder_function(fn, target="tf")
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    graph = getattr(concrete_function, "graph", None)
    if graph is None or not hasattr(concrete_function, "captured_inputs"):
        raise ReorderError(
            f"expected a tf.function ConcreteFunction, got {type(concrete_function).__name__}")
    policy = load_policy(target)
    graph_def = graph.as_graph_def(add_shapes=True)
    fetches = [t.name for t in concrete_function.outputs]
    new_graph_def, report = reorder_graph_def(graph_def, preserve=fetches, target=policy)
    _rename_changed_functions(graph_def, new_graph_def)

    captures = list(concrete_function.captured_inputs)
    variables = tuple(concrete_function.variables)
    inputs = [t.name for t in graph.inputs]
    argument_names, capture_names = inputs[:len(inputs) - len(captures)], \
        inputs[len(inputs) - len(captures):]
    positional, keywords = concrete_function.structured_input_signature
    # The same parameters (names and kinds), so the result is called as the input is. A
    # Python value the function was traced with (a None, a number) is the only value it
    # accepts there; like the input, the result takes it as the default.
    names = list(concrete_function.function_type.parameters)
    traced = {**dict(zip(names, positional)), **keywords}
    python_signature = _python_signature(concrete_function.function_type, traced)
    positional_names = names[:len(positional)]

    def reordered(*args: Any, **kwargs: Any) -> Any:
        bound = python_signature.bind(*args, **kwargs)
        structured = (tuple(bound.arguments[n] for n in positional_names),
                      {k: bound.arguments[k] for k in keywords})
        # In the order of the graph's inputs; Python values (None, numbers) are not inputs.
        flat = [v for v in tf.nest.flatten(structured, expand_composites=True)
                if tf.is_tensor(v) or isinstance(v, tf.Variable)]
        input_map = dict(zip(argument_names, flat, strict=True))
        func_graph = tf.compat.v1.get_default_graph()
        # The same captured values (variable handles), not copies; and the same variables
        # for `.variables`, `.trainable_variables` and gradient tapes, which read them.
        input_map.update(zip(capture_names, [func_graph.capture(c) for c in captures],
                             strict=True))
        for variable in variables:
            func_graph.watch_variable(variable)
        outputs = tf.graph_util.import_graph_def(
            new_graph_def, input_map=input_map, return_elements=fetches, name="reordered")
        # A None the function returns has no output tensor: it stays None.
        remaining = iter(outputs)
        flat = [None if item is None else next(remaining) for item in
                tf.nest.flatten(concrete_function.structured_outputs, expand_composites=True)]
        return tf.nest.pack_sequence_as(concrete_function.structured_outputs, flat,
                                        expand_composites=True)

    reordered.__signature__ = python_signature  # what tf.function reads the parameters from

    # Functions that reach a graph through import_graph_def are not registered with
    # the eager runtime on their own; the call would not find them.
    from tensorflow.python.eager import context  # pylint: disable=g-import-not-at-top

    runtime = context.context()
    for function_def in new_graph_def.library.function:
        if not runtime.has_function(function_def.signature.name):
            runtime.add_function_def(function_def)

    function = tf.function(reordered, autograph=False)
    return function.get_concrete_function(*positional, **keywords), report
