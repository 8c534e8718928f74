"""The bad-input matrix: every public entry point against every class of bad input.

`MATRIX` is a list of `Cell`s, one per (class of input, entry point) that applies:
how to call the entry point with that input, and what must happen (`Fails`: one
line naming the problem, or `Works`: a documented, checked result). The inputs
are built once by `build_world`. `tests/test_bad_inputs.py` runs every cell and
checks the rest of the promise (input untouched, no partial output);
`markdown_table()` turns the matrix into the README table, so the table says
what the tests check (``python tests/bad_inputs.py`` prints it).

Example:

    world = build_world(pathlib.Path("/tmp/world"))
    for cell in MATRIX:
        print(cell.row, cell.entry, cell.expect)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import warnings
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402
from tensorflow.core.framework import graph_pb2  # noqa: E402

import tf_reorder  # noqa: E402
from tf_reorder import policy  # noqa: E402
from policy_files import write_policy  # noqa: E402
from rewrite_checks import check_rewrite, model_fingerprint  # noqa: E402

ENTRIES = ("reorder", "plan", "reorder_graph_def", "reorder_function", "convert_saved_model",
           "load_policy", "inspect", "convert .keras", "convert SavedModel", "demo")
CLI_ENTRIES = ("inspect", "convert .keras", "convert SavedModel", "demo")
DISK_FULL_SIZE = "100k"  # the tmpfs; every output below is larger
X = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")


# ---------------------------------------------------------------------------
# Models and graphs.


@keras.saving.register_keras_serializable(package="tf_reorder_bad_inputs")
class Scale(layers.Layer):
    """A registered, serializable custom layer."""

    def __init__(self, factor: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x: Any) -> Any:
        return x * self.factor

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="tf_reorder_bad_inputs")
class Subclassed(keras.Model):
    """A subclassed model: saves and loads (registered), but has no layer graph."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conv = layers.Conv2D(2, 3, activation="relu")
        self.pool = layers.MaxPooling2D()

    def call(self, x: Any) -> Any:
        return self.pool(self.conv(x))


def _sequential(*middle: Any, activation: str = "relu", name: str) -> keras.Model:
    """Conv2D(activation) -> MaxPooling2D -> middle layers -> Dense: one candidate site."""
    return keras.Sequential([keras.Input((16, 16, 3)), layers.Conv2D(8, 3, activation=activation),
                             layers.MaxPooling2D(), *middle, layers.Flatten(), layers.Dense(64)],
                            name=name)


def relu_pool(x: Any) -> Any:
    return tf.nn.max_pool2d(tf.nn.relu(x), 2, 2, "VALID")


def silu_pool(x: Any) -> Any:
    return tf.nn.max_pool2d(tf.nn.silu(x), 2, 2, "VALID")


SPEC = tf.TensorSpec([1, 4, 4, 1], tf.float32)


def graph_of(fn: Callable[..., Any]) -> tuple[graph_pb2.GraphDef, list[str], Any]:
    concrete = tf.function(fn).get_concrete_function(SPEC)
    return (concrete.graph.as_graph_def(add_shapes=True), [t.name for t in concrete.outputs],
            concrete)


def with_unknown_op(graph_def: graph_pb2.GraphDef) -> graph_pb2.GraphDef:
    """`graph_def` plus a node of an op no TensorFlow has, reading the input."""
    new = graph_pb2.GraphDef()
    new.CopyFrom(graph_def)
    node = new.node.add(name="custom", op="MyCompany>FancyOp")
    node.input.append("x")
    return new


def with_duplicate(graph_def: graph_pb2.GraphDef, op: str) -> graph_pb2.GraphDef:
    """`graph_def` with a second node of the same name as its `op` node."""
    new = graph_pb2.GraphDef()
    new.CopyFrom(graph_def)
    new.node.add().CopyFrom(next(n for n in graph_def.node if n.op == op))
    return new


# ---------------------------------------------------------------------------
# Files.


