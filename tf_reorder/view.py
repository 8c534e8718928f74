"""The view a front end gives the planner of one body, and a view held as objects.

`View` is what `planner.plan` asks about a Keras model's layer graph or a GraphDef's
nodes: each node's role (an activation's `algebra.Function`, a step's `algebra.Step`,
or opaque), what it reads and what reads it, which values leave the body, element
counts, dtypes and vetoes (`Facts`), and `move` to make a move. `DataView` holds a body
as `Node` and `Value` objects (the Keras front end's, and tests'); the GraphDef front end
answers the same questions from the graph itself.

Example:

    view = DataView("model")
    x = Value()
    relu = view.add(Node("relu", "ReLU", [x], function=algebra.keras_activation("relu"),
                         elements=800))
    view.add(Node("pool", "MaxPooling2D", [relu.outputs[0]],
                  step=algebra.Step(algebra.StepKind.MAX_POOL, "pool"), elements=200))
    planner.plan(view).sites[0].moved      # True: relu now runs after the pool
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from tf_reorder import algebra
from tf_reorder.algebra import Step, StepKind


class View:
    """What the planner asks about one body; a front end answers (see `DataView`).

    Nodes and values are the front end's own objects, compared by identity. The
    answers are about the body as it is now: `move` changes it.
    """

    scope: str

    def activations(self) -> list[Any]:
        """Every activation node, in the input's order (reports keep it)."""
        raise NotImplementedError

    # -- nodes
    def label(self, node: Any) -> str:
        """The node's name in the input, for reports."""
        raise NotImplementedError

    def kind(self, node: Any) -> str:
        """What the node is (a layer class, an op type), for reasons."""
        raise NotImplementedError

    def function(self, node: Any) -> algebra.Function | None:
        raise NotImplementedError

    def step(self, node: Any) -> Step | None:
        raise NotImplementedError

    def elements(self, node: Any) -> int | None:
        """Elements of the node's first output, per sample (None: unknown)."""
        raise NotImplementedError

    def dtype(self, node: Any) -> Any:
        """Compared along a path: the activation's and every step's it crosses."""
        raise NotImplementedError

    def cross_veto(self, node: Any) -> str:
        """Why nothing may cross this step ("" if it may): control inputs."""
        raise NotImplementedError

    def opaque_reason(self, node: Any) -> str:
        """Why a node of a movable kind is no function here ("" if there is nothing to
        add), for the report of an activation it blocks."""
        return ""

    def shrinks(self, node: Any) -> bool:
        """Whether a max makes every input larger than its window smaller (asked only
        where sizes are unknown)."""
        return self.step(node).shrinks

    def producer_label(self, node: Any) -> str | None:
        """What computes an activation's input, for the report."""
        raise NotImplementedError

    def facts(self, node: Any) -> Facts:
        """The rest the rules need about an activation or a step (see `Facts`)."""
        raise NotImplementedError

    # -- values
    def output(self, node: Any) -> Any:
        """The node's first output."""
        raise NotImplementedError

    def outputs(self, node: Any) -> Sequence[Any]:
        raise NotImplementedError

    def source(self, node: Any) -> Any:
        """What the node reads first (an activation's or a step's data input)."""
        raise NotImplementedError

    def producer(self, value: Any) -> Any | None:
        """The node computing `value` (None: an input of the body)."""
        raise NotImplementedError

    def is_first_output(self, value: Any) -> bool:
        raise NotImplementedError

    def uses(self, value: Any) -> Sequence[tuple[Any, int]]:
        """(consumer, input position) of every node that reads `value`."""
        raise NotImplementedError

    def exits(self, value: Any) -> str:
        """Why nothing may move past `value` ("" if it may): a model output, a fetched
        node, a control edge; the words name the node that computes it."""
        raise NotImplementedError

    # -- change
    def move(self, activation: Any, crossed: Sequence[Any]) -> None:
        """``activation -> c1 .. landing`` becomes ``c1 .. landing -> activation``.

        `crossed` is ``[c1, .., landing]``, the single-consumer chain of steps after
        the activation. Whatever read the landing's output now reads the
        activation's, which holds the same value; the activation then runs on the
        landing's output.
        """
        raise NotImplementedError

    def flip(self, node: Any) -> None:
        """Turns a max reduction into a min, or a min into a max: a non-increasing
        activation moved past it (`algebra.flips`). `step` answers the new kind."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Facts:
    """The rest the rules need about an activation or a step, most of it rare.

    Attributes:
      fused: an activation split off its producer (for the report).
      notes: for the activation's site.
      veto: an activation may not move at all (control inputs, a model boundary).
      late_veto: an activation may not move, checked after the size rule (a shared
        PReLU).
      cross_veto: nothing may cross this step (control inputs).
      elementwise: an opaque operation that maps its input element by element (or
        channel by channel: a batch normalization, a dropout): an activation it stops
        short of a max is a near miss.
      grows: the step may enlarge the tensor (padding): for unknown sizes.
      keeps_axes: the step leaves every axis where it is.
      channel_axis: a pool's channel axis, in its input, counted from the end (-1: the
        last), so that it names the same axis before and after a reduction.
      varies_along: axes along which an activation differs by position (a PReLU's
        unshared alphas, a batch normalization's channel), counted from the end.
      needs_rank: the activation works on tensors of the rank it reads only (a
        FusedBatchNorm, an add of a rank-4 constant): it crosses only what keeps every
        axis, and max pools that are no reductions.
      runtime_swap: ``"max"`` or ``"reduction"``: the runtime itself swaps this op
        with such a max after it; `runtime_swap_reason` says why that matters, after
        "the pool would then read it, ".
    """

    fused: bool = False
    notes: tuple[str, ...] = ()
    veto: str = ""
    late_veto: str = ""
    cross_veto: str = ""
    elementwise: bool = False
    grows: bool = False
    keeps_axes: bool = False
    channel_axis: int | None = None
    varies_along: frozenset[int] = frozenset()
    needs_rank: bool = False
    runtime_swap: str = ""
    runtime_swap_reason: str = ""


NO_FACTS = Facts()


# ---------------------------------------------------------------------------
# A view held as objects.


class Value:
    """One output of a `Node`, or an input of the body: who reads it, and if it leaves.

    `exits` says why nothing may move past the value, as the words before and after
    the label of the node that produces it: ``("the output of '", "' is also a model
    output")``. A move hands the value, with its uses and `exits`, to the activation,
    which then computes it.
    """

    __slots__ = ("producer", "uses", "exits")

    def __init__(self, producer: Node | None = None,
                 exits: tuple[str, str] | None = None) -> None:
        self.producer = producer
        self.uses: list[tuple[Node, int]] = []  # (consumer, input position)
        self.exits = exits


class Node:
    """One operation of a `DataView`: `outputs` are its `Value`s, `facts` the rare rest."""

    __slots__ = ("label", "kind", "inputs", "outputs", "function", "step", "handle",
                 "elements", "dtype", "producer", "cross_veto", "facts", "order", "flipped")

    def __init__(self, label: str, kind: str, inputs: Sequence[Value], *, outputs: int = 1,
                 function: algebra.Function | None = None, step: Step | None = None,
                 elements: int | None = None, dtype: Any = None, producer: str | None = None,
                 cross_veto: str = "", handle: Any = None, **facts: Any) -> None:
        self.label, self.kind = label, kind
        self.inputs = list(inputs)
        for position, value in enumerate(self.inputs):
            value.uses.append((self, position))
        self.outputs = [Value(self) for _ in range(outputs)]
        self.function, self.step, self.handle = function, step, handle
        self.elements, self.dtype, self.producer = elements, dtype, producer
        self.cross_veto = cross_veto
        if step is not None and step.kind is StepKind.ZERO_PADDING:
            facts.setdefault("grows", True)
        self.facts = Facts(**facts) if facts else NO_FACTS
        self.order = 0.0  # the place in the view; a moved activation's is between two
        self.flipped = False  # a max reduction that is a min now, or a min that is a max

    def __repr__(self) -> str:
        return f"Node({self.label!r}, {self.kind!r})"


class DataView(View):
    """A body held as `Node` and `Value` objects, in topological order."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.nodes: list[Node] = []

    def add(self, node: Node) -> Node:
        node.order = float(len(self.nodes))
        self.nodes.append(node)
        return node

    def in_order(self) -> list[Node]:
        """The nodes in their current order (moved activations after their landings)."""
        return sorted(self.nodes, key=lambda node: node.order)

    def activations(self) -> list[Node]:
        return [node for node in self.nodes if node.function is not None]

    def label(self, node: Node) -> str:
        return node.label

    def kind(self, node: Node) -> str:
        return node.kind

    def function(self, node: Node) -> algebra.Function | None:
        return node.function

    def step(self, node: Node) -> Step | None:
        return node.step

    def elements(self, node: Node) -> int | None:
        return node.elements

    def dtype(self, node: Node) -> Any:
        return node.dtype

    def cross_veto(self, node: Node) -> str:
        return node.cross_veto

    def producer_label(self, node: Node) -> str | None:
        return node.producer

    def facts(self, node: Node) -> Facts:
        return node.facts

    def output(self, node: Node) -> Value:
        return node.outputs[0]

    def outputs(self, node: Node) -> list[Value]:
        return node.outputs

    def source(self, node: Node) -> Value:
        return node.inputs[0]

    def producer(self, value: Value) -> Node | None:
        return value.producer

    def is_first_output(self, value: Value) -> bool:
        return value.producer is not None and value.producer.outputs[0] is value

    def uses(self, value: Value) -> list[tuple[Node, int]]:
        return value.uses

    def exits(self, value: Value) -> str:
        if not value.exits:
            return ""
        holder = value.producer.label if value.producer is not None else "?"
        return value.exits[0] + holder + value.exits[1]

    def flip(self, node: Node) -> None:
        node.step = algebra.flipped(node.step)
        node.flipped = not node.flipped

    def move(self, activation: Node, crossed: Sequence[Node]) -> None:
        landing = crossed[-1]
        source, own = activation.inputs[0], activation.outputs[0]
        first = crossed[0]
        source.uses[source.uses.index((activation, 0))] = (first, 0)
        first.inputs[0] = source
        pooled = landing.outputs[0]
        activation.outputs[0], pooled.producer = pooled, activation
        landing.outputs[0], own.producer = own, landing
        own.uses[:] = [(activation, 0)]
        activation.inputs[0] = own
        activation.elements = landing.elements
        following = [c.order for c, _ in pooled.uses]
        activation.order = (landing.order + min(following, default=landing.order + 1.0)) / 2
