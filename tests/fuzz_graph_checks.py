"""Differential checks of the graph pass on one graph from `fuzz_graphs`.

`check_graph(case)` rewrites the case's ConcreteFunction with `reorder_graph_def`
and `reorder_function` and raises `FuzzFailure` (an AssertionError whose message
holds the case's description and the report) unless:

- outputs equal the original's on two input sets (the inputs, and their
  negation so that a tf.cond takes its other branch): bitwise where every
  activation in the graph is piecewise linear (`case.exact`), else within rtol
  and atol 1e-6 for float32 (1e-3 float16, 1e-2 bfloat16, 1e-12 float64),
  wherever the reference is finite (`comparable`). The reference is the
  original GraphDef in a tf.compat.v1 Session with Grappler off, also inside
  function calls (`run_graph_def`). `reorder_graph_def`'s result runs the same
  way (fetches: the function's output tensors, also passed as `preserve`);
  `reorder_function`'s result is called as TF calls functions (Grappler on).
  Where TF's runtime gets a graph wrong by itself (Grappler's arithmetic
  optimizer has bugs: tests/regressions/test_graph_grappler_arithmetic.py; other
  optimizers fuse kernels that round differently), the rewritten function may
  disagree only where the original called the same way gives the same values
  (or fails alike), or disagrees too and then the function is right when called
  with that optimizer off; or where the function called with Grappler off is
  exact, and then within the dtype's tolerance (Grappler rounds the rewritten
  graph: tests/regressions/test_graph_grappler_rounding.py);
- the input GraphDef and the input function's graph are unchanged (bytes);
- the moves and the report agree with a count made here from the graphs alone.
  The pass runs once more on a copy whose nodes carry their names in an extra
  attr (`tag_origins`; it must decide the same), so nodes can be traced through
  the pass's renames: every node keeps its op, but for the Max and Min reductions
  a Neg moved past (each one crossed an odd number of times by a non-increasing
  activation is flipped, Max <-> Min, and no other), and an activation moved where
  the first non-activation output up its input chain is another op's than
  before (`independent_moves`). What each one crossed is read off the new graph:
  data movement, paddings and maxes only, ending at a max or a min (for a Neg:
  data movement and reductions only, ending at a reduction); never an ArgMax,
  ArgMin or average. The Negs the fuzzer says the rules must move
  (`case.expected_moves`) moved. The report must list exactly the moves, and its
  `elements_saved` must equal the sum of their savings computed from the static
  shapes of the original graph's tensors (the FuncGraphs behind the library
  functions; `saving_per_sample`). Control edges still join the same
  computations (`_check_control_edges`). A move whose sizes are not static adds
  no work on the inputs at hand (top-level graph only);
- idempotence: a second pass moves nothing and returns the same bytes (chains
  such as ``f1 -> f2 -> pool`` and ``f1 -> pool -> f2 -> pool2`` move whole in
  one pass), and `reorder_function` on its own result moves nothing and keeps
  the outputs;
- with extra top-level tensors also fetched and preserved (activations, ops
  between, pools: `case.extra_fetches`), those keep their values too;
- the same holds for the GraphDef with its Identity nodes removed
  (`strip_identities`, as an optimizer leaves a graph), where function outputs
  and other consumers read activations and pools directly.

Example:

    check_graph(fuzz_graphs.random_graph(17))  # raises FuzzFailure on a failure
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import config_pb2

import tf_reorder
from fuzz_graphs import DECREASING_OP_TYPES, MOVABLE_OP_TYPES, GraphCase

TOLERANCE = {"bfloat16": 1e-2, "float16": 1e-3, "float32": 1e-6, "float64": 1e-12}
# What an activation may land after: a max, or a min reduction. (Not an ArgMax or
# ArgMin, an average or a mean: nothing moves past those.)
_LANDING_OPS = frozenset({"MaxPool", "MaxPoolV2", "MaxPool3D", "Max", "Min",
                          "MaxPoolWithArgmax"})
_DATA_MOVEMENT_OPS = frozenset({"Identity", "Reshape", "Transpose", "Squeeze", "ExpandDims",
                                "MirrorPad"})
# What it may cross on the way there, as far as this test's chain check goes.
_STEP_OPS = _LANDING_OPS | _DATA_MOVEMENT_OPS | {"Pad", "PadV2"}
# A non-increasing activation (Neg) crosses data movement and max and min reductions
# only, lands after a reduction, and flips each reduction it crosses (Max <-> Min).
_REDUCTION_OPS = frozenset({"Max", "Min"})
_FLIPPED = {"Max": "Min", "Min": "Max"}
_DECREASING_STEP_OPS = _DATA_MOVEMENT_OPS | _REDUCTION_OPS
_SESSION_CONFIG = config_pb2.ConfigProto()
_SESSION_CONFIG.graph_options.rewrite_options.disable_meta_optimizer = True
_CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})


class FuzzFailure(AssertionError):
    """A check failed on a random graph; the message names the seed and the graph."""


def check_graph(case: GraphCase) -> None:
    """Runs every check on `case`; raises `FuzzFailure` on the first that fails.

    Example:

        check_graph(fuzz_graphs.random_graph(0))
    """
    try:
        _check(case)
    except FuzzFailure:
        raise
    except Exception as error:  # a crash of the pass or of the rewritten graph
        raise FuzzFailure(f"{type(error).__name__}: {error}\n\n{case.description}") from error


def _fail(case: GraphCase, message: str, *reports: Any) -> FuzzFailure:
    text = "\n\n".join([message, case.description, *(str(r) for r in reports)])
    return FuzzFailure(text)


# ---------------------------------------------------------------------------
# Running.


@dataclasses.dataclass
class _Feeds:
    placeholders: list[str]  # arguments, then captures
    sets: list[list[np.ndarray]]  # per input set: a value for every placeholder
    arguments: int


def _feeds(function: Any, inputs: Sequence[np.ndarray]) -> _Feeds:
    """Two input sets for a ConcreteFunction's graph: `inputs` and their negation."""
    names = [t.name for t in function.graph.inputs]
    captures = [np.asarray(c.numpy()) for c in function.captured_inputs]
    sets = [[*inputs, *captures], [*(-x for x in inputs), *captures]]
    return _Feeds(names, sets, len(inputs))


