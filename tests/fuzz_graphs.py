"""Seeded random TensorFlow graphs for differential tests of the graph pass.

`random_graph(seed)` builds a small tf.function out of random chains

    producer -> activation(s) -> ops between -> pool(s)

- producers: conv 1D/2D/3D (constant or captured weights), depthwise conv, bias
  add, fused batch norm, a shift, a Split's second output, or nothing;
- activations: every op the pass moves (relu family, transcendental, rounding;
  Neg, which moves past max and min reductions only and flips them), clamps
  (`_clamp_op`: ClipByValue, tf.clip_by_value, minimum(maximum(x, lo), hi), Maximum or
  Minimum with scalar or per-channel constant bounds, some keeping zero and some
  not), and ops it must not move (LeakyRelu with a negative slope, Square, Abs, Sinh,
  Cos, Softmax, LogSoftmax, silu, gelu; clamps by a bound computed from the tensor,
  a NaN bound, per-position bounds, or the constant first), one to three in a row;
- between: Identity, Pad with zeros (Pad, PadV2) or another value (-1, 0.5, 1,
  6, -inf, -0.0), MirrorPad, Transpose, Reshape, ExpandDims + Squeeze, per-channel
  maps the pass moves itself (Mul, Add, Sub, BiasAdd by constants, some scales <= 0;
  FusedBatchNormV3 in inference, some scales < 0), and StridedSlice;
- pools: MaxPool (1D/2D/3D, VALID or SAME, random windows and strides),
  MaxPoolV2, MaxPoolWithArgmax, reduce_max and reduce_min over random axes (not the
  batch: `REDUCE_BATCH_AXIS`), and the average pools, means and tf.argmax / tf.argmin
  (cast back to the float type) the pass must refuse.

Chains sit in the top-level graph, in tf.cond or tf.switch_case branches, in a
tf.while_loop body, or in nested tf.functions (two deep, or called twice); they
feed one another; they get extra consumers (outputs, means), control edges in
and out, and extra fetches. Close to half the chains are drawn to test one rule of
the pass (`_RULES`): a padding into a shrinking pool, an average, an argmax, a
non-monotone f, an extra consumer, fetch or control edge, or Neg through data
movement into a max or min reduction ("flip": where nothing else reads the path in
the top-level graph, `GraphCase.expected_moves` says it must move). Inputs are float32,
float16, bfloat16 or float64, sometimes with an unknown batch or unknown
spatial sizes; outputs are a tensor, a tuple, a dict, or a dict holding a None.

A case is a pure function of its seed: every random choice comes from numpy
generators seeded from it, drawn in a fixed order before and while tracing, so a
failing seed reproduces the same graph (its `description` says what it is).

Example:

    case = random_graph(17)
    print(case.description)
    outputs = case.concrete(*case.inputs)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

# ---------------------------------------------------------------------------
# Activations. `exact`: this test's own judgement of whether moving the op past a
# max gives bitwise-equal results (piecewise linear, no sign-of-zero change;
# LeakyRelu with slope 0 is not: it maps negatives to -0.0); ops the pass must not
# move at all are exact too, since they stay where they are.


@dataclasses.dataclass(frozen=True)
class ActivationKind:
    name: str
    build: Callable[[Any, float], Any] | None  # (tensor, alpha) -> tensor; None: a clamp
    exact: bool
    moves: bool  # the pass may move it: monotone elementwise (see `decreasing`)
    dtypes: tuple[str, ...] = ("bfloat16", "float16", "float32", "float64")
    # Non-increasing: it moves past a max or min reduction only, which the pass flips
    # (max(-x) == -min(x)); never past a max pool, a padding or an average.
    decreasing: bool = False


def _leaky(t: Any, alpha: float) -> Any:
    return tf.nn.leaky_relu(t, alpha)


ACTIVATIONS: dict[str, ActivationKind] = {a.name: a for a in [
    ActivationKind("relu", lambda t, _: tf.nn.relu(t), exact=True, moves=True),
    ActivationKind("relu6", lambda t, _: tf.nn.relu6(t), exact=True, moves=True),
    ActivationKind("leaky_relu", _leaky, exact=True, moves=True),
    ActivationKind("elu", lambda t, _: tf.nn.elu(t), exact=False, moves=True),
    ActivationKind("selu", lambda t, _: tf.nn.selu(t), exact=False, moves=True),
    ActivationKind("sigmoid", lambda t, _: tf.sigmoid(t), exact=False, moves=True),
    ActivationKind("tanh", lambda t, _: tf.tanh(t), exact=False, moves=True),
    ActivationKind("softplus", lambda t, _: tf.nn.softplus(t), exact=False, moves=True),
    ActivationKind("softsign", lambda t, _: tf.nn.softsign(t), exact=False, moves=True),
    ActivationKind("exp", lambda t, _: tf.exp(t), exact=False, moves=True),
    ActivationKind("expm1", lambda t, _: tf.math.expm1(t), exact=False, moves=True),
    ActivationKind("erf", lambda t, _: tf.math.erf(t), exact=False, moves=True),
    ActivationKind("atan", lambda t, _: tf.math.atan(t), exact=False, moves=True),
    ActivationKind("asinh", lambda t, _: tf.math.asinh(t), exact=False, moves=True),
    ActivationKind("floor", lambda t, _: tf.floor(t), exact=True, moves=True),
    # Ceil, Rint, Round give -0.0 for small negatives: equal as numbers, not bits.
    ActivationKind("ceil", lambda t, _: tf.math.ceil(t), exact=False, moves=True),
    ActivationKind("rint", lambda t, _: tf.math.rint(t), exact=False, moves=True,
                   dtypes=("float32", "float64")),
    ActivationKind("round", lambda t, _: tf.math.round(t), exact=False, moves=True),
    ActivationKind("sign", lambda t, _: tf.math.sign(t), exact=False, moves=True),
    # Exact, but -(+0.0) is -0.0: where its input may hold zeros, the case is judged
    # within tolerance (see `_build_chain`).
    ActivationKind("neg", lambda t, _: tf.negative(t), exact=True, moves=True,
                   decreasing=True),
    # Clamps by constants (`_clamp_op`): exact; they cross zero padding iff lo <= 0 <= hi.
    # A bound computed at run time, a NaN bound, per-position bounds or the constant
    # as the first input: never moved.
    ActivationKind("clip_by_value", None, exact=True, moves=True),
    ActivationKind("clip_pair", None, exact=True, moves=True),
    ActivationKind("maximum", None, exact=True, moves=True),
    ActivationKind("clip_channels", None, exact=True, moves=True),
    ActivationKind("clip_dynamic", None, exact=True, moves=False),
    ActivationKind("clip_nan", None, exact=True, moves=False),
    # Never moved: not monotone, or not elementwise.
    ActivationKind("square", lambda t, _: tf.square(t), exact=True, moves=False),
    ActivationKind("abs", lambda t, _: tf.abs(t), exact=True, moves=False),
    ActivationKind("sinh", lambda t, _: tf.math.sinh(t), exact=True, moves=False),
    ActivationKind("cos", lambda t, _: tf.cos(t), exact=True, moves=False),
    ActivationKind("softmax", lambda t, _: tf.nn.softmax(t), exact=True, moves=False),
    ActivationKind("log_softmax", lambda t, _: tf.nn.log_softmax(t), exact=True, moves=False),
    ActivationKind("silu", lambda t, _: tf.nn.silu(t), exact=True, moves=False),
    ActivationKind("gelu", lambda t, _: tf.nn.gelu(t), exact=True, moves=False),
]}
_LEAKY_ALPHAS = (0.0, 0.1, 0.2, 0.3, -0.2)
# Scalar bounds of the clamps: some keep zero (lo <= 0 <= hi), some do not (lo > 0 or
# hi < 0), so a zero padding is crossed by some and not by others.
CLAMP_BOUNDS = ((0.0, 6.0), (-1.0, 1.0), (-0.5, 2.0), (0.0, 0.0), (0.25, 1.5), (0.5, 3.0),
                (-3.0, -0.25), (-np.inf, 0.5), (0.1, np.inf))

# The op types of every activation above, for counting activations in a graph.
ACTIVATION_OP_TYPES = frozenset({
    "Relu", "Relu6", "LeakyRelu", "Elu", "Selu", "Sigmoid", "Tanh", "Softplus", "Softsign",
    "Exp", "Expm1", "Erf", "Atan", "Asinh", "Floor", "Ceil", "Rint", "Round", "Sign", "Neg",
})
# The non-increasing ones: they move only past Max and Min reductions, which they flip.
DECREASING_OP_TYPES = frozenset({"Neg"})
# Clamps: the pass moves them where the bounds are constants (`_clamp_op`).
CLAMP_OP_TYPES = frozenset({"ClipByValue", "Maximum", "Minimum"})
# The per-channel affine ops the pass may move too, where a parameter is constant.
AFFINE_OP_TYPES = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3",
                             "BiasAdd", "Add", "AddV2", "Sub", "Mul"})
MOVABLE_OP_TYPES = ACTIVATION_OP_TYPES | CLAMP_OP_TYPES | AFFINE_OP_TYPES

# Drawn in four groups: the relu family (bitwise cases), other non-decreasing movers,
# clamps, and the rest (never moved, or Neg: only past a max or min reduction).
_RELU_FAMILY = [ACTIVATIONS[n] for n in ("relu", "relu6", "leaky_relu", "floor")]
_CLAMPS = [a for a in ACTIVATIONS.values() if a.build is None]
_MOVERS = [a for a in ACTIVATIONS.values() if a.moves and not a.decreasing
           and a not in _RELU_FAMILY and a not in _CLAMPS]
_OTHERS = [a for a in ACTIVATIONS.values() if (not a.moves or a.decreasing)
           and a not in _CLAMPS]
_GROUPS = (_RELU_FAMILY, _MOVERS, _CLAMPS, _OTHERS)
_GROUPS_P = (0.47, 0.33, 0.06, 0.14)
_NOT_ZERO_AT_ZERO = ("sigmoid", "softplus", "exp")  # drawn more often: the padding rule
_NOT_ZERO_AT_ZERO_KINDS = [ACTIVATIONS[n] for n in _NOT_ZERO_AT_ZERO]
# Within a group, a kind's weight (1 unless listed).
_KIND_WEIGHTS = {**{n: 3.0 for n in _NOT_ZERO_AT_ZERO}, "clip_by_value": 3.0,
                 "clip_pair": 2.0, "maximum": 2.0, "clip_channels": 2.0, "clip_nan": 0.5}
# Reducing the batch axis (reduce_max over axis 0) is left out: the pass counts
# elements per sample as the dimensions after the first, which is wrong once the
# batch is reduced (tests/regressions/test_graph_batch_axis_reduction.py).
REDUCE_BATCH_AXIS = False

_BETWEEN = ("identity", "pad", "pad_v2_zero", "pad_value", "mirror_pad", "transpose",
            "reshape_same", "reshape_swap", "expand_squeeze", "scale", "slice", "shift",
            "scale_channels", "shift_channels", "batch_norm")
_BETWEEN_P = (0.1, 0.19, 0.06, 0.12, 0.08, 0.07, 0.05, 0.05, 0.06, 0.03, 0.03, 0.03, 0.05,
              0.04, 0.04)
# What a non-increasing f may cross on its way to a reduction (the "flip" rule).
_DATA_MOVEMENT = ("identity", "transpose", "reshape_same", "reshape_swap", "expand_squeeze")
# "arg": tf.argmax or tf.argmin over one axis (cast back to the float type), which no
# activation may cross or land after.
_POOLS = ("max_pool", "max_pool_v2", "max_pool_argmax", "reduce_max", "reduce_min",
          "avg_pool", "reduce_mean", "arg")
_POOLS_P = (0.44, 0.07, 0.07, 0.24, 0.07, 0.04, 0.04, 0.03)
_PRODUCERS = ("none", "conv", "conv_bias", "bias", "batch_norm", "depthwise", "shift", "split")
_PRODUCERS_P = (0.13, 0.2, 0.28, 0.08, 0.1, 0.07, 0.07, 0.07)
_EXTRAS = ("output", "mean", "control_from", "control_to", "fetch")
_EXTRAS_P = (0.3, 0.2, 0.15, 0.15, 0.2)
# With probability 0.45 a chain is drawn to test one rule of the pass: f across zero
# padding or another pad value into a pool that shrinks, an average, an argmax, a
# non-monotone f, an extra consumer, fetch or control edge on the path, or Neg (after
# data movement) into a max or min reduction, which it moves past and flips ("flip").
_RULES = ("", "zero_pad", "pad_value", "average", "argmax", "monotone", "output", "fetch",
          "control_from", "control_to", "flip")
_RULES_P = (0.55, 0.1, 0.04, 0.04, 0.04, 0.04, 0.05, 0.03, 0.03, 0.03, 0.05)


@dataclasses.dataclass
class GraphCase:
    """One random graph and what the checks need to know about it.

    Attributes:
      seed: the seed it was built from.
      description: the graph in words, one line per chain (for failure messages).
      function: the tf.function.
      concrete: its ConcreteFunction (input names ``x0``, ``x1``).
      inputs: one set of input arrays, in the concrete function's argument order.
      exact: outputs must agree bitwise (every activation in it is piecewise linear).
      activations: how many activation ops it holds (bounds the passes needed when
        moved activations meet others: see `fuzz_graph_checks`).
      extra_fetches: names of top-level tensors (activations, ops between, pools) to
        fetch and preserve besides the outputs.
      expected_moves: top-level activations (op names) the rules say must move: a Neg
        drawn by the "flip" rule right before a max or min reduction that shrinks, with
        only data movement between and nothing else reading the path.
    """

    seed: int
    description: str
    function: Any
    concrete: Any
    inputs: list[np.ndarray]
    exact: bool
    activations: int
    extra_fetches: tuple[str, ...]
    expected_moves: tuple[str, ...] = ()


# ---------------------------------------------------------------------------
# Building.


class _Recorder:
    """What the trace built: description lines, exactness, fetchable names."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.lines: list[str] = []
        self.exact = True
        self.activations = 0
        self.fetches: list[str] = []
        self.expected_moves: list[str] = []


