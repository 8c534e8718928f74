"""Runtime policies: where a move makes the model faster on a given runtime, as measured.

Every move the rules allow is exact, but not every one is faster: TF's Grappler
remapper fuses Conv2D + BiasAdd + Relu, so a relu moved after the pool can cost
time; TFLite runs a sigmoid as its own LOGISTIC kernel, so moving it wins.
``benchmarks/bench_runtimes.py`` measures the median time ratio reordered/original
per (model, activation family, runtime) and writes a policy file with
`policy_from_measurements`; the package ships one as
``tf_reorder/data/runtime_policy.json``. A pass run with a target asks the policy
about every site the rules allow and keeps the activations it refuses, with the
measurement as the reason.

The file (format 1)::

    {"format": 1,
     "provenance": {"command": "python benchmarks/bench_runtimes.py ...",
                    "date": "2026-11-23", "versions": {"tensorflow": "2.21.0", ...},
                    "machine": "x86_64, 2 CPUs", "threshold": 1.01},
     "runtimes": {"tflite": {"sigmoid": {"move": true, "ratio": 0.81, "q1": 0.80,
                                         "q3": 0.83, "model": "vgg_style"}, ...},
                  ...}}

Per runtime and activation family, ``move`` is the decision; ``ratio``, ``q1``,
``q3`` and ``model`` are the worst measured cell (the model with the highest
median ratio) it rests on.

Example:

    policy = load_policy("tflite")
    policy.decide("relu").reason   # "relu measured 1.04x slower on tflite (resnet50; ..."
    fast = tf_reorder.reorder(model, target="tflite")
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from collections.abc import Iterable, Mapping
from typing import Any

from absl import logging

from tf_reorder import algebra
from tf_reorder.errors import ReorderError

FORMAT = 1
# The runtimes the benchmark measures; a policy file may hold any subset of them.
RUNTIMES = ("keras", "tf", "xla", "tflite", "onnx", "jax")
# "any": no policy, move wherever the rules allow; "all": only where every runtime
# in the file measured the move faster; a runtime name: only where it did.
TARGETS = ("any", "all", *RUNTIMES)
DEFAULT_THRESHOLD = 1.01
PACKAGED_POLICY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                               "runtime_policy.json")

_CELL_KEYS = ("model", "activation", "runtime", "ratio", "q1", "q3")


@dataclasses.dataclass(frozen=True)
class Decision:
    """One (runtime, family) entry: move or not, and the worst measured cell behind it.

    Attributes:
      move: the decision.
      ratio: the median time ratio reordered/original of the worst model.
      q1: its first quartile.
      q3: its third quartile.
      model: the worst model.
      measured: the date of the run this entry comes from, where a later run
        replaced it (`update_policy`); None: the file's provenance date.
    """

    move: bool
    ratio: float
    q1: float
    q3: float
    model: str
    measured: str | None = None


@dataclasses.dataclass(frozen=True)
class Policy:
    """The measured decisions a pass follows for one target.

    Attributes:
      target: ``"all"`` or a runtime name (``"any"``: no policy, every site allowed).
      provenance: how the measurements were made (command, date, versions, ...).
      decisions: runtime -> activation family -> `Decision`, for the runtimes the
        target consults (one, or every runtime in the file for ``"all"``).

    Example:

        policy = load_policy("all")
        print(policy.label)            # all (measured 2026-11-23, TF 2.21.0)
        policy.decide("sigmoid").ok    # True if every runtime measured it faster
    """

    target: str
    provenance: Mapping[str, Any] = dataclasses.field(hash=False)
    decisions: Mapping[str, Mapping[str, Decision]] = dataclasses.field(hash=False)

    @property
    def label(self) -> str:
        """The target and when it was measured.

        Example: ``"tflite (measured 2026-11-23, TF 2.21.0)"``; ``"any"`` for no policy.
        """
        if self.target == "any":
            return "any"
        details = []
        if self.provenance.get("date"):
            details.append(f"measured {self.provenance['date']}")
        tensorflow = (self.provenance.get("versions") or {}).get("tensorflow")
        if tensorflow:
            details.append(f"TF {tensorflow}")
        return f"{self.target} ({', '.join(details)})" if details else self.target

    def decide(self, family: str) -> algebra.Verdict:
        """Whether moving an activation of ``family`` was measured faster (or equal).

        Refused where a consulted runtime measured it slower or did not measure
        it; the reason names the first such runtime.

        Example:

            policy.decide("relu").reason
            # "relu measured 1.04x slower on tflite (resnet50; policy tflite, measured 2026-11-23)"
        """
        date = self.provenance.get("date", "?")
        for runtime, families in self.decisions.items():
            decision = families.get(family)
            if decision is None:
                return algebra.Verdict(False, f"no measurement of {family} on {runtime} in the "
                                       f"runtime policy (measured {date})")
            if not decision.move:
                date = decision.measured or date
                source = f"({decision.model}; policy {self.target}, measured {date})"
                ratio = _ratio(decision.ratio)
                if decision.ratio > 1:
                    return algebra.Verdict(
                        False, f"{family} measured {ratio}x slower on {runtime} {source}")
                return algebra.Verdict(
                    False, f"{family} measured {ratio}x on {runtime}, not a clear gain {source}")
        return algebra.YES


def _ratio(value: float) -> str:
    text = f"{value:.2f}"
    return f"{value:.3f}" if text == "1.00" else text


def load_policy(target: str | Policy | None,
                path: str | os.PathLike[str] | None = None) -> Policy | None:
    """The policy for ``target``, read from the packaged file (or ``path``).

    ``None`` and ``"any"`` mean no policy (``None``): the passes move wherever the
    rules allow. A `Policy` is returned as it is.

    Raises:
      ReorderError: an unknown target (the message lists the known ones), or a
        policy file that is missing, not JSON, or not in format 1.

    Example:

        policy = load_policy("tflite")                           # the packaged file
        mine = load_policy("onnx", path="my_runtime_policy.json")
        fast = tf_reorder.reorder(model, target=mine)
    """
    if isinstance(target, Policy):
        return target
    if target is None or target == "any":
        return None
    if not isinstance(target, str):
        raise ReorderError(f"target must be a runtime name or a Policy, not "
                           f"{type(target).__name__}")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise ReorderError(f"policy path must be a path, not {type(path).__name__}")
    source = PACKAGED_POLICY if path is None else os.fspath(path)
    provenance, runtimes = _read(source)
    known = ", ".join(("any", "all", *runtimes))
    if target == "all":
        decisions = runtimes
    elif target in runtimes:
        decisions = {target: runtimes[target]}
    elif target in RUNTIMES:
        raise ReorderError(f"runtime policy {source} has no measurements for '{target}'; "
                           f"known targets: {known}")
    else:
        raise ReorderError(f"unknown target '{target}'; known targets: {known} "
                           f"(runtime policy {source})")
    policy = Policy(target, provenance, decisions)
    logging.info("runtime policy %s from %s", policy.label, source)
    return policy


def targets(path: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """Every target the packaged policy file (or ``path``) supports.

    Example:

        targets()   # ("any", "all", "keras", "tf", "xla", "tflite", "onnx", "jax")
    """
    source = PACKAGED_POLICY if path is None else os.fspath(path)
    _, runtimes = _read(source)
    return ("any", "all", *runtimes)


def policy_from_measurements(cells: Iterable[Mapping[str, Any]], provenance: Mapping[str, Any],
                             threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """The policy file's contents (a JSON-ready dict) from measured cells.

    Each cell is one (model, activation family, runtime) measurement with the keys
    ``model``, ``activation``, ``runtime``, ``ratio`` (median time ratio
    reordered/original), ``q1`` and ``q3``; other keys are ignored, and a cell
    whose ratio is None (the runtime could not run the model) is skipped (it
    needs no quartiles). Per
    runtime and family the worst cell (highest ratio) decides: move iff its ratio
    is ``<= threshold``. ``provenance`` (command, date, versions, ...) is copied
    with ``threshold`` added.

    Raises:
      ReorderError: a cell without one of the keys or with a ratio that is not a
        positive number, provenance without command, date and versions, or no
        cell with a ratio.

    Example:

        cells = [{"model": "vgg_style", "activation": "sigmoid", "runtime": "tflite",
                  "ratio": 0.81, "q1": 0.80, "q3": 0.83}]
        data = policy_from_measurements(cells, {"command": "...", "date": "2026-11-23",
                                                "versions": {"tensorflow": "2.21.0"}})
        data["runtimes"]["tflite"]["sigmoid"]["move"]   # True
    """
    where = "policy_from_measurements"
    threshold = _number(threshold, f"{where}: threshold")
    if threshold <= 0:
        raise ReorderError(f"{where}: threshold must be positive, got {threshold:g}")
    worst: dict[str, dict[str, dict[str, Any]]] = {}
    for i, cell in enumerate(cells):
        # A cell the runtime could not run has ratio None and may lack the quartiles.
        needed = _CELL_KEYS if cell.get("ratio") is not None else _CELL_KEYS[:4]
        missing = [k for k in needed if k not in cell]
        if missing:
            raise ReorderError(f"{where}: measurement {i} has no "
                               + ", ".join(f"'{k}'" for k in missing))
        if cell["ratio"] is None:
            continue
        entry = {
            "move": False,  # decided below, on the worst cell
            "ratio": _number(cell["ratio"], f"{where}: measurement {i} ratio"),
            "q1": _number(cell["q1"], f"{where}: measurement {i} q1"),
            "q3": _number(cell["q3"], f"{where}: measurement {i} q3"),
            "model": str(cell["model"]),
        }
        families = worst.setdefault(str(cell["runtime"]), {})
        family = str(cell["activation"])
        if family not in families or entry["ratio"] > families[family]["ratio"]:
            families[family] = entry
    for families in worst.values():
        for entry in families.values():
            entry["move"] = entry["ratio"] <= threshold
    data = {
        "format": FORMAT,
        "provenance": {**provenance, "threshold": threshold},
        "runtimes": worst,
    }
    _parse(data, where)  # what load_policy will accept
    return data


def update_policy(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """The policy file `base` with every (runtime, family) that `update` measured replaced.

    Both are policy files' contents (`policy_from_measurements`). A replaced entry
    records its run's date as ``measured``; the provenance keeps `base`'s and lists
    the update (command, date, families) under ``updates``. Neither input is changed.
    This lets one family be re-measured without re-running every model.

    Raises:
      ReorderError: either is not a valid policy, or their thresholds differ.

    Example:

        data = update_policy(json.load(open(PACKAGED_POLICY)),
                             policy_from_measurements(bn_cells, provenance))
    """
    where = "update_policy"
    _parse(base, f"{where}: base")
    _parse(update, f"{where}: update")
    thresholds = (base["provenance"].get("threshold"), update["provenance"].get("threshold"))
    if thresholds[0] != thresholds[1]:
        raise ReorderError(f"{where}: the base policy's threshold {thresholds[0]} is not the "
                           f"update's {thresholds[1]}")
    date = update["provenance"]["date"]
    runtimes = {r: dict(families) for r, families in base["runtimes"].items()}
    measured = set()
    for runtime, families in update["runtimes"].items():
        for family, entry in families.items():
            runtimes.setdefault(runtime, {})[family] = {**entry, "measured": date}
            measured.add(family)
    provenance = dict(base["provenance"])
    provenance["updates"] = [*provenance.get("updates", ()), {
        "command": update["provenance"]["command"], "date": date,
        "families": sorted(measured)}]
    data = {"format": FORMAT, "provenance": provenance, "runtimes": runtimes}
    _parse(data, where)
    return data


# ---------------------------------------------------------------------------
# Reading and checking a policy file.


def _read(source: str) -> tuple[dict[str, Any], dict[str, dict[str, Decision]]]:
    where = f"runtime policy {source}"
    try:
        with open(source, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError as error:
        raise ReorderError(f"{where}: no such file") from error
    except (OSError, UnicodeDecodeError) as error:
        raise ReorderError(f"{where}: cannot read it: {error}") from error
    except json.JSONDecodeError as error:
        raise ReorderError(f"{where}: not valid JSON ({error})") from error
    return _parse(data, where)


def _parse(data: Any, where: str) -> tuple[dict[str, Any], dict[str, dict[str, Decision]]]:
    """The provenance and runtime -> family -> Decision; ReorderError naming what is wrong."""
    if not isinstance(data, dict):
        raise ReorderError(f"{where}: not a runtime policy (expected a JSON object, got "
                           f"{_json_type(data)})")
    if "format" not in data:
        raise ReorderError(f"{where}: not a runtime policy (no 'format' field)")
    if isinstance(data["format"], bool) or data["format"] != FORMAT:
        raise ReorderError(f"{where}: format {data['format']!r} is not supported (this "
                           f"tf_reorder reads format {FORMAT})")
    provenance = _object(data.get("provenance"), f"{where}: provenance")
    for key in ("command", "date"):
        if not isinstance(provenance.get(key), str) or not provenance[key]:
            raise ReorderError(f"{where}: provenance.{key} must be a non-empty string")
    _object(provenance.get("versions"), f"{where}: provenance.versions")
    runtimes = _object(data.get("runtimes"), f"{where}: runtimes")
    if not runtimes:
        raise ReorderError(f"{where}: runtimes is empty: no runtime was measured")
    decisions: dict[str, dict[str, Decision]] = {}
    for runtime, families in runtimes.items():
        if runtime in ("any", "all"):
            raise ReorderError(f"{where}: '{runtime}' is a target, not a runtime name")
        decisions[runtime] = {}
        for family, entry in _object(families, f"{where}: runtimes.{runtime}").items():
            at = f"{where}: runtimes.{runtime}.{family}"
            entry = _object(entry, at)
            if not isinstance(entry.get("move"), bool):
                raise ReorderError(f"{at}.move must be true or false")
            if not isinstance(entry.get("model"), str):
                raise ReorderError(f"{at}.model must be a string")
            ratio = _number(entry.get("ratio"), f"{at}.ratio")
            if ratio <= 0:
                raise ReorderError(f"{at}.ratio must be positive, got {ratio:g}")
            measured = entry.get("measured")
            if measured is not None and (not isinstance(measured, str) or not measured):
                raise ReorderError(f"{at}.measured must be a non-empty string (a date)")
            decisions[runtime][family] = Decision(
                entry["move"], ratio, _number(entry.get("q1"), f"{at}.q1"),
                _number(entry.get("q3"), f"{at}.q3"), entry["model"], measured)
    return provenance, decisions


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReorderError(f"{where} must be a JSON object, got {_json_type(value)}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not math.isfinite(float(value)):
        raise ReorderError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "nothing"  # a missing key, or null
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, numbers.Real) else type(value).__name__)
