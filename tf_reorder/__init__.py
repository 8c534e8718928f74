"""tf_reorder: move monotone activations after max pooling, where that is exact.

For a monotone non-decreasing activation ``f``, ``maxpool(f(x)) == f(maxpool(x))``;
after the pool ``f`` runs on a quarter of the elements (2x2 pool), or on one per
channel (global max pool).

Example:

    import keras, tf_reorder
    model = keras.applications.VGG16(weights=None)
    fast = tf_reorder.reorder(model)          # same outputs, relu after the pools
    print(tf_reorder.plan(model))             # every site, moved or not and why
    lite = tf_reorder.reorder(model, target="tflite")  # only moves measured faster there
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tf_reorder.algebra import register_monotone, unregister_monotone
from tf_reorder.errors import OutputExistsError, ReorderError, require_bool
from tf_reorder.policy import Policy, load_policy
from tf_reorder.report import Report, Site

__all__ = [
    "reorder",
    "plan",
    "reorder_graph_def",
    "reorder_function",
    "convert_saved_model",
    "register_monotone",
    "unregister_monotone",
    "load_policy",
    "Policy",
    "Report",
    "Site",
    "ReorderError",
    "OutputExistsError",
]
__version__ = "0.1.0"


def reorder(model: Any, *, return_report: bool = False,
            target: str | Policy | None = "any", inference: bool = False) -> Any:
    """A new Keras model with every valid activation moved after its max pool.

    The input model is not changed. The result computes the same function
    (bitwise for the relu family), has the same inputs and outputs (names,
    order, shapes, dtypes) and the same weights, and is made of stock Keras
    layers, so it saves and loads as ``.keras`` without custom objects. It
    reuses the layers it does not change (their variables are shared with
    ``model``); layers it changes are new, with copies of the weights.

    Args:
      model: a built Sequential or functional ``keras.Model``; nested models
        are rewritten too.
      return_report: also return the `Report` of every candidate site.
      target: the runtime to decide for. ``"any"`` (the default) moves wherever
        the rules allow; a runtime name (``"tf"``, ``"xla"``, ``"tflite"``,
        ``"onnx"``, ``"keras"``, ``"jax"``) moves only the activation families
        the packaged runtime policy measured faster there, ``"all"`` only those
        measured faster on every runtime in it; a `Policy` (from `load_policy`,
        e.g. with your own file) is used as it is. A site the policy refuses
        is kept as it is, with the measurement as its reason.
      inference: the result is for inference only: an activation may also cross
        the layers that are the identity at inference (Dropout, SpatialDropout*,
        GaussianNoise, GaussianDropout, AlphaDropout, ActivityRegularization, unless
        called with ``training=True``). Each such site's notes say "inference only".
        Training the result is then not training the original. The default gives a
        model equal to the original in training and inference alike.

    Returns:
      The new model, or ``(model, report)`` if ``return_report``.

    Raises:
      ReorderError: ``model`` is not a model that can be walked (not a Keras
        model, subclassed, unbuilt), ``target`` is unknown or its policy
        file cannot be read, or ``return_report`` or ``inference`` is not a bool.

    Example:

        model = keras.Sequential([keras.Input((32, 32, 3)),
                                  keras.layers.Conv2D(8, 3, activation="relu"),
                                  keras.layers.MaxPooling2D()])
        fast, report = tf_reorder.reorder(model, return_report=True)
        print(report.elements_saved)  # 5400: relu on 30*30*8 -> 15*15*8
        lite = tf_reorder.reorder(model, target="tflite")
        served = tf_reorder.reorder(model, inference=True)  # crosses Dropout too
    """
    from tf_reorder import keras_rebuild

    require_bool("return_report", return_report)
    require_bool("inference", inference)
    new, report = keras_rebuild.reorder(model, target, inference=inference)
    return (new, report) if return_report else new


def reorder_graph_def(graph_def: Any, *, preserve: Any = (),
                      target: str | Policy | None = "any") -> tuple[Any, Report]:
    """Moves activations after max pools in a GraphDef and all functions in its library.

    Returns ``(new_graph_def, report)``; the input is not changed. Fetched nodes
    must be named in ``preserve`` (node or tensor names); function outputs are
    kept automatically, and every name something refers to keeps its meaning.
    ``target`` is as for `reorder`.

    Raises:
      ReorderError: ``graph_def`` is not a ``GraphDef`` or has two nodes (or two
        nodes of one library function) with the same name; ``preserve`` is not
        a list of names or names a node the graph does not have (a typo there
        would let the pass change a value you fetch); ``target`` is bad.

    Example:

        graph_def = fn.get_concrete_function(spec).graph.as_graph_def(add_shapes=True)
        new_graph_def, report = tf_reorder.reorder_graph_def(graph_def,
                                                             preserve=["Identity"])
    """
    from tf_reorder import graph_pass

    preserve = _check_graph_def(graph_def, preserve)
    return graph_pass.reorder_graph_def(graph_def, preserve=preserve, target=target)


def _check_graph_def(graph_def: Any, preserve: Any) -> tuple[str, ...]:
    """``preserve`` as a tuple; `ReorderError` for a GraphDef the pass would misread
    or a bad ``preserve``."""
    from tensorflow.core.framework import graph_pb2  # pylint: disable=g-import-not-at-top

    if not isinstance(graph_def, graph_pb2.GraphDef):
        raise ReorderError(f"expected a GraphDef, got {type(graph_def).__name__}")
    if isinstance(preserve, (str, bytes)) or not isinstance(preserve, Iterable):
        hint = f" (did you mean [{preserve!r}]?)" if isinstance(preserve, str) else ""
        raise ReorderError(f"preserve must be a list of node or tensor names, not "
                           f"{type(preserve).__name__}{hint}")
    preserve = tuple(preserve)
    names = {node.name for node in graph_def.node}
    if len(names) != len(graph_def.node):
        raise ReorderError(f"the GraphDef has two nodes named '{_duplicate(graph_def.node)}'; "
                           "it is not a valid graph")
    for function in graph_def.library.function:
        if len({node.name for node in function.node_def}) != len(function.node_def):
            raise ReorderError(f"function '{function.signature.name}' of the GraphDef has two "
                               f"nodes named '{_duplicate(function.node_def)}'; it is not a "
                               "valid graph")
    for name in preserve:
        if not isinstance(name, str):
            raise ReorderError(f"preserve must hold node or tensor names (str), not "
                               f"{type(name).__name__} {name!r:.40}")
        node = name.lstrip("^").split(":")[0]
        if node not in names:
            raise ReorderError(f"preserve names '{name}', but the GraphDef has no node "
                               f"'{node}'")
    return preserve


def _duplicate(nodes: Iterable[Any]) -> str:
    """The first node name that occurs twice in ``nodes``."""
    seen = set()
    for node in nodes:
        if node.name in seen:
            return node.name
        seen.add(node.name)
    return "?"


def reorder_function(concrete_function: Any, *,
                     target: str | Policy | None = "any") -> tuple[Any, Report]:
    """Rewrites a tf.function ConcreteFunction (and every function it calls).

    Returns ``(new_concrete_function, report)``. The new function takes the same
    flat inputs, returns the same output structure, and uses the same captured
    variables (not copies), so later assignments are seen by both. ``target`` is
    as for `reorder`.

    Example:

        fn = tf.function(model).get_concrete_function(tf.TensorSpec([1, 224, 224, 3]))
        fast, report = tf_reorder.reorder_function(fn, target="tf")

    Raises:
      ReorderError: ``concrete_function`` is not a ConcreteFunction (a
        ``tf.function`` itself is refused with how to get one), or ``target``
        is bad.
    """
    from tf_reorder import concrete_functions

    if hasattr(concrete_function, "get_concrete_function") and \
            not hasattr(concrete_function, "graph"):
        if getattr(concrete_function, "input_signature", None) is not None:
            how = "call its get_concrete_function() first"
        else:
            how = ("it has no input_signature: call get_concrete_function(tf.TensorSpec(shape, "
                   "dtype), ...) on it first")
        raise ReorderError(f"expected a ConcreteFunction, got a tf.function "
                           f"({type(concrete_function).__name__}); {how}")
    return concrete_functions.reorder_function(concrete_function, target=target)


def convert_saved_model(src: Any, dst: Any, *, overwrite: bool = False,
                        target: str | Policy | None = "any") -> Report:
    """Writes a copy of the SavedModel `src` to `dst` with its graphs rewritten.

    Every signature and restored function is rewritten; variables/ and assets/
    are copied byte for byte; signatures keep their names; the fingerprint is
    recomputed. `dst` is written atomically and an existing one is replaced only
    with ``overwrite=True``, and then only if it is a SavedModel or an empty
    directory; `src` is never modified. ``target`` is as for
    `reorder`.

    Raises:
      ReorderError: `src` is not a readable SavedModel, or `dst` is refused (it
        exists without ``overwrite``: `OutputExistsError`; it is `src` or inside
        it, it contains `src`, its name ends in ``.keras``, it is a non-empty
        directory that is not a SavedModel, its directory is missing or not
        writable), or an argument has the wrong type.
      OSError: writing failed part way (disk full, I/O error); nothing is left
        at `dst` or beside it.

    Example:

        model.export("exported")
        print(tf_reorder.convert_saved_model("exported", "exported_reordered",
                                             target="tflite"))
    """
    from tf_reorder import saved_model

    return saved_model.convert_saved_model(src, dst, overwrite=overwrite, target=target)


def plan(model: Any, *, target: str | Policy | None = "any",
         inference: bool = False) -> Report:
    """The decisions `reorder` would take, without building anything.

    ``target`` and ``inference`` are as for `reorder`.

    Example:

        print(tf_reorder.plan(keras.applications.VGG16(weights=None), target="tf"))
    """
    from tf_reorder import keras_pass

    require_bool("inference", inference)
    return keras_pass.plan(model, target, inference=inference)