@dataclasses.dataclass(frozen=True)
class _Chain:
    """A chain's plan: the shape of it (`shape_seed`) and its flavour (`flavor_seed`).

    Two chains with the same shape seed build tensors of the same shapes from the
    same input (the branches of a tf.cond, the body of a while loop and its
    initial value); the flavour picks activations and extra consumers.
    """

    label: str
    shape_seed: int
    flavor_seed: int
    outputs_allowed: bool  # extra outputs may leave the chain (not in cond / while)
    fetch_allowed: bool  # its tensors are top-level nodes
    zero_free: bool = True  # its input holds no zeros (an argument, not another chain)


def _static(t: Any) -> list[int | None]:
    return list(t.shape.as_list())


def _weights(rng: np.random.Generator, shape: Sequence[int], fan_in: int,
             dtype: tf.DType, captured: bool) -> Any:
    values = (rng.standard_normal(shape) / np.sqrt(max(fan_in, 1))).astype(dtype.as_numpy_dtype)
    if captured:  # an eager tensor from outside the trace: a captured input
        with tf.init_scope():
            return tf.constant(values)
    return tf.constant(values)


def _build_chain(chain: _Chain, t: Any, rec: _Recorder) -> tuple[Any, list[Any]]:
    """Builds one chain on `t`; returns its main output and its extra outputs."""
    srng = np.random.default_rng(chain.shape_seed)
    frng = np.random.default_rng(chain.flavor_seed)
    dtype = t.dtype
    rank = t.shape.rank
    spatial = rank - 2
    words: list[str] = []

    # -- the plan: everything the shapes depend on comes from srng, in a fixed order.
    producer = _PRODUCERS[srng.choice(len(_PRODUCERS), p=_PRODUCERS_P)]
    if producer == "batch_norm" and (spatial != 2 or dtype == tf.float64):
        producer = "conv_bias"
    if producer == "depthwise" and spatial != 2:
        producer = "conv"
    if producer == "split" and (_static(t)[-1] or 0) < 2:
        producer = "shift"
    filters = int(srng.integers(1, 5))
    kernel = int(srng.integers(1, 4))
    conv_padding = "VALID" if srng.random() < 0.3 else "SAME"
    captured = bool(srng.random() < 0.15)
    n_between = int(srng.choice(3, p=(0.45, 0.4, 0.15)))
    between = [_BETWEEN[srng.choice(len(_BETWEEN), p=_BETWEEN_P)] for _ in range(n_between)]
    between_params = [srng.integers(0, 1 << 30) for _ in range(n_between)]
    n_pools = int(srng.choice(3, p=(0.03, 0.77, 0.2)))
    pools = [_POOLS[srng.choice(len(_POOLS), p=_POOLS_P)] for _ in range(n_pools)]
    pool_params = [srng.integers(0, 1 << 30) for _ in range(n_pools)]
    weight_seed = int(srng.integers(0, 1 << 30))
    rule = _RULES[srng.choice(len(_RULES), p=_RULES_P)]
    if rule in ("zero_pad", "pad_value"):  # f, a padding of 1, then a pool that shrinks
        between, pools = ["pad1" if rule == "zero_pad" else "pad1_value"], ["stem_pool"]
    elif rule == "average":
        pools = ["avg_pool" if srng.random() < 0.5 else "reduce_mean"]
    elif rule == "argmax":
        pools = ["max_pool_argmax"]
    elif rule == "flip":  # Neg, data movement, a max or min reduction (then maybe a pool)
        between = [_DATA_MOVEMENT[srng.integers(len(_DATA_MOVEMENT))]
                   for _ in range(int(srng.choice(2, p=(0.6, 0.4))))]
        pools = ["flip_max" if srng.random() < 0.6 else "flip_min", *pools[1:]]
    n_between, n_pools = len(between), len(pools)
    between_params, pool_params = between_params[:n_between], pool_params[:n_pools]
    between_params += [srng.integers(0, 1 << 30) for _ in range(n_between - len(between_params))]
    pool_params += [srng.integers(0, 1 << 30) for _ in range(n_pools - len(pool_params))]

    # -- the flavour: activations and extra consumers, from frng.
    n_act = int(frng.choice((1, 2, 3), p=(0.8, 0.16, 0.04)))
    kinds = []
    for i in range(n_act):
        options = _GROUPS[frng.choice(len(_GROUPS), p=_GROUPS_P)]
        if rule in ("zero_pad", "pad_value", "argmax"):
            options = [_NOT_ZERO_AT_ZERO_KINDS, _GROUPS[0], _GROUPS[1], _CLAMPS][
                frng.choice(4, p=(0.3, 0.3, 0.25, 0.15))]
        if rule == "monotone":  # decreasing or not monotone, right before the pool
            options = [ACTIVATIONS[n] for n in ("neg", "leaky_relu", "clip_dynamic",
                                                "clip_nan")]
        weights = np.array([_KIND_WEIGHTS.get(a.name, 1.0) for a in options])
        kind = options[frng.choice(len(options), p=weights / weights.sum())]
        if rule == "flip" and i == n_act - 1:
            kind = ACTIVATIONS["neg"]
        if dtype.name not in kind.dtypes:
            kind = ACTIVATIONS["relu"]
        alpha = float(_LEAKY_ALPHAS[frng.integers(len(_LEAKY_ALPHAS))])
        if rule == "monotone":
            alpha = -abs(alpha) or -0.1
        kinds.append((kind, alpha, int(frng.integers(0, 1 << 30))))
    n_path = n_act + n_between + n_pools  # tensors on the path, in order
    extras: dict[int, list[str]] = {}  # position on the path -> extra consumers there
    if rule in _EXTRAS and n_path > n_act:
        # On the last activation or an op after it, before the last pool.
        extras[int(frng.integers(n_act - 1, n_path - 1))] = [rule]
    for _ in range(int(frng.choice(3, p=(0.65, 0.27, 0.08)))):
        kind = _EXTRAS[frng.choice(len(_EXTRAS), p=_EXTRAS_P)]
        extras.setdefault(int(frng.integers(n_path)), []).append(kind)
    for kinds_there in extras.values():
        for i, kind in enumerate(kinds_there):
            if kind == "output" and not chain.outputs_allowed:
                kinds_there[i] = "mean"
            if kind == "fetch" and not chain.fetch_allowed:
                kinds_there[i] = "control_from"

    wrng = np.random.default_rng(weight_seed)
    sides: list[Any] = []
    control_from: list[Any] = []
    means: list[Any] = []
    position = 0

    def created(make: Callable[[], Any], what: str) -> Any:
        """Creates one path tensor, with the extra consumers planned at its position."""
        nonlocal position
        here = extras.get(position, [])
        if "control_to" in here:
            dependency = tf.identity(t, name="dependency")
            with tf.control_dependencies([dependency]):
                out = make()
            what += " [control input]"
        else:
            out = make()
        main = out[0] if isinstance(out, tuple) else out
        for kind in here:
            if kind == "output":
                sides.append(main)
                what += " [also an output]"
            elif kind == "mean":
                means.append(tf.reduce_mean(main))
                what += " [also read by a mean]"
            elif kind == "control_from":
                control_from.append(main)
                what += " [control input of another op]"
            elif kind == "fetch":
                rec.fetches.append(main.name)
                what += " [fetched]"
        words.append(what)
        position += 1
        return out

    # -- producer
    h = t
    if producer in ("conv", "conv_bias", "batch_norm"):
        channels = _static(t)[-1]
        k = kernel
        padding = conv_padding
        if padding == "VALID" and any(d is None or d < k for d in _static(t)[1:-1]):
            padding = "SAME"
        w = _weights(wrng, [k] * spatial + [channels, filters], k ** spatial * channels, dtype,
                     captured)
        if spatial == 1:
            h = tf.nn.conv1d(h, w, 1, padding)
        elif spatial == 2:
            h = tf.nn.conv2d(h, w, 1, padding)
        else:
            h = tf.nn.conv3d(h, w, [1] * 5, padding)
        words.append(f"conv{spatial}d(k={k}, filters={filters}, {padding}"
                     f"{', captured weights' if captured else ''})")
        if producer == "conv_bias":
            h = tf.nn.bias_add(h, _weights(wrng, [filters], 1, dtype, False))
            words.append("bias_add")
        if producer == "batch_norm":
            scale = tf.constant(wrng.uniform(0.5, 1.5, filters).astype("float32"))
            offset = tf.constant(wrng.standard_normal(filters).astype("float32"))
            mean = tf.constant(wrng.standard_normal(filters).astype("float32") * 0.1)
            variance = tf.constant(wrng.uniform(0.5, 1.5, filters).astype("float32"))
            h, _, _ = tf.compat.v1.nn.fused_batch_norm(h, scale, offset, mean, variance,
                                                       is_training=False)
            words.append("fused_batch_norm")
    elif producer == "depthwise":
        channels = _static(t)[-1]
        w = _weights(wrng, [kernel, kernel, channels, 1], kernel * kernel, dtype, captured)
        h = tf.nn.depthwise_conv2d(h, w, [1, 1, 1, 1], "SAME")
        words.append(f"depthwise_conv2d(k={kernel})")
    elif producer == "bias":
        h = tf.nn.bias_add(h, _weights(wrng, [_static(t)[-1]], 1, dtype, False))
        words.append("bias_add")
    elif producer == "shift":
        h = h + tf.constant(0.25, dtype)
        words.append("add 0.25")
    elif producer == "split":  # the activation reads output 1 of a Split
        channels = _static(t)[-1]
        h = tf.split(h, [1, channels - 1], axis=-1)[1]
        words.append("split channels, take [1:]")

    # -- activations
    neg_at = None  # the path position of the last activation if it is a Neg
    for i, (kind, alpha, param) in enumerate(kinds):
        if kind.build is None:
            make, label, ops = _clamp_op(kind.name, h, np.random.default_rng(param))
            rec.activations += ops
        else:
            label = f"{kind.name}({alpha:g})" if kind.name == "leaky_relu" else kind.name
            make = (lambda kind=kind, alpha=alpha, h=h: kind.build(h, alpha))
            rec.activations += 1
        if kind.decreasing and (i > 0 or not chain.zero_free):
            # Its input may hold zeros (+0.0 from a relu, -0.0 from a Neg): -0.0 then
            # meets 0.0 in a window, whose max is either, so orders may differ in the
            # sign of a zero.
            rec.exact = False
            label += " [input may hold zeros: not bitwise]"
        neg_at = position if kind.decreasing and i == n_act - 1 else None
        h = created(make, label)
        if not kind.exact or (kind.name == "leaky_relu" and alpha == 0.0):
            rec.exact = False  # a zero slope maps negatives to -0.0
    activated = h

    # -- between
    layout = True  # [batch, spatial..., channels]
    for kind, param in zip(between, between_params, strict=True):
        prng = np.random.default_rng(param)
        make, what = _between_op(kind, h, prng, layout)
        if what.startswith("pad(value -0,"):
            rec.exact = False  # the two orders may differ in the sign of a padded zero
        if what.startswith(("fused_batch_norm", "batch_normalization")):
            rec.exact = False  # a multiply-add: fused or not by size
        h = created(make, what)

    # -- pools
    for index, (kind, param) in enumerate(zip(pools, pool_params, strict=True)):
        prng = np.random.default_rng(param)
        make, what, layout_after = _pool_op(kind, h, prng, layout)
        quiet = not any(extras.get(p) for p in range(position + 1))
        out = created(make, what)
        if index == 0 and rule == "flip" and neg_at is not None and chain.fetch_allowed \
                and n_act == 1 and quiet and _shrinks(activated, out):
            # Neg -> data movement -> a reduction that shrinks, in the top-level graph,
            # nothing else reading the path: the rules move it and flip the reduction.
            rec.expected_moves.append(activated.op.name)
            words[-1] += " [Neg must move past it]"
        if isinstance(out, tuple):  # MaxPoolWithArgmax
            h, argmax = out
            if chain.outputs_allowed and prng.random() < 0.5:
                sides.append(argmax)
        else:
            h = out
        layout = layout and layout_after

    for tensor in control_from:
        with tf.control_dependencies([tensor]):
            side = tf.identity(t, name="after_control")
        if chain.outputs_allowed:
            sides.append(side)
    for mean in means:
        h = h + mean
    rec.lines.append(f"{chain.label}: " + " -> ".join(words))
    return h, sides


