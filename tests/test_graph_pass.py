"""The GraphDef front end on tf.function graphs: moves where valid, refuses where not."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

import tf_reorder
from tf_reorder import graph_vocabulary
from tf_reorder.policy import load_policy
from graph_helpers import RNG, SPEC, X, conv, graph_of, pool, run
from policy_files import LABELS, RELU_ON_TFLITE, SIGMOID_ON_TF, write_policy

def check(fn, *, moved, exact=True, spec=SPEC, x=X, preserve=None):
    graph_def, fetches, _ = graph_of(fn, spec)
    before = graph_def.SerializeToString()
    new, report = tf_reorder.reorder_graph_def(
        graph_def, preserve=fetches if preserve is None else preserve)
    assert graph_def.SerializeToString() == before, "the input GraphDef was changed"
    assert len(report.moved) == moved, str(report)
    for a, b in zip(run(graph_def, fetches, x), run(new, fetches, x), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        if exact:
            assert a.tobytes() == b.tobytes()
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    return new, report


def ops_in_order(graph_def, fetch):
    """The op types from the output back to the input along input 0."""
    nodes = {n.name: n for n in graph_def.node}
    ops, name = [], fetch.split(":")[0]
    while name in nodes and nodes[name].input:
        ops.append(nodes[name].op)
        name = nodes[name].input[0].split(":")[0]
    return ops


def test_conv_bias_relu_pool_moves_and_keeps_names():
    new, report = check(lambda x: pool(tf.nn.relu(conv(x))), moved=1)
    (site,) = report.sites
    assert (site.elements_before, site.elements_after) == (16 * 16 * 4, 8 * 8 * 4)
    assert ops_in_order(new, "Identity")[:3] == ["Identity", "Relu", "MaxPool"]
    names = sorted(n.name for n in new.node)
    graph_def, _, _ = graph_of(lambda x: pool(tf.nn.relu(conv(x))))
    assert names == sorted(n.name for n in graph_def.node)


@pytest.mark.parametrize("op", [tf.nn.relu, tf.nn.relu6, tf.nn.elu, tf.nn.selu, tf.sigmoid,
                                tf.tanh, tf.nn.softplus, tf.nn.softsign, tf.exp, tf.math.atan,
                                tf.math.asinh, tf.math.erf, tf.math.expm1, tf.floor])
def test_every_activation_op(op):
    exact = graph_vocabulary.activation_of(
        graph_of(lambda x: op(x))[0].node[1]).exact
    check(lambda x: pool(op(conv(x))), moved=1, exact=exact)


@pytest.mark.parametrize("alpha, moves", [(0.2, True), (0.0, True), (-0.3, False)])
def test_leaky_relu_sign_of_alpha(alpha, moves):
    _, report = check(lambda x: pool(tf.nn.leaky_relu(conv(x), alpha)), moved=int(moves),
                      exact=alpha != 0.0)
    if not moves:
        assert "not monotone" in report.sites[0].reason


def test_average_pool_is_refused():
    _, report = check(lambda x: tf.nn.avg_pool2d(tf.nn.relu(conv(x)), 2, 2, "VALID"),
                      moved=0)
    assert "averages" in report.sites[0].reason


def test_non_monotone_op_is_not_a_candidate_or_refused():
    _, report = check(lambda x: pool(tf.nn.silu(conv(x))), moved=0)
    assert not report.moved


def test_activation_that_is_also_returned_is_refused():
    def fn(x):
        y = tf.nn.relu(conv(x))
        return pool(y), y
    _, report = check(fn, moved=0)
    assert "2 consumers" in report.sites[0].reason


def test_preserved_activation_is_refused():
    graph_def, fetches, _ = graph_of(lambda x: pool(tf.nn.relu(conv(x))))
    _, report = tf_reorder.reorder_graph_def(graph_def, preserve=["Relu:0", *fetches])
    assert not report.moved and "preserved" in report.sites[0].reason


def test_pooled_value_that_is_fetched_keeps_its_name():
    graph_def, _, _ = graph_of(lambda x: pool(tf.nn.relu(conv(x))))
    new, report = tf_reorder.reorder_graph_def(graph_def, preserve=["MaxPool2d"])
    assert len(report.moved) == 1
    a, b = run(graph_def, ["MaxPool2d:0"]), run(new, ["MaxPool2d:0"])
    assert a[0].tobytes() == b[0].tobytes()
    assert {n.name: n.op for n in new.node}["MaxPool2d"] == "Relu"


def test_reduce_max_over_any_axes():
    check(lambda x: tf.reduce_max(tf.tanh(conv(x)), axis=[1, 2]), moved=1, exact=False)
    check(lambda x: tf.reduce_max(tf.nn.relu(conv(x)), axis=-1, keepdims=True), moved=1)


@pytest.mark.parametrize("activation, moves", [(tf.nn.relu, True), (tf.tanh, True),
                                               (tf.sigmoid, False)])
def test_zero_padding_needs_f_of_zero_to_be_zero(activation, moves):
    def fn(x):
        return tf.nn.max_pool2d(tf.pad(activation(conv(x)), [[0, 0], [1, 1], [1, 1], [0, 0]]),
                                3, 2, "VALID")
    _, report = check(fn, moved=int(moves), exact=activation is tf.nn.relu)
    if not moves:
        assert "zero padding" in report.sites[0].reason


def test_pad_with_another_constant_is_refused():
    def fn(x):
        padded = tf.pad(tf.nn.relu(conv(x)), [[0, 0], [1, 1], [1, 1], [0, 0]],
                        constant_values=-1.0)
        return pool(padded)
    _, report = check(fn, moved=0)
    assert "pad value" in report.sites[0].reason


def test_identity_chain_and_consecutive_pools():
    _, report = check(lambda x: pool(pool(tf.identity(tf.nn.relu(conv(x))))), moved=1)
    assert report.sites[0].elements_after == 4 * 4 * 4


# -- chains of activations: moved whole, in one pass ---------------------------------------


def _idempotent(new, fetches):
    again, report = tf_reorder.reorder_graph_def(new, preserve=fetches)
    assert not report.moved, str(report)
    assert again.SerializeToString(deterministic=True) == \
        new.SerializeToString(deterministic=True)


def test_adjacent_activations_both_move_in_one_pass():
    """selu -> leaky_relu -> pool: selu feeds the pool only once leaky_relu has moved."""
    fn = lambda x: pool(tf.nn.leaky_relu(tf.nn.selu(conv(x)), 0.3))  # noqa: E731
    new, report = check(fn, moved=2, exact=False)
    assert [(s.activation, s.pool, s.elements_before, s.elements_after)
            for s in report.sites] == [("Selu", "MaxPool2d", 16 * 16 * 4, 8 * 8 * 4),
                                       ("LeakyRelu", "MaxPool2d", 16 * 16 * 4, 8 * 8 * 4)]
    assert ops_in_order(new, "Identity")[:4] == ["Identity", "LeakyRelu", "Selu", "MaxPool"]
    _idempotent(new, ["Identity"])


def test_an_activation_moves_on_after_a_second_pool_as_one_site():
    """sigmoid -> pool -> relu -> pool: sigmoid lands after both pools, relu's turn first."""
    fn = lambda x: pool(tf.nn.relu(pool(tf.sigmoid(conv(x)))))  # noqa: E731
    new, report = check(fn, moved=2, exact=False)
    sigmoid, relu = report.sites
    assert (sigmoid.activation, sigmoid.between, sigmoid.pool) == \
        ("Sigmoid", ("MaxPool2d",), "MaxPool2d_1")
    assert (sigmoid.elements_before, sigmoid.elements_after) == (16 * 16 * 4, 4 * 4 * 4)
    assert (relu.activation, relu.pool, relu.elements_after) == ("Relu", "MaxPool2d_1", 4 * 4 * 4)
    assert report.elements_saved == 16 * 16 * 4 + 8 * 8 * 4 - 2 * 4 * 4 * 4
    assert ops_in_order(new, "Identity")[:5] == ["Identity", "Relu", "Sigmoid", "MaxPool",
                                                 "MaxPool"]
    _idempotent(new, ["Identity"])


