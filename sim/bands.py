"""Error bands on every answer, from the validation residuals (issue 13).

``clustersim validate --published`` measures, per set, the signed error
``e = predicted / measured - 1`` of every row and writes the 10th and 90th percentiles of
``e`` per dominating component (training: compute, communication, bubble; serving: prefill,
decode) to ``sim/data/bands.json``. A new prediction ``p`` dominated by the same component is
then read as "the measured value lies in ``[p / (1 + q90), p / (1 + q10)]`` in 80% of the
validated cases": ``step_time_s_low`` / ``step_time_s_high`` for training, ``ttft_s`` and
``tpot_s`` bands (prefill and decode residuals) for serving. Method and its limits:
``docs/design-stacks.md`` (Error bands).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

BANDS = Path(__file__).resolve().parent / "data" / "bands.json"
_COMPONENT = {"compute": "compute", "communication_exposed": "communication",
              "pipeline_bubble": "bubble"}


@functools.cache
def _bands() -> dict:
    return json.loads(BANDS.read_text()) if BANDS.is_file() else {}


def interval(value: float, q: dict | None) -> tuple[float, float]:
    """(low, high) around ``value`` from residual percentiles ``q`` (none: the value itself)."""
    if not q or value is None:
        return value, value
    return value / (1 + q["q90"]), value / (1 + q["q10"])


def train_band(doc: dict) -> dict:
    """``step_time_s_low``/``_high`` and the band's provenance for a train result document."""
    t = doc.get("time_breakdown_s", {})
    comp = _COMPONENT[max(_COMPONENT, key=lambda k: t.get(k, 0.0))] if t else "compute"
    q = _bands().get("training", {}).get(comp)
    low, high = interval(doc["step_time_s"], q)
    return {"step_time_s_low": low, "step_time_s_high": high,
            "step_time_band": {"component": comp, "residual_q10": q and q["q10"],
                               "residual_q90": q and q["q90"], "rows": q and q["count"],
                               "method": "docs/design-stacks.md#error-bands"}}


def serve_band(doc: dict) -> dict:
    """TTFT (prefill residuals) and TPOT (decode residuals) bands around the means."""
    out = {}
    for key, phase in (("ttft_s", "prefill"), ("tpot_s", "decode")):
        q = _bands().get("serving", {}).get(phase)
        mean = (doc.get(key) or {}).get("mean")
        low, high = interval(mean, q)
        out[f"{key}_band"] = {"mean": mean, "low": low, "high": high, "component": phase,
                              "residual_q10": q and q["q10"], "residual_q90": q and q["q90"],
                              "method": "docs/design-stacks.md#error-bands"}
    return out
