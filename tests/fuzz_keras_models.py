"""A seeded random Keras model generator, for differential tests of the Keras pass.

`random_model(seed)` returns ``(model, description)`` and is a pure function of the
seed: the same seed gives the same layers, names, shapes and weights, in any process
and on any Keras backend (weights come from NumPy, not from Keras' initializers).
It works in two steps, usable on their own:

- `random_spec(seed)` draws a `Spec`: plain data (layer classes, constructor
  arguments, which call feeds which), no Keras graph and no weights. Shapes are
  tracked with each layer's own ``compute_output_shape``. Cheap: the coverage test
  draws hundreds of them.
- `build(spec)` makes the Keras model and gives it seeded random weights.

What the models hold (see `ALL_ACTIVATIONS`, `PRODUCERS`, `POOLS`): Sequential and
functional models, models nested one or two deep (Sequential or functional, called
once or twice, returning an activation that an outer pool follows); Conv1D/2D/3D,
Depthwise, Separable and Transpose convolutions, Dense and EinsumDense with a fused
activation; Activation layers with every activation Keras exports; ReLU, LeakyReLU,
ELU and PReLU with random parameters of either sign; Softmax; keras.ops and
keras.activations nodes in functional graphs (`OP_ACTIVATIONS`: every activation op,
with random parameters; `OP_STEPS`: reshape, transpose, expand_dims/squeeze, slicing,
max/amax/min/amin/mean over axes, max_pool/average_pool, argmax/argmin); keras.ops.negative
(or clip, or another op) through data movement into max and min reductions
(`motif_reduction`: negative moves and flips them; where the rules must move it,
`Spec.must_move` names it), and activations into an argmax or argmin whose int32
index is a model output of its own (`motif_index`); max, average, global
and adaptive pools (channels_last, and channels_first between two Permutes);
ZeroPadding, Cropping, Reshape, Flatten, Permute and Identity between them;
BatchNormalization, UpSampling and the layers that are the identity at inference
(Dropout, SpatialDropout1D/2D/3D, GaussianNoise, GaussianDropout, AlphaDropout,
ActivityRegularization) as other layers; activations with a second
consumer or returned as outputs; layers shared by two calls; one to three inputs and
one to four outputs (single, list or dict); float32 or a ``mixed_float16`` dtype
policy (passed per layer: no global state is touched), sometimes with a float32
layer inside; a runtime `target` and, for 40% of the seeds, ``inference=True`` for the
pass.

Example (also from a script: this module imports nothing from pytest):

    from fuzz_keras_models import random_model
    model, description = random_model(17)
    print(description)      # the model as Keras-like code, one call per line
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import random
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

# ---------------------------------------------------------------------------
# What the generator draws from.


def keras_activation_names() -> list[str]:
    """Every activation Keras exports that takes one argument (new ones are included).

    Left out: functions with another required argument (``threshold(x, threshold,
    default_value)`` in Keras 3.15), which no ``activation=`` string can call.
    """
    names = []
    for name in sorted(dir(keras.activations)):
        if name.startswith("_") or name in ("get", "serialize", "deserialize"):
            continue
        fn = getattr(keras.activations, name)
        if not callable(fn):
            continue
        try:
            if keras.activations.get(name) is None:
                continue
        except (ValueError, TypeError):
            continue
        params = list(inspect.signature(fn).parameters.values())[1:]
        if any(p.default is inspect.Parameter.empty and p.kind in (
                inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
               for p in params):
            continue
        names.append(name)
    return names


ALL_ACTIVATIONS: list[str] = keras_activation_names()
# Activations that change the shape: glu halves the last axis (which must be even).
# Keras 3.15 gets the symbolic shape wrong (a layer with activation="glu" reports the
# full last axis and computes half), so a layer after it may be built for the wrong
# size: the generator uses these only as the last layer of an output (`glu_tail`).
HALVING = {"glu"}

# Producers that take `activation=`, by spatial rank (0: a vector).
PRODUCERS: dict[int, list[str]] = {
    0: ["Dense", "EinsumDense"],
    1: ["Conv1D", "DepthwiseConv1D", "SeparableConv1D", "Conv1DTranspose", "Dense",
        "EinsumDense"],
    2: ["Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Dense",
        "EinsumDense"],
    3: ["Conv3D", "Conv3DTranspose", "Dense"],
}
POOLS: dict[int, list[str]] = {
    r: [f"{kind}{r}D" for kind in ("MaxPooling", "GlobalMaxPooling", "AdaptiveMaxPooling",
                                   "AveragePooling", "GlobalAveragePooling",
                                   "AdaptiveAveragePooling")]
    for r in (1, 2, 3)
}
ACTIVATION_LAYERS = ["Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax"]
# keras.ops / keras.activations nodes (functional graphs only: a Sequential holds layers),
# by the name the generator gives them; each is the operation's class with explicit
# arguments and name, so a seed builds the same config every time.
OP_ACTIVATIONS = ["relu", "relu6", "sigmoid", "tanh", "softplus", "softsign", "selu",
                  "hard_sigmoid", "log_sigmoid", "sparse_sigmoid", "hard_tanh", "sparse_plus",
                  "tanh_shrink", "silu", "gelu", "hard_silu", "squareplus", "exp", "negative",
                  "softmax", "log_softmax", "elu", "celu", "leaky_relu", "soft_shrink",
                  "hard_shrink", "threshold", "clip", "activations.relu"]
OP_STEPS = ["reshape", "transpose", "expand_dims", "squeeze", "getitem", "max", "amax",
            "min", "amin", "mean", "max_pool", "average_pool", "argmax", "argmin"]
# Reductions a non-increasing activation (keras.ops.negative) moves past, flipping each
# (max <-> min, amax <-> amin), and an index no activation moves past.
EXTREMUM_REDUCTIONS = ["max", "amax", "min", "amin"]
INDEX_OPS = ["argmax", "argmin"]


def op_class(name: str) -> type:
    """The operation class behind an op name of `OP_ACTIVATIONS` or `OP_STEPS`."""
    from keras.src.activations import activations  # pylint: disable=g-import-not-at-top
    from keras.src.ops import nn, numpy as np_ops  # pylint: disable=g-import-not-at-top

    if name == "activations.relu":
        return activations.ReLU
    special = {"tanh": np_ops.Tanh, "exp": np_ops.Exp, "negative": np_ops.Negative,
               "clip": np_ops.Clip, "reshape": np_ops.Reshape, "transpose": np_ops.Transpose,
               "expand_dims": np_ops.ExpandDims, "squeeze": np_ops.Squeeze,
               "getitem": np_ops.GetItem, "max": np_ops.Max, "amax": np_ops.Amax,
               "min": np_ops.Min, "amin": np_ops.Amin, "argmax": np_ops.Argmax,
               "argmin": np_ops.Argmin, "mean": np_ops.Mean, "relu6": nn.Relu6, "max_pool": nn.MaxPool,
               "average_pool": nn.AveragePool}
    if name in special:
        return special[name]
    return getattr(nn, "".join(part.capitalize() for part in name.split("_")))


def crashes_onednn(cls: str, kwargs: dict[str, Any]) -> bool:
    """Whether this layer kills TensorFlow 2.21 with oneDNN on (SIGFPE) on some CPUs.

    Keras' AdaptiveMaxPooling with an output size of 1 on the last spatial axis does,
    before tf_reorder does anything
    (tests/regressions/test_keras_adaptive_max_pool_onednn_crash.py covers that shape
    instead). The generator never draws it, so a seed is the same model on every machine.
    """
    if not cls.startswith("AdaptiveMaxPooling"):
        return False
    size = kwargs["output_size"]
    return (size[-1] if isinstance(size, tuple) else size) == 1


TARGETS = ["keras", "tf", "xla", "tflite", "onnx", "jax", "all"]
MAX_ELEMENTS = 2048  # per sample, per tensor: keeps every model small and fast

# ---------------------------------------------------------------------------
# The spec: plain data.


@dataclasses.dataclass
class Layer:
    """One layer object: ``getattr(keras.layers, cls)(**kwargs)``, or a nested model."""

    cls: str  # a keras.layers class, or "op:NAME" for a keras.ops node (`op_class`)
    kwargs: dict[str, Any]
    sub: "Graph | None" = None  # the nested model, when cls is "Sequential"/"Functional"
    # PReLU: "positive", "zero", "mixed" or "negative" alphas; BatchNormalization: its
    # gamma ("mixed": one channel < 0, "zero": one channel 0).
    alpha: str = ""
    call_args: tuple[Any, ...] = ()  # an op's arguments after the tensor (getitem: the key)

    @property
    def op(self) -> str:
        """The op name of a keras.ops node ("" for a layer)."""
        return self.cls[3:] if self.cls.startswith("op:") else ""

    @property
    def name(self) -> str:
        return self.sub.name if self.sub is not None else self.kwargs["name"]


@dataclasses.dataclass
class Call:
    """One call of `Graph.layers[layer]` on tensors `inputs` (a list for merge layers)."""

    layer: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    as_list: bool = False


@dataclasses.dataclass
class Graph:
    """One (nested) model: its tensors are integers, their per-sample shapes in `shapes`."""

    name: str
    sequential: bool
    inputs: list[int] = dataclasses.field(default_factory=list)
    input_names: list[str] = dataclasses.field(default_factory=list)
    layers: list[Layer] = dataclasses.field(default_factory=list)
    calls: list[Call] = dataclasses.field(default_factory=list)
    outputs: list[int] = dataclasses.field(default_factory=list)
    inputs_as: str = "list"  # "single", "list" or "dict"
    outputs_as: str = "list"
    side_outputs: bool = False  # motifs may add model outputs (functional, not nested in a
    # Sequential)
    shapes: dict[int, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    dtypes: dict[int, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Spec:
    """A whole random model: the root graph and what the generator chose."""

    seed: int
    root: Graph
    mixed: bool  # layers use the mixed_float16 dtype policy
    target: str  # the runtime target to reorder for
    features: set[str] = dataclasses.field(default_factory=set)
    inference: bool = False  # reorder for inference only
    # Activations (op names) the rules must move: a keras.ops.negative right before a
    # max or min reduction that shrinks, in the root model, for target "any".
    must_move: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Description:
    """What `random_model` built, for messages and for choosing how to check it."""

    seed: int
    text: str  # the model as Keras-like code
    features: frozenset[str]
    mixed: bool
    target: str
    inference: bool = False
    must_move: tuple[str, ...] = ()  # see `Spec.must_move`

    def __str__(self) -> str:
        return self.text


# ---------------------------------------------------------------------------
# Drawing a spec.


class _Drawer:
    """Draws one spec; every choice comes from one `random.Random(seed)`."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.counter = 0
        self.tensors = 0
        self.features: set[str] = set()
        self.mixed = False
        self.max_rank = 3  # TF has no float16 kernels for 3D pools on CPU: 2 when mixed
        self.target = "any"
        self.root: Graph | None = None
        self.must_move: list[str] = []

    # -- bookkeeping -----------------------------------------------------------

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}_{self.counter}"

    def new_tensor(self, g: Graph, shape: tuple[int, ...], dtype: str) -> int:
        self.tensors += 1
        g.shapes[self.tensors] = tuple(int(d) for d in shape)
        g.dtypes[self.tensors] = dtype
        return self.tensors

    def input(self, g: Graph, shape: tuple[int, ...], dtype: str = "float32") -> int:
        t = self.new_tensor(g, shape, dtype)
        g.inputs.append(t)
        g.input_names.append(self.fresh(f"{g.name}_in"))
        return t

    def dtype_kwargs(self) -> dict[str, Any]:
        if not self.mixed:
            return {}
        if self.rng.random() < 0.04:
            self.features.add("float32_in_mixed")
            return {"dtype": "float32"}
        return {"dtype": "mixed_float16"}

    def add_layer(self, g: Graph, cls: str, kwargs: dict[str, Any], **extra: Any) -> int:
        if cls.startswith("op:"):  # an operation has no dtype policy
            base = "op_" + cls[3:].replace(".", "_")
            kwargs = {"name": self.fresh(base), **kwargs}
        else:
            dtype = self.dtype_kwargs()
            if cls.startswith("SpatialDropout"):
                # Keras 3.15's SpatialDropout get_config writes "float32" for any dtype
                # policy, so a mixed one would not survive the .keras round trip.
                dtype = {}
            kwargs = {"name": self.fresh(cls.lower()), **kwargs, **dtype}
        g.layers.append(Layer(cls, kwargs, **extra))
        self.features.add(cls if cls.startswith("op:") else f"layer:{cls}")
        if isinstance(kwargs.get("activation"), str):
            self.features.add(f"act:{kwargs['activation']}")
        return len(g.layers) - 1

    def call(self, g: Graph, layer: int, *inputs: int, as_list: bool = False) -> int:
        """Calls layer `layer` of `g` on `inputs`; returns the (first) output tensor."""
        spec = g.layers[layer]
        in_shapes = [g.shapes[t] for t in inputs]
        if spec.sub is not None:
            out_shapes = [spec.sub.shapes[t] for t in spec.sub.outputs]
            out_dtypes = [spec.sub.dtypes[t] for t in spec.sub.outputs]
        elif spec.op:
            out_shapes = [_output_shape(spec, in_shapes, as_list)]
            # An op computes in its input's dtype; an index is an int32.
            out_dtypes = ["int32" if spec.op in INDEX_OPS else g.dtypes[inputs[0]]]
        else:
            out_shapes = [_output_shape(spec, in_shapes, as_list)]
            out_dtypes = ["float32" if spec.kwargs.get("dtype", "float32") == "float32"
                          else "float16"]
        outs = tuple(self.new_tensor(g, s, d) for s, d in zip(out_shapes, out_dtypes))
        g.calls.append(Call(layer, tuple(inputs), outs, as_list))
        if sum(1 for c in g.calls if c.layer == layer) == 2:
            self.features.add("shared_layer" if spec.sub is None else "nested_twice")
        return outs[0]

    def layer(self, g: Graph, t: int, cls: str, **kwargs: Any) -> int:
        """A new layer called once on `t`."""
        return self.call(g, self.add_layer(g, cls, kwargs), t)

    def op(self, g: Graph, t: int, name: str, *call_args: Any, **kwargs: Any) -> int:
        """A keras.ops node on `t`."""
        return self.call(g, self.add_layer(g, f"op:{name}", kwargs, call_args=call_args), t)

    def ops_allowed(self, g: Graph) -> bool:
        return not g.sequential and self.rng.random() < 0.25

    def pick(self, options: list[tuple[float, Any]]) -> Any:
        total = sum(w for w, _ in options)
        x = self.rng.random() * total
        for w, value in options:
            x -= w
            if x < 0:
                return value
        return options[-1][1]

    # -- single layers -------------------------------------------------------------

    def activation_name(self) -> str:
        while True:
            name = self.rng.choice(ALL_ACTIVATIONS)
            if name not in HALVING:
                return name

    def producer(self, g: Graph, t: int, activation: str | None = "random") -> int:
        shape = g.shapes[t]
        rank = len(shape) - 1
        cls = self.rng.choice(PRODUCERS[rank])
        units = self.rng.randint(2, 6)
        if activation == "random":
            activation = self.activation_name() if self.rng.random() < 0.9 else None
        if activation in HALVING:
            units += units % 2
        kwargs: dict[str, Any] = {} if activation is None else {"activation": activation}
        spatial = shape[:-1]
        small = min(spatial) if spatial else 0
        if cls == "Dense":
            kwargs["units"] = units
        elif cls == "EinsumDense":
            letters = "bcdef"[:rank]
            kwargs.update(equation=f"a{letters}x,xy->a{letters}y",
                          output_shape=(*spatial, units), bias_axes="y")
        else:
            k = self.rng.randint(1, 3)
            padding = self.rng.choice(["valid", "same"])
            if padding == "valid" and k > small:
                padding = "same"
            strides = 2 if self.rng.random() < 0.2 and small >= 4 else 1
            if cls.endswith("Transpose"):
                if math.prod(spatial) * 8 > MAX_ELEMENTS:
                    strides = 1
                kwargs.update(filters=units)
            elif cls.startswith("Depthwise"):
                kwargs.update(depth_multiplier=self.rng.randint(1, 2))
            else:
                kwargs.update(filters=units)
                if cls.startswith("Separable"):
                    kwargs.update(depth_multiplier=self.rng.randint(1, 2))
            kwargs.update(kernel_size=k, strides=strides, padding=padding)
            if strides == 1 and k > 1 and not cls.endswith("Transpose") \
                    and self.rng.random() < 0.1 and (padding == "same" or small >= 2 * k - 1):
                kwargs["dilation_rate"] = 2
        if cls.startswith("Depthwise") and activation in HALVING:
            kwargs["depth_multiplier"] = 2
        return self.layer(g, t, cls, **kwargs)

    def activation_layer(self, g: Graph, t: int) -> int:
        shape = g.shapes[t]
        cls = self.pick([(50, "Activation"), (12, "ReLU"), (12, "LeakyReLU"), (10, "ELU"),
                         (12, "PReLU"), (4, "Softmax")])
        if cls == "Activation":
            return self.layer(g, t, cls, activation=self.activation_name())
        if cls == "Softmax":
            return self.layer(g, t, cls, axis=self.rng.choice(range(-len(shape), 0)))
        if cls == "PReLU":
            rank = len(shape)
            shared = self.pick([(3, "spatial"), (2, None), (2, "random"), (1, "all")])
            if shared == "spatial":
                axes = list(range(1, rank)) or None
            elif shared == "random":
                axes = sorted(a for a in range(1, rank + 1) if self.rng.random() < 0.5) or None
            elif shared == "all":
                axes = list(range(1, rank + 1))
            else:
                axes = None
            alpha = self.pick([(4, "positive"), (1, "zero"), (3, "mixed"), (2, "negative")])
            self.features.add(f"prelu_alpha:{alpha}")
            return self.call(g, self.add_layer(g, cls, {"shared_axes": axes}, alpha=alpha), t)
        kwargs = self.constructible(cls, self.parameters_of(cls))
        return self.layer(g, t, cls, **kwargs)

    def parameters_of(self, cls: str) -> Callable[[], dict[str, Any]]:
        rng = self.rng

        def signed(low: float, high: float, zero: float = 0.2) -> float:
            return 0.0 if rng.random() < zero else round(rng.uniform(low, high), 3)

        if cls == "ReLU":
            def draw() -> dict[str, Any]:
                kwargs: dict[str, Any] = {}
                if rng.random() < 0.5:
                    kwargs["max_value"] = signed(-1.0, 6.0, 0.05)
                if rng.random() < 0.5:
                    kwargs["negative_slope"] = signed(-0.5, 0.5)
                if rng.random() < 0.5:
                    kwargs["threshold"] = signed(-1.0, 1.0)
                return kwargs
        elif cls == "LeakyReLU":
            def draw() -> dict[str, Any]:
                return {"negative_slope": signed(-1.0, 1.0, 0.1)}
        else:  # ELU
            def draw() -> dict[str, Any]:
                return {"alpha": signed(-2.0, 2.0, 0.1)}
        return draw

    def constructible(self, cls: str, draw: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Draws parameters until Keras accepts them (it refuses some negative ones)."""
        for _ in range(50):
            kwargs = draw()
            try:
                getattr(layers, cls)(**kwargs)
            except ValueError:
                self.features.add(f"refused_by_keras:{cls}")
                continue
            for key, value in kwargs.items():
                if isinstance(value, float) and value < 0:
                    self.features.add(f"negative:{cls}.{key}")
            return kwargs
        return {}

    def op_activation(self, g: Graph, t: int) -> int:
        """An activation as a keras.ops (or keras.activations) node, with its arguments."""
        rng = self.rng
        name = rng.choice(OP_ACTIVATIONS)

        def signed(low: float, high: float, zero: float = 0.2) -> float:
            return 0.0 if rng.random() < zero else round(rng.uniform(low, high), 3)

        kwargs: dict[str, Any] = {}
        if name == "elu":
            kwargs = {"alpha": signed(-2.0, 2.0, 0.1)}
        elif name == "celu":
            kwargs = {"alpha": round(rng.uniform(0.1, 2.0), 3)}
        elif name == "leaky_relu":
            kwargs = {"negative_slope": signed(-1.0, 1.0, 0.1)}
        elif name in ("soft_shrink", "hard_shrink"):
            kwargs = {"threshold": round(rng.uniform(0.0, 1.0), 3)}
        elif name == "threshold":
            kwargs = {"threshold": signed(-1.0, 1.0), "default_value": signed(-1.0, 1.0)}
        elif name == "clip":
            low = signed(-2.0, 1.0)
            kwargs = {"x_min": low, "x_max": round(low + rng.uniform(0.0, 6.0), 3)}
        elif name == "activations.relu":
            kwargs = {"negative_slope": signed(-0.5, 0.5), "threshold": signed(-1.0, 1.0),
                      "max_value": signed(-1.0, 6.0, 0.05) if rng.random() < 0.5 else None}
        elif name == "gelu":
            kwargs = {"approximate": rng.random() < 0.5}
        elif name == "squareplus":
            kwargs = {"b": round(rng.uniform(0.0, 8.0), 2)}
        elif name in ("softmax", "log_softmax"):
            kwargs = {"axis": rng.choice(range(-len(g.shapes[t]), 0))}
        return self.op(g, t, name, **kwargs)

    def op_between(self, g: Graph, t: int) -> int:
        """Data movement as keras.ops nodes (a spatial tensor stays spatial)."""
        shape = g.shapes[t]
        rank = len(shape)  # axes per sample
        options = [(2, "reshape"), (2, "transpose"), (1, "expand_squeeze")]
        long_axes = [a for a, d in enumerate(shape[:-1]) if d >= 3]
        if long_axes:
            options.append((2, "getitem"))
        kind = self.pick(options)
        if kind == "reshape":
            return self.op(g, t, "reshape", newshape=(-1, *self.reshape_target(shape)))
        if kind == "transpose":
            order = list(range(1, rank + 1))
            while order == list(range(1, rank + 1)) and rank > 1:
                self.rng.shuffle(order)
            return self.op(g, t, "transpose", axes=(0, *order))
        if kind == "expand_squeeze":
            axis = self.rng.randint(1, rank)
            return self.op(g, self.op(g, t, "expand_dims", axis=axis), "squeeze", axis=axis)
        axis = self.rng.choice(long_axes)
        d = shape[axis]
        key = (*(slice(None),) * (axis + 1), slice(self.rng.randint(0, 1), d - self.rng.randint(0, 1)))
        return self.op(g, t, "getitem", key)

    def op_pool(self, g: Graph, t: int) -> int:
        """A max (or mean) as a keras.ops node: over axes, or over windows."""
        shape = g.shapes[t]
        rank = len(shape)
        kind = self.pick([(3, "max"), (1, "amax"), (1, "min"), (0.5, "amin"), (3, "max_pool"),
                          (1, "mean"), (1, "average_pool")])
        if kind in ("max", "amax", "min", "amin", "mean"):
            axes = sorted(a for a in range(1, rank + 1) if self.rng.random() < 0.5) or [1]
            keepdims = self.rng.random() < 0.4
            if len(axes) == rank and not keepdims:
                axes = axes[:-1] or axes  # keep an axis per sample (the channels)
                keepdims = keepdims or len(axes) == rank
            return self.op(g, t, kind, axis=tuple(axes), keepdims=keepdims)
        spatial = shape[:-1]
        p = self.rng.randint(1, 3)
        strides = self.rng.randint(1, 2)  # given: Keras 3.15's JAX max_pool fails without
        if p == 1 and strides == 1:
            p = 2
        padding = "same" if p > min(spatial) else self.rng.choice(["valid", "same"])
        return self.op(g, t, kind, pool_size=p, strides=strides, padding=padding,
                       data_format="channels_last")

    def between(self, g: Graph, t: int) -> int:
        """A data movement or padding layer that keeps a spatial tensor spatial."""
        shape = g.shapes[t]
        rank = len(shape) - 1
        if rank == 0:
            return self.layer(g, t, "Reshape", target_shape=(shape[0], 1))
        if self.ops_allowed(g):
            return self.op_between(g, t)
        spatial, channels = shape[:-1], shape[-1]
        options: list[tuple[float, str]] = [(3, "pad"), (1, "identity"), (2, "reshape"),
                                            (1, "flatten"), (2, "permute")]
        if max(spatial) >= 3:
            options.append((3, "crop"))
        kind = self.pick(options)
        if kind == "pad" and math.prod(d + 4 for d in spatial) * channels <= MAX_ELEMENTS:
            pads = [(self.rng.randint(0, 2), self.rng.randint(1, 2)) for _ in spatial]
            arg: Any = pads[0] if rank == 1 else tuple(pads)
            if self.rng.random() < 0.4:
                arg = self.rng.randint(1, 2)
            return self.layer(g, t, f"ZeroPadding{rank}D", padding=arg)
        if kind == "crop":
            crops = []
            for d in spatial:
                a = self.rng.randint(0, max(0, (d - 1) // 2))
                b = self.rng.randint(0, max(0, (d - 1 - 2 * a) // 2)) if d - 2 * a > 1 else 0
                crops.append((a, b))
            arg = crops[0] if rank == 1 else tuple(crops)
            return self.layer(g, t, f"Cropping{rank}D", cropping=arg)
        if kind == "reshape":
            return self.layer(g, t, "Reshape", target_shape=self.reshape_target(shape))
        if kind == "flatten":
            flat = self.layer(g, t, "Flatten")
            n = g.shapes[flat][0]
            c = channels if n % channels == 0 else 1
            return self.layer(g, flat, "Reshape", target_shape=(n // c, c))
        if kind == "permute":
            order = list(range(1, rank + 2))
            while order == list(range(1, rank + 2)) and rank >= 1:
                self.rng.shuffle(order)
            return self.layer(g, t, "Permute", dims=tuple(order))
        return self.layer(g, t, "Identity")

    def reshape_target(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        spatial, channels = list(shape[:-1]), shape[-1]
        n = math.prod(shape)
        options = [tuple(reversed(spatial)) + (channels,)]
        if len(spatial) >= 2:
            options.append((spatial[0] * spatial[1], *spatial[2:], channels))
        if len(spatial) < self.max_rank and spatial[0] % 2 == 0 and spatial[0] > 2:
            options.append((spatial[0] // 2, 2, *spatial[1:], channels))
        options.append((n // channels, channels))
        options.append((n, 1))
        return tuple(self.rng.choice(options))

    def pool(self, g: Graph, t: int, *, kind: str | None = None) -> int:
        shape = g.shapes[t]
        rank = len(shape) - 1
        spatial = shape[:-1]
        if kind is None and self.ops_allowed(g):
            return self.op_pool(g, t)
        if kind is None:
            kind = self.pick([(5, "Max"), (3, "GlobalMax"), (2, "AdaptiveMax"), (2, "Average"),
                              (1.5, "GlobalAverage"), (1, "AdaptiveAverage")])
        if kind == "AdaptiveMax" and spatial[-1] == 1:
            kind = "GlobalMax"  # its only output size there is 1: see `crashes_onednn`
        channels_first = rank >= 1 and self.rng.random() < 0.1 and kind in (
            "Max", "GlobalMax", "AdaptiveMax")
        kwargs: dict[str, Any] = {}
        if kind in ("Max", "Average"):
            cls = f"{kind}Pooling{rank}D"
            p = self.rng.randint(1, 3)
            padding = self.rng.choice(["valid", "same"])
            if p > min(spatial):
                padding = "same"
            strides = self.pick([(3, None), (1, 1), (1, 2), (1, 3)])
            if p == 1 and strides in (None, 1):
                p = 2
                padding = "same" if 2 > min(spatial) else padding
            kwargs.update(pool_size=p, strides=strides, padding=padding)
        elif kind in ("GlobalMax", "GlobalAverage"):
            cls = f"{kind}Pooling{rank}D"
            kwargs["keepdims"] = self.rng.random() < 0.4
        else:
            cls = f"{kind}Pooling{rank}D"
            sizes = [self.rng.randint(1, d) for d in spatial]
            if kind == "AdaptiveMax" and sizes[-1] == 1:
                sizes[-1] = self.rng.randint(2, spatial[-1])  # see `crashes_onednn`
            kwargs["output_size"] = tuple(sizes) if rank > 1 else sizes[0]
        if not channels_first:
            return self.layer(g, t, cls, **kwargs)
        self.features.add("channels_first")
        to_first = (rank + 1, *range(1, rank + 1))
        x = self.layer(g, t, "Permute", dims=to_first)
        x = self.layer(g, x, cls, data_format="channels_first", **kwargs)
        if len(g.shapes[x]) == 1:
            return x
        return self.layer(g, x, "Permute", dims=(*range(2, rank + 2), 1))

    def other(self, g: Graph, t: int) -> int:
        shape = g.shapes[t]
        rank = len(shape) - 1
        options = [(2, "BatchNormalization"), (2, "inference identity")]
        if rank >= 1 and math.prod(shape) * 2 ** rank <= MAX_ELEMENTS:
            options.append((1, "UpSampling"))
        kind = self.pick(options)
        if kind == "UpSampling":
            return self.layer(g, t, f"UpSampling{rank}D", size=2)
        if kind == "inference identity":
            return self.inference_identity(g, t, rank)
        return self.batch_norm(g, t, rank)

    def batch_norm(self, g: Graph, t: int, rank: int) -> int:
        """A BatchNormalization: per-channel scales > 0 mostly, one of them <= 0 now and
        then; frozen, on another axis, without center or scale now and then."""
        rng = self.rng
        kwargs: dict[str, Any] = {}
        for flag in ("center", "scale"):
            if rng.random() < 0.15:
                kwargs[flag] = False
                self.features.add(f"bn_no_{flag}")
        if rank >= 1 and rng.random() < 0.15:
            kwargs["axis"] = rng.randint(1, rank)  # a spatial axis (of the batched tensor)
            self.features.add("bn_spatial_axis")
        if rng.random() < 0.2:
            kwargs["trainable"] = False
            self.features.add("bn_frozen")
        gamma = self.pick([(8, "positive"), (1, "mixed"), (1, "zero")])
        self.features.add(f"bn_gamma:{gamma}")
        return self.call(g, self.add_layer(g, "BatchNormalization", kwargs, alpha=gamma), t)

    def inference_identity(self, g: Graph, t: int, rank: int) -> int:
        """A layer that is the identity at inference (dropout, noise)."""
        kinds = ["Dropout", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                 "ActivityRegularization"]
        if 1 <= rank <= 3:
            kinds.append(f"SpatialDropout{rank}D")
        cls = self.rng.choice(kinds)
        if cls == "GaussianNoise":
            return self.layer(g, t, cls, stddev=0.1)
        if cls == "ActivityRegularization":
            return self.layer(g, t, cls, l1=0.01)
        return self.layer(g, t, cls, rate=0.3)

    def act(self, g: Graph, t: int) -> int:
        """An activation: fused into a producer, a standalone layer, or an ops node."""
        if self.ops_allowed(g):
            return self.op_activation(g, t)
        if self.rng.random() < 0.55:
            return self.producer(g, t, activation=self.activation_name())
        return self.activation_layer(g, t)

    def glu_tail(self, g: Graph, t: int) -> int:
        """A shape-changing activation as the last layer of an output (see `HALVING`)."""
        name = self.rng.choice(sorted(HALVING))
        if self.rng.random() < 0.5 and g.shapes[t][-1] % 2 == 0:
            x = self.layer(g, t, "Activation", activation=name)
        else:
            x = self.producer(g, t, activation=name)
        if len(g.shapes[x]) > 1 and self.rng.random() < 0.6:
            kind = self.rng.choice(["Max", "GlobalMax"])
            cls = f"{kind}Pooling{len(g.shapes[x]) - 1}D"
            kwargs = {"padding": "same"} if kind == "Max" else {}
            x = self.layer(g, x, cls, **kwargs)
        return x

    def shrink(self, g: Graph, t: int) -> int:
        """Halves the tensor with 2x2 max pools until it is small enough to keep going."""
        for _ in range(8):
            shape = g.shapes[t]
            if math.prod(shape) <= MAX_ELEMENTS // 2 or len(shape) == 1 or max(shape[:-1]) < 2:
                break
            t = self.layer(g, t, f"MaxPooling{len(shape) - 1}D", pool_size=2, padding="same")
        return t

    # -- motifs ------------------------------------------------------------------

    def chain(self, g: Graph, t: int, steps: int, depth: int) -> int:
        for _ in range(steps):
            t = self.shrink(g, t)
            rank = len(g.shapes[t]) - 1
            options: list[tuple[float, str]] = [(3, "producer"), (2, "activation")]
            if rank >= 1:
                options += [(8, "site"), (2, "between"), (2, "pool"), (1, "other")]
            else:
                options += [(2, "to_sequence"), (1, "other")]
            if not g.sequential:
                options += [(2, "second_consumer"), (1.5, "shared"), (1, "branches")]
                if rank >= 1:  # keras.ops nodes: functional graphs only
                    options += [(1.2, "reduction"), (0.4 if g.side_outputs else 0, "index")]
            if depth < 2:
                options.append((1.5, "nested"))
            motif = self.pick(options)
            t = getattr(self, f"motif_{motif}")(g, t, depth)
        return t

    def motif_producer(self, g: Graph, t: int, depth: int) -> int:
        return self.producer(g, t)

    def motif_activation(self, g: Graph, t: int, depth: int) -> int:
        return self.activation_layer(g, t)

    def motif_between(self, g: Graph, t: int, depth: int) -> int:
        return self.between(g, t)

    def motif_pool(self, g: Graph, t: int, depth: int) -> int:
        return self.pool(g, t)

    def motif_other(self, g: Graph, t: int, depth: int) -> int:
        return self.other(g, t)

    def motif_to_sequence(self, g: Graph, t: int, depth: int) -> int:
        return self.between(g, t)  # a vector becomes a sequence of one channel

    def motif_site(self, g: Graph, t: int, depth: int) -> int:
        """activation -> (data movement)* -> pool (-> more pools); a batch normalization or
        a layer that is the identity at inference, after the activation or instead of it,
        now and then."""
        rng = self.rng
        rank = len(g.shapes[t]) - 1
        if rank >= 1 and rng.random() < 0.12:
            x = self.batch_norm(g, self.producer(g, t, activation=None), rank)
        else:
            x = self.act(g, t)
            rank = len(g.shapes[x]) - 1
            if rank >= 1 and rng.random() < 0.2:
                x = self.batch_norm(g, x, rank) if rng.random() < 0.6 else \
                    self.inference_identity(g, x, rank)
        for _ in range(self.pick([(5, 0), (3, 1), (1, 2)])):
            if len(g.shapes[x]) > 1:
                x = self.between(g, x)
        if len(g.shapes[x]) > 1:
            x = self.pool(g, x)
        while len(g.shapes[x]) > 1 and min(g.shapes[x][:-1]) >= 2 and self.rng.random() < 0.2:
            x = self.pool(g, x, kind=self.rng.choice(["Max", "GlobalMax"]))
        return x

    def motif_reduction(self, g: Graph, t: int, depth: int) -> int:
        """keras.ops.negative (or a clip, or another activation op) -> data movement ops?
        -> a max or min reduction over axes (-> another one, now and then). Negative
        moves past each reduction and flips it (max(-x) == -min(x)); clip moves like
        relu, past a min as past a max."""
        rng = self.rng
        if rng.random() < 0.4:
            t = self.producer(g, t, activation=None)
        kind = self.pick([(6, "negative"), (2.5, "clip"), (2.5, "op")])
        if kind == "clip":
            low = 0.0 if rng.random() < 0.3 else round(rng.uniform(-2.0, 1.0), 3)
            x = self.op(g, t, "clip", x_min=low, x_max=round(low + rng.uniform(0.1, 4.0), 3))
            self.features.add("clip_reduction")
        elif kind == "op":
            x = self.op_activation(g, t)
        else:
            x = self.op(g, t, "negative")
            self.features.add("negative_reduction")
        activation = self.root is g and self.target == "any" and kind == "negative"
        activation_name = g.layers[-1].name
        before = math.prod(g.shapes[x])
        if rng.random() < 0.4 and len(g.shapes[x]) > 1:
            x = self.op_between(g, x)
        x = self.reduction(g, x)
        if activation and math.prod(g.shapes[x]) < before:
            self.must_move.append(activation_name)
            self.features.add("negative_must_move")
        if len(g.shapes[x]) > 1 and rng.random() < 0.3:
            x = self.reduction(g, x)
        return x

    def reduction(self, g: Graph, t: int) -> int:
        """keras.ops max, amax, min or amin over non-batch axes, which shrink the tensor
        where they can (some axis of size > 1)."""
        shape = g.shapes[t]
        rank = len(shape)
        kind = self.pick([(3, "max"), (1, "amax"), (3, "min"), (1, "amin")])
        axes = sorted(a for a in range(1, rank + 1) if self.rng.random() < 0.5) or \
            [self.rng.randint(1, rank)]
        if all(shape[a - 1] == 1 for a in axes):
            axes = sorted({*axes, *(a for a in range(1, rank + 1) if shape[a - 1] > 1)})
        keepdims = self.rng.random() < 0.4
        if len(axes) == rank and not keepdims:
            keepdims = True  # keep an axis per sample
        return self.op(g, t, kind, axis=tuple(axes), keepdims=keepdims)

    def motif_index(self, g: Graph, t: int, depth: int) -> int:
        """An activation (negative now and then) -> data movement ops? -> argmax or argmin:
        the activation reaches the index and is refused. The int32 index is a model output
        of its own; the chain goes on from `t`."""
        rng = self.rng
        kind = self.pick([(3, "negative"), (6, "op"), (3, "any")])
        x = self.op(g, t, "negative") if kind == "negative" else \
            self.op_activation(g, t) if kind == "op" else self.act(g, t)
        if rng.random() < 0.3 and len(g.shapes[x]) > 1:
            x = self.op_between(g, x)
        rank = len(g.shapes[x])
        if rank == 0:
            return t
        index = self.op(g, x, rng.choice(INDEX_OPS), axis=rng.randint(1, rank),
                        keepdims=rng.random() < 0.3)
        self.features.add("index_output")
        g.outputs.append(index)
        return t

    def motif_second_consumer(self, g: Graph, t: int, depth: int) -> int:
        """An activation (or a tensor between it and the pool) with another consumer."""
        x = self.act(g, t)
        side = x
        if self.rng.random() < 0.3 and len(g.shapes[x]) > 1:
            x = side = self.between(g, x)
        if len(g.shapes[x]) > 1:
            x = self.pool(g, x)
        if g.side_outputs and self.rng.random() < 0.5:
            self.features.add("activation_output")
            g.outputs.append(side)
            return x
        self.features.add("second_consumer")
        other = self.rng.choice(["Identity", "Flatten", "producer"])
        side = self.producer(g, side) if other == "producer" else self.layer(g, side, other)
        if g.side_outputs and self.rng.random() < 0.6:
            g.outputs.append(side)
            return x
        return self.merge(g, [x, side])

    def motif_shared(self, g: Graph, t: int, depth: int) -> int:
        """One layer (with an activation) called on two tensors of the same shape."""
        u = self.layer(g, t, self.rng.choice(["Identity", "BatchNormalization"]))
        layer = len(g.layers)
        a = self.act(g, t)
        assert len(g.layers) == layer + 1
        b = self.call(g, layer, u)
        branches = []
        for x in (a, b):
            if len(g.shapes[x]) > 1:
                x = self.pool(g, x)
            branches.append(x)
        if g.side_outputs and self.rng.random() < 0.4:
            g.outputs.append(branches[1])
            return branches[0]
        return self.merge(g, branches)

    def motif_branches(self, g: Graph, t: int, depth: int) -> int:
        """Two chains from one tensor, merged."""
        ends = [self.chain(g, t, self.rng.randint(1, 2), depth) for _ in range(2)]
        return self.merge(g, ends)

    def merge(self, g: Graph, ends: list[int]) -> int:
        shapes = [g.shapes[e] for e in ends]
        if all(s == shapes[0] for s in shapes) and self.rng.random() < 0.5:
            return self.call(g, self.add_layer(g, "Add", {}), *ends, as_list=True)
        if all(s[:-1] == shapes[0][:-1] for s in shapes):
            return self.call(g, self.add_layer(g, "Concatenate", {"axis": -1}), *ends,
                             as_list=True)
        flat = [e if len(g.shapes[e]) == 1 else self.layer(g, e, "Flatten") for e in ends]
        return self.call(g, self.add_layer(g, "Concatenate", {"axis": -1}), *flat,
                         as_list=True)

    def motif_nested(self, g: Graph, t: int, depth: int) -> int:
        """A chain wrapped in a nested model, often ending in an activation."""
        sequential = self.rng.random() < 0.5
        sub = Graph(self.fresh("nested_seq" if sequential else "nested"), sequential,
                    side_outputs=g.side_outputs and not sequential)
        self.features.add("nested_sequential" if sequential else "nested_functional")
        if depth >= 1:
            self.features.add("nested_two_deep")
        x = self.input(sub, g.shapes[t], g.dtypes[t])
        x = self.chain(sub, x, self.rng.randint(1, 2), depth + 1)
        ends_in_activation = self.rng.random() < 0.5
        if ends_in_activation:
            x = self.act(sub, self.shrink(sub, x))
        sub.outputs = [x, *sub.outputs]
        if sub.side_outputs and self.rng.random() < 0.15:
            self.features.add("nested_returns_twice")
            sub.outputs.append(x)
        sub.outputs_as = "single" if len(sub.outputs) == 1 else "list"
        layer = len(g.layers)
        g.layers.append(Layer("Sequential" if sequential else "Functional", {}, sub=sub))
        y = self.call(g, layer, t)
        g.outputs.extend(g.calls[-1].outputs[1:])
        if not g.sequential and self.rng.random() < 0.25:
            z = self.call(g, layer, self.layer(g, t, "Identity"))
            g.outputs.extend(g.calls[-1].outputs[1:])
            if g.side_outputs:
                g.outputs.append(z)
            else:
                y = self.call(g, self.add_layer(g, "Add", {}), y, z, as_list=True)
        if ends_in_activation and len(g.shapes[y]) > 1 and self.rng.random() < 0.8:
            self.features.add("nested_boundary")
            y = self.pool(g, y, kind=self.pick([(4, "Max"), (3, "GlobalMax"), (1, "Average")]))
        return y

    # -- the whole model ------------------------------------------------------------

    def input_shape(self) -> tuple[int, ...]:
        rank = self.pick([(3, 1), (5, 2), (2, 3)][:self.max_rank])
        channels = self.rng.randint(1, 4)
        if rank == 1:
            return (self.rng.randint(6, 20), channels)
        if rank == 2:
            return (self.rng.randint(5, 10), self.rng.randint(5, 10), channels)
        return (self.rng.randint(3, 6), self.rng.randint(3, 6), self.rng.randint(3, 6),
                self.rng.randint(1, 2))

    def spec(self) -> Spec:
        rng = self.rng
        self.mixed = rng.random() < 0.15
        if self.mixed:
            self.features.add("mixed_float16")
            self.max_rank = 2
        target = rng.choice(TARGETS) if rng.random() < 0.15 else "any"
        self.features.add(f"target:{target}")
        self.target = target
        sequential = rng.random() < 0.3
        root = Graph(f"fuzz_{self.seed}", sequential, side_outputs=not sequential)
        self.root = root
        self.features.add("sequential" if sequential else "functional")
        n_inputs = 1 if sequential else self.pick([(6, 1), (3, 2), (1, 3)])
        ends = []
        for _ in range(n_inputs):
            x = self.input(root, self.input_shape())
            ends.append(self.chain(root, x, rng.randint(1, 4), depth=0))
        if n_inputs > 1 and rng.random() < 0.5:
            ends = [self.merge(root, ends)]
        if rng.random() < 0.4:  # a head after the last tensor
            ends[0] = self.producer(root, ends[0])
        if rng.random() < 0.1:
            ends[0] = self.glu_tail(root, ends[0])
        if self.mixed and rng.random() < 0.5:
            self.mixed = False  # the customary float32 output cast
            ends[0] = self.layer(root, ends[0], "Activation", activation="linear",
                                 dtype="float32")
            self.mixed = True
        root.outputs = ends + root.outputs
        if n_inputs > 1:
            self.features.add("multi_input")
            root.inputs_as = rng.choice(["list", "dict"])
        else:
            root.inputs_as = rng.choice(["single", "list"])
        if len(root.outputs) > 1:
            self.features.add("multi_output")
            root.outputs_as = rng.choice(["list", "dict"])
        else:
            root.outputs_as = rng.choice(["single", "list"])
        self.features.add(f"inputs_as:{root.inputs_as}")
        self.features.add(f"outputs_as:{root.outputs_as}")
        inference = rng.random() < 0.4
        self.features.add(f"inference:{inference}")
        return Spec(self.seed, root, self.mixed, target, self.features, inference,
                    tuple(self.must_move))


def _output_shape(spec: Layer, in_shapes: list[tuple[int, ...]],
                  as_list: bool) -> tuple[int, ...]:
    """The per-sample output shape of a layer call, from the layer's own rules."""
    if spec.op:
        out = _make_layer(spec).compute_output_spec(keras.KerasTensor((2, *in_shapes[0])),
                                                    *spec.call_args)
        return tuple(int(d) for d in out.shape[1:])
    kwargs = {k: v for k, v in spec.kwargs.items() if k != "dtype"}
    layer = getattr(layers, spec.cls)(**kwargs)
    batched = [(2, *s) for s in in_shapes]
    out = layer.compute_output_shape(batched if as_list else batched[0])
    shape = tuple(out[1:])
    activation = spec.kwargs.get("activation")
    if activation in HALVING:
        shape = (*shape[:-1], shape[-1] // 2)
    return shape


def random_spec(seed: int) -> Spec:
    """The model `seed` stands for, as plain data (builds no Keras graph).

    Example:

        spec = random_spec(3)
        sorted(f for f in spec.features if f.startswith("act:"))
    """
    return _Drawer(seed).spec()


# ---------------------------------------------------------------------------
# Building.


def build(spec: Spec) -> Any:
    """The Keras model of `spec`, with weights drawn from NumPy seeded by `spec.seed`.

    Example:

        model = build(random_spec(3))
    """
    model = _build_graph(spec.root)
    rng = np.random.default_rng(spec.seed)
    for layer_spec, layer in _layer_pairs(spec.root, model):
        _set_weights(layer_spec, layer, rng)
    return model


def _build_graph(g: Graph) -> Any:
    objects = [_make_layer(spec) for spec in g.layers]
    inputs = [keras.Input(g.shapes[t], dtype=g.dtypes[t], name=name)
              for t, name in zip(g.inputs, g.input_names)]
    if g.sequential:
        return keras.Sequential([inputs[0], *(objects[c.layer] for c in g.calls)], name=g.name)
    tensors = dict(zip(g.inputs, inputs))
    for c in g.calls:
        args = [tensors[t] for t in c.inputs]
        if g.layers[c.layer].op:
            out = objects[c.layer](args[0], *g.layers[c.layer].call_args)
        else:
            out = objects[c.layer](args if c.as_list else args[0])
        for t, value in zip(c.outputs, keras.tree.flatten(out)):
            tensors[t] = value
    ins: Any = inputs
    if g.inputs_as == "single":
        ins = inputs[0]
    elif g.inputs_as == "dict":
        ins = dict(zip(g.input_names, inputs))
    outs: Any = [tensors[t] for t in g.outputs]
    if g.outputs_as == "single":
        outs = outs[0]
    elif g.outputs_as == "dict":
        outs = {f"out_{i}": o for i, o in enumerate(outs)}
    return keras.Model(ins, outs, name=g.name)


def _make_layer(spec: Layer) -> Any:
    if spec.sub is not None:
        return _build_graph(spec.sub)
    if spec.op:
        return op_class(spec.op)(**spec.kwargs)
    return getattr(layers, spec.cls)(**spec.kwargs)


def _layer_pairs(g: Graph, model: Any) -> list[tuple[Layer, Any]]:
    """(spec, built layer) for every layer of every graph, in spec order."""
    pairs = []
    for spec in g.layers:
        if spec.op:
            continue  # an operation has no weights
        layer = model.get_layer(spec.name)
        if spec.sub is not None:
            pairs.extend(_layer_pairs(spec.sub, layer))
        else:
            pairs.append((spec, layer))
    return pairs


def _set_weights(spec: Layer, layer: Any, rng: np.random.Generator) -> None:
    for weight in layer.weights:
        shape = tuple(weight.shape)
        name = weight.name
        if name == "alpha":
            low, high = {"positive": (0.0, 1.0), "zero": (0.0, 0.0), "mixed": (-1.0, 1.0),
                         "negative": (-1.0, 0.0)}[spec.alpha or "positive"]
            value = rng.uniform(low, high, shape)
        elif name == "gamma" and spec.alpha in ("mixed", "zero"):
            value = rng.uniform(0.5, 1.5, shape)  # one channel <= 0
            value[rng.integers(shape[0])] = 0.0 if spec.alpha == "zero" else -0.5
        elif name in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name in ("beta", "moving_mean", "bias"):
            value = rng.normal(0.0, 0.3, shape)
        else:  # kernels: keep activations of order one
            fan_in = math.prod(shape[:-1]) if len(shape) > 1 else 1
            value = rng.normal(0.0, 1.0 / math.sqrt(max(fan_in, 1)), shape)
        weight.assign(value.astype(weight.dtype))


# ---------------------------------------------------------------------------
# Describing.


def describe(spec: Spec) -> str:
    """The spec as Keras-like code, one layer call per line."""
    head = (f"# seed {spec.seed}: {'mixed_float16' if spec.mixed else 'float32'}, "
            f"target={spec.target!r}, inference={spec.inference}")
    return "\n".join([head, *_describe_graph(spec.root, "")])


def _describe_graph(g: Graph, indent: str) -> list[str]:
    kind = "Sequential" if g.sequential else "Model"
    lines = [f"{indent}{g.name} = {kind}(  # inputs as {g.inputs_as}, outputs as {g.outputs_as}"]
    inner = indent + "    "
    for t, name in zip(g.inputs, g.input_names):
        lines.append(f"{inner}t{t} = Input({g.shapes[t]}, dtype={g.dtypes[t]!r}, name={name!r})")
    described: set[int] = set()
    for c in g.calls:
        spec = g.layers[c.layer]
        if spec.sub is not None and c.layer not in described:
            lines.extend(_describe_graph(spec.sub, inner))
        described.add(c.layer)
        args = ", ".join(f"t{t}" for t in c.inputs)
        args = f"[{args}]" if c.as_list else args
        args += "".join(f", {a!r}" for a in spec.call_args)
        outs = ", ".join(f"t{t}" for t in c.outputs)
        shapes = ", ".join(str(g.shapes[t]) for t in c.outputs)
        if spec.sub is not None:
            made = spec.sub.name
        else:
            params = ", ".join(f"{k}={v!r}" for k, v in spec.kwargs.items())
            extra = f", alpha~{spec.alpha}" if spec.alpha else ""
            made = f"{spec.cls}({params}{extra})"
        lines.append(f"{inner}{outs} = {made}({args})  # {shapes}")
    lines.append(f"{inner}outputs: {', '.join(f't{t}' for t in g.outputs)}")
    lines.append(f"{indent})")
    return lines


def model_of(spec: Spec) -> tuple[Any, Description]:
    """`build(spec)` and its `Description`."""
    return build(spec), Description(spec.seed, describe(spec), frozenset(spec.features),
                                    spec.mixed, spec.target, spec.inference, spec.must_move)


def random_model(seed: int) -> tuple[Any, Description]:
    """A random Keras model with seeded weights, and what it is.

    A pure function of `seed`: calling it twice gives two models with the same
    config and weights.

    Example:

        model, description = random_model(5)
        tf_reorder.reorder(model, target=description.target,
                           inference=description.inference)
    """
    return model_of(random_spec(seed))