def test_an_activation_that_cannot_move_is_reported_once_it_reaches_a_pool():
    """neg -> relu -> pool: relu moves; neg then feeds the pool and is kept, with a reason."""
    fn = lambda x: pool(tf.nn.relu(tf.negative(conv(x))))  # noqa: E731
    new, report = check(fn, moved=1, exact=False)
    assert [s.moved for s in report.sites] == [False, True]
    assert report.sites[0].pool == "MaxPool2d" and report.sites[0].reason
    _idempotent(new, ["Identity"])


def test_pool_3d_and_max_pool_v2():
    spec = tf.TensorSpec([2, 8, 8, 8, 2], tf.float32, name="x")
    x = RNG.standard_normal((2, 8, 8, 8, 2)).astype("float32")
    check(lambda v: tf.nn.max_pool3d(tf.nn.relu(v), 2, 2, "VALID"), moved=1, spec=spec, x=x)
    check(lambda v: tf.raw_ops.MaxPoolV2(input=tf.sigmoid(conv(v)), ksize=[1, 2, 2, 1],
                                         strides=[1, 2, 2, 1], padding="VALID"),
          moved=1, exact=False)


def test_max_pool_with_argmax_is_refused_for_non_strict_functions():
    def fn(x):
        out, argmax = tf.nn.max_pool_with_argmax(tf.nn.relu(conv(x)), 2, 2, "VALID")
        return out, argmax
    _, report = check(fn, moved=0)
    assert "argmax" in report.sites[0].reason


