"""The one measurement protocol of ``clustersim calibrate`` and ``clustersim validate``.

Model of the noise (Chen & Revels 2016, "Robust benchmarking in noisy environments",
arXiv:1608.04295, Sec. 3-4): on a shared machine a timing is the undisturbed time plus
*positive* interference (other processes, cache and SMT pressure, frequency changes); noise
never makes code faster. The minimum, or a low quantile, therefore estimates the undisturbed
time consistently, while the mean and the median absorb however busy the neighbours were
during the measurement. Chen & Revels recommend the minimum; we take the lower
``QUANTILE`` quantile (``numpy`` method "lower"), which *is* the minimum below 11 samples
and is less sensitive to one lucky sample when there are many.

Protocol, identical for calibration microbenchmarks and validation cases:

1. fixed intra-op threads (set by the caller) and one clock (``sim.validation.clock``);
2. warm-up: every case runs ``warmup`` times before anything is timed;
3. interleaving: repetitions go round-robin over *all* cases of a batch, each round starting
   one case later, so a busy phase of the machine hits every case instead of all repeats of
   one case;
4. pairing: every case timing is preceded by one timing of a reference kernel (a 256^3 fp32
   GEMM) and the case's estimate is put on one time scale: ``q(case) / q(reference) * scale``
   where ``scale`` is the reference's estimate in the calibration run (``set_scale``), so the
   calibration and the validation measured at different moments share one scale;
5. recorded per row: its estimate, its spread (``(median - low quantile) / low quantile`` of
   its raw times: how much the machine disturbed it) and the number of samples. The harness
   records the load average before and after a run.

Rejected: medians (what earlier tables used: they measured the neighbours' load, up to +45%
between runs of the same case); the per-pair ratio's quantile (the reference's own noise
then biases every ratio low); one case's repeats in a row (a busy minute hits one row only).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

QUANTILE = 0.1
REFERENCE_GEMM = (256, 256, 256)
_SCALE: dict[str, float | None] = {"value": None}


def set_scale(seconds: float | None) -> None:
    """The reference kernel's time on the shared scale (the calibration's estimate)."""
    if seconds is not None and not seconds > 0:
        raise ValueError(f"reference scale must be > 0 s, not {seconds!r}")
    _SCALE["value"] = seconds


def scale() -> float | None:
    return _SCALE["value"]


def low(samples) -> float:
    """The robust estimator: the lower ``QUANTILE`` quantile (the minimum below 11 samples)."""
    return float(np.quantile(np.asarray(samples, dtype=float), QUANTILE, method="lower"))


def spread(samples) -> float:
    """(median - estimate) / estimate: how far the machine pushed this row's typical run."""
    est = low(samples)
    return (statistics.median(samples) - est) / est if est > 0 else 0.0


@dataclass(frozen=True)
class Timed:
    seconds: float  # estimate on the shared scale
    spread: float  # (median - low) / low of the raw samples
    samples: int
    raw_low_s: float  # the low quantile before rescaling


def reference_kernel(device: str):
    import torch

    m, n, k = REFERENCE_GEMM
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
    return lambda: torch.mm(a, b)


def _time(fn, device: str, clock: str | None):
    from sim.validation.calibrate import sync
    from sim.validation.clock import now

    t0 = now(clock)
    out = fn()
    sync(device)
    return now(clock) - t0, out


def _values(elapsed: float, out) -> dict[str, float]:
    """A case's measured quantities: its elapsed time, or the dict of seconds it returns
    (a serving run reports makespan / TTFT / E2E on its own clock)."""
    return dict(out) if isinstance(out, dict) else {"": elapsed}


def _rotated(names: list[str], r: int) -> list[str]:
    k = r % len(names)
    return names[k:] + names[:k]


def _run_rounds(cases, rounds, device, clock, ref) -> tuple[dict, list]:
    samples: dict[str, dict[str, list[float]]] = {n: {} for n in cases}
    refs: list[float] = []
    for r in range(rounds):
        for name in _rotated(list(cases), r):
            refs.append(_time(ref, device, clock)[0])
            elapsed, out = _time(cases[name], device, clock)
            for key, v in _values(elapsed, out).items():
                samples[name].setdefault(key, []).append(v)
    return samples, refs


def interleaved(cases: dict[str, Callable], rounds: int = 5, warmup: int = 2,
                device: str = "cpu", clock: str | None = None) -> dict[str, dict[str, Timed]]:
    """Run the protocol (module docstring) over ``cases`` (name -> zero-argument callable);
    returns name -> quantity -> ``Timed`` (quantity ``""`` is the call's elapsed time)."""
    if not cases:
        return {}
    ref = reference_kernel(device)
    for _ in range(warmup):
        ref()
        for fn in cases.values():
            fn()
    samples, refs = _run_rounds(cases, rounds, device, clock, ref)
    ref_low = low(refs)
    factor = (scale() or ref_low) / ref_low
    return {name: {key: Timed(low(v) * factor, spread(v), len(v), low(v))
                   for key, v in qty.items()} for name, qty in samples.items()}


def interleaved_seconds(cases: dict[str, Callable], **kw) -> dict[str, Timed]:
    """``interleaved`` reduced to name -> ``Timed`` of each call's elapsed time."""
    return {name: t[""] for name, t in interleaved(cases, **kw).items()}


def paired_rate(device: str = "cpu", rounds: int = 7, clock: str | None = None) -> float:
    """``scale / reference measured now`` (1.0 without a scale): the factor that puts a
    timeline measured next on the shared scale (a serving run's clock)."""
    ref = reference_estimate(device, rounds, clock)
    return (scale() or ref) / ref


def reference_estimate(device: str = "cpu", rounds: int = 21, clock: str | None = None
                       ) -> float:
    """The reference kernel's own estimate (the calibration's scale when run there)."""
    ref = reference_kernel(device)
    ref()
    return low([_time(ref, device, clock)[0] for _ in range(rounds)])
