"""How long `tf_reorder.reorder(model)` takes, relative to `keras.models.clone_model(model)`.

Run from the repository root:

    python benchmarks/reorder_speed.py --repeats=5
    python benchmarks/reorder_speed.py --models=VGG16,ResNet50,ResNet152 --repeats=7 \
        --out=/tmp/reorder_speed.json

For each keras.applications model (weights=None, default input shape) it warms
up both calls once, then times them interleaved (reorder, clone_model, reorder,
clone_model, ...) `--repeats` times in this one process, with `gc.collect()`
outside the timed region between runs and each result deleted before the next.
It prints, per model, the median seconds of each and the median of the per-pair
ratios reorder / clone_model with their interquartile range, as a markdown table;
`--out` writes the same numbers (and the raw times) as JSON.

Both calls are Python graph building plus, for clone_model, running the weight
initializers; the TF intra-op and inter-op thread pools are pinned with
`--threads` (default 1; 0 leaves TF's default) and the table says which.

`--baseline=DIR` also times the tf_reorder of another checkout (see `baseline.py`)
in the same interleaved rounds, and adds the median ratio this / baseline with its
interquartile range.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

from absl import app, flags, logging

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["VGG16", "ResNet50", "ResNet152"],
                  "keras.applications model names, built with weights=None.")
flags.DEFINE_integer("repeats", 7, "Timed (reorder, clone_model) pairs per model.",
                     lower_bound=1)
flags.DEFINE_string("out", None, "Optional path of a JSON file with the results.")
flags.DEFINE_integer("threads", 1, "TF intra-op and inter-op threads (0: TF's default).",
                     lower_bound=0)
flags.DEFINE_string("baseline", None, "A checkout of another tf_reorder commit to time "
                    "interleaved with this one (`git worktree add DIR COMMIT`).")


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def _timed(fn: Any, *args: Any) -> float:
    gc.collect()
    start = time.perf_counter()
    result = fn(*args)
    elapsed = time.perf_counter() - start
    del result
    gc.collect()
    return elapsed


def measure(name: str, repeats: int, baseline: Any = None) -> dict[str, Any]:
    import keras

    import tf_reorder

    model = getattr(keras.applications, name)(weights=None)
    report = tf_reorder.plan(model)
    # Warm up once each (first-call costs: tracing caches, imports).
    _timed(tf_reorder.reorder, model)
    _timed(keras.models.clone_model, model)
    if baseline is not None:
        _timed(baseline.reorder, model)
    reorder_s: list[float] = []
    clone_s: list[float] = []
    baseline_s: list[float] = []
    for _ in range(repeats):
        reorder_s.append(_timed(tf_reorder.reorder, model))
        clone_s.append(_timed(keras.models.clone_model, model))
        if baseline is not None:
            baseline_s.append(_timed(baseline.reorder, model))
    ratios = [a / b for a, b in zip(reorder_s, clone_s)]
    q1, q3 = _quartiles(ratios)
    extra: dict[str, Any] = {}
    if baseline_s:
        to_baseline = [a / b for a, b in zip(reorder_s, baseline_s)]
        b1, b3 = _quartiles(to_baseline)
        extra = {"baseline_median_s": statistics.median(baseline_s),
                 "vs_baseline_median": statistics.median(to_baseline),
                 "vs_baseline_q1": b1, "vs_baseline_q3": b3, "baseline_s": baseline_s}
    result = {
        "model": name,
        "layers": len(model.layers),
        "moved_sites": len(report.moved),
        "candidate_sites": len(report.sites),
        "reorder_median_s": statistics.median(reorder_s),
        "clone_model_median_s": statistics.median(clone_s),
        "ratio_median": statistics.median(ratios),
        "ratio_q1": q1,
        "ratio_q3": q3,
        "reorder_s": reorder_s,
        "clone_model_s": clone_s,
        "ratios": ratios,
        **extra,
    }
    del model
    gc.collect()
    return result


def table(results: list[dict[str, Any]]) -> str:
    baseline = any("baseline_median_s" in r for r in results)
    extra_header = " baseline median (s) | vs baseline | vs baseline IQR |" if baseline else ""
    lines = [
        "| model | layers | moved/sites | reorder median (s) | clone_model median (s) "
        "| ratio median | ratio IQR |" + extra_header,
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if baseline else ""),
    ]
    for r in results:
        row = (f"| {r['model']} | {r['layers']} | {r['moved_sites']}/{r['candidate_sites']} "
               f"| {r['reorder_median_s']:.3f} | {r['clone_model_median_s']:.3f} "
               f"| {r['ratio_median']:.3f} | {r['ratio_q1']:.3f}–{r['ratio_q3']:.3f} |")
        if baseline:
            row += (f" {r['baseline_median_s']:.3f} | {r['vs_baseline_median']:.3f} "
                    f"| {r['vs_baseline_q1']:.3f}–{r['vs_baseline_q3']:.3f} |")
        lines.append(row)
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:  # the pass logs one INFO line per call
        logging.set_verbosity(logging.WARNING)
    import tensorflow as tf

    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    import keras

    from baseline import from_flag

    baseline = from_flag(FLAGS.baseline)
    results = []
    for name in FLAGS.models:
        if not hasattr(keras.applications, name):
            raise app.UsageError(f"keras.applications has no model '{name}'")
        results.append(measure(name, FLAGS.repeats, baseline))
    env = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "cpus": os.cpu_count(),
        "threads": FLAGS.threads or "TF default",
        "repeats": FLAGS.repeats,
        "baseline": FLAGS.baseline,
    }
    print(f"reorder vs clone_model, {FLAGS.repeats} interleaved pairs per model; "
          f"TF threads: {env['threads']}; Keras {env['keras']}, TF {env['tensorflow']}, "
          f"{env['cpus']} CPUs")
    print(table(results))
    sys.stdout.flush()
    if FLAGS.out:
        from results_output import write_atomic

        write_atomic(FLAGS.out, json.dumps({"environment": env, "results": results}, indent=2))


if __name__ == "__main__":
    from tf_reorder.flags_parsing import flags_parser

    app.run(main, flags_parser=flags_parser("reorder_speed.py"))
