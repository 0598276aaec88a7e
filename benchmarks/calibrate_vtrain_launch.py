"""Calibrate ``megatron-deepspeed-2023``'s per-op launch overhead on 80 of vTrain's runs.

The vTrain single-node runs are CPU-bound at small micro-batches: the time per layer per
microbatch sits at ~3.5 ms whatever the TP degree (``docs/design-stacks.md``). The stack's
``launch_overhead_s`` (CPU seconds per launched op) sets that floor. It is fitted here on the
80 pure data-parallel runs on 2 GPUs only (``sim.published_sets.is_calibration_row``), by a
log-spaced scan minimising the median |log(predicted/measured)|; the other 1,360 runs are the
validation (``clustersim validate --published`` reports both). Prints the value to put in
``sim/data/stacks/megatron-deepspeed-2023.toml``.

    .venv/bin/python benchmarks/calibrate_vtrain_launch.py
"""

from __future__ import annotations

import numpy as np

from sim.published_sets import is_calibration_row, vtrain_raw, vtrain_table
from sim.stack import get_stack, with_overrides


def score(raw, launch_s: float) -> float:
    stack = with_overrides(get_stack("megatron-deepspeed-2023"), {"launch_overhead_s": launch_s})
    df = vtrain_table(raw=raw, stack=stack)
    return float(np.median(np.abs(np.log(df.predicted / df.measured))))


def main() -> None:
    raw = vtrain_raw()
    cal = raw[[is_calibration_row(r) for r in raw.itertuples(index=False)]]
    grid = np.geomspace(5e-6, 500e-6, 41)
    scores = [(score(cal, x), x) for x in grid]
    best, x = min(scores)
    print(f"calibration rows: {len(cal)}; best launch_overhead_s = {x:.3g} s "
          f"(median |log error| {best:.3f})")


if __name__ == "__main__":
    main()
