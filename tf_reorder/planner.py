"""One planner for both front ends: which activations move where, to a fixed point.

A front end describes one body (a Keras model's layer graph; a GraphDef's or a
FunctionDef's nodes) through a `View`: its nodes and values, each node an activation
(it has a `function`), a step (a `step`: data movement, padding, a max or min, an
average or an argmax) or opaque, and what only the front end knows: which values leave
the body, element counts, dtypes, vetoes. `plan` walks from every activation along single-consumer
steps, asks `algebra`, applies the vetoes and the runtime policy, has the view make
the moves, and repeats until a round moves nothing. It returns the moves in the order
they were made and one `Site` for every candidate, an activation that reaches a max:
moved, or kept and why, near misses included (something the pass cannot cross stands
between the activation and a max a few operations on).

A round decides each activation after the activations on its way to a pool. One that
moves is crossed by the walks of those before it, like data movement, and they land no
further than it, so the two keep their order: ``f1 -> f2 -> pool`` becomes
``pool -> f1 -> f2`` in one round. The next round decides again the activations that now
reach a landing pool; the last one moves nothing, which makes the result a fixed point.

The view is `tf_reorder.view.View`: `DataView` holds one as objects (the Keras front
end's); the GraphDef front end answers from the graph itself, which it rewrites as the
moves come.

Example (see `tf_reorder.view` for building a view):

    result = plan(view, policy)   # result.moves, in order; result.sites, in input order
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from tf_reorder import algebra
from tf_reorder.algebra import Step, StepKind, Verdict
from tf_reorder.errors import ReorderError
from tf_reorder.policy import Policy
from tf_reorder.report import Site
from tf_reorder.view import Facts, View

# A max that an activation's steps stop short of is a near miss when at most this many
# operations stand in the way, elementwise ones or steps, the first one included.
NEAR_MISS_DEPTH = 3
UNKNOWN_SIZE_NOTE = ("input size unknown: the move removes work for every input larger "
                     "than one pooling window")
# Where a walk ends at the latest: an extremum (a max or min) f may land after, or a
# pool or index it may not cross (an activation that reaches one is a candidate).
_POOLS = (*algebra.EXTREMA, StepKind.AVERAGE_POOL, StepKind.ARG_EXTREMUM)
_FINAL = (StepKind.AVERAGE_POOL, StepKind.ARG_EXTREMUM)
_CROSSED_AS_DATA = Step(StepKind.DATA_MOVEMENT, "")  # an activation that moves too


# ---------------------------------------------------------------------------
# Planning.


@dataclasses.dataclass
class Move:
    """`activation` moved to after `landing`, across `crossed` (as they were then)."""

    activation: Any
    landing: Any
    crossed: list[Any]


@dataclasses.dataclass
class Plan:
    """What `plan` did: the moves in order, and every candidate's site in input order."""

    moves: list[Move]
    sites: list[Site]
    site_of: dict[int, Site]  # id(activation node) -> its site


@dataclasses.dataclass(slots=True)
class _Walk:
    nodes: list[Any]  # steps after the activation, and activations that move too
    steps: list[Step]  # theirs (an activation that moves: data movement)
    stop: str  # why the single-consumer chain ended ("" at an ordinary operation)
    end: Any  # the value it ended at
    blocker: Any | None  # the operation it could not cross, if that is why it ended
    limit: int | None  # index in `nodes` past which the activation may not land
    crosses_activations: bool = False  # some of `nodes` are activations that move
    needs: Any | None = None  # an activation ahead to decide first
    beyond: Any | None = None  # a pool past a fan-out where the chain stopped


