"""The commute rules: when an elementwise ``f`` may move past a max (or min) reduction.

This is the one place the rules live. The Keras and the GraphDef front ends map
their own vocabulary (layers, activation names, TF op names) onto `Function`
and `Step` values and ask the questions below; neither decides validity itself.

The identity behind every rule: for a non-decreasing ``f``,
``max(f(a), f(b)) == f(max(a, b))``, so ``maxpool(f(x)) == f(maxpool(x))``; the same
holds for a min. A non-increasing ``f`` turns one into the other,
``max(f(a), f(b)) == f(min(a, b))``, so it moves past a max or min reduction that the
rewrite flips (`flips`), and never past a max pool (no runtime has a min pool).

Example:

    >>> f = keras_activation("relu")
    >>> check_path(f, [Step(StepKind.MAX_POOL, "pool")]).ok
    True
    >>> check_path(keras_activation("sigmoid"),
    ...            [Step(StepKind.ZERO_PADDING, "pad"),
    ...             Step(StepKind.MAX_POOL, "pool")]).reason
    "sigmoid(0) != 0, so it cannot cross the zero padding 'pad'"
"""

from __future__ import annotations

import dataclasses
import enum
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any


class Monotonicity(enum.Enum):
    """How ``f`` orders its outputs, as far as the max identity cares."""

    STRICTLY_INCREASING = "strictly increasing"
    NON_DECREASING = "non-decreasing"
    NON_INCREASING = "non-increasing"
    NOT_MONOTONE = "not monotone"
    UNKNOWN = "unknown"

    @property
    def keeps_order(self) -> bool:
        return self in (Monotonicity.STRICTLY_INCREASING, Monotonicity.NON_DECREASING)


@dataclasses.dataclass(frozen=True)
class Function:
    """An activation as the algebra sees it.

    Attributes:
      name: how reports name it, e.g. ``"relu"`` or ``"LeakyReLU(negative_slope=0.3)"``.
      monotonicity: see `Monotonicity`.
      elementwise: ``f`` maps each element on its own (softmax does not).
      zero_at_zero: ``f(0) == 0`` exactly, so ``f`` may cross zero padding.
      exact: both orders give bitwise-equal results (piecewise-linear functions
        and clipping). Others agree to about an ulp: transcendental kernels
        round differently on their vectorised and scalar paths. (Any function
        may differ in the sign of a zero where the input itself holds -0.0.)
      uniform: the same function at every position of a pooling window (a PReLU
        with one alpha per position is not).
      weight_dependent: the decision rests on trained values (PReLU alphas) and
        holds for the weights at rewrite time only.
      identity: ``f(x) == x`` (``linear``): there is nothing to move.
      family: the kind of kernel a runtime runs for ``f``, whatever its parameters
        (``"leaky_relu"`` for every slope, ``"relu"`` for the TF op ``Relu``); runtime
        policies are keyed by it. Left empty, it is ``name``.
      inference_only: ``f`` is this function at inference only (a batch normalization,
        which normalizes by batch statistics in training), so only a pass for
        inference may move it.
      detail: why ``f`` is not monotone, in words (``"channel 3 is scaled by -0.5"``).
    """

    name: str
    monotonicity: Monotonicity
    elementwise: bool = True
    zero_at_zero: bool = False
    exact: bool = False
    uniform: bool = True
    weight_dependent: bool = False
    identity: bool = False
    family: str = ""
    inference_only: bool = False
    detail: str = ""

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", self.name)


class StepKind(enum.Enum):
    """What an operation between ``f`` and the end of the move does to a tensor."""

    DATA_MOVEMENT = "data movement"  # reshape, permute, crop, slice, identity
    ZERO_PADDING = "zero padding"  # inserts zeros
    MAX_POOL = "max pool"  # max over windows or axes
    MAX_POOL_WITH_ARGMAX = "max pool with argmax"  # max, and where it was
    MIN = "min"  # min over axes (reduce_min; no runtime has a min pool)
    ARG_EXTREMUM = "argmax or argmin"  # where the max or min of an axis is
    AVERAGE_POOL = "average pool"  # mean or sum over windows or axes
    OTHER = "other"


