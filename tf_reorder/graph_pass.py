"""GraphDef front end: a Grappler-style pass over a graph's nodes and its functions.

It describes the top-level nodes of a `GraphDef`, and every `FunctionDef` of its
library (the bodies behind ``PartitionedCall``, ``If``/``While``/``Case`` branches, at
any depth), to the `planner` in TF's vocabulary (op types and attrs), and rewrites the
moves it returns: ``f -> [Identity | Pad | ...] -> max`` becomes
``[Identity | Pad | ...] -> max -> f``. The planner runs to a fixed point, so chains
such as ``f1 -> f2 -> max`` move whole and a second pass changes nothing.

Names that other nodes, fetches and function outputs refer to are kept: the
activation takes the pool's name (so every reference to the pooled value now sees the
activated value, as before), and the pool takes the activation's name, which nothing
else referred to.

Example:

    graph_def = concrete_function.graph.as_graph_def(add_shapes=True)
    new_graph_def, report = tf_reorder.reorder_graph_def(graph_def)
    print(report)
"""

from __future__ import annotations

import collections
import gc
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from absl import logging
from tensorflow.core.framework import function_pb2, graph_pb2, node_def_pb2

from tf_reorder import algebra, planner, view
from tf_reorder import graph_vocabulary as ops
from tf_reorder.algebra import Step
from tf_reorder.errors import ReorderError
from tf_reorder.graph_constants import ConstantFolder
from tf_reorder.policy import Policy, load_policy
from tf_reorder.report import Report, Site

# ---------------------------------------------------------------------------
# A body: the top-level nodes of a GraphDef, or a FunctionDef's nodes.


class _Body:
    """One body's nodes, their consumers, and what may not change; rewired in place."""

    def __init__(self, nodes: Iterable[node_def_pb2.NodeDef], *, scope: str, function: bool,
                 kept: set[str], returns: dict[str, str] | None = None,
                 variables: Mapping[str, Any] | None = None) -> None:
        self.scope = scope
        self.function = function
        self.nodes: dict[str, node_def_pb2.NodeDef] = {}
        self.kept = kept  # names whose output must stay as it is (fetches, preserve)
        self.returns = returns  # a FunctionDef's ret map, rewritten in place
        # name -> (node, input index) of every data input that reads it, and control edges.
        self.consumers: dict[str, list[tuple[node_def_pb2.NodeDef, int]]] = \
            collections.defaultdict(list)
        self.control_consumers: dict[str, list[str]] = collections.defaultdict(list)
        self.with_control_inputs: set[str] = set()
        # Nodes whose op is an activation's or a per-channel affine map's.
        self.activations: list[node_def_pb2.NodeDef] = []
        consumers, control, by_name = self.consumers, self.control_consumers, self.nodes
        activations, candidate_ops = self.activations, ops.CANDIDATE_OPS
        for node in nodes:
            name = node.name
            by_name[name] = node
            if node.op in candidate_ops:
                activations.append(node)
            for i, text in enumerate(node.input):
                if text[0] == "^":
                    control[text[1:]].append(name)
                    self.with_control_inputs.add(name)
                else:
                    consumers[text.partition(":")[0]].append((node, i))
        self.returned = {v.partition(":")[0] for v in (returns or {}).values()}
        self.constants = ConstantFolder(by_name, variables or {})

    def output_key(self, text: str) -> tuple[str, str | int]:
        """``(node, output)`` of a data input: output 0 for the node's first output."""
        name, _, rest = text.partition(":")
        if not self.function:
            return name, int(rest) if rest else 0
        node = self.nodes.get(name)
        if node is not None and rest == f"{ops.first_output_arg(node.op)}:0":
            return name, 0
        return name, rest

    def first_output(self, node: node_def_pb2.NodeDef) -> str:
        return f"{node.name}:{ops.first_output_arg(node.op)}:0" if self.function else node.name

    def data_consumers(self, name: str) -> list[tuple[node_def_pb2.NodeDef, int]]:
        """(node, input index) of every data input that reads `name`."""
        return self.consumers.get(name, [])

    def reconnect(self, node: node_def_pb2.NodeDef, index: int, text: str) -> None:
        """Sets a data input and keeps the consumer index true."""
        old = node.input[index].partition(":")[0]
        new = text.partition(":")[0]
        node.input[index] = text
        if old != new:
            self.consumers[old] = [(n, i) for n, i in self.consumers[old]
                                   if n is not node or i != index]
            self.consumers[new].append((node, index))

    def constant(self, text: str) -> Any:
        """The value of an input computed from constants alone; None if not one.

        A Const, read through Identity nodes; in a function, also a ReadVariableOp of
        an argument whose variable value is known (`variables`), and the arithmetic
        of `graph_vocabulary.FOLDED_ARITHMETIC` (plus Reshape and Cast) on such values.
        """
        return self.constants.value(text.lstrip("^").partition(":")[0])

    def reads_variable(self, text: str) -> bool:
        """Whether the `constant` value of `text` depends on a variable's value."""
        return self.constants.reads_variable(text.lstrip("^").partition(":")[0])

    def producer_of(self, text: str) -> node_def_pb2.NodeDef | None:
        return self.nodes.get(text.partition(":")[0])

    def shape(self, text: str) -> list[int] | None:
        """The static shape of a data input (-1: an unknown dim) from ``_output_shapes``."""
        name, output = self.output_key(text)
        node = self.nodes.get(name)
        if node is None or not isinstance(output, int) or "_output_shapes" not in node.attr:
            return None
        shapes = node.attr["_output_shapes"].list.shape
        if output >= len(shapes) or shapes[output].unknown_rank:
            return None
        return [dim.size for dim in shapes[output].dim]

    def elements(self, node: node_def_pb2.NodeDef) -> int | None:
        """Elements per sample of the node's first output; None if not known."""
        attrs = node.attr
        if "_output_shapes" not in attrs:
            return None
        shapes = attrs["_output_shapes"].list.shape
        if not shapes or shapes[0].unknown_rank:
            return None
        count = 1
        for dim in shapes[0].dim[1:]:
            size = dim.size
            if size < 0:
                return None
            count *= size
        return count