def plan(view: View, policy: Policy | None = None, *, inference: bool = False) -> Plan:
    """Moves every activation of `view` as far as the rules allow, to a fixed point.

    With `inference`, the moves need to hold at inference only: an activation may also
    cross the steps that are the identity there (a dropout), and its site says so.
    """
    activations = view.activations()
    sites: dict[int, Site] = {}
    moves: list[Move] = []
    pending = activations
    for round_number in range(2 * len(activations) + 4):
        decided = _Round(view, pending, policy, inference).run()
        landed = []
        for node, site, crossed in decided:
            # A later round decides again the activations before a landing: it adds a
            # move, or nothing (the first round's reasons are about the input).
            earlier = sites.get(id(node))
            if earlier is None and (not round_number or site.moved):
                sites[id(node)] = site
            elif earlier is not None and site.moved:
                sites[id(node)] = _moved_on(earlier, site) if earlier.moved else site
            if crossed:  # in decision order: each path is plain steps by its turn
                function = view.function(node)
                flips = [n for n in crossed if algebra.flips(function, view.step(n))]
                view.move(node, crossed)
                for reduction in flips:  # max(-x) == -min(x)
                    view.flip(reduction)
                moves.append(Move(node, crossed[-1], crossed))
                landed.append(node)
        if not landed:
            ordered = [sites[id(n)] for n in activations if id(n) in sites]
            return Plan(moves, ordered, sites)
        pending = list({id(a): a for node in landed
                        for a in _activations_before(view, view.source(node))}.values())
    raise ReorderError(f"internal error: moving activations in {view.scope} did not settle")


def _moved_on(earlier: Site, later: Site) -> Site:
    """One site for an activation that moved after `earlier.pool`, then after `later.pool`."""
    return dataclasses.replace(
        earlier, between=(*earlier.between, earlier.pool, *later.between), pool=later.pool,
        elements_after=later.elements_after if earlier.elements_after is not None else None)


class _Round:
    """Decides `pending` once, each activation after those on its way to a pool.

    An activation met on a walk is decided first (so its move, if any, is known: the
    walk crosses it, landing no further); the decisions come out in that order, which
    is also the order to move them in.
    """

    def __init__(self, view: View, pending: Sequence[Any], policy: Policy | None,
                 inference: bool) -> None:
        self.view, self.pending, self.policy = view, pending, policy
        self.inference = inference
        self.waiting = {id(node) for node in pending}  # not decided yet
        self.moving: dict[int, Any] = {}  # id(activation) -> its landing
        self.decided: list[tuple[Any, Site, list[Any]]] = []

    def run(self) -> list[tuple[Any, Site, list[Any]]]:
        view = self.view
        for node in self.pending:
            stack = [node]
            while stack:
                top = stack[-1]
                if id(top) not in self.waiting:
                    stack.pop()
                    continue
                walk = _walk(view, top, self.moving, self.waiting, stack)
                if walk.needs is None and walk.stop and not any(
                        s.kind in _POOLS for s in walk.steps):
                    walk.beyond, walk.needs = _pool_beyond(view, walk.end, self.moving,
                                                           self.waiting, stack)
                if walk.needs is not None:
                    stack.append(walk.needs)
                    continue
                self.waiting.discard(id(top))
                stack.pop()
                decision = _decide(view, top, walk, self.policy, self.inference)
                if decision is not None:
                    site, crossed = decision
                    if crossed:
                        self.moving[id(top)] = crossed[-1]
                    self.decided.append((top, site, crossed))
        return self.decided


