"""How fast `tf_reorder.reorder_graph_def` is on large GraphDefs, next to Grappler.

Run from the repository root:

    python benchmarks/graph_pass_speed.py
    python benchmarks/graph_pass_speed.py --sizes=1000,10000,50000,200000 --repeats=3 \
        --out=/tmp/graph_pass_speed.json
    python benchmarks/graph_pass_speed.py --sizes=200000 --repeats=1 --profile=20

Each synthetic GraphDef is a chain of identical towers fed by one input
``x: [1, 32, 32, 4]``; a tower (built once in graph mode with
``as_graph_def(add_shapes=True)``, then copied as protos with renamed nodes) is

    conv -> bias_add -> relu    -> max_pool            (moved)
         -> * scale + shift                            (non-candidates)
    conv -> bias_add -> sigmoid -> max_pool            (moved)
    conv -> bias_add -> relu    -> max_pool, and mean  (refused: 2 consumers)
    conv -> bias_add -> tanh    -> avg_pool            (refused: averages)
    + mean + the previous tower's sum                  (non-candidates)

32 nodes with 4 candidate sites (2 moved); every weight is its own Const.
Sizes are rounded to whole towers. The last sum is the fetch.

For each size it warms up once, then times, `--repeats` times, interleaved
(tf_reorder, Grappler, tf_reorder, ...), with `gc.collect()` outside the timed
region:

- tf_reorder: `reorder_graph_def(graph_def, preserve=[fetch])` (pure Python,
  single-threaded; includes its copy of the input GraphDef);
- Grappler: `tf_optimizer.OptimizeGraph` with only the arithmetic optimizer
  enabled (`optimizers=["arithmetic"]`, `min_graph_nodes=-1`), the fetch in the
  "train_op" collection; the time includes serializing the MetaGraphDef,
  creating Grappler's single-machine cluster and parsing the result, as the
  Python API does on every call.

It prints a markdown table of the medians (nodes | sites | tf_reorder s |
nodes/s | Grappler s) and how the per-node time grows with size (1.0 = linear).
TF's intra-op and inter-op pools are pinned to `--threads` (default 1).
The pass turns Python's cyclic garbage collector off while it runs, as its
own code does on every call.

`--applications` adds real graphs: each named `keras.applications` model
(weights=None) traced with `tf.function` at batch 1, its GraphDef with the
function library (nodes counted over the graph and every function body), the
model's outputs as fetches.
`--profile=N` runs tf_reorder once more on the largest size under cProfile and
prints the N most expensive functions by cumulative and by own time.
`--baseline=DIR` also times the tf_reorder of another checkout (see `baseline.py`)
in the same interleaved rounds, and adds the median ratio this / baseline with its
interquartile range.
"""

from __future__ import annotations

import cProfile
import gc
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["1000", "10000", "50000", "200000"],
                  "Approximate node counts of the synthetic GraphDefs.")
flags.DEFINE_integer("repeats", 3, "Timed runs of each pass per size (the median is reported).",
                     lower_bound=1)
flags.DEFINE_string("out", None, "Optional path of a JSON file with the results.")
flags.DEFINE_integer("threads", 1, "TF intra-op and inter-op threads (0: TF's default).",
                     lower_bound=0)
flags.DEFINE_list("applications", ["VGG16", "ResNet152", "InceptionResNetV2", "DenseNet201"],
                  "keras.applications models (weights=None) whose traced graphs are timed "
                  "too; empty for none.")
flags.DEFINE_string("baseline", None, "A checkout of another tf_reorder commit to time "
                    "interleaved with this one (`git worktree add DIR COMMIT`).")
flags.DEFINE_integer("profile", 0, "If > 0: profile tf_reorder on the largest size and print "
                     "this many functions.", lower_bound=0)

SPATIAL, CHANNELS = 32, 4