def _clamp_op(kind: str, h: Any, rng: np.random.Generator) -> tuple[Callable[[], Any], str, int]:
    """A clamp's maker, its words, and how many clamp ops it makes (one or two)."""
    dtype = h.dtype
    shape = _static(h)
    rank = len(shape)

    def const(value: Any) -> Any:
        return tf.constant(np.asarray(value, np.float64).astype(dtype.as_numpy_dtype))

    lo, hi = CLAMP_BOUNDS[rng.integers(len(CLAMP_BOUNDS))]
    if kind == "clip_by_value":  # one ClipByValue op
        return (lambda: tf.raw_ops.ClipByValue(t=h, clip_value_min=const(lo),
                                               clip_value_max=const(hi))), \
            f"ClipByValue(x, {lo:g}, {hi:g})", 1
    if kind == "clip_pair":  # two ops: Minimum then Maximum, or Maximum then Minimum
        if rng.random() < 0.5:
            return (lambda: tf.clip_by_value(h, const(lo), const(hi))), \
                f"tf.clip_by_value(x, {lo:g}, {hi:g}) [Minimum, Maximum]", 2
        return (lambda: tf.minimum(tf.maximum(h, const(lo)), const(hi))), \
            f"minimum(maximum(x, {lo:g}), {hi:g})", 2
    if kind == "clip_channels" and rank >= 2 and shape[-1] is not None:
        channels = shape[-1]
        per_position = rng.random() < 0.3 and None not in shape[1:]
        size = shape[1:] if per_position else [channels]
        low = np.round(rng.uniform(-1.0, 0.5, size), 2)
        high = low + np.round(rng.uniform(0.25, 3.0, size), 2)
        words = "per-position constants" if per_position else \
            np.array2string(low, precision=2, separator=",")
        if rng.random() < 0.5:
            return (lambda: tf.maximum(h, const(low))), f"maximum(x, {words})", 1
        return (lambda: tf.minimum(tf.maximum(h, const(low)), const(high))), \
            f"minimum(maximum(x, {words}), that + [0.25, 3))", 2
    if kind == "clip_dynamic":  # a bound computed from the tensor: refused
        axes = list(range(1, rank))
        if rng.random() < 0.5 and axes:
            return (lambda: tf.minimum(h, tf.reduce_min(h, axis=axes, keepdims=True) +
                                       const(1.0))), \
                "minimum(x, reduce_min(x per sample) + 1) [bound computed at run time]", 1
        return (lambda: tf.raw_ops.ClipByValue(t=h, clip_value_min=tf.reduce_min(h),
                                               clip_value_max=const(3.0))), \
            "ClipByValue(x, reduce_min(x), 3) [bound computed at run time]", 1
    if kind == "clip_nan":  # a NaN bound: refused
        if rng.random() < 0.5:
            return (lambda: tf.maximum(h, const(np.nan))), "maximum(x, nan)", 1
        return (lambda: tf.raw_ops.ClipByValue(t=h, clip_value_min=const(np.nan),
                                               clip_value_max=const(1.0))), \
            "ClipByValue(x, nan, 1)", 1
    # "maximum" (and clip_channels without a static channel count): one bound.
    value = float((0.0, -0.5, 0.5, 1.0)[rng.integers(4)])
    op, name = (tf.minimum, "minimum") if rng.random() < 0.3 else (tf.maximum, "maximum")
    if rng.random() < 0.25:  # the constant first: not a clamp of x for the pass
        return (lambda: op(const(value), h)), f"{name}({value:g}, x) [constant first]", 1
    return (lambda: op(h, const(value))), f"{name}(x, {value:g})", 1