@dataclasses.dataclass(frozen=True)
class Step:
    """One operation on the path from ``f`` towards a pool."""

    kind: StepKind
    name: str
    pad_value: float = 0.0  # for ZERO_PADDING steps that pad with another constant
    # For a max step: it makes every input larger than one window smaller
    # (global, adaptive, strided, or a 'valid' window wider than 1).
    shrinks: bool = False
    # For a max, min or average step: it reduces whole axes (reduce_max), not windows.
    reduction: bool = False
    # For a DATA_MOVEMENT step: it is the identity at inference only (a dropout, a
    # noise layer), so only a pass for inference may cross it.
    inference_only: bool = False


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A yes or no with the reason in words."""

    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


YES = Verdict(True, "")
NO_MAX = "no max pooling on the path"
# argmax(f(x)) == argmax(x) needs an f that makes no ties: in float32 every catalogue
# function but Neg saturates or underflows somewhere (sigmoid(20) == sigmoid(30) == 1),
# and the argmax of a tie is its first index. Neg is exact (argmax(-x) == argmin(x)),
# but that rewrite removes f instead of moving it, which this pass does not do.
ARG_REFUSAL = ("'{step}' returns an index, which f does not reach: removing {f} there is "
               "exact only for an f that makes no ties, and in float32 saturation and "
               "underflow make them (argmax of a tie is its first index)")

MAX_STEPS = (StepKind.MAX_POOL, StepKind.MAX_POOL_WITH_ARGMAX)
# The steps an activation may land after: a max, or a min (for a non-decreasing f,
# ``min(f(x)) == f(min(x))`` too).
EXTREMA = (*MAX_STEPS, StepKind.MIN)


def commutes_with_extremum(f: Function, step: Step, *, inference: bool = False) -> Verdict:
    """Whether ``max(f(x)) == f(max(x))`` (or the same for a min) for ``step``.

    A non-increasing ``f`` turns a max into a min and back: ``max(-x) == -min(x)``. It
    commutes with a reduction that the rewrite flips (see `flips`), not with a max pool:
    no runtime has a min pool to flip it into. With ``inference``, the identity needs to
    hold at inference only (see `Function.inference_only`).

    Example:

        commutes_with_extremum(TF_OPS["Neg"], Step(StepKind.MAX_POOL, "max", reduction=True))
        # YES: Max(Neg(x)) becomes Neg(Min(x))
    """
    if f.identity:
        return Verdict(False, f"{f.name} is the identity: nothing to move")
    if f.monotonicity is Monotonicity.UNKNOWN:
        return Verdict(
            False,
            f"{f.name} is unknown; declare it with tf_reorder.register_monotone "
            "if it is elementwise and monotone non-decreasing",
        )
    if not f.elementwise:
        return Verdict(False, f"{f.name} is not elementwise")
    if step.kind not in EXTREMA:
        return may_cross(f, step, inference=inference)
    decreasing = f.monotonicity is Monotonicity.NON_INCREASING
    if decreasing and not (step.reduction and step.kind in (StepKind.MAX_POOL, StepKind.MIN)):
        return Verdict(False, f"{f.name} is non-increasing: it turns a max into a min, "
                       f"and '{step.name}' is a max pool, which has no min counterpart "
                       "(only max and min reductions flip)")
    if not decreasing and not f.monotonicity.keeps_order:
        detail = f" ({f.detail})" if f.detail else ""
        return Verdict(False, f"{f.name} is not monotone{detail}, so max(f(x)) != f(max(x))")
    if not f.uniform:
        return Verdict(
            False,
            f"{f.name} is a different function at different positions of the "
            f"window of '{step.name}'",
        )
    if (
        step.kind is StepKind.MAX_POOL_WITH_ARGMAX
        and f.monotonicity is not Monotonicity.STRICTLY_INCREASING
    ):
        return Verdict(
            False,
            f"{f.name} is not strictly increasing: ties it creates would change "
            f"the argmax of '{step.name}'",
        )
    if f.inference_only and not inference:
        return Verdict(False, f"{f.name} is an affine map at inference only (training "
                       "normalizes by batch statistics): inference=True would move it")
    return YES


def flips(f: Function, step: Step) -> bool:
    """Whether moving ``f`` past ``step`` turns it from a max into a min, or back.

    Example:

        flips(TF_OPS["Neg"], Step(StepKind.MIN, "min", reduction=True))   # True
    """
    return f.monotonicity is Monotonicity.NON_INCREASING and step.reduction and \
        step.kind in (StepKind.MAX_POOL, StepKind.MIN)


def flipped(step: Step) -> Step:
    """A max reduction as a min, or a min as a max (see `flips`)."""
    kind = StepKind.MIN if step.kind is StepKind.MAX_POOL else StepKind.MAX_POOL
    return dataclasses.replace(step, kind=kind)


def may_cross(f: Function, step: Step, *, inference: bool = False) -> Verdict:
    """Whether ``f`` may move from before ``step`` to after it.

    With ``inference``, the result needs to hold at inference only, so ``f`` may also
    cross the steps that are the identity there (``Step.inference_only``).
    """
    if step.kind in EXTREMA:
        return commutes_with_extremum(f, step, inference=inference)
    if step.kind is StepKind.AVERAGE_POOL:
        return Verdict(
            False, f"'{step.name}' averages: f is moved past a max or a min, not a mean"
        )
    if step.kind is StepKind.ARG_EXTREMUM:
        if f.monotonicity is Monotonicity.NON_INCREASING and f.exact:
            return Verdict(False, f"'{step.name}' returns an index: {f.name} could be removed "
                           "there (argmax(-x) is argmin(x)), but this pass moves "
                           "activations, it does not remove them")
        return Verdict(False, ARG_REFUSAL.format(f=f.name, step=step.name))
    if not f.elementwise:
        return Verdict(False, f"{f.name} is not elementwise")
    if step.kind is StepKind.DATA_MOVEMENT:
        if step.inference_only and not inference:
            return Verdict(False, f"'{step.name}' is the identity only at inference: "
                           f"inference=True would let {f.name} cross it")
        return YES
    if step.kind is StepKind.ZERO_PADDING:
        if step.pad_value == 0.0 and f.zero_at_zero:
            return YES
        if step.pad_value == 0.0:
            return Verdict(False, f"{f.name}(0) != 0, so it cannot cross the zero padding '{step.name}'")
        return Verdict(
            False, f"f(pad value) != pad value for {f.name}, so it cannot cross '{step.name}'"
        )
    return Verdict(False, f"'{step.name}' is not a data movement, padding or max")


def check_path(f: Function, steps: Sequence[Step], *, inference: bool = False) -> Verdict:
    """Whether ``f`` may cross every step in order and ends after a max (or a min).

    The path must reach at least one such step; steps after the last one are
    not crossed (callers pass the path up to where ``f`` would land).
    """
    if not any(s.kind in EXTREMA for s in steps):
        return Verdict(False, NO_MAX)
    for step in steps:
        verdict = may_cross(f, step, inference=inference)
        if not verdict:
            return verdict
    return YES


def landing_index(f: Function, steps: Sequence[Step], *,
                  inference: bool = False) -> tuple[int, Verdict]:
    """How far along ``steps`` f may move: the index after the last max (or min) it
    reaches.

    Returns ``(n, verdict)``: ``f`` may land after ``steps[n - 1]`` (``n == 0``:
    not at all, and ``verdict`` says why not).
    """
    landing = 0
    first_refusal = YES
    for i, step in enumerate(steps):
        verdict = may_cross(f, step, inference=inference)
        if not verdict:
            first_refusal = verdict
            break
        if step.kind in EXTREMA:
            landing = i + 1
    if landing:
        return landing, YES
    if first_refusal.ok:
        return 0, Verdict(False, NO_MAX)
    return 0, first_refusal


def worth_moving(elements_before: int | None, elements_after: int | None) -> Verdict:
    """A valid move is made only where it removes work."""
    if elements_before is None or elements_after is None:
        return Verdict(False, "tensor sizes are not known statically, so the saving cannot be shown")
    if elements_after >= elements_before:
        return Verdict(
            False,
            f"the pooled tensor is not smaller ({elements_after} >= {elements_before} "
            "elements): moving would not remove work",
        )
    return YES


def worth_moving_any_size(steps: Sequence[Step]) -> Verdict:
    """Where sizes are unknown: does the path shrink every input larger than a window?

    Yes when nothing on it pads and some max step on it shrinks.
    """
    for step in steps:
        if step.kind is StepKind.ZERO_PADDING:
            return Verdict(False, f"input size unknown and '{step.name}' pads: cannot show "
                           "that the move removes work")
    if any(step.kind in EXTREMA and step.shrinks for step in steps):
        return YES
    return Verdict(False, "input size unknown and no pool on the path is strided: cannot "
                   "show that the move removes work")


# ---------------------------------------------------------------------------
# The catalogue: named activations of Keras 3 and TF ops.

# In floating point every catalogue function saturates or underflows somewhere
# (sigmoid -> 1.0, elu -> -alpha, 0.2 * tiny -> 0), creating ties, so none is
# strictly increasing on float inputs; only `linear` and user declarations are.
_S = Monotonicity.STRICTLY_INCREASING
_N = Monotonicity.NON_DECREASING
_X = Monotonicity.NOT_MONOTONE


def _fn(name: str, mono: Monotonicity, *, zero: bool = False, exact: bool = False,
        elementwise: bool = True) -> Function:
    return Function(name, mono, elementwise=elementwise, zero_at_zero=zero, exact=exact)


# Keras 3 activation names, with each function's default parameters.
KERAS_ACTIVATIONS: dict[str, Function] = {
    f.name: f
    for f in [
        Function("linear", _S, zero_at_zero=True, exact=True, identity=True),
        _fn("relu", _N, zero=True, exact=True),
        _fn("relu6", _N, zero=True, exact=True),
        _fn("leaky_relu", _N, zero=True, exact=True),  # negative_slope=0.2
        _fn("elu", _N, zero=True),  # alpha=1
        _fn("celu", _N, zero=True),  # alpha=1
        _fn("selu", _N, zero=True),
        _fn("sigmoid", _N),  # strictly increasing in R, saturates in float32
        _fn("hard_sigmoid", _N, exact=True),
        _fn("log_sigmoid", _N),
        _fn("sparse_sigmoid", _N, exact=True),
        _fn("tanh", _N, zero=True),
        _fn("hard_tanh", _N, zero=True, exact=True),
        _fn("softplus", _N),
        _fn("sparse_plus", _N),
        _fn("softsign", _N, zero=True),  # 1 + |x| rounds for |x| > 2**24
        _fn("exponential", _N),
        _fn("tanh_shrink", _N, zero=True),
        _fn("soft_shrink", _N, zero=True, exact=True),
        _fn("hard_shrink", _N, zero=True, exact=True),
        # Never moved.
        _fn("silu", _X, zero=True),
        _fn("swish", _X, zero=True),
        _fn("gelu", _X, zero=True),
        _fn("mish", _X, zero=True),
        _fn("hard_silu", _X, zero=True),
        _fn("hard_swish", _X, zero=True),
        _fn("threshold", _X),
        # Monotone on the reals, but Keras computes (x + sqrt(x**2 + b)) / 2, which
        # cancels below about -4 and overflows to inf below about -1.8e19.
        _fn("squareplus", _X),
        _fn("softmax", _N, elementwise=False),
        _fn("log_softmax", _N, elementwise=False),
        _fn("sparsemax", _N, elementwise=False),
        _fn("glu", _X, elementwise=False),
    ]
}

# TF op types that are elementwise activations (for the GraphDef front end). Each
# one's family is its lowercase op name ("Relu6" -> "relu6"), the Keras name where
# there is one.
TF_OPS: dict[str, Function] = {
    f.name: dataclasses.replace(f, family=f.name.lower())
    for f in [
        _fn("Relu", _N, zero=True, exact=True),
        _fn("Relu6", _N, zero=True, exact=True),
        _fn("Elu", _N, zero=True),
        _fn("Selu", _N, zero=True),
        _fn("Sigmoid", _N),
        _fn("Tanh", _N, zero=True),
        _fn("Softplus", _N),
        _fn("Softsign", _N, zero=True),
        _fn("Exp", _N),
        _fn("Expm1", _N, zero=True),
        _fn("Erf", _N, zero=True),
        _fn("Atan", _N, zero=True),
        _fn("Asinh", _N, zero=True),
        # Not Sinh: it reaches -inf, and TF's MaxPool never returns -inf (it starts
        # from the lowest finite float), so the two orders differ.
        _fn("Floor", _N, zero=True, exact=True),
        # Ceil, Rint and Round map small negatives to -0.0: equal as numbers only.
        _fn("Ceil", _N, zero=True),
        _fn("Rint", _N, zero=True),
        _fn("Round", _N, zero=True),
        _fn("Sign", _N, zero=True),  # wrong on subnormals in the vectorised kernel
        # Not zero_at_zero: -(+0.0) is -0.0, so padded zeros would change sign.
        _fn("Neg", Monotonicity.NON_INCREASING, exact=True),
    ]
}


def keras_activation(name: str) -> Function:
    """The catalogue entry for a Keras activation name (unknown names: `unknown`)."""
    registered = _registry.by_name(name)
    if registered is not None:
        return registered
    return KERAS_ACTIVATIONS.get(name) or unknown(name)


def tf_op(op_type: str, attrs: dict[str, Any] | None = None) -> Function | None:
    """The catalogue entry for a TF op type, or None if it is not an activation."""
    if op_type == "LeakyRelu":
        alpha = float((attrs or {}).get("alpha", 0.2))
        return leaky_relu(alpha, name=f"LeakyRelu(alpha={_num(alpha)})")
    return TF_OPS.get(op_type)


def unknown(name: str) -> Function:
    return Function(name, Monotonicity.UNKNOWN, elementwise=False)


def _num(value: float) -> str:
    return f"{value:g}"


def relu(negative_slope: float = 0.0, max_value: float | None = None,
         threshold: float = 0.0, *, name: str | None = None) -> Function:
    """``x`` above ``threshold`` (clipped at ``max_value``), ``slope * (x - threshold)`` below.

    Non-decreasing iff ``negative_slope >= 0`` and ``threshold >= 0``: with a
    negative threshold f drops from about 0 to ``threshold`` at ``x == threshold``.
    """
    if name is None:
        params = [f"negative_slope={_num(negative_slope)}" if negative_slope else "",
                  f"max_value={_num(max_value)}" if max_value is not None else "",
                  f"threshold={_num(threshold)}" if threshold else ""]
        inner = ", ".join(p for p in params if p)
        name = f"ReLU({inner})" if inner else "relu"
    plain = negative_slope == 0 and max_value is None and threshold == 0
    mono = _N if negative_slope >= 0 and threshold >= 0 else _X
    zero = negative_slope == 0 or threshold <= 0  # consulted only where f is monotone
    # A ReLU with parameters is its own family: no runtime measures it as "relu".
    return Function(name, mono, zero_at_zero=zero, exact=True,
                    family="relu" if plain else name)


def leaky_relu(negative_slope: float, *, name: str | None = None) -> Function:
    name = name or f"LeakyReLU(negative_slope={_num(negative_slope)})"
    mono = _N if negative_slope >= 0 else _X
    # A zero slope maps negatives to -0.0, so a window holding 0.0 and a negative
    # value pools to a different zero in each order: equal as numbers, not bits.
    return Function(name, mono, zero_at_zero=negative_slope >= 0, exact=negative_slope != 0,
                    family="leaky_relu")


def elu(alpha: float, *, name: str | None = None) -> Function:
    name = name or f"ELU(alpha={_num(alpha)})"
    mono = _N if alpha >= 0 else _X
    return Function(name, mono, zero_at_zero=alpha >= 0, family="elu")


def celu(alpha: float, *, name: str | None = None) -> Function:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``: non-decreasing for alpha > 0."""
    name = name or f"celu(alpha={_num(alpha)})"
    return Function(name, _N if alpha > 0 else _X, zero_at_zero=True, family="celu")