def tower_template() -> Any:
    """One tower as a GraphDef with shapes; "x" and "previous" are its inputs."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)

    def const(*shape: int) -> Any:
        return tf.constant(rng.standard_normal(shape).astype("float32"))

    def conv(h: Any) -> Any:
        return tf.nn.bias_add(tf.nn.conv2d(h, const(3, 3, CHANNELS, CHANNELS), 1, "SAME"),
                              const(CHANNELS))

    def pool(h: Any) -> Any:
        return tf.nn.max_pool2d(h, 2, 2, "VALID")

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, SPATIAL, SPATIAL, CHANNELS], name="x")
        previous = tf.compat.v1.placeholder(tf.float32, [1, 2, 2, CHANNELS], name="previous")
        h = pool(tf.nn.relu(conv(x)))  # moved
        h = h * const(CHANNELS) + const(CHANNELS)  # non-candidates
        h = pool(tf.sigmoid(conv(h)))  # moved
        shared = tf.nn.relu(conv(h))  # refused: a second consumer
        side = tf.reduce_mean(shared, axis=[1, 2], keepdims=True)
        h = tf.nn.avg_pool2d(tf.tanh(conv(pool(shared))), 2, 2, "VALID")  # refused: averages
        tf.add(previous, h + side, name="sum")
    return graph.as_graph_def(add_shapes=True)


def build(nodes: int, template: Any) -> tuple[Any, str]:
    """A GraphDef of about `nodes` nodes: a chain of copies of `template`."""
    from tensorflow.core.framework import graph_pb2

    shared = {"x", "previous"}
    body = [n for n in template.node if n.name not in shared]
    towers = max(1, round((nodes - len(shared)) / len(body)))
    graph_def = graph_pb2.GraphDef()
    graph_def.versions.CopyFrom(template.versions)
    for node in template.node:
        if node.name in shared:
            graph_def.node.add().CopyFrom(node)
    for t in range(towers):
        prefix = f"t{t}/"
        previous = "previous" if t == 0 else f"t{t - 1}/sum"
        for node in body:
            new = graph_def.node.add()
            new.CopyFrom(node)
            new.name = prefix + node.name
            for i, text in enumerate(node.input):
                control = text.startswith("^")
                name, _, port = text.lstrip("^").partition(":")
                name = "x" if name == "x" else previous if name == "previous" else prefix + name
                new.input[i] = ("^" if control else "") + name + (f":{port}" if port else "")
    return graph_def, f"t{towers - 1}/sum"


def run_tf_reorder(graph_def: Any, fetches: list[str]) -> Any:
    import tf_reorder

    return tf_reorder.reorder_graph_def(graph_def, preserve=fetches)


def run_grappler(graph_def: Any, fetches: list[str]) -> Any:
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
    from tensorflow.python.grappler import tf_optimizer

    meta_graph = meta_graph_pb2.MetaGraphDef()
    meta_graph.graph_def.CopyFrom(graph_def)
    meta_graph.collection_def["train_op"].node_list.value.extend(
        f.split(":")[0] for f in fetches)
    config = config_pb2.ConfigProto()
    rewriter = config.graph_options.rewrite_options
    rewriter.optimizers.append("arithmetic")
    rewriter.min_graph_nodes = -1
    return tf_optimizer.OptimizeGraph(config, meta_graph, verbose=False)


def grappler_moved(graph_def: Any) -> int:
    """Activations whose input is a max pool in Grappler's output (the moved ones)."""
    ops = {n.name: n.op for n in graph_def.node}
    activations = {"Relu", "Sigmoid", "Tanh"}
    return sum(1 for n in graph_def.node if n.op in activations and n.input
               and ops.get(n.input[0].split(":")[0]) in ("MaxPool", "Max"))


def _timed(fn: Any, *args: Any) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def node_count(graph_def: Any) -> int:
    return len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)


def compare(graph_def: Any, fetches: list[str], repeats: int,
            baseline: Any = None) -> dict[str, Any]:
    """Times both passes on one GraphDef, interleaved, after one warm-up each."""
    _, (_, report) = _timed(run_tf_reorder, graph_def, fetches)
    _, optimized = _timed(run_grappler, graph_def, fetches)
    def run_baseline(g: Any, f: list[str]) -> Any:
        return baseline.reorder_graph_def(g, preserve=f)

    if baseline is not None:
        _timed(run_baseline, graph_def, fetches)
    ours, theirs, base = [], [], []
    for _ in range(repeats):
        elapsed, result = _timed(run_tf_reorder, graph_def, fetches)
        ours.append(elapsed)
        del result
        elapsed, result = _timed(run_grappler, graph_def, fetches)
        theirs.append(elapsed)
        del result
        if baseline is not None:
            elapsed, result = _timed(run_baseline, graph_def, fetches)
            base.append(elapsed)
            del result
    size = node_count(graph_def)
    median = statistics.median(ours)
    extra: dict[str, Any] = {}
    if base:
        ratios = sorted(a / b for a, b in zip(ours, base))
        q1, q3 = (statistics.quantiles(ratios, n=4, method="inclusive")[::2]
                  if len(ratios) > 1 else (ratios[0], ratios[0]))
        extra = {"baseline_median_s": statistics.median(base),
                 "vs_baseline_median": statistics.median(ratios), "vs_baseline_q1": q1,
                 "vs_baseline_q3": q3, "baseline_s": base}
    return {**extra, 
        "nodes": size,
        "sites": len(report.sites),
        "moved": len(report.moved),
        "grappler_moved": grappler_moved(optimized),
        "tf_reorder_median_s": median,
        "nodes_per_s": size / median,
        "grappler_median_s": statistics.median(theirs),
        "tf_reorder_s": ours,
        "grappler_s": theirs,
    }


