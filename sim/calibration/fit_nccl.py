"""Fit a link's NCCL model (``hardware.kernel_models.NcclModel``) to measured collectives.

Inputs: nccl-tests tables (the ``*_perf`` stdout table, or the CSV form of
``../shared/data/vtrain/allreduce/<gpu>/AR_GPU<n>_*.csv``: size(B), count, type, time(ns),
busbw, in-place time, busbw) and collective rows of a kernel profile (kernels.csv schema).
Only collectives inside one node are fitted: they are the node fabric's (NVLink / NVSwitch)
model. The formula is ``sim.costs.nccl``'s (vectorised here; tests check both agree): for
every row the fastest of the LL and Simple regimes of the ring (and NVLS for all-reduce where
the link has it), fitted by ``scipy.optimize.least_squares`` on log time ratios.

Held-out error is leave-one-size-decade-out: the rows with message sizes in [10^d, 10^(d+1))
bytes are predicted by a fit on all other sizes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hardware.kernel_models import NcclModel
from sim.errors import ConfigError

KIND_PATTERNS = (("all_reduce", r"all_?reduce|(^|[_/])AR_"), ("all_gather", r"all_?gather|AG_"),
                 ("reduce_scatter", r"reduce_?scatter|RS_"), ("all_to_all", r"all_?to_?all"),
                 ("send_recv", r"send_?recv"))
NAMES = ("ll_latency_us", "ll_step_us", "ll_bandwidth", "simple_latency_us", "simple_step_us",
         "simple_bandwidth", "group_half")
NVLS_NAMES = ("nvls_bandwidth", "nvls_latency_us")
P2P_NAMES = ("p2p_latency_us", "p2p_bandwidth")  # fitted where there are send/recv rows
START = (5.0, 0.5, 0.3, 10.0, 1.0, 0.8, 1.0)
LOWER = (0.0, 0.0, 0.01, 0.0, 0.0, 0.05, 0.0)
UPPER = (100.0, 50.0, 1.0, 200.0, 50.0, 1.0, 64.0)


# --- reading ------------------------------------------------------------------------------------
def kind_from_name(path: Path) -> str | None:
    for kind, pattern in KIND_PATTERNS:
        if re.search(pattern, path.name, re.IGNORECASE):
            return kind
    return None


def gpus_from_name(path: Path) -> int | None:
    m = re.search(r"GPU(\d+)", path.name, re.IGNORECASE)
    return int(m.group(1)) if m else None


def read_nccl_tests(path, gpus: int | None = None) -> pd.DataFrame:
    """Rows (kind, bytes, n_gpus, n_nodes, measured_s, source) of one nccl-tests file or of
    every file in a directory. The out-of-place time is used."""
    p = Path(path)
    files = sorted(p.glob("*")) if p.is_dir() else [p]
    if not files or not all(f.is_file() for f in files):
        raise ConfigError(f"--from-nccl-tests {path}: no such file; give an nccl-tests output "
                          "file (or a directory of them), e.g. ../shared/data/vtrain/allreduce/a100")
    frames = [_read_one(f, gpus) for f in files]
    return pd.concat(frames, ignore_index=True)


def _read_one(f: Path, gpus: int | None) -> pd.DataFrame:
    kind = kind_from_name(f) or "all_reduce"
    n = gpus or gpus_from_name(f)
    text = f.read_text(errors="replace")
    if n is None:
        ranks = re.findall(r"#\s+Rank\s+\d+", text)
        n = len(ranks) or None
    if n is None:
        raise ConfigError(f"--from-nccl-tests {f}: cannot tell the number of GPUs from the file; "
                          "pass --gpus N")
    sizes, times = _parse_table(text, f)
    return pd.DataFrame({"op_kind": kind, "bytes": sizes, "n_gpus": n, "n_nodes": 1,
                         "measured_s": times, "source": f.name})


def _parse_table(text: str, f: Path) -> tuple[list[float], list[float]]:
    sizes, times = [], []
    csv_like = text.lstrip().startswith("size(B)")
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", "size")):
            continue
        cells = [c for c in re.split(r"[,\s]+", line.strip()) if c]
        try:
            if csv_like:  # vTrain LUT: size(B), count, type, time(ns), busbw, time(ns), busbw
                size, t = float(cells[0]), float(cells[3]) * 1e-9
            else:  # nccl-tests: size count type redop root time(us) algbw busbw ...
                size, t = float(cells[0]), float(cells[5]) * 1e-6
        except (ValueError, IndexError):
            continue
        if size > 0 and t > 0:
            sizes.append(size)
            times.append(t)
    if not sizes:
        raise ConfigError(f"--from-nccl-tests {f}: no size/time rows found; expected the "
                          "nccl-tests table (size count type redop root time algbw busbw)")
    return sizes, times


def profile_collectives(df: pd.DataFrame, gpus: tuple[str, ...]) -> pd.DataFrame:
    """In-node collective rows of a kernel profile for the given GPUs."""
    kinds = [k for k, _ in KIND_PATTERNS]
    rows = df[df["op_kind"].isin(kinds) & df["gpu"].isin(gpus) & (df["n_nodes"] == 1)]
    return rows.assign(source=rows["source"]).reset_index(drop=True)


# --- the vectorised formula (sim.costs.nccl) -------------------------------------------------------
def _terms(kind: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ar = kind == "all_reduce"
    sr = kind == "send_recv"
    steps = np.where(ar, 2 * (n - 1), np.where(sr, 1, n - 1)).astype(float)
    factor = np.where(ar, 2 * (n - 1) / n, np.where(sr, 1.0, (n - 1) / n))
    return steps, factor


def predict(x, rows: pd.DataFrame, bw: float, nvls: bool, p2p: bool = False) -> np.ndarray:
    ll_lat, ll_step, ll_bw, s_lat, s_step, s_bw, half = x[:7]
    kind, n = rows["op_kind"].to_numpy(), rows["n_gpus"].to_numpy(float)
    size = rows["bytes"].to_numpy(float)
    steps, factor = _terms(kind, n)
    share = n / (n + half) if half > 0 else np.ones_like(n)
    ll = (ll_lat + steps * ll_step) * 1e-6 + factor * size / (bw * ll_bw * share)
    simple = (s_lat + steps * s_step) * 1e-6 + factor * size / (bw * s_bw * share)
    t = np.minimum(ll, simple)
    rest = list(x[7:])
    if p2p:
        p_lat, p_bw = rest[:2]
        rest = rest[2:]
        t_p2p = np.minimum((ll_lat + ll_step) * 1e-6 + size / (bw * ll_bw),
                           p_lat * 1e-6 + size / (bw * p_bw))
        t = np.where(kind == "send_recv", t_p2p, t)
    if nvls:
        nv_bw, nv_lat = rest[:2]
        t_nv = nv_lat * 1e-6 + size / (bw * nv_bw)
        t = np.where(kind == "all_reduce", np.minimum(t, t_nv), t)
    return t


def has_p2p(rows: pd.DataFrame) -> bool:
    return bool((rows["op_kind"] == "send_recv").any())


def model_from(x, nvls: bool, p2p: bool = False) -> NcclModel:
    r = [float(v) for v in x]
    p = r[7:9] if p2p else [0.0, 0.0]
    nv = r[9:11] if p2p else r[7:9]
    return NcclModel(
        ll_latency_s=round(r[0], 3) * 1e-6, ll_step_s=round(r[1], 4) * 1e-6,
        ll_bandwidth=round(r[2], 4), simple_latency_s=round(r[3], 3) * 1e-6,
        simple_step_s=round(r[4], 4) * 1e-6, simple_bandwidth=round(r[5], 4),
        group_half=round(r[6], 4), nvls_bandwidth=round(nv[0], 4) if nvls else 0.0,
        nvls_latency_s=round(nv[1], 3) * 1e-6 if nvls else 0.0,
        p2p_latency_s=round(p[0], 3) * 1e-6, p2p_bandwidth=round(p[1], 4))


def fit(rows: pd.DataFrame, bw: float, nvls: bool, start=None, p2p: bool = False) -> np.ndarray:
    from scipy.optimize import least_squares

    y = np.log(rows["measured_s"].to_numpy(float))
    w = np.sqrt(_weights(rows))
    x0 = list(START) + ([8.0, 0.7] if p2p else []) + ([0.9, 20.0] if nvls else [])
    lo = list(LOWER) + ([0.0, 0.05] if p2p else []) + ([0.05, 0.0] if nvls else [])
    hi = list(UPPER) + ([200.0, 1.0] if p2p else []) + ([1.0, 200.0] if nvls else [])
    res = least_squares(lambda x: w * (np.log(predict(x, rows, bw, nvls, p2p)) - y),
                        np.array(x0 if start is None else start, float), bounds=(lo, hi),
                        x_scale="jac")
    return res.x


def _weights(rows: pd.DataFrame) -> np.ndarray:
    """Every (source, kind, group size) table weighs the same in the fit, however many sizes it
    lists (a 1,024-size nccl-tests sweep would otherwise drown a 27-size profile)."""
    key = rows["source"].astype(str) + "|" + rows["op_kind"] + "|" + rows["n_gpus"].astype(str)
    counts = key.map(key.value_counts()).to_numpy(float)
    return len(rows) / counts / key.nunique()


def decade(nbytes) -> np.ndarray:
    return np.floor(np.log10(np.asarray(nbytes, float))).astype(int)


def leave_one_decade_out(rows: pd.DataFrame, bw: float, nvls: bool, start,
                         p2p: bool = False) -> np.ndarray:
    d = decade(rows["bytes"])
    pred = np.full(len(rows), np.nan)
    for k in sorted(set(d)):
        out = d == k
        if out.all():
            continue
        x = fit(rows[~out], bw, nvls, start, p2p)
        pred[out] = predict(x, rows[out], bw, nvls, p2p)
    return pred


@dataclass
class NcclFit:
    model: NcclModel
    params: dict
    heldout: dict
    rows: pd.DataFrame

    def to_dict(self) -> dict:
        return {"parameters": self.params, "heldout": self.heldout,
                "heldout_method": "leave-one-size-decade-out"}


def fit_link(rows: pd.DataFrame, bw: float, nvls: bool,
             check: pd.DataFrame | None = None) -> NcclFit:
    """Fit on ``rows`` (in-node collectives over a fabric of per-GPU bandwidth ``bw``);
    ``check`` rows (another measurement of the same fabric) are predicted by the fit on all of
    ``rows`` and reported with them (``fitted`` False), never fitted."""
    from sim.calibration.fit_kernels import stats

    if len(rows) < 8:
        raise ConfigError(f"only {len(rows)} in-node collective rows: need at least 8 sizes to "
                          "fit the NCCL model")
    p2p = has_p2p(rows)
    x = fit(rows, bw, nvls, p2p=p2p)
    pred = leave_one_decade_out(rows, bw, nvls, x, p2p)
    y = rows["measured_s"].to_numpy(float)
    err = pred / y - 1
    ok = ~np.isnan(err)
    small = ok & (rows["bytes"].to_numpy(float) <= 64 * 1024)
    names = NAMES + (P2P_NAMES if p2p else ()) + (NVLS_NAMES if nvls else ())
    heldout = {"all": stats(err[ok]), "le_64KiB": stats(err[small]) if small.any() else None}
    out = rows.assign(predicted_s=pred, fitted=True)
    if check is not None and len(check):
        out = pd.concat([out, check.assign(predicted_s=predict(x, check, bw, nvls, p2p),
                                           fitted=False)], ignore_index=True)
        e = (out.loc[~out["fitted"], "predicted_s"] / out.loc[~out["fitted"], "measured_s"] - 1)
        heldout["not_fitted"] = stats(e.to_numpy(float))
    return NcclFit(model_from(x, nvls, p2p), dict(zip(names, map(float, x), strict=True)),
                   heldout, out)


def has_nvls(link) -> bool:
    """NVLink SHARP needs NVSwitch gen 3 (NVLink 4, Hopper) or later."""
    return bool(re.search(r"nvlink[4-9]", link.name))