def run_graph_def(graph_def: graph_pb2.GraphDef, fetches: Sequence[str],
                  feeds: _Feeds) -> list[list[np.ndarray]]:
    """Runs `fetches` in a Session with Grappler off, on every input set.

    A (Stateful)PartitionedCall runs Grappler on its function with the config in
    its own ``config_proto`` attr, whatever the Session's config says; a copy of
    the graph gets one with Grappler off too.
    """
    plain = graph_pb2.GraphDef()
    plain.CopyFrom(graph_def)
    config = _SESSION_CONFIG.SerializeToString()
    for node in [*plain.node, *(n for f in plain.library.function for n in f.node_def)]:
        if node.op in _CALL_OPS:
            node.attr["config_proto"].s = config
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(plain, name="")
    with tf.compat.v1.Session(graph=graph, config=_SESSION_CONFIG) as session:
        return [session.run(list(fetches), dict(zip(feeds.placeholders, values, strict=True)))
                for values in feeds.sets]


def run_function(function: Any, feeds: _Feeds, *,
                 errors: bool = False) -> tuple[list[Any], Any]:
    """Calls a ConcreteFunction on every input set: flat numpy outputs, and the structure.

    With `errors`, a set on which TF's runtime raises an OpError gets the error
    instead of its outputs.
    """
    results, structure = [], None
    for values in feeds.sets:
        try:
            out = function(*(tf.constant(v) for v in values[:feeds.arguments]))
        except tf.errors.OpError as error:
            if not errors:
                raise
            results.append(error)
            continue
        structure = out
        results.append([np.asarray(t) for t in tf.nest.flatten(out) if t is not None])
    return results, structure


