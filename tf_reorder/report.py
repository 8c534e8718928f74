"""What a pass saw: every candidate site, moved or not and why, and the saving.

Example:

    >>> report = tf_reorder.plan(model)          # doctest: +SKIP
    >>> print(report)                            # a table, one row per site
    >>> report.elements_saved                    # activation evaluations per sample
    >>> report.to_json()                         # for tools
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class Site:
    """One activation that feeds (through data movement) a pooling operation.

    Attributes:
      scope: the (nested) model or function the site is in, e.g. ``"vgg16"`` or
        ``"outer/block_1"``.
      activation: the layer (or node) that applies ``function``; for a fused
        activation this is the producer layer itself.
      function: the activation, e.g. ``"relu"`` or ``"LeakyReLU(negative_slope=0.3)"``.
      fused: whether the activation was fused into its producer (``activation=``).
      producer: what computes the activation's input (None for a model input).
      between: the operations between the activation and the pool.
      pool: the pooling operation the activation moves after (or would have).
      moved: the decision.
      reason: why not, in words (empty when moved).
      elements_before: activation evaluations per sample in the original.
      elements_after: activation evaluations per sample after the rewrite.
        Both counts include every call of a nested model that is called at
        several places; None where the input size is not known statically.
      exact: whether both orders give bitwise-equal results (piecewise-linear
        functions; where the input holds negative zeros, a zero may change its
        sign); otherwise they agree to about an ulp.
      notes: anything else the user should know (e.g. a decision that rests on
        trained values).
      policy: the runtime policy the site was decided under, e.g. ``"tflite
        (measured 2026-11-23, TF 2.21.0)"``; ``"any"`` without one (see
        `tf_reorder.policy`).
    """

    scope: str
    activation: str
    function: str
    fused: bool
    producer: str | None
    between: tuple[str, ...]
    pool: str | None
    moved: bool
    reason: str
    elements_before: int | None
    elements_after: int | None
    exact: bool = True
    notes: tuple[str, ...] = ()
    policy: str = "any"

    @property
    def elements_saved(self) -> int:
        """Activation evaluations per sample that the rewrite removes here."""
        if not self.moved or self.elements_before is None or self.elements_after is None:
            return 0
        return self.elements_before - self.elements_after

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["between"] = list(self.between)
        data["notes"] = list(self.notes)
        data["elements_saved"] = self.elements_saved
        return data


@dataclasses.dataclass(frozen=True)
class Report:
    """All candidate sites of one model or graph, in graph order."""

    subject: str
    sites: tuple[Site, ...]

    @property
    def moved(self) -> tuple[Site, ...]:
        return tuple(s for s in self.sites if s.moved)

    @property
    def skipped(self) -> tuple[Site, ...]:
        return tuple(s for s in self.sites if not s.moved)

    @property
    def elements_before(self) -> int:
        """Activation evaluations per sample at all sites, in the original.

        Sites whose size is not known statically (None) are not counted.
        """
        return sum(s.elements_before or 0 for s in self.sites)

    @property
    def elements_after(self) -> int:
        """The same count after the rewrite."""
        return self.elements_before - self.elements_saved

    @property
    def elements_saved(self) -> int:
        return sum(s.elements_saved for s in self.sites)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "sites": [s.to_dict() for s in self.sites],
            "moved": len(self.moved),
            "skipped": len(self.skipped),
            "elements_before": self.elements_before,
            "elements_after": self.elements_after,
            "elements_saved": self.elements_saved,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        header = ("", "activation", "function", "pool", "between", "before", "after", "decision")
        rows = []
        for site in self.sites:
            where = site.scope.removeprefix(self.subject).lstrip("/")
            name = (f"{where}/" if where else "") + site.activation + \
                (" (fused)" if site.fused else "")
            rows.append((
                "moved" if site.moved else "kept",
                name,
                site.function,
                site.pool or "-",
                ", ".join(site.between) or "-",
                _count(site.elements_before),
                _count(site.elements_after if site.moved else site.elements_before),
                "moved" if site.moved else site.reason,
            ))
        unknown = sum(1 for s in self.sites if s.elements_before is None)
        lines = [
            f"{self.subject}: {len(self.moved)} of {len(self.sites)} candidate sites moved; "
            f"activation elements per sample {self.elements_before:,} -> "
            f"{self.elements_after:,} (saved {self.elements_saved:,})"
            + (f"; {unknown} site(s) of unknown size not counted" if unknown else "")
        ]
        policies = sorted({s.policy for s in self.sites} - {"any"})
        if policies:
            lines.append(f"policy: {'; '.join(policies)}")
        if rows:
            lines.extend(_table(header[1:], [r[1:] for r in rows]))
        notes = sorted({n for s in self.sites for n in s.notes})
        lines.extend(f"note: {n}" for n in notes)
        return "\n".join(lines)


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    widths[-1] = 0  # the last column (the reason) is not padded
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header).rstrip()] + [fmt.format(*row).rstrip() for row in rows]
