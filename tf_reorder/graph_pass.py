"""GraphDef front end: a Grappler-style pass over a graph's nodes and its functions.

It finds ``f -> [Identity | Pad | ...] -> max`` in the top-level nodes of a
`GraphDef` and in every `FunctionDef` of its library (the bodies behind
``PartitionedCall``, ``If``/``While``/``Case`` branches, at any depth) and
rewrites it to ``[Identity | Pad | ...] -> max -> f``, asking `algebra` whether
each move is exact. It repeats until nothing moves, so chains such as
``f1 -> f2 -> max`` move whole and a second pass changes nothing.

Names that other nodes, fetches and function outputs refer to are kept: the
activation takes the pool's name (so every reference to the pooled value now
sees the activated value, as before), and the pool takes the activation's
name, which nothing else referred to.

Example:

    graph_def = concrete_function.graph.as_graph_def(add_shapes=True)
    new_graph_def, report = tf_reorder.reorder_graph_def(graph_def)
    print(report)
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import inspect
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from absl import logging
from tensorflow.core.framework import function_pb2, graph_pb2, node_def_pb2
from tensorflow.python.framework import op_def_registry, tensor_util

from tf_reorder import algebra
from tf_reorder.algebra import Step, StepKind
from tf_reorder.errors import ReorderError
from tf_reorder.policy import Policy, load_policy
from tf_reorder.report import Report, Site

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
DATA_MOVEMENT_OPS = frozenset({"Identity", "Reshape", "Transpose", "Squeeze", "ExpandDims",
                               "MirrorPad"})
PAD_OPS = frozenset({"Pad", "PadV2"})


def step_of(node: node_def_pb2.NodeDef, body: "_Body") -> Step | None:
    """The algebra's view of a node between an activation and a pool."""
    if node.op in POOL_OPS:
        return Step(POOL_OPS[node.op], node.name)  # `shrinks` only where sizes are unknown
    if node.op in DATA_MOVEMENT_OPS:
        return Step(StepKind.DATA_MOVEMENT, node.name)
    if node.op == "Pad":
        return Step(StepKind.ZERO_PADDING, node.name)
    if node.op == "PadV2":
        value = body.constant(node.input[2]) if len(node.input) > 2 else None
        if value is None or value.size != 1:
            return Step(StepKind.OTHER, node.name)
        return Step(StepKind.ZERO_PADDING, node.name, pad_value=float(value.reshape(())))
    return None


def _shrinks(node: node_def_pb2.NodeDef) -> bool:
    if node.op == "Max":
        return True
    if node.op in ("MaxPool", "MaxPool3D", "MaxPoolWithArgmax"):
        strides = list(node.attr["strides"].list.i)
        ksize = list(node.attr["ksize"].list.i)
        padding = node.attr["padding"].s.decode()
        return any(s > 1 for s in strides) or (padding == "VALID" and any(k > 1 for k in ksize))
    return False


_ACTIVATION_OPS = frozenset(algebra.TF_OPS) | {"LeakyRelu"}


def activation_of(node: node_def_pb2.NodeDef) -> algebra.Function | None:
    if node.op not in _ACTIVATION_OPS:  # most nodes: no attr look-up
        return None
    attrs = {"alpha": node.attr["alpha"].f} if "alpha" in node.attr else {}
    return algebra.tf_op(node.op, attrs)


def _first_output_arg(op: str) -> str:
    op_def = op_def_registry.get(op)
    if op_def is None or not op_def.output_arg:
        raise ReorderError(f"op '{op}' is not registered in this TensorFlow")
    return op_def.output_arg[0].name


# ---------------------------------------------------------------------------
# A body: the top-level nodes of a GraphDef, or a FunctionDef's nodes.


@dataclasses.dataclass
class _Ref:
    """One input string of one node (or one function output), parsed."""

    node: str
    output: str | int  # graph: index; function: "arg:index" within the producer
    control: bool


