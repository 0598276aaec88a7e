"""One row of the predicted-vs-measured table, and the summary statistics over rows.

Every check the harness runs becomes a ``Case``: ``kind="exact"`` rows (parameter counts,
FLOPs, KV-cache bytes, collective lists) must agree exactly (or within the stated tolerance
for activation memory), ``kind="timing"`` rows are measured seconds vs predicted seconds and
feed the median / max absolute relative error. This module does not import torch.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Case:
    name: str
    metric: str  # what is compared, e.g. "params", "fwd_flops", "step_time_s"
    predicted: float
    measured: float
    kind: str = "exact"  # "exact" | "tolerance" | "timing" | "info"
    tolerance: float = 0.0  # allowed |rel_error| for kind "tolerance"
    note: str = ""
    spread: float | None = None  # timing rows: (median - estimate) / estimate of the samples

    @property
    def rel_error(self) -> float:
        """(predicted - measured) / measured; 0 when both are 0."""
        if self.measured == 0:
            return 0.0 if self.predicted == 0 else float("inf")
        return (self.predicted - self.measured) / self.measured

    @property
    def ok(self) -> bool:
        if self.kind == "exact":
            return self.predicted == self.measured
        if self.kind == "tolerance":
            return abs(self.rel_error) <= self.tolerance
        return True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rel_error"] = self.rel_error
        d["ok"] = self.ok
        return d


def exact_mismatches(cases: list[Case]) -> list[dict]:
    """Exact / tolerance rows that failed, as dicts (empty when everything agrees)."""
    return [c.to_dict() for c in cases if c.kind in ("exact", "tolerance") and not c.ok]


def timing_errors(cases: list[Case]) -> list[float]:
    return [abs(c.rel_error) for c in cases if c.kind == "timing"]


def summary(cases: list[Case]) -> dict:
    """Median and max absolute relative error over the timing rows (None when there are none)."""
    errs = timing_errors(cases)
    return {
        "timing_median_abs_rel_error": statistics.median(errs) if errs else None,
        "timing_max_abs_rel_error": max(errs) if errs else None,
        "n_timing_cases": len(errs),
        "n_exact_cases": sum(c.kind in ("exact", "tolerance") for c in cases),
    }