def _assert_equal(case: GraphCase, before: list[list[np.ndarray]],
                  after: list[list[np.ndarray]], what: str, *reports: Any) -> None:
    for set_index, (xs, ys) in enumerate(zip(before, after, strict=True)):
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            where = f"{what}: output {i} on input set {set_index}"
            if x.dtype != y.dtype or x.shape != y.shape:
                raise _fail(case, f"{where}: {x.dtype}{x.shape} became {y.dtype}{y.shape}",
                            *reports)
            if x.dtype.name in TOLERANCE:
                mask = comparable(x)
                x, y = x[mask], y[mask]
            if case.exact or x.dtype.name not in TOLERANCE:
                if x.tobytes() != y.tobytes():
                    raise _fail(case, f"{where} is not bitwise equal "
                                f"(max abs diff {_max_diff(x, y)})", *reports)
                continue
            tolerance = TOLERANCE[x.dtype.name]
            try:
                np.testing.assert_allclose(y.astype(np.float64), x.astype(np.float64),
                                           rtol=tolerance, atol=tolerance)
            except AssertionError as error:
                raise _fail(case, f"{where} differs beyond {tolerance}:\n{error}",
                            *reports) from None


def comparable(x: np.ndarray) -> np.ndarray:
    """Where a reference output is finite and short of its type's largest magnitude.

    Only there must the two orders agree. TF's MaxPool skips NaN and gives the
    lowest float for a window of NaNs, so once the original overflowed (inf - inf
    in a convolution after an exp) ``pool(f(x))`` and ``f(pool(x))`` differ
    (tests/regressions/test_graph_nan_windows.py).
    """
    wide = x.astype(np.float64)
    return np.isfinite(wide) & (np.abs(wide) < tf.as_dtype(x.dtype).max)


def _max_diff(x: np.ndarray, y: np.ndarray) -> float:
    if x.size == 0 or not (x.dtype.name in TOLERANCE or np.issubdtype(x.dtype, np.number)):
        return float("nan")
    with np.errstate(invalid="ignore"):
        return float(np.nanmax(np.abs(x.astype(np.float64) - y.astype(np.float64))))


def _bytes(message: Any) -> bytes:
    return message.SerializeToString(deterministic=True)


def _kept_names(fetches: Iterable[str]) -> set[str]:
    return {name.split(":")[0] for name in fetches}


def strip_identities(graph_def: graph_pb2.GraphDef, keep: set[str]) -> graph_pb2.GraphDef:
    """A copy without Identity nodes: their readers (and function outputs) read their input.

    Top-level nodes named in `keep` (the fetches) stay; so does an Identity with
    control inputs, or that is a control input or a function's control output.

    Example:

        stripped = strip_identities(graph_def, keep={"Identity"})
    """
    out = graph_pb2.GraphDef()
    out.CopyFrom(graph_def)
    _strip_body(out.node, keep, function=False)
    for function in out.library.function:
        _strip_body(function.node_def, set(function.control_ret.values()), function=True,
                    returns=function.ret)
    return out


def _strip_body(nodes: Any, keep: set[str], *, function: bool, returns: Any = None) -> None:
    stays = keep | {text[1:] for n in nodes for text in n.input if text.startswith("^")}
    removable = {n.name: n.input[0] for n in nodes
                 if n.op == "Identity" and n.name not in stays
                 and len(n.input) == 1 and not n.input[0].startswith("^")}
    if not removable:
        return

    def resolve(text: str) -> str:
        while True:
            name = text.split(":")[0]
            forms = (f"{name}:output:0",) if function else (name, f"{name}:0")
            if name not in removable or text not in forms:
                return text
            text = removable[name]

    kept = []
    for node in nodes:
        if node.name in removable:
            continue
        copy = type(node)()
        copy.CopyFrom(node)
        for i, text in enumerate(copy.input):
            if not text.startswith("^"):
                copy.input[i] = resolve(text)
        kept.append(copy)
    del nodes[:]
    nodes.extend(kept)
    if returns is not None:
        for key in list(returns):
            returns[key] = resolve(returns[key])


# ---------------------------------------------------------------------------
# The independent count of moves and savings.


def _bodies(graph_def: graph_pb2.GraphDef) -> dict[str, list[Any]]:
    """Scope name (as the report names it) -> nodes (the messages), per graph and function."""
    out = {"graph": list(graph_def.node)}
    for function in graph_def.library.function:
        out[function.signature.name] = list(function.node_def)
    return out


Shape = tuple[int | None, ...] | None  # None: unknown rank