def _shrinks(before: Any, after: Any) -> bool:
    """Whether `after` has fewer elements per sample than `before` (or sizes are unknown)."""
    a, b = _static(before)[1:], _static(after)[1:]
    if None in a or None in b:
        return True
    return int(np.prod(b, dtype=np.int64)) < int(np.prod(a, dtype=np.int64))


def _between_op(kind: str, h: Any, rng: np.random.Generator,
                layout: bool) -> tuple[Callable[[], Any], str]:
    shape = _static(h)
    rank = len(shape)
    if rank == 0:
        return (lambda: tf.identity(h)), "identity"
    spatial_axes = list(range(1, rank - 1)) if layout else []

    def pads(limit: Callable[[int | None], int]) -> list[list[int]]:
        out = [[0, 0] for _ in range(rank)]
        for axis in spatial_axes:
            out[axis] = [int(min(rng.integers(0, 3), limit(shape[axis]))),
                         int(min(rng.integers(0, 3), limit(shape[axis])))]
        if rng.random() < 0.15:
            out[-1] = [0, 1]
        return out

    if kind in ("pad", "pad1", "pad_v2_zero", "pad_value", "pad1_value"):
        if kind.startswith("pad1"):  # 1 on each side of every spatial axis
            paddings = [[1, 1] if a in spatial_axes else [0, 0] for a in range(rank)]
            kind = kind.replace("pad1", "pad")
        else:
            paddings = pads(lambda d: 2)
        if kind == "pad":
            return (lambda: tf.pad(h, paddings)), f"pad(zeros, {paddings})"
        if kind == "pad_v2_zero":
            return (lambda: tf.raw_ops.PadV2(input=h, paddings=paddings,
                                             constant_values=tf.constant(0, h.dtype))), \
                f"PadV2(zeros, {paddings})"
        value = float((-1.0, 0.5, 1.0, 6.0, -np.inf, -0.0)[rng.integers(6)])
        return (lambda: tf.pad(h, paddings, constant_values=value)), \
            f"pad(value {value:g}, {paddings})"
    if kind == "mirror_pad":
        mode = "REFLECT" if rng.random() < 0.5 else "SYMMETRIC"
        if any(shape[a] is None for a in spatial_axes):
            mode = "SYMMETRIC"  # 1 on a side is valid for any size
        limit = (lambda d: max(d - 1, 0)) if mode == "REFLECT" else \
            (lambda d: 1 if d is None else d)
        paddings = pads(limit)
        paddings[-1] = [0, 0]
        return (lambda: tf.pad(h, paddings, mode=mode)), f"mirror_pad({mode}, {paddings})"
    if kind == "transpose" and len(spatial_axes) >= 2:
        a, b = rng.choice(spatial_axes, 2, replace=False)
        perm = list(range(rank))
        perm[a], perm[b] = perm[b], perm[a]
        return (lambda: tf.transpose(h, perm)), f"transpose({perm})"
    if kind in ("reshape_same", "reshape_swap") and all(d is not None for d in shape[1:]):
        target = [-1] + shape[1:]
        if kind == "reshape_swap" and len(spatial_axes) >= 2:
            a, b = spatial_axes[0], spatial_axes[-1]
            target[a], target[b] = target[b], target[a]
        return (lambda: tf.reshape(h, target)), f"reshape({target})"
    if kind == "expand_squeeze":
        axis = int(rng.integers(0, rank + 1))
        return (lambda: tf.squeeze(tf.expand_dims(h, axis), axis)), \
            f"expand_dims+squeeze(axis {axis})"
    if kind == "scale":
        return (lambda: h * tf.constant(2.0, h.dtype)), "multiply by 2"
    if kind == "shift":
        return (lambda: h - tf.constant(0.5, h.dtype)), "subtract 0.5"
    if kind in ("scale_channels", "shift_channels") and shape[-1] is not None:
        values = rng.uniform(0.5, 2.0, shape[-1])
        if kind == "shift_channels":
            values = rng.standard_normal(shape[-1])
        elif rng.random() < 0.25:  # one channel scaled by 0 or a negative number
            values[rng.integers(shape[-1])] = (0.0, -0.5)[rng.integers(2)]
        constant = tf.constant(values, h.dtype)
        words = np.array2string(values, precision=2, separator=",")
        if kind == "scale_channels":
            return (lambda: h * constant), f"multiply channels by {words}"
        if rng.random() < 0.5 and rank >= 2:
            return (lambda: tf.nn.bias_add(h, constant)), f"bias_add {words}"
        return (lambda: h + constant), f"add channels {words}"
    if kind == "batch_norm" and rank == 4 and shape[-1] is not None and \
            h.dtype == tf.float32:
        channels = shape[-1]
        scale = rng.uniform(0.5, 1.5, channels)
        if rng.random() < 0.2:
            scale[rng.integers(channels)] = -0.5
        params = [tf.constant(v, tf.float32) for v in (
            scale, rng.standard_normal(channels), rng.standard_normal(channels) * 0.1,
            rng.uniform(0.5, 1.5, channels))]
        words = np.array2string(scale, precision=2, separator=",")
        if scale[0] < 1.0:  # half the time as Keras traces it: parameters folded from Consts
            return (lambda: tf.nn.batch_normalization(
                h, params[2], params[3], params[1], params[0], 1e-3)), \
                f"batch_normalization(scale {words})"
        return (lambda: tf.compat.v1.nn.fused_batch_norm(
            h, *params[:2], params[2], params[3], is_training=False)[0]), \
            f"fused_batch_norm(scale {words})"
    if kind == "slice" and shape[-1] is not None and shape[-1] > 1:
        return (lambda: h[..., 1:]), "slice channels 1:"
    return (lambda: tf.identity(h)), "identity"


