"""Which activation kernels TensorFlow really runs, on which shapes, for how long.

The limit in bench_runtimes counts activation elements in the Keras graph, but
Grappler rewrites the graph before TF runs it (its arithmetic optimizer already
moves e.g. Softplus after a MaxPool). This binary runs the original and the
reordered model as a frozen graph in a TF1 Session (Grappler on, as under
tf.function), collects per-node step stats over `--runs` calls, and prints, per
variant, every activation kernel with its output shape and mean time.

Run from the repository root:

    python benchmarks/tf_kernels.py --model=vgg_style --activation=softplus

Example output line (per node: name, output shape, mean ms per call):

    original   vgg_style_1/block1_conv2_1/Softplus  [1, 64, 64, 32]  0.509 ms
"""

from __future__ import annotations

import collections
import os
import statistics
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "vgg_style", "A model of bench_models.MODELS.")
flags.DEFINE_string("activation", "softplus", "The activation (for the vgg_style net).")
flags.DEFINE_integer("image_size", 128, "Image side.", lower_bound=32)
flags.DEFINE_integer("runs", 20, "Traced calls per variant.", lower_bound=1)
flags.DEFINE_string("pin_cpu", "last", "Pin to one CPU: 'last', 'none', or a CPU number.")

# TF op types of the activations bench_models uses (fused or not).
ACTIVATION_OPS = frozenset({"Relu", "Relu6", "LeakyRelu", "Elu", "Selu", "Sigmoid", "Tanh",
                            "Softplus", "_FusedConv2D", "_FusedConv3D"})


def kernel_times(model: Any, x: Any, runs: int) -> list[tuple[str, str, list[int], float]]:
    """(node, op, output shape, mean ms per call) for each activation kernel TF ran."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec(x.shape, tf.float32)
    function = tf.function(lambda t: model(t, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(function)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(frozen.graph.as_graph_def(), name="")
    ops = {node.name: node.op for node in frozen.graph.as_graph_def().node}
    feed, fetch = frozen.inputs[0].name, frozen.outputs[0].name
    config = config_pb2.ConfigProto(intra_op_parallelism_threads=1,
                                    inter_op_parallelism_threads=1)
    trace = config_pb2.RunOptions(trace_level=config_pb2.RunOptions.FULL_TRACE)
    micros: dict[str, list[int]] = collections.defaultdict(list)
    shapes: dict[str, list[int]] = {}
    kinds: dict[str, str] = {}
    with tf.compat.v1.Session(graph=graph, config=config) as session:
        for _ in range(3):
            session.run(fetch, {feed: x})
        for _ in range(runs):
            metadata = config_pb2.RunMetadata()
            session.run(fetch, {feed: x}, options=trace, run_metadata=metadata)
            for device in metadata.step_stats.dev_stats:
                for stats in device.node_stats:
                    # Grappler may rename or fuse nodes: the timeline label names the op.
                    label = stats.timeline_label
                    op = label.split("=", 1)[1].split("(")[0].strip() if "=" in label \
                        else ops.get(stats.node_name, "")
                    if op not in ACTIVATION_OPS:
                        continue
                    micros[stats.node_name].append(stats.all_end_rel_micros)
                    kinds[stats.node_name] = op
                    if stats.output:
                        shapes[stats.node_name] = [
                            d.size for d in stats.output[0].tensor_description.shape.dim]
    return [(name, kinds[name], shapes.get(name, []), statistics.mean(values) / 1000)
            for name, values in sorted(micros.items(), key=lambda kv: -sum(kv[1]))]


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import bench_models
    import timing

    if FLAGS.model not in bench_models.MODELS:
        raise app.UsageError(f"--model: unknown '{FLAGS.model}'; known: "
                             f"{', '.join(bench_models.MODELS)}")
    timing.pin_to_cpu(FLAGS.pin_cpu)
    import tf_reorder

    model = bench_models.build(FLAGS.model, FLAGS.activation, FLAGS.image_size)
    x = bench_models.sample_input(model, 1)
    for variant, candidate in (("original", model), ("reordered", tf_reorder.reorder(model))):
        rows = kernel_times(candidate, x, FLAGS.runs)
        total = sum(row[3] for row in rows)
        print(f"{variant}: {len(rows)} activation kernels, {total:.3f} ms per call")
        for name, op, shape, ms in rows:
            print(f"  {variant:<10} {name:<48} {op:<12} {str(shape):<18} {ms:.3f} ms")


if __name__ == "__main__":
    from tf_reorder.flags_parsing import flags_parser

    app.run(main, flags_parser=flags_parser("tf_kernels.py"))