def _tensor_shapes(concrete: Any) -> dict[tuple[str, str], Shape]:
    """(scope, op name) -> static shape of the op's first output, from the graphs."""
    shapes: dict[tuple[str, str], Shape] = {}
    seen: set[str] = set()

    def add(scope: str, graph: Any) -> None:
        for op in graph.get_operations():
            if op.outputs:
                shape = op.outputs[0].shape
                shapes[(scope, op.name)] = None if shape.rank is None else \
                    tuple(shape.as_list())
        for name, function in getattr(graph, "_functions", {}).items():
            if name not in seen and getattr(function, "graph", None) is not None:
                seen.add(name)
                add(name, function.graph)

    add("graph", concrete.graph)
    return shapes


def saving_per_sample(before: Shape, after: Shape) -> Fraction | None:
    """Activation evaluations per sample that moving from `before` to `after` saves.

    A sample is one slice of `before`'s first dimension (the batch). Where the
    whole of `after` and the batch size are known, its evaluations are its
    elements divided by the batch, whatever happened to the batch axis on the
    way; otherwise its dimensions after the first. None: not known statically.
    """
    if before is None or after is None or not before or None in before[1:]:
        return None
    per_sample = Fraction(int(np.prod(before[1:], dtype=np.int64)))
    if before[0] is not None and None not in after:
        return per_sample - Fraction(int(np.prod(after, dtype=np.int64)), before[0])
    if not after or None in after[1:]:
        return None
    return per_sample - int(np.prod(after[1:], dtype=np.int64))


def _reads(text: str, name: str) -> bool:
    """Whether an input string reads the first output of node `name`."""
    return text in (name, f"{name}:0") or (text.startswith(f"{name}:")
                                           and text.endswith(":0") and text.count(":") == 2)


@dataclasses.dataclass(frozen=True)
class Move:
    scope: str
    activation: str  # its name before the pass
    lands_as: str  # the name before the pass of the op whose output it now reads
    crossed: tuple[str, ...] = ()  # names before the pass of the ops it moved past,
    # from the landing op back (activations that moved with it left out)


_ORIGIN = "_fuzz_origin"  # an attr holding a node's name in the input graph


def tag_origins(graph_def: graph_pb2.GraphDef, *, strip: bool = False) -> graph_pb2.GraphDef:
    """A copy in which every node carries its name (or, with `strip`, no longer does)."""
    copy = graph_pb2.GraphDef()
    copy.CopyFrom(graph_def)
    for nodes in _bodies(copy).values():
        for node in nodes:
            if strip:
                del node.attr[_ORIGIN]
            else:
                node.attr[_ORIGIN].s = node.name.encode()
    return copy


def _anchor(nodes: dict[str, Any], name: str, origin: Any) -> tuple[str, str]:
    """What an activation computes on: the first non-activation output up its input chain.

    (origin name of the producer, output suffix), or (argument name, "").
    """
    node = nodes[name]
    while True:
        producer, _, output = node.input[0].partition(":")
        if producer not in nodes:
            return producer, output
        node = nodes[producer]
        if node.op not in MOVABLE_OP_TYPES:
            return origin(node), output


def _crossed(case: GraphCase, scope: str, new_nodes: dict[str, Any], name: str,
             anchor: str) -> tuple[str, ...]:
    """What the activation `name` (its name in the new graph) now computes on, up to
    its anchor in the input (`anchor`, a name before the pass): the ops it moved past,
    from the landing op back, by their names before the pass (moved activations that
    sit between are left out: they moved too)."""
    crossed: list[str] = []
    node = new_nodes[name]
    for _ in range(len(new_nodes) + 1):
        producer = node.input[0].partition(":")[0]
        if producer not in new_nodes:  # an argument
            return tuple(crossed)
        node = new_nodes[producer]
        origin = node.attr[_ORIGIN].s.decode()
        if origin == anchor:
            return tuple(crossed)
        if node.op not in MOVABLE_OP_TYPES:
            crossed.append(origin)
    raise _fail(case, f"the input chain of '{name}' in '{scope}' has a cycle")


