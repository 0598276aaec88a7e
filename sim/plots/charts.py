"""Shared chart helpers in one house style: every chart has a title, labelled axes with units,
and a legend whenever more than one series is drawn.

Each helper takes plain data (lists, dicts, numpy arrays) and returns a matplotlib ``Figure``
built with the object API, so nothing leaks into pyplot's global state and charts can be drawn
from worker threads. ``save`` writes a PNG whose bytes depend only on the data: the
"Software" metadata (matplotlib's version) is dropped and the DPI is fixed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib import rc_context  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

GIB = 2**30
DPI = 110
PALETTE = (
    "#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3",
    "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD",
)
STYLE = {
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "legend.frameon": False,
    "svg.hashsalt": "clustersim",
}


def new_figure(title: str, xlabel: str, ylabel: str, size=(7.5, 4.5)):
    """A styled figure with one axes, titled and labelled (units belong in the labels)."""
    with rc_context(STYLE):
        fig = Figure(figsize=size, layout="constrained")
        ax = fig.add_subplot()
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    return fig, ax


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG with stable bytes (no software/version metadata)."""
    from sim.fileio import atomic_path

    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"
    with rc_context(STYLE), atomic_path(path, suffix=f".{fmt}") as tmp:  # temp + rename
        fig.savefig(tmp, dpi=DPI, format=fmt, metadata={"Software": None})
    return path


def _plain_log(ax, x: bool = False, y: bool = False) -> None:
    """Log axes labelled 8, 16, 0.5 ... rather than 2^3 or 6x10^1."""
    from matplotlib.ticker import FuncFormatter

    def minor(v, _):  # label 2x and 5x of each decade so short ranges still read
        if v <= 0:
            return ""
        mantissa = v / 10 ** np.floor(np.log10(v))
        return f"{v:g}" if round(mantissa, 6) in (2.0, 5.0) else ""

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    for on, axis in ((x, ax.xaxis), (y, ax.yaxis)):
        if on:
            axis.set_major_formatter(fmt)
            axis.set_minor_formatter(FuncFormatter(minor))


def _legend(ax, **kw) -> None:
    if len(ax.get_legend_handles_labels()[0]) > 1:
        ax.legend(**kw)


def stacked_bars(categories: Sequence[str], parts: Mapping[str, Sequence[float]], *, title: str,
                 ylabel: str, xlabel: str, limit: float | None = None,
                 limit_label: str = "capacity") -> Figure:
    """One bar per category, stacked by ``parts`` (name -> value per category)."""
    fig, ax = new_figure(title, xlabel, ylabel)
    with rc_context(STYLE):
        x = np.arange(len(categories))
        bottom = np.zeros(len(categories))
        for name, values in parts.items():
            vals = np.asarray(values, dtype=float)
            ax.bar(x, vals, bottom=bottom, label=name, width=0.65)
            bottom += vals
        if limit is not None:
            ax.axhline(limit, color="black", linestyle="--", linewidth=1.2, label=limit_label)
        ax.set_xticks(x, list(categories), rotation=20 if len(categories) > 4 else 0,
                      ha="right" if len(categories) > 4 else "center")
        handles, labels = ax.get_legend_handles_labels()
        if len(handles) > 1:  # outside the plot, in stacking order (top of stack first)
            ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.0, 1.0),
                      fontsize=8)
    return fig


def memory_breakdown(categories: Sequence[str], breakdowns: Sequence[Mapping[str, float]], *,
                     title: str, capacity_bytes: float | None = None,
                     xlabel: str = "configuration") -> Figure:
    """Memory per GPU as stacked bars (GiB): weights, gradients, optimizer, activations...

    ``breakdowns`` holds one {part: bytes} mapping per category (e.g. ``MemoryBreakdown
    .to_dict()``); a dashed line marks the GPU's HBM capacity."""
    names = [k for k in breakdowns[0] if k != "total"]
    parts = {k: [b[k] / GIB for b in breakdowns] for k in names}
    limit = None if capacity_bytes is None else capacity_bytes / GIB
    return stacked_bars(categories, parts, title=title, ylabel="memory per GPU (GiB)",
                        xlabel=xlabel,
                        limit=limit, limit_label="HBM capacity")