def write_tf1_saved_model(path: str) -> None:
    """A TF1-style SavedModel (Builder + Session): conv -> relu -> max pool, one signature."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 8, 8, 3], name="x")
        w = tf.compat.v1.get_variable("w", [3, 3, 3, 4])
        y = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME")), 2, 2, "VALID",
                             name="y")
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(path)
            signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            builder.add_meta_graph_and_variables(
                session, ["serve"], signature_def_map={"serving_default": signature})
            builder.save()


def run_tf1_saved_model(path: str) -> np.ndarray:
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        tf.compat.v1.saved_model.load(session, ["serve"], path)
        return session.run("y:0", {"x:0": X[:1, :8, :8]})


class _NoSignatures(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = tf.Variable(2.0)

    @tf.function(input_signature=[SPEC])
    def f(self, x: Any) -> Any:
        return relu_pool(x * self.scale)


def write_keras_variants(root: pathlib.Path, good: pathlib.Path) -> None:
    """Broken copies of the `.keras` file `good`, one per class of corruption."""
    data = good.read_bytes()
    (root / "empty.keras").write_bytes(b"")
    (root / "truncated.keras").write_bytes(data[:len(data) // 2])
    (root / "random.keras").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "model.h5").write_bytes(data)
    with zipfile.ZipFile(good) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["class_name"] = "FancyConv"  # no such Keras layer

    def rezip(name: str, **replace: bytes | None) -> None:
        with zipfile.ZipFile(root / name, "w") as archive:
            for member, content in members.items():
                content = replace.get(member.replace(".", "_"), content)
                if content is not None:
                    archive.writestr(member, content)

    rezip("no_config.keras", config_json=None)
    rezip("bad_json.keras", config_json=b"{not json")
    rezip("unknown_class.keras", config_json=json.dumps(config).encode())
    rezip("bad_weights.keras", model_weights_h5=b"not an HDF5 file")


@dataclasses.dataclass
class World:
    """Every input of the matrix; `digest()` must not change while the matrix runs."""

    root: pathlib.Path
    models: dict[str, keras.Model]
    graphs: dict[str, graph_pb2.GraphDef]
    fetches: list[str]
    concrete: Any
    functions: dict[str, Any]

    def digest(self) -> dict[str, Any]:
        """Every file (bytes hash, mode, mtime), model (config, weights) and graph (bytes)."""
        state: dict[str, Any] = {"files": tree_digest(self.root)}
        for name, model in self.models.items():
            with contextlib.suppress(Exception):  # an unbuilt model has no config to read
                state[f"model {name}"] = model_fingerprint(model)
        for name, graph_def in self.graphs.items():
            state[f"graph {name}"] = graph_def.SerializeToString(deterministic=True)
        state["function"] = self.concrete.graph.as_graph_def().SerializeToString(
            deterministic=True)
        return state


def build_world(root: pathlib.Path) -> World:
    """Builds every input the matrix uses under `root` (about 10 s, most of it exports)."""
    keras.utils.set_random_seed(0)
    good = _sequential(name="good")
    models = {
        "good": good,
        "subclassed": Subclassed(),
        "unbuilt": keras.Sequential([layers.Conv2D(2, 3, activation="relu"),
                                     layers.MaxPooling2D()], name="unbuilt"),
        "lambda": _sequential(layers.Lambda(lambda x: x * 2.0), name="with_lambda"),
        "registered": _sequential(Scale(), name="with_registered"),
        "swish": _sequential(activation="swish", name="swish"),
        "custom_function": keras.Sequential([
            keras.Input((16, 16, 3)), layers.Conv2D(8, 3), layers.Activation(clamp),
            layers.MaxPooling2D(name="pool")], name="custom_function"),
    }

    class Doubler(layers.Layer):  # local: no registration, so Keras cannot load it
        def call(self, x: Any) -> Any:
            return x * 2.0

    models["custom"] = _sequential(Doubler(), name="with_custom")
    models["subclassed"](X)
    with warnings.catch_warnings():  # Keras warns that the unbuilt model has no weights
        warnings.simplefilter("ignore", UserWarning)
        for name in ("good", "subclassed", "unbuilt", "lambda", "custom", "swish"):
            models[name].save(root / f"{name}.keras")
    write_keras_variants(root, root / "good.keras")

    good.export(str(root / "sm"), verbose=False)
    write_tf1_saved_model(str(root / "tf1_sm"))
    tf.saved_model.save(_NoSignatures(), str(root / "nosig_sm"), signatures={})
    (root / "not_sm").mkdir()
    (root / "not_sm" / "notes.txt").write_text("not a SavedModel")
    (root / "corrupt_sm").mkdir()
    (root / "corrupt_sm" / "saved_model.pb").write_bytes(b"\x00garbage\xff" * 10)

    write_policy(root / "policy.json")
    (root / "policy_bad_json.json").write_text('{"format": 1, "runtimes": ')
    (root / "policy_array.json").write_text("[1, 2]")
    data = json.loads((root / "policy.json").read_text())
    (root / "policy_format2.json").write_text(json.dumps({**data, "format": 2}))

    graph_def, fetches, concrete = graph_of(relu_pool)
    graphs = {"relu": graph_def, "silu": graph_of(silu_pool)[0],
              "unknown_op": with_unknown_op(graph_def),
              "duplicate": with_duplicate(graph_def, "Relu")}
    functions = {"no_signature": tf.function(relu_pool),
                 "signature": tf.function(relu_pool, input_signature=[SPEC])}
    return World(root, models, graphs, fetches, concrete, functions)


def tree_digest(path: os.PathLike[str] | str) -> dict[str, tuple[str, int, int]]:
    """Every file and directory under `path`: content hash, mode and mtime."""
    digest = {}
    for directory, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(directory, name)
            stat = os.lstat(full)
            content = ""
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()
            digest[os.path.relpath(full, path)] = (content, stat.st_mode, stat.st_mtime_ns)
    return digest


# ---------------------------------------------------------------------------
# Places to write to. Each takes (world, out, stack, monkeypatch) and returns paths
# to format the cell's arguments with.


def mount_tmpfs(path: pathlib.Path, options: str, stack: contextlib.ExitStack) -> bool:
    """Mounts a tmpfs at `path` (unmounted when `stack` closes); False if not permitted."""
    path.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return False
    stack.callback(subprocess.run, ["umount", str(path)], check=True)
    return True


def readonly(world: World, out: pathlib.Path, stack: contextlib.ExitStack,
             monkeypatch: Any) -> dict[str, str]:
    """``{ro}``: a directory nobody can write to, root included.

    chmod 0555 does not stop root (the tests run as root here), so: a read-only
    tmpfs mount where mounting is permitted; else chmod 0555 when not root; else
    /proc (its root takes no new files).
    """
    if mount_tmpfs(out / "ro", "ro,size=64k", stack):
        return {"ro": str(out / "ro")}
    if os.geteuid() != 0:
        (out / "ro").chmod(0o555)
        stack.callback((out / "ro").chmod, 0o755)
        return {"ro": str(out / "ro")}
    return {"ro": "/proc"}


def disk_full(world: World, out: pathlib.Path, stack: contextlib.ExitStack,
              monkeypatch: Any) -> dict[str, str]:
    """``{full}``: a 100 kB tmpfs, too small for any output here."""
    import pytest  # pylint: disable=g-import-not-at-top

    if not mount_tmpfs(out / "full", f"size={DISK_FULL_SIZE}", stack):
        pytest.skip("cannot mount a tmpfs to fill (needs root or CAP_SYS_ADMIN)")
    return {"full": str(out / "full")}


def existing_output(world: World, out: pathlib.Path, stack: contextlib.ExitStack,
                    monkeypatch: Any) -> dict[str, str]:
    """``{out}/out.keras`` and ``{out}/out_sm/``: outputs that already exist."""
    (out / "out.keras").write_bytes(b"precious")
    (out / "out_sm").mkdir()
    (out / "out_sm" / "keep.txt").write_text("precious")
    return {}


def nested_input(world: World, out: pathlib.Path, stack: contextlib.ExitStack,
                 monkeypatch: Any) -> dict[str, str]:
    """``{out}/outer/sm``: a copy of the SavedModel, so that ``{out}/outer`` contains it."""
    shutil.copytree(world.root / "sm", out / "outer" / "sm", symlinks=True)
    return {}


def packaged_policy(name: str) -> Callable[..., dict[str, str]]:
    """Points the packaged runtime policy at ``{in}/name`` for the cell."""
    def setup(world: World, out: pathlib.Path, stack: contextlib.ExitStack,
              monkeypatch: Any) -> dict[str, str]:
        monkeypatch.setattr(policy, "PACKAGED_POLICY", str(world.root / name))
        return {}

    return setup


# ---------------------------------------------------------------------------
# The matrix.


@dataclasses.dataclass(frozen=True)
class Fails:
    """The call fails: `error` (the CLI: exit `code`) with one line containing `message`."""

    message: str
    error: type[BaseException] = tf_reorder.ReorderError
    code: int = 1
    quiet: bool = True  # the CLI printed nothing on stdout (demo reports progress)


@dataclasses.dataclass(frozen=True)
class Works:
    """Not an error: the call succeeds (the CLI: exit 0), and `check` holds."""

    note: str
    check: Callable[..., None] | None = None  # (result, world, paths) -> None


@dataclasses.dataclass(frozen=True)
class Cell:
    """One (class of input, entry point): a call and what must happen.

    `call` is ``(world, paths) -> result`` for a Python entry point, or the CLI's
    arguments, formatted with ``paths`` (``{in}``: the inputs, ``{out}``: a fresh
    empty directory for outputs, and what `setup` adds).
    """

    row: str
    entry: str
    call: Callable[[World, Mapping[str, str]], Any] | tuple[str, ...]
    expect: Fails | Works
    setup: Callable[..., dict[str, str]] | None = None

    @property
    def id(self) -> str:
        return f"{self.row} | {self.entry}"


def _moved(count: int) -> Callable[..., None]:
    """A `Works` check for reorder/plan results: `count` sites moved."""
    def check(result: Any, world: World, paths: Mapping[str, str]) -> None:
        report = result[1] if isinstance(result, tuple) else result
        assert len(report.moved) == count, str(report)

    return check


def _rewrite_ok(name: str, moved: int) -> Callable[..., None]:
    """A `Works` check for `reorder`: the full rewrite promise on the world's model."""
    def check(result: Any, world: World, paths: Mapping[str, str]) -> None:
        check_rewrite(world.models[name], moved=moved, inputs=X)

    return check


