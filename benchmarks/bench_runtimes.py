"""What the rewrite gains or costs per runtime: original vs reordered, interleaved.

Run from the repository root:

    python benchmarks/bench_runtimes.py                       # everything, ~55 min
    python benchmarks/bench_runtimes.py --models=vgg_style --activations=sigmoid,relu \
        --runtimes=tflite,onnx --pairs=30
    python benchmarks/bench_runtimes.py --policy_out=tf_reorder/data/runtime_policy.json
    python benchmarks/bench_runtimes.py --target=per_runtime  # check the policy's promise
    python benchmarks/bench_runtimes.py --models=cifar_bn,xception_bn \
        --policy_base=tf_reorder/data/runtime_policy.json \
        --policy_out=tf_reorder/data/runtime_policy.json      # re-measure one family

Models (`--models`): `vgg_style` (four blocks of two 3x3 convolutions and a 2x2
max pool; rebuilt with each of `--activations`), `resnet50` and `inception_v3`
(keras.applications, weights=None, their own relus), `text_cnn` (Keras' IMDB
CNN: Conv1D -> GlobalMaxPooling1D, relu), `conv3d` (two Conv3D + MaxPool3D,
relu), and the two batch norm models, `cifar_bn` (three blocks of
[Conv2D(relu) -> BatchNormalization] x 2 -> MaxPooling2D: relu and batch norm
move together) and `xception_bn` (Xception's entry flow without residuals: four
SeparableConv2D -> BatchNormalization -> MaxPooling2D(3, 2) blocks: the batch
norm moves alone, off the convolution that TFLite, ONNX Runtime and Grappler's
remapper may fold it into). Runtimes (`--runtimes`): `keras` (eager), `tf`
(tf.function), `xla` (tf.function with jit_compile), `tflite` (converter +
LiteRT interpreter), `onnx` (tf2onnx + ONNX Runtime), `jax` (Keras on the JAX
backend, jitted; run in a child process, since a process has one Keras backend).

For each (model, activation, runtime) cell, in one process: the original
model, `tf_reorder.reorder(model, target=--target)`, and the linear twin (the
same weights with every activation the identity) are prepared for the runtime,
their outputs compared (the reordered model must agree with the original),
warmed up, and then timed in `--pairs` interleaved rounds (each round times
every variant once, starting at a rotating position; a sample is the best of
`--repeats` timings of as many back-to-back calls as last `--min_sample_ms`;
the process is pinned to one CPU, `--pin_cpu`). Reported per cell: the median
ratio reordered/original with its interquartile range; the activation elements
per sample before and after; the activations' share of run time (median of
(original - linear) / original); and the limit, 1 - share x fraction of
activation elements removed: the ratio the rewrite would reach if time were
proportional to activation elements.

The batch norm models (`bench_models.INFERENCE_MODELS`; no flag) are reordered
with `inference=True`, and their one cell per runtime is keyed by the family
that moves, activation "batch_normalization", so the policy gets a
"batch_normalization" entry per runtime (the worse of the two models; in cifar_bn
the relus that the batch norm unblocks move with it and are part of the
measurement). For them the linear twin also makes every BatchNormalization the
identity, and the activation elements count the batch norms' outputs too (the
report counts their sites). The packaged policy has no "batch_normalization"
entry until a run writes one, so with `--target=per_runtime` (or any runtime
target) their cells move nothing and are marked unchanged (A/A).

Outputs in `--out` (a directory): RESULTS.json, RESULTS.md (tables) and
RESULTS.png (ratio per cell, limit marked). `--policy_out` also writes the
runtime policy that `reorder(model, target=...)` reads, with its provenance; a
"batch_normalization" entry is copied to "fused_batch_norm", the GraphDef pass's
name for the op a SavedModel of the same model holds (`with_graph_aliases`).
Threads are pinned (`--threads`, default 1) in TF, the TFLite interpreter,
ONNX Runtime (spinning off) and XLA (JAX child) alike.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["vgg_style", "resnet50", "inception_v3", "text_cnn", "conv3d",
                            "cifar_bn", "xception_bn"],
                  "Models to time (see the module docstring).")
flags.DEFINE_list("activations", ["relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh",
                                  "softplus"],
                  "Activations the vgg_style net is rebuilt with (others keep relu).")
flags.DEFINE_list("runtimes", ["keras", "tf", "xla", "tflite", "onnx", "jax"],
                  "Runtimes: keras, tf, xla, tflite, onnx, jax.")
flags.DEFINE_integer("batch", 1, "Batch size.", lower_bound=1)
flags.DEFINE_integer("image_size", 128, "Image side for the image models (conv3d uses a "
                     "quarter of it, inception_v3 at least 75).", lower_bound=32)
flags.DEFINE_integer("threads", 1, "Threads for every runtime (0: each runtime's default).",
                     lower_bound=0)
flags.DEFINE_integer("pairs", 30, "Interleaved timing rounds per cell.", lower_bound=1)
flags.DEFINE_integer("warmup", 3, "Untimed calls of each variant before timing.", lower_bound=1)
flags.DEFINE_float("min_sample_ms", 20.0, "A timing of back-to-back calls lasts at least "
                   "this long.", lower_bound=0.0)
flags.DEFINE_integer("repeats", 5, "A sample is the best of this many timings.",
                     lower_bound=1)
flags.DEFINE_string("pin_cpu", "last", "Pin the benchmark (and the JAX child) to one CPU: "
                    "'last', 'none', or a CPU number.")
flags.DEFINE_string("target", "any", "The runtime policy `reorder` is called with; "
                    "'per_runtime': each runtime's cells use the policy of that runtime.")
flags.DEFINE_string("out", "benchmarks/results", "Directory for RESULTS.json/.md/.png.")
flags.DEFINE_string("policy_out", None, "If set: write the runtime policy JSON here.")
flags.DEFINE_string("policy_base", None, "With --policy_out: start from this policy file "
                    "and replace only the (runtime, family) entries measured now "
                    "(tf_reorder.policy.update_policy), e.g. to re-measure one family.")
flags.DEFINE_float("policy_threshold", 1.01, "The policy moves an activation on a runtime "
                   "where its worst measured median ratio is at most this.")
flags.DEFINE_string("cells_out", None, "Internal: the JAX child writes its cells here.")

PER_RUNTIME = "per_runtime"
# Policy families the graph pass uses for what the Keras pass measures under another
# name: a Keras BatchNormalization is a FusedBatchNormV3 in the SavedModel's graph.
GRAPH_ALIASES = {"batch_normalization": ("fused_batch_norm",)}


def with_graph_aliases(data: dict[str, Any]) -> dict[str, Any]:
    """The policy file's contents with each measured family's graph-pass aliases added.

    Every runtime's "batch_normalization" entry is copied to "fused_batch_norm" (the
    same measurement); an alias measured in its own right is kept. `data` is not
    changed.

    Example:

        data = with_graph_aliases(policy.policy_from_measurements(cells, provenance))
        data["runtimes"]["tflite"]["fused_batch_norm"]   # == [...]["batch_normalization"]
    """
    runtimes = {}
    for runtime, families in data["runtimes"].items():
        families = dict(families)
        for family, aliases in GRAPH_ALIASES.items():
            for alias in aliases:
                if family in families and alias not in families:
                    families[alias] = dict(families[family])
        runtimes[runtime] = families
    return {**data, "runtimes": runtimes}


def _versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "ai-edge-litert", "onnxruntime", "tf2onnx", "jax",
                    "numpy"):
        try:
            versions[package.replace("-", "_")] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package.replace("-", "_")] = "not installed"
    return versions


def _pin_threads(threads: int) -> None:
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _agree(a: Any, b: Any) -> tuple[bool, float]:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False, float("inf")
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5)), diff


def measure_cell(model_name: str, activation: str, runtime: str, variants: dict[str, Any],
                 x: Any, base: dict[str, Any]) -> dict[str, Any]:
    """Times one cell; `variants` holds the original, reordered and linear models."""
    import runtimes
    import timing

    cell = {"model": model_name, "activation": activation, "runtime": runtime, **base}
    try:
        calls = [runtimes.prepare(runtime, variants[k], x, FLAGS.threads)
                 for k in ("original", "reordered", "linear")]
    except runtimes.Unavailable as error:
        cell.update(ratio=None, error=str(error))
        return cell
    outputs = [call() for call in calls[:2]]
    ok, diff = _agree(*outputs)
    cell["max_abs_diff"] = diff
    if not ok:
        cell.update(ratio=None, error=f"reordered output differs from the original by {diff:g}")
        return cell
    for call in calls:
        for _ in range(FLAGS.warmup):
            call()
    per_sample = max(timing.calls_per_sample(call, FLAGS.min_sample_ms / 1000) for call in calls)
    rounds = timing.interleaved(calls, pairs=FLAGS.pairs, calls_per_sample=per_sample,
                                repeats=FLAGS.repeats)
    ratios = [r[1] / r[0] for r in rounds]
    shares = [(r[0] - r[2]) / r[0] for r in rounds]
    q1, ratio, q3 = timing.quartiles(ratios)
    share = timing.quartiles(shares)[1]
    fraction = base["elements_saved"] / base["activation_elements"] \
        if base["activation_elements"] else 0.0
    cell.update(
        ratio=ratio, q1=q1, q3=q3, share=share, fraction_removed=fraction,
        limit=timing.limit_ratio(share, fraction),
        ms_original=timing.quartiles([r[0] for r in rounds])[1] * 1000,
        ms_reordered=timing.quartiles([r[1] for r in rounds])[1] * 1000,
        ms_linear=timing.quartiles([r[2] for r in rounds])[1] * 1000,
        calls_per_sample=per_sample, repeats=FLAGS.repeats, pairs=FLAGS.pairs, error=None,
    )
    return cell


def run_cells(runtime_names: list[str]) -> list[dict[str, Any]]:
    """Every (model, activation) for the given runtimes of this process's backend."""
    import gc

    import bench_models
    import tf_reorder

    cells: list[dict[str, Any]] = []
    if not runtime_names:  # e.g. --runtimes=jax: the parent has nothing to time itself
        return cells
    for model_name in FLAGS.models:
        inference = bench_models.reorders_for_inference(model_name)
        for activation in bench_models.cell_activations(model_name, FLAGS.activations):
            model = bench_models.build(model_name, activation, FLAGS.image_size)
            linear = bench_models.linearized(model, inference=inference)
            total = bench_models.activation_elements(model, inference=inference)
            x = bench_models.sample_input(model, FLAGS.batch)
            rewritten: dict[str, tuple[Any, Any]] = {}
            for runtime in runtime_names:
                target = runtime if FLAGS.target == PER_RUNTIME else FLAGS.target
                if target not in rewritten:
                    rewritten[target] = tf_reorder.reorder(model, return_report=True,
                                                            target=target, inference=inference)
                reordered, report = rewritten[target]
                base = {
                    "target": target, "inference": inference,
                    "policy": report.sites[0].policy if report.sites else target,
                    "sites": len(report.sites), "sites_moved": len(report.moved),
                    "activation_elements": total, "elements_saved": report.elements_saved,
                    "activation_elements_after": total - report.elements_saved,
                    "unchanged": not report.moved,
                }
                if not report.moved:
                    base["note"] = ("policy moved no site: the same model twice, "
                                    "so the ratio measures noise (A/A)")
                variants = {"original": model, "reordered": reordered, "linear": linear}
                cell = measure_cell(model_name, activation, runtime, variants, x, base)
                cells.append(cell)
                if cell["ratio"] is None:
                    logging.warning("%s / %s / %s: %s", model_name, activation, runtime,
                                    cell["error"])
                else:
                    print(f"{model_name:>12} {activation:>10} {runtime:>6}: ratio "
                          f"{cell['ratio']:.3f} (IQR {cell['q1']:.3f}-{cell['q3']:.3f}), "
                          f"limit {cell['limit']:.3f}, original {cell['ms_original']:.2f} ms"
                          f" [{cell['sites_moved']}/{cell['sites']} moved, target {target}]",
                          flush=True)
            del model, linear, rewritten
            gc.collect()
    return cells