def test_control_dependency_on_the_activation_is_refused():
    def fn(x):
        y = tf.nn.relu(conv(x))
        with tf.control_dependencies([y]):
            z = tf.identity(x)
        return pool(y), z
    _, report = check(fn, moved=0)
    assert "control input" in report.sites[0].reason


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision(dtype):
    spec = tf.TensorSpec([2, 16, 16, 3], dtype, name="x")
    x = X.astype(dtype.as_numpy_dtype)
    new, report = check(lambda v: pool(tf.nn.relu(conv(v))), moved=1, spec=spec, x=x)
    assert any(n.op == "Relu" and n.attr["T"].type == dtype.as_datatype_enum for n in new.node)


def test_cond_branches_and_nested_functions_are_rewritten():
    inner = tf.function(lambda y: pool(tf.nn.elu(y)))

    def fn(x):
        h = conv(x)
        branch = tf.cond(tf.reduce_sum(x) > 0, lambda: tf.reduce_max(tf.tanh(h), axis=[1, 2]),
                         lambda: tf.reduce_max(tf.nn.relu(h), axis=[1, 2]))
        return branch, inner(h)
    new, report = check(fn, moved=3, exact=False)
    assert {s.scope for s in report.moved} != {"graph"}
    assert all(s.scope != "graph" for s in report.moved)
    changed = [f for f in new.library.function
               if any(n.op == "MaxPool" or n.op == "Max" for n in f.node_def)]
    assert changed


def test_device_attrs_are_kept():
    graph_def, fetches, _ = graph_of(lambda x: pool(tf.nn.relu(conv(x))))
    for node in graph_def.node:
        if node.op in ("Relu", "MaxPool"):
            node.device = f"/device:CPU:0#{node.op}"
    new, _ = tf_reorder.reorder_graph_def(graph_def, preserve=fetches)
    devices = {n.op: n.device for n in new.node if n.op in ("Relu", "MaxPool")}
    assert devices == {"Relu": "/device:CPU:0#Relu", "MaxPool": "/device:CPU:0#MaxPool"}


def test_not_a_graph_def():
    with pytest.raises(tf_reorder.ReorderError, match="expected a GraphDef"):
        tf_reorder.reorder_graph_def("graph.pb")
    new, report = tf_reorder.reorder_graph_def(graph_pb2.GraphDef())
    assert not report.sites and not new.node


def test_while_loop_body_is_rewritten():
    def fn(x):
        def body(i, acc):
            return i + 1, acc + tf.reduce_max(tf.nn.relu(conv(x) * tf.cast(i, tf.float32)),
                                              axis=[1, 2])
        _, total = tf.while_loop(lambda i, acc: i < 3, body,
                                 [tf.constant(0), tf.zeros([2, 4])])
        return total
    _, report = check(fn, moved=1)
    assert report.moved[0].scope != "graph"


@pytest.mark.parametrize("where", ["graph", "function"])
def test_chained_sites_in_any_node_order(where):
    """sigmoid -> pool -> relu -> pool: both move, whichever the pass rewrites first.

    Node order in a GraphDef or FunctionDef carries no meaning; reversing it makes
    the second site rewrite before the first, so the first rewrite must see the
    pool's new consumer.
    """
    def chain(v):
        return pool(tf.nn.relu(pool(tf.sigmoid(v))))

    inner = tf.function(chain)
    fn = (lambda x: chain(conv(x))) if where == "graph" else (lambda x: inner(conv(x)))
    graph_def, fetches, _ = graph_of(fn)
    bodies = [graph_def.node] if where == "graph" else [
        f.node_def for f in graph_def.library.function
        if any(n.op == "Sigmoid" for n in f.node_def)]
    assert bodies
    for nodes in bodies:
        reversed_nodes = list(nodes)[::-1]
        copies = [type(n)() for n in reversed_nodes]
        for copy, node in zip(copies, reversed_nodes, strict=True):
            copy.CopyFrom(node)
        del nodes[:]
        nodes.extend(copies)
    new, report = tf_reorder.reorder_graph_def(graph_def, preserve=fetches)
    assert len(report.moved) == 2, str(report)
    (before,), (after,) = run(graph_def, fetches), run(new, fetches)
    np.testing.assert_allclose(before, after, rtol=1e-6, atol=0)


