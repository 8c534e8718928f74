"""ConstantFolder: values computed from Consts and known variables, and what is no constant."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import node_def_pb2

from tf_reorder.graph_constants import ConstantFolder


def _nodes(fn, *specs):
    graph_def = tf.function(fn).get_concrete_function(*specs).graph.as_graph_def()
    return {node.name: node for node in graph_def.node}, graph_def


def _named(nodes, op):
    return [name for name, node in nodes.items() if node.op == op]


def test_batch_normalization_scale_is_folded_as_numpy_computes_it():
    gamma = np.array([0.5, 2.0, 1.5], "float32")
    variance = np.array([0.25, 1.0, 4.0], "float32")
    nodes, _ = _nodes(lambda: tf.math.rsqrt(tf.constant(variance) + 1e-3) * tf.constant(gamma))
    (mul,) = _named(nodes, "Mul")
    folder = ConstantFolder(nodes, {})
    expected = np.reciprocal(np.sqrt(variance + np.float32(1e-3))) * gamma
    value = folder.value(mul)
    assert value.dtype == np.float32 and np.array_equal(value, expected)
    assert not folder.reads_variable(mul)


def test_a_const_is_read_through_identities_and_a_placeholder_is_no_constant():
    spec = tf.TensorSpec([3], tf.float32)
    nodes, _ = _nodes(lambda x: (tf.identity(tf.identity(tf.constant([1.0, 2.0, 3.0]))),
                                 x * 2.0), spec)
    folder = ConstantFolder(nodes, {})
    identity = next(n for n in _named(nodes, "Identity")
                    if nodes[nodes[n].input[0]].op == "Identity")
    np.testing.assert_array_equal(folder.value(identity), [1.0, 2.0, 3.0])
    assert folder.value(_named(nodes, "Mul")[0]) is None
    assert folder.value("no such node") is None


def test_a_variable_read_is_a_constant_only_with_its_value():
    read = node_def_pb2.NodeDef(name="read", op="ReadVariableOp", input=["scale_resource"])
    mul = node_def_pb2.NodeDef(name="mul", op="Mul", input=["read", "read"])
    nodes = {"read": read, "mul": mul}
    assert ConstantFolder(nodes, {}).value("mul") is None
    folder = ConstantFolder(nodes, {"scale_resource": np.array([3.0], "float32")})
    np.testing.assert_array_equal(folder.value("mul"), [9.0])
    assert folder.reads_variable("mul")


@pytest.mark.parametrize("values", [
    [np.inf, 1.0], [np.nan, 1.0], [1e-39, 1.0],  # infinite, NaN, denormal
], ids=["inf", "nan", "denormal"])
def test_values_that_are_not_finite_normal_floats_are_not_folded(values):
    nodes, _ = _nodes(lambda: tf.constant(np.array(values, "float32")) * 1.0)
    assert ConstantFolder(nodes, {}).value(_named(nodes, "Mul")[0]) is None


def test_integer_arithmetic_is_not_folded_but_a_reshape_by_a_const_shape_is():
    nodes, _ = _nodes(lambda: (tf.constant([1, 2]) + 1,
                               tf.reshape(tf.constant([1.0, 2.0, 3.0, 4.0]), [2, 2])))
    folder = ConstantFolder(nodes, {})
    assert folder.value(_named(nodes, "AddV2")[0]) is None
    np.testing.assert_array_equal(folder.value(_named(nodes, "Reshape")[0]),
                                  [[1.0, 2.0], [3.0, 4.0]])


def test_a_cycle_is_no_constant():
    a = node_def_pb2.NodeDef(name="a", op="Mul", input=["b", "c"])
    b = node_def_pb2.NodeDef(name="b", op="Identity", input=["a"])
    c = node_def_pb2.NodeDef(name="c", op="Const")
    c.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.float32(2.0)))
    folder = ConstantFolder({"a": a, "b": b, "c": c}, {})
    assert folder.value("a") is None and folder.value("b") is None
    assert folder.value("c") == 2.0


def test_forget_drops_values_of_a_graph_that_changed():
    c = node_def_pb2.NodeDef(name="c", op="Const")
    c.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.float32(2.0)))
    nodes = {"c": c, "i": node_def_pb2.NodeDef(name="i", op="Identity", input=["c"])}
    folder = ConstantFolder(nodes, {})
    assert folder.value("i") == 2.0
    nodes["i"] = node_def_pb2.NodeDef(name="i", op="Identity", input=["missing"])
    assert folder.value("i") == 2.0  # remembered
    folder.forget()
    assert folder.value("i") is None
