"""Differential checks of the Keras pass on one model (the fuzz test and tools/fuzz_soak.py).

`check_model(model, description)` reorders the model for `description.target` and
checks everything the pass promises, each against an oracle of its own:

- outputs: the rewritten model gives the original's outputs on a random batch, as
  close as `expected_bound` says (see there: bitwise for the relu family);
- the input model is untouched: config, weights, and its outputs bitwise;
- same input and output names, structure, shapes and dtypes; stock Keras layers only;
- weights: every weight of the input is in the result bitwise (a moved PReLU's alpha
  may change shape, not bytes), and nothing else;
- report: `plan()` gives the same report, every moved site removes work, and the
  report's `elements_saved` equals an independent count: the activation evaluations
  per sample of the original model minus those of the rewritten one, counted from
  the tensors' shapes by walking both layer graphs (`activation_elements`);
- flips: the rewritten model holds as many max, min, amax and amin reductions as the
  original, except that each one a moved ``keras.ops.negative`` crossed (by the
  report) an odd number of times is of the other kind (`check_flips`): max <-> min,
  amax <-> amin. No activation moved past an argmax or argmin, and a negative moved
  past reductions and data movement only. Every negative the generator says the rules
  must move (`Description.must_move`) moved;
- idempotence: reordering the result moves nothing and gives the same config (the
  JSON of ``get_config()``, layer names included), the same weights in the same
  order, and bitwise the same outputs;
- a `.keras` round trip of the result (no custom objects) loads with the same
  config and gives bitwise the same outputs.

Run as a script to check seeds of `fuzz_keras_models.random_model` under the active
backend, one line each (``OK seed=N ...`` or ``FAIL seed=N: ...``); exits 1 on any
failure:

    KERAS_BACKEND=jax python tests/fuzz_keras_checks.py 0 10 20
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run as a script

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_reorder  # noqa: E402
from tf_reorder import verify  # noqa: E402

import fuzz_keras_models  # noqa: E402
from rewrite_checks import model_fingerprint  # noqa: E402


class FuzzFailure(AssertionError):
    """A check failed; the first line of the message says which and how."""


# ---------------------------------------------------------------------------
# How close the outputs must be.


@dataclasses.dataclass(frozen=True)
class Bound:
    """How the rewritten model's outputs must compare with the original's.

    ``bitwise``: the same bytes. ``equal``: the same numbers (0.0 and -0.0 count as
    equal). ``close``: ``|a - b| <= atol + rtol * |a|`` elementwise. NaN and inf must
    sit at the same places in every case.
    """

    name: str
    rtol: float = 0.0
    atol: float = 0.0
    strength: int = 0  # higher is stricter


BITWISE = Bound("bitwise", strength=3)
EQUAL = Bound("equal", strength=2)
CLOSE = Bound("close", verify.RTOL, verify.ATOL, strength=1)
# float16 (mixed_float16), a looser bound for the non-exact functions: where the two
# orders round an activated element differently, they differ by a float16 ulp (2**-10
# relative, about 1e-3, against 6e-8 in float32), and the float16 layers after it carry
# that on. Outputs are held to rtol = atol = 1e-2: ten float16 ulps at 1.0. (Measured:
# every float16 model of 1100 seeds with a moved transcendental activation gave bitwise
# equal outputs; the relu family stays bitwise in float16 and is held to that.)
CLOSE_FLOAT16 = Bound("close (float16)", 1e-2, 1e-2, strength=0)

# Functions whose two orders agree bit for bit in float32 and float16: they are
# piecewise linear (or clip), so `f` rounds the same way whichever element it sees
# and whichever kernel path runs it; max then picks the same value either way.
BITWISE_FUNCTIONS = frozenset({"relu", "relu6", "leaky_relu", "hard_sigmoid",
                               "sparse_sigmoid", "hard_tanh", "soft_shrink", "hard_shrink"})


# keras.ops nodes, by their operation's class: piecewise linear (or clipping) ones, and
# those that can compute -0.0 from inputs without one.
BITWISE_OPS = frozenset({"Relu", "Relu6", "HardSigmoid", "SparseSigmoid", "HardTanh",
                         "SoftShrink", "HardShrink", "Clip", "Threshold", "Negative"})
NEGATIVE_ZERO_OPS = frozenset({"Silu", "HardSilu", "Gelu", "HardShrink", "Negative"})


def _compute_dtype(operation: Any) -> str:
    """A layer's compute dtype; an op's, the dtype of what it returned."""
    if hasattr(operation, "compute_dtype"):
        return operation.compute_dtype
    return keras.tree.flatten(operation._inbound_nodes[0].outputs)[0].dtype


def bound_for(layer: Any) -> Bound:
    """The bound for moving the activation `layer` applies (our table, not the pass's)."""
    kind = type(layer).__name__
    if kind in ("ReLU", "PReLU") or kind in BITWISE_OPS:
        bound = BITWISE
    elif kind == "LeakyRelu":  # the op: as the layer
        bound = BITWISE if float(layer.negative_slope) != 0 else EQUAL
    elif kind == "Elu":
        bound = EQUAL if float(layer.alpha) == 0 else CLOSE
    elif kind == "LeakyReLU":
        # slope 0 maps negatives to -0.0: a window with 0.0 and a negative value pools
        # to a zero of either sign.
        bound = BITWISE if float(layer.negative_slope) != 0 else EQUAL
    elif kind == "ELU":
        bound = EQUAL if float(layer.alpha) == 0 else CLOSE
    elif hasattr(layer, "activation"):
        name = keras.activations.serialize(layer.activation)
        bound = BITWISE if name in BITWISE_FUNCTIONS else CLOSE
    else:
        bound = CLOSE
    if bound is CLOSE and _compute_dtype(layer) == "float16":
        return CLOSE_FLOAT16
    return bound


def _operations(model: Any) -> list[Any]:
    """A model's layers and keras.ops nodes (a Sequential has only layers)."""
    return list(getattr(model, "operations", None) or model.layers)


def all_layers(model: Any) -> list[Any]:
    """Every layer and operation of `model` and of the models nested in it, each once."""
    seen: dict[int, Any] = {}
    stack = _operations(model)
    while stack:
        layer = stack.pop(0)
        if id(layer) in seen:
            continue
        seen[id(layer)] = layer
        if isinstance(layer, keras.Model):
            stack.extend(_operations(layer))
    return list(seen.values())


# Activations that give -0.0 for some negative inputs (x times a factor that underflows
# to 0, or a zero slope).
NEGATIVE_ZERO_ACTIVATIONS = frozenset({"silu", "hard_silu", "gelu", "mish", "hard_shrink"})


def makes_negative_zeros(layer: Any) -> bool:
    """Whether `layer` can output -0.0 for inputs that hold none."""
    kind = type(layer).__name__
    if kind in NEGATIVE_ZERO_OPS:
        return True
    if kind in ("LeakyReLU", "LeakyRelu"):
        return float(layer.negative_slope) == 0
    if kind == "Elu":
        return float(layer.alpha) == 0
    if kind == "ReLU" and not hasattr(layer, "compute_dtype"):  # keras.activations.relu
        return float(layer.negative_slope) == 0 and float(layer.threshold) != 0
    if kind == "ELU":
        return float(layer.alpha) == 0
    if kind == "PReLU":
        return bool(np.any(keras.ops.convert_to_numpy(layer.alpha) == 0))
    activation = getattr(layer, "activation", None)
    return activation is not None and \
        keras.activations.serialize(activation) in NEGATIVE_ZERO_ACTIVATIONS


def expected_bound(model: Any, report: tf_reorder.Report) -> Bound:
    """The weakest bound over the moved sites (bitwise if nothing moved).

    A site the report calls exact is held to bitwise equality whatever our table says:
    the pass's own claim is checked too, with one exception the README states: where
    the model computes negative zeros (`makes_negative_zeros`), a pool's window may
    hold 0.0 and -0.0, max returns either, and even relu's two orders may differ in
    the sign of a zero (`tests/test_algebra.py::
    test_exact_entries_differ_at_most_in_the_sign_of_zero`), so equal numbers are
    required there.
    """
    layers_ = all_layers(model)
    by_name = {layer.name: layer for layer in layers_}
    exact = EQUAL if any(makes_negative_zeros(layer) for layer in layers_) else BITWISE
    bound = BITWISE
    for site in report.moved:
        layer = by_name[site.activation.split("/")[-1]]
        candidate = exact if site.exact else bound_for(layer)
        if candidate.strength < bound.strength:
            bound = candidate
    return bound


def predict(model: Any, inputs: Any) -> list[np.ndarray]:
    return [np.asarray(keras.ops.convert_to_numpy(y))
            for y in keras.tree.flatten(model(inputs, training=False))]


def compare(a: Sequence[np.ndarray], b: Sequence[np.ndarray], bound: Bound) -> str:
    """Why `b` is not within `bound` of `a` ("" if it is)."""
    if len(a) != len(b):
        return f"{len(a)} outputs vs {len(b)}"
    for i, (x, y) in enumerate(zip(a, b)):
        if x.shape != y.shape or x.dtype != y.dtype:
            return f"output {i}: {x.shape} {x.dtype} vs {y.shape} {y.dtype}"
        if x.tobytes() == y.tobytes():
            continue
        if bound is BITWISE:
            return f"output {i} not bitwise equal (max abs diff {_max_diff(x, y):.3g})"
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        if not np.array_equal(np.isnan(x64), np.isnan(y64)):
            return f"output {i}: NaN at different places"
        finite = np.isfinite(x64) & np.isfinite(y64)
        if not np.array_equal(x64[~finite], y64[~finite], equal_nan=True):
            return f"output {i}: inf at different places"
        d = np.abs(x64[finite] - y64[finite])
        allowed = bound.atol + bound.rtol * np.abs(x64[finite])
        if np.any(d > allowed):
            worst = int(np.argmax(d - allowed))
            return (f"output {i} not within {bound.name} (rtol {bound.rtol:g}, atol "
                    f"{bound.atol:g}): max abs diff {d.max():.3g}, worst "
                    f"{x64[finite][worst]!r} vs {y64[finite][worst]!r}")
    return ""


def _max_diff(x: np.ndarray, y: np.ndarray) -> float:
    with np.errstate(invalid="ignore"):
        d = np.abs(x.astype(np.float64) - y.astype(np.float64))
    return float(np.nanmax(d)) if d.size and not np.all(np.isnan(d)) else float("nan")


# ---------------------------------------------------------------------------
# The independent count of activation evaluations.


# keras.ops / keras.activations nodes that are activations, by their class.
ACTIVATION_OPS = frozenset({
    "Relu", "Relu6", "Sigmoid", "Tanh", "Softplus", "Softsign", "Selu", "HardSigmoid",
    "LogSigmoid", "SparseSigmoid", "HardTanh", "SparsePlus", "TanhShrink", "Silu", "Gelu",
    "HardSilu", "Squareplus", "Exp", "Negative", "LogSoftmax", "Elu", "Celu", "LeakyRelu",
    "SoftShrink", "HardShrink", "Threshold", "Clip"})


def _applies_activation(layer: Any) -> bool:
    """Whether the report counts the layer's elements (a batch normalization too)."""
    if type(layer).__name__ in ("ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax",
                                "BatchNormalization") or \
            type(layer).__name__ in ACTIVATION_OPS:
        return True
    fn = getattr(layer, "activation", None)
    return callable(fn) and fn is not keras.activations.linear


def activation_elements(model: Any) -> int:
    """Activation evaluations per sample: each call of an activating layer counts the
    elements of its output; a nested model counts once per call."""
    total = 0
    inputs = {id(t) for t in model.inputs}
    seen: set[int] = set()
    stack = list(model.outputs)
    while stack:
        tensor = stack.pop()
        if id(tensor) in inputs:
            continue
        operation, node_index, _ = tensor._keras_history
        node = operation._inbound_nodes[node_index]
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(operation, keras.Model):
            total += activation_elements(operation)
        elif _applies_activation(operation):
            total += math.prod(keras.tree.flatten(node.outputs)[0].shape[1:])
        stack.extend(node.input_tensors)
    return total


# ---------------------------------------------------------------------------
# Max and min reductions that a negative flips.

# keras.ops reductions by class name, and what a non-increasing activation makes of them.
FLIPPED_REDUCTIONS = {"Max": "Min", "Min": "Max", "Amax": "Amin", "Amin": "Amax"}
INDEX_OPS = frozenset({"Argmax", "Argmin"})
# Ops a keras.ops.negative may cross: data movement ops and the reductions it flips.
_NEGATIVE_CROSSES = frozenset({"Reshape", "Transpose", "ExpandDims", "Squeeze", "GetItem",
                               "Slice", "Identity", "Flatten", "Permute", "Cropping1D",
                               "Cropping2D", "Cropping3D", "Dropout", "SpatialDropout1D",
                               "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                               "GaussianDropout", "AlphaDropout", "ActivityRegularization",
                               *FLIPPED_REDUCTIONS})


def reduction_counts(model: Any) -> dict[str, int]:
    """How many max, min, amax and amin ops `model` (and the models in it) holds."""
    counts = dict.fromkeys(FLIPPED_REDUCTIONS, 0)
    for layer in all_layers(model):
        kind = type(layer).__name__
        if kind in counts:
            counts[kind] += 1
    return counts


def check_flips(model: Any, new: Any, report: tf_reorder.Report) -> None:
    """The reductions of `new` are those of `model`, each one a moved negative crossed
    an odd number of times flipped (max <-> min); nothing moved past an index, and a
    negative only past data movement and reductions."""
    by_name = {layer.name: layer for layer in all_layers(model)}
    crossings: dict[str, int] = {}
    for site in report.moved:
        crossed = [name.split("/")[-1] for name in (*site.between, site.pool)]
        kinds = [type(by_name[n]).__name__ if n in by_name else "?" for n in crossed]
        if any(k in INDEX_OPS for k in kinds):
            _fail(f"'{site.activation}' moved past an index: {list(zip(crossed, kinds))}",
                  str(report))
        activation = by_name.get(site.activation.split("/")[-1])
        if type(activation).__name__ != "Negative":
            continue
        if any(k not in _NEGATIVE_CROSSES for k in kinds) or \
                kinds[-1] not in FLIPPED_REDUCTIONS:
            _fail(f"the negative '{site.activation}' moved past {list(zip(crossed, kinds))}: "
                  "a non-increasing activation lands after a max or min reduction only",
                  str(report))
        for name, kind in zip(crossed, kinds):
            if kind in FLIPPED_REDUCTIONS:
                crossings[name] = crossings.get(name, 0) + 1
    expected = reduction_counts(model)
    for name, times in crossings.items():
        if times % 2:
            kind = type(by_name[name]).__name__
            expected[kind] -= 1
            expected[FLIPPED_REDUCTIONS[kind]] += 1
    found = reduction_counts(new)
    if found != expected:
        _fail(f"reductions: the rewritten model holds {found}; the original "
              f"{reduction_counts(model)} with what moved negatives crossed flipped "
              f"({sorted(crossings.items())}) is {expected}", str(report))


# ---------------------------------------------------------------------------
# The checks.


def _fail(message: str, detail: str = "") -> None:
    raise FuzzFailure(message + (f"\n{detail}" if detail else ""))


def config_json(model: Any) -> str:
    """The model's config as canonical JSON: what "the same config" means here."""
    return json.dumps(model.get_config(), sort_keys=True, default=str)


def weight_bytes(model: Any) -> list[bytes]:
    """The model's weights, in order, as bytes."""
    return [np.asarray(keras.ops.convert_to_numpy(w)).tobytes() for w in model.weights]


def _names(tensors: Sequence[Any]) -> list[str]:
    return [t._keras_history.operation.name for t in tensors]


def _structure(model: Any, attribute: str) -> Any:
    """The nesting and shapes of a model's inputs or outputs ("input" / "output")."""
    if isinstance(model, keras.Sequential):  # no .input / .output: one of each
        structure = getattr(model, attribute + "s")
    else:
        structure = getattr(model, attribute)
    return keras.tree.map_structure(lambda t: tuple(t.shape), structure)


def check_pair(model: Any, new: Any, report: tf_reorder.Report, inputs: Any,
               expected: Sequence[np.ndarray]) -> tuple[Bound, list[np.ndarray]]:
    """The checks on one rewrite that need no second pass.

    `expected` are the original model's outputs on `inputs`. Returns the bound the
    outputs were held to and the rewritten model's outputs.
    """
    bound = expected_bound(model, report)
    outputs = predict(new, inputs)
    problem = compare(expected, outputs, bound)
    if problem:
        _fail(f"outputs differ: {problem}", str(report))

    if _names(new.inputs) != _names(model.inputs) or _names(new.outputs) != _names(model.outputs):
        _fail("input or output names changed",
              f"{_names(model.inputs)} -> {_names(new.inputs)}; "
              f"{_names(model.outputs)} -> {_names(new.outputs)}")
    for attribute in ("input", "output"):
        if _structure(new, attribute) != _structure(model, attribute):
            _fail(f"{attribute} structure or shapes changed")
    if [t.dtype for t in new.outputs] != [t.dtype for t in model.outputs]:
        _fail("output dtypes changed")
    if new.name != model.name:
        _fail(f"model name changed: {model.name} -> {new.name}")

    original = {id(layer) for layer in all_layers(model)}
    for layer in all_layers(new):
        if id(layer) not in original and not type(layer).__module__.startswith("keras."):
            _fail(f"the result holds a non-Keras layer {type(layer).__name__}")

    before = sorted((w.dtype, w.tobytes()) for w in map(np.asarray, model.get_weights()))
    after = sorted((w.dtype, w.tobytes()) for w in map(np.asarray, new.get_weights()))
    if before != after:
        _fail(f"weights differ: {len(before)} arrays before, {len(after)} after")

    saved = activation_elements(model) - activation_elements(new)
    if saved != report.elements_saved:
        _fail(f"elements saved: the report says {report.elements_saved}, the models' "
              f"shapes say {saved}", str(report))
    for site in report.moved:
        if site.elements_saved <= 0:
            _fail(f"site '{site.activation}' moved without removing work", str(report))
    check_flips(model, new, report)
    return bound, outputs


def check_model(model: Any, description: Any, tmp_dir: str | None = None) -> str:
    """Reorders `model` and runs every check; returns a one-line summary.

    Raises `FuzzFailure` (or whatever the pass raised) on a failure.

    Example:

        model, description = fuzz_keras_models.random_model(7)
        print(check_model(model, description))
    """
    target = description.target
    inputs = verify.random_inputs(model, batch=2, seed=description.seed)
    fingerprint = model_fingerprint(model)
    expected = predict(model, inputs)

    inference = description.inference
    new, report = tf_reorder.reorder(model, return_report=True, target=target,
                                     inference=inference)

    if model_fingerprint(model) != fingerprint:
        _fail("the input model's config or weights changed")
    if compare(expected, predict(model, inputs), BITWISE):
        _fail("the input model computes something else after reorder()")
    if tf_reorder.plan(model, target=target, inference=inference) != report:
        _fail("plan() and reorder() disagree", str(report))
    moved = {site.activation.split("/")[-1] for site in report.moved}
    kept = [name for name in getattr(description, "must_move", ()) if name not in moved]
    if kept:
        reasons = {site.activation.split("/")[-1]: site.reason for site in report.sites}
        _fail("the rules move " + ", ".join(
            f"'{n}' ({reasons.get(n, 'no site in the report')})" for n in kept) +
            ", but the pass kept it", str(report))
    bound, outputs = check_pair(model, new, report, inputs, expected)

    twice, second = tf_reorder.reorder(new, return_report=True, target=target,
                                       inference=inference)
    if second.moved:
        _fail(f"not idempotent: the second pass moved {len(second.moved)} more", str(second))
    if config_json(twice) != config_json(new):
        _fail("not idempotent: the second pass changed the config")
    if weight_bytes(twice) != weight_bytes(new):
        _fail("not idempotent: the second pass changed the weights")
    problem = compare(outputs, predict(twice, inputs), BITWISE)
    if problem:
        _fail(f"not idempotent: {problem}")

    with tempfile.TemporaryDirectory(dir=tmp_dir) as directory:
        path = os.path.join(directory, "model.keras")
        new.save(path)
        loaded = keras.saving.load_model(path, compile=False)
    if config_json(loaded) != config_json(new):
        _fail(".keras round trip changed the config")
    problem = compare(outputs, predict(loaded, inputs), BITWISE)
    if problem:
        _fail(f".keras round trip: {problem}")

    diff = max((_max_diff(a, b) for a, b in zip(expected, outputs)), default=0.0)
    return (f"moved={len(report.moved)}/{len(report.sites)} saved={report.elements_saved} "
            f"bound={bound.name} max_abs_diff={diff:.3g}")


def check_seed(seed: int, tmp_dir: str | None = None) -> str:
    """Builds `random_model(seed)` and checks it; raises on a failure.

    Example:

        check_seed(12)   # 'moved=2/3 saved=312 bound=bitwise'
    """
    model, description = fuzz_keras_models.random_model(seed)
    try:
        return check_model(model, description, tmp_dir)
    except Exception as error:
        error.add_note(str(description))
        raise


def one_line(error: BaseException) -> str:
    """The first line of an error, with its type."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def main(argv: Sequence[str]) -> int:
    print(f"backend {keras.backend.backend()}, keras {keras.__version__}", flush=True)
    failures = 0
    for arg in argv:
        seed = int(arg)
        try:
            summary = check_seed(seed)
        except Exception as error:  # report every seed, then fail
            failures += 1
            print(f"FAIL seed={seed}: {one_line(error)}", flush=True)
            traceback.print_exc(file=sys.stderr)
        else:
            print(f"OK seed={seed} {summary}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
