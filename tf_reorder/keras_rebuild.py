"""The rewritten Keras model, built from the planned views of `keras_pass`.

Each changed (nested) model is replayed on fresh `Input`s in the order of its planned
view: a call runs its original layer (or operation) on what the view says it now
reads; an activation that moved runs after its landing pool; one that left a nested
model runs outside it; a producer that lost its fused activation becomes a layer of
the same class and config without it. Nothing else is new.

Why not `keras.models.clone_model(..., call_function=...)`: its `call_function` is
told which layer is called but not at which call site, and a shared layer may move at
one call and stay at another; Sequential models accept no `call_function` at all.

Variables: every layer the rewrite does not change is reused, so its variables are
shared with the input model. A producer that loses its activation is a new layer with
a copy of the weights (built without running initializers); so is a PReLU whose alpha
must be reshaped. A moved activation layer is the same layer, or a renamed copy where
it takes the name of a pool that was a model output (the output keeps its name). A
max reduction that a non-increasing activation moved past is a new ``keras.ops.min``
over the same axes (and a min a max).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
from absl import logging
from keras import layers

from tf_reorder.errors import ReorderError
from tf_reorder.keras_pass import Analysis, Body, analyze
from tf_reorder.algebra import StepKind
from tf_reorder.keras_vocabulary import builtin_activation_name, channel_axis, flipped_reduction
from tf_reorder.policy import Policy, load_policy
from tf_reorder.report import Report
from tf_reorder.view import Node


def reorder(model: Any, target: str | Policy | None = "any", *,
            inference: bool = False) -> tuple[Any, Report]:
    """`tf_reorder.reorder` with its report: the planned, rebuilt model."""
    analysis = analyze(model, load_policy(target), inference=inference)
    new = rebuild(analysis)
    report = Report(model.name, tuple(analysis.sites))
    logging.info("reordered '%s': %d of %d sites moved, %d activation elements per sample "
                 "saved", model.name, len(report.moved), len(report.sites),
                 report.elements_saved)
    return new, report


def rebuild(analysis: Analysis) -> Any:
    """The new root model of `analysis`."""
    return _Builder(analysis).model(analysis.root, top=True)


class _Builder:
    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.linear_layers: dict[int, Any] = {}
        self.rebuilt: dict[int, Any] = {}
        self.changed_bodies: dict[int, bool] = {}

    def changed(self, body: Body) -> bool:
        if id(body) not in self.changed_bodies:
            analysis = self.analysis
            self.changed_bodies[id(body)] = any(
                id(node) in analysis.moved or id(node) in analysis.left
                or (node.handle[0] in ("linear", "fused")
                    and id(node.handle[1].layer) in analysis.split)
                for node in body.view.nodes) or any(
                self.changed(inner) for inner in body.nested.values())
        return self.changed_bodies[id(body)]

    def model(self, body: Body, *, top: bool = False) -> Any:
        model = body.model
        if not top and not self.changed(body):
            return model
        if id(model) in self.rebuilt:
            return self.rebuilt[id(model)]
        replay = _Replay(self, body)
        new = replay.sequential() if isinstance(model, keras.Sequential) else replay.functional()
        if new.trainable != model.trainable:
            # The setter reaches every layer, the input's too: only ever to freeze them
            # as the input model already did.
            new.trainable = model.trainable
        _copy_compile_state(model, new)
        self.rebuilt[id(model)] = new
        return new

    def linear(self, layer: Any) -> Any:
        """The producer without its activation: same class, config and weights."""
        if id(layer) in self.linear_layers:
            return self.linear_layers[id(layer)]
        config = layer.get_config()
        # Build with cheap initializers, then copy the trained weights over them.
        initializer_keys = [k for k, v in config.items()
                            if k.endswith("_initializer") and v is not None]
        new = rebuilt(layer, "to split off its activation", activation="linear",
                      **{key: "zeros" for key in initializer_keys})
        new.build(layer._inbound_nodes[0].input_tensors[0].shape)
        for key in initializer_keys:
            if hasattr(layer, key):
                setattr(new, key, getattr(layer, key))
        for target, source in zip(new.weights, layer.weights, strict=True):
            target.assign(source)
        self.linear_layers[id(layer)] = new
        logging.vlog(1, "split the activation off '%s'", layer.name)
        return new


class _Replay:
    """One body replayed: for each planned node, the layers that compute it."""

    def __init__(self, builder: _Builder, body: Body) -> None:
        self.builder, self.body = builder, body
        self.analysis = builder.analysis
        model = body.model
        # Operations (keras.ops nodes) have names in the model too, though not layers.
        self.names = _NameSource([*(layer.name for layer in model.layers),
                                  *(call.layer.name for call in body.calls)])
        self.landing_of = {id(move.activation): move.landing
                           for move in (body.result.moves if body.result else ())}
        # A pool that was a model output, with activations after it now: the last one
        # takes its name (the output keeps it), and the pool becomes a renamed copy.
        self.output_name: dict[int, str] = {}  # id(activation node) -> the name it takes
        self.renamed_pools: set[int] = set()  # id(pool node)
        for value, origin in body.origin.values():
            if value.exits and value.producer is not origin and origin.step is not None:
                self.output_name[id(value.producer)] = origin.label
                self.renamed_pools.add(id(origin))

    # -- whole models

    def sequential(self) -> Any:
        model = self.body.model
        new_layers: list[Any] = []
        for node in self.body.view.in_order():
            new_layers.extend(self._sequential_layers(node))
        (inp,) = model.inputs
        input_layer = model._layers[0]
        new_input = keras.Input(batch_shape=inp.shape, dtype=inp.dtype, name=input_layer.name)
        return keras.Sequential([new_input, *new_layers], name=model.name)

    def functional(self) -> Any:
        body = self.body
        model = body.model
        new_inputs = keras.tree.map_structure(
            lambda x: keras.Input(batch_shape=x.shape, dtype=x.dtype, sparse=x.sparse,
                                  name=x._keras_history.operation.name),
            model.input)
        built = {id(body.value_of[id(old)]): new
                 for old, new in zip(model.inputs, keras.tree.flatten(new_inputs))}
        for node in body.view.in_order():
            for value, tensor in zip(node.outputs, self._functional_outputs(node, built),
                                     strict=True):
                built[id(value)] = tensor
        new_outputs = keras.tree.pack_sequence_as(
            model.output, [built[id(body.value_of[id(t)])] for t in model.outputs])
        return keras.Model(new_inputs, new_outputs, name=model.name)

    # -- one node

    def _role(self, node: Node) -> str:
        """What the node becomes: "call", "identity", "moved", "split" or "nested"."""
        kind = node.handle[0]
        if kind == "nested":
            return "nested"
        if id(node) in self.analysis.left:
            return "identity"  # it runs outside the nested model now
        if id(node) in self.analysis.moved:
            return "moved"
        if kind == "boundary":
            return "identity"  # it stays inside the nested model
        if kind == "fused":
            split = id(node.handle[1].layer) in self.analysis.split
            return "split" if split else "identity"  # the producer applies it
        return "call"

    def _sequential_layers(self, node: Node) -> list[Any]:
        role = self._role(node)
        if role == "identity":
            return []
        if role == "nested":
            return [self.builder.model(self.body.nested[node.handle[1].position])]
        if role == "moved":
            return [self._moved(node)]
        if role == "split":
            return [self._split_activation(node.handle[1].layer)]
        return [self._layer(node)]

    def _functional_outputs(self, node: Node, built: dict[int, Any]) -> list[Any]:
        role = self._role(node)
        sources = [built[id(value)] for value in node.inputs]
        if role == "identity":
            return [sources[0]]
        if role == "split":
            return [self._split_activation(node.handle[1].layer)(sources[0])]
        call = node.handle[1]
        if role == "moved":
            operation = self._moved(node)
            if node.handle[0] == "call":  # its own arguments, on the pooled tensor
                args, kwargs = call.node.arguments.fill_in({id(call.inputs[0]): sources[0]})
                return keras.tree.flatten(operation(*args, **kwargs))
            return [operation(sources[0])]
        args, kwargs = call.node.arguments.fill_in(
            {id(old): new for old, new in zip(call.inputs, sources, strict=True)})
        if role == "nested":
            operation = self.builder.model(self.body.nested[call.position])
        else:
            operation = self._layer(node)
        return keras.tree.flatten(operation(*args, **kwargs))

    def _layer(self, node: Node) -> Any:
        """A node that stays: its layer, the split producer, or a renamed pool."""
        kind, call = node.handle[0], node.handle[1]
        layer = call.layer
        if kind == "linear":
            return self.builder.linear(layer) if id(layer) in self.analysis.split else layer
        if node.flipped:  # a non-increasing activation moved past it: max <-> min
            into = "min" if node.step.kind is StepKind.MIN else "max"
            return flipped_reduction(layer, self.names.fresh(f"{layer.name}_as_{into}"))
        if id(node) in self.renamed_pools:
            return rebuilt(layer, "to rename it", name=self.names.fresh(f"{layer.name}_pool"))
        return layer

    def _split_activation(self, layer: Any) -> Any:
        return activation_layer(layer.activation, self.names.fresh(f"{layer.name}_activation"),
                                layer.dtype_policy)

    def _moved(self, node: Node) -> Any:
        """The layer (or op) applying a moved activation after its landing."""
        kind = node.handle[0]
        source = node.handle[3].handle[1].layer if kind == "boundary" else node.handle[1].layer
        fused = node.facts.fused
        name = self.output_name.get(id(node))
        if fused:
            return activation_layer(source.activation,
                                    name or self.names.fresh(f"{source.name}_activation"),
                                    source.dtype_policy)
        if type(source) is layers.PReLU:
            landing = self.landing_of[id(node)]
            return prelu_for(source, landing.handle[1].outputs[0], landing.handle[1].layer,
                             name or source.name)
        if type(source) is layers.BatchNormalization:
            pooled = self.landing_of[id(node)].handle[1].outputs[0].shape
            same_rank = len(pooled) == len(node.handle[1].inputs[0].shape)
            if name is None and same_rank:
                return source
            # A global pool drops the spatial axes: the channels end up last.
            return copy_with_weights(source, name or self.names.fresh(source.name), pooled,
                                     **({} if same_rank else {"axis": len(pooled) - 1}))
        if name is None and kind != "boundary":
            return source
        return rebuilt(source, "to move it", name=name or self.names.fresh(source.name))


# ---------------------------------------------------------------------------
# New layers.


def rebuilt(layer: Any, why: str, **changes: Any) -> Any:
    """A new layer (or op) of ``layer``'s class and config, with ``changes``; not built.

    The config's functions and objects (activation, regularizers, constraints) are
    passed as the layer holds them, not deserialized: a custom function that Keras
    has no registration for then works as it does in the input model.
    """
    config = layer.get_config()
    for key, value in config.items():
        held = getattr(layer, key, None)
        if key != "dtype" and isinstance(value, dict) and callable(held):
            config[key] = held
    config.update(changes)
    try:
        return type(layer).from_config(config)
    except Exception as error:  # Keras wraps whatever the constructor raised
        detail = str(error).splitlines()[-1] if str(error).strip() else type(error).__name__
        raise ReorderError(
            f"cannot make a copy of layer '{layer.name}' ({type(layer).__name__}) {why}: "
            f"Keras cannot rebuild it from its config ({detail[:160]})") from error


def activation_layer(fn: Callable[..., Any], name: str, dtype_policy: Any) -> Any:
    builtin = builtin_activation_name(fn)
    return layers.Activation(builtin or fn, name=name, dtype=dtype_policy)


def copy_with_weights(layer: Any, name: str, input_shape: Any, **changes: Any) -> Any:
    """A renamed copy of ``layer`` (with ``changes`` to its config), built for
    ``input_shape``, holding its weights."""
    new = rebuilt(layer, "to move it", name=name, **changes)
    new.build(input_shape)
    for target, source in zip(new.weights, layer.weights, strict=True):
        target.assign(source)
    return new


def prelu_for(source: Any, pooled: Any, pool_layer: Any, name: str) -> Any:
    """A PReLU for the pooled tensor with the same per-channel alphas."""
    alpha = keras.ops.convert_to_numpy(source.alpha)
    rank = len(pooled.shape)
    if alpha.size == 1:
        shared = list(range(1, rank))
    else:
        channel = channel_axis(pool_layer, rank) if rank > 2 else 1
        shared = [a for a in range(1, rank) if a != channel] or None
    new = rebuilt(source, "to move it", name=name, shared_axes=shared,
                  alpha_initializer="zeros")
    new.build(pooled.shape)
    new.alpha_initializer = source.alpha_initializer
    new.alpha.assign(alpha.reshape(tuple(new.alpha.shape)))
    return new


class _NameSource:
    """Layer names unique within one model."""

    def __init__(self, taken: Any) -> None:
        self.taken = set(taken)

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.taken:
            name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        return name


def _copy_compile_state(model: Any, new: Any) -> None:
    if not getattr(model, "compiled", False):
        return
    try:
        new.compile_from_config(model.get_compile_config())
    except Exception as error:  # a custom loss or metric that cannot be rebuilt
        logging.warning("could not compile the rewritten model like '%s': %s", model.name, error)


__all__: Sequence[str] = ("rebuild", "rebuilt", "activation_layer", "copy_with_weights",
                          "prelu_for")