def shrink(kind: str, threshold: float, *, name: str | None = None) -> Function:
    """``soft_shrink`` or ``hard_shrink`` with its threshold: non-decreasing for t >= 0."""
    name = name or f"{kind}(threshold={_num(threshold)})"
    monotone = threshold >= 0
    return Function(name, _N if monotone else _X, zero_at_zero=monotone, exact=True,
                    family=kind)


def clip(low: float, high: float, *, name: str | None = None) -> Function:
    """``min(max(x, low), high)`` with constant bounds: non-decreasing and exact.

    Either bound may be infinite (``Maximum(x, 0)`` is ``clip(0, inf)``); a NaN bound
    makes the result depend on the kernel's order of operations, so it is refused.

    Example:

        clip(0, 6)   # like relu6; crosses zero padding since clip(0) == 0
    """
    name = name or f"clip({_num(low)}, {_num(high)})"
    if math.isnan(low) or math.isnan(high):
        return Function(name, _X, family="clip", detail="a bound is NaN")
    return Function(name, _N, zero_at_zero=low <= 0 <= high, exact=True, family="clip")


def threshold(threshold: float, default_value: float) -> Function:
    """``x`` where ``x > threshold``, else `default_value`: non-decreasing iff value <= t."""
    zero = 0 > threshold or default_value == 0
    return Function(f"threshold({_num(threshold)}, {_num(default_value)})",
                    _N if default_value <= threshold else _X, zero_at_zero=zero, exact=True,
                    family="threshold")