# -- runtime policies (target=) ------------------------------------------------------------


@pytest.fixture
def policy_path(tmp_path):
    return write_policy(tmp_path / "runtime_policy.json")


def _relu_and_sigmoid(x):
    return pool(tf.nn.relu(conv(x))), pool(tf.sigmoid(conv(x)))


def _site(report, function):
    (site,) = [s for s in report.sites if s.function == function]
    return site


def test_policy_keeps_what_the_runtime_measured_slower(policy_path):
    graph_def, fetches, _ = graph_of(_relu_and_sigmoid)
    before = graph_def.SerializeToString()
    new, report = tf_reorder.reorder_graph_def(
        graph_def, preserve=fetches, target=load_policy("tflite", path=policy_path))
    assert graph_def.SerializeToString() == before
    relu, sigmoid = _site(report, "Relu"), _site(report, "Sigmoid")
    assert not relu.moved and relu.reason == RELU_ON_TFLITE
    assert relu.elements_after == relu.elements_before == 16 * 16 * 4
    assert sigmoid.moved and sigmoid.elements_after == 8 * 8 * 4
    assert {s.policy for s in report.sites} == {LABELS["tflite"]}
    assert str(report).splitlines()[1] == f"policy: {LABELS['tflite']}"

    relu_fetch, sigmoid_fetch = fetches
    assert ops_in_order(new, relu_fetch)[:3] == ["Identity", "MaxPool", "Relu"]
    assert ops_in_order(new, sigmoid_fetch)[:3] == ["Identity", "Sigmoid", "MaxPool"]
    (relu_before, sigmoid_before), (relu_after, sigmoid_after) = \
        run(graph_def, fetches), run(new, fetches)
    assert relu_after.tobytes() == relu_before.tobytes()
    np.testing.assert_allclose(sigmoid_after, sigmoid_before, rtol=1e-6, atol=1e-6)

    _, everywhere = tf_reorder.reorder_graph_def(graph_def, preserve=fetches, target="any")
    assert len(everywhere.moved) == 2
    assert {s.policy for s in everywhere.sites} == {"any"}


def test_policy_of_another_runtime_decides_the_other_way(policy_path):
    graph_def, fetches, _ = graph_of(_relu_and_sigmoid)
    _, report = tf_reorder.reorder_graph_def(graph_def, preserve=fetches,
                                             target=load_policy("tf", path=policy_path))
    assert _site(report, "Relu").moved
    assert _site(report, "Sigmoid").reason == SIGMOID_ON_TF
    _, report = tf_reorder.reorder_graph_def(graph_def, preserve=fetches,
                                             target=load_policy("xla", path=policy_path))
    assert len(report.moved) == 2