def _saves_and_loads(result: Any, world: World, paths: Mapping[str, str]) -> None:
    """The rewritten model (with a registered custom layer) round-trips through .keras."""
    check_rewrite(world.models["registered"], moved=1, inputs=X)
    path = os.path.join(paths["out"], "registered.keras")
    result.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert any(isinstance(layer, Scale) for layer in loaded.layers)
    assert np.asarray(loaded(X)).tobytes() == np.asarray(world.models["registered"](X)).tobytes()


def clamp(x: Any) -> Any:
    """A monotone activation Keras has no registration for."""
    return keras.ops.minimum(keras.ops.maximum(x, 0.0), 6.0)


def _with_clamp_declared(call: Callable[[], Any]) -> Any:
    tf_reorder.register_monotone(clamp, zero_at_zero=True, exact=True)
    try:
        return call()
    finally:
        tf_reorder.unregister_monotone(clamp)


def _holds_clamp(result: Any, world: World, paths: Mapping[str, str]) -> None:
    new, report = result
    assert len(report.moved) == 1, str(report)
    assert [layer.activation for layer in new.layers
            if isinstance(layer, layers.Activation)] == [clamp]


def _kept_not_monotone(result: Any, world: World, paths: Mapping[str, str]) -> None:
    report = result[1] if isinstance(result, tuple) else result
    (site,) = report.sites
    assert not site.moved and "not monotone" in site.reason, str(report)


def _saved_model_equal(src: str, dst: str) -> None:
    a = tf.saved_model.load(src).signatures["serving_default"](tf.constant(X))
    b = tf.saved_model.load(dst).signatures["serving_default"](tf.constant(X))
    for key in a:
        assert a[key].numpy().tobytes() == b[key].numpy().tobytes(), key


def _tf1_converted(result: Any, world: World, paths: Mapping[str, str]) -> None:
    before = run_tf1_saved_model(str(world.root / "tf1_sm"))
    after = run_tf1_saved_model(os.path.join(paths["out"], "out_sm"))
    assert before.tobytes() == after.tobytes()