def _pool_op(kind: str, h: Any, rng: np.random.Generator,
             layout: bool) -> tuple[Callable[[], Any], str, bool]:
    """The pool's maker, its words, and whether the layout survives it."""
    shape = _static(h)
    rank = len(shape)
    spatial = rank - 2
    if rank == 0:
        return (lambda: tf.identity(h)), "identity (nothing left to pool)", False
    stem = kind == "stem_pool"
    if stem:
        kind = "max_pool"
    flip = kind.startswith("flip_")  # a reduction that shrinks the tensor, if it can
    if flip:
        kind = kind.replace("flip_", "reduce_")
    if kind in ("max_pool", "max_pool_v2", "max_pool_argmax", "avg_pool") and layout:
        if h.dtype != tf.float32 and spatial == 3:
            kind = "reduce_max" if kind != "avg_pool" else "reduce_mean"
        if kind in ("max_pool_v2", "max_pool_argmax") and spatial != 2:
            kind = "max_pool"
    elif kind not in ("reduce_mean", "reduce_min", "arg"):
        kind = "reduce_max"
    if kind == "arg":
        if rank == 1:
            return (lambda: tf.identity(h)), "identity (only the batch axis left)", False
        axis = int(rng.integers(1, rank))
        name = "argmax" if rng.random() < 0.5 else "argmin"
        index = tf.math.argmax if name == "argmax" else tf.math.argmin
        return (lambda: tf.cast(index(h, axis=axis), h.dtype)), \
            f"{name}(axis {axis}) -> cast to {h.dtype.name}", False
    if kind in ("reduce_max", "reduce_min", "reduce_mean"):
        axes = [int(a) for a in range(rank) if rng.random() < 0.5 and (a > 0 or (
            REDUCE_BATCH_AXIS and rng.random() < 0.2))]
        if not axes and rank == 1:
            return (lambda: tf.identity(h)), "identity (only the batch axis left)", False
        axes = axes or [int(rng.integers(1, rank))]
        if flip and all(shape[a] == 1 for a in axes):
            axes = sorted({*axes, *(a for a in range(1, rank) if shape[a] != 1)})
        keepdims = bool(rng.random() < 0.4)
        op = {"reduce_max": tf.reduce_max, "reduce_min": tf.reduce_min,
              "reduce_mean": tf.reduce_mean}[kind]
        layout_after = keepdims or not axes
        return (lambda: op(h, axis=axes, keepdims=keepdims)), \
            f"{kind}(axes {axes}, keepdims={keepdims})", layout_after
    padding = "VALID" if rng.random() < 0.6 else "SAME"
    dims = shape[1:-1]
    ksize = [int(rng.choice((1, 2, 3), p=(0.2, 0.45, 0.35))) for _ in dims]
    strides = [int(rng.choice((1, 2, 3), p=(0.25, 0.5, 0.25))) for _ in dims]
    if stem:  # after padding: a window of 3 with stride 2, as in ResNet's stem
        padding, ksize, strides = "VALID", [3] * len(dims), [2] * len(dims)
    if padding == "VALID":
        if any(d is None for d in dims):
            padding = "SAME"
        else:
            ksize = [min(k, d) for k, d in zip(ksize, dims, strict=True)]
    args = f"ksize {ksize}, strides {strides}, {padding}"
    if kind == "max_pool":
        return (lambda: tf.nn.max_pool(h, ksize, strides, padding)), f"max_pool({args})", True
    if kind == "avg_pool":
        return (lambda: tf.nn.avg_pool(h, ksize, strides, padding)), f"avg_pool({args})", True
    full_k, full_s = [1, *ksize, 1], [1, *strides, 1]
    if kind == "max_pool_v2":
        return (lambda: tf.raw_ops.MaxPoolV2(input=h, ksize=full_k, strides=full_s,
                                             padding=padding)), f"MaxPoolV2({args})", True
    return (lambda: tuple(tf.nn.max_pool_with_argmax(h, full_k, full_s, padding))), \
        f"max_pool_with_argmax({args})", True