class _Body:
    def __init__(self, nodes: Iterable[node_def_pb2.NodeDef], *, scope: str, function: bool,
                 kept: set[str], returns: dict[str, str] | None = None) -> None:
        self.scope = scope
        self.function = function
        self.nodes: dict[str, node_def_pb2.NodeDef] = {}
        self.activations: list[node_def_pb2.NodeDef] = []
        self.kept = kept  # names whose output must stay as it is (fetches, preserve)
        self.returns = returns  # a FunctionDef's ret map, rewritten in place
        # name -> (node, input index) of every data input that reads it, and control edges.
        self.consumers: dict[str, list[tuple[node_def_pb2.NodeDef, int]]] = \
            collections.defaultdict(list)
        self.control_consumers: dict[str, list[str]] = collections.defaultdict(list)
        self.with_control_inputs: set[str] = set()
        # id(node) -> its name in the input, for the nodes a move renamed: the report
        # speaks of the input's names, though a later round sees the new ones.
        self.renamed: dict[int, str] = {}
        consumers, control = self.consumers, self.control_consumers
        activations, by_name = self.activations, self.nodes
        for node in nodes:
            name = node.name
            by_name[name] = node
            if node.op in _ACTIVATION_OPS:
                activations.append(node)
            for i, text in enumerate(node.input):
                if text[0] == "^":
                    control[text[1:]].append(name)
                    self.with_control_inputs.add(name)
                else:
                    consumers[text.partition(":")[0]].append((node, i))
        self.returned = {self.parse(v).node for v in (returns or {}).values()}
        self.order = {id(node): i for i, node in enumerate(activations)}

    def label(self, node: node_def_pb2.NodeDef) -> str:
        """The node's name in the input graph."""
        return self.renamed.get(id(node), node.name)

    def label_of_name(self, name: str) -> str:
        node = self.nodes.get(name)
        return name if node is None else self.label(node)

    def parse(self, text: str) -> _Ref:
        if text.startswith("^"):
            return _Ref(text[1:], 0, True)
        parts = text.split(":")
        if self.function:
            return _Ref(parts[0], ":".join(parts[1:]), False)
        return _Ref(parts[0], int(parts[1]) if len(parts) > 1 else 0, False)

    def is_first_output(self, ref: _Ref) -> bool:
        if not self.function:
            return ref.output == 0
        node = self.nodes.get(ref.node)
        return node is not None and ref.output == f"{_first_output_arg(node.op)}:0"

    def first_output(self, node: node_def_pb2.NodeDef) -> str:
        return f"{node.name}:{_first_output_arg(node.op)}:0" if self.function else node.name

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
        node = self.nodes.get(self.parse(text).node)
        if node is None or node.op != "Const":
            return None
        return tensor_util.MakeNdarray(node.attr["value"].tensor)

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
# Finding and deciding sites.


@dataclasses.dataclass
class _Candidate:
    activation: node_def_pb2.NodeDef
    function: algebra.Function
    chain: list[node_def_pb2.NodeDef]  # from the node after f to the landing pool
    site: Site


def _walk(body: _Body, start: node_def_pb2.NodeDef) -> tuple[list[Any], list[Step], str]:
    """The single-consumer chain of steps after `start`, and why it ended."""
    nodes, steps = [], []
    current = start
    while True:
        if body.control_consumers.get(current.name):
            return nodes, steps, f"'{body.label(current)}' is a control input of " + \
                ", ".join(f"'{body.label_of_name(n)}'"
                          for n in sorted(body.control_consumers[current.name]))
        if current.name in body.returned:
            return nodes, steps, f"'{body.label(current)}' is an output of {body.scope}"
        if current.name in body.kept:
            return nodes, steps, f"'{body.label(current)}' is fetched or preserved"
        consumers = body.data_consumers(current.name)
        if len(consumers) != 1:
            names = ", ".join(sorted({f"'{body.label(c)}'" for c, _ in consumers}))
            return nodes, steps, (f"the output of '{body.label(current)}' has "
                                  f"{len(consumers)} consumers ({names})" if consumers else "")
        consumer, position = consumers[0]
        step = step_of(consumer, body)
        if step is None or position != 0 or step.kind is StepKind.OTHER:
            return nodes, steps, ""
        if consumer.name in body.with_control_inputs:
            return nodes, steps, f"'{body.label(consumer)}' has control inputs"
        nodes.append(consumer)
        steps.append(step)
        if step.kind is StepKind.AVERAGE_POOL:
            return nodes, steps, ""
        current = consumer