def _nosig_converted(result: Any, world: World, paths: Mapping[str, str]) -> None:
    original = tf.saved_model.load(str(world.root / "nosig_sm"))
    converted = tf.saved_model.load(os.path.join(paths["out"], "out_sm"))
    assert not converted.signatures
    x = tf.constant(X[:1, :4, :4, :1])
    assert original.f(x).numpy().tobytes() == converted.f(x).numpy().tobytes()


def _output_has(*fragments: str) -> Callable[..., None]:
    """A `Works` check for a CLI run: stdout contains every fragment."""
    def check(result: Any, world: World, paths: Mapping[str, str]) -> None:
        for fragment in fragments:
            assert fragment in result.out, result.out

    return check


def _keeps_unknown_op(result: Any, world: World, paths: Mapping[str, str]) -> None:
    new, report = result
    assert len(report.moved) == 1, str(report)
    assert [n.op for n in new.node].count("MyCompany>FancyOp") == 1


def _m(name: str) -> Callable[[World, Mapping[str, str]], Any]:
    return lambda w, p: w.models[name]


def _model_rows() -> list[Cell]:
    """Wrong objects and models that cannot (or can) be walked."""
    cells = []
    for row, make, message in [
        ("None", lambda w: None, "expected a keras.Model, got builtins.NoneType"),
        ("an int", lambda w: 3, "expected a keras.Model, got builtins.int"),
        ("a str (a file name)", lambda w: str(w.root / "good.keras"),
         "expected a keras.Model, got builtins.str"),
        ("a tf.Module", lambda w: tf.Module(),
         "expected a keras.Model, got tensorflow.python.module.module.Module"),
        ("a subclassed keras.Model", lambda w: w.models["subclassed"], "subclassed model"),
        ("an unbuilt Sequential", lambda w: w.models["unbuilt"], "is not built"),
    ]:
        cells += [
            Cell(row, "reorder", lambda w, p, make=make: tf_reorder.reorder(make(w)),
                 Fails(message)),
            Cell(row, "plan", lambda w, p, make=make: tf_reorder.plan(make(w)), Fails(message)),
        ]
    cells += [
        Cell("None", "reorder_graph_def", lambda w, p: tf_reorder.reorder_graph_def(None),
             Fails("expected a GraphDef, got NoneType")),
        Cell("None", "reorder_function", lambda w, p: tf_reorder.reorder_function(None),
             Fails("expected a tf.function ConcreteFunction, got NoneType")),
        Cell("None", "convert_saved_model",
             lambda w, p: tf_reorder.convert_saved_model(None, p["out"] + "/out_sm"),
             Fails("src must be a path (str or os.PathLike), not NoneType")),
        Cell("None", "load_policy", lambda w, p: tf_reorder.load_policy(None),
             Works("None: no policy (as target='any')", _no_policy)),
        Cell("an int", "reorder_graph_def", lambda w, p: tf_reorder.reorder_graph_def(3),
             Fails("expected a GraphDef, got int")),
        Cell("an int", "reorder_function", lambda w, p: tf_reorder.reorder_function(3),
             Fails("expected a tf.function ConcreteFunction, got int")),
        Cell("an int", "convert_saved_model",
             lambda w, p: tf_reorder.convert_saved_model(p["out"] + "/out_sm", 3),
             Fails("dst must be a path (str or os.PathLike), not int")),
        Cell("an int", "load_policy", lambda w, p: tf_reorder.load_policy(3),
             Fails("target must be a runtime name or a Policy, not int")),
        Cell("a str (a file name)", "reorder_graph_def",
             lambda w, p: tf_reorder.reorder_graph_def(str(w.root / "sm" / "saved_model.pb")),
             Fails("expected a GraphDef, got str")),
        Cell("a str (a file name)", "reorder_function",
             lambda w, p: tf_reorder.reorder_function("fn"),
             Fails("expected a tf.function ConcreteFunction, got str")),
        Cell("a tf.Module", "reorder_graph_def",
             lambda w, p: tf_reorder.reorder_graph_def(tf.Module()),
             Fails("expected a GraphDef, got Module")),
        Cell("a tf.Module", "reorder_function",
             lambda w, p: tf_reorder.reorder_function(tf.Module()),
             Fails("expected a tf.function ConcreteFunction, got Module")),
        Cell("a tf.Module", "convert_saved_model",
             lambda w, p: tf_reorder.convert_saved_model(tf.Module(), p["out"] + "/out_sm"),
             Fails("src must be a path (str or os.PathLike), not Module")),
        Cell("a subclassed keras.Model", "reorder_function",
             lambda w, p: tf_reorder.reorder_function(w.models["subclassed"]),
             Fails("expected a tf.function ConcreteFunction, got Subclassed")),
    ]
    for row, name, message in [
        ("a subclassed keras.Model", "subclassed", "subclassed model"),
        ("an unbuilt Sequential", "unbuilt", "is not built"),
    ]:
        cells += [
            Cell(row, "inspect", ("inspect", f"{{in}}/{name}.keras"), Fails(message)),
            Cell(row, "convert .keras", ("convert", f"{{in}}/{name}.keras", "{out}/out.keras"),
                 Fails(message)),
        ]
    return cells


def _no_policy(result: Any, world: World, paths: Mapping[str, str]) -> None:
    assert result is None, result


