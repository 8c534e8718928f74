"""`tf_reorder.view`: the DataView the planner moves activations in (no TensorFlow)."""

from tf_reorder import algebra
from tf_reorder.algebra import Step, StepKind
from tf_reorder.view import NO_FACTS, DataView, Facts, Node, Value


def _three() -> tuple[DataView, Value, Node, Node, Node]:
    """input -> relu -> reshape -> pool -> consumer, the pool's output a model output."""
    view = DataView("v")
    x = Value()
    relu = view.add(Node("relu", "ReLU", [x], function=algebra.keras_activation("relu"),
                         elements=16))
    reshape = view.add(Node("reshape", "Reshape", relu.outputs,
                            step=Step(StepKind.DATA_MOVEMENT, "reshape"), elements=16))
    pool = view.add(Node("pool", "MaxPooling2D", reshape.outputs,
                         step=Step(StepKind.MAX_POOL, "pool"), elements=4))
    pool.outputs[0].exits = ("the output of '", "' is also a model output")
    consumer = view.add(Node("dense", "Dense", pool.outputs))
    return view, x, relu, (reshape, pool), consumer


def test_nodes_register_their_uses_and_facts():
    view, x, relu, (reshape, pool), _ = _three()
    assert x.uses == [(relu, 0)] and relu.outputs[0].uses == [(reshape, 0)]
    assert relu.facts is NO_FACTS and view.activations() == [relu]
    padding = Node("pad", "ZeroPadding2D", [Value()], step=Step(StepKind.ZERO_PADDING, "pad"))
    assert padding.facts.grows and Node("n", "Op", [], veto="no").facts == Facts(veto="no")


def test_a_move_hands_the_pooled_value_to_the_activation():
    view, x, relu, (reshape, pool), consumer = _three()
    pooled = pool.outputs[0]
    view.move(relu, [reshape, pool])
    assert reshape.inputs == [x] and x.uses == [(reshape, 0)]
    assert relu.inputs[0] is pool.outputs[0] and pool.outputs[0].uses == [(relu, 0)]
    # The value the consumer reads, and that leaves the model, is the activation's now.
    assert relu.outputs[0] is pooled and pooled.producer is relu
    assert consumer.inputs[0] is pooled and view.exits(pooled) == \
        "the output of 'relu' is also a model output"
    assert relu.elements == 4
    assert [n.label for n in view.in_order()] == ["reshape", "pool", "relu", "dense"]


def test_what_the_planner_reads():
    view, x, relu, (reshape, pool), _ = _three()
    assert view.producer(x) is None and not view.is_first_output(x)
    assert view.is_first_output(relu.outputs[0]) and view.source(reshape) is relu.outputs[0]
    assert view.exits(relu.outputs[0]) == ""
    assert (view.label(pool), view.kind(pool), view.elements(pool)) == ("pool", "MaxPooling2D", 4)


def test_a_flip_turns_a_max_reduction_into_a_min_and_back():
    view = DataView("model")
    x = Value()
    maximum = view.add(Node("max", "Max", [x], step=Step(StepKind.MAX_POOL, "max",
                                                         reduction=True)))
    view.flip(maximum)
    assert maximum.flipped and maximum.step.kind is StepKind.MIN and maximum.step.reduction
    view.flip(maximum)
    assert not maximum.flipped and maximum.step.kind is StepKind.MAX_POOL