def test_policy_families_of_tf_ops(policy_path):
    def fn(x):
        return (pool(tf.nn.leaky_relu(conv(x), 0.1)), pool(tf.nn.relu6(conv(x))),
                pool(tf.nn.elu(conv(x))))

    _, report = check(fn, moved=3, exact=False)  # no policy: all three move
    graph_def, fetches, _ = graph_of(fn)
    new, report = tf_reorder.reorder_graph_def(
        graph_def, preserve=fetches, target=load_policy("tflite", path=policy_path))
    assert _site(report, "LeakyRelu(alpha=0.1)").moved  # the family leaky_relu
    assert _site(report, "Elu").moved
    assert _site(report, "Relu6").reason == ("no measurement of relu6 on tflite in the "
                                             "runtime policy (measured 2026-11-23)")
    for a, b in zip(run(graph_def, fetches), run(new, fetches), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_policy_inside_library_functions(policy_path):
    inner = tf.function(lambda y: (pool(tf.nn.relu(y)), pool(tf.sigmoid(y))))
    graph_def, fetches, _ = graph_of(lambda x: inner(conv(x)))
    _, report = tf_reorder.reorder_graph_def(graph_def, preserve=fetches,
                                             target=load_policy("tflite", path=policy_path))
    assert [s.function for s in report.moved] == ["Sigmoid"]
    assert all(s.scope != "graph" for s in report.sites)


def test_reorder_function_with_a_target(policy_path):
    @tf.function
    def fn(x):
        return {"relu": pool(tf.nn.relu(conv(x))), "sigmoid": pool(tf.sigmoid(conv(x)))}

    concrete = fn.get_concrete_function(SPEC)
    new, report = tf_reorder.reorder_function(concrete,
                                              target=load_policy("tflite", path=policy_path))
    assert [s.function for s in report.moved] == ["Sigmoid"]
    assert _site(report, "Relu").reason == RELU_ON_TFLITE
    a, b = concrete(tf.constant(X)), new(tf.constant(X))
    assert a["relu"].numpy().tobytes() == b["relu"].numpy().tobytes()
    np.testing.assert_allclose(a["sigmoid"], b["sigmoid"], rtol=1e-6, atol=1e-6)


def test_a_bad_target_is_a_clear_error(tmp_path):
    graph_def, fetches, concrete = graph_of(_relu_and_sigmoid)
    with pytest.raises(tf_reorder.ReorderError, match="target must be a runtime name"):
        tf_reorder.reorder_graph_def(graph_def, preserve=fetches, target=0)
    with pytest.raises(tf_reorder.ReorderError, match="target must be a runtime name"):
        tf_reorder.reorder_function(concrete, target=0)


# -- per-channel affine maps with constant parameters -------------------------------------

SCALE = RNG.uniform(0.5, 2.0, 4).astype("float32")
SHIFT = RNG.standard_normal(4).astype("float32")


def _fused_bn(x, scale=SCALE, is_training=False):
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        x, tf.constant(scale), tf.constant(SHIFT), tf.constant(-SHIFT),
        tf.constant(RNG.uniform(0.1, 3.0, 4).astype("float32")), epsilon=1e-3,
        is_training=is_training)
    return y


def _sites(report):
    return {site.activation.split("/")[-1]: site for site in report.sites}


def test_fused_batch_norm_moves_with_the_relu_before_it():
    new, report = check(lambda x: pool(_fused_bn(tf.nn.relu(conv(x)))), moved=2, exact=False)
    (bn,) = [s for s in report.sites if s.function.startswith("FusedBatchNormV3")]
    assert (bn.elements_before, bn.elements_after) == (16 * 16 * 4, 8 * 8 * 4)
    assert any("constant values" in note for note in bn.notes), bn
    assert ops_in_order(new, "Identity")[:4] == ["Identity", "FusedBatchNormV3", "Relu",
                                                 "MaxPool"]


def test_fused_batch_norm_right_after_the_conv_moves_alone():
    new, report = check(lambda x: pool(_fused_bn(conv(x))), moved=1, exact=False)
    assert report.moved[0].function.startswith("FusedBatchNormV3(min scale=")
    assert ops_in_order(new, "Identity")[:4] == ["Identity", "FusedBatchNormV3", "MaxPool",
                                                 "BiasAdd"]


def test_fused_batch_norm_with_a_negative_scale_names_the_channel():
    scale = np.array([1.0, 0.5, 2.0, -0.5], "float32")
    _, report = check(lambda x: pool(_fused_bn(tf.nn.relu(conv(x)), scale)), moved=0)
    bn = next(s for s in report.sites if s.function.startswith("FusedBatchNormV3"))
    assert "channel 3 is scaled by -" in bn.reason, bn
    relu = next(s for s in report.sites if s.function == "Relu")
    assert "FusedBatchNormV3" in relu.reason and "stays before it" in relu.reason, relu


def test_fused_batch_norm_in_training_is_no_candidate():
    _, report = check(lambda x: pool(_fused_bn(tf.nn.relu(conv(x)), is_training=True)),
                      moved=0)
    (site,) = report.sites
    assert site.function == "Relu" and "not data movement" in site.reason, site


def test_fused_batch_norm_whose_batch_mean_is_read_is_refused():
    def fn(x):
        y, mean, _ = tf.compat.v1.nn.fused_batch_norm(
            conv(x), tf.constant(SCALE), tf.constant(SHIFT), tf.constant(SHIFT),
            tf.constant(SCALE), is_training=False)
        return pool(y), mean
    _, report = check(fn, moved=0)
    assert "another output" in report.sites[0].reason, report.sites[0]