def per_channel_affine(name: str, scales: Iterable[float], offsets: Iterable[float] = (),
                       *, zero_at_zero: bool = False, inference_only: bool = False,
                       family: str, exact: bool = True) -> Function:
    """``a_c * x + b_c`` with one scale and offset per channel, from trained values.

    Non-decreasing in each channel iff every ``a_c`` is finite and ``> 0``, so it
    commutes with a max that stays within a channel (the planner checks the pool's
    channel axis, as for a PReLU's alphas). A scale of 0 is refused: ``0 * inf`` is
    NaN, which a max pool would skip before and return after. Every ``b_c`` must be
    finite for the same reason. The first channel that fails is named in
    `Function.detail`. Each output element is the same multiply and add in both
    orders, so the result is bitwise equal (``exact``) unless a runtime rounds the two
    differently (a fused multiply-add on one size and not the other).

    Example:

        per_channel_affine("BatchNormalization", [0.5, 2.0], family="batch_norm")
        # non-decreasing; with [0.5, -2.0]: not monotone, "channel 1 is scaled by -2"
    """
    low, detail = math.inf, ""
    for channel, scale in enumerate(scales):
        scale = float(scale)
        if not 0 < scale < math.inf:  # zero, negative, infinite or NaN
            detail = f"channel {channel} is scaled by {_num(scale)}"
            break
        low = min(low, scale)
    for channel, offset in enumerate(offsets):
        if not detail and not math.isfinite(offset):
            detail = f"channel {channel} is shifted by {_num(float(offset))}"
    described = f"{name}(min scale={_num(low)})" if not detail and low != math.inf else name
    return Function(described, _X if detail else _N, zero_at_zero=zero_at_zero, exact=exact,
                    weight_dependent=True, inference_only=inference_only, family=family,
                    detail=detail)