# ---------------------------------------------------------------------------
# The whole graph.


@dataclasses.dataclass(frozen=True)
class _Input:
    name: str
    spec_shape: tuple[int | None, ...]  # as the signature declares it
    shape: tuple[int, ...]  # as fed


def _inputs(rng: np.random.Generator, dtype: tf.DType) -> list[_Input]:
    out = []
    for i in range(int(rng.choice((1, 2), p=(0.75, 0.25)))):
        spatial = int(rng.choice((1, 2, 3), p=(0.25, 0.6, 0.15)))
        if spatial == 3 and dtype != tf.float32:  # no MaxPool3D kernel for other types
            spatial = 2
        batch = int(rng.integers(1, 4))
        low, high = (3, 6) if spatial == 3 else (3, 11)
        dims = [int(rng.integers(low, high)) for _ in range(spatial)]
        channels = int(rng.integers(1, 5))
        shape = (batch, *dims, channels)
        spec: list[int | None] = list(shape)
        if rng.random() < 0.1:
            spec[0] = None
        if spatial == 2 and rng.random() < 0.08:
            spec[1] = spec[2] = None
            shape = (batch, max(dims[0], 8), max(dims[1], 8), channels)
        out.append(_Input(f"x{i}", tuple(spec), shape))
    return out


def graph_case(function: Any, inputs: Sequence[np.ndarray], *, description: str,
               exact: bool, specs: Sequence[tf.TensorSpec] | None = None) -> GraphCase:
    """A `GraphCase` for a given tf.function (for minimized regression tests).

    `specs` default to the static shapes and dtypes of `inputs`, named ``x0``, ...

    Example:

        fn = tf.function(lambda x: tf.nn.max_pool2d(tf.nn.relu(x), 2, 2, "VALID"))
        case = graph_case(fn, [np.ones((1, 4, 4, 1), np.float32)],
                          description="relu -> max_pool", exact=True)
    """
    if specs is None:
        specs = [tf.TensorSpec(x.shape, tf.as_dtype(x.dtype), name=f"x{i}")
                 for i, x in enumerate(inputs)]
    concrete = function.get_concrete_function(*specs)
    graph_def = concrete.graph.as_graph_def()
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    return GraphCase(seed=-1, description=description, function=function, concrete=concrete,
                     inputs=list(inputs), exact=exact,
                     activations=sum(n.op in ACTIVATION_OP_TYPES for n in nodes),
                     extra_fetches=())


