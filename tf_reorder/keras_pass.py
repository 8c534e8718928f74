"""Keras front end: a model's layer graphs as planner views, and their plan.

Each (nested) model is a body: its calls, in call order, become `planner` nodes in
Keras' vocabulary (`keras_vocabulary`): a producer with a fused ``activation=`` is two
nodes (the layer without its activation, then the activation), an activation layer or
``keras.ops`` activation node is an activation, a pool or data movement is a step,
anything else is opaque. Nested models are planned first (each once, however often it
is called); an activation that is a nested model's output, as it is after that, is
also a node of the enclosing body, where it may move on to a pool outside (the
``base = ResNet50(include_top=False)`` then ``GlobalMaxPooling2D()`` idiom). One pass
bottom up reaches the fixed point. `keras_rebuild` builds the result from the
planned views (and holds `reorder`, the two together).

Variables: the result reuses every layer it does not change, so those layers (and
their variables) are shared with the input model, as when two functional models are
built from the same layers; see `keras_rebuild`.
"""

from __future__ import annotations

import dataclasses
import heapq
from typing import Any

import keras
from keras import layers
from keras.src.models.functional import Functional

from tf_reorder import planner
from tf_reorder.errors import ReorderError
from tf_reorder.keras_vocabulary import (
    ELEMENTWISE_LAYER_TYPES, PRODUCER_TYPES, describe_activation, describe_batch_norm,
    describe_step, elements, min_alpha)
from tf_reorder.view import DataView, Facts, Node, Value
from tf_reorder.policy import Policy, load_policy
from tf_reorder.report import Report, Site

MODEL_OUTPUT = ("the output of '", "' is also a model output")
_ELEMENTWISE = Facts(elementwise=True)  # shared: models hold many BatchNormalizations


@dataclasses.dataclass(eq=False)
class Call:
    """One call of a layer or an operation in a model's graph."""

    layer: Any
    node: Any
    position: int
    inputs: list[Any]
    outputs: list[Any]


def calls_of(model: Any) -> list[Call]:
    """The calls of one Functional or Sequential model, in call order (see `_in_call_order`)."""
    functional = model._functional if isinstance(model, keras.Sequential) else model
    nodes = [node for depth in sorted(functional._nodes_by_depth, reverse=True)
             for node in functional._nodes_by_depth[depth]
             if node.operation is not None and not node.is_input]
    return [Call(node.operation, node, position, list(node.input_tensors),
                 list(keras.tree.flatten(node.outputs)))
            for position, node in enumerate(_in_call_order(nodes))]


def _in_call_order(nodes: list[Any]) -> list[Any]:
    """`nodes` (topologically ordered) reordered so each layer's calls keep their order.

    The rebuild calls layers in this order, so a shared layer's nodes keep their
    order in its config, and reordering a reordered model gives the same config.
    Each layer's calls are ordered as they were made (their index in
    ``_inbound_nodes``), which is also a topological order, so the extra edges
    from each call to the layer's next one leave the graph acyclic; ties keep the
    order of `nodes`.
    """
    by_layer: dict[int, list[Any]] = {}
    for node in nodes:
        by_layer.setdefault(id(node.operation), []).append(node)
    if len(by_layer) == len(nodes):
        return nodes  # no layer is called twice: no extra edges, the order stays
    rank = {id(node): i for i, node in enumerate(nodes)}
    producer = {id(t): node for node in nodes for t in keras.tree.flatten(node.outputs)}
    users: dict[int, list[Any]] = {}
    waiting: dict[int, int] = {}
    previous: dict[int, Any] = {}
    for calls in by_layer.values():
        calls.sort(key=lambda node: node.operation._inbound_nodes.index(node))
        previous.update((id(b), a) for a, b in zip(calls, calls[1:]))
    for node in nodes:
        deps = {id(producer[id(t)]): producer[id(t)] for t in node.input_tensors
                if id(t) in producer}
        if id(node) in previous:
            deps[id(previous[id(node)])] = previous[id(node)]
        waiting[id(node)] = len(deps)
        for dep in deps:
            users.setdefault(dep, []).append(node)
    ready = [(rank[id(node)], node) for node in nodes if not waiting[id(node)]]
    heapq.heapify(ready)
    order = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for user in users.get(id(node), []):
            waiting[id(user)] -= 1
            if not waiting[id(user)]:
                heapq.heappush(ready, (rank[id(user)], user))
    return order


def is_walkable(layer: Any) -> bool:
    if isinstance(layer, keras.Sequential):
        return layer._functional is not None
    return isinstance(layer, Functional)