NEGATIVE = Function("negative", Monotonicity.NON_INCREASING, exact=True)


def prelu(min_alpha: float, *, uniform: bool) -> Function:
    """PReLU: ``x`` for ``x >= 0``, ``alpha * x`` below; alpha is trained.

    Non-decreasing iff every alpha is ``>= 0``; the same function across a pooling
    window only if the alphas are shared over the pooled axes.
    """
    mono = _N if min_alpha >= 0 else _X
    if math.isnan(min_alpha):
        mono = _X
    return Function(f"PReLU(min alpha={_num(min_alpha)})", mono, zero_at_zero=True,
                    exact=True, uniform=uniform, weight_dependent=True, family="prelu")


# ---------------------------------------------------------------------------
# Registration of user activations.


class _Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, tuple[Callable[..., Any], Function]] = {}
        self._by_name: dict[str, Function] = {}

    def add(self, key: Callable[..., Any] | str, function: Function) -> None:
        with self._lock:
            if isinstance(key, str):
                self._by_name[key] = function
            else:
                self._by_id[id(key)] = (key, function)

    def remove(self, key: Callable[..., Any] | str) -> None:
        with self._lock:
            if isinstance(key, str):
                self._by_name.pop(key, None)
            else:
                self._by_id.pop(id(key), None)

    def by_name(self, name: str) -> Function | None:
        return self._by_name.get(name)

    def by_callable(self, fn: Callable[..., Any]) -> Function | None:
        entry = self._by_id.get(id(fn))
        return entry[1] if entry is not None and entry[0] is fn else None

    def callables(self) -> Iterable[Callable[..., Any]]:
        return [fn for fn, _ in self._by_id.values()]