# ---------------------------------------------------------------------------
# The planner's view of a body.


_CONTROLLED = "'{}' has control inputs"
_UNKNOWN = object()
_NO_USES: list[Any] = []


class _View(view.View):
    """The body as the planner sees it: TF's vocabulary, read from the graph as it is.

    Nodes are the body's NodeDefs and a value is ``(node, output)`` (output 0: the
    first; a node of None: an input of the body), so nothing is built per node: the
    planner's questions are answered from the graph and its consumer index, and
    `move` rewrites the graph at once. Reports use the input's names.
    """

    def __init__(self, body: _Body) -> None:
        self.scope = body.scope
        self.body = body
        self.renamed: dict[int, str] = {}  # id(node) -> its input name, if a move renamed it
        self._functions: dict[int, algebra.Function] = {}
        self._steps: dict[int, Step | None] = {}
        self._elements: dict[int, int | None] = {}
        self._facts: dict[int, view.Facts] = {}  # of affine maps and pools
        self._activations = []
        for node in body.activations:
            if node.op in ops.AFFINE_OPS:
                described = ops.affine_of(node, body.constant, body.shape)
                if described is None or self._in_epilogue(node):
                    continue
                function = described[0]
                self._facts[id(node)] = self._affine_facts(node, described[1])
            elif node.op in ops.CLAMP_OPS:
                described = ops.clamp_of(node, body.constant, body.shape)
                if described is None:
                    continue
                function = described[0]
                if described[1] or ops.needs_rank(node, body.constant):
                    self._facts[id(node)] = view.Facts(
                        varies_along=described[1],
                        needs_rank=ops.needs_rank(node, body.constant))
            else:
                function = ops.activation_of(node)
            if function is not None:
                self._functions[id(node)] = function
                self._activations.append(node)

    def _in_epilogue(self, node: node_def_pb2.NodeDef) -> bool:
        """A bias or scale right after a convolution or matmul is part of it, as a Keras
        layer's bias is: TF's remapper, TFLite and ONNX Runtime fuse it there, where it
        costs nothing. (A batch normalization is left to the runtime policy.)"""
        producer = self.body.producer_of(node.input[0])
        return producer is not None and producer.op in ops.CONTRACTION_OPS and \
            node.op not in ops.FUSED_BATCH_NORM_OPS

    def _affine_facts(self, node: node_def_pb2.NodeDef, axes: frozenset[int]) -> view.Facts:
        body = self.body
        source = "the SavedModel's variable values" if any(
            body.reads_variable(text) for text in node.input[1:]) else "its constant values"
        notes = (f"the decision on '{node.name}' rests on {source} at rewrite time",)
        veto = ""
        if not ops.has_one_output(node.op) and any(
                body.output_key(c.input[i])[1] != 0 for c, i in body.data_consumers(node.name)):
            veto = f"another output of '{node.name}' than its first is read"
        return view.Facts(notes=notes, veto=veto, varies_along=axes,
                          needs_rank=ops.needs_rank(node, body.constant))

    def activations(self) -> list[node_def_pb2.NodeDef]:
        return list(self._activations)

    def opaque_reason(self, node: node_def_pb2.NodeDef) -> str:
        if node.op in ops.FUSED_BATCH_NORM_OPS:
            return "a FusedBatchNorm in training, or with parameters that are not constants"
        if node.op in ops.AFFINE_OPS and not self._in_epilogue(node):
            return ("no per-channel map by a constant: its parameter is a tensor, a variable "
                    "that may change, or broadcasts the data larger")
        return ""

    def label(self, node: node_def_pb2.NodeDef) -> str:
        return self.renamed.get(id(node), node.name)

    def kind(self, node: node_def_pb2.NodeDef) -> str:
        return node.op

    def function(self, node: node_def_pb2.NodeDef) -> algebra.Function | None:
        return self._functions.get(id(node))

    def step(self, node: node_def_pb2.NodeDef) -> Step | None:
        key = id(node)
        step = self._steps.get(key, _UNKNOWN)
        if step is _UNKNOWN:
            step = self._steps[key] = None if key in self._functions else \
                ops.step_of(node, self.body.constant)
        return step

    def shrinks(self, node: node_def_pb2.NodeDef) -> bool:
        return ops.shrinks(node)

    def elements(self, node: node_def_pb2.NodeDef) -> int | None:
        key = id(node)
        elements = self._elements.get(key, _UNKNOWN)
        if elements is _UNKNOWN:
            elements = self._elements[key] = self.body.elements(node)
        return elements

    def dtype(self, node: node_def_pb2.NodeDef) -> int | None:
        return ops.dtype(node)

    def cross_veto(self, node: node_def_pb2.NodeDef) -> str:
        if node.name in self.body.with_control_inputs:
            return _CONTROLLED.format(self.label(node))
        return ""

    def producer_label(self, node: node_def_pb2.NodeDef) -> str | None:
        if not node.input:
            return None
        name = node.input[0].partition(":")[0]
        producer = self.body.nodes.get(name)
        return name if producer is None else self.label(producer)

    def facts(self, node: node_def_pb2.NodeDef) -> view.Facts:
        op, name, key = node.op, node.name, id(node)
        veto = _CONTROLLED.format(self.label(node)) \
            if key in self._functions and name in self.body.with_control_inputs else ""
        if veto:
            return view.Facts(veto=veto, runtime_swap=ops.GRAPPLER_SWAPS.get(op, ""),
                                 runtime_swap_reason=ops.GRAPPLER_HAZARD)
        facts = self._facts.get(key)
        if facts is None and op in ops.POOL_OPS:
            facts = self._facts[key] = ops.pool_facts(node, self.body.constant,
                                                      self.body.shape)
        return facts or ops.FACTS_OF_OP.get(op, view.NO_FACTS)

    # -- values

    def output(self, node: node_def_pb2.NodeDef) -> tuple[Any, Any]:
        return (node, 0)

    def outputs(self, node: node_def_pb2.NodeDef) -> list[tuple[Any, Any]]:
        keys = [0]
        if not ops.has_one_output(node.op):
            for consumer, position in self.body.data_consumers(node.name):
                output = self.body.output_key(consumer.input[position])[1]
                if output not in keys:
                    keys.append(output)
        return [(node, key) for key in keys]

    def source(self, node: node_def_pb2.NodeDef) -> tuple[Any, Any]:
        text = node.input[0]
        name, output = self.body.output_key(text)
        producer = self.body.nodes.get(name)
        return (producer, output) if producer is not None else (None, text)

    def producer(self, value: tuple[Any, Any]) -> node_def_pb2.NodeDef | None:
        return value[0]

    def is_first_output(self, value: tuple[Any, Any]) -> bool:
        return value[0] is not None and value[1] == 0

    def uses(self, value: tuple[Any, Any]) -> list[tuple[node_def_pb2.NodeDef, int]]:
        node, output = value
        body = self.body
        if node is None:  # an input of the body: `output` is how nodes name it
            name = output.partition(":")[0]
            return [(c, i) for c, i in body.data_consumers(name) if c.input[i] == output]
        consumers = body.consumers.get(node.name, _NO_USES)
        if ops.has_one_output(node.op):
            return consumers
        return [(c, i) for c, i in consumers if body.output_key(c.input[i])[1] == output]

    def exits(self, value: tuple[Any, Any]) -> str:
        node = value[0]
        if node is None:
            return ""
        body, name = self.body, node.name
        if name in body.control_consumers:
            names = ", ".join(f"'{self.label(body.nodes[n])}'" if n in body.nodes else f"'{n}'"
                              for n in sorted(body.control_consumers[name]))
            return f"'{self.label(node)}' is a control input of {names}"
        if name in body.returned:
            return f"'{self.label(node)}' is an output of {body.scope}"
        if name in body.kept:
            return f"'{self.label(node)}' is fetched or preserved"
        return ""

    def flip(self, node: node_def_pb2.NodeDef) -> None:
        node.op = ops.FLIPPED_REDUCTIONS[node.op]  # same inputs and attrs
        self._steps.pop(id(node), None)
        self._facts.pop(id(node), None)

    def move(self, activation: node_def_pb2.NodeDef,
             crossed: Sequence[node_def_pb2.NodeDef]) -> None:
        landing = crossed[-1]
        self.renamed.setdefault(id(activation), activation.name)
        self.renamed.setdefault(id(landing), landing.name)
        _rewrite(self.body, activation, crossed)
        self._elements.pop(id(activation), None)  # it now runs on the pooled tensor


