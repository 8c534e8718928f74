"""Checks every test of a Keras rewrite makes: equal outputs, weights, I/O, untouched input."""

from __future__ import annotations

import json
from typing import Any

import keras
import numpy as np

import tf_reorder
from tf_reorder import verify


def model_fingerprint(model: Any) -> tuple[str, list[bytes]]:
    """The model's config and weights, to show it was not changed."""
    config = json.dumps(model.get_config(), sort_keys=True, default=str)
    return config, [np.asarray(w).tobytes() for w in model.get_weights()]


def check_rewrite(model: Any, *, moved: int, exact: bool = True, inputs: Any = None,
                  batch: int = 3, seed: int = 0,
                  target: Any = "any",
                  inference: bool = False) -> tuple[Any, tf_reorder.Report]:
    """Reorders `model` (for `target`, `inference`) and checks everything a rewrite
    promises (outputs compared at inference).

    - exactly `moved` sites were moved;
    - outputs equal: bitwise if `exact`, else within rtol 1e-6;
    - same input and output names, shapes and dtypes;
    - the input model is unchanged (config and weights);
    - the rewritten model is made of stock Keras layers only;
    - every weight of the input model is present, bitwise, in the result.
    """
    before = model_fingerprint(model)
    new, report = tf_reorder.reorder(model, return_report=True, target=target,
                                     inference=inference)
    assert len(report.moved) == moved, str(report)
    assert model_fingerprint(model) == before, "the input model was changed"

    if inputs is None:
        inputs = verify.random_inputs(model, batch=batch, seed=seed)
    comparison = verify.compare_models(model, new, inputs)
    if exact:
        assert comparison.bitwise, comparison
    else:
        assert comparison.close, comparison

    assert _input_layer_names(new) == _input_layer_names(model)
    assert [tuple(t.shape) for t in new.inputs] == [tuple(t.shape) for t in model.inputs]
    assert _output_layer_names(new) == _output_layer_names(model)
    assert [tuple(t.shape) for t in new.outputs] == [tuple(t.shape) for t in model.outputs]
    assert [t.dtype for t in new.outputs] == [t.dtype for t in model.outputs]

    original_layers = {id(layer) for layer in _all_layers(model)}
    for layer in _all_layers(new):  # new layers are stock Keras; the input's are reused
        assert id(layer) in original_layers or type(layer).__module__.startswith("keras."), \
            type(layer)

    original = sorted(np.asarray(w).tobytes() for w in model.get_weights())
    rewritten = sorted(np.asarray(w).tobytes() for w in new.get_weights())
    if all(not _is_prelu_moved(s) for s in report.moved):
        assert original == rewritten, "weights differ"
    return new, report


def _input_layer_names(model: Any) -> list[str]:
    return [t._keras_history.operation.name for t in model.inputs]


def _output_layer_names(model: Any) -> list[str]:
    return [t._keras_history.operation.name for t in model.outputs]


def _is_prelu_moved(site: tf_reorder.Site) -> bool:
    return site.function.startswith("PReLU")


def _all_layers(model: Any) -> list[Any]:
    out = []
    for layer in model.layers:
        out.append(layer)
        if isinstance(layer, keras.Model):
            out.extend(_all_layers(layer))
    return out


def roundtrip(model: Any, tmp_path: Any) -> Any:
    """Saves and loads `model` as .keras with no custom objects."""
    path = tmp_path / "model.keras"
    model.save(path)
    return keras.saving.load_model(path, compile=False)