def _decide(view: View, node: Any, walk: _Walk, policy: Policy | None,
            inference: bool) -> tuple[Site, list[Any]] | None:
    """The site of one activation and the steps it moves past, to its landing (empty: it
    stays); None if it is no candidate."""
    step_of, steps = view.step, walk.steps
    first_pool = next((n for n, s in zip(walk.nodes, steps) if s.kind in _POOLS), None)
    near: tuple[Any, list[Any]] | None = None
    if first_pool is None:
        if walk.stop:
            first_pool = walk.beyond
        elif walk.blocker is not None:
            near = _near_miss(view, walk.blocker)
            first_pool = near[0] if near else None
        if first_pool is None:
            return None  # the activation reaches no pool: not a candidate
    facts = view.facts(node)
    function = view.function(node) if not facts.varies_along else \
        _refined(view, node, facts, walk, first_pool)
    reachable = steps if walk.limit is None else steps[:walk.limit + 1]
    if facts.varies_along:
        reachable = reachable[:_channel_kept(view, walk.nodes, reachable)]
    rank_breaker = None
    if facts.needs_rank:
        kept = _rank_kept(view, walk.nodes, reachable)
        if kept < len(reachable):
            rank_breaker = walk.nodes[kept]
        reachable = reachable[:kept]
    landing, verdict = algebra.landing_index(function, reachable, inference=inference)
    pool_label = view.label(first_pool)
    f_verdict = algebra.commutes_with_extremum(
        function, dataclasses.replace(step_of(first_pool), name=pool_label),
        inference=inference)
    if not f_verdict:
        verdict, landing = f_verdict, 0
    elif landing == 0 and verdict.reason == algebra.NO_MAX:
        if rank_breaker is not None:
            verdict = Verdict(False, f"{function.name} works on tensors of the rank it reads "
                              f"only, and {view.kind(rank_breaker)} "
                              f"'{view.label(rank_breaker)}' may change the rank")
        elif walk.stop:
            verdict = Verdict(False, walk.stop)
        elif near is not None:
            verdict = _blocked(view, function, walk.blocker, pool_label, step_of(first_pool),
                               inference)

    crossed = walk.nodes[:landing] if landing else walk.nodes
    landing_node = crossed[-1] if landing else first_pool
    before = view.elements(node)
    after = view.elements(landing_node) if landing and before is not None else None
    notes = facts.notes
    if verdict and facts.veto:
        verdict = Verdict(False, facts.veto)
    if verdict:
        verdict = _same_dtype(view, view.dtype(node), crossed)
    if verdict and (before is None or after is None):
        verdict = algebra.worth_moving_any_size([_sized(view, n) for n in crossed])
        if verdict:
            notes = (*notes, UNKNOWN_SIZE_NOTE)
    elif verdict:
        verdict = algebra.worth_moving(before, after)
    if verdict and facts.late_veto:
        verdict = Verdict(False, facts.late_veto)
    if verdict and landing:
        verdict = _runtime_swap(view, node, landing_node, policy)
    allowed = verdict.ok  # by the rules; the site then says where it would land
    if verdict and policy is not None:
        verdict = policy.decide(function.family)

    # Steps between, not the activations that move on ahead (they are not in the way).
    plain = not walk.crosses_activations
    if allowed:
        between = crossed[:-1] if plain else [
            n for n, s in zip(crossed, steps) if s is not _CROSSED_AS_DATA
            and n is not landing_node]
    else:
        between = walk.nodes if plain else [
            n for n, s in zip(walk.nodes, steps) if s is not _CROSSED_AS_DATA]
        if any(n is first_pool for n in between):
            between = between[:next(i for i, n in enumerate(between) if n is first_pool)]
        elif near is not None:
            between += near[1]
    if verdict and inference:
        identities = [view.label(n) for n, s in zip(crossed, steps) if s.inference_only]
        if identities:
            notes = (*notes, "inference only: " + ", ".join(f"'{n}'" for n in identities) +
                     (" is" if len(identities) == 1 else " are") +
                     " the identity at inference, not in training")
    if verdict:
        flips = [n for n in crossed if algebra.flips(function, step_of(n) or _CROSSED_AS_DATA)]
        if flips:
            notes = (*notes, "flipped: " + ", ".join(
                f"'{view.label(n)}' becomes a "
                f"{'min' if step_of(n).kind is StepKind.MAX_POOL else 'max'}" for n in flips)
                + f" ({function.name} is non-increasing)")
    if verdict and function.inference_only:
        notes = (*notes, f"inference only: '{view.label(node)}' is this affine map at "
                 "inference; in training it normalizes by batch statistics")
    site = Site(
        scope=view.scope, activation=view.label(node), function=function.name,
        fused=facts.fused, producer=view.producer_label(node),
        between=tuple(view.label(n) for n in between), pool=view.label(landing_node),
        moved=bool(verdict), reason=verdict.reason, elements_before=before,
        elements_after=after if verdict else before, exact=function.exact,
        notes=notes, policy=policy.label if policy is not None else "any")
    # By its turn to move, the activations that move ahead have left the path.
    if not verdict:
        return site, []
    return site, crossed if plain else [n for n, s in zip(crossed, steps)
                                        if s is not _CROSSED_AS_DATA]


def _blocked(view: View, function: algebra.Function, blocker: Any, pool_label: str,
             pool_step: Step, inference: bool) -> Verdict:
    """Why `function` stops short of a near max at `blocker`."""
    where = (f"{view.kind(blocker)} '{view.label(blocker)}' between {function.name} and "
             f"'{pool_label}'")
    stays = view.function(blocker)
    if stays is None:
        opaque = view.opaque_reason(blocker)
        return Verdict(False, f"{where} is not data movement, padding or a max"
                       + (f" ({opaque})" if opaque else ""))
    why = algebra.commutes_with_extremum(stays, dataclasses.replace(pool_step, name=pool_label),
                                         inference=inference)
    return Verdict(False, f"{where} stays before it" + (f": {why.reason}" if not why else ""))