def independent_moves(case: GraphCase, before: graph_pb2.GraphDef,
                      after: graph_pb2.GraphDef) -> list[Move]:
    """The activations that moved, found from the nodes alone.

    `after` is the pass's result on `tag_origins(before)`: each node still carries
    its name in `before`. An activation moved where what it computes on (the first
    non-activation output up its input chain: `_anchor`) is another op's output
    than before; it lands as that op, having crossed what now sits between it and
    that anchor (`_crossed`). Every node keeps its op (a Max or Min reduction may
    flip, Max <-> Min, where a Neg crossed it an odd number of times); names are only
    permuted.
    """
    moves = []
    new_bodies = _bodies(after)
    for scope, nodes in _bodies(before).items():
        if scope not in new_bodies:
            raise _fail(case, f"the rewritten graph lost the function '{scope}'")
        new_nodes = {n.name: n for n in new_bodies[scope]}
        old_nodes = {n.name: n for n in nodes}
        if set(new_nodes) != set(old_nodes):
            raise _fail(case, f"the node names of '{scope}' changed: "
                        f"{sorted(set(new_nodes) ^ set(old_nodes))}")
        by_origin = {n.attr[_ORIGIN].s.decode(): n for n in new_bodies[scope]}
        if set(by_origin) != set(old_nodes):
            raise _fail(case, f"the nodes of '{scope}' are not the input's nodes renamed")
        flipped = set()
        for origin, node in by_origin.items():
            if node.op != old_nodes[origin].op:
                if _FLIPPED.get(old_nodes[origin].op) != node.op:
                    raise _fail(case, f"'{origin}' in '{scope}' was a "
                                f"{old_nodes[origin].op}, now a {node.op}")
                flipped.add(origin)
        crossings: dict[str, int] = {}  # reduction -> times a Neg crossed it
        here = []
        for node in nodes:
            if node.op not in MOVABLE_OP_TYPES:
                continue
            was = _anchor(old_nodes, node.name, lambda n: n.name)
            now = _anchor(new_nodes, by_origin[node.name].name,
                          lambda n: n.attr[_ORIGIN].s.decode())
            if now == was:
                continue
            if now[0] not in old_nodes or old_nodes[now[0]].op not in _LANDING_OPS:
                raise _fail(case, f"'{node.name}' ({node.op}) in '{scope}' read {was}, now "
                            f"{now}, which is not a max or a min")
            crossed = _crossed(case, scope, new_nodes, by_origin[node.name].name, was[0])
            if not crossed or crossed[0] != now[0]:
                raise _fail(case, f"'{node.name}' in '{scope}' lands after '{now[0]}', but "
                            f"what it now reads up to {was} is {list(crossed)}")
            decreasing = node.op in DECREASING_OP_TYPES
            allowed = _DECREASING_STEP_OPS if decreasing else _STEP_OPS
            wrong = [c for c in crossed if c not in old_nodes or old_nodes[c].op not in allowed]
            if wrong or (decreasing and old_nodes[now[0]].op not in _REDUCTION_OPS):
                raise _fail(case, f"'{node.name}' ({node.op}) in '{scope}' moved past "
                            f"{[(c, old_nodes[c].op if c in old_nodes else '?') for c in crossed]}"
                            f", which it may not cross" + (" (a non-increasing f crosses data "
                            "movement and lands after a max or min reduction only)"
                            if decreasing else ""))
            if decreasing:
                for c in crossed:
                    if old_nodes[c].op in _REDUCTION_OPS:
                        crossings[c] = crossings.get(c, 0) + 1
            here.append(Move(scope, node.name, now[0], crossed))
        odd = {c for c, times in crossings.items() if times % 2}
        if flipped != odd:
            raise _fail(case, f"in '{scope}', the reductions flipped (Max <-> Min) are "
                        f"{sorted(flipped)}; those a Neg crossed an odd number of times, "
                        f"{sorted(odd)}")
        moves.extend(here)
        _check_control_edges(case, scope, nodes, new_nodes,
                             {m.lands_as for m in here} | flipped)
    return moves


def _check_control_edges(case: GraphCase, scope: str, nodes: list[Any],
                         new_nodes: dict[str, Any], landings: set[str]) -> None:
    """Control edges still join the same computations.

    Values cannot show a lost ordering, so this is checked on the nodes: a node
    with control inputs keeps its name, op and control inputs; the source of a
    control edge keeps its op, unless it was the landing op of a move (its name
    then holds the moved activation, which runs after it: the edge only waits
    longer).
    """
    old_ops = {n.name: n.op for n in nodes}
    for node in nodes:
        controls = sorted(i for i in node.input if i.startswith("^"))
        if not controls:
            continue
        new = new_nodes[node.name]
        if new.op != node.op or sorted(i for i in new.input if i.startswith("^")) != controls:
            raise _fail(case, f"'{node.name}' ({node.op}) in '{scope}' had control inputs "
                        f"{controls}; now it is a {new.op} with {list(new.input)}")
        for control in controls:
            source = control[1:]
            if new_nodes[source].op != old_ops[source] and source not in landings:
                raise _fail(case, f"the control input '{source}' of '{node.name}' in "
                            f"'{scope}' was a {old_ops[source]}, now a "
                            f"{new_nodes[source].op}")


