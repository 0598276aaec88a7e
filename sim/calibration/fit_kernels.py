"""Fit an accelerator's kernel models (``hardware.kernel_models``) to measured kernel times.

Three independent fits, each a ``scipy.optimize.least_squares`` on ``log(predicted /
measured)`` over the rows of one GPU (the formulas are ``sim.costs.kernels``', vectorised here;
``tests/test_calibration_kernels.py`` checks the two agree row by row):

- GEMM: sustained efficiency ``matmul_max``, relative throughput of the 128x128, 128x64 and
  64x64 tiles (256x128 is the reference), operand-stream fraction of HBM, per-tile K overhead,
  p-norm sharpness, split-K floor (``min_wave``).
- memory-bound: HBM fraction and floor per class (norm, act, rope, residual), the L2 term
  per-kernel floor, sharpness.
- attention, one fit per kernel implementation (``rows.attention_backend``: FlashInfer and
  FlashAttention-2 over a paged cache run the same shapes ~2x apart, so one model for both fits
  neither): ``attention_max`` (prefill), decode KV-stream fraction, per-sequence prefill and
  decode costs, per-call floor, sharpness.

Held-out error is leave-one-model-out for GEMM and memory-bound kernels: each profiled model's
rows are predicted by a fit on the other models' rows. Each attention backend was profiled on
one model only, so its held-out error is leave-one-fifth-out: each contiguous fifth of every
(backend, phase) sweep is predicted by a fit on the other four fifths. Catalog values are the
fit on all rows; the default attention model is the first fitted of ``DEFAULT_ATTENTION``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hardware.kernel_models import (
    MEMORY_CLASSES,
    AttentionKernelModel,
    GemmModel,
    MemoryKernelModel,
)
from hardware.types import Accelerator, FrozenMap
from sim.calibration.rows import attention_backend, model_key, row_op
from sim.costs.kernels import attention_padding, memory_class
from sim.errors import ConfigError

GROUPS = {"gemm": ("gemm",), "memory": ("norm", "act", "rope", "residual_add"),
          "attention": ("attn_prefill", "attn_decode")}
BASE_TILES = ((256, 128), (128, 256), (128, 128), (128, 64), (64, 128), (64, 64))
MIN_ROWS = 8
FOLDS = 5
# the fitted backend that becomes [efficiency.attention] (prices kernels without a fit of their
# own): an FA2-class kernel over contiguous or paged memory first (the stacks' default is fa2)
DEFAULT_ATTENTION = ("fa2", "flashinfer", "fa3", "default", "fa1", "fa2-paged")


def _pnorm(p: float, *terms: np.ndarray) -> np.ndarray:
    stack = np.vstack(terms)
    top = np.maximum(stack.max(axis=0), 1e-30)
    return top * ((stack / top) ** p).sum(axis=0) ** (1.0 / p)


# --- features (what does not depend on the fitted parameters) ------------------------------------
def features(df: pd.DataFrame, acc: Accelerator, dtype: str) -> pd.DataFrame:
    """Per-row inputs of the vectorised formulas."""
    att = acc.efficiency.attention or AttentionKernelModel()
    out = []
    for _, row in df.iterrows():
        op = row_op(row, dtype)
        f = {"flops": op.flops, "bytes": op.bytes, "cls": memory_class(op)}
        if op.mnk is not None:
            f["m"], f["n"], f["k"] = op.mnk
        if op.kind == "attention":
            f.update(_attention_features(op, att))
        out.append(f)
    return pd.DataFrame(out, index=df.index)


def _attention_features(op, a: AttentionKernelModel) -> dict:
    pad_flops, pad_bytes, n_pre, n_dec = attention_padding(op, a)
    return {"flops_pad": op.flops * pad_flops, "bytes_pad": op.bytes * pad_bytes,
            "n_prefill": n_pre, "n_decode": n_dec}


# --- vectorised formulas (sim.costs.kernels) ------------------------------------------------------
def gemm_predict(x, f: pd.DataFrame, acc: Accelerator, dtype: str) -> np.ndarray:
    eff, r128, rmid, r64, mem, k0, p, min_wave, fixed_us = x
    rel = (1.0, 1.0, r128, rmid, rmid, r64)
    m, n, k = (f[c].to_numpy(float) for c in ("m", "n", "k"))
    sms = acc.compute_units or 1
    per_sm = acc.peak(dtype) * eff / sms
    kp = np.ceil(k / 32) * 32 + k0
    best = np.full(len(m), np.inf)
    for (tm, tn), r in zip(BASE_TILES, rel, strict=True):
        tiles = np.ceil(m / tm) * np.ceil(n / tn)
        waves = np.where(tiles >= sms, np.ceil(tiles / sms), np.maximum(tiles / sms, min_wave))
        best = np.minimum(best, waves * 2.0 * tm * tn * kp / (per_sm * r))
    t_mem = f["bytes"].to_numpy(float) / (acc.memory_bandwidth * mem)
    return _pnorm(p, best, t_mem) + fixed_us * 1e-6


def memory_predict(x, f: pd.DataFrame, acc: Accelerator, dtype: str) -> np.ndarray:
    fracs = dict(zip(MEMORY_CLASSES, x[:4], strict=True))
    floors = dict(zip(MEMORY_CLASSES, x[4:8], strict=True))
    cache_mb, gain, p = x[8:]
    cls = f["cls"]
    frac = cls.map(lambda c: fracs.get(c, acc.efficiency.memory_bandwidth)).to_numpy(float)
    floor = cls.map(lambda c: floors.get(c, 0.0)).to_numpy(float) * 1e-6
    b = f["bytes"].to_numpy(float)
    t_mem = b / (acc.memory_bandwidth * frac) / (1 + gain * cache_mb * 1e6 / (cache_mb * 1e6 + b))
    vector = acc.peak_flops.get("fp32") or acc.peak(dtype)
    t_c = f["flops"].to_numpy(float) / vector
    return _pnorm(p, floor, t_c, t_mem)


def attention_predict(x, f: pd.DataFrame, acc: Accelerator, dtype: str) -> np.ndarray:
    eff, dec_bw, pre_us, dec_us, floor_us, p = x
    t_c = f["flops_pad"].to_numpy(float) / (acc.peak(dtype) * eff)
    t_m = f["bytes_pad"].to_numpy(float) / (acc.memory_bandwidth * dec_bw)
    t = _pnorm(p, np.full(len(f), floor_us * 1e-6), t_c, t_m)
    return t + (f["n_prefill"].to_numpy(float) * pre_us + f["n_decode"].to_numpy(float)
                * dec_us) * 1e-6


@dataclass(frozen=True)
class Spec:
    names: tuple[str, ...]
    start: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    predict: object


SPECS = {
    "gemm": Spec(("matmul_max", "tile_128x128", "tile_128x64", "tile_64x64",
                  "matmul_memory_bandwidth", "k_overhead", "sharpness", "min_wave", "fixed_us"),
                 (0.75, 0.9, 0.8, 0.6, 0.8, 32, 4.0, 0.3, 2.0),
                 (0.2, 0.3, 0.2, 0.2, 0.2, 0, 1.0, 0, 0), (1, 1, 1, 1, 1, 1024, 20, 1, 50),
                 gemm_predict),
    "memory": Spec(MEMORY_CLASSES + tuple(f"{c}_floor_us" for c in MEMORY_CLASSES)
                   + ("cache_mb", "cache_speedup", "sharpness"),
                   (0.5,) * 4 + (3.0,) * 4 + (20.0, 1.0, 2.0), (0.02,) * 4 + (0,) * 4
                   + (0.1, 0, 1.0), (1,) * 4 + (50,) * 4 + (1000, 20, 20), memory_predict),
    "attention": Spec(("attention_max", "decode_memory_bandwidth", "prefill_seq_us",
                       "decode_seq_us", "floor_us", "sharpness"),
                      (0.4, 0.8, 5.0, 1.0, 5.0, 2.0), (0.02, 0.05, 0, 0, 0, 1.0),
                      (1, 1, 1000, 100, 100, 20), attention_predict),
}


def fit_group(group: str, f: pd.DataFrame, y: np.ndarray, acc: Accelerator,
              dtype: str, start=None) -> np.ndarray:
    """Least-squares parameters of one group's formula on rows ``f`` with times ``y``."""
    from scipy.optimize import least_squares

    spec = SPECS[group]
    ly = np.log(y)

    def residuals(x):
        return np.log(spec.predict(x, f, acc, dtype)) - ly

    x0 = np.array(spec.start if start is None else start, float)
    fit = least_squares(residuals, x0, bounds=(spec.lower, spec.upper),
                        x_scale="jac", method="trf")
    return fit.x