def random_graph(seed: int) -> GraphCase:
    """A random tf.function built from `seed` (the same seed gives the same graph).

    Example:

        case = random_graph(3)
        new, report = tf_reorder.reorder_function(case.concrete)
    """
    rng = np.random.default_rng(seed)
    dtype = tf.as_dtype(str(rng.choice(["float32", "float16", "bfloat16", "float64"],
                                       p=(0.76, 0.07, 0.07, 0.1))))
    inputs = _inputs(rng, dtype)
    n_chains = int(rng.choice((1, 2, 3), p=(0.5, 0.35, 0.15)))
    placements = [str(rng.choice(["top", "cond", "switch", "while", "nested", "nested2",
                                  "nested_twice", "cond_nested"],
                                 p=(0.42, 0.15, 0.06, 0.1, 0.1, 0.04, 0.06, 0.07)))
                  for _ in range(n_chains)]
    sources = [float(rng.random()) for _ in range(n_chains)]
    seeds = [[int(s) for s in rng.integers(0, 1 << 31, 3)] for _ in range(n_chains)]
    reuse = [bool(rng.random() < 0.3) for _ in range(n_chains)]
    predicate_sign = [1.0 if rng.random() < 0.5 else -1.0 for _ in range(n_chains)]
    structure = str(rng.choice(["tuple", "dict", "single", "with None"], p=(0.3, 0.3, 0.3, 0.1)))
    feeds = [rng.standard_normal(i.shape).astype(dtype.as_numpy_dtype) for i in inputs]
    rec = _Recorder()

    def graph(*args: Any) -> Any:
        rec.reset()
        available = [(a, f"x{i}") for i, a in enumerate(args)]  # layout-shaped tensors
        mains: list[tuple[Any, bool]] = []  # (chain output, also returned if consumed)
        consumed: set[int] = set()
        outputs: list[Any] = []
        for c in range(n_chains):
            usable = [i for i, (a, _) in enumerate(available) if a is not None]
            index = usable[int(sources[c] * len(usable))]
            t, origin = available[index]
            consumed.add(index)
            if origin.startswith("chain"):  # x / (1 + |x|): no overflow from exp after exp
                t = t / (tf.constant(1, t.dtype) + tf.abs(t))
            shape_seed, flavor_a, flavor_b = seeds[c]
            label = f"chain{c} ({placements[c]}, from {origin})"
            main, sides = _place(placements[c], label, t, args[0], shape_seed, flavor_a,
                                 flavor_b, predicate_sign[c], rec,
                                 zero_free=not origin.startswith("chain"))
            outputs.extend(sides)
            mains.append((main, reuse[c]))
            if main.shape.rank == t.shape.rank:
                available.append((main, f"chain{c}"))
            else:
                available.append((None, ""))
        for c, (main, returned_anyway) in enumerate(mains):
            if len(args) + c not in consumed or returned_anyway:
                outputs.append(main)
        if structure == "dict":
            return {f"out{i}": o for i, o in enumerate(outputs)}
        if structure == "with None":  # a None in the returned structure has no output
            return {"outputs": tuple(outputs), "nothing": None}
        if structure == "single" and len(outputs) == 1:
            return outputs[0]
        return tuple(outputs)

    specs = [tf.TensorSpec(i.spec_shape, dtype, name=i.name) for i in inputs]
    function = tf.function(graph, autograph=False)
    concrete = function.get_concrete_function(*specs)
    head = f"seed {seed}: {dtype.name}, inputs " + ", ".join(
        f"{i.name}{list(i.spec_shape)} fed {list(i.shape)}" for i in inputs)
    return GraphCase(
        seed=seed,
        description="\n".join([head, *rec.lines, f"outputs: {structure}, "
                               f"{len(concrete.outputs)} tensors"]),
        function=function,
        concrete=concrete,
        inputs=feeds,
        exact=rec.exact,
        activations=rec.activations,
        extra_fetches=tuple(rec.fetches),
        expected_moves=tuple(rec.expected_moves),
    )


