"""``run_validation``: calibrate (or load a profile), then every check, as one JSON-able dict.

Order: calibration (writes the profile TOML and reads it back through ``hardware``), exact
checks (parameters, FLOPs, KV cache, activations), the gloo collective lists, then the timing
cases (training grid, DP over gloo, prefill/decode, continuous batching, speculative
decoding), then the published-runs table of ``sim.costs.published``. Each stage reports to an
optional ``progress(stage)`` callback. The result records the machine, torch version, thread
count, clock, load average and git commit, so a committed table says where it came from.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from dataclasses import asdict
from pathlib import Path

from sim.validation.cases import Case, exact_mismatches, summary


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True, cwd=Path(__file__).parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info(device: str) -> dict:
    import torch

    info = {"platform": platform.platform(), "processor": platform.processor() or
            platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "loadavg_start": list(os.getloadavg())}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _profile(device, threads, quick, system_path, out_dir, stem):
    from hardware import get_system
    from sim.validation.calibrate import calibrate
    from sim.validation.profile import write_profile

    if system_path:  # the calibration's scale when it wrote one, else the reference now
        from sim.validation.profile import load_scale
        from sim.validation.protocol import reference_estimate, set_scale

        set_scale(None)
        set_scale(load_scale(system_path) or reference_estimate(device))
        return get_system(system_path), str(system_path), None
    cal = calibrate(device, threads, quick)
    path = Path(out_dir) / f"{stem}-profile.toml"
    return write_profile(cal, path, name=f"calibrated-{device}"), str(path), asdict(cal)


def _stages(system, path, device, quick, repeats, threads):
    from sim.validation import comm, exact, inference, serving, speculative, training
    from sim.validation.profile import load_busy

    busy = load_busy(path, system)
    return [
        ("exact", lambda: exact.exact_cases(quick)),
        ("collectives", comm.comm_cases),
        ("training", lambda: training.training_cases(system, device, quick, repeats)),
        ("data-parallel", lambda: training.dp_cases(busy, quick, repeats, threads)),
        ("inference", lambda: inference.inference_cases(system, device, quick)),
        ("serving", lambda: serving.serving_cases(system, path, device, quick)),
        ("speculative", lambda: speculative.speculative_cases(system, path, device, quick)),
    ]


def published_rows() -> list[dict]:
    from sim.costs.published import published_comparison

    return published_comparison().to_dict("records")


STAGES = ("exact", "collectives", "training", "data-parallel", "inference", "serving",
          "speculative")


def run_validation(device: str = "cpu", quick: bool = False, system_path: str | None = None,
                   threads: int = 1, out_dir: str = "validation", repeats: int | None = None,
                   progress=None, stages: tuple[str, ...] = STAGES) -> dict:
    import torch

    from sim.validation.clock import clock_kind, default_clock, set_clock

    torch.set_num_threads(threads)
    set_clock(default_clock(device, threads))
    stem = f"{device}-{_dt.date.today().isoformat()}" + ("-quick" if quick else "")
    info = machine_info(device)
    system, path, cal = _profile(device, threads, quick, system_path, out_dir, stem)
    repeats = repeats or (3 if quick else 5)
    cases: list[Case] = []
    info["loadavg_stages"] = {}
    for name, stage in _stages(system, path, device, quick, repeats, threads):
        if name not in stages:
            continue
        if progress:
            progress(name)
        info["loadavg_stages"][name] = os.getloadavg()[0]
        cases += stage()
    info["loadavg_end"] = list(os.getloadavg())
    return {"device": device, "quick": quick, "threads": threads, "clock": clock_kind(),
            "commit": git_commit(), "machine": info, "profile": path, "calibration": cal,
            "stem": stem, "stages": list(stages), "cases": [c.to_dict() for c in cases],
            "exact_mismatches": exact_mismatches(cases), **summary(cases),
            "published": published_rows()}
