"""From finished requests to numbers: per-request records, aggregates and the saturation test.

Per request (one row of ``columns``, as a DataFrame on demand): arrival, queueing delay (arrival to first scheduled), time to
first token (TTFT), time per output token after the first (TPOT = (finish - first token) /
(output - 1), NaN for one-token answers), end-to-end latency, preemptions, rejection reason.

Throughput counts output tokens over the makespan (first arrival to last finish). Goodput is
the rate of requests that met both SLOs (TTFT <= slo_ttft_s and TPOT <= slo_tpot_s), the
DistServe definition (Zhong et al. 2024, Sec. 2.2).

Saturation. A percentile measured while the queue grows without bound describes the length of
the experiment, not a latency. Over the second half of the arrival window we compare arrivals
with completions: the system is ``saturated`` when completions trail arrivals by more than 10%
and by more than 3 standard deviations of Poisson noise (3 sqrt(arrivals)), i.e. the backlog
kept growing. ``offered_rate_rps`` and ``service_rate_rps`` are the two rates compared.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("rid", "arrival_s", "replica", "prompt_tokens", "output_tokens", "generated_tokens",
           "queueing_delay_s", "ttft_s", "tpot_s", "e2e_s", "preemptions", "rejected")


def records(done: list, rejected: list) -> dict:
    """Per-request columns (``COLUMNS``), sorted by id, from Request objects (built as
    arrays: a million requests need no per-row Python tuples)."""
    reqs = sorted(done + rejected, key=lambda r: r.rid)

    def col(name: str, dtype) -> np.ndarray:
        return np.fromiter((getattr(r, name) for r in reqs), dtype=dtype, count=len(reqs))

    return columns({
        "rid": col("rid", np.int64), "arrival": col("arrival", np.float64),
        "replica": col("replica", np.int64), "prompt": col("prompt", np.int64),
        "output": col("output", np.int64), "generated": col("generated", np.int64),
        "scheduled": col("scheduled", np.float64), "first_token": col("first_token", np.float64),
        "finish": col("finish", np.float64), "preemptions": col("preemptions", np.int64),
        "rejected": [r.rejected for r in reqs]})


def columns(c: dict) -> dict:
    """``COLUMNS`` (numpy arrays; ``rejected`` an object array) from columns named as
    ``Request``'s fields, one element per request, sorted by id."""
    arrival, output, first, finish = c["arrival"], c["output"], c["first_token"], c["finish"]
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = np.where(output > 1, (finish - first) / np.maximum(output - 1, 1), math.nan)
    rejected = np.empty(len(arrival), dtype=object)
    rejected[:] = c["rejected"]
    return {"rid": c["rid"], "arrival_s": arrival, "replica": c["replica"],
            "prompt_tokens": c["prompt"], "output_tokens": output,
            "generated_tokens": c["generated"], "queueing_delay_s": c["scheduled"] - arrival,
            "ttft_s": first - arrival, "tpot_s": tpot, "e2e_s": finish - arrival,
            "preemptions": c["preemptions"], "rejected": rejected}


def frame(cols: dict) -> pd.DataFrame:
    """The per-request DataFrame of ``columns`` output (pandas is imported here only)."""
    import pandas as pd

    data = {k: (pd.Series(v, dtype=object) if k == "rejected" else v) for k, v in cols.items()}
    return pd.DataFrame(data, columns=list(COLUMNS))


REQUEST_OUT_COLUMNS = ("rid", "arrival_s", "first_token_s", "finish_s", "prompt_tokens",
                       "output_tokens", "preemptions", "replica", "rejected")