def _walk(view: View, node: Any, moving: dict[int, Any], waiting: set[int],
          deciding: Sequence[Any]) -> _Walk:
    """The single-consumer chain of steps after `node`, and why it ended.

    An activation on the chain that moves is crossed; one in `waiting` (and not being
    decided already, in `deciding`) ends the walk early, as `needs`: decide it first.
    """
    nodes: list[Any] = []
    steps: list[Step] = []
    limit_node = None
    # Bound once: this loop runs for every node near every activation.
    exits, uses_of, step_of, output_of = view.exits, view.uses, view.step, view.output
    value = output_of(node)
    blocker = None
    while True:
        stop = exits(value)
        if stop:
            break
        uses = uses_of(value)
        if len(uses) != 1:
            holder = view.producer(value)
            names = ", ".join(sorted({f"'{view.label(c)}'" for c, _ in uses}))
            stop = (f"the output of '{view.label(holder) if holder is not None else '?'}' "
                    f"has {len(uses)} consumers ({names})") if uses else ""
            break
        consumer, position = uses[0]
        step = step_of(consumer)
        if step is None and position == 0 and view.function(consumer) is not None:
            if id(consumer) in waiting and not any(c is consumer for c in deciding):
                return _Walk(nodes, steps, "", value, None, None, needs=consumer)
            if id(consumer) not in moving:
                blocker = consumer
                break
            limit_node = limit_node or moving[id(consumer)]
            step = _CROSSED_AS_DATA
        elif step is None or position != 0 or step.kind is StepKind.OTHER:
            blocker = consumer
            break
        else:
            stop = view.cross_veto(consumer)
            if stop:
                break
        nodes.append(consumer)
        steps.append(step)
        if step.kind in _FINAL:
            break
        value = output_of(consumer)
    if limit_node is None:
        return _Walk(nodes, steps, stop, value, blocker, None)
    limit = next((i for i, n in enumerate(nodes) if n is limit_node), None)
    return _Walk(nodes, steps, stop, value, blocker, limit, crosses_activations=True)


def _pool_beyond(view: View, start: Any, moving: dict[int, Any], waiting: set[int],
                 deciding: Sequence[Any]) -> tuple[Any | None, Any | None]:
    """A pool reachable from `start` through steps (and activations that move), across
    fan-outs, a max first; or, as the second item, an activation to decide first."""
    frontier, seen, average = [start], set(), None
    while frontier:
        for consumer, position in view.uses(frontier.pop()):
            if id(consumer) in seen or position != 0:
                continue
            seen.add(id(consumer))
            step = view.step(consumer)
            if step is None and view.function(consumer) is not None:
                if id(consumer) in waiting and not any(c is consumer for c in deciding):
                    return None, consumer
                if id(consumer) in moving:
                    step = _CROSSED_AS_DATA
            if step is None or step.kind is StepKind.OTHER:
                continue
            if step.kind in algebra.EXTREMA:
                return consumer, None
            if step.kind in _FINAL:
                average = average or consumer
                continue
            frontier.append(view.output(consumer))
    return average, None


def _near_miss(view: View, blocker: Any) -> tuple[Any, list[Any]] | None:
    """A max a few operations on, with only elementwise ones and steps on the way.

    `blocker` must be an elementwise operation (or an activation that stays); after it
    the single-consumer chain may hold steps and more of those, `NEAR_MISS_DEPTH`
    operations in all before the max. Returns the max and those operations.
    """
    path: list[Any] = []
    node = blocker
    for _ in range(NEAR_MISS_DEPTH):
        function = view.function(node)
        if function is None and not view.facts(node).elementwise and not (
                path and view.step(node) is not None):
            return None
        path.append(node)
        uses = view.uses(view.output(node))
        if len(uses) != 1 or view.exits(view.output(node)):
            return None
        node, position = uses[0]
        step = view.step(node)
        if step is not None and step.kind in algebra.EXTREMA and position == 0:
            return node, path
        if step is not None and step.kind in (*_FINAL, StepKind.OTHER):
            return None
    return None