_registry = _Registry()


def register_monotone(
    activation: Callable[..., Any] | str,
    *,
    zero_at_zero: bool,
    strictly_increasing: bool = False,
    exact: bool = False,
    decreasing: bool = False,
) -> Callable[..., Any] | str:
    """Declares a custom activation elementwise and monotone non-decreasing (or, with
    ``decreasing``, non-increasing).

    Once declared, tf_reorder moves it past max pools like a built-in one; a
    non-increasing one moves past max and min reductions only (``keras.ops.max``,
    ``keras.ops.min``), turning one into the other: ``max(f(x)) == f(min(x))``. The
    declaration is a promise: tf_reorder cannot check it, and a wrong one gives a
    model that computes something else.

    Args:
      activation: the function object, or its registered Keras name (e.g.
        ``"my_pkg>scaled_tanh"``, as ``keras.saving.register_keras_serializable``
        names it).
      zero_at_zero: whether ``f(0) == 0`` exactly; only then may ``f`` cross
        zero padding.
      strictly_increasing: whether ``f(a) < f(b)`` whenever ``a < b`` (needed to
        move past a max pool that also returns the argmax).
      exact: whether ``f`` uses only correctly rounded operations, so the two
        orders agree bitwise (documentation for tests; it changes no decision).
      decreasing: whether ``f(a) >= f(b)`` whenever ``a < b`` instead (``-tanh``).

    Returns:
      ``activation`` itself, so it can be used as a decorator.

    Example:

        def scaled_tanh(x):
            return 1.7159 * keras.ops.tanh(0.6666 * x)

        tf_reorder.register_monotone(scaled_tanh, zero_at_zero=True)
        model = keras.Sequential([..., layers.Conv2D(8, 3, activation=scaled_tanh),
                                  layers.MaxPooling2D()])
        tf_reorder.reorder(model)  # scaled_tanh now runs after the pool
    """
    if not (isinstance(activation, str) or callable(activation)):
        raise TypeError(
            f"register_monotone takes a function or a name, not {type(activation).__name__}"
        )
    if decreasing and strictly_increasing:
        raise ValueError("register_monotone: an activation cannot be both "
                         "strictly_increasing and decreasing")
    name = activation if isinstance(activation, str) else getattr(
        activation, "__name__", repr(activation))
    monotonicity = Monotonicity.NON_INCREASING if decreasing else \
        _S if strictly_increasing else _N
    function = Function(
        name,
        monotonicity,
        zero_at_zero=bool(zero_at_zero),
        exact=bool(exact),
    )
    _registry.add(activation, function)
    return activation


def unregister_monotone(activation: Callable[..., Any] | str) -> None:
    """Takes back a `register_monotone` declaration (no error if there was none)."""
    _registry.remove(activation)


def registered(fn: Callable[..., Any]) -> Function | None:
    """The registered description of a callable, if the user declared one."""
    return _registry.by_callable(fn)