def _layer_rows() -> list[Cell]:
    """Lambda and custom layers, and an activation that must stay."""
    lambda_message = "Lambda layer (Python code), which Keras loads only with safe_mode=False"
    custom_message = "class 'Doubler', which Keras cannot find"
    cells = []
    for row, name, cli, check in [
        ("a Lambda layer", "lambda", Fails(lambda_message), _rewrite_ok("lambda", 1)),
        ("a custom layer (not registered)", "custom", Fails(custom_message),
         _rewrite_ok("custom", 1)),
        ("a custom layer (registered)", "registered", None, _saves_and_loads),
    ]:
        cells += [
            Cell(row, "reorder", lambda w, p, n=name: tf_reorder.reorder(w.models[n]),
                 Works("the relu moves; the layer is reused as it is", check)),
            Cell(row, "plan", lambda w, p, n=name: tf_reorder.plan(w.models[n]),
                 Works("1 of 1 moved", _moved(1))),
        ]
        if cli is not None:
            cells += [
                Cell(row, "inspect", ("inspect", f"{{in}}/{name}.keras"), cli),
                Cell(row, "convert .keras",
                     ("convert", f"{{in}}/{name}.keras", "{out}/out.keras"), cli),
            ]
    row = "a custom function (not registered with Keras) in an Activation layer"
    cells += [
        Cell(row, "reorder", lambda w, p: _with_clamp_declared(
            lambda: check_rewrite(w.models["custom_function"], moved=1, inputs=X)),
             Works("moves once declared with register_monotone; the new layer holds the "
                   "function", _holds_clamp)),
        Cell(row, "plan", lambda w, p: _with_clamp_declared(
            lambda: tf_reorder.plan(w.models["custom_function"])),
             Works("1 of 1 moved", _moved(1))),
    ]
    row = "a non-monotone activation (swish)"
    cells += [
        Cell(row, "reorder", lambda w, p: tf_reorder.reorder(w.models["swish"],
                                                              return_report=True),
             Works("kept; the report says 'silu is not monotone'", _kept_not_monotone)),
        Cell(row, "plan", lambda w, p: tf_reorder.plan(w.models["swish"]),
             Works("kept; the report says why", _kept_not_monotone)),
        Cell(row, "reorder_graph_def",
             lambda w, p: tf_reorder.reorder_graph_def(w.graphs["silu"], preserve=w.fetches),
             Works("no candidate site (x * sigmoid(x) is not one op)", _moved(0))),
        Cell(row, "inspect", ("inspect", "{in}/swish.keras"),
             Works("exit 0; the table says why it stays", _output_has(
                 "0 of 1 candidate sites moved", "silu is not monotone"))),
        Cell(row, "convert .keras", ("convert", "{in}/swish.keras", "{out}/out.keras"),
             Works("exit 0; writes the model unchanged", _output_has(
                 "0 of 1 candidate sites moved", "wrote"))),
    ]
    return cells


def _target_rows() -> list[Cell]:
    """--target / target= and the runtime policy file."""
    unknown = "unknown target 'tflite_gpu'; known targets: any, all"
    cells = [
        Cell("unknown target", "reorder",
             lambda w, p: tf_reorder.reorder(w.models["good"], target="tflite_gpu"),
             Fails(unknown)),
        Cell("unknown target", "plan",
             lambda w, p: tf_reorder.plan(w.models["good"], target="tflite_gpu"),
             Fails(unknown)),
        Cell("unknown target", "reorder_graph_def",
             lambda w, p: tf_reorder.reorder_graph_def(w.graphs["relu"], preserve=w.fetches,
                                                       target="tflite_gpu"),
             Fails(unknown)),
        Cell("unknown target", "reorder_function",
             lambda w, p: tf_reorder.reorder_function(w.concrete, target="tflite_gpu"),
             Fails(unknown)),
        Cell("unknown target", "convert_saved_model",
             lambda w, p: tf_reorder.convert_saved_model(w.root / "sm", p["out"] + "/out_sm",
                                                         target="tflite_gpu"),
             Fails(unknown)),
        Cell("unknown target", "load_policy", lambda w, p: tf_reorder.load_policy("tflite_gpu"),
             Fails(unknown)),
        Cell("unknown target", "inspect", ("inspect", "{in}/good.keras", "--target=tflite_gpu"),
             Fails("--target=tflite_gpu: " + unknown)),
        Cell("unknown target", "convert .keras",
             ("convert", "{in}/good.keras", "{out}/out.keras", "--target=tflite_gpu"),
             Fails("--target=tflite_gpu: " + unknown)),
        Cell("unknown target", "convert SavedModel",
             ("convert", "{in}/sm", "{out}/out_sm", "--target=tflite_gpu"),
             Fails("--target=tflite_gpu: " + unknown)),
        Cell("unknown target", "demo", ("demo", "--out={out}/out.keras", "--target=tflite_gpu"),
             Fails("--target=tflite_gpu: " + unknown)),
    ]
    wrong = "target must be a runtime name or a Policy, not list"
    cells += [
        Cell("target of a wrong type", "reorder",
             lambda w, p: tf_reorder.reorder(w.models["good"], target=["tf"]), Fails(wrong)),
        Cell("target of a wrong type", "plan",
             lambda w, p: tf_reorder.plan(w.models["good"], target=["tf"]), Fails(wrong)),
        Cell("target of a wrong type", "reorder_graph_def",
             lambda w, p: tf_reorder.reorder_graph_def(w.graphs["relu"], preserve=w.fetches,
                                                       target=["tf"]), Fails(wrong)),
        Cell("target of a wrong type", "reorder_function",
             lambda w, p: tf_reorder.reorder_function(w.concrete, target=["tf"]), Fails(wrong)),
        Cell("target of a wrong type", "convert_saved_model",
             lambda w, p: tf_reorder.convert_saved_model(w.root / "sm", p["out"] + "/out_sm",
                                                         target=["tf"]), Fails(wrong)),
        Cell("target of a wrong type", "load_policy",
             lambda w, p: tf_reorder.load_policy(["tf"]), Fails(wrong)),
    ]
    for row, name, message in [
        ("policy file missing", "no_policy.json", "no such file"),
        ("policy file not JSON", "policy_bad_json.json", "not valid JSON"),
        ("policy file of another format", "policy_format2.json",
         "format 2 is not supported (this tf_reorder reads format 1)"),
    ]:
        cells += [
            Cell(row, "load_policy",
                 lambda w, p, n=name: tf_reorder.load_policy("tf", path=w.root / n),
                 Fails(message)),
            Cell(row, "reorder", lambda w, p: tf_reorder.reorder(w.models["good"], target="tf"),
                 Fails(message), packaged_policy(name)),
            Cell(row, "convert_saved_model",
                 lambda w, p: tf_reorder.convert_saved_model(w.root / "sm", p["out"] + "/out_sm",
                                                             target="tf"),
                 Fails(message), packaged_policy(name)),
            Cell(row, "inspect", ("inspect", "{in}/good.keras", "--target=tf"), Fails(message),
                 packaged_policy(name)),
            Cell(row, "convert .keras",
                 ("convert", "{in}/good.keras", "{out}/out.keras", "--target=tf"),
                 Fails(message), packaged_policy(name)),
        ]
    cells.append(Cell("policy file a JSON array", "load_policy",
                      lambda w, p: tf_reorder.load_policy("tf", path=w.root / "policy_array.json"),
                      Fails("not a runtime policy (expected a JSON object, got an array)")))
    cells.append(Cell("policy path of a wrong type", "load_policy",
                      lambda w, p: tf_reorder.load_policy("tf", path=3),
                      Fails("policy path must be a path, not int")))
    return cells