def _check_report(case: GraphCase, report: Any, moves: list[Move],
                  shapes: dict[tuple[str, str], Shape]) -> None:
    """The report agrees with the moves found in the graphs and their tensor shapes."""
    saved = Fraction(0)
    for move in moves:
        saving = saving_per_sample(shapes[(move.scope, move.activation)],
                                   shapes[(move.scope, move.lands_as)])
        saved += saving or 0
    reported = {(s.scope, s.activation) for s in report.moved}
    found = {(m.scope, m.activation) for m in moves}
    if reported != found:
        raise _fail(case, f"the report moved {sorted(reported)}, the graph shows "
                    f"{sorted(found)}", report)
    kept = [name for name in case.expected_moves if ("graph", name) not in reported]
    if kept:
        reasons = {s.activation: s.reason for s in report.sites if s.scope == "graph"}
        raise _fail(case, "the rules move " + ", ".join(
            f"'{n}' ({reasons.get(n, 'no site in the report')})" for n in kept) +
            ", but the pass kept it", report)
    if report.elements_saved != saved:
        raise _fail(case, f"the report saves {report.elements_saved} elements per sample, "
                    f"the graph's tensors {saved}", report)


def _check_work_at_run_time(case: GraphCase, graph_def: graph_pb2.GraphDef,
                            moves: list[Move], shapes: dict[tuple[str, str], Shape],
                            feeds: _Feeds, report: Any) -> None:
    """A move whose sizes are not static adds no work on the inputs at hand.

    Without static sizes the pass moves only where "no input size could make it
    add work"; the run-time tensors of a move in the top-level graph (those in
    functions cannot be fetched) show whether that held.
    """
    unknown = [m for m in moves if m.scope == "graph" and saving_per_sample(
        shapes[("graph", m.activation)], shapes[("graph", m.lands_as)]) is None]
    if not unknown:
        return
    fetches = [name for m in unknown for name in (f"{m.activation}:0", f"{m.lands_as}:0")]
    for values in run_graph_def(graph_def, fetches, feeds):
        for move, before, after in zip(unknown, values[::2], values[1::2], strict=True):
            if after.size > before.size:
                raise _fail(case, f"moving '{move.activation}' after '{move.lands_as}' adds "
                            f"work: {before.shape} -> {after.shape} at run time", report)


# ---------------------------------------------------------------------------
# Idempotence.


def _check_idempotent(case: GraphCase, first: graph_pb2.GraphDef, fetches: list[str]) -> None:
    """A second pass over the pass's result moves nothing and returns the same bytes."""
    again, report = tf_reorder.reorder_graph_def(first, preserve=fetches)
    if report.moved:
        raise _fail(case, f"a second pass moved {len(report.moved)} sites", report)
    if _bytes(again) != _bytes(first):
        raise _fail(case, "a second pass moved nothing but changed the graph", report)


# ---------------------------------------------------------------------------
# The whole check.


