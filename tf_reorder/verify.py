"""Numerical equivalence of an original and a rewritten model.

Example:

    result = verify.compare_models(model, tf_reorder.reorder(model))
    assert result.bitwise, result
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np

RTOL = 1e-6  # transcendental activations: kernel paths may differ by about an ulp
ATOL = 1e-6  # the same, near zero


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Per-output maximum differences between two models on the same inputs."""

    max_abs_diff: dict[str, float]
    max_rel_diff: dict[str, float]
    bitwise: bool  # every output identical bit for bit
    close: bool  # every element within atol + rtol * |original|


def random_inputs(model: Any, batch: int = 2, seed: int = 0, free_dim: int = 16) -> Any:
    """Random inputs matching `model.inputs` (unknown dimensions become `free_dim`)."""
    rng = np.random.default_rng(seed)

    def make(spec: Any) -> np.ndarray:
        shape = [batch] + [free_dim if d is None else d for d in spec.shape[1:]]
        dtype = np.dtype(spec.dtype)
        if np.issubdtype(dtype, np.integer):
            return rng.integers(0, 10, size=shape).astype(dtype)
        if dtype == np.bool_:
            return rng.integers(0, 2, size=shape).astype(bool)
        return rng.standard_normal(shape).astype(dtype)

    structure = model.inputs[0] if isinstance(model, keras.Sequential) else model.input
    return keras.tree.map_structure(make, structure)


def _flat_outputs(model: Any, outputs: Any) -> dict[str, np.ndarray]:
    flat = keras.tree.flatten(outputs)
    names = list(getattr(model, "output_names", None) or range(len(flat)))
    return {str(n): np.asarray(keras.ops.convert_to_numpy(o)) for n, o in zip(names, flat)}


def compare_models(original: Any, rewritten: Any, inputs: Any = None, *, batch: int = 2,
                   seed: int = 0, rtol: float = RTOL, atol: float = ATOL) -> Comparison:
    """Runs both models on the same inputs and measures how far their outputs are apart."""
    if inputs is None:
        inputs = random_inputs(original, batch=batch, seed=seed)
    a = _flat_outputs(original, original(inputs, training=False))
    b = _flat_outputs(rewritten, rewritten(inputs, training=False))
    if a.keys() != b.keys():
        raise ValueError(f"the models have different outputs: {sorted(a)} vs {sorted(b)}")
    abs_diff, rel_diff, bitwise, close = {}, {}, True, True
    for key in a:
        x, y = a[key], b[key]
        if x.shape != y.shape or x.dtype != y.dtype:
            raise ValueError(f"output '{key}' differs in shape or dtype: "
                             f"{x.shape} {x.dtype} vs {y.shape} {y.dtype}")
        bitwise &= x.tobytes() == y.tobytes()
        d = np.abs(x.astype(np.float64) - y.astype(np.float64))
        abs_diff[key] = float(d.max()) if d.size else 0.0
        mag = np.abs(x.astype(np.float64))
        rel_diff[key] = float((d / np.maximum(mag, 1e-30)).max()) if d.size else 0.0
        close &= bool(np.all(d <= atol + rtol * mag))
    return Comparison(abs_diff, rel_diff, bitwise, close)
