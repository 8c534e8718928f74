"""Keras front end: find activation -> max pool sites in a layer graph, and rebuild.

The pass runs in two phases. `analyze` walks every (nested) model's layer graph,
asks `algebra` about each activation that feeds a pool, and returns a `_Plan`:
per layer call, what to do. `rebuild` then replays each graph on fresh `Input`s,
calling the original layer objects except where the plan says otherwise.

Why not `keras.models.clone_model(..., call_function=...)`: its `call_function`
is told which layer is called but not at which call site, and a shared layer
may be moved at one call and kept at another; Sequential models accept no
`call_function` at all. Replaying the graph ourselves is as short and decides
per call.

Variables: the result reuses every layer it does not change, so those layers
(and their variables) are shared with the input model, as when two functional
models are built from the same layers. A producer that loses its fused
activation is a new layer of the same class and config with a copy of the
weights; a PReLU whose alpha must be reshaped is a new layer too. No
initializer runs for weights that are then overwritten.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
from absl import logging
from keras import layers
from keras.src.models.functional import Functional

from tf_reorder import algebra
from tf_reorder.algebra import Step, StepKind
from tf_reorder.errors import ReorderError
from tf_reorder.policy import Policy, load_policy
from tf_reorder.report import Report, Site

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
_STEP_KINDS: dict[type, StepKind] = {
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
_POOL_KINDS = (StepKind.MAX_POOL, StepKind.AVERAGE_POOL)
# Between a PReLU and its pool only steps that keep every axis where it is.
_AXIS_PRESERVING = (layers.Identity, layers.Cropping1D, layers.Cropping2D,
                    layers.Cropping3D, layers.ZeroPadding1D, layers.ZeroPadding2D,
                    layers.ZeroPadding3D)


def step_kind(layer: Any) -> StepKind | None:
    return _STEP_KINDS.get(type(layer))


# ---------------------------------------------------------------------------
# Naming activation functions.

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


def describe_callable(fn: Callable[..., Any]) -> algebra.Function:
    """The algebra's view of an activation function object."""
    declared = algebra.registered(fn)
    if declared is not None:
        return declared
    name = _builtin_activation_names().get(id(fn))
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


def describe_activation(layer: Any) -> algebra.Function | None:
    """The activation a layer applies last, or None if it applies none.

    PReLU is described without its pooling context (see `_prelu_function`).
    """
    kind = type(layer)
    if kind in PRODUCER_TYPES or kind is layers.Activation:
        f = describe_callable(layer.activation)
        return None if f.identity else f
    if kind is layers.ReLU:
        return algebra.relu(float(layer.negative_slope),
                            None if layer.max_value is None else float(layer.max_value),
                            float(layer.threshold))
    if kind is layers.LeakyReLU:
        return algebra.leaky_relu(float(layer.negative_slope))
    if kind is layers.ELU:
        return algebra.elu(float(layer.alpha))
    if kind is layers.Softmax:
        return algebra.KERAS_ACTIVATIONS["softmax"]
    if kind is layers.PReLU:
        return algebra.prelu(_min_alpha(layer), uniform=True)
    return None


def _min_alpha(layer: Any) -> float:
    alpha = keras.ops.convert_to_numpy(layer.alpha)
    return float(alpha.min()) if alpha.size else 0.0


# ---------------------------------------------------------------------------
# A view of one model's layer graph.


@dataclasses.dataclass(eq=False)
class _Call:
    layer: Any
    node: Any
    position: int
    inputs: list[Any]
    outputs: list[Any]


class _Graph:
    """The calls of one Functional or Sequential model, in topological order."""

    def __init__(self, model: Any) -> None:
        functional = model._functional if isinstance(model, keras.Sequential) else model
        self.model = model
        self.functional = functional
        self.calls: list[_Call] = []
        self.consumers: dict[int, list[_Call]] = {}
        nodes = [node for depth in sorted(functional._nodes_by_depth, reverse=True)
                 for node in functional._nodes_by_depth[depth]
                 if node.operation is not None and not node.is_input]
        for node in _in_call_order(nodes):
            call = _Call(node.operation, node, len(self.calls),
                         list(node.input_tensors), list(keras.tree.flatten(node.outputs)))
            self.calls.append(call)
            for tensor in call.inputs:
                self.consumers.setdefault(id(tensor), []).append(call)
        self.output_ids = {id(t) for t in functional.outputs}

    def consumers_of(self, tensor: Any) -> list[_Call]:
        return self.consumers.get(id(tensor), [])