def _check(case: GraphCase) -> None:
    concrete = case.concrete
    feeds = _feeds(concrete, case.inputs)
    graph_def = concrete.graph.as_graph_def(add_shapes=True)
    fetches = [t.name for t in concrete.outputs]
    shapes = _tensor_shapes(concrete)
    more = [*fetches, *case.extra_fetches]
    expected_more = run_graph_def(graph_def, more, feeds)
    expected = [values[:len(fetches)] for values in expected_more]

    _check_graph_def(case, graph_def, fetches, feeds, expected, shapes, "reorder_graph_def")
    if case.extra_fetches:  # also fetched, so preserved
        _check_graph_def(case, graph_def, more, feeds, expected_more, shapes,
                         f"reorder_graph_def fetching {list(case.extra_fetches)}")
    # The same GraphDef without its Identity nodes, as an optimizer leaves a graph:
    # function outputs and other consumers then read activations and pools directly.
    stripped = strip_identities(graph_def, keep=_kept_names(fetches))
    if _bytes(stripped) != _bytes(graph_def):
        _assert_equal(case, expected, run_graph_def(stripped, fetches, feeds),
                      "the graph without Identity nodes, before the pass")
        _check_graph_def(case, stripped, fetches, feeds, expected, shapes,
                         "reorder_graph_def without Identity nodes")

    # reorder_function: called as TF calls functions, and on its own result.
    function_before = _bytes(concrete.graph.as_graph_def())
    new_function, function_report = tf_reorder.reorder_function(concrete)
    if _bytes(concrete.graph.as_graph_def()) != function_before:
        raise _fail(case, "reorder_function changed its input function's graph")
    _, report = tf_reorder.reorder_graph_def(graph_def, preserve=fetches)
    if _site_keys(function_report) != _site_keys(report):
        raise _fail(case, "reorder_function and reorder_graph_def decided differently",
                    function_report, report)
    _check_function(case, new_function, expected, "reorder_function", function_report)
    again, again_report = tf_reorder.reorder_function(new_function)
    if again_report.moved:
        raise _fail(case, f"reorder_function on its own result moved "
                    f"{len(again_report.moved)} sites", again_report)
    _check_function(case, again, expected, "reorder_function twice", again_report)


def _check_graph_def(case: GraphCase, graph_def: graph_pb2.GraphDef, fetches: list[str],
                     feeds: _Feeds, expected: list[list[np.ndarray]],
                     shapes: dict[tuple[str, str], Shape], what: str) -> None:
    """`reorder_graph_def` with `fetches` preserved."""
    before = _bytes(graph_def)
    new, report = tf_reorder.reorder_graph_def(graph_def, preserve=fetches)
    if _bytes(graph_def) != before:
        raise _fail(case, f"{what} changed its input GraphDef", report)
    _assert_equal(case, expected, run_graph_def(new, fetches, feeds), what, report)
    traced, traced_report = tf_reorder.reorder_graph_def(tag_origins(graph_def),
                                                         preserve=fetches)
    if _bytes(tag_origins(traced, strip=True)) != _bytes(new) or \
            traced_report.to_dict() != report.to_dict():
        raise _fail(case, f"{what} decided otherwise once every node carried an extra attr",
                    report, traced_report)
    moves = independent_moves(case, graph_def, traced)
    _check_report(case, report, moves, shapes)
    _check_work_at_run_time(case, graph_def, moves, shapes, feeds, report)
    _check_idempotent(case, new, fetches)


