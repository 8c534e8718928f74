"""Runtime policy files for tests, built by `policy_from_measurements` like the benchmark's."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from tf_reorder.policy import policy_from_measurements

PROVENANCE = {
    "command": "python -m pytest tests",
    "date": "2026-11-23",
    "versions": {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.0"},
    "machine": "x86_64, 2 CPUs",
}
LABELS = {target: f"{target} (measured 2026-11-23, TF 2.21.0)"
          for target in ("tflite", "tf", "xla", "all")}


def cell(runtime: str, activation: str, ratio: float | None, model: str = "vgg_style",
         **extra: Any) -> dict[str, Any]:
    """One measured (model, activation family, runtime) cell, as the benchmark records it."""
    return {"model": model, "activation": activation, "runtime": runtime, "ratio": ratio,
            "q1": None if ratio is None else round(ratio - 0.01, 6),
            "q3": None if ratio is None else round(ratio + 0.01, 6), **extra}


# tflite: relu slower (on resnet50), sigmoid faster. tf: relu faster, sigmoid slower.
# xla: both faster. elu faster everywhere; tanh measured on tf only.
CELLS = [
    cell("tflite", "relu", 0.98),
    cell("tflite", "relu", 1.04, "resnet50"),
    cell("tflite", "sigmoid", 0.81),
    cell("tflite", "leaky_relu", 0.95),
    cell("tflite", "elu", 0.90),
    cell("tf", "relu", 0.97),
    cell("tf", "sigmoid", 1.12),
    cell("tf", "elu", 0.92),
    cell("tf", "tanh", 0.90),
    cell("xla", "relu", 0.95),
    cell("xla", "sigmoid", 0.90),
    cell("xla", "elu", 0.88),
]
RELU_ON_TFLITE = ("relu measured 1.04x slower on tflite (resnet50; policy tflite, "
                  "measured 2026-11-23)")
SIGMOID_ON_TF = "sigmoid measured 1.12x slower on tf (vgg_style; policy tf, measured 2026-11-23)"


def write_policy(path: str | os.PathLike[str], cells: Sequence[dict[str, Any]] = CELLS,
                 threshold: float = 1.01) -> str:
    """Writes the policy of `cells` to `path` (as JSON) and returns the path."""
    data = policy_from_measurements(cells, PROVENANCE, threshold)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    return os.fspath(path)