def _decide(body: _Body, node: node_def_pb2.NodeDef, function: algebra.Function,
            policy: Policy | None = None) -> _Candidate | None:
    chain, steps, stop = _walk(body, node)
    pools = [i for i, s in enumerate(steps) if s.kind in algebra.MAX_STEPS
             or s.kind is StepKind.AVERAGE_POOL]
    if not pools and not stop:
        return None  # feeds no pool: not a candidate
    beyond = None if pools else _pool_beyond(body, node)
    if not pools and beyond is None:
        return None
    landing, verdict = algebra.landing_index(function, steps)
    first_pool = steps[pools[0]] if pools else Step(StepKind.MAX_POOL, "?")
    f_verdict = algebra.commutes_with_max(function, first_pool)
    if not f_verdict:
        verdict, landing = f_verdict, 0
    elif landing == 0 and stop and verdict.reason == "no max pooling on the path":
        verdict = algebra.Verdict(False, stop)
    if verdict and node.name in body.with_control_inputs:
        verdict = algebra.Verdict(False, f"'{body.label(node)}' has control inputs")
    crossed = chain[:landing] if landing else chain
    landing_node = crossed[-1] if landing else (chain[pools[0]] if pools else beyond)
    before = body.elements(node)
    after = body.elements(landing_node) if landing and before is not None else None
    if verdict and _dtype(landing_node) != _dtype(node):
        verdict = algebra.Verdict(False, f"'{body.label(landing_node)}' has another dtype")
    if verdict:
        verdict = (algebra.worth_moving(before, after) if before is not None and after is not None
                   else algebra.worth_moving_any_size(
                       [_sized_step(step, n) for step, n in zip(steps[:landing], crossed,
                                                               strict=True)]))
    if verdict and landing:
        verdict = _grappler_hazard(body, node, crossed[-1], policy)
    allowed = verdict.ok  # by the rules; the site then reports where it would land
    if verdict and policy is not None:
        verdict = policy.decide(function.family)
    producer = body.label_of_name(body.parse(node.input[0]).node) if node.input else None
    site = Site(
        scope=body.scope,
        activation=body.label(node),
        function=function.name,
        fused=False,
        producer=producer,
        between=tuple(body.label(n) for n in crossed[:-1]) if allowed else
        tuple(body.label(n) for n in chain[:pools[0]]) if pools else (),
        pool=body.label(landing_node) if landing_node is not None else None,
        moved=bool(verdict),
        reason=verdict.reason,
        elements_before=before,
        elements_after=after if verdict else before,
        exact=function.exact,
        policy=policy.label if policy is not None else "any",
    )
    return _Candidate(node, function, crossed if verdict else [], site)


# Ops Grappler's arithmetic optimizer swaps with a max after them
# (IsElementWiseMonotonic in tensorflow/core/grappler/op_types.cc); a non-increasing
# one turns a Max reduction into a Min, and is not swapped with a pool.
GRAPPLER_NON_DECREASING_OPS = frozenset({
    "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Elu", "Erf", "Exp", "Expm1", "Floor",
    "Log", "Log1p", "Relu", "Relu6", "Rint", "Selu", "Sigmoid", "Sign", "Sinh", "Softsign",
    "Softplus", "Sqrt", "Tanh"})
GRAPPLER_NON_INCREASING_OPS = frozenset({"Acos", "Erfc", "Neg", "Rsqrt"})