def _stats(err: np.ndarray) -> dict:
    a = np.abs(err)
    return {"count": int(len(err)), "median_abs_error": float(np.median(a)),
            "p90_abs_error": float(np.quantile(a, 0.9)),
            "median_signed_error": float(np.median(err))}


def stats(err) -> dict:
    """count, median and p90 |error|, median signed error of relative errors."""
    return _stats(np.asarray(err, float))


@dataclass
class KernelFit:
    accelerator: Accelerator
    params: dict  # group -> {name: value}
    heldout: dict  # group -> stats of leave-one-model-out errors
    rows: pd.DataFrame  # the rows with group, model, measured_s, predicted_s (held out)

    def to_dict(self) -> dict:
        return {"accelerator": self.accelerator.name, "parameters": self.params,
                "heldout": self.heldout, "heldout_method": "leave-one-model-out",
                "attention_heldout_method": "per backend, leave-one-fifth-out of each phase's "
                                            "sweep"}


def fit_accelerator(df: pd.DataFrame, acc: Accelerator, dtype: str = "fp16",
                    holdout: bool = True) -> KernelFit:
    """Fit every group with enough rows of ``acc.name``; others keep ``acc``'s model.
    Attention is fitted per backend: params/heldout key ``attention:<backend>``."""
    mine = df[df["gpu"] == acc.name]
    if mine.empty:
        raise ConfigError(f"--accelerator {acc.name}: the profile has no rows for this GPU; "
                          f"it has {', '.join(sorted(df['gpu'].dropna().unique()))}")
    params, heldout, parts = {}, {}, []
    for name, group, rows in _fit_sets(mine):
        f = features(rows, acc, dtype)
        y = rows["measured_s"].to_numpy(float)
        x = fit_group(group, f, y, acc, dtype)
        params[name] = dict(zip(SPECS[group].names, map(float, x), strict=True))
        if holdout:
            pred = _heldout(group, rows, f, y, acc, dtype, x)
            heldout[name] = _stats(pred / y - 1)
            parts.append(rows.assign(group=group, predicted_s=pred))
    return KernelFit(apply_params(acc, params), params, heldout,
                     pd.concat(parts) if parts else pd.DataFrame())


