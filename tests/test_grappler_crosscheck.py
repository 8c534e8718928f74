"""Cross-check with Grappler: who moves an activation after the max pool, case by case.

Grappler's arithmetic optimizer (`OptimizeMaxOrMinOfMonotonicStage`) swaps
``Max/MaxPool(f(x))`` to ``f(Max/MaxPool(x))``. This module runs Grappler itself
(`tf_optimizer.OptimizeGraph` on a MetaGraphDef of each tf.function graph, the
outputs in the "train_op" fetch collection) on the same small graphs that
tf_reorder rewrites, and asserts the whole decision table below.

Grappler's decision is read off its optimized GraphDef: "moved" if the
activation op is downstream of the pool along the data path, "kept" if it is
still upstream, "fused" if the remapper folded it into ``_FusedConv2D``.
tf_reorder's decision is its Report (and its rewritten graph is checked to
agree). Two Grappler configurations: the arithmetic optimizer alone, and the
arithmetic optimizer then the remapper with every node placed on the CPU (the
remapper fuses only placed nodes, as they are inside the TF runtime).

Measured on TF 2.21 (CPU):

| case                         | Grappler arithmetic | Grappler arithmetic + remapper | tf_reorder |
|------------------------------|---------------------|--------------------------------|------------|
| Relu after BiasAdd + MaxPool | kept                | fused                          | moved      |
| Relu after Conv2D + MaxPool  | moved               | moved                          | moved      |
| Relu after FusedBatchNorm    | kept                | fused                          | moved      |
| Relu6                        | kept                | fused                          | moved      |
| LeakyRelu(0.2)               | kept                | fused                          | moved      |
| Elu                          | moved               | moved                          | moved      |
| Selu                         | moved               | moved                          | moved      |
| Sigmoid                      | moved               | moved                          | moved      |
| Tanh                         | moved               | moved                          | moved      |
| Softplus                     | moved               | moved                          | moved      |
| Softsign                     | moved               | moved                          | moved      |
| Sigmoid + reduce_max         | moved               | moved                          | moved      |
| Relu + Pad + MaxPool         | kept                | fused                          | moved      |
| Sigmoid + Pad + MaxPool      | kept                | kept                           | kept       |
| Relu + AvgPool               | kept                | fused                          | kept       |
| Relu with a second consumer  | kept                | fused                          | kept       |
| Neg + reduce_max             | moved               | moved                          | moved      |
| Neg + MaxPool                | kept                | kept                           | kept       |
| Relu + reduce_min            | kept                | fused                          | moved      |
| Sigmoid + reduce_min         | moved               | moved                          | moved      |
| ClipByValue + MaxPool        | kept                | kept                           | moved      |
| Maximum(x, 0) + MaxPool      | kept                | kept                           | moved      |

Every case runs after a BiasAdd (Conv2D -> BiasAdd -> f -> pool) unless its
name says otherwise. What the table shows:

- Grappler skips Relu and Relu6 right after BiasAdd, and Relu right after
  FusedBatchNorm, even when the remapper is off (then they are neither moved
  nor fused); it moves Relu after a bare Conv2D. It never moves LeakyRelu (not on its monotone list);
  the remapper fuses LeakyRelu into the convolution instead.
- Grappler looks only at the pool's direct input, so it does not reach across
  a Pad even where that is exact (Relu + zero padding); tf_reorder does.
- Neither moves where a move would be wrong (Sigmoid across zero padding,
  anything across an average, an activation with a second consumer):
  tf_reorder refuses with a reason; Grappler's stage does not match these
  shapes at all (a pool's direct input only, Max/MaxPool only, one consumer).
- Grappler's family beyond Max: both flip a max reduction into a min for Neg
  (``Max(Neg(x)) -> Neg(Min(x))``) and leave Neg before a MaxPool (no min pool);
  both move Sigmoid past a Min reduction (Grappler skips a Relu after BiasAdd there
  too). Grappler does not take clamps (ClipByValue, Maximum with a constant) as
  monotone; tf_reorder moves them, bitwise.
- All graphs (original, both Grappler outputs, tf_reorder's) give the same
  outputs, run in a Session with Grappler off: bitwise for the relu family
  wherever no convolution was fused, rtol 1e-6 otherwise. (On TF 2.21 CPU
  every output here was in fact bitwise equal, the fused ones included.)

Run: ``python -m pytest -q tests/test_grappler_crosscheck.py``
"""