def _flag_rows() -> list[Cell]:
    """Arguments and flags of the wrong type (a truthy "no" must not mean yes)."""
    row = "a flag of the wrong type"
    return [
        Cell(row, "reorder",
             lambda w, p: tf_reorder.reorder(w.models["good"], return_report="yes"),
             Fails("return_report must be True or False, not str 'yes'")),
        Cell(row, "convert_saved_model",
             lambda w, p: tf_reorder.convert_saved_model(w.root / "sm", p["out"] + "/out_sm",
                                                         overwrite="no"),
             Fails("overwrite must be True or False, not str 'no'")),
        Cell(row, "inspect", ("inspect", "{in}/good.keras", "--json=maybe"),
             Fails("Non-boolean argument to boolean flag", code=2)),
        Cell(row, "convert .keras", ("convert", "{in}/good.keras", "{out}/out.keras",
                                     "--overwrite=maybe"),
             Fails("Non-boolean argument to boolean flag", code=2)),
        Cell(row, "demo", ("demo", "--batch=two"), Fails("--batch", code=2)),
    ]


def _keras_file_rows() -> list[Cell]:
    """Broken `.keras` files (the Python API takes models; loading them is the CLI's job)."""
    cells = []
    for row, name, message in [
        ("a .keras file: empty", "empty.keras", "not a zip archive"),
        ("a .keras file: truncated (half)", "truncated.keras", "not a zip archive"),
        ("a .keras file: not a zip", "random.keras", "not a zip archive"),
        ("a .keras file: zip without config.json", "no_config.keras", "has no config.json"),
        ("a .keras file: config.json not JSON", "bad_json.keras",
         "its config.json is not readable JSON"),
        ("a .keras file: unknown class in config", "unknown_class.keras",
         "class 'keras.layers.FancyConv', which Keras cannot find"),
        ("a .keras file: corrupt weights", "bad_weights.keras",
         "cannot load the model: Unable to synchronously open file"),
        ("a model file not named .keras", "model.h5", "the name must end in .keras"),
    ]:
        cells += [
            Cell(row, "inspect", ("inspect", f"{{in}}/{name}"), Fails(message)),
            Cell(row, "convert .keras", ("convert", f"{{in}}/{name}", "{out}/out.keras"),
                 Fails(message)),
        ]
    cells.append(Cell("a .keras file: empty", "convert_saved_model",
                      lambda w, p: tf_reorder.convert_saved_model(w.root / "empty.keras",
                                                                  p["out"] + "/out_sm"),
                      Fails("not a SavedModel directory (it is a file)")))
    return cells


def _saved_model_rows() -> list[Cell]:
    """Paths that are not SavedModels, and SavedModels of other kinds."""
    cells = []
    for row, name, api, cli in [
        ("a path that does not exist", "missing", "no such directory",
         "no such file or directory"),
        ("a directory that is not a SavedModel", "not_sm",
         "is a directory but not a SavedModel (no saved_model.pb)", None),
        ("a corrupt saved_model.pb", "corrupt_sm",
         "saved_model.pb is not a readable SavedModel proto", None),
    ]:
        cells += [
            Cell(row, "convert_saved_model",
                 lambda w, p, n=name: tf_reorder.convert_saved_model(w.root / n,
                                                                     p["out"] + "/out_sm"),
                 Fails(api)),
            Cell(row, "inspect", ("inspect", f"{{in}}/{name}"), Fails(cli or api)),
            Cell(row, "convert SavedModel", ("convert", f"{{in}}/{name}", "{out}/out_sm"),
                 Fails(cli or api)),
        ]
    cells.append(Cell("a path that does not exist", "convert .keras",
                      ("convert", "{in}/missing.keras", "{out}/out.keras"),
                      Fails("no such file or directory")))
    cells.append(Cell("a path that does not exist", "load_policy",
                      lambda w, p: tf_reorder.load_policy("tf", path=w.root / "missing"),
                      Fails("no such file")))
    for row, name, check in [
        ("a TF1-style SavedModel (Builder, Session)", "tf1_sm", _tf1_converted),
        ("a SavedModel without signatures", "nosig_sm", _nosig_converted),
    ]:
        cells += [
            Cell(row, "convert_saved_model",
                 lambda w, p, n=name: tf_reorder.convert_saved_model(w.root / n,
                                                                     p["out"] + "/out_sm"),
                 Works("converted; same outputs", check)),
            Cell(row, "inspect", ("inspect", f"{{in}}/{name}"),
                 Works("exit 0", _output_has("1 of 1 candidate sites moved"))),
            Cell(row, "convert SavedModel", ("convert", f"{{in}}/{name}", "{out}/out_sm"),
                 Works("exit 0; same outputs", check)),
        ]
    return cells