def _fit_sets(mine: pd.DataFrame):
    """(name, group, rows) of every fit: gemm, memory, attention:<backend>."""
    for group, kinds in GROUPS.items():
        rows = mine[mine["op_kind"].isin(kinds)]
        if group != "attention":
            if len(rows) >= MIN_ROWS:
                yield group, group, rows
            continue
        backend = rows.apply(attention_backend, axis=1) if len(rows) else rows["op_kind"]
        for b in sorted(set(backend)):
            sub = rows[backend == b].assign(backend=b)
            if len(sub) >= MIN_ROWS:
                yield f"attention:{b}", group, sub


def _heldout(group, rows, f, y, acc, dtype, start) -> np.ndarray:
    folds = _fifths(rows) if group == "attention" else rows.apply(model_key, axis=1).to_numpy()
    pred = np.full(len(y), np.nan)
    for key in sorted(set(folds)):
        out = folds == key
        if out.all():  # one model only: nothing to hold out against
            continue
        x = fit_group(group, f[~out], y[~out], acc, dtype, start)
        pred[out] = SPECS[group].predict(x, f[out], acc, dtype)
    return pred


def _fifths(rows: pd.DataFrame) -> np.ndarray:
    """Fold of each row: its contiguous fifth of its phase's sweep (in the profile's order)."""
    phase = rows["op_kind"]
    rank = phase.groupby(phase).cumcount().to_numpy()
    size = phase.map(phase.value_counts()).to_numpy()
    return rank * FOLDS // size


