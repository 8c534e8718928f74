"""Per-node step stats of the activation kernels TensorFlow runs for a Keras model.

Grappler rewrites a graph before TF runs it, so the Keras graph's activation
shapes are not always what runs. `kernel_times` runs the model as a frozen graph
in a TF1 Session (Grappler on, as under tf.function) and reads the step stats.

Example:

    rows = kernel_times(model, x, runs=20)
    for node, op, shape, ms in rows:
        print(node, op, shape, f"{ms:.3f} ms")
"""

from __future__ import annotations

import collections
import statistics
from typing import Any

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