def grouped_bars(categories: Sequence[str], series: Mapping[str, Sequence[float]], *,
                 title: str, ylabel: str, xlabel: str, logy: bool = False) -> Figure:
    """Side-by-side bars: one group per category, one bar per series."""
    fig, ax = new_figure(title, xlabel, ylabel)
    with rc_context(STYLE):
        x = np.arange(len(categories))
        width = 0.8 / max(len(series), 1)
        for i, (name, values) in enumerate(series.items()):
            ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width=width, label=name)
        ax.set_xticks(x, list(categories))
        if logy:
            ax.set_yscale("log")
            _plain_log(ax, y=True)
        _legend(ax, fontsize=8)
    return fig


def line_chart(x: Sequence[float], series: Mapping[str, Sequence[float]], *, title: str,
               xlabel: str, ylabel: str, logx: bool = False, logy: bool = False,
               hline: tuple[float, str] | None = None, markers: bool = True) -> Figure:
    """Several curves over one x axis; an optional dashed horizontal reference line."""
    fig, ax = new_figure(title, xlabel, ylabel)
    with rc_context(STYLE):
        for name, ys in series.items():
            ax.plot(x, ys, marker="o" if markers else None, markersize=4, label=name)
        if hline is not None:
            ax.axhline(hline[0], color="black", linestyle="--", linewidth=1.2, label=hline[1])
        if logx:
            ax.set_xscale("log", base=2)
        if logy:
            ax.set_yscale("log")
        _plain_log(ax, x=logx, y=logy)
        _legend(ax, fontsize=8)
    return fig


def scaling_curve(gpus: Sequence[int], mfu: Mapping[str, Sequence[float]], *,
                  title: str) -> Figure:
    """MFU (%) against the number of GPUs, one curve per configuration."""
    pct = {k: [100 * v for v in vs] for k, vs in mfu.items()}
    fig = line_chart(gpus, pct, title=title, xlabel="GPUs (log scale)",
                     ylabel="model FLOPs utilisation, MFU (%)", logx=True)
    fig.axes[0].set_ylim(0, 100)  # MFU is a fraction of peak: show the whole scale
    return fig


def kv_cache_vs_context(contexts: Sequence[int], kv_bytes: Mapping[str, Sequence[float]], *,
                        title: str, capacity_bytes: float | None = None) -> Figure:
    """KV-cache bytes (GiB) against context length, one curve per attention variant."""
    gib = {k: [v / GIB for v in vs] for k, vs in kv_bytes.items()}
    hline = None if capacity_bytes is None else (capacity_bytes / GIB, "free HBM")
    return line_chart(contexts, gib, title=title, xlabel="context length (tokens, log scale)",
                      ylabel="KV cache (GiB)", logx=True, logy=True, hline=hline)


def expert_load_histogram(loads: Mapping[str, Sequence[float]], *, title: str,
                          capacity: float | None = None,
                          capacity_label: str = "expert capacity") -> Figure:
    """Tokens per expert as bars, one series per routing case; dashed line at capacity."""
    first = next(iter(loads.values()))
    fig = grouped_bars([str(i) for i in range(len(first))], loads, title=title,
                       xlabel="expert index", ylabel="tokens routed to expert")
    if capacity is not None:
        ax = fig.axes[0]
        with rc_context(STYLE):
            ax.axhline(capacity, color="black", linestyle="--", linewidth=1.2,
                       label=capacity_label)
            ax.legend(fontsize=8)
    return fig


