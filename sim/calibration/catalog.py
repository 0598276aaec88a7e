"""The catalog's fitted values: which measured tables fit which catalog entry, and the TOML
text of a fitted kernel / NCCL model (how ``hardware/data`` was written; rerun to refit).

- a100-sxm-80gb, h100-sxm kernels: the Vidur rows of ``kernels/kernels.csv`` for that GPU.
- nvlink3 (DGX A100): Vidur's in-node a100 collectives + vTrain's nccl-tests all-reduce tables.
- nvlink4 (DGX H100): apex_plus H100 tables. Vidur's h100_dgx rows are validation only (every
  row held out): they are kineto kernel durations, which include waiting for the other ranks
  to arrive; at the sizes both measure, Vidur's small all-reduces take 2-4x apex_plus's
  wall-clock per-call time on the same GPUs (4 GPUs, 2 KiB: 38 us vs 11 us), and their own
  repeats spread widely (raw std/mean median 24% at <= 64 KiB against 1% at >= 1 MiB).
  A100 has no wall-clock table below 1 MiB, so nvlink3 keeps Vidur's rows in its fit.
- nvlink4-hgx-h200 (HGX H200): apex_plus H200 tables. The same NVLink 4 fabric, fitted on its
  own: the H200 machine's per-call times are 1-2 us (15-25%) below the H100 machine's at every
  small size of the same benchmark (host and driver, not the link), which one joint model
  cannot follow (held-out median 40-44% on H200's <= 64 KiB rows when fitted together).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

import hardware
from sim.calibration import fit_nccl
from sim.calibration.fit_kernels import fit_accelerator
from sim.calibration.rows import load_rows

KERNEL_GPUS = ("a100-sxm-80gb", "h100-sxm")
# link -> (GPUs, system, nccl-tests directory, profile sources fitted; other sources: checked)
LINKS = {"nvlink3": (("a100-sxm-80gb",), "dgx-a100-80gb", "vtrain/allreduce/a100",
                     ("vidur",)),
         "nvlink4": (("h100-sxm",), "dgx-h100", None, ("apex_plus",)),
         "nvlink4-hgx-h200": (("h200-sxm",), "hgx-h200", None, ("apex_plus",))}
PROFILE_SOURCES = ("vidur", "apex_plus")  # kernels.csv sources (nccl-tests rows are named by file)
UPSTREAM = ("microsoft/vidur@7d47513", "microsoft/apex_plus@8769096", "VIA-Research/vTrain@f8dda84")


def data_version(data_dir: Path) -> str:
    """The measured data's provenance: upstream commits + the table's content hash."""
    digest = hashlib.sha256((data_dir / "kernels" / "kernels.csv").read_bytes()).hexdigest()
    return f"{', '.join(UPSTREAM)}; kernels.csv sha256 {digest[:16]}"


def kernel_fits(data_dir: Path, holdout: bool = True) -> dict:
    df = load_rows(data_dir / "kernels" / "kernels.csv")
    return {g: fit_accelerator(df, hardware.get_accelerator(g), "fp16", holdout)
            for g in KERNEL_GPUS}


def link_rows(data_dir: Path, link: str) -> pd.DataFrame:
    gpus, _, nccl_tests, _ = LINKS[link]
    df = load_rows(data_dir / "kernels" / "kernels.csv")
    rows = fit_nccl.profile_collectives(df, gpus)
    if nccl_tests:
        extra = fit_nccl.read_nccl_tests(data_dir / nccl_tests).assign(gpu=gpus[0])
        rows = pd.concat([rows, extra], ignore_index=True)
    return rows


def nccl_fits(data_dir: Path) -> dict:
    out = {}
    for link, (_, system, _, fitted) in LINKS.items():
        sysm = hardware.get_system(system)
        rows = link_rows(data_dir, link)
        used = rows["source"].isin(fitted) | ~rows["source"].isin(PROFILE_SOURCES)
        out[link] = fit_nccl.fit_link(rows[used], sysm.intra_node_bandwidth,
                                      fit_nccl.has_nvls(sysm.intra_link), check=rows[~used])
    return out


def _pretty(value):
    """'5.438e-06 s' -> '5.438 us', '11480000.0 B' -> '11.48 MB' (same value, readable)."""
    if isinstance(value, dict):
        return {k: _pretty(v) for k, v in value.items()}
    if isinstance(value, str) and value.endswith(" s"):
        return f"{float(value[:-2]) * 1e6:.4g} us"
    if isinstance(value, str) and value.endswith(" B"):
        return f"{float(value[:-2]) / 1e6:.4g} MB"
    return value


def render(obj) -> str:
    """[efficiency.*] sub-tables of an accelerator, or the [nccl] table of an NcclModel."""
    from hardware.writer import kernel_models_raw, nccl_raw, toml_lines

    if isinstance(obj, hardware.Accelerator):
        raw = {"efficiency": _pretty(kernel_models_raw(obj.efficiency))}
        return "\n".join(toml_lines(raw)[2:])  # drop the empty [efficiency] header
    return "\n".join(toml_lines({"nccl": _pretty(nccl_raw(obj))}))
