"""``clustersim calibrate --from-profile`` / ``--from-nccl-tests``: fit measured tables and write
the result as a catalog-format TOML (an accelerator, or a self-contained system) that every
command takes in place of a catalog name."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hardware import get_accelerator, get_system, to_toml
from hardware.types import FrozenMap
from sim.calibration import fit_nccl
from sim.calibration.fit_kernels import fit_accelerator
from sim.calibration.rows import load_rows
from sim.fileio import atomic_write_text


def _resourced(obj, prefix: str, text: str):
    """``obj`` with every source under ``prefix`` replaced by one fit description."""
    kept = {k: v for k, v in obj.sources.items() if k.split(".")[0] != prefix}
    return dataclasses.replace(obj, sources=FrozenMap(sorted({**kept, prefix: text}.items())))


def from_profile(path: str, accelerator: str, out: str | None, dtype: str = "fp16") -> dict:
    base = get_accelerator(accelerator)
    fit = fit_accelerator(load_rows(path), base, dtype)
    held = "; ".join(f"{g} {s['median_abs_error']:.1%} ({s['count']} rows)"
                     for g, s in fit.heldout.items())
    acc = _resourced(fit.accelerator, "efficiency",
                     f"fit by `clustersim calibrate --from-profile {Path(path).name}` "
                     f"(kernel models: {', '.join(fit.params)}; leave-one-model-out median "
                     f"|error|: {held}); terms not fitted keep {base.name}'s values and sources")
    out = out or f"calibrated-{base.name}.toml"
    atomic_write_text(Path(out), to_toml(acc))
    return {"profile": out, "accelerator": acc.name, "source_rows": int(len(fit.rows)),
            **fit.to_dict()}


def from_nccl_tests(path: str, system: str, gpus: int | None, out: str | None) -> dict:
    base = get_system(system)
    rows = fit_nccl.read_nccl_tests(path, gpus)
    fit = fit_nccl.fit_link(rows, base.intra_node_bandwidth, fit_nccl.has_nvls(base.intra_link))
    all_ = fit.heldout["all"]
    link = _resourced(dataclasses.replace(base.intra_link, nccl=fit.model), "nccl",
                      f"fit by `clustersim calibrate --from-nccl-tests {Path(path).name}` "
                      f"({len(rows)} rows; leave-one-size-decade-out median |error| "
                      f"{all_['median_abs_error']:.1%})")
    sysm = dataclasses.replace(base, intra_link=link)
    out = out or f"calibrated-{base.name}.toml"
    atomic_write_text(Path(out), to_toml(sysm))
    return {"profile": out, "system": sysm.name, "link": link.name,
            "gpus": sorted(int(n) for n in rows["n_gpus"].unique()),
            "kinds": sorted(rows["op_kind"].unique()), "source_rows": int(len(rows)),
            **fit.to_dict()}