def heatmap(matrix, row_labels: Sequence, col_labels: Sequence, *, title: str, xlabel: str,
            ylabel: str, cbar_label: str, fmt: str = "{:.2f}", center: float | None = None
            ) -> Figure:
    """A labelled heatmap with each cell's value written in it (e.g. speedup vs two knobs).

    ``center`` puts that value at the colour map's midpoint (1.0 for speedups)."""
    fig, ax = new_figure(title, xlabel, ylabel, size=(7.0, 4.8))
    data = np.asarray(matrix, dtype=float)
    with rc_context(STYLE):
        ax.grid(False)
        kw = {}
        if center is not None:
            from matplotlib.colors import TwoSlopeNorm
            lo, hi = min(data.min(), center - 1e-9), max(data.max(), center + 1e-9)
            kw["norm"] = TwoSlopeNorm(vcenter=center, vmin=lo, vmax=hi)
        im = ax.imshow(data, cmap="RdYlGn", aspect="auto", origin="lower", **kw)
        ax.set_xticks(range(len(col_labels)), [str(c) for c in col_labels])
        ax.set_yticks(range(len(row_labels)), [str(r) for r in row_labels])
        for (i, j), v in np.ndenumerate(data):
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=8)
        fig.colorbar(im, ax=ax, label=cbar_label)
    return fig


def throughput_latency(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
                       title: str, latency_label: str = "p99 latency (s)",
                       throughput_label: str = "throughput (output tokens/s)") -> Figure:
    """Latency against throughput, one curve per policy (points are a sweep of load)."""
    fig, ax = new_figure(title, throughput_label, latency_label)
    with rc_context(STYLE):
        for name, (thr, lat) in curves.items():
            ax.plot(thr, lat, marker="o", markersize=4, label=name)
        ax.set_yscale("log")
        _plain_log(ax, y=True)
        _legend(ax, fontsize=8)
    return fig


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def roofline(peak_flops: float, memory_bandwidth: float,
             ops: Sequence[tuple[str, str, float, float]], *, title: str) -> Figure:
    """The roofline min(peak, AI * bandwidth) on log-log axes with ops placed on it.

    ``ops`` are (group, op name, arithmetic intensity in FLOP/byte, achieved FLOP/s); colour
    tells the group (e.g. phase), the marker the op. The ridge point peak / bandwidth separates
    memory-bound (left) from compute-bound (right) (Williams et al. 2009, "Roofline", Fig. 1)."""
    from matplotlib.lines import Line2D

    fig, ax = new_figure(title, "arithmetic intensity (FLOP/byte, log scale)",
                         "attainable TFLOP/s (log scale)")
    ridge = peak_flops / memory_bandwidth
    intensities = [ai for *_, ai, _ in ops] + [ridge]
    xs = np.geomspace(min(intensities) / 4, max(intensities) * 4, 200)
    groups = list(dict.fromkeys(g for g, *_ in ops))
    names = list(dict.fromkeys(n for _, n, *_ in ops))
    with rc_context(STYLE):
        ax.plot(xs, np.minimum(peak_flops, xs * memory_bandwidth) / 1e12, color="black")
        ax.axvline(ridge, color="grey", linestyle=":")
        for g, name, ai, achieved in ops:
            ax.scatter([ai], [achieved / 1e12], zorder=3, s=36,
                       color=PALETTE[groups.index(g) % len(PALETTE)],
                       marker=MARKERS[names.index(name) % len(MARKERS)])
        handles = [Line2D([], [], color="black", label="roofline"),
                   Line2D([], [], color="grey", linestyle=":", label=f"ridge {ridge:.0f} FLOP/B")]
        handles += [Line2D([], [], color=PALETTE[i % len(PALETTE)], marker="o", linestyle="",
                           label=g) for i, g in enumerate(groups)]
        handles += [Line2D([], [], color="black", marker=MARKERS[i % len(MARKERS)],
                           linestyle="", label=n) for i, n in enumerate(names)]
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log(ax, x=True, y=True)
        ax.legend(handles=handles, fontsize=7, loc="lower right")
    return fig