def check_model(model: Any) -> None:
    """Raises `ReorderError` naming the problem if `model` cannot be walked."""
    if not isinstance(model, keras.Model):
        raise ReorderError(
            f"expected a keras.Model, got {type(model).__module__}.{type(model).__name__}")
    if isinstance(model, keras.Sequential):
        if model._functional is None:
            raise ReorderError(
                f"model '{model.name}' is not built: give the Sequential an Input "
                "(or call build(input_shape)) before reordering it")
        return
    if not isinstance(model, Functional):
        raise ReorderError(
            f"model '{model.name}' is a subclassed model ({type(model).__name__}); its "
            "call() is Python code with no layer graph to walk. Build it with the "
            "functional API or keras.Sequential")


# ---------------------------------------------------------------------------
# Bodies and their views.


@dataclasses.dataclass(eq=False)
class Body:
    """One (nested) model: its calls, its planner view, and what the planner did."""

    model: Any
    scope: str
    calls: list[Call]
    calls_per_sample: int  # how often it runs per sample of the root model
    view: DataView = dataclasses.field(default_factory=lambda: DataView(""))
    value_of: dict[int, Value] = dataclasses.field(default_factory=dict)  # id(tensor) ->
    # id(value) -> (the value, the node that computes it in the input)
    origin: dict[int, tuple[Value, Node]] = dataclasses.field(default_factory=dict)
    nested: dict[int, Body] = dataclasses.field(default_factory=dict)  # call position ->
    result: planner.Plan | None = None

    @property
    def functional(self) -> Any:
        return self.model._functional if isinstance(self.model, keras.Sequential) else self.model


@dataclasses.dataclass
class Analysis:
    """The plan of a whole model tree: every body, every site, what changes."""

    root: Body
    sites: list[Site]
    left: set[int]  # id(node) of activations that moved out of their nested model
    split: set[int]  # id(layer) of producers that lose their fused activation
    moved: set[int]  # id(node) of activations that moved within their body


def analyze(model: Any, policy: Policy | None = None, *, inference: bool = False) -> Analysis:
    check_model(model)
    return _Analyzer(model, policy, inference).run()


class _Analyzer:
    def __init__(self, model: Any, policy: Policy | None, inference: bool) -> None:
        self.model, self.policy, self.inference = model, policy, inference
        self.bodies: dict[int, Body] = {}
        self.model_calls: dict[int, int] = {}  # id(nested model) -> calls in the tree
        self.sites: list[Site] = []
        self.slot_of: dict[int, int] = {}  # id(activation node) -> index in `sites`
        self.left: set[int] = set()
        self.moved: set[int] = set()
        self.calls: dict[int, list[Call]] = {}  # id(model) -> its calls
        self._count_model_calls(model)

    def run(self) -> Analysis:
        root = self.body(self.model, self.model.name, 1)
        split = set()
        for body in self.bodies.values():
            for node in body.view.nodes:
                if node.handle[0] == "fused" and (id(node) in self.moved or id(node) in self.left):
                    split.add(id(node.handle[1].layer))
        return Analysis(root, self.sites, self.left, split, self.moved)

    def _count_model_calls(self, model: Any) -> None:
        if id(model) in self.calls:
            return
        self.calls[id(model)] = calls_of(model)
        for call in self.calls[id(model)]:
            if is_walkable(call.layer):
                self.model_calls[id(call.layer)] = self.model_calls.get(id(call.layer), 0) + 1
                self._count_model_calls(call.layer)

    def body(self, model: Any, scope: str, calls_per_sample: int) -> Body:
        if id(model) in self.bodies:
            return self.bodies[id(model)]
        body = self.bodies[id(model)] = Body(model, scope, self.calls[id(model)],
                                             calls_per_sample)
        for call in reversed(body.calls):  # nested models first: their result counts here
            if is_walkable(call.layer):
                body.nested[call.position] = self.body(
                    call.layer, f"{scope}/{call.layer.name}",
                    calls_per_sample * self.model_calls.get(id(call.layer), 1))
        body.view = _View(body, self.model_calls).build()
        body.result = planner.plan(body.view, self.policy, inference=self.inference)
        for move in body.result.moves:
            self.moved.add(id(move.activation))
        for node in _report_order(body.view.activations()):
            site = body.result.site_of.get(id(node))
            if site is not None:
                self._record(node, site)
        return body

    def _record(self, node: Node, site: Site) -> None:
        """Adds a site; one of an activation that left its nested model joins its inner one."""
        if node.handle[0] != "boundary":
            self.slot_of[id(node)] = len(self.sites)
            self.sites.append(site)
            return
        inner = node.handle[3]
        if site.moved:
            self.left.add(id(inner))
        slot = self.slot_of.get(id(inner))
        if slot is None:
            self.slot_of[id(node)] = len(self.sites)
            self.sites.append(site)
        elif site.moved:
            self.sites[slot] = _moved_on(self.sites[slot], site)
            self.slot_of[id(node)] = slot


