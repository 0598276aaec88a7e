"""The step timer's grid and interpolation stay within their documented error of exact
``forward_time`` calls, and are exact on grid points."""

from __future__ import annotations

import numpy as np
import pytest

from sim.serving.steptime import StepTimer, quantize


@pytest.fixture(scope="module")
def timers():
    from hardware import Cluster
    from sim.model import get_model

    m, c = get_model("llama3-8b"), Cluster.for_gpus("dgx-h100", 1)
    return StepTimer(m, c), StepTimer(m, c, exact=True)


def test_quantize_keeps_six_significant_bits():
    assert [quantize(x) for x in (0, 1, 63, 64, 65, 100, 1000)] == [0, 1, 63, 64, 66, 100, 1008]
    xs = np.arange(1, 200_000, 7)
    err = np.abs([quantize(int(x)) - x for x in xs]) / xs
    assert err.max() <= 2**-6


def test_decode_only_iteration_on_grid_points_is_exact(timers):
    grid, exact = timers
    kv = np.full(8, 512)
    assert grid.step([], [], 8, 4096) == exact.step([], [], 8, 4096, kv)


def test_interpolated_decode_iterations_stay_within_one_percent(timers):
    grid, exact = timers
    rng = np.random.default_rng(0)
    for _ in range(25):
        n = int(rng.integers(1, 200))
        kv = rng.integers(10, 4000, size=n)
        got, want = grid.step([], [], n, int(kv.sum())), exact.step([], [], n, 0, kv)
        assert got == pytest.approx(want, rel=0.01)


def test_interpolated_moe_decode_stays_within_one_percent():
    from hardware import Cluster
    from sim.model import get_model

    m, c = get_model("mixtral-8x7b"), Cluster.for_gpus("dgx-h100", 2)
    grid, exact = StepTimer(m, c, tp=2), StepTimer(m, c, tp=2, exact=True)
    rng = np.random.default_rng(2)
    for _ in range(15):
        n = int(rng.integers(1, 256))
        kv = rng.integers(10, 6000, size=n)
        got, want = grid.step([], [], n, int(kv.sum())), exact.step([], [], n, 0, kv)
        assert got == pytest.approx(want, rel=0.01)


def test_mixed_iterations_price_separate_attention_kernels_within_six_percent(timers):
    grid, exact = timers
    rng = np.random.default_rng(1)
    for _ in range(25):
        n_p, n = int(rng.integers(1, 4)), int(rng.integers(0, 150))
        p = [int(x) for x in rng.integers(16, 3000, size=n_p)]
        kv = rng.integers(10, 3000, size=n)
        got = grid.step(p, [0] * n_p, n, int(kv.sum()))
        want = exact.step(p, [0] * n_p, n, 0, kv)
        assert -0.01 * want <= got - want <= 0.06 * want  # see the steptime docstring
