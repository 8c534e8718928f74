"""Writes bench_runtimes results: RESULTS.json, a RESULTS.md table and a PNG plot.

Every file is written to a temporary name beside its destination and renamed, so
a killed run leaves the previous results intact.

Example:

    write_all(payload, "benchmarks/results")   # payload: {"environment", "command", "cells"}
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from typing import Any


def write_atomic(path: str, data: str | bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are for everyone
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _ratio(cell: dict[str, Any]) -> str:
    if cell.get("ratio") is None:
        return "n/a"
    return f"{cell['ratio']:.3f}"


def _row_key(cell: dict[str, Any]) -> str:
    return f"{cell['model']} / {cell['activation']}"


def _ordered(values: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def pivot_table(cells: Sequence[dict[str, Any]]) -> str:
    """Median ratio reordered/original per (model / activation) and runtime, limit in brackets.

    A cell whose policy moved no site shows "kept": its two models are the same
    computation, so the measured ratio (in brackets) is an A/A measurement of the noise.
    """
    runtimes = _ordered([c["runtime"] for c in cells])
    rows = _ordered([_row_key(c) for c in cells])
    by_key = {(_row_key(c), c["runtime"]): c for c in cells}
    lines = ["| model / activation | " + " | ".join(runtimes) + " |",
             "|---|" + "---:|" * len(runtimes)]
    for row in rows:
        entries = []
        for runtime in runtimes:
            cell = by_key.get((row, runtime))
            if cell is None:
                entries.append("")
            elif cell.get("ratio") is None:
                entries.append("n/a")
            elif cell.get("unchanged"):
                entries.append(f"kept (A/A {cell['ratio']:.3f})")
            else:
                entries.append(f"{cell['ratio']:.3f} ({cell['limit']:.3f})")
        lines.append(f"| {row} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


def long_table(cells: Sequence[dict[str, Any]]) -> str:
    lines = ["| model | activation | runtime | sites moved | activation elements before -> after "
             "| share | limit | ratio | IQR | original ms | note |",
             "|---|---|---|---:|---|---:|---:|---:|---|---:|---|"]
    for c in cells:
        if c.get("ratio") is None:
            lines.append(f"| {c['model']} | {c['activation']} | {c['runtime']} | "
                         f"{c.get('sites_moved', '')}/{c.get('sites', '')} | | | | n/a | | "
                         f"| {c.get('error', '')} |")
            continue
        lines.append(
            f"| {c['model']} | {c['activation']} | {c['runtime']} | "
            f"{c['sites_moved']}/{c['sites']} | "
            f"{c['activation_elements']:,} -> {c['activation_elements_after']:,} | "
            f"{c['share']:.3f} | {c['limit']:.3f} | {c['ratio']:.3f} | "
            f"{c['q1']:.3f}-{c['q3']:.3f} | {c['ms_original']:.2f} | {c.get('note', '')} |")
    return "\n".join(lines)


def markdown(payload: dict[str, Any]) -> str:
    env = payload["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    cells = payload["cells"]
    return "\n".join([
        "# bench_runtimes results",
        "",
        f"Command: `{payload['command']}`",
        "",
        f"Date {env['date']}; {env['machine']}; threads {env['threads']}; batch {env['batch']}; "
        f"image size {env['image_size']}; {env['pairs']} interleaved rounds per cell, "
        f"each sample the best of {env.get('repeats', 1)} timings; "
        f"pinned to CPU {env.get('pinned_cpu')}; target policy `{env['target']}`.",
        "",
        f"Versions: {versions}.",
        "",
        "Ratio = median over rounds of time(reordered) / time(original), same process, "
        "interleaved. Limit = 1 - share x fraction of activation elements removed, where "
        "share = median of (time(original) - time(linear twin)) / time(original).",
        "",
        "## Ratio (limit)",
        "",
        pivot_table(cells),
        "",
        "## Every cell",
        "",
        long_table(cells),
        "",
    ])


def plot(cells: Sequence[dict[str, Any]], path: str) -> None:
    """Grouped bars: the ratio per model/activation and runtime, IQR whiskers, limit ticks."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runtimes = _ordered([c["runtime"] for c in cells])
    rows = _ordered([_row_key(c) for c in cells])
    by_key = {(_row_key(c), c["runtime"]): c for c in cells}
    width = 0.8 / max(len(runtimes), 1)
    figure, axes = plt.subplots(figsize=(max(8.0, 0.9 * len(rows) * max(len(runtimes), 1) / 3),
                                         5.0))
    for j, runtime in enumerate(runtimes):
        xs, ys, low, high, limits = [], [], [], [], []
        for i, row in enumerate(rows):
            cell = by_key.get((row, runtime))
            if cell is None or cell.get("ratio") is None:
                continue
            x = i - 0.4 + width * (j + 0.5)
            xs.append(x)
            ys.append(cell["ratio"])
            low.append(cell["ratio"] - cell["q1"])
            high.append(cell["q3"] - cell["ratio"])
            limits.append((x, cell["limit"]))
        axes.bar(xs, [y - 1.0 for y in ys], width, bottom=1.0, label=runtime,
                 yerr=[low, high], capsize=2)
        for x, limit in limits:
            axes.plot([x - width / 2, x + width / 2], [limit, limit], color="black",
                      linewidth=1.5)
    axes.axhline(1.0, color="gray", linewidth=0.8)
    axes.axhline(1.02, color="red", linewidth=0.8, linestyle="--")
    axes.set_xticks(range(len(rows)))
    axes.set_xticklabels(rows, rotation=35, ha="right", fontsize=8)
    axes.set_ylabel("time reordered / original (median, IQR)")
    axes.set_title("tf_reorder per runtime; black ticks: limit from the activation's share")
    axes.legend(fontsize=8, ncol=min(len(runtimes), 6))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    write_atomic(path, buffer.getvalue())


def write_all(payload: dict[str, Any], directory: str) -> dict[str, str]:
    """RESULTS.json, RESULTS.md and RESULTS.png in `directory`; returns their paths."""
    paths = {name: os.path.join(directory, f"RESULTS.{name}") for name in ("json", "md", "png")}
    write_atomic(paths["json"], json.dumps(payload, indent=2) + "\n")
    write_atomic(paths["md"], markdown(payload))
    plot(payload["cells"], paths["png"])
    return paths