# ---------------------------------------------------------------------------
# Rewriting.


def _rewrite(body: _Body, f: node_def_pb2.NodeDef, chain: Sequence[node_def_pb2.NodeDef]) -> None:
    """``f -> c1 .. L`` becomes ``c1 .. L -> f``, and the two nodes swap names.

    The activation takes the name ``L`` (what consumers, fetches and function
    outputs read); the pool takes ``f``'s name, which nothing else read. Each
    node keeps its own op, attrs and device.
    """
    landing = chain[-1]
    f_name, landing_name = f.name, landing.name
    body.constants.forget()  # names and inputs change below
    old_pool_output = body.first_output(landing)
    consumers = list(body.data_consumers(landing_name))
    body.reconnect(chain[0], 0, f.input[0])

    landing.name, f.name = f_name, landing_name
    body.nodes[f_name], body.nodes[landing_name] = landing, f
    body.reconnect(f, 0, body.first_output(landing))
    if "_output_shapes" in landing.attr:
        shapes = f.attr["_output_shapes"].list.shape
        if not shapes:
            shapes.add()
        shapes[0].CopyFrom(landing.attr["_output_shapes"].list.shape[0])

    new_activation_output = body.first_output(f)
    for consumer, i in consumers:
        body.reconnect(consumer, i, _retarget(body, consumer.input[i], landing_name, f_name,
                                              old_pool_output, new_activation_output))
    if body.returns is not None:
        for key, value in list(body.returns.items()):
            body.returns[key] = _retarget(body, value, landing_name, f_name,
                                          old_pool_output, new_activation_output)


