"""Shape-aware fit of measured GEMM times, and the bandwidths a CPU profile needs.

The simulator prices a GEMM (``sim.costs.timing``) with the roofline (Williams, Waterman &
Patterson 2009, CACM 52(4)): ``max(F / (R * g(d)), B / (W * e_gemm))`` for F FLOPs moving B
bytes, where ``g(d) = d / (d + h)`` is the optional small-dimension term of
``EfficiencyModel`` (d = the GEMM's smallest dimension). ``g`` is the per-row form of the
roofline: a GEMM with few rows must still stream (pack) the whole k x n weight once, so its
time is ``k n c + 2 m k n / R`` (c seconds per weight element) and the achieved rate is
``R * m / (m + h)`` with ``h = c R / 2`` (Williams et al. 2009: operational intensity of a
GEMM grows with m; Goto & van de Geijn 2008, ACM TOMS 34(3), Sec. 6: packing the weight panel
is a per-call cost amortised over the rows). A fit on FLOPs alone cannot price decode's
few-row GEMMs and training's square ones at once; with ``h`` it can.

Fit: for each ``h`` on a grid, least squares on relative error of ``t = F / (R g(d)) + b``
(``fit_affine`` on ``F / g(d)``), then the full roofline prediction's squared log error; the
``h`` with the least error wins. Measured, not tuned per validation case: the grid is the
calibration's shapes only.

Bandwidths: elementwise ops (norms, residual adds, activations) and GEMM operand streams run
at different rates on a CPU (an add streams at cache speed; a GEMM re-reads packed panels), so
they are measured apart. Elementwise ops consume what the previous op just wrote, so they run
from cache: ``elementwise_bandwidth`` over working sets of 1-16 MiB. A GEMM's memory-bound
regime is a few-row GEMM streaming a weight that is *not* in cache (decode reads every layer's
weights once per step), so ``cold_stream_bandwidth`` cycles through weights larger than the
last-level cache. One-row GEMMs are measured apart from the rest: BLAS dispatches them to GEMV
(Level-2 BLAS, Dongarra et al. 1988, ACM TOMS 14(1)), which reads the weight once without
packing and ran ~3x faster per byte here than GEMMs with 2-16 rows.

The fit itself runs on hot, in-cache GEMMs (each shape repeated), so it uses only the compute
side (``stream_bw`` infinite): on a CPU a hot weight is never the bound.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

HALF_DIM_GRID = (0.0,) + tuple(float(x) for x in np.geomspace(0.25, 128.0, 37))
ELEMENTWISE_MIB = (1, 4, 16)


def small_dim_factor(d: float, half: float) -> float:
    """``d / (d + half)`` (1.0 when half is 0): the per-row roofline term (module docstring)."""
    return d / (d + half) if half > 0 else 1.0


def fit_affine(flops, times) -> tuple[float, float]:
    """Least squares on relative error of t = F / R + b: returns (R, b), b >= 0."""
    f, t = np.asarray(flops, dtype=float), np.asarray(times, dtype=float)
    a = np.stack([f / t, 1.0 / t], axis=1)
    (inv_r, b), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    if b < 0:  # no fixed cost visible: fit throughput alone (relative error)
        inv_r, b = float(np.sum(f / t) / np.sum((f / t) ** 2)), 0.0
    return float(1.0 / inv_r), float(b)


@dataclass(frozen=True)
class MatmulFit:
    rate: float  # R, FLOP/s of a large GEMM
    fixed_s: float  # b, seconds per GEMM call
    half_dim: float  # h of g(d) = d / (d + h)
    rms_log_error: float  # of the fitted model over the grid (e^x - 1 ~ relative error)


def predict_gemm(m, n, k, rate, fixed, half, stream_bw) -> float:
    """Roofline time of one m x n x k fp32 GEMM under the fitted model (module docstring)."""
    flops, nbytes = 2.0 * m * n * k, 4.0 * (m * k + k * n + m * n)
    t_compute = flops / (rate * small_dim_factor(min(m, n, k), half))
    return max(t_compute, nbytes / stream_bw) + fixed


def _fit_at(points, half: float, stream_bw: float) -> MatmulFit:
    scaled = [2.0 * m * n * k / small_dim_factor(min(m, n, k), half) for m, n, k, _ in points]
    rate, fixed = fit_affine(scaled, [p[3] for p in points])
    logs = [np.log(predict_gemm(m, n, k, rate, fixed, half, stream_bw) / t)
            for m, n, k, t in points]
    return MatmulFit(rate, fixed, half, float(np.sqrt(np.mean(np.square(logs)))))


def fit_matmul(points, stream_bw: float = float("inf")) -> MatmulFit:
    """Best (R, b, h) over ``HALF_DIM_GRID`` for ``points`` = ((m, n, k, seconds), ...)."""
    return min((_fit_at(points, h, stream_bw) for h in HALF_DIM_GRID),
               key=lambda f: f.rms_log_error)


def elementwise_bandwidth(device: str, mib=ELEMENTWISE_MIB) -> tuple[float, float]:
    """(best, median) bytes/s of copy and add over working sets of ``mib`` MiB: the best is
    the profile's memory bandwidth, median / best its elementwise efficiency."""
    import torch

    from sim.validation.calibrate import median_time

    rates = []
    for size in mib:
        n = (size << 20) // 4
        x, y, out = (torch.randn(n, device=device) for _ in range(3))
        t_copy = median_time(lambda x=x, out=out: out.copy_(x), device, repeats=15)
        t_add = median_time(lambda x=x, y=y, out=out: torch.add(x, y, out=out), device,
                            repeats=15)
        rates += [2 * 4 * n / t_copy, 3 * 4 * n / t_add]  # bytes read + written
    return float(max(rates)), float(statistics.median(rates))


def cold_stream_bandwidth(device: str, rows, n: int = 2048, weights: int = 12) -> float:
    """Median over ``rows`` of the bytes/s at which a ``rows`` x n GEMM streams its n x n
    weight when the weights are cold: it cycles through ``weights`` distinct weights (192 MiB
    at the defaults, beyond any last-level cache), as decode streams a model's layers once
    per step. The GEMM's roofline memory term is measured on this, not on a hot weight."""
    import torch

    from sim.validation.calibrate import median_time

    ws = [torch.randn(n, n, device=device) for _ in range(weights)]
    rates = []
    for m in rows:
        x = torch.randn(m, n, device=device)

        def sweep(x=x):
            for w in ws:
                torch.nn.functional.linear(x, w)

        rates.append(4.0 * weights * n * n / median_time(sweep, device, repeats=7))
    return float(statistics.median(rates))