def _grappler_hazard(body: _Body, node: node_def_pb2.NodeDef, pool: node_def_pb2.NodeDef,
                     policy: Policy | None) -> algebra.Verdict:
    """Refuses a move that would hand Grappler a swap of its own.

    Grappler's arithmetic optimizer swaps ``max(g(x))`` itself for the ops above,
    and TF 2.21 gets that swap wrong in some graphs: it reads output 0 of a Split
    where g read output 1, and it returns an empty tensor for a pool after a
    Reshape in a tf.cond branch (tests/regressions/test_graph_grappler_arithmetic.py).
    Where `node` stands between such a ``g`` and ``pool``, the original is safe
    from it; moving `node` away would expose ``g`` to the pool, unless this pass
    moves ``g`` too (in a later round).
    """
    ref = body.parse(node.input[0]) if node.input else None
    g = body.nodes.get(ref.node) if ref is not None else None
    swapped = GRAPPLER_NON_DECREASING_OPS | (GRAPPLER_NON_INCREASING_OPS
                                             if pool.op == "Max" else frozenset())
    if g is None or g.op not in swapped or len(body.data_consumers(g.name)) != 1:
        return algebra.YES  # Grappler swaps only a g that the pool alone reads
    function = activation_of(g)
    if function is not None and g.name not in body.with_control_inputs \
            and not body.control_consumers.get(g.name) \
            and algebra.commutes_with_max(function, Step(StepKind.MAX_POOL, pool.name)) \
            and (policy is None or policy.decide(function.family)):
        return algebra.YES
    return algebra.Verdict(False, (
        f"'{body.label(pool)}' would then read {g.op} '{body.label(g)}', which Grappler's "
        "arithmetic optimizer swaps with the pool itself, and TF 2.21 gets that swap wrong "
        "in some graphs (a Split's second output, a Reshape in a tf.cond branch)"))


def _sized_step(step: Step, node: node_def_pb2.NodeDef) -> Step:
    """The step as the size rule for unknown shapes sees it.

    MirrorPad moves data, so any f crosses it, but it enlarges the tensor like a
    pad: where sizes are unknown, a path through it cannot be shown to remove work.
    """
    if node.op == "MirrorPad":
        return dataclasses.replace(step, kind=StepKind.ZERO_PADDING)
    return dataclasses.replace(step, shrinks=_shrinks(node))


def _dtype(node: node_def_pb2.NodeDef) -> int | None:
    """The node's T attr; SavedModels strip attrs equal to the op's default."""
    if "T" in node.attr:
        return node.attr["T"].type
    op_def = op_def_registry.get(node.op)
    for attr in op_def.attr if op_def is not None else ():
        if attr.name == "T" and attr.HasField("default_value"):
            return attr.default_value.type
    return None


def _pool_beyond(body: _Body, start: node_def_pb2.NodeDef) -> node_def_pb2.NodeDef | None:
    """A pool reachable from `start` through steps, across fan-outs (a max first)."""
    frontier, seen = [start.name], set()
    average = None
    while frontier:
        name = frontier.pop()
        for consumer, position in body.data_consumers(name):
            if consumer.name in seen or position != 0:
                continue
            seen.add(consumer.name)
            step = step_of(consumer, body)
            if step is None or step.kind is StepKind.OTHER:
                continue
            if step.kind in algebra.MAX_STEPS:
                return consumer
            if step.kind is StepKind.AVERAGE_POOL:
                average = average or consumer
                continue
            frontier.append(consumer.name)
    return average


# ---------------------------------------------------------------------------
# Rewriting.


def _rewrite(body: _Body, candidate: _Candidate) -> None:
    """``f -> c1 .. L`` becomes ``c1 .. L -> f``, and the two nodes swap names.

    The activation takes the name ``L`` (what consumers, fetches and function
    outputs read); the pool takes ``f``'s name, which nothing else read. Each
    node keeps its own op, attrs and device.
    """
    f, chain = candidate.activation, candidate.chain
    landing = chain[-1]
    f_name, landing_name = f.name, landing.name
    old_pool_output = body.first_output(landing)
    consumers = list(body.data_consumers(landing_name))
    body.reconnect(chain[0], 0, f.input[0])

    body.renamed.setdefault(id(landing), landing_name)
    body.renamed.setdefault(id(f), f_name)
    landing.name, f.name = f_name, landing_name
    body.nodes[f_name], body.nodes[landing_name] = landing, f
    body.reconnect(f, 0, body.first_output(landing))
    if "_output_shapes" in landing.attr:
        shapes = f.attr["_output_shapes"].list.shape
        del shapes[:]
        shapes.add().CopyFrom(landing.attr["_output_shapes"].list.shape[0])

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
    ref = body.parse(text)
    if ref.control or ref.node != landing:
        return text
    if body.function:
        if text == old_pool_output:
            return new_activation_output
        return f"{pool_name}:{ref.output}"  # another output of the pool (argmax)
    if ref.output == 0:
        return text
    return f"{pool_name}:{ref.output}"