def _retarget(body: _Body, text: str, landing: str, pool_name: str, old_pool_output: str,
              new_activation_output: str) -> str:
    """A reference to the landing pool, after the swap of names."""
    if text.startswith("^") or text.partition(":")[0] != landing:
        return text
    rest = text.partition(":")[2]
    if body.function:
        if text == old_pool_output:
            return new_activation_output
        return f"{pool_name}:{rest}"  # another output of the pool (argmax)
    if not rest or rest == "0":
        return text
    return f"{pool_name}:{rest}"


def _process(body: _Body, policy: Policy | None = None) -> list[Site]:
    """Moves what may move in the body (the planner's moves rewrite it); the sites."""
    return planner.plan(_View(body), policy).sites


def _kept_names(preserve: Iterable[str]) -> set[str]:
    return {name.lstrip("^").split(":")[0] for name in preserve}


def reorder_graph_def(graph_def: graph_pb2.GraphDef, *, preserve: Sequence[str] = (),
                      target: str | Policy | None = "any",
                      variables: Mapping[str, Mapping[str, Any]] | None = None,
                      ) -> tuple[graph_pb2.GraphDef, Report]:
    """Moves activations after max pools in a GraphDef and every function in its library.

    The input is not changed. Nodes named in `preserve` (fetches: node or tensor
    names) keep their values; so do function outputs. Shapes in
    ``_output_shapes`` attrs (``as_graph_def(add_shapes=True)``) give the
    element counts; without them a move is made only where no input size could
    make it add work. With a `target` other than ``"any"`` (see
    `tf_reorder.policy.load_policy`), a move is made only where the runtime
    policy measured it faster. `variables` (function name -> resource argument ->
    value) lets a function's ReadVariableOp of that argument count as a constant:
    `convert_saved_model` passes the SavedModel's variables that no function writes
    (`tf_reorder.saved_variables`).

    Example:

        graph_def = fn.get_concrete_function(spec).graph.as_graph_def(add_shapes=True)
        new_graph_def, report = tf_reorder.reorder_graph_def(graph_def, preserve=["Identity"],
                                                             target="tflite")
    """
    if not isinstance(graph_def, graph_pb2.GraphDef):
        raise ReorderError(f"expected a GraphDef, got {type(graph_def).__name__}")
    policy = load_policy(target)
    new = graph_pb2.GraphDef()
    new.CopyFrom(graph_def)
    # The pass allocates a few objects per node and frees none until the end; the
    # cyclic collector would only rescan them (a quarter of the time at 200k nodes).
    collecting = gc.isenabled()
    gc.disable()
    try:
        sites = _process(_Body(new.node, scope="graph", function=False,
                               kept=_kept_names(preserve)), policy)
        for function_def in new.library.function:
            sites.extend(_process_function(
                function_def, policy, (variables or {}).get(function_def.signature.name)))
    finally:
        if collecting:
            gc.enable()
    report = Report("graph", tuple(sites))
    logging.info("reordered a GraphDef: %d of %d sites moved", len(report.moved),
                 len(report.sites))
    return new, report


def _process_function(function_def: function_pb2.FunctionDef, policy: Policy | None = None,
                      variables: Mapping[str, Any] | None = None) -> list[Site]:
    returns = dict(function_def.ret)
    body = _Body(function_def.node_def, scope=function_def.signature.name, function=True,
                 kept=set(), returns=returns, variables=variables)
    sites = _process(body, policy)
    for key, value in returns.items():
        function_def.ret[key] = value
    return sites