import dataclasses
import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.grappler import tf_optimizer

import tf_reorder

RNG = np.random.default_rng(0)
# Kept below TF's 128-element limit for inlining captured eager tensors, so every
# weight is a Const in the graph (no captured placeholders to feed).
KERNEL = tf.constant(RNG.standard_normal((3, 3, 3, 4)).astype("float32"))
BIAS = tf.constant(RNG.standard_normal(4).astype("float32"))
SCALE = tf.constant(RNG.uniform(0.5, 1.5, 4).astype("float32"))
MEAN = tf.constant(RNG.standard_normal(4).astype("float32"))
VARIANCE = tf.constant(RNG.uniform(0.5, 1.5, 4).astype("float32"))
SPEC = tf.TensorSpec([2, 16, 16, 3], tf.float32, name="x")
X = RNG.standard_normal((2, 16, 16, 3)).astype("float32")
PADDING = [[0, 0], [1, 1], [1, 1], [0, 0]]
CPU = "/job:localhost/replica:0/task:0/device:CPU:0"
POOL_OPS = frozenset({"MaxPool", "MaxPoolV2", "Max", "Min", "AvgPool"})
RELU_FAMILY = frozenset({"Relu", "Relu6", "LeakyRelu"})


def conv(x):
    return tf.nn.bias_add(tf.nn.conv2d(x, KERNEL, 1, "SAME"), BIAS)


def batch_norm(x):
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(tf.nn.conv2d(x, KERNEL, 1, "SAME"), SCALE, BIAS,
                                               MEAN, VARIANCE, is_training=False)
    return y


def pool(x):
    return tf.nn.max_pool2d(x, 2, 2, "VALID")


def padded_pool(x):
    return tf.nn.max_pool2d(tf.pad(x, PADDING), 3, 2, "VALID")


def with_second_consumer(x):
    y = tf.nn.relu(conv(x))
    return pool(y), tf.reduce_mean(y, axis=[1, 2])


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    fn: object
    activation: str  # the op type of f
    grappler: str  # arithmetic optimizer alone
    grappler_remap: str  # arithmetic optimizer, then the remapper (CPU placement)
    tf_reorder: str
    refusal: str = ""  # for a move that would be wrong: words of tf_reorder's reason


MOVED, KEPT, FUSED = "moved", "kept", "fused"

