"""Strong vs weak scaling: a sweep of Llama-3-70B (TP8 x PP4) training over GPUs and batch.

Lesson 3 (training-and-serving-at-scale). Concepts: a sweep runs a grid of what-ifs from a
small TOML file (``scenarios/sweeps/sweep_scaling.toml``) through ``clustersim sweep`` and
returns one tidy table. Here a fixed model-parallel block (tensor 8 x pipeline 4 = 32 GPUs)
is replicated 1 to 16 times by data parallelism at three global batches. With the batch fixed
(strong scaling) every doubling of GPUs halves the micro-batches m per pipeline, and the 1F1B
bubble, (p-1)/m of the useful time (Narayanan et al. 2021, Sec. 2.2), takes a growing share
of the step, so MFU falls; growing the batch with the GPUs (weak scaling) keeps m, the bubble
and MFU constant.
"""

from __future__ import annotations

from pathlib import Path

from sim.plots import charts
from sim.report import Result, publish
from sim.sweep import load_sweep, run_sweep

LESSON = "training-and-serving-at-scale"
TOPIC = "Sweep: strong vs weak scaling of TP x PP x DP training"
REFUTES = ("parallelism-is-data-splitting",)

SWEEP_FILE = "sweeps/sweep_scaling.toml"  # path relative to scenarios/
result_columns = (  # the sweep table columns the scenario reports (not a knob)
    "gpus", "global_batch", "n_microbatches", "step_time_s", "tokens_per_s", "mfu",
    "time_breakdown_s.compute", "time_breakdown_s.communication_exposed",
    "time_breakdown_s.pipeline_bubble", "fits")


def run() -> Result:
    spec = load_sweep(Path(__file__).with_name("sweeps") / Path(SWEEP_FILE).name)
    df = run_sweep(spec).table
    table = df[list(result_columns)].rename(columns={
        "time_breakdown_s.compute": "compute_s",
        "time_breakdown_s.communication_exposed": "comm_exposed_s",
        "time_breakdown_s.pipeline_bubble": "bubble_s"})
    table = table.assign(mfu_pct=100 * table.mfu, bubble_share_pct=100 * table.bubble_s
                         / table.step_time_s).drop(columns="mfu")
    gpus = sorted(table.gpus.unique())
    batches = sorted(table.global_batch.unique())
    get = table.set_index(["gpus", "global_batch"])
    small_b, big_b, lo, hi = batches[0], batches[-1], gpus[0], gpus[-1]
    n = {"lo": lo, "hi": hi, "small_b": small_b, "big_b": big_b,
         "strong_lo": get.loc[(lo, small_b), "mfu_pct"],
         "strong_hi": get.loc[(hi, small_b), "mfu_pct"],
         "weak_hi": get.loc[(hi, big_b), "mfu_pct"],
         "bubble_lo": get.loc[(lo, small_b), "bubble_share_pct"],
         "bubble_hi": get.loc[(hi, small_b), "bubble_share_pct"], "points": len(df)}
    mfu = {f"global batch {b}": [get.loc[(g, b), "mfu_pct"] for g in gpus] for b in batches}
    share = [[get.loc[(g, b), "bubble_share_pct"] for g in gpus] for b in batches]
    cfg = {"sweep_file": SWEEP_FILE, "points": [p.params for p in spec.points]}
    return Result(table, n, takeaway(n), cfg, {
        "mfu_vs_gpus.png": lambda: charts.line_chart(
            gpus, mfu, title=f"{_setup(spec)}: MFU vs GPUs",
            xlabel="GPUs (log scale)", ylabel="MFU (%)", logx=True),
        "bubble_share.png": lambda: charts.heatmap(
            share, [str(b) for b in batches], [str(g) for g in gpus],
            title=f"{_setup(spec)}: pipeline bubble share (%)", xlabel="GPUs",
            ylabel="global batch (sequences)", cbar_label="% of step time idle in the bubble",
            fmt="{:.1f}", higher_is_better=False)})


def _setup(spec) -> str:
    """'llama3-70b on dgx-h100, TP8 x PP4 x DP' from the sweep's base parameters."""
    b = spec.points[0].params
    return f"{b['model']} on {b['system']}, TP{b['tp']} x PP{b['pp']} x DP, seq {b['seq']}"


def takeaway(n: dict) -> str:
    trend = "falls" if n["strong_hi"] < n["strong_lo"] else "does not fall"
    return (f"With the global batch fixed at {n['small_b']} sequences, MFU {trend} from "
            f"{n['strong_lo']:.0f}% on {n['lo']} GPUs to {n['strong_hi']:.0f}% on {n['hi']}, "
            f"as the pipeline bubble grows from {n['bubble_lo']:.0f}% to {n['bubble_hi']:.0f}% "
            f"of the step; at {n['big_b']} sequences the {n['hi']}-GPU run keeps "
            f"{n['weak_hi']:.0f}% MFU. Adding data-parallel replicas pays only while the batch "
            f"still gives every pipeline enough micro-batches ({n['points']} sweep points).")


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