def _check_function(case: GraphCase, function: Any, expected: list[list[np.ndarray]],
                    what: str, report: Any) -> None:
    """A rewritten ConcreteFunction, called as TF calls it, computes the original's values.

    `expected` are the original graph's values in a Session with Grappler off.
    TF's runtime (Grappler on) gets some graphs wrong by itself: its arithmetic
    optimizer's own max-of-monotone swap loses the output index of a Split and
    breaks a pool after a Reshape in a tf.cond branch
    (tests/regressions/test_graph_grappler_arithmetic.py), and where a conv reads
    the wrong output, the call fails; its other optimizers may fuse ops into
    kernels that round differently (a Swish for x * sigmoid(x)). So where the call
    disagrees with `expected` on an input set (or fails):
    - it passes if the original function called the same way gives the same
      values (TF treats both alike);
    - it fails if the original called so gives `expected` (the rewrite exposed
      a TF bug, or is wrong);
    - otherwise (TF gets the original wrong too) the function called with the
      arithmetic optimizer off must give `expected`, or what the original gives
      called that way.
    """
    feeds = _feeds(function, case.inputs)
    got, structure = run_function(function, feeds, errors=True)
    if structure is not None:
        tf.nest.assert_same_structure(case.concrete.structured_outputs, structure)
    wrong = [i for i, (x, y) in enumerate(zip(expected, got, strict=True))
             if not _same(case, x, y)]
    if not wrong:
        return
    original, _ = run_function(case.concrete, feeds, errors=True)
    wrong = [i for i in wrong if not _alike(case, original[i], got[i])]
    exposed = [i for i in wrong if _same(case, expected[i], original[i])]
    for i in exposed:
        if isinstance(got[i], Exception):
            raise _fail(case, f"{what} (called) fails on input set {i}, where TF runs the "
                        f"original right: {str(got[i]).splitlines()[0]}", report)
    rounded = _rounded_by_grappler(case, function, feeds, expected, wrong, got)
    if rounded and not _has_steps(function):
        _assert_equal(dataclasses.replace(case, exact=False), [expected[i] for i in rounded],
                      [got[i] for i in rounded],
                      f"{what} (called, where Grappler rounds the rewritten graph)", report)
    wrong = [i for i in wrong if i not in rounded]
    exposed = [i for i in exposed if i not in rounded]
    _assert_equal(case, [expected[i] for i in exposed], [got[i] for i in exposed],
                  f"{what} (called, where TF runs the original right)", report)
    wrong = [i for i in wrong if i not in exposed]
    if not wrong:
        return
    with without_arithmetic_optimizer():
        got, structure = run_function(function, feeds, errors=True)
        original, _ = run_function(case.concrete, feeds, errors=True)
    for i in wrong:
        if not _alike(case, original[i], got[i]):
            if isinstance(got[i], Exception):
                raise _fail(case, f"{what} (called, Grappler's arithmetic optimizer off) "
                            f"fails on input set {i}: {str(got[i]).splitlines()[0]}", report)
            _assert_equal(case, [expected[i]], [got[i]],
                          f"{what} (called, Grappler's arithmetic optimizer off)", report)


_STEP_FUNCTION_OPS = frozenset({"Floor", "Ceil", "Round", "Rint", "Sign"})


def _has_steps(function: Any) -> bool:
    """Whether the function computes a step function, which turns a rounding
    difference of its input into a whole step."""
    graph_def = function.graph.as_graph_def()
    return any(n.op in _STEP_FUNCTION_OPS for n in [*graph_def.node, *(
        n for f in graph_def.library.function for n in f.node_def)])


def _rounded_by_grappler(case: GraphCase, function: Any, feeds: _Feeds,
                         expected: list[Any], indices: list[int], got: list[Any]) -> set[int]:
    """The input sets on which the rewritten function, called with Grappler off, gives
    `expected` exactly: there a difference with Grappler on is Grappler's rounding of
    the rewritten graph (its arithmetic optimizer reassociates adds, its remapper fuses
    kernels), which must still be within the dtype's tolerance (unless a step function
    makes a rounding a step)."""
    if not indices:
        return set()
    with without_grappler():
        plain, _ = run_function(function, feeds, errors=True)
    return {i for i in indices if not isinstance(got[i], Exception)
            and _same(case, expected[i], plain[i])}


@contextlib.contextmanager
def without_grappler() -> Iterator[None]:
    """Turns every Grappler optimizer off for functions called in the block."""
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})


@contextlib.contextmanager
def without_arithmetic_optimizer() -> Iterator[None]:
    """Turns Grappler's arithmetic optimizer off for functions called in the block.

    Example:

        with without_arithmetic_optimizer():
            values = concrete_function(x)
    """
    before = tf.config.optimizer.get_experimental_options().get("arithmetic_optimization")
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    try:
        yield
    finally:  # "on" where it was not set: the same as TF's default
        tf.config.optimizer.set_experimental_options(
            {"arithmetic_optimization": True if before is None else before})


def _alike(case: GraphCase, xs: Any, ys: Any) -> bool:
    """`_same`, or both calls failed with the same kind of error (TF fails both alike)."""
    if isinstance(xs, Exception) and isinstance(ys, Exception):
        return type(xs) is type(ys)
    return _same(case, xs, ys)


def _same(case: GraphCase, xs: Any, ys: Any) -> bool:
    """Whether two input sets' outputs agree (an error agrees with nothing)."""
    if isinstance(xs, Exception) or isinstance(ys, Exception):
        return False
    try:
        _assert_equal(case, [xs], [ys], "")
    except FuzzFailure:
        return False
    return True


def _site_keys(report: Any) -> list[tuple[Any, ...]]:
    return [(s.function, s.moved, s.reason, s.elements_before, s.elements_after)
            for s in report.sites]