def _in_call_order(nodes: list[Any]) -> list[Any]:
    """`nodes` (topologically ordered) reordered so each layer's calls keep their order.

    The rebuild calls layers in this order, so a shared layer's nodes keep their
    order in its config, and reordering a reordered model gives the same config.
    Each layer's calls are ordered as they were made (their index in
    ``_inbound_nodes``), which is also a topological order, so the extra edges
    from each call to the layer's next one leave the graph acyclic; ties keep the
    order of `nodes`.
    """
    rank = {id(node): i for i, node in enumerate(nodes)}
    producer = {id(t): node for node in nodes for t in keras.tree.flatten(node.outputs)}
    users: dict[int, list[Any]] = {}
    waiting: dict[int, int] = {}
    by_layer: dict[int, list[Any]] = {}
    for node in nodes:
        by_layer.setdefault(id(node.operation), []).append(node)
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


def _elements(tensor: Any, calls: int = 1) -> int | None:
    """Elements per sample (times `calls`), or None if a dimension is unknown."""
    dims = tensor.shape[1:]
    if any(d is None for d in dims):
        return None
    return math.prod(dims) * calls


def _shrinks(layer: Any) -> bool:
    """Whether a max pool layer makes every input larger than its window smaller."""
    if not hasattr(layer, "strides"):  # global and adaptive pools
        return True
    return any(s > 1 for s in layer.strides) or (
        layer.padding == "valid" and any(k > 1 for k in layer.pool_size))


# ---------------------------------------------------------------------------
# Phase 1: analysis.


class Edit(enum.Enum):
    DROP_ACTIVATION = "drop the fused activation"  # call the split producer
    SPLIT_KEEP = "split, then apply the activation here"  # split elsewhere, kept here
    SKIP = "skip the standalone activation"
    APPLY_AFTER = "apply the activation after this pool"
    REPLACE = "call the rewritten nested model"


@dataclasses.dataclass
class _Move:
    """An activation call moved to after `landing`."""

    activation_call: _Call
    function: algebra.Function
    landing: _Call
    fused: bool
    landing_is_output: bool
    crosses_boundary: bool = False
    site: Site | None = None  # the report's entry for this move


@dataclasses.dataclass
class _ModelPlan:
    model: Any
    scope: str
    graph: _Graph
    calls_per_sample: int = 1  # how often the model runs per sample of the root model
    edits: dict[int, Edit] = dataclasses.field(default_factory=dict)  # call position -> edit
    # landing position -> the activations applied after it, innermost first
    moves_by_landing: dict[int, list[_Move]] = dataclasses.field(default_factory=dict)
    # position of a standalone activation that moves -> position of its landing pool
    skipped: dict[int, int] = dataclasses.field(default_factory=dict)
    nested: dict[int, "_ModelPlan"] = dataclasses.field(default_factory=dict)  # position -> plan

    @property
    def changed(self) -> bool:
        return bool(self.edits)


@dataclasses.dataclass
class _Plan:
    root: _ModelPlan
    sites: list[Site]
    split_layers: dict[int, Any]  # id(layer) -> the original producer layer
    site_layers: dict[int, Any]  # id(site) -> the layer applying its activation
    # A move inside a nested model (or out of one): what the nested model returns
    # changes, and a pool outside may take an activation further in another round.
    moves_in_nested_model: bool


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


def analyze(model: Any, policy: Policy | None = None) -> _Plan:
    check_model(model)
    return _Analyzer(model, policy).run()


def _is_walkable(layer: Any) -> bool:
    if isinstance(layer, keras.Sequential):
        return layer._functional is not None
    return isinstance(layer, Functional)