def apply_params(acc: Accelerator, params: dict) -> Accelerator:
    """``acc`` with the fitted kernel models (groups not fitted keep theirs)."""
    e = acc.efficiency
    changes = {}
    if "gemm" in params:
        g = params["gemm"]
        rel = (1.0, 1.0, g["tile_128x128"], g["tile_128x64"], g["tile_128x64"], g["tile_64x64"])
        tiles = tuple((tm, tn, round(r, 4)) for (tm, tn), r in zip(BASE_TILES, rel, strict=True))
        changes.update(matmul_max=round(g["matmul_max"], 4), matmul_half_flops=0.0,
                       matmul_memory_bandwidth=round(g["matmul_memory_bandwidth"], 4),
                       gemm=GemmModel(tiles=tiles, tile_k=32, k_overhead=round(g["k_overhead"], 2),
                                      min_wave=round(g["min_wave"], 4),
                                      sharpness=round(g["sharpness"], 3),
                                      fixed_s=round(g["fixed_us"], 3) * 1e-6))
    if "memory" in params:
        m = params["memory"]
        floors = {c: round(m[f"{c}_floor_us"], 3) * 1e-6 for c in MEMORY_CLASSES}
        changes["memory"] = MemoryKernelModel(
            fractions=FrozenMap((c, round(m[c], 4)) for c in MEMORY_CLASSES),
            floors=FrozenMap(floors), floor_s=max(floors.values()),
            cache_bytes=round(m["cache_mb"], 3) * 1e6, cache_speedup=round(m["cache_speedup"], 4),
            sharpness=round(m["sharpness"], 3))
    fitted = {k.split(":", 1)[1]: v for k, v in params.items() if k.startswith("attention:")}
    if fitted:
        default = next(b for b in DEFAULT_ATTENTION + tuple(sorted(fitted)) if b in fitted)
        base = e.attention or AttentionKernelModel()
        changes["attention_max"] = round(fitted[default]["attention_max"], 4)
        backends = tuple(sorted((b, _attention_model(base, a, b, own_max=True))
                                for b, a in fitted.items() if b != default))
        changes["attention"] = dataclasses.replace(
            _attention_model(base, fitted[default], default, own_max=False), backends=backends)
    return dataclasses.replace(acc, efficiency=dataclasses.replace(e, **changes))


def _attention_model(base: AttentionKernelModel, a: dict, kernel: str,
                     own_max: bool) -> AttentionKernelModel:
    return dataclasses.replace(
        base, prefill_seq_s=round(a["prefill_seq_us"], 3) * 1e-6,
        decode_seq_s=round(a["decode_seq_us"], 3) * 1e-6,
        decode_memory_bandwidth=round(a["decode_memory_bandwidth"], 4),
        floor_s=round(a["floor_us"], 3) * 1e-6, sharpness=round(a["sharpness"], 3),
        kernel=base.kernel if kernel == "default" else kernel, backends=(),
        attention_max=round(a["attention_max"], 4) if own_max else None)