def _output_rows() -> list[Cell]:
    """Where the output must not, or cannot, go."""
    def sm(dst: str, **kwargs: Any) -> Callable[[World, Mapping[str, str]], Any]:
        """convert_saved_model of the world's SavedModel to `dst` (formatted)."""
        return lambda w, p: tf_reorder.convert_saved_model(w.root / "sm", dst.format(**p),
                                                           **kwargs)

    row = "the output exists"
    cells = [
        Cell(row, "convert_saved_model", sm("{out}/out_sm"),
             Fails("already exists (pass overwrite=True to replace it)"), existing_output),
        Cell(row, "convert .keras", ("convert", "{in}/good.keras", "{out}/out.keras"),
             Fails("already exists (use --overwrite to replace it)"), existing_output),
        Cell(row, "convert SavedModel", ("convert", "{in}/sm", "{out}/out_sm"),
             Fails("already exists (use --overwrite to replace it)"), existing_output),
        Cell(row, "demo", ("demo", "--out={out}/out.keras"),
             Fails("already exists (use --overwrite to replace it)"), existing_output),
    ]
    row = "overwrite, but the output is not a SavedModel"
    not_saved_model = "exists and is not a SavedModel; overwrite replaces only a SavedModel"
    cells += [
        Cell(row, "convert_saved_model", sm("{out}/out_sm", overwrite=True),
             Fails(not_saved_model), existing_output),
        Cell(row, "convert SavedModel", ("convert", "{in}/sm", "{out}/out_sm", "--overwrite"),
             Fails(not_saved_model), existing_output),
    ]
    row = "a SavedModel to an output named .keras"
    dot_keras = "the output of a SavedModel is a SavedModel directory; give it a name that " \
        "does not end in .keras"
    cells += [
        Cell(row, "convert_saved_model", sm("{out}/out.keras"), Fails(dot_keras)),
        Cell(row, "convert SavedModel", ("convert", "{in}/sm", "{out}/out.keras"),
             Fails(dot_keras)),
    ]
    row = "the output directory does not exist"
    cells += [
        Cell(row, "convert_saved_model", sm("{out}/no/out_sm"), Fails("does not exist")),
        Cell(row, "convert .keras", ("convert", "{in}/good.keras", "{out}/no/out.keras"),
             Fails("the output directory {out}/no does not exist")),
        Cell(row, "convert SavedModel", ("convert", "{in}/sm", "{out}/no/out_sm"),
             Fails("the parent directory {out}/no does not exist")),
        Cell(row, "demo", ("demo", "--out={out}/no/out.keras"),
             Fails("the output directory {out}/no does not exist")),
    ]
    row = "the output directory is read-only"
    cells += [
        Cell(row, "convert_saved_model", sm("{ro}/out_sm"),
             Fails("cannot write to the directory {ro}"), readonly),
        Cell(row, "convert .keras", ("convert", "{in}/good.keras", "{ro}/out.keras"),
             Fails("cannot write to the output directory {ro}"), readonly),
        Cell(row, "convert SavedModel", ("convert", "{in}/sm", "{ro}/out_sm"),
             Fails("cannot write to the directory {ro}"), readonly),
        Cell(row, "demo", ("demo", "--out={ro}/out.keras"),
             Fails("cannot write to the output directory {ro}"), readonly),
    ]
    row = "the output is the input"
    cells += [
        Cell(row, "convert_saved_model", sm("{in}/sm", overwrite=True),
             Fails("the output is the input or inside it")),
        Cell(row, "convert .keras",
             ("convert", "{in}/good.keras", "{in}/./good.keras", "--overwrite"),
             Fails("the output is the input file")),
        Cell(row, "convert SavedModel", ("convert", "{in}/sm", "{in}/sm/", "--overwrite"),
             Fails("the output is the input or inside it")),
    ]
    row = "the output is inside the input"
    cells += [
        Cell(row, "convert_saved_model", sm("{in}/sm/variables/out_sm"),
             Fails("the output is the input or inside it")),
        Cell(row, "convert .keras", ("convert", "{in}/good.keras", "{in}/good.keras/out.keras"),
             Fails("the output directory {in}/good.keras is not a directory")),
        Cell(row, "convert SavedModel", ("convert", "{in}/sm", "{in}/sm/assets_out"),
             Fails("the output is the input or inside it")),
    ]
    row = "the input is inside the output"
    cells += [
        Cell(row, "convert_saved_model", lambda w, p: tf_reorder.convert_saved_model(
            p["out"] + "/outer/sm", p["out"] + "/outer", overwrite=True),
             Fails("the output contains the input"), nested_input),
        Cell(row, "convert SavedModel",
             ("convert", "{out}/outer/sm", "{out}/outer", "--overwrite"),
             Fails("the output contains the input"), nested_input),
    ]
    row = "the disk fills up while writing"
    full = "No space left on device"
    cells += [
        Cell(row, "convert_saved_model", sm("{full}/out_sm"),
             Fails(f"{{full}}/out_sm: cannot write the output: {full}; nothing was written",
                   error=OSError), disk_full),
        Cell(row, "convert .keras", ("convert", "{in}/good.keras", "{full}/out.keras"),
             Fails(f"{{full}}/out.keras: cannot save the model: {full}"), disk_full),
        Cell(row, "convert SavedModel", ("convert", "{in}/sm", "{full}/out_sm"),
             Fails(f"{{full}}/out_sm: cannot write the output: {full}"), disk_full),
        Cell(row, "demo", ("demo", "--model=MobileNetV3Small", "--out={full}/out.keras"),
             Fails(f"{{full}}/out.keras: cannot save the model: {full}", quiet=False),
             disk_full),
    ]
    return cells