class _Analyzer:
    """Phase 1 over a whole model tree: every site's decision, and the edits."""

    def __init__(self, model: Any, policy: Policy | None = None) -> None:
        self.model = model
        self.policy = policy
        self.sites: list[Site] = []
        self.site_layers: dict[int, Any] = {}
        self.moves_in_nested_model = False
        self.split_layers: dict[int, Any] = {}  # id -> producer that loses its activation
        self.plans: dict[int, _ModelPlan] = {}
        self.graphs: dict[int, _Graph] = {}
        self.model_calls: dict[int, int] = {}  # id(nested model) -> calls in the tree
        self._count_model_calls(model)

    def run(self) -> _Plan:
        root = self.analyze_model(self.model, self.model.name, calls_per_sample=1)
        self._mark_split_keeps()
        return _Plan(root, self.sites, self.split_layers, self.site_layers,
                     self.moves_in_nested_model)

    def _count_model_calls(self, model: Any) -> None:
        if id(model) in self.graphs:
            return
        self.graphs[id(model)] = graph = _Graph(model)
        for call in graph.calls:
            if _is_walkable(call.layer):
                self.model_calls[id(call.layer)] = self.model_calls.get(id(call.layer), 0) + 1
                self._count_model_calls(call.layer)

    def analyze_model(self, model: Any, scope: str, calls_per_sample: int) -> _ModelPlan:
        if id(model) in self.plans:
            return self.plans[id(model)]
        plan = _ModelPlan(model, scope, self.graphs[id(model)], calls_per_sample)
        self.plans[id(model)] = plan
        found: list[tuple[int, Site]] = []
        # Last call first: an activation that moves is transparent to the walks of
        # the activations before it, which then may move as far as its landing.
        for call in reversed(plan.graph.calls):
            layer = call.layer
            if _is_walkable(layer):
                inner = self.analyze_model(
                    layer, f"{scope}/{layer.name}",
                    calls_per_sample * self.model_calls.get(id(layer), 1))
                plan.nested[call.position] = inner
                found.extend((call.position, site)
                             for site in self._boundary_sites(plan, call, inner))
                continue
            function = describe_activation(layer)
            if function is None:
                continue
            site, move = _analyze_site(plan, call, function, policy=self.policy)
            if site is None:
                continue
            self.site_layers[id(site)] = layer
            found.append((call.position, site))
            if move is not None:
                self._record(plan, move, inner=None)
        self.sites.extend(site for _, site in sorted(found, key=lambda item: item[0]))
        for position, inner in plan.nested.items():
            if inner.changed:
                plan.edits[position] = Edit.REPLACE
        return plan

    def _record(self, plan: _ModelPlan, move: _Move, inner: _ModelPlan | None) -> None:
        """Turns a decided move into edits: at the activation and at the landing pool."""
        call = move.activation_call
        where = inner or plan
        if move.fused:
            where.edits[call.position] = Edit.DROP_ACTIVATION
            self.split_layers[id(call.layer)] = call.layer
        else:
            where.edits[call.position] = Edit.SKIP
            if inner is None:
                plan.skipped[call.position] = move.landing.position
        plan.edits[move.landing.position] = Edit.APPLY_AFTER
        if where.model is not self.model:
            self.moves_in_nested_model = True
        plan.moves_by_landing.setdefault(move.landing.position, []).insert(0, move)

    def _boundary_sites(self, plan: _ModelPlan, call: _Call,
                        inner: _ModelPlan) -> list[Site]:
        """Activations that are a nested model's outputs and feed a pool outside it.

        Such an activation may leave the nested model: the nested model then
        returns the value before the activation (it is rebuilt, so this changes
        no model the caller holds), and the activation runs after the outer pool.
        """
        sites: list[Site] = []
        inner_graph = inner.graph
        producers = {id(c.outputs[0]): c for c in inner_graph.calls if c.outputs}
        inner_outputs = list(inner_graph.functional.outputs)
        for inner_out, outer_out in zip(inner_outputs, call.outputs):
            moved_after: _Call | None = None  # the standalone activation that just left
            limit: int | None = None
            # A standalone activation that leaves may take the activation before it
            # along (as one graph's walk crosses a skipped activation), landing no
            # further than it so the two keep their order.
            while True:
                activation_call = producers.get(id(inner_out))
                if activation_call is None or _is_walkable(activation_call.layer):
                    break
                function = describe_activation(activation_call.layer)
                if function is None:
                    break
                name = f"{call.layer.name}/{activation_call.layer.name}"
                problem = self._boundary_problem(call, inner, activation_call, inner_out, name,
                                                 moved_after)
                site, move = _analyze_site(plan, activation_call, function, start=outer_out,
                                           label=name, problem=problem, policy=self.policy,
                                           limit_position=limit)
                if site is None:
                    break
                self.site_layers[id(site)] = activation_call.layer
                sites.append(site)
                if move is None:
                    break
                move.crosses_boundary = True
                self._record(plan, move, inner=inner)
                if move.fused or len(activation_call.inputs) != 1:
                    break
                moved_after, limit = activation_call, move.landing.position
                inner_out = activation_call.inputs[0]
        return sites

    def _boundary_problem(self, call: _Call, inner: _ModelPlan, activation_call: _Call,
                          inner_out: Any, name: str, moved_after: _Call | None = None) -> str:
        """Why an activation may not leave its nested model ("" if it may).

        `moved_after`: the activation that consumed `inner_out` and left already.
        """
        calls = self.model_calls.get(id(inner.model), 0)
        others = [c for c in inner.graph.consumers_of(inner_out) if c is not moved_after]
        if calls > 1:
            return f"nested model '{call.layer.name}' is called at {calls} places"
        if moved_after is not None and any(
                t is inner_out for t in inner.graph.functional.outputs):
            return f"'{name}' is also returned by '{call.layer.name}'"
        if others:
            return f"inside '{call.layer.name}', the output of '{name}' also feeds " + \
                ", ".join(f"'{c.layer.name}'" for c in others)
        if sum(1 for t in inner.graph.functional.outputs if t is inner_out) > 1:
            return f"'{name}' is returned more than once by '{call.layer.name}'"
        if type(activation_call.layer) is layers.PReLU:
            return "a PReLU does not move across a model boundary"
        if activation_call.position in inner.edits:
            return f"'{name}' is already rewritten inside '{call.layer.name}'"
        return ""

    def _mark_split_keeps(self) -> None:
        """A split producer called where its activation stays gets it back explicitly."""
        for plan in self.plans.values():
            for call in plan.graph.calls:
                if id(call.layer) in self.split_layers and call.position not in plan.edits:
                    plan.edits[call.position] = Edit.SPLIT_KEEP
        # A nested model that only gained SPLIT_KEEP edits is changed too.
        changed = True
        while changed:
            changed = False
            for plan in self.plans.values():
                for position, inner in plan.nested.items():
                    if inner.changed and plan.edits.get(position) is not Edit.REPLACE:
                        plan.edits[position] = Edit.REPLACE
                        changed = True


