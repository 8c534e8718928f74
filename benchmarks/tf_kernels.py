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

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "vgg_style", "A model of bench_models.MODELS.")
flags.DEFINE_string("activation", "softplus", "The activation (for the vgg_style net).")
flags.DEFINE_integer("image_size", 128, "Image side.", lower_bound=32)
flags.DEFINE_integer("runs", 20, "Traced calls per variant.", lower_bound=1)
flags.DEFINE_string("pin_cpu", "last", "Pin to one CPU: 'last', 'none', or a CPU number.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import bench_models
    import timing
    from tf_kernel_stats import kernel_times

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