def _graph_rows() -> list[Cell]:
    """GraphDefs and functions the graph pass cannot take as they are."""
    rgd = tf_reorder.reorder_graph_def
    return [
        Cell("not a GraphDef (serialized bytes)", "reorder_graph_def",
             lambda w, p: rgd(w.graphs["relu"].SerializeToString()),
             Fails("expected a GraphDef, got bytes")),
        Cell("not a GraphDef (serialized bytes)", "reorder_function",
             lambda w, p: tf_reorder.reorder_function(w.graphs["relu"].SerializeToString()),
             Fails("expected a tf.function ConcreteFunction, got bytes")),
        Cell("a GraphDef with two nodes of one name", "reorder_graph_def",
             lambda w, p: rgd(w.graphs["duplicate"], preserve=w.fetches),
             Fails("the GraphDef has two nodes named 'Relu'; it is not a valid graph")),
        Cell("preserve= a str, not a list", "reorder_graph_def",
             lambda w, p: rgd(w.graphs["relu"], preserve="Identity"),
             Fails("preserve must be a list of node or tensor names, not str (did you mean "
                   "['Identity']?)")),
        Cell("preserve= names a node the graph lacks", "reorder_graph_def",
             lambda w, p: rgd(w.graphs["relu"], preserve=["Identty:0"]),
             Fails("preserve names 'Identty:0', but the GraphDef has no node 'Identty'")),
        Cell("a tf.function without input_signature", "reorder_function",
             lambda w, p: tf_reorder.reorder_function(w.functions["no_signature"]),
             Fails("it has no input_signature: call get_concrete_function(tf.TensorSpec(")),
        Cell("a tf.function with input_signature", "reorder_function",
             lambda w, p: tf_reorder.reorder_function(w.functions["signature"]),
             Fails("got a tf.function (Function); call its get_concrete_function() first")),
        Cell("a graph with an op TensorFlow does not know", "reorder_graph_def",
             lambda w, p: rgd(w.graphs["unknown_op"], preserve=w.fetches),
             Works("the op is kept as it is; the relu still moves", _keeps_unknown_op)),
    ]


MATRIX: list[Cell] = (_model_rows() + _layer_rows() + _target_rows() + _flag_rows()
                      + _keras_file_rows() + _saved_model_rows() + _output_rows()
                      + _graph_rows())

# Rows tested outside the matrix (they need a subprocess): the cells of the table.
KILLED = "killed (SIGKILL) while writing"
KILLED_CELLS = {
    "convert .keras": "no OUT; a .tf-reorder-*.partial/ dir left beside it",
    "convert SavedModel": "no OUT (or, with --overwrite, the old OUT intact); "
                          "a .tf-reorder-*.partial/ dir left beside it",
}


INTERRUPTED = "interrupted (Ctrl-C) while reading or writing"
INTERRUPTED_CELLS = {  # tests/test_cli_process.py::test_ctrl_c_*
    "inspect": "`interrupted` (exit 130)",
    "convert .keras": "`interrupted` (exit 130); no OUT (with --overwrite, the old OUT "
                      "intact), no temporary file; also when Keras swallowed the Ctrl-C",
    "convert SavedModel": "`interrupted` (exit 130); no OUT, no temporary file",
}
SUBPROCESS_ROWS = {KILLED: KILLED_CELLS, INTERRUPTED: INTERRUPTED_CELLS}


def rows() -> list[str]:
    """The classes of bad input, in the matrix's order."""
    names = list(dict.fromkeys(cell.row for cell in MATRIX))
    return names + list(SUBPROCESS_ROWS)


def markdown_table() -> str:
    """The matrix as a Markdown table: one row per class, one column per entry point."""
    cells = {(cell.row, cell.entry): cell.expect for cell in MATRIX}
    header = "| bad input | " + " | ".join(f"`{e}`" if e in ENTRIES[:6] else f"CLI {e}"
                                            for e in ENTRIES) + " |"
    lines = [header, "|" + "---|" * (len(ENTRIES) + 1)]
    for row in rows():
        out = []
        for entry in ENTRIES:
            expect = cells.get((row, entry))
            if entry in SUBPROCESS_ROWS.get(row, {}):
                out.append(SUBPROCESS_ROWS[row][entry])
            elif expect is None:
                out.append("n/a")
            elif isinstance(expect, Works):
                out.append(f"works: {expect.note}")
            else:
                kind = "" if expect.error is tf_reorder.ReorderError else \
                    f"{expect.error.__name__}: "
                code = f" (exit {expect.code})" if entry in CLI_ENTRIES else ""
                message = re.sub(r"\{(\w+)\}", r"<\1>", expect.message)
                out.append(f"{kind}`{message}`{code}".replace("|", "\\|"))
        lines.append(f"| {row} | " + " | ".join(out) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
