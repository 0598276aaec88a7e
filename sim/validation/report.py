"""Presenting a validation result: the Predicted | Measured | error table, a markdown file for
committing beside the JSON, and the predicted-vs-measured scatter chart (log-log, with the
y = x line and the +-10% / +-25% bands of the targets). Torch-free.
"""

from __future__ import annotations

from pathlib import Path

TARGET_MEDIAN, TARGET_MAX = 0.10, 0.25  # issue 6: timing targets after calibration


def _num(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and (abs(x) >= 1e5 or (x and abs(x) < 1e-2)):
        return f"{x:.4g}"
    return f"{x:,.4f}".rstrip("0").rstrip(".") if isinstance(x, float) else f"{x:,}"


def _err(case: dict) -> str:
    e = case["rel_error"]
    return "-" if e is None else f"{e:+.1%}"


def _spread(case: dict) -> str:
    s = case.get("spread")
    return "-" if s is None else f"{s:.0%}"


def case_lines(cases: list[dict], previous: list[dict] | None = None) -> list[str]:
    """The table; with ``previous`` runs (result dicts), each timing row also lists their
    errors and the run-to-run spread of its measured value ((max - min) / min)."""
    previous = previous or []
    head = ("case", "metric", "predicted", "measured", "error", "ok", "spread")
    head += tuple(f"run {i + 1} error" for i in range(len(previous)))
    head += ("runs spread",) if previous else ()
    rows = [head] + [_row(c, previous) for c in cases]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def _same(run: dict, case: dict) -> dict | None:
    return next((c for c in run["cases"] if c["name"] == case["name"]
                 and c["metric"] == case["metric"]), None)


def _row(c: dict, previous: list[dict]) -> tuple:
    row = (c["name"], c["metric"], _num(c["predicted"]), _num(c["measured"]), _err(c),
           "yes" if c["ok"] else "NO", _spread(c))
    if not previous:
        return row
    if c["kind"] != "timing":
        return row + ("",) * (len(previous) + 1)
    others = [_same(run, c) for run in previous]
    values = [o["measured"] for o in others if o] + [c["measured"]]
    runs = f"{(max(values) - min(values)) / min(values):.0%}" if min(values) > 0 else "-"
    return row + tuple(_err(o) if o else "-" for o in others) + (runs,)


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def _met(v, target: float) -> str:
    return "met" if v is not None and v <= target else "NOT met"


def runs_lines(previous: list[dict], result: dict) -> list[str]:
    """One line per run (the previous ones, then this one): its median and max error."""
    runs = previous + [result]
    return [f"run {i + 1} ({'this table' if r is result else r['stem']}, load "
            f"{r['machine']['loadavg_start'][0]:.1f}-{r['machine']['loadavg_end'][0]:.1f}): "
            f"median |error| {_pct(r['timing_median_abs_rel_error'])}, max |error| "
            f"{_pct(r['timing_max_abs_rel_error'])}" for i, r in enumerate(runs)]


def _runs_spread(case: dict, previous: list[dict]) -> float:
    values = [o["measured"] for o in (_same(r, case) for r in previous) if o]
    values.append(case["measured"])
    return (max(values) - min(values)) / min(values) if min(values) > 0 else 0.0


def miss_lines(result: dict) -> list[str]:
    """One line per timing row beyond the max target: its error against the machine's noise
    (the larger of its within-run spread and its run-to-run spread). Noise at least as large
    as the error: the machine cannot show the row meets the target; else a model gap."""
    previous = result.get("previous_runs") or []
    out = []
    for c in result["cases"]:
        if c["kind"] != "timing" or abs(c["rel_error"]) <= TARGET_MAX:
            continue
        noise = max(c.get("spread") or 0.0, _runs_spread(c, previous))
        verdict = ("within this machine's noise" if noise >= abs(c["rel_error"]) else
                   "larger than the noise: a model / reference gap (docs/design-validation-"
                   "fidelity.md)")
        out.append(f"{c['name']} {c['metric']}: error {_err(c)}, noise {noise:.0%}: {verdict}")
    return out


def summary_lines(result: dict) -> list[str]:
    med, mx = result["timing_median_abs_rel_error"], result["timing_max_abs_rel_error"]
    verdict = (f"(targets: median <= {TARGET_MEDIAN:.0%} {_met(med, TARGET_MEDIAN)}, "
               f"max <= {TARGET_MAX:.0%} {_met(mx, TARGET_MAX)})")
    fmt = _pct
    return [f"exact checks: {result['n_exact_cases']} rows, "
            f"{len(result['exact_mismatches'])} mismatches",
            f"timing: {result['n_timing_cases']} rows, median |error| {fmt(med)}, "
            f"max |error| {fmt(mx)} {verdict}"]


def published_lines(rows: list[dict]) -> list[str]:
    out = ["published runs (TFLOP/s per GPU, in each paper's FLOP convention):",
           "source | model | gpus | tp | pp | convention | reported | predicted | error"]
    out += [f"{r['source']} | {r['model']} | {r['gpus']} | {r['tp']} | {r['pp']} | "
            f"{r['convention']} | {r['reported_tflops']:.0f} | {r['predicted_tflops']:.0f} | "
            f"{r['error']:+.1%}" for r in rows]
    return out


def text_report(result: dict) -> str:
    head = [f"clustersim validate --device {result['device']}"
            f"{' --quick' if result['quick'] else ''}: commit {result['commit']}, "
            f"torch {result['machine']['torch']}, {result['threads']} thread(s), "
            f"clock={result['clock']}, profile {result['profile']}"]
    return "\n".join(head + [""] + case_lines(result["cases"]) + [""] + summary_lines(result)
                     + [""] + published_lines(result["published"])) + "\n"


def markdown_report(result: dict) -> str:
    m = result["machine"]
    lines = [f"# Validation table: {result['stem']}", "",
             f"- commit `{result['commit']}`, torch {m['torch']}, Python {m['python']}",
             f"- machine: {m['platform']}, {m['cpu_count']} CPUs"
             + (f", GPU {m['gpu']}" if "gpu" in m else ""),
             f"- {result['threads']} thread(s), clock `{result['clock']}`, load average at "
             f"start {m['loadavg_start'][0]:.1f}, at end {m['loadavg_end'][0]:.1f}",
             f"- profile: `{result['profile']}`", ""]
    lines += [f"- {s}" for s in summary_lines(result)]
    previous = result.get("previous_runs") or []
    if previous:
        lines += ["", "Runs in a row (this table is the last):"]
        lines += [f"- {s}" for s in runs_lines(previous, result)]
    misses = miss_lines(result)
    if misses:
        lines += ["", f"Rows beyond the {TARGET_MAX:.0%} target (noise = the larger of the row's "
                  "spread and its runs spread):"] + [f"- {s}" for s in misses]
    lines += ["", "spread: (median - estimate) / estimate of the row's samples in this run; "
              "runs spread: (max - min) / min of its measured value over the runs.", "", "```"]
    lines += case_lines(result["cases"], previous) + ["```", ""]
    lines += published_lines(result["published"])
    return "\n".join(lines) + "\n"


def scatter_chart(result: dict, path: str | Path) -> str:
    """Log-log predicted vs measured seconds of the timing rows (speedups on their own axis
    scale are ratios, plotted too: both axes are 'value of the metric')."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [c for c in result["cases"] if c["kind"] == "timing" and c["measured"] > 0
            and c["predicted"] > 0]
    fig, ax = plt.subplots(figsize=(6, 6))
    for metric in sorted({c["metric"] for c in rows}):
        pts = [c for c in rows if c["metric"] == metric]
        ax.scatter([c["measured"] for c in pts], [c["predicted"] for c in pts], label=metric, s=18)
    if rows:
        lo = min(min(c["measured"], c["predicted"]) for c in rows) / 1.5
        hi = max(max(c["measured"], c["predicted"]) for c in rows) * 1.5
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="y = x")
        for f, style in ((TARGET_MEDIAN, ":"), (TARGET_MAX, "--")):
            ax.plot([lo, hi], [lo * (1 + f), hi * (1 + f)], "k" + style, lw=0.6)
            ax.plot([lo, hi], [lo * (1 - f), hi * (1 - f)], "k" + style, lw=0.6)
    ax.set(xscale="log", yscale="log", xlabel="measured", ylabel="predicted (clustersim)",
           title=f"clustersim vs PyTorch ({result['device']}): dotted ±10%, dashed ±25%")
    if rows:  # a run with no timing cases has nothing to label
        ax.legend(fontsize=7)
    fig.tight_layout()
    from sim.fileio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return str(path)