@dataclasses.dataclass
class _Path:
    calls: list[_Call]  # the single-consumer chain after the activation
    steps: list[Step]
    stop_reason: str  # why the chain ended ("" at an ordinary layer)
    pool_reachable: Any  # the first pool call reachable, also across a fan-out
    limit: int | None  # index in `calls` past which the activation may not land


def _walk(graph: _Graph, start: Any, start_name: str,
          skipped: dict[int, int] | None = None, limit_position: int | None = None) -> _Path:
    """The chain of data movement and pools that the output of an activation feeds.

    A standalone activation in `skipped` (it moves to its own landing pool) is
    crossed like data movement, but the walk's activation may land no further
    than that pool, so the two keep their order. `limit_position` sets that
    limit from the start (an activation that left a nested model after another).
    """
    skipped = skipped or {}
    calls: list[_Call] = []
    steps: list[Step] = []
    tensor, name = start, start_name
    while True:
        consumers = graph.consumers_of(tensor)
        if id(tensor) in graph.output_ids:
            stop = f"the output of '{name}' is also a model output"
            break
        if len(consumers) != 1:
            others = ", ".join(sorted({f"'{c.layer.name}'" for c in consumers}))
            stop = f"the output of '{name}' has {len(consumers)} consumers ({others})" \
                if consumers else ""
            break
        (consumer,) = consumers
        kind = step_kind(consumer.layer)
        if consumer.position in skipped:
            kind = StepKind.DATA_MOVEMENT
            if limit_position is None:
                limit_position = skipped[consumer.position]
        if kind is None or len(consumer.inputs) != 1:
            stop = ""
            break
        calls.append(consumer)
        steps.append(Step(kind, consumer.layer.name))
        if kind is StepKind.AVERAGE_POOL:
            stop = ""
            break
        tensor, name = consumer.outputs[0], consumer.layer.name
    pool = next((c for c in calls if step_kind(c.layer) in _POOL_KINDS), None)
    if pool is None and stop:
        pool = _first_pool_beyond(graph, tensor)
    limit = next((i for i, c in enumerate(calls) if c.position == limit_position), None)
    return _Path(calls, steps, stop, pool, limit)


def _first_pool_beyond(graph: _Graph, tensor: Any) -> _Call | None:
    """A pool reachable from `tensor` through data movement, across fan-outs."""
    frontier, seen = [tensor], set()
    while frontier:
        t = frontier.pop()
        for consumer in graph.consumers_of(t):
            if consumer.position in seen:
                continue
            seen.add(consumer.position)
            kind = step_kind(consumer.layer)
            if kind in _POOL_KINDS:
                return consumer
            if kind is not None:
                frontier.extend(consumer.outputs)
    return None