def _refined(view: View, node: Any, facts: Facts, walk: _Walk,
             pool: Any) -> algebra.Function:
    """The activation's function, uniform over a window or not (a PReLU's alphas)."""
    function = view.function(node)
    index = next((i for i, n in enumerate(walk.nodes) if n is pool), len(walk.nodes))
    axes_stay = all(view.facts(n).keeps_axes or view.function(n) is not None
                    for n in walk.nodes[:index])
    channel = view.facts(pool).channel_axis
    uniform = axes_stay and channel is not None and facts.varies_along <= {channel}
    return dataclasses.replace(function, uniform=uniform)


def _channel_kept(view: View, nodes: Sequence[Any], steps: Sequence[Step]) -> int:
    """How many of the first steps a per-channel function may cross: up to a pool with
    another channel axis than the first pool's, or a node that may move axes after it
    (`_refined` checks the first pool and what comes before it)."""
    channel = None
    for i, (node, step) in enumerate(zip(nodes, steps)):
        if view.function(node) is not None or view.facts(node).keeps_axes:
            continue
        if step.kind not in _POOLS:
            if channel is None:
                continue
            return i
        axis = view.facts(node).channel_axis
        if channel is not None and axis != channel:
            return i
        channel = axis
    return len(steps)


def _rank_kept(view: View, nodes: Sequence[Any], steps: Sequence[Step]) -> int:
    """How many of the first steps keep the rank of the tensor (the rest may not)."""
    for i, (node, step) in enumerate(zip(nodes, steps)):
        if view.function(node) is not None or view.facts(node).keeps_axes:
            continue
        if step.kind in algebra.EXTREMA and not step.reduction:
            continue
        return i
    return len(steps)


def _same_dtype(view: View, dtype: Any, crossed: Iterable[Any]) -> Verdict:
    for other in crossed:
        other_dtype = view.dtype(other)
        if other_dtype != dtype:
            return Verdict(False, f"'{view.label(other)}' computes in {other_dtype}, the "
                           f"activation in {dtype}: the activation would run in another "
                           "precision")
    return algebra.YES


def _sized(view: View, node: Any) -> Step:
    """A crossed node as the size rule for unknown shapes sees it."""
    step = view.step(node)
    if step is None:  # an activation that moves too
        return Step(StepKind.DATA_MOVEMENT, view.label(node))
    kind = StepKind.ZERO_PADDING if view.facts(node).grows else step.kind
    return Step(kind, view.label(node), shrinks=kind in algebra.EXTREMA and view.shrinks(node))


def _runtime_swap(view: View, node: Any, pool: Any, policy: Policy | None) -> Verdict:
    """Refuses a move that would hand a runtime a swap of its own it gets wrong.

    The move leaves `pool` reading what `node` read. Where the runtime swaps that
    producer with the pool itself (Grappler's arithmetic optimizer, for the ops it
    knows), the move is made only if this pass can move the producer too.
    """
    producer = view.producer(view.source(node))
    if producer is None:
        return algebra.YES
    facts = view.facts(producer)
    if not facts.runtime_swap:
        return algebra.YES
    if facts.runtime_swap == "reduction" and not view.step(pool).reduction:
        return algebra.YES
    if sum(len(view.uses(v)) for v in view.outputs(producer)) != 1:
        return algebra.YES  # the runtime swaps only a producer the pool alone reads
    function = view.function(producer)
    pool_label = view.label(pool)
    if function is not None and not facts.veto and not view.exits(view.output(producer)) \
            and algebra.commutes_with_extremum(
                function, dataclasses.replace(view.step(pool), name=pool_label)) \
            and (policy is None or policy.decide(function.family)):
        return algebra.YES
    return Verdict(False, f"'{pool_label}' would then read {view.kind(producer)} "
                   f"'{view.label(producer)}', {facts.runtime_swap_reason}")


def _activations_before(view: View, value: Any) -> list[Any]:
    """The activation that reaches `value` through steps (first outputs), if any."""
    while True:
        producer = view.producer(value)
        if producer is None or not view.is_first_output(value):
            return []
        if view.function(producer) is not None:
            return [producer]
        if view.step(producer) is None:
            return []
        value = view.source(producer)