CASES = [
    Case("Relu after BiasAdd + MaxPool", lambda x: pool(tf.nn.relu(conv(x))),
         "Relu", KEPT, FUSED, MOVED),
    Case("Relu after Conv2D + MaxPool",
         lambda x: pool(tf.nn.relu(tf.nn.conv2d(x, KERNEL, 1, "SAME"))),
         "Relu", MOVED, MOVED, MOVED),
    Case("Relu after FusedBatchNorm", lambda x: pool(tf.nn.relu(batch_norm(x))),
         "Relu", KEPT, FUSED, MOVED),
    Case("Relu6", lambda x: pool(tf.nn.relu6(conv(x))), "Relu6", KEPT, FUSED, MOVED),
    Case("LeakyRelu(0.2)", lambda x: pool(tf.nn.leaky_relu(conv(x), 0.2)),
         "LeakyRelu", KEPT, FUSED, MOVED),
    Case("Elu", lambda x: pool(tf.nn.elu(conv(x))), "Elu", MOVED, MOVED, MOVED),
    Case("Selu", lambda x: pool(tf.nn.selu(conv(x))), "Selu", MOVED, MOVED, MOVED),
    Case("Sigmoid", lambda x: pool(tf.sigmoid(conv(x))), "Sigmoid", MOVED, MOVED, MOVED),
    Case("Tanh", lambda x: pool(tf.tanh(conv(x))), "Tanh", MOVED, MOVED, MOVED),
    Case("Softplus", lambda x: pool(tf.nn.softplus(conv(x))), "Softplus", MOVED, MOVED, MOVED),
    Case("Softsign", lambda x: pool(tf.nn.softsign(conv(x))), "Softsign", MOVED, MOVED, MOVED),
    Case("Sigmoid + reduce_max", lambda x: tf.reduce_max(tf.sigmoid(conv(x)), axis=[1, 2]),
         "Sigmoid", MOVED, MOVED, MOVED),
    Case("Relu + Pad + MaxPool", lambda x: padded_pool(tf.nn.relu(conv(x))),
         "Relu", KEPT, FUSED, MOVED),
    Case("Sigmoid + Pad + MaxPool", lambda x: padded_pool(tf.sigmoid(conv(x))),
         "Sigmoid", KEPT, KEPT, KEPT, refusal="zero padding"),
    Case("Relu + AvgPool", lambda x: tf.nn.avg_pool2d(tf.nn.relu(conv(x)), 2, 2, "VALID"),
         "Relu", KEPT, FUSED, KEPT, refusal="averages"),
    Case("Relu with a second consumer", with_second_consumer,
         "Relu", KEPT, FUSED, KEPT, refusal="2 consumers"),
    Case("Neg + reduce_max", lambda x: tf.reduce_max(tf.negative(conv(x)), axis=[1, 2]),
         "Neg", MOVED, MOVED, MOVED),
    Case("Neg + MaxPool", lambda x: pool(tf.negative(conv(x))), "Neg", KEPT, KEPT, KEPT,
         refusal="no min counterpart"),
    Case("Relu + reduce_min", lambda x: tf.reduce_min(tf.nn.relu(conv(x)), axis=[1, 2]),
         "Relu", KEPT, FUSED, MOVED),
    Case("Sigmoid + reduce_min", lambda x: tf.reduce_min(tf.sigmoid(conv(x)), axis=[1, 2]),
         "Sigmoid", MOVED, MOVED, MOVED),
    Case("ClipByValue + MaxPool", lambda x: pool(tf.raw_ops.ClipByValue(
        t=conv(x), clip_value_min=tf.constant(-0.5), clip_value_max=tf.constant(0.5))),
         "ClipByValue", KEPT, KEPT, MOVED),
    Case("Maximum(x, 0) + MaxPool", lambda x: pool(tf.maximum(conv(x), 0.0)),
         "Maximum", KEPT, KEPT, MOVED),
]
IDS = [c.name for c in CASES]


# -- Grappler ------------------------------------------------------------------------------


def grappler(concrete, optimizers, *, place_on_cpu):
    """Grappler's GraphDef for a ConcreteFunction, with only `optimizers` enabled."""
    graph = concrete.graph
    with graph.as_default():  # export_meta_graph refuses to run eagerly
        meta_graph = tf.compat.v1.train.export_meta_graph(graph=graph)
    if place_on_cpu:
        for node in meta_graph.graph_def.node:
            node.device = CPU
    fetch = meta_graph.collection_def["train_op"].node_list.value
    fetch.extend(t.name for t in concrete.outputs)
    config = config_pb2.ConfigProto()
    rewriter = config.graph_options.rewrite_options
    rewriter.optimizers.extend(optimizers)  # a non-empty list runs exactly these, in order
    rewriter.min_graph_nodes = -1  # also optimize tiny graphs
    return tf_optimizer.OptimizeGraph(config, meta_graph, verbose=False)