def request_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per-request absolute times (``--requests-out``): arrival, first token and finish in
    simulated seconds (empty for rejected requests), token counts, preemptions, replica."""
    out = df.assign(first_token_s=df["arrival_s"] + df["ttft_s"],
                    finish_s=df["arrival_s"] + df["e2e_s"])
    return out[list(REQUEST_OUT_COLUMNS)]


def stats(values: np.ndarray) -> dict:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if not len(v):
        return {"mean": None, "p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.percentile(v, [50, 90, 99])
    return {"mean": float(v.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}


def _served(cols: dict) -> dict:
    """The columns of the requests served (not rejected at the door)."""
    ok = cols["rejected"] == ""
    return {k: v[ok] for k, v in cols.items()}


def saturation(cols: dict) -> dict:
    """Arrival vs completion rates over the second half of the arrival window."""
    ok = _served(cols)
    arr = np.sort(ok["arrival_s"])
    fin = np.sort(ok["arrival_s"] + ok["e2e_s"])
    if len(arr) < 2 or arr[-1] <= arr[0]:
        return {"saturated": False, "offered_rate_rps": None, "service_rate_rps": None}
    mid, end = (arr[0] + arr[-1]) / 2, arr[-1]
    arrivals = np.searchsorted(arr, end, "right") - np.searchsorted(arr, mid, "right")
    completions = np.searchsorted(fin, end, "right") - np.searchsorted(fin, mid, "right")
    lag = arrivals - completions
    window = end - mid
    return {"saturated": bool(lag > max(0.1 * arrivals, 3 * math.sqrt(arrivals))),
            "offered_rate_rps": arrivals / window, "service_rate_rps": completions / window}


REJECTION_KINDS = (  # (key, a phrase of the engine's reason text: sim.serving.admission.misfit)
    ("longer_than_context", "context window"), ("no_kv_cache", "leave no HBM"),
    ("above_batch_token_budget", "max-batched-tokens"), ("longer_than_kv_pool", "KV blocks"),
)


def rejection_counts(reasons) -> dict:
    """Rejected requests per reason key (``REJECTION_KINDS``; "other" for anything else)."""
    out: dict[str, int] = {}
    for text in reasons:
        key = next((k for k, phrase in REJECTION_KINDS if phrase in text), "other")
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def summarize(cols: dict, cfg, extra: dict) -> dict:
    """The aggregate summary of ``columns`` output (numpy only: a serve run that writes no
    per-request table never imports pandas)."""
    ok = _served(cols)
    n_ok = len(ok["rid"])
    start = float(cols["arrival_s"].min()) if len(cols["rid"]) else 0.0
    end = float(np.nanmax(ok["arrival_s"] + ok["e2e_s"])) if n_ok else start
    span = end - start if end > start else math.nan
    good = int(((ok["ttft_s"] <= cfg.slo_ttft_s) & ~(ok["tpot_s"] > cfg.slo_tpot_s)).sum())
    out = {
        "requests_completed": n_ok,
        "requests_rejected": int(len(cols["rid"]) - n_ok),
        "throughput_tokens_per_s": float(ok["generated_tokens"].sum() / span),
        "throughput_requests_per_s": float(n_ok / span),
        "goodput_requests_per_s": float(good / span),
        "slo_attainment": float(good / n_ok) if n_ok else None,
        "ttft_s": stats(ok["ttft_s"]),
        "tpot_s": stats(ok["tpot_s"]),
        "e2e_s": stats(ok["e2e_s"]),
        "queueing_delay_s": stats(ok["queueing_delay_s"]),
        "preemptions": int(ok["preemptions"].sum()),
        "makespan_s": span,
    }
    out.update(saturation(cols))
    out.update(extra)
    reasons = cols["rejected"][cols["rejected"] != ""].tolist()
    out["rejection_reasons"] = sorted(set(reasons))[:5]
    out["rejection_counts"] = rejection_counts(reasons)
    return out


def iteration_means(logs: list, capacity: int) -> dict:
    """Batch size and KV-cache utilisation averaged over iterations (integer sums, so
    stepped and fast-forwarded runs give the same numbers)."""
    steps = batch = used = 0
    for _, log in logs:  # one column at a time (a million-request log is 200 MB)
        n_steps = log.column("steps")
        steps += int(n_steps.sum())
        batch += int((log.column("batch") * n_steps).sum())
        used += int(log.column("kv_used_sum").sum())
    return {"batch_size_mean": batch / steps if steps else 0.0,
            "kv_cache_mean_utilization": used / (capacity * steps) if steps and capacity
            else 0.0}


def timeline(logs: list, capacity: int) -> pd.DataFrame:
    """One row per stepped iteration, or per fast-forwarded run (``steps`` > 1), of every
    replica: end time, iterations, batch, KV use at the end, queue, tokens."""
    import pandas as pd

    frames = []
    for idx, log in logs:
        a = log.arrays()
        frames.append(pd.DataFrame({
            "t_s": a["t_s"], "replica": idx, "steps": a["steps"], "batch": a["batch"],
            "kv_blocks_used": a["kv_blocks_used"],
            "kv_utilization": a["kv_blocks_used"] / capacity if capacity else 0.0,
            "waiting": a["waiting"], "tokens": a["tokens"],
        }))
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["t_s", "replica"], kind="stable").reset_index(drop=True)