def _process(body: _Body, policy: Policy | None = None) -> list[Site]:
    """Moves activations until none can move; one site per activation, in input order.

    A move can make another possible: in ``f1 -> f2 -> pool`` f1 feeds a pool once
    f2 has moved after it, and in ``f1 -> pool -> f2 -> pool2`` f1 moves on after
    pool2 once f2 has. So after each round the activations that now reach a
    landing pool through steps (nothing else changed for the others) are decided
    again, until a round moves nothing; the result is a fixed point of the pass (a
    second pass moves nothing). An activation that moved more than once is one
    site, from its input to its last landing.
    """
    sites: dict[int, Site] = {}
    pending = list(body.activations)
    for _ in range(len(body.nodes) * len(body.activations) + 1):
        candidates = [c for node in pending
                      if (c := _decide(body, node, activation_of(node), policy)) is not None]
        claimed: set[str] = set()
        landings, retry = [], []
        for candidate in candidates:
            node, site = candidate.activation, candidate.site
            if site.moved:
                names = {node.name, *(n.name for n in candidate.chain)}
                if names & claimed:  # overlapping chains: the first one moves this round
                    retry.append(node)
                    continue
                claimed |= names
                _rewrite(body, candidate)
                landings.append(candidate.chain[-1])
            earlier = sites.get(id(node))
            if earlier is None or not earlier.moved:
                sites[id(node)] = site
            elif site.moved:
                sites[id(node)] = _moved_on(earlier, site)
        if not landings:
            return [sites[key] for key in sorted(sites, key=body.order.__getitem__)]
        again = {id(node): node for node in retry}
        for landing in landings:
            upstream = _activation_before(body, landing)
            if upstream is not None:
                again[id(upstream)] = upstream
        pending = list(again.values())
    raise ReorderError(f"internal error: moving activations in {body.scope} did not settle")


def _moved_on(earlier: Site, later: Site) -> Site:
    """One site for an activation that moved after `earlier.pool`, then after `later.pool`."""
    return dataclasses.replace(
        earlier, between=(*earlier.between, earlier.pool, *later.between), pool=later.pool,
        elements_after=later.elements_after if earlier.elements_after is not None else None)


def _activation_before(body: _Body, node: node_def_pb2.NodeDef) -> node_def_pb2.NodeDef | None:
    """The activation that reaches `node` through steps (first outputs), if any."""
    while node.input:
        ref = body.parse(node.input[0])
        producer = body.nodes.get(ref.node)
        if ref.control or producer is None or not body.is_first_output(ref):
            return None
        if producer.op in _ACTIVATION_OPS:
            return producer
        if step_of(producer, body) is None:
            return None
        node = producer
    return None


def _kept_names(preserve: Iterable[str]) -> set[str]:
    return {name.lstrip("^").split(":")[0] for name in preserve}


def reorder_graph_def(graph_def: graph_pb2.GraphDef, *, preserve: Sequence[str] = (),
                      target: str | Policy | None = "any") -> tuple[graph_pb2.GraphDef, Report]:
    """Moves activations after max pools in a GraphDef and every function in its library.

    The input is not changed. Nodes named in `preserve` (fetches: node or tensor
    names) keep their values; so do function outputs. Shapes in
    ``_output_shapes`` attrs (``as_graph_def(add_shapes=True)``) give the
    element counts; without them a move is made only where no input size could
    make it add work. With a `target` other than ``"any"`` (see
    `tf_reorder.policy.load_policy`), a move is made only where the runtime
    policy measured it faster.

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
            sites.extend(_process_function(function_def, policy))
    finally:
        if collecting:
            gc.enable()
    report = Report("graph", tuple(sites))
    logging.info("reordered a GraphDef: %d of %d sites moved", len(report.moved),
                 len(report.sites))
    return new, report


def _process_function(function_def: function_pb2.FunctionDef,
                      policy: Policy | None = None) -> list[Site]:
    returns = dict(function_def.ret)
    body = _Body(function_def.node_def, scope=function_def.signature.name, function=True,
                 kept=set(), returns=returns)
    sites = _process(body, policy)
    for key, value in returns.items():
        function_def.ret[key] = value
    return sites


# ---------------------------------------------------------------------------
# Concrete functions.


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
