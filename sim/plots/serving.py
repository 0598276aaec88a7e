"""Serving charts: latency CDFs, throughput vs latency over a load sweep, KV-cache use and batch
size over time, and static vs continuous batching side by side.

Every function takes ``ServingResult`` objects (or summaries of a sweep) and returns a
matplotlib ``Figure`` built with the object API in the house style of ``sim.plots.charts``;
``write_charts`` saves the single-run charts as byte-stable PNGs (``clustersim serve
--charts DIR``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

from sim.plots.charts import STYLE, save
from sim.plots.charts import throughput_latency as _throughput_latency

METRICS = {"ttft_s": "time to first token", "tpot_s": "time per output token",
           "e2e_s": "end-to-end latency"}


def _cdf(ax, values, label: str) -> None:
    v = np.sort(np.asarray(values, dtype=float))
    v = v[np.isfinite(v)]
    if len(v):
        ax.step(v * 1e3, np.arange(1, len(v) + 1) / len(v), where="post", label=label)


def latency_cdfs(results: Mapping[str, object], *, title: str = "Latency CDFs") -> Figure:
    """One panel per metric (TTFT, TPOT, e2e), one CDF per labelled result."""
    with rc_context(STYLE):
        fig = Figure(figsize=(12, 3.8), layout="constrained")
        axes = fig.subplots(1, 3)
        fig.suptitle(title, fontweight="bold")
        for ax, (col, name) in zip(axes, METRICS.items(), strict=True):
            for label, r in results.items():
                ok = r.requests[r.requests.rejected == ""]
                _cdf(ax, ok[col], label)
            ax.set_xscale("log")
            ax.set_title(name)
            ax.set_xlabel(f"{name} (ms)")
            ax.set_ylabel("fraction of requests")
            if len(results) > 1:
                ax.legend(fontsize=8)
    return fig


def throughput_vs_latency(sweeps: Mapping[str, Sequence[dict]], *, metric: str = "e2e_s",
                          pct: str = "p99", title: str = "Throughput vs latency") -> Figure:
    """``sweeps``: label -> summaries (``ServingResult.summary``) over rising arrival rates.
    Saturated points are drawn hollow: their percentiles measure the run's length."""
    curves = {label: ([s["throughput_tokens_per_s"] for s in runs],
                      [s[metric][pct] for s in runs]) for label, runs in sweeps.items()}
    fig = _throughput_latency(curves, title=title,
                              latency_label=f"{pct} {METRICS[metric]} (s)")
    ax = fig.axes[0]
    with rc_context(STYLE):
        for runs in sweeps.values():
            sat = [(s["throughput_tokens_per_s"], s[metric][pct]) for s in runs if s["saturated"]]
            if sat:
                ax.scatter(*zip(*sat, strict=True), s=60, facecolors="none",
                           edgecolors="black", zorder=3)
    return fig


def kv_and_batch_over_time(result, *, title: str = "KV cache and batch size over time",
                           axes=None) -> Figure:
    """Two stacked panels: KV-cache utilisation and running batch size per iteration."""
    with rc_context(STYLE):
        if axes is None:
            fig = Figure(figsize=(8, 5), layout="constrained")
            axes = fig.subplots(2, 1, sharex=True)
            fig.suptitle(title, fontweight="bold")
        fig = axes[0].figure
        tl = result.timeline
        for rep, g in tl.groupby("replica"):
            label = f"replica {rep}" if tl.replica.nunique() > 1 else None
            axes[0].plot(g.t_s, 100 * g.kv_utilization, lw=0.8, label=label)
            axes[1].plot(g.t_s, g.batch, lw=0.8, label=label)
        axes[0].set_ylabel("KV cache used (%)")
        axes[0].set_ylim(0, 105)
        axes[1].set_ylabel("sequences in batch")
        axes[1].set_xlabel("simulated time (s)")
        if tl.replica.nunique() > 1:
            axes[0].legend(fontsize=8)
    return fig


def static_vs_continuous(static, continuous, *,
                         title: str = "Static vs continuous batching") -> Figure:
    """Side by side: KV use and batch size over time for each policy, same workload."""
    with rc_context(STYLE):
        fig = Figure(figsize=(12, 5), layout="constrained")
        grid = fig.subplots(2, 2, sharex=True, sharey="row")
        fig.suptitle(title, fontweight="bold")
        for col, (name, r) in enumerate((("static", static), ("continuous", continuous))):
            kv_and_batch_over_time(r, axes=grid[:, col])
            thr = r.summary["throughput_tokens_per_s"]
            grid[0, col].set_title(f"{name}: {thr:.0f} output tokens/s")
    return fig


def write_charts(result, directory: str | Path) -> list[str]:
    """Save the single-run charts of ``result`` under ``directory``; return their paths."""
    d = Path(directory)
    paths = [save(latency_cdfs({result.config.policy: result}), d / "latency_cdfs.png"),
             save(kv_and_batch_over_time(result), d / "kv_and_batch_over_time.png")]
    return [str(p) for p in paths]
