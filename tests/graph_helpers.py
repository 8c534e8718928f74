"""tf.function graphs for the GraphDef tests: a conv with bias, a pool, and how to run them."""

import numpy as np
import tensorflow as tf

RNG = np.random.default_rng(0)
KERNEL = tf.constant(RNG.standard_normal((3, 3, 3, 4)).astype("float32"))
BIAS = tf.constant(RNG.standard_normal(4).astype("float32"))
SPEC = tf.TensorSpec([2, 16, 16, 3], tf.float32, name="x")
X = RNG.standard_normal((2, 16, 16, 3)).astype("float32")


def conv(x):
    return tf.nn.bias_add(tf.nn.conv2d(x, tf.cast(KERNEL, x.dtype), 1, "SAME"),
                          tf.cast(BIAS, x.dtype))


def pool(x):
    return tf.nn.max_pool2d(x, 2, 2, "VALID")


def graph_of(fn, spec=SPEC):
    concrete = tf.function(fn).get_concrete_function(spec)
    fetches = [t.name for t in concrete.outputs]
    return concrete.graph.as_graph_def(add_shapes=True), fetches, concrete


def run(graph_def, fetches, x=X):
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run(fetches, {"x:0": x})