def _analyze_site(plan: _ModelPlan, call: _Call, function: algebra.Function, *,
                  start: Any = None, label: str | None = None, problem: str = "",
                  policy: Policy | None = None,
                  limit_position: int | None = None) -> tuple[Site | None, _Move | None]:
    """Decides one candidate: the activation applied by `call`.

    For an activation that is the output of a nested model, `call` is in the
    nested graph, `start` is the nested model's output in `plan`'s graph,
    `label` names the activation with its model, and `problem` is a reason to
    refuse found inside the nested model. A move the rules allow is made only
    if `policy` (when given) measured it faster.
    """
    graph = plan.graph
    layer = call.layer
    fused = type(layer) in PRODUCER_TYPES
    activation_out = call.outputs[0] if start is None else start
    path = _walk(graph, activation_out, label or layer.name, plan.skipped, limit_position)
    if path.pool_reachable is None:
        return None, None  # the activation feeds no pool: not a candidate

    if type(layer) is layers.PReLU:
        function = _prelu_function(layer, path, len(activation_out.shape), plan.skipped)
    notes: list[str] = []
    if function.weight_dependent:
        notes.append(f"the decision on '{layer.name}' rests on its trained weights at "
                     "rewrite time")

    reachable = path.steps if path.limit is None else path.steps[:path.limit + 1]
    landing, verdict = algebra.landing_index(function, reachable)
    first_pool = algebra.Step(step_kind(path.pool_reachable.layer), path.pool_reachable.layer.name)
    f_verdict = algebra.commutes_with_max(function, first_pool)
    if not f_verdict and not f_verdict.reason.endswith("nothing to move"):
        verdict, landing = f_verdict, 0
    elif landing == 0 and path.stop_reason and verdict.reason == "no max pooling on the path":
        verdict = algebra.Verdict(False, path.stop_reason)

    crossed = path.calls[:landing] if landing else path.calls
    landing_call = crossed[-1] if landing else path.pool_reachable
    before = _elements(activation_out, plan.calls_per_sample)
    after = _elements(landing_call.outputs[0], plan.calls_per_sample) if landing else None
    if before is None:
        after = None  # a saving is known only if both sizes are

    if verdict and problem:
        verdict = algebra.Verdict(False, problem)
    if verdict:
        verdict = _dtype_check(call, crossed)
    if verdict and (before is None or after is None):
        verdict = algebra.worth_moving_any_size(
            [Step(step_kind(c.layer), c.layer.name,
                  shrinks=step_kind(c.layer) is StepKind.MAX_POOL and _shrinks(c.layer))
             for c in crossed])
        if verdict:
            notes.append("input size unknown: the move removes work for every input "
                         "larger than one pooling window")
    elif verdict:
        verdict = algebra.worth_moving(before, after)
    if verdict and type(layer) is layers.PReLU and _call_count(graph, layer) > 1:
        verdict = algebra.Verdict(False, f"PReLU '{layer.name}' is shared by several calls; "
                                  "moving it would unshare its alphas")
    allowed = verdict.ok  # by the rules; the site then reports where it would land
    if verdict and policy is not None:
        verdict = policy.decide(function.family)

    producer = None
    if fused:
        producer = layer.name
    elif call.inputs:
        history = getattr(call.inputs[0], "_keras_history", None)
        producer = history.operation.name if history and history.operation else None
    between_calls = [c for c in crossed if c is not landing_call] if allowed else \
        [c for c in path.calls if c is not path.pool_reachable
         and c.position < path.pool_reachable.position]
    site = Site(
        scope=plan.scope,
        activation=label or layer.name,
        function=function.name,
        fused=fused,
        producer=producer,
        between=tuple(c.layer.name for c in between_calls),
        pool=landing_call.layer.name,
        moved=bool(verdict),
        reason=verdict.reason,
        elements_before=before,
        elements_after=after if verdict else before,
        exact=function.exact,
        notes=tuple(notes),
        policy=policy.label if policy is not None else "any",
    )
    if not verdict:
        return site, None
    move = _Move(call, function, landing_call, fused,
                 landing_is_output=id(landing_call.outputs[0]) in graph.output_ids, site=site)
    return site, move


def _dtype_check(call: _Call, crossed: Sequence[_Call]) -> algebra.Verdict:
    dtype = call.outputs[0].dtype
    for c in crossed:
        if c.outputs[0].dtype != dtype or c.layer.compute_dtype != dtype:
            return algebra.Verdict(
                False, f"'{c.layer.name}' computes in {c.layer.compute_dtype}, the activation "
                f"in {dtype}: the activation would run in another precision")
    return algebra.YES


def _call_count(graph: _Graph, layer: Any) -> int:
    return sum(1 for c in graph.calls if c.layer is layer)


def _channel_axis(pool_layer: Any, rank: int) -> int:
    data_format = getattr(pool_layer, "data_format", "channels_last")
    return 1 if data_format == "channels_first" else rank - 1


