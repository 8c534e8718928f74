"""Hand-built models reordered under whatever Keras backend is active; no pytest needed.

The Keras pass is pure Keras, so it must work with any backend. Run:

    KERAS_BACKEND=jax python tests/jax_cases.py
    KERAS_BACKEND=tensorflow python tests/jax_cases.py

For each case it builds the model, reorders it, checks the number of moved
sites, compares the outputs (bitwise for relu / leaky relu / PReLU, rtol 1e-6
otherwise), saves the result as ``.keras`` in a temp dir, loads it back with no
custom objects, and checks the loaded model gives the reordered model's outputs
bitwise. It prints one line per case, ``OK <name> ...`` or ``FAIL <name>: ...``,
and exits non-zero if any case failed. If ``KERAS_BACKEND`` is set, the active
backend must be that one.

Importing this module builds nothing: `CASES` lists the cases by name.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

# Runs as a script from anywhere: the package is installed, but be safe.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tf_reorder  # noqa: E402
from tf_reorder import verify  # noqa: E402


# -- the models ---------------------------------------------------------------
# Each builder returns (model, expected moved sites, exact: bitwise expected).


def sequential_chain() -> tuple[Any, int, bool]:
    """relu moves after the first pool; tanh (tanh(0) == 0) crosses ZeroPadding2D,
    the second pool and the global max pool."""
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        layers.Conv2D(8, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(8, 3, activation="tanh"),
        layers.ZeroPadding2D(1),
        layers.MaxPooling2D(),
        layers.GlobalMaxPooling2D(),
    ], name="sequential_chain")
    return model, 2, False


def shared_conv_two_calls() -> tuple[Any, int, bool]:
    """One Conv2D(relu) called twice: before a max pool (moves) and an average pool (kept)."""
    conv = layers.Conv2D(4, 3, activation="relu", name="shared_conv")
    a = keras.Input((12, 12, 3), name="a")
    b = keras.Input((12, 12, 3), name="b")
    x = layers.MaxPooling2D(name="max")(conv(a))
    y = layers.AveragePooling2D(2, name="avg")(conv(b))
    out = layers.Concatenate(name="concat")([layers.Flatten()(x), layers.Flatten()(y)])
    return keras.Model([a, b], out, name="shared_conv_two_calls"), 1, True


def shared_output_two_pools() -> tuple[Any, int, bool]:
    """One Conv2D(relu) output feeding a max pool and an average pool: refused."""
    inp = keras.Input((12, 12, 3))
    h = layers.Conv2D(4, 3, activation="relu")(inp)
    x = layers.GlobalMaxPooling2D()(h)
    y = layers.GlobalAveragePooling2D()(h)
    out = layers.Add()([x, y])
    return keras.Model(inp, out, name="shared_output_two_pools"), 0, True


def text_cnn() -> tuple[Any, int, bool]:
    """Two Conv1D(sigmoid) -> GlobalMaxPooling1D branches over one embedding, concatenated."""
    tokens = keras.Input((40,), dtype="int32", name="tokens")
    emb = layers.Embedding(50, 8)(tokens)
    branches = [layers.GlobalMaxPooling1D()(layers.Conv1D(6, k, activation="sigmoid")(emb))
                for k in (3, 5)]
    x = layers.Concatenate()(branches)
    out = layers.Dense(2, name="logits")(x)
    return keras.Model(tokens, out, name="text_cnn"), 2, False


def nested_sequential() -> tuple[Any, int, bool]:
    """A Sequential inside a functional model: one move inside it, one across its
    boundary (its last relu follows the outer pool), one in the outer model."""
    inner = keras.Sequential([
        keras.Input((16, 16, 3)),
        layers.Conv2D(4, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(4, 3, activation="relu"),
    ], name="inner")
    inp = keras.Input((16, 16, 3), name="image")
    x = inner(inp)
    x = layers.MaxPooling2D(name="outer_pool")(x)
    x = layers.Conv2D(4, 1, activation="elu")(x)
    x = layers.GlobalMaxPooling2D()(x)
    out = layers.Dense(3, name="head")(x)
    return keras.Model(inp, out, name="nested_sequential"), 3, False


def leaky_relu() -> tuple[Any, int, bool]:
    model = keras.Sequential([
        keras.Input((12, 12, 3)),
        layers.Conv2D(4, 3),
        layers.LeakyReLU(negative_slope=0.2),
        layers.MaxPooling2D(),
        layers.Flatten(),
    ], name="leaky_relu")
    return model, 1, True


def prelu_shared_axes() -> tuple[Any, int, bool]:
    """PReLU with one alpha per channel (shared over height and width): moves."""
    inp = keras.Input((12, 12, 3))
    x = layers.Conv2D(4, 3)(inp)
    x = layers.PReLU(shared_axes=[1, 2], name="prelu")(x)
    out = layers.MaxPooling2D(name="pool")(x)
    model = keras.Model(inp, out, name="prelu_shared_axes")
    # Distinct non-negative alphas per channel (the default initializer gives zeros).
    model.get_layer("prelu").alpha.assign(np.array([0.1, 0.2, 0.3, 0.5], "float32")
                                          .reshape(1, 1, 4))
    return model, 1, True


def prelu_per_position() -> tuple[Any, int, bool]:
    """The default PReLU has one alpha per position: a window mixes functions, refused."""
    model = keras.Sequential([
        keras.Input((12, 12, 3)),
        layers.Conv2D(4, 3),
        layers.PReLU(),
        layers.MaxPooling2D(),
    ], name="prelu_per_position")
    return model, 0, True


def ops_nodes() -> tuple[Any, int, bool]:
    """keras.ops and keras.activations nodes: sigmoid -> max over axes, relu(max_value) ->
    transpose -> max_pool, leaky_relu -> MaxPooling2D; all three move."""
    ops = keras.ops
    inp = keras.Input((12, 12, 3))
    a = ops.max(ops.sigmoid(layers.Conv2D(4, 3)(inp)), axis=(1, 2))
    # (strides given: Keras 3.15's JAX max_pool fails with strides=None, before any rewrite)
    b = ops.max_pool(ops.transpose(keras.activations.relu(layers.Conv2D(4, 3)(inp),
                                                          max_value=6.0), (0, 2, 1, 3)),
                     2, strides=2)
    c = layers.MaxPooling2D()(ops.leaky_relu(layers.Conv2D(4, 3)(inp), 0.1))
    return keras.Model(inp, [a, b, c], name="ops_nodes"), 3, False


def min_and_flip() -> tuple[Any, int, bool]:
    """Grappler's family: relu -> min over axes, negative -> max over axes (it becomes a
    min), clip -> MaxPooling2D; all three move, bitwise."""
    ops = keras.ops
    inp = keras.Input((12, 12, 3))
    a = ops.min(layers.Conv2D(4, 3, activation="relu")(inp), axis=(1, 2))
    b = ops.max(ops.negative(layers.Conv2D(4, 3)(inp)), axis=(1, 2))
    c = layers.Flatten()(layers.MaxPooling2D()(ops.clip(layers.Conv2D(4, 3)(inp), -0.5, 0.5)))
    return keras.Model(inp, [a, b, c], name="min_and_flip"), 3, True


CASES: dict[str, Callable[[], tuple[Any, int, bool]]] = {
    "ops_nodes": ops_nodes,
    "min_and_flip": min_and_flip,
    "sequential_chain": sequential_chain,
    "shared_conv_two_calls": shared_conv_two_calls,
    "shared_output_two_pools": shared_output_two_pools,
    "text_cnn": text_cnn,
    "nested_sequential": nested_sequential,
    "leaky_relu": leaky_relu,
    "prelu_shared_axes": prelu_shared_axes,
    "prelu_per_position": prelu_per_position,
}


# -- the checks -----------------------------------------------------------------


def _predict(model: Any, inputs: Any) -> list[np.ndarray]:
    return [np.asarray(keras.ops.convert_to_numpy(o))
            for o in keras.tree.flatten(model(inputs, training=False))]


def _output_names(model: Any) -> list[str]:
    return [t._keras_history.operation.name for t in model.outputs]


def _input_names(model: Any) -> list[str]:
    return [t._keras_history.operation.name for t in model.inputs]


def run_case(name: str, tmp_dir: str) -> str:
    """Runs one case; returns a summary, raises AssertionError on a failure."""
    model, moved, exact = CASES[name]()
    weights_before = [w.tobytes() for w in model.get_weights()]
    new, report = tf_reorder.reorder(model, return_report=True)
    assert len(report.moved) == moved, f"moved {len(report.moved)}, expected {moved}\n{report}"
    assert [w.tobytes() for w in model.get_weights()] == weights_before, "input model changed"

    # Every weight of the input is in the result, bit for bit (a moved PReLU's
    # alpha may change shape, not values).
    assert sorted(weights_before) == sorted(w.tobytes() for w in new.get_weights()), \
        "the weights differ"

    inputs = verify.random_inputs(model, batch=3, seed=1)
    comparison = verify.compare_models(model, new, inputs)
    if exact:
        assert comparison.bitwise, f"outputs not bitwise equal: {comparison}"
    else:
        assert comparison.close, f"outputs not within rtol {verify.RTOL}: {comparison}"
    assert [tuple(t.shape) for t in new.outputs] == [tuple(t.shape) for t in model.outputs]
    assert _output_names(new) == _output_names(model), (_output_names(new),
                                                        _output_names(model))
    assert _input_names(new) == _input_names(model)

    if name == "shared_conv_two_calls":  # the shared layer stays one layer
        convs = [layer for layer in new.layers if isinstance(layer, layers.Conv2D)]
        assert len(convs) == 1, [layer.name for layer in new.layers]

    path = os.path.join(tmp_dir, f"{name}.keras")
    new.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    for a, b in zip(_predict(new, inputs), _predict(loaded, inputs), strict=True):
        assert a.tobytes() == b.tobytes(), "the loaded model computes something else"
    diff = max(comparison.max_abs_diff.values())
    return (f"moved={len(report.moved)}/{len(report.sites)} "
            f"{'bitwise' if comparison.bitwise else f'max_abs_diff={diff:.2g}'} "
            "roundtrip=ok")


def main(names: list[str] | None = None) -> int:
    backend = keras.backend.backend()
    wanted = os.environ.get("KERAS_BACKEND")
    if wanted:
        assert backend == wanted, f"KERAS_BACKEND={wanted} but Keras runs on {backend}"
    print(f"backend {backend}, keras {keras.__version__}", flush=True)
    keras.utils.set_random_seed(0)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp_dir:
        for name in names or list(CASES):
            try:
                summary = run_case(name, tmp_dir)
            except Exception as error:  # report every case, then fail
                failures += 1
                detail = "".join(traceback.format_exception_only(error)).strip()
                print(f"FAIL {name}: {detail.splitlines()[0]}", flush=True)
                traceback.print_exc(file=sys.stderr)
            else:
                print(f"OK {name} {summary}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