def measure(nodes: int, repeats: int, template: Any, baseline: Any = None) -> dict[str, Any]:
    graph_def, fetch = build(nodes, template)
    return {"graph": f"synthetic {nodes:,}", **compare(graph_def, [fetch], repeats, baseline)}


def measure_application(name: str, repeats: int, baseline: Any = None) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    builder = getattr(keras.applications, name, None)
    if builder is None or not callable(builder):
        raise app.UsageError(f"--applications: keras.applications has no model '{name}'")
    model = builder(weights=None)
    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
    concrete = tf.function(model).get_concrete_function(spec)
    graph_def = concrete.graph.as_graph_def(add_shapes=True)
    fetches = [t.name for t in concrete.outputs]
    del model, concrete
    return {"graph": name, **compare(graph_def, fetches, repeats, baseline)}


def table(results: list[dict[str, Any]]) -> str:
    baseline = any("baseline_median_s" in r for r in results)
    lines = ["| graph | nodes | sites (moved) | tf_reorder s | nodes/s | Grappler s "
             "| Grappler moved |" + (" baseline s | vs baseline | vs baseline IQR |"
                                     if baseline else ""),
             "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if baseline else "")]
    for r in results:
        row = (f"| {r['graph']} | {r['nodes']:,} | {r['sites']:,} ({r['moved']:,}) "
               f"| {r['tf_reorder_median_s']:.3f} | {r['nodes_per_s']:,.0f} "
               f"| {r['grappler_median_s']:.3f} | {r['grappler_moved']:,} |")
        if baseline:
            row += (f" {r['baseline_median_s']:.3f} | {r['vs_baseline_median']:.3f} "
                    f"| {r['vs_baseline_q1']:.3f}–{r['vs_baseline_q3']:.3f} |")
        lines.append(row)
    return "\n".join(lines)


def profile(nodes: int, template: Any, count: int) -> str:
    graph_def, fetch = build(nodes, template)
    profiler = cProfile.Profile()
    profiler.enable()
    run_tf_reorder(graph_def, [fetch])
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(count)
    stats.sort_stats("tottime").print_stats(count)
    return out.getvalue()


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        sizes = [int(s) for s in FLAGS.sizes]
    except ValueError as error:
        raise app.UsageError(f"--sizes must be integers: {FLAGS.sizes}") from error
    if sizes and min(sizes) < 1:
        raise app.UsageError("--sizes must be positive")
    if not sizes and not FLAGS.applications:
        raise app.UsageError("nothing to time: --sizes and --applications are both empty")
    if not FLAGS["verbosity"].present:  # the pass logs one INFO line per call
        logging.set_verbosity(logging.WARNING)
    import tensorflow as tf

    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    from baseline import from_flag

    baseline = from_flag(FLAGS.baseline)
    template = tower_template()
    synthetic = [measure(n, FLAGS.repeats, template, baseline) for n in sizes]
    if synthetic:
        base = synthetic[0]["tf_reorder_median_s"] / synthetic[0]["nodes"]
        for r in synthetic:
            r["per_node_vs_smallest"] = r["tf_reorder_median_s"] / r["nodes"] / base
    applications = [measure_application(name, FLAGS.repeats, baseline)
                    for name in FLAGS.applications]
    results = synthetic + applications
    env = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "cpus": os.cpu_count(),
        "threads": FLAGS.threads or "TF default",
        "repeats": FLAGS.repeats,
        "baseline": FLAGS.baseline,
    }
    print(f"reorder_graph_def vs Grappler (arithmetic optimizer only), median of "
          f"{FLAGS.repeats} interleaved runs; TF threads: {env['threads']}; "
          f"TF {env['tensorflow']}, Python {env['python']}, {env['cpus']} CPUs")
    print(table(results))
    if synthetic:
        print("tf_reorder time per node relative to the smallest synthetic size (1.0 = linear): "
              + ", ".join(f"{r['nodes']:,}: {r['per_node_vs_smallest']:.2f}" for r in synthetic))
    if FLAGS.profile and sizes:
        print(profile(max(sizes), template, FLAGS.profile))
    sys.stdout.flush()
    if FLAGS.out:
        from results_output import write_atomic

        write_atomic(FLAGS.out, json.dumps({"environment": env, "results": results}, indent=2))


if __name__ == "__main__":
    from tf_reorder.flags_parsing import flags_parser

    app.run(main, flags_parser=flags_parser("graph_pass_speed.py"))