def _prelu_function(layer: Any, path: _Path, rank: int,
                    skipped: dict[int, int] | None = None) -> algebra.Function:
    """PReLU is uniform over a window iff its alphas are shared over all but channels.

    Between it and the pool, axes must stay where they are: `_AXIS_PRESERVING`
    layers, and activations in `skipped` (elementwise: they move away anyway).
    """
    min_alpha = _min_alpha(layer)
    pool = path.pool_reachable
    between = [c for c in path.calls if c.position < pool.position]
    preserving = all(type(c.layer) in _AXIS_PRESERVING or c.position in (skipped or {})
                     for c in between)
    shared = set(layer.shared_axes or ())
    per_position = {a for a in range(1, rank) if a not in shared}
    if not per_position:
        uniform = True
    else:
        uniform = preserving and per_position <= {_channel_axis(pool.layer, rank)}
    function = algebra.prelu(min_alpha, uniform=uniform)
    name = f"PReLU(shared_axes={sorted(shared) or None}, min alpha={min_alpha:g})"
    return dataclasses.replace(function, name=name)


# ---------------------------------------------------------------------------
# Phase 2: rebuild.


class _Builder:
    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.linear_layers: dict[int, Any] = {}
        self.rebuilt: dict[int, Any] = {}
        # id(layer applying a moved activation in the new model) -> (it, the move's site)
        self.origins: dict[int, tuple[Any, Site]] = {}
        # (model name, new name of a landing pool) -> its name before
        self.renamed_pools: dict[tuple[str, str], str] = {}

    def model(self, model_plan: _ModelPlan, *, top: bool = False) -> Any:
        model = model_plan.model
        if not top and not model_plan.changed:
            return model
        if id(model) in self.rebuilt:
            return self.rebuilt[id(model)]
        names = _NameSource((layer.name for layer in model.layers), model=model.name)
        if isinstance(model, keras.Sequential):
            new = self._sequential(model_plan, names)
        else:
            new = self._functional(model_plan, names)
        new.trainable = model.trainable
        _copy_compile_state(model, new)
        self.rebuilt[id(model)] = new
        return new

    def _sequential(self, model_plan: _ModelPlan, names: "_NameSource") -> Any:
        model = model_plan.model
        new_layers: list[Any] = []
        for call in model_plan.graph.calls:
            new_layers.extend(self._layers_for(model_plan, call, names))
        (inp,) = model.inputs
        input_layer = model._layers[0]
        new_input = keras.Input(batch_shape=inp.shape, dtype=inp.dtype, name=input_layer.name)
        return keras.Sequential([new_input, *new_layers], name=model.name)

    def _layers_for(self, model_plan: _ModelPlan, call: _Call, names: "_NameSource") -> list[Any]:
        """The layers that replace one call in a Sequential (applied in order)."""
        edit = model_plan.edits.get(call.position)
        layer = call.layer
        if edit is None:
            return [layer]
        if edit is Edit.SKIP:
            return []
        if edit is Edit.DROP_ACTIVATION:
            return [self.linear(layer)]
        if edit is Edit.SPLIT_KEEP:
            return [self.linear(layer), self.activation_for_split(layer, names)]
        if edit is Edit.REPLACE:
            return [self.model(model_plan.nested[call.position])]
        pool, activations = self.landing_layers(model_plan.moves_by_landing[call.position], names)
        return [pool, *activations]

    def _functional(self, model_plan: _ModelPlan, names: "_NameSource") -> Any:
        model = model_plan.model
        new_inputs = keras.tree.map_structure(
            lambda x: keras.Input(batch_shape=x.shape, dtype=x.dtype, sparse=x.sparse,
                                  name=x._keras_history.operation.name),
            model.input)
        tensors = {id(old): new for old, new in
                   zip(model.inputs, keras.tree.flatten(new_inputs))}
        for call in model_plan.graph.calls:
            args, kwargs = call.node.arguments.fill_in(tensors)
            outputs = self._call(model_plan, call, names, args, kwargs)
            for old, new in zip(call.outputs, keras.tree.flatten(outputs)):
                tensors[id(old)] = new
        new_outputs = keras.tree.pack_sequence_as(
            model.output, [tensors[id(t)] for t in model.outputs])
        return keras.Model(new_inputs, new_outputs, name=model.name)

    def _call(self, model_plan: _ModelPlan, call: _Call, names: "_NameSource",
              args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        edit = model_plan.edits.get(call.position)
        if edit is Edit.SKIP:
            return args[0]
        if edit is None:
            return call.layer(*args, **kwargs)
        if edit is Edit.REPLACE:
            return self.model(model_plan.nested[call.position])(*args, **kwargs)
        if edit is Edit.APPLY_AFTER:
            pool, activations = self.landing_layers(model_plan.moves_by_landing[call.position],
                                                    names)
            out = pool(*args, **kwargs)
            for activation in activations:
                out = activation(out)
            return out
        out = self.linear(call.layer)(*args, **kwargs)
        if edit is Edit.SPLIT_KEEP:
            out = self.activation_for_split(call.layer, names)(out)
        return out

    # -- new layers ----------------------------------------------------------

    def linear(self, layer: Any) -> Any:
        """The producer without its activation: same class, config and weights."""
        if id(layer) in self.linear_layers:
            return self.linear_layers[id(layer)]
        config = layer.get_config()
        # Build with cheap initializers, then copy the trained weights over them.
        initializer_keys = [k for k, v in config.items()
                            if k.endswith("_initializer") and v is not None]
        new = _rebuilt(layer, "to split off its activation", activation="linear",
                       **{key: "zeros" for key in initializer_keys})
        new.build(layer._inbound_nodes[0].input_tensors[0].shape)
        for key in initializer_keys:
            if hasattr(layer, key):
                setattr(new, key, getattr(layer, key))
        for target, source in zip(new.weights, layer.weights, strict=True):
            target.assign(source)
        self.linear_layers[id(layer)] = new
        logging.vlog(1, "split the activation off '%s'", layer.name)
        return new

    def activation_for_split(self, layer: Any, names: "_NameSource") -> Any:
        return _activation_layer(layer.activation, names.fresh(f"{layer.name}_activation"),
                                 layer.dtype_policy)

    def landing_layers(self, moves: Sequence[_Move],
                       names: "_NameSource") -> tuple[Any, list[Any]]:
        """The pool to call and the activations to apply after it, in order."""
        landing = moves[0].landing
        pool = landing.layer
        output_name = None
        if moves[0].landing_is_output:
            # The model's output keeps its name: the last activation takes the pool's.
            output_name = pool.name
            pool = _rebuilt(pool, "to rename it", name=names.fresh(f"{pool.name}_pool"))
            self.renamed_pools[(names.model, pool.name)] = output_name
        activations = [self._activation_after(move, names,
                                              output_name if i == len(moves) - 1 else None)
                       for i, move in enumerate(moves)]
        return pool, activations

    def _activation_after(self, move: _Move, names: "_NameSource",
                          activation_name: str | None) -> Any:
        """The layer that applies `move`'s activation after its landing pool."""
        layer = self._new_activation_after(move, names, activation_name)
        if move.site is not None:
            self.origins[id(layer)] = (layer, move.site)
        return layer

    def _new_activation_after(self, move: _Move, names: "_NameSource",
                              activation_name: str | None) -> Any:
        source = move.activation_call.layer
        pool = move.landing.layer
        pooled = move.landing.outputs[0]
        if move.fused:
            name = activation_name or names.fresh(f"{source.name}_activation")
            return _activation_layer(source.activation, name, source.dtype_policy)
        if type(source) is layers.PReLU:
            return _prelu_for(source, pooled, pool, activation_name or source.name)
        if activation_name is None and not move.crosses_boundary:
            return source
        return _rebuilt(source, "to move it", name=activation_name or names.fresh(source.name))


def _rebuilt(layer: Any, why: str, **changes: Any) -> Any:
    """A new layer of ``layer``'s class and config, with ``changes``; not built.

    The config's functions and objects (activation, regularizers, constraints) are
    passed as the layer holds them, not deserialized: a custom function that Keras
    has no registration for then works as it does in the input model.
    """
    config = layer.get_config()
    for key, value in config.items():
        held = getattr(layer, key, None)
        if key != "dtype" and isinstance(value, dict) and callable(held):
            config[key] = held
    config.update(changes)
    try:
        return type(layer).from_config(config)
    except Exception as error:  # Keras wraps whatever the constructor raised
        detail = str(error).splitlines()[-1] if str(error).strip() else type(error).__name__
        raise ReorderError(
            f"cannot make a copy of layer '{layer.name}' ({type(layer).__name__}) {why}: "
            f"Keras cannot rebuild it from its config ({detail[:160]})") from error


def _activation_layer(fn: Callable[..., Any], name: str, dtype_policy: Any) -> Any:
    builtin = _builtin_activation_names().get(id(fn))
    return layers.Activation(builtin or fn, name=name, dtype=dtype_policy)


def _prelu_for(source: Any, pooled: Any, pool_layer: Any, name: str) -> Any:
    """A PReLU for the pooled tensor with the same per-channel alphas."""
    alpha = keras.ops.convert_to_numpy(source.alpha)
    rank = len(pooled.shape)
    if alpha.size == 1:
        shared = list(range(1, rank))
    else:
        channel = _channel_axis(pool_layer, rank) if rank > 2 else 1
        shared = [a for a in range(1, rank) if a != channel] or None
    new = _rebuilt(source, "to move it", name=name, shared_axes=shared,
                   alpha_initializer="zeros")
    new.build(pooled.shape)
    new.alpha_initializer = source.alpha_initializer
    new.alpha.assign(alpha.reshape(tuple(new.alpha.shape)))
    return new


class _NameSource:
    """Layer names unique within one model."""

    def __init__(self, taken: Any, model: str = "") -> None:
        self.taken = set(taken)
        self.model = model

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.taken:
            name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        return name


def _copy_compile_state(model: Any, new: Any) -> None:
    if not getattr(model, "compiled", False):
        return
    try:
        new.compile_from_config(model.get_compile_config())
    except Exception as error:  # a custom loss or metric that cannot be rebuilt
        logging.warning("could not compile the rewritten model like '%s': %s", model.name, error)


# ---------------------------------------------------------------------------
# Entry points.


def plan(model: Any, target: str | Policy | None = "any") -> Report:
    policy = load_policy(target)
    analysis = analyze(model, policy)
    if analysis.moves_in_nested_model:  # later rounds are decided on the built model
        return _fixed_point(model, analysis, policy)[1]
    return Report(model.name if isinstance(model, keras.Model) else "?",
                  tuple(analysis.sites))


def reorder(model: Any, target: str | Policy | None = "any") -> tuple[Any, Report]:
    policy = load_policy(target)
    new, report = _fixed_point(model, analyze(model, policy), policy)
    logging.info("reordered '%s': %d of %d sites moved, %d activation elements per sample "
                 "saved", model.name, len(report.moved), len(report.sites),
                 report.elements_saved)
    return new, report


_MAX_ROUNDS = 64


def _fixed_point(model: Any, analysis: _Plan, policy: Policy | None) -> tuple[Any, Report]:
    """Builds `analysis`, then rewrites the result again until nothing moves.

    One round decides a nested model's activations before the graph around it,
    and their walks stop at the nested model's output: an activation that lands
    on a pool there becomes the nested model's output, and only the next round
    sees the pool outside that it may move after. A round after the first runs
    only when something moved inside a nested model. An activation moved in
    several rounds is one site, from its place in `model` to its last landing.
    """
    sites: list[Site] = []
    slot_of_site: dict[int, int] = {}  # id(site of this round) -> index in `sites`
    # id(layer of the model analyzed) -> (index, the layer: held, so its id stays its own)
    slot_of_layer: dict[int, tuple[int, Any]] = {}
    renamed_pools: dict[tuple[str, str], str] = {}
    new = model
    for round_number in range(_MAX_ROUNDS):
        for site in analysis.sites:
            slot, _ = slot_of_layer.get(id(analysis.site_layers[id(site)]), (None, None))
            if slot is None:
                slot = len(sites)
                sites.append(site)
            elif site.moved:
                sites[slot] = _moved_on(sites[slot], site, renamed_pools)
            slot_of_site[id(site)] = slot
        if round_number and not any(site.moved for site in analysis.sites):
            return new, Report(model.name, tuple(sites))
        builder = _Builder(analysis)
        new = builder.model(analysis.root, top=True)
        if not analysis.moves_in_nested_model:
            return new, Report(model.name, tuple(sites))
        # The layers of `new` that apply a site's activation: kept ones and moved ones.
        slot_of_layer = {id(layer): (slot_of_site[id(site)], layer) for site in analysis.sites
                         for layer in [analysis.site_layers[id(site)]]}
        slot_of_layer.update({id(layer): (slot_of_site[id(site)], layer)
                              for layer, site in builder.origins.values()})
        renamed_pools = builder.renamed_pools
        analysis = analyze(new, policy)
        slot_of_site = {}
    raise ReorderError(f"internal error: reordering '{model.name}' did not settle")


def _moved_on(earlier: Site, later: Site, renamed_pools: dict[tuple[str, str], str]) -> Site:
    """One site for an activation that moved to `earlier.pool`, then on to `later.pool`.

    `later` names layers of the model the earlier round built: a landing pool
    renamed there (``<pool>_pool``) gets its earlier name back. When the
    activation left a nested model, the site moves to the enclosing scope and
    the names inside get the nested model's name in front.
    """
    model = later.scope.rsplit("/", 1)[-1]

    def before(name: str) -> str:
        return renamed_pools.get((model, name), name)

    inside = earlier.scope.removeprefix(later.scope).lstrip("/")

    def outer(name: str) -> str:
        return f"{inside}/{name}" if inside else name

    return dataclasses.replace(
        earlier, scope=later.scope, activation=outer(earlier.activation),
        producer=outer(earlier.producer) if earlier.producer else earlier.producer,
        between=(*map(outer, earlier.between), outer(earlier.pool or "?"),
                 *map(before, later.between)),
        pool=before(later.pool) if later.pool else later.pool,
        elements_after=later.elements_after if earlier.elements_after is not None else None)