def _place(placement: str, label: str, t: Any, x0: Any, shape_seed: int, flavor_a: int,
           flavor_b: int, sign: float, rec: _Recorder, *,
           zero_free: bool) -> tuple[Any, list[Any]]:
    """Builds a chain where `placement` says; returns its main output and extra outputs."""
    top = _Chain(label, shape_seed, flavor_a, outputs_allowed=True, fetch_allowed=True,
                 zero_free=zero_free)
    if placement == "top":
        return _build_chain(top, t, rec)
    inner_a = _Chain(label + " A", shape_seed, flavor_a, outputs_allowed=False,
                     fetch_allowed=False, zero_free=zero_free)
    inner_b = _Chain(label + " B", shape_seed, flavor_b, outputs_allowed=False,
                     fetch_allowed=False, zero_free=zero_free)
    if placement in ("cond", "cond_nested"):
        predicate = tf.reduce_sum(tf.cast(x0, tf.float32)) * sign > 0

        def branch(chain: _Chain) -> Callable[[], Any]:
            if placement == "cond":
                return lambda: _build_chain(chain, t, rec)[0]
            nested = tf.function(lambda v: _build_chain(chain, v, rec)[0], autograph=False)
            return lambda: nested(t)
        rec.lines.append(f"{label}: tf.cond(sum(x0) * {sign:g} > 0, A, B)")
        return tf.cond(predicate, branch(inner_a), branch(inner_b)), []
    if placement == "switch":
        inner_c = _Chain(label + " C", shape_seed, flavor_b ^ 0x5A5A5A5, outputs_allowed=False,
                         fetch_allowed=False, zero_free=zero_free)
        total = tf.reduce_sum(tf.cast(x0, tf.float32)) * sign
        index = tf.cast(total > 0, tf.int32) + tf.cast(total > 1, tf.int32)
        rec.lines.append(f"{label}: tf.switch_case((s > 0) + (s > 1), [A, B, C]) "
                         f"for s = sum(x0) * {sign:g}")
        return tf.switch_case(index, [lambda c=c: _build_chain(c, t, rec)[0]
                                      for c in (inner_a, inner_b, inner_c)]), []
    if placement == "while":
        initial, sides = _build_chain(top, t, rec)
        rec.lines.append(f"{label}: the initial value above, then 2 iterations of "
                         "acc += B(input * (i + 1))")

        def body(i: Any, acc: Any) -> tuple[Any, Any]:
            scaled = t * tf.cast(i + 1, t.dtype)
            return i + 1, acc + _build_chain(inner_b, scaled, rec)[0]
        _, total = tf.while_loop(lambda i, acc: i < 2, body, [tf.constant(0), initial])
        return total, sides
    nested_chain = _Chain(label, shape_seed, flavor_a, outputs_allowed=True,
                          fetch_allowed=False, zero_free=zero_free)

    def call(v: Any) -> Any:
        main, sides = _build_chain(nested_chain, v, rec)
        return (main, *sides)
    inner = tf.function(call, autograph=False)
    if placement == "nested2":
        outer = tf.function(lambda v: inner(tf.identity(v)), autograph=False)
        rec.lines.append(f"{label}: inside a tf.function inside a tf.function")
        result = outer(t)
    elif placement == "nested_twice":
        rec.lines.append(f"{label}: a tf.function f called twice, f(input) + f(2 * input)")
        result = inner(t)
        twice = inner(t * tf.constant(2, t.dtype))
        return result[0] + twice[0], list(result[1:])
    else:
        rec.lines.append(f"{label}: inside a tf.function")
        result = inner(t)
    return result[0], list(result[1:])