@pytest.mark.parametrize("affine, name", [
    (lambda y: y * SCALE, "Mul"), (lambda y: y + SHIFT, "AddV2"),
    (lambda y: tf.add(y, SHIFT), "AddV2"), (lambda y: y - SHIFT, "Sub"),
    (lambda y: tf.nn.bias_add(y, SHIFT), "BiasAdd"), (lambda y: y * 0.5, "Mul"),
    (lambda y: y + tf.constant(SHIFT.reshape(1, 1, 1, 4)), "AddV2"),
])
def test_a_constant_per_channel_scale_or_shift_moves_bitwise(affine, name):
    new, report = check(lambda x: pool(affine(tf.nn.relu(conv(x)))), moved=2)
    assert {s.activation.split("/")[-1].split("_")[0] for s in report.moved} >= {"Relu"}
    assert ops_in_order(new, "Identity")[1] == name


@pytest.mark.parametrize("affine, words", [
    (lambda y: y * np.array([1, 1, -1, 1], "float32"), "channel 2 is scaled by -1"),
    (lambda y: y * 0.0, "channel 0 is scaled by 0"),
    (lambda y: y * RNG.uniform(1, 2, (16, 16, 4)).astype("float32"),
     "different function at different positions"),
])
def test_a_scale_that_is_not_positive_or_not_per_channel_is_refused(affine, words):
    _, report = check(lambda x: pool(affine(tf.nn.relu(conv(x)))), moved=0)
    mul = next(s for s in report.sites if s.function.startswith("Mul"))
    assert words in mul.reason, mul


def test_a_per_channel_map_may_not_reach_a_reduction_over_its_channels():
    _, report = check(lambda x: tf.reduce_max(tf.nn.relu(conv(x)) * SCALE, axis=-1),
                      moved=0)
    sites = {s.function.split("(")[0]: s for s in report.sites}
    assert "different function at different positions" in sites["Mul"].reason
    assert "Mul 'mul' between Relu and 'Max' stays before it" in sites["Relu"].reason
    check(lambda x: tf.reduce_max(tf.identity(tf.nn.relu(conv(x)) * SCALE), axis=[1, 2]),
          moved=2)


def test_not_affine_ops_are_no_candidates():
    _, report = check(lambda x: pool(tf.nn.relu(conv(x)) + tf.reverse(conv(x), [1])),
                      moved=0)  # the data in both inputs
    assert [s.function for s in report.sites] == ["Relu"]
    # A constant that broadcasts x larger: no per-channel map.
    def grows(x):
        column = tf.reduce_max(tf.nn.relu(conv(x)), axis=2, keepdims=True)  # [2, 16, 1, 4]
        return tf.reduce_max(column + tf.ones([1, 1, 3, 1]), axis=[1, 2])
    _, report = check(grows, moved=1)
    assert [s.function for s in report.sites] == ["Relu"]


def test_a_bias_after_a_conv_is_part_of_the_conv():
    _, report = check(lambda x: pool(conv(x)), moved=0)
    assert not report.sites  # BiasAdd follows Conv2D: fused there, no candidate


def test_an_average_pool_is_refused_for_an_affine_map():
    _, report = check(lambda x: tf.nn.avg_pool2d(tf.nn.relu(conv(x)) * SCALE, 2, 2,
                                                 "VALID"), moved=0)
    assert all("averages" in s.reason or "stays before it" in s.reason
               for s in report.sites), str(report)


def test_an_affine_map_with_a_second_consumer_is_refused():
    def fn(x):
        y = tf.nn.relu(conv(x)) * SCALE
        return pool(y), tf.reduce_mean(y)
    _, report = check(fn, moved=0)
    mul = next(s for s in report.sites if s.function.startswith("Mul"))
    assert "2 consumers" in mul.reason, mul


@pytest.mark.parametrize("affine", [
    lambda y: _fused_bn(y), lambda y: y + tf.constant(SHIFT.reshape(1, 1, 1, 4))],
    ids=["fused_batch_norm", "rank_4_constant"])
def test_an_op_bound_to_its_rank_does_not_cross_a_reduction(affine):
    _, report = check(lambda x: tf.reduce_max(affine(tf.nn.relu(conv(x))), axis=[1]),
                      moved=0, exact=False)
    kept = next(s for s in report.sites if s.function != "Relu")
    assert "works on tensors of the rank it reads only, and Max 'Max' may change the rank" \
        in kept.reason, kept


def test_a_per_channel_map_crosses_later_pools_with_the_same_channel_axis():
    _, report = check(lambda x: tf.reduce_max(pool(tf.nn.relu(conv(x)) * SCALE), axis=[1, 2]),
                      moved=2)
    assert {s.pool for s in report.moved} == {"Max"}
    assert all(s.elements_after == 4 for s in report.moved), str(report)