def placement(graph_def, activation):
    """Where `activation` (an op type) sits relative to the pool in `graph_def`."""
    nodes = {n.name: n for n in graph_def.node}
    found = [n for n in graph_def.node if n.op == activation]
    if not found:
        fused = [n for n in graph_def.node if n.op.startswith("_Fused")
                 and activation.encode() in n.attr["fused_ops"].list.s]
        assert len(fused) == 1, f"no {activation} in {[n.op for n in graph_def.node]}"
        return FUSED
    assert len(found) == 1, f"{len(found)} {activation} nodes"
    seen, frontier = set(), [found[0].name]
    while frontier:  # the activation's data ancestors
        for text in nodes[frontier.pop()].input:
            if text.startswith("^"):
                continue
            name = text.split(":")[0]
            if name not in seen and name in nodes:
                seen.add(name)
                frontier.append(name)
    return MOVED if any(nodes[name].op in POOL_OPS for name in seen) else KEPT


# -- Running -------------------------------------------------------------------------------


def run(graph_def, fetches):
    """The outputs of `graph_def` in a Session with Grappler off (the graph as given)."""
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    config = config_pb2.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    with tf.compat.v1.Session(graph=graph, config=config) as session:
        return session.run(fetches, {"x:0": X})


@dataclasses.dataclass
class Outcome:
    grappler: str
    grappler_remap: str
    tf_reorder: str
    tf_reorder_graph: str  # placement read off tf_reorder's rewritten graph
    site: object
    graphs: dict
    fetches: list


@functools.cache
def outcome(case_name):
    case = next(c for c in CASES if c.name == case_name)
    concrete = tf.function(case.fn).get_concrete_function(SPEC)
    fetches = [t.name for t in concrete.outputs]
    original = concrete.graph.as_graph_def(add_shapes=True)
    arithmetic = grappler(concrete, ["arithmetic"], place_on_cpu=False)
    remapped = grappler(concrete, ["arithmetic", "remap"], place_on_cpu=True)
    rewritten, report = tf_reorder.reorder_graph_def(original, preserve=fetches)
    (site,) = [s for s in report.sites
               if {n.name: n.op for n in original.node}.get(s.activation) == case.activation]
    return Outcome(
        grappler=placement(arithmetic, case.activation),
        grappler_remap=placement(remapped, case.activation),
        tf_reorder=MOVED if site.moved else KEPT,
        tf_reorder_graph=placement(rewritten, case.activation),
        site=site,
        graphs={"original": original, "grappler arithmetic": arithmetic,
                "grappler arithmetic + remapper": remapped, "tf_reorder": rewritten},
        fetches=fetches,
    )


def table(rows):
    header = ("case", "Grappler arithmetic", "Grappler arithmetic + remapper", "tf_reorder")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


# -- Tests ---------------------------------------------------------------------------------


def test_the_whole_table():
    observed = [(c.name, outcome(c.name).grappler, outcome(c.name).grappler_remap,
                 outcome(c.name).tf_reorder) for c in CASES]
    expected = [(c.name, c.grappler, c.grappler_remap, c.tf_reorder) for c in CASES]
    assert observed == expected, "\n" + table(observed)


def test_the_docstring_shows_the_asserted_table():
    rows = [(c.name, c.grappler, c.grappler_remap, c.tf_reorder) for c in CASES]
    assert table(rows) in __doc__


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_tf_reorder_graph_agrees_with_its_report(case):
    assert outcome(case.name).tf_reorder_graph == outcome(case.name).tf_reorder


@pytest.mark.parametrize("case", [c for c in CASES if c.refusal], ids=[c.name for c in CASES
                                                                      if c.refusal])
def test_invalid_moves_are_refused_by_both(case):
    result = outcome(case.name)
    assert result.tf_reorder == KEPT and result.tf_reorder_graph == KEPT
    assert case.refusal in result.site.reason, result.site.reason
    assert MOVED not in (result.grappler, result.grappler_remap)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_graph_gives_the_original_outputs(case):
    result = outcome(case.name)
    expected = run(result.graphs["original"], result.fetches)
    for label, graph_def in result.graphs.items():
        if label == "original":
            continue
        bitwise = case.activation in RELU_FAMILY and not any(
            n.op.startswith("_Fused") for n in graph_def.node)
        for a, b in zip(expected, run(graph_def, result.fetches), strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape, label
            if bitwise:
                assert a.tobytes() == b.tobytes(), label
            else:
                np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6, err_msg=label)
