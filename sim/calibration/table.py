"""The kernel-validation table: clustersim's kernel and collective times against the published
measurements in ``../shared/data``, before and after the fitted kernel/NCCL models.

Per (source, GPU, op kind): row count, median and p90 |error|, median signed error
(predicted / measured - 1; negative = clustersim too fast), for

- *before*: the pre-#12 default prediction (``validation/kernels/before/<gpu>.toml``: the
  saturating matmul efficiency, one HBM fraction, a flat 4 us per op; alpha-beta collectives
  at the link's line rate);
- *after*: rows the fit did not see: kernels predicted by a fit on the other models
  (leave-one-model-out); attention, fitted per kernel implementation (``backend``) and each
  profiled on one model only, by a fit on the other four fifths of its backend's sweeps
  (leave-one-fifth-out); collectives by a fit on the other message-size decades
  (leave-one-size-decade-out).

Collectives are in-node only (the inter-node rows of the data are excluded there: their fabric
is undocumented); messages <= 64 KiB get their own columns.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

import hardware
from sim.calibration import catalog
from sim.calibration.fit_kernels import stats
from sim.calibration.rows import row_op
from sim.costs.timing import op_time

BEFORE = Path(__file__).resolve().parents[2] / "validation" / "kernels" / "before"
SMALL = 64 * 1024
LARGE = 1 << 20


def _before_kernels(rows: pd.DataFrame) -> np.ndarray:
    accs = {g: hardware.get_accelerator(str(BEFORE / f"{g}.toml")) for g in rows["gpu"].unique()}
    return np.array([op_time(row_op(row, "fp16"), accs[row["gpu"]], "fp16")
                     for _, row in rows.iterrows()])


def _before_collectives(rows: pd.DataFrame, system_name: str) -> np.ndarray:
    from hardware import Cluster
    from sim.costs.comm import collective_time

    sysm = hardware.get_system(system_name)
    bare = dataclasses.replace(sysm, intra_link=dataclasses.replace(sysm.intra_link, nccl=None),
                               nic_link=dataclasses.replace(sysm.nic_link, nccl=None))
    cluster = Cluster.for_gpus(bare, sysm.gpus_per_node)
    return np.array([collective_time(r["op_kind"], r["bytes"], list(range(int(r["n_gpus"]))),
                                     cluster, "ring") for _, r in rows.iterrows()])


def _summary(frame: pd.DataFrame, keys: list[str]) -> list[dict]:
    out = []
    for key, g in frame.groupby(keys, sort=True):
        after = (g["predicted_s"] / g["measured_s"] - 1).dropna()
        before = g["before_s"] / g["measured_s"] - 1
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row.update({f"before_{k}": v for k, v in stats(before).items() if k != "count"})
        row.update({"count": int(len(after))})
        row.update({f"after_{k}": v for k, v in stats(after).items() if k != "count"})
        small = g["bytes"].fillna(np.inf) <= SMALL if "bytes" in g else None
        if small is not None and small.any():
            es = (g.loc[small, "predicted_s"] / g.loc[small, "measured_s"] - 1).dropna()
            row["count_le_64KiB"] = int(len(es))
            row["after_median_abs_error_le_64KiB"] = float(np.median(np.abs(es)))
        large = g["bytes"].fillna(0) >= LARGE if "bytes" in g else None
        if large is not None and large.any():
            el = (g.loc[large, "predicted_s"] / g.loc[large, "measured_s"] - 1).dropna()
            row["count_ge_1MiB"] = int(len(el))
            row["after_median_abs_error_ge_1MiB"] = float(np.median(np.abs(el)))
        out.append(row)
    return out


def kernel_table(data_dir: Path) -> tuple[list[dict], dict]:
    """(per source/GPU/kind rows, per GPU/group held-out summary) for the kernel rows."""
    fits = catalog.kernel_fits(data_dir)
    frames = []
    for fit in fits.values():
        r = fit.rows.copy()
        r["before_s"] = _before_kernels(r)
        frames.append(r)
    rows = pd.concat(frames, ignore_index=True)
    rows["backend"] = rows["backend"].fillna("") if "backend" in rows else ""
    groups = {f"{g}:{grp}": s for g, f in fits.items() for grp, s in f.heldout.items()}
    return _summary(rows, ["source", "gpu", "op_kind", "backend"]), groups


def collective_table(data_dir: Path) -> tuple[list[dict], dict]:
    fits = catalog.nccl_fits(data_dir)
    frames = []
    for link, fit in fits.items():
        system = catalog.LINKS[link][1]
        r = fit.rows.copy()
        for gpu, g in r.groupby("gpu"):
            sysname = {"h200-sxm": "hgx-h200"}.get(gpu, system)
            r.loc[g.index, "before_s"] = _before_collectives(g, sysname)
        r["source"] = r["source"].where(~r["source"].str.startswith("AR_GPU"), "vtrain")
        r["heldout"] = r["fitted"].map({True: "size decade", False: "whole source"})
        frames.append(r)
    rows = pd.concat(frames, ignore_index=True)
    summary = {link: f.heldout for link, f in fits.items()}
    return _summary(rows, ["source", "gpu", "op_kind", "heldout"]), summary


def build(data_dir: Path) -> dict:
    kernels, kernel_groups = kernel_table(data_dir)
    colls, coll_groups = collective_table(data_dir)
    return {"data": catalog.data_version(data_dir), "kernels": kernels,
            "kernel_heldout": kernel_groups, "collectives": colls,
            "collective_heldout": coll_groups,
            "method": {"kernels": "leave-one-model-out", "attention":
                       "per backend, leave-one-fifth-out of each phase's sweep", "collectives":
                       "leave-one-size-decade-out (in-node rows)"}}


def _pct(x) -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:+.1%}" \
        if x < 0 else f"{x:.1%}"


def markdown(doc: dict) -> str:
    head = ("| source | GPU | op kind | n | before median abs | before p90 | before median "
            "signed | after median abs | after p90 | after median signed | <=64 KiB n | "
            "<=64 KiB after median abs | >=1 MiB n | >=1 MiB after median abs |\n|"
            + "---|" * 14)
    lines = ["# Kernel and collective validation (rows the fit did not see)", "",
             f"Data: `../shared/data` ({doc['data']}). Produced by "
             "`clustersim validate --kernels --data ../shared/data`.", "",
             "Error = predicted / measured - 1 (negative: clustersim too fast). *Before*: the "
             "pre-#12 defaults (validation/kernels/before). *After*: kernels leave-one-model-out; "
             "attention per backend (its own fitted model, selected by the stack's "
             "attention_kernel), leave-one-fifth-out of each phase's sweep (each backend was "
             "profiled on one model); collectives leave-one-size-decade-out.", ""]
    for title, key in (("Kernels", "kernels"), ("Collectives (in one node)", "collectives")):
        lines += [f"## {title}", "", head]
        for r in doc[key]:
            tag = r.get("backend") or ("" if r.get("heldout", "size decade") == "size decade"
                                       else "not fitted: other source")
            kind = r["op_kind"] + (f" ({tag})" if tag else "")
            cells = [r["source"], r["gpu"], kind, str(r["count"]),
                     _pct(r["before_median_abs_error"]), _pct(r["before_p90_abs_error"]),
                     _pct(r["before_median_signed_error"]), _pct(r["after_median_abs_error"]),
                     _pct(r["after_p90_abs_error"]), _pct(r["after_median_signed_error"]),
                     str(r.get("count_le_64KiB", "")),
                     _pct(r.get("after_median_abs_error_le_64KiB")),
                     str(r.get("count_ge_1MiB", "")),
                     _pct(r.get("after_median_abs_error_ge_1MiB"))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Held-out summary per fit", ""]
    for name, s in {**doc["kernel_heldout"], **doc["collective_heldout"]}.items():
        lines.append(f"- {name}: {_flat(s)}")
    return "\n".join(lines) + "\n"


def _flat(s: dict) -> str:
    if "median_abs_error" in s:
        return (f"n={s['count']}, median |err| {s['median_abs_error']:.1%}, p90 "
                f"{s['p90_abs_error']:.1%}, median signed {s['median_signed_error']:+.1%}")
    return "; ".join(f"{k}: {_flat(v)}" for k, v in s.items() if v)