# ---------------------------------------------------------------------------
# Grappler's family: min reductions, the max <-> min flip, clamps, argmax.

# Ties and zeros in every window: relu and clamps make more of them.
X_TIES = np.round(RNG.standard_normal((2, 16, 16, 3)) * 2).astype("float32") / 2


@pytest.mark.parametrize("reduce, flipped", [(tf.reduce_max, "Min"), (tf.reduce_min, "Max")])
def test_neg_flips_a_reduction_bitwise(reduce, flipped):
    new, report = check(lambda x: reduce(tf.negative(conv(x)), axis=[1, 2]), moved=1,
                        x=X_TIES)
    assert ops_in_order(new, "Identity")[1:3] == ["Neg", flipped]
    (site,) = report.sites
    assert f"becomes a {flipped.lower()}" in " ".join(site.notes), site
    assert site.elements_after == 4  # one per channel, of 16 * 16 * 4


def test_two_negs_flip_a_reduction_twice():
    new, _ = check(lambda x: tf.reduce_max(tf.negative(tf.negative(conv(x))), axis=[1, 2]),
                   moved=2, x=X_TIES)
    assert ops_in_order(new, "Identity")[1:4] == ["Neg", "Neg", "Max"]


def test_neg_and_relu_move_past_one_reduction_which_becomes_a_min():
    new, _ = check(lambda x: tf.reduce_max(tf.nn.relu(tf.negative(conv(x))), axis=[1, 2]),
                   moved=2, x=X_TIES)
    assert ops_in_order(new, "Identity")[1:4] == ["Relu", "Neg", "Min"]


def test_neg_is_refused_before_a_max_pool_and_an_average():
    _, report = check(lambda x: pool(tf.negative(conv(x))), moved=0)
    assert "no min counterpart" in report.sites[0].reason, report.sites[0]
    _, report = check(lambda x: tf.reduce_mean(tf.negative(conv(x)), axis=[1, 2]), moved=0)
    assert "averages" in report.sites[0].reason, report.sites[0]


@pytest.mark.parametrize("activation", [tf.nn.relu, tf.sigmoid, tf.nn.elu])
def test_a_non_decreasing_activation_moves_past_a_min_reduction(activation):
    exact = activation is tf.nn.relu
    new, _ = check(lambda x: tf.reduce_min(activation(conv(x)), axis=[1, 2]), moved=1,
                   exact=exact, x=X_TIES)
    assert ops_in_order(new, "Identity")[2] == "Min"


@pytest.mark.parametrize("clamp, ops", [
    (lambda y: tf.raw_ops.ClipByValue(t=y, clip_value_min=tf.constant(-0.5),
                                      clip_value_max=tf.constant(0.5)), ["ClipByValue"]),
    (lambda y: tf.clip_by_value(y, -0.5, 0.5), ["Maximum", "Minimum"]),
    (lambda y: tf.minimum(tf.maximum(y, 0.0), 6.0), ["Minimum", "Maximum"]),
    (lambda y: tf.maximum(y, tf.constant([-1.0, -0.5, 0.0, 0.25])), ["Maximum"]),
], ids=["ClipByValue", "clip_by_value", "relu6_by_hand", "per_channel_bound"])
def test_a_clamp_with_constant_bounds_moves_bitwise(clamp, ops):
    new, report = check(lambda x: pool(clamp(conv(x))), moved=len(ops), x=X_TIES)
    assert ops_in_order(new, "Identity")[1:len(ops) + 2] == [*ops, "MaxPool"]
    assert all(s.exact for s in report.sites)


def test_a_clamp_crosses_zero_padding_only_if_it_keeps_zero():
    def padded(low):
        return lambda x: pool(tf.pad(tf.raw_ops.ClipByValue(
            t=conv(x), clip_value_min=tf.constant(low), clip_value_max=tf.constant(6.0)),
            [[0, 0], [1, 1], [1, 1], [0, 0]]))
    check(padded(0.0), moved=1)
    _, report = check(padded(0.5), moved=0)
    assert "(0) != 0" in report.sites[0].reason, report.sites[0]