def _report_order(activations: list[Node]) -> list[Node]:
    """`activations` in the view's order, but each run of activations at one output of
    a nested model from that output back (the order they leave it in)."""
    ordered: list[Node] = []
    run: list[Node] = []
    for node in activations:
        if run and (node.handle[0] != "boundary" or node.inputs[0].producer is not run[-1]):
            ordered.extend(reversed(run))
            run = []
        if node.handle[0] == "boundary":
            run.append(node)
        else:
            ordered.append(node)
    ordered.extend(reversed(run))
    return ordered


def _moved_on(earlier: Site, later: Site) -> Site:
    """One site for an activation that moved inside a nested model, then out of it."""
    inside = earlier.scope.removeprefix(later.scope).lstrip("/")

    def outer(name: str) -> str:
        return f"{inside}/{name}" if inside else name

    return dataclasses.replace(
        earlier, scope=later.scope, activation=outer(earlier.activation),
        producer=outer(earlier.producer) if earlier.producer else earlier.producer,
        between=(*map(outer, earlier.between), outer(earlier.pool or "?"), *later.between),
        pool=later.pool,
        elements_after=later.elements_after if earlier.elements_after is not None else None)


class _View:
    """Builds one body's `DataView`, in Keras' vocabulary."""

    def __init__(self, body: Body, model_calls: dict[int, int]) -> None:
        self.body, self.model_calls = body, model_calls
        self.view = DataView(body.scope)
        self.calls_of_layer: dict[int, int] = {}
        for call in body.calls:
            self.calls_of_layer[id(call.layer)] = self.calls_of_layer.get(id(call.layer), 0) + 1

    def build(self) -> DataView:
        body = self.body
        functional = body.functional
        for tensor in functional.inputs:
            body.value_of[id(tensor)] = Value()
        for call in body.calls:
            inputs = [body.value_of[id(t)] for t in call.inputs]
            outputs = self._add(call, inputs)
            for tensor, value in zip(call.outputs, outputs, strict=True):
                body.value_of[id(tensor)] = value
        for tensor in functional.outputs:
            body.value_of[id(tensor)].exits = MODEL_OUTPUT
        return self.view

    def _node(self, node: Node) -> Node:
        self.view.add(node)
        for value in node.outputs:
            self.body.origin[id(value)] = (value, node)
        return node

    def _add(self, call: Call, inputs: list[Value]) -> list[Value]:
        """The nodes of one call; the values of its outputs."""
        layer, body = call.layer, self.body
        kind = type(layer).__name__
        if call.position in body.nested:
            nested = self._node(Node(layer.name, kind, inputs, outputs=len(call.outputs),
                                     handle=("nested", call)))
            return [self._leaving(call, body.nested[call.position], k, value)
                    for k, value in enumerate(nested.outputs)]
        function = describe_activation(layer)
        if function is not None and type(layer) in PRODUCER_TYPES:
            linear = self._node(Node(layer.name, kind, inputs, handle=("linear", call)))
            return self._node(Node(layer.name, kind, linear.outputs, function=function,
                                   handle=("fused", call), producer=layer.name, fused=True,
                                   **self._measures(call, function))).outputs
        if function is not None:
            return self._node(self._activation(call, function, inputs)).outputs
        training = getattr(call.node.arguments, "kwargs", {}).get("training")
        rank = len(call.inputs[0].shape) if call.inputs else 0
        affine = describe_batch_norm(layer, rank, training) if call.inputs else None
        if affine is not None:  # axes count from the end, as in the GraphDef front end
            return self._node(self._activation(
                call, affine[0], inputs, varies_along=frozenset({affine[1] - rank}))).outputs
        info = describe_step(layer, rank, training) if call.inputs else None
        if info is not None:
            out = call.outputs[0]
            compute = getattr(layer, "compute_dtype", None) or out.dtype
            return self._node(Node(
                layer.name, kind, inputs, step=info.step, handle=("call", call),
                elements=elements(out, body.calls_per_sample),
                dtype=compute if compute == out.dtype else f"{compute} (output {out.dtype})",
                keeps_axes=info.keeps_axes,
                channel_axis=None if info.channel_axis is None else info.channel_axis - rank,
            )).outputs
        opaque = Node(layer.name, kind, inputs, outputs=len(call.outputs), handle=("call", call))
        if type(layer) in ELEMENTWISE_LAYER_TYPES:
            opaque.facts = _ELEMENTWISE
        return self._node(opaque).outputs

    def _measures(self, call: Call, function: Any) -> dict[str, Any]:
        out = call.outputs[0]
        measures = {"elements": elements(out, self.body.calls_per_sample), "dtype": out.dtype}
        if function.weight_dependent:
            measures["notes"] = (f"the decision on '{call.layer.name}' rests on its trained "
                                 "weights at rewrite time",)
        if type(call.layer) is layers.BatchNormalization and not function.inference_only:
            measures["notes"] += (f"'{call.layer.name}' is frozen (trainable=False), so it "
                                  "uses its moving statistics in training too",)
        return measures

    def _activation(self, call: Call, function: Any, inputs: list[Value],
                    **facts: Any) -> Node:
        layer = call.layer
        history = getattr(call.inputs[0], "_keras_history", None) if call.inputs else None
        facts["producer"] = history.operation.name if history and history.operation else None
        if type(layer) is layers.PReLU:
            rank = len(call.outputs[0].shape)
            shared = set(layer.shared_axes or ())
            function = dataclasses.replace(function, name=(
                f"PReLU(shared_axes={sorted(shared) or None}, min alpha={min_alpha(layer):g})"))
            facts["varies_along"] = frozenset(a - rank for a in range(1, rank)
                                              if a not in shared)
            if self.calls_of_layer[id(layer)] > 1:
                facts["late_veto"] = (f"PReLU '{layer.name}' is shared by several calls; "
                                      "moving it would unshare its alphas")
        return Node(layer.name, type(layer).__name__, inputs, function=function,
                    handle=("call", call), **facts, **self._measures(call, function))

    def _leaving(self, call: Call, inner: Body, k: int, value: Value) -> Value:
        """Output `k` of a nested model: its trailing activations as nodes of this body.

        The activations that end the nested model's output (as the nested model is
        after its own plan) may leave it for a pool here: each is a node after the
        nested model's, with what would keep it inside as its veto.
        """
        chain = []
        inner_value = inner.value_of[id(inner.functional.outputs[k])]
        while True:
            producer = inner_value.producer
            if producer is None or producer.function is None or producer.handle[0] == "boundary":
                break
            chain.append(producer)
            if producer.facts.fused:
                break
            inner_value = producer.inputs[0]
        chain.reverse()
        name = call.layer.name
        for i, node in enumerate(chain):
            after = chain[i + 1] if i + 1 < len(chain) else None
            label = f"{name}/{node.label}"
            virtual = self._node(Node(
                label, node.kind, [value], function=node.function,
                handle=("boundary", call, inner, node), fused=node.facts.fused,
                producer=node.producer, dtype=node.dtype, notes=node.facts.notes,
                varies_along=node.facts.varies_along,
                elements=elements(call.outputs[k], self.body.calls_per_sample),
                veto=self._boundary_problem(call, inner, node, after, label)))
            value = virtual.outputs[0]
        return value

    def _boundary_problem(self, call: Call, inner: Body, node: Node, after: Node | None,
                          label: str) -> str:
        """Why an activation may not leave its nested model ("" if it may)."""
        name = call.layer.name
        calls = self.model_calls.get(id(inner.model), 0)
        out = node.outputs[0]
        returned = sum(1 for t in inner.functional.outputs
                       if inner.value_of[id(t)] is out)
        others = [c for c, _ in out.uses if c is not after]
        if calls > 1:
            return f"nested model '{name}' is called at {calls} places"
        if after is not None and returned:
            return f"'{label}' is also returned by '{name}'"
        if others:
            return f"inside '{name}', the output of '{label}' also feeds " + \
                ", ".join(f"'{c.label}'" for c in others)
        if returned > 1:
            return f"'{label}' is returned more than once by '{name}'"
        if node.kind in ("PReLU", "BatchNormalization"):
            return f"a {node.kind} does not move across a model boundary"
        outer = self.body.model
        if isinstance(outer, keras.Sequential) and not node.facts.fused \
                and not isinstance(node.handle[1].layer, layers.Layer):
            return (f"'{label}' is a keras.ops operation, and the Sequential '{outer.name}' "
                    "holds layers only")
        return ""


# ---------------------------------------------------------------------------
# Entry points.


def plan(model: Any, target: str | Policy | None = "any", *, inference: bool = False) -> Report:
    policy = load_policy(target)
    return Report(model.name if isinstance(model, keras.Model) else "?",
                  tuple(analyze(model, policy, inference=inference).sites))
