"""Training DES charts: the pipeline Gantt timeline and HBM over time.

``gantt`` draws one row per (simulated rank, stream): forward tasks, backward tasks,
ZeRO-H1's weight-gradient tasks and the optimizer on the compute row, each communication
stream (tp, cp, ep, dp, pp) on its own row below it. White gaps on a compute row are the
pipeline bubbles and the waits for communication; nothing is drawn for them, so they stand out.
``memory_over_time`` is a step plot of every simulated GPU's HBM in use, with its capacity.
``plot_timeline`` stacks both in one PNG (``clustersim train --engine des --timeline F.png``).
Consecutive intervals of one row and colour are merged before drawing, so a 16,384-GPU step
draws as fast as a small one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim.plots.charts import GIB, PALETTE, STYLE, rc_context, save

PASS_COLORS = {"F": PALETTE[0], "B": PALETTE[1], "W": PALETTE[2], "optimizer": PALETTE[5]}
STREAM_COLORS = {"tp": PALETTE[3], "cp": PALETTE[4], "ep": PALETTE[6], "dp": PALETTE[7],
                 "pp": PALETTE[8]}
PASS_LABELS = {"F": "forward", "B": "backward", "W": "weight grad (ZB)",
               "optimizer": "optimizer"}
STREAM_ORDER = ("compute", "tp", "cp", "ep", "pp", "dp")


def _merged(ops: pd.DataFrame, gap: float) -> pd.DataFrame:
    """Merge touching intervals of the same row and colour (gap: largest gap bridged)."""
    ops = ops.assign(color=[_color(s, p) for s, p in zip(ops.stream, ops["pass"], strict=True)])
    ops = ops.sort_values(["rank", "stream", "color", "start"], kind="stable")
    key = pd.MultiIndex.from_frame(ops[["rank", "stream", "color"]]).factorize()[0]
    start, end = ops.start.to_numpy(), ops.end.to_numpy()
    new = np.ones(len(ops), bool)
    new[1:] = (key[1:] != key[:-1]) | (start[1:] > end[:-1] + gap)
    group = np.cumsum(new)
    return ops.groupby(group).agg(rank=("rank", "first"), stream=("stream", "first"),
                                  color=("color", "first"), pass_=("pass", "first"),
                                  start=("start", "min"), end=("end", "max"))


def _color(stream: str, pass_: str) -> str:
    if stream == "compute":
        return PASS_COLORS.get(pass_, PALETTE[9])
    return STREAM_COLORS.get(stream, PALETTE[9])


def _rows(ops: pd.DataFrame) -> list[tuple[int, str]]:
    pairs = {(int(r), s) for r, s in zip(ops["rank"], ops.stream, strict=True)}
    return sorted(pairs, key=lambda rs: (rs[0], STREAM_ORDER.index(rs[1])
                                         if rs[1] in STREAM_ORDER else 99))


def draw_gantt(ax, ops: pd.DataFrame) -> None:
    """Gantt rows on ``ax`` (time in ms); see the module docstring."""
    span = float(ops.end.max()) if len(ops) else 1.0
    bars = _merged(ops, span * 1e-4)
    rows = _rows(ops)
    index = {rs: i for i, rs in enumerate(rows)}
    for (rank, stream, color), g in bars.groupby(["rank", "stream", "color"], sort=True):
        y = index[(int(rank), stream)]
        height = 0.8 if stream == "compute" else 0.5
        ax.broken_barh(list(zip(g.start * 1e3, (g.end - g.start) * 1e3, strict=True)),
                       (y - height / 2, height), facecolors=color, linewidth=0)
    ax.set_yticks(range(len(rows)), [f"rank {r} {s}" for r, s in rows])
    ax.invert_yaxis()
    ax.set_xlabel("simulated time (ms)")
    _legend(ax, ops)


def _legend(ax, ops: pd.DataFrame) -> None:
    from matplotlib.patches import Patch

    present_pass = set(ops.loc[ops.stream == "compute", "pass"])
    handles = [Patch(color=c, label=PASS_LABELS[p]) for p, c in PASS_COLORS.items()
               if p in present_pass]
    handles += [Patch(color=c, label=f"{s} comm") for s, c in STREAM_COLORS.items()
                if s in set(ops.stream)]
    handles.append(Patch(facecolor="white", edgecolor="grey", label="gap = bubble / wait"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)


def draw_memory(ax, memory: dict, capacity: float | None = None) -> None:
    """Step plot of HBM in use (GiB) per simulated rank over time (ms)."""
    for i, (rank, samples) in enumerate(sorted(memory.items())):
        t = np.array([s[0] for s in samples]) * 1e3
        level = np.array([s[1] for s in samples]) / GIB
        ax.step(t, level, where="post", color=PALETTE[i % len(PALETTE)], label=f"rank {rank}")
    if capacity:
        ax.axhline(capacity / GIB, color="black", linestyle="--", linewidth=1,
                   label="HBM capacity")
    ax.set_xlabel("simulated time (ms)")
    ax.set_ylabel("HBM in use (GiB)")
    if len(memory) <= 12:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)


def plot_timeline(ops: pd.DataFrame, memory: dict, path: str | Path, *,
                  capacity: float | None = None, title: str = "Simulated training step") -> Path:
    """Gantt timeline above the memory-over-time chart, written as one PNG."""
    from matplotlib.figure import Figure

    n_rows = len(_rows(ops))
    with rc_context(STYLE):
        fig = Figure(figsize=(11, 2.5 + 0.28 * n_rows + 3), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True,
                                   gridspec_kw={"height_ratios": [max(2, n_rows * 0.28), 3]})
        top.set_title(title)
        draw_gantt(top, ops)
        draw_memory(bottom, memory, capacity)
        bottom.set_title("HBM over time")
    return save(fig, path)


def memory_over_time(memory: dict, path: str | Path, *, capacity: float | None = None) -> Path:
    """The memory chart alone."""
    from sim.plots.charts import new_figure

    fig, ax = new_figure("HBM over time", "simulated time (ms)", "HBM in use (GiB)")
    draw_memory(ax, memory, capacity)
    return save(fig, path)