@pytest.mark.parametrize("clamp", [
    lambda x, y: tf.raw_ops.ClipByValue(t=y, clip_value_min=tf.reduce_min(x),
                                        clip_value_max=tf.constant(0.5)),
    lambda x, y: tf.maximum(y, tf.reverse(y, [1])),
    lambda x, y: tf.raw_ops.ClipByValue(t=y, clip_value_min=tf.constant(np.nan, tf.float32),
                                        clip_value_max=tf.constant(0.5)),
], ids=["tensor_bound", "two_tensors", "nan_bound"])
def test_a_clamp_with_a_bound_computed_at_run_time_or_nan_is_refused(clamp):
    _, report = check(lambda x: pool(clamp(x, conv(x))), moved=0)
    assert report.sites, "the clamp is a candidate and says why it stays"
    reason = report.sites[0].reason
    assert "computed at run time" in reason or "NaN" in reason, report.sites[0]


def test_a_clamp_whose_constant_is_the_first_input_is_no_candidate():
    _, report = check(lambda x: pool(tf.maximum(0.0, conv(x))), moved=0)
    assert not report.sites


@pytest.mark.parametrize("activation, words", [
    (tf.sigmoid, "saturation and underflow"), (tf.negative, "argmax(-x) is argmin(x)")])
def test_argmax_is_refused_with_the_reason(activation, words):
    _, report = check(lambda x: tf.argmax(activation(conv(x)), axis=-1), moved=0)
    (site,) = report.sites
    assert words in site.reason and site.pool == "ArgMax", site


def test_a_flip_inside_a_library_function():
    @tf.function
    def inner(y):
        return tf.reduce_max(tf.negative(y), axis=[1, 2])

    new, report = check(lambda x: inner(conv(x)), moved=1, x=X_TIES)
    (function,) = [f for f in new.library.function if "inner" in f.signature.name]
    assert sorted(n.op for n in function.node_def if n.op in ("Max", "Min")) == ["Min"]


# -- parameters computed from constants (tf.nn.batch_normalization, as Keras traces it) ---

VARIANCE = RNG.uniform(0.1, 3.0, 4).astype("float32")


def _unfused_bn(y, scale=SCALE, variance=VARIANCE, epsilon=1e-3):
    return tf.nn.batch_normalization(y, tf.constant(-SHIFT), tf.constant(variance),
                                     tf.constant(SHIFT), tf.constant(scale), epsilon)


def test_a_scale_computed_from_constants_moves_bitwise():
    new, report = check(lambda x: pool(_unfused_bn(tf.nn.relu(conv(x)))), moved=3)
    assert {s.function.split("(")[0] for s in report.moved} == {"Relu", "Mul", "AddV2"}
    mul = next(s for s in report.moved if s.function.startswith("Mul"))
    assert any("its constant values" in note for note in mul.notes), mul
    assert ops_in_order(new, "Identity")[:5] == ["Identity", "AddV2", "Mul", "Relu", "MaxPool"]


def test_a_computed_scale_with_a_negative_channel_is_refused():
    scale = np.array([1.0, -0.5, 2.0, 0.5], "float32")
    _, report = check(lambda x: pool(_unfused_bn(tf.nn.relu(conv(x)), scale)), moved=1)
    mul = next(s for s in report.sites if s.function.startswith("Mul"))
    assert "channel 1 is scaled by -" in mul.reason, mul


@pytest.mark.parametrize("variance, epsilon", [
    (np.array([1.0, 0.0, 1.0, 1.0], "float32"), 0.0),      # rsqrt(0) = inf
    (np.array([1.0, -2.0, 1.0, 1.0], "float32"), 1e-3),    # rsqrt(< 0) = nan
    (np.array([1.0, 1e-39, 1.0, 1.0], "float32"), 0.0),    # a denormal TF flushes to 0
], ids=["infinite", "nan", "denormal"])
def test_a_scale_that_is_not_a_finite_normal_float_is_not_folded(variance, epsilon):
    fn = lambda x: pool(_unfused_bn(tf.nn.relu(conv(x)), variance=variance,  # noqa: E731
                                    epsilon=epsilon))
    graph_def, fetches, _ = graph_of(fn)
    _, report = tf_reorder.reorder_graph_def(graph_def, preserve=fetches)
    assert not any(s.function.startswith("Mul") for s in report.sites), str(report)
    relu = next(s for s in report.sites if s.function == "Relu")
    assert not relu.moved and "no per-channel map by a constant" in relu.reason, relu


def test_a_long_chain_of_constant_arithmetic_is_folded_without_recursion():
    def fn(x):
        scale = tf.constant(SCALE)
        for _ in range(1500):  # deeper than Python's recursion limit allows
            scale = scale * tf.constant(1.0)
        return pool(tf.nn.relu(conv(x)) * scale)
    _, report = check(fn, moved=2)
    assert {s.function.split("(")[0] for s in report.moved} == {"Relu", "Mul"}