def run_jax_child(argv: list[str]) -> list[dict[str, Any]]:
    """Runs the JAX cells in a child process with KERAS_BACKEND=jax; returns its cells."""
    with tempfile.TemporaryDirectory() as directory:
        out = os.path.join(directory, "cells.json")
        env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
        if FLAGS.threads == 1:
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                                " --xla_cpu_multi_thread_eigen=false"
                                " intra_op_parallelism_threads=1").strip()
        forwarded = [a for a in argv[1:] if not a.startswith(("--runtimes", "--out",
                                                              "--policy_out", "--policy_base",
                                                              "--cells_out"))]
        command = [sys.executable, os.path.abspath(__file__), *forwarded, "--runtimes=jax",
                   f"--cells_out={out}"]
        done = subprocess.run(command, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the JAX child failed with exit status {done.returncode}")
        with open(out) as f:
            return json.load(f)


def main(argv: list[str]) -> None:
    import runtimes
    import timing

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        cpu = timing.pin_to_cpu(FLAGS.pin_cpu)
    except ValueError as error:
        raise app.UsageError(f"--pin_cpu: {error}") from None
    unknown = sorted(set(FLAGS.runtimes) - set(runtimes.RUNTIMES))
    if unknown:
        raise app.UsageError(f"--runtimes: unknown {unknown}; known: {list(runtimes.RUNTIMES)}")
    import bench_models

    unknown = sorted(set(FLAGS.models) - set(bench_models.MODELS))
    if unknown:
        raise app.UsageError(f"--models: unknown {unknown}; known: {list(bench_models.MODELS)}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    import keras

    if FLAGS.cells_out:  # the JAX child
        if keras.backend.backend() != "jax":
            raise app.UsageError("--cells_out is for the JAX child (KERAS_BACKEND=jax)")
        cells = run_cells([r for r in FLAGS.runtimes if r in runtimes.JAX_RUNTIMES])
        with open(FLAGS.cells_out, "w") as f:
            json.dump(cells, f)
        return
    if keras.backend.backend() != "tensorflow":
        raise app.UsageError("run with KERAS_BACKEND=tensorflow (the JAX cells run in a child)")
    _pin_threads(FLAGS.threads)
    # sys.argv: absl's `argv` has the flags taken out.
    command = " ".join(["python benchmarks/bench_runtimes.py",
                        *(shlex.quote(a) for a in sys.argv[1:])])
    cells = run_cells([r for r in FLAGS.runtimes if r in runtimes.TF_RUNTIMES])
    if any(r in runtimes.JAX_RUNTIMES for r in FLAGS.runtimes):
        cells += run_jax_child(list(sys.argv))
    order = {name: i for i, name in enumerate(FLAGS.runtimes)}
    cells.sort(key=lambda c: (FLAGS.models.index(c["model"]),
                              FLAGS.activations.index(c["activation"])
                              if c["activation"] in FLAGS.activations else -1,
                              order[c["runtime"]]))
    environment = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "threads": FLAGS.threads or "runtime default",
        "batch": FLAGS.batch,
        "image_size": FLAGS.image_size,
        "pairs": FLAGS.pairs,
        "repeats": FLAGS.repeats,
        "pinned_cpu": cpu,
        "target": FLAGS.target,
        "versions": _versions(),
        "runtimes": {r: runtimes.DESCRIPTIONS[r] for r in FLAGS.runtimes},
    }
    payload = {"command": command, "environment": environment, "cells": cells}
    import results_output

    paths = results_output.write_all(payload, FLAGS.out)
    print(results_output.pivot_table(cells))
    print("wrote " + ", ".join(paths.values()))
    if FLAGS.policy_out:
        from tf_reorder import policy

        provenance = {"command": command, "date": environment["date"],
                      "versions": environment["versions"], "machine": environment["machine"],
                      "threshold": FLAGS.policy_threshold}
        data = with_graph_aliases(policy.policy_from_measurements(
            cells, provenance, threshold=FLAGS.policy_threshold))
        if FLAGS.policy_base:
            with open(FLAGS.policy_base, encoding="utf-8") as f:
                data = policy.update_policy(json.load(f), data)
        results_output.write_atomic(FLAGS.policy_out, json.dumps(data, indent=2) + "\n")
        print(f"wrote the runtime policy {FLAGS.policy_out}")


if __name__ == "__main__":
    from tf_reorder.flags_parsing import flags_parser

    app.run(main, flags_parser=flags_parser("bench_runtimes.py"))
