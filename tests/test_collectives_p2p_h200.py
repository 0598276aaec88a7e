"""Collectives fitted per measured system: send/recv on NCCL's p2p transport (no ring steps,
its own bandwidth), and the HGX H200 board's own NCCL model (its per-call times are 1-2 us
below the DGX H100's at small sizes). Measured rows: tests/data/kernels/collectives_slice.csv
(apex_plus H100/H200, see the README there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardware import Cluster, get_system
from sim.calibration import fit_nccl
from sim.calibration.rows import load_rows
from sim.costs.comm import collective_choice

SLICE = Path(__file__).parent / "data" / "kernels" / "collectives_slice.csv"


@pytest.fixture(scope="module")
def rows():
    return load_rows(SLICE)


def _measured(rows, gpu, kind, n, nbytes):
    hit = rows[(rows["gpu"] == gpu) & (rows["op_kind"] == kind) & (rows["n_gpus"] == n)
               & (rows["bytes"] == nbytes)]
    return float(hit["measured_s"].mean())


def test_send_recv_is_priced_on_the_p2p_transport_not_as_a_ring_step():
    sysm = get_system("dgx-h100")
    m = sysm.intra_link.nccl
    t, alg = collective_choice("send_recv", 64 * 2**20, [0, 1], Cluster.for_gpus(sysm, 8))
    bw = 450e9
    ll = m.ll_latency_s + m.ll_step_s + 64 * 2**20 / (bw * m.ll_bandwidth)
    p2p = m.p2p_latency_s + 64 * 2**20 / (bw * m.p2p_bandwidth)
    assert alg == "p2p" and t == pytest.approx(min(ll, p2p), rel=1e-12)
    share = 2 / (2 + m.group_half)
    assert m.p2p_bandwidth > m.simple_bandwidth * share  # one copy beats a 2-rank ring


@pytest.mark.parametrize("gpu,system,nbytes", [
    ("h100-sxm", "dgx-h100", 64 * 2**20), ("h200-sxm", "hgx-h200", 64 * 2**20),
    ("h100-sxm", "dgx-h100", 4096), ("h200-sxm", "hgx-h200", 4096),
])
def test_send_recv_matches_the_measured_time(rows, gpu, system, nbytes):
    measured = _measured(rows, gpu, "send_recv", 2, nbytes)  # 196-197 us at 64 MiB, 6-7 us
    t, _ = collective_choice("send_recv", nbytes, [0, 1], Cluster.for_gpus(system, 8))
    assert t == pytest.approx(measured, rel=0.20)


def test_the_h200_board_has_its_own_nccl_model_with_a_lower_per_call_floor(rows):
    h100, h200 = get_system("dgx-h100"), get_system("hgx-h200")
    assert h200.intra_link.name == "nvlink4-hgx-h200"
    assert h200.intra_link.bandwidth == h100.intra_link.bandwidth  # the same NVLink 4 fabric
    t = {s.name: collective_choice("all_gather", 4096, list(range(8)),
                                   Cluster.for_gpus(s, 8))[0] for s in (h100, h200)}
    assert t["hgx-h200"] < 0.9 * t["dgx-h100"]
    assert t["hgx-h200"] == pytest.approx(_measured(rows, "h200-sxm", "all_gather", 8, 4096),
                                          rel=0.20)  # measured 10 us


def test_a_send_recv_fit_holds_out_size_decades_and_reports_unfitted_rows_apart(rows):
    fitted = rows[(rows["gpu"] == "h100-sxm")]
    check = rows[(rows["gpu"] == "h200-sxm") & (rows["op_kind"] == "send_recv")]
    fit = fit_nccl.fit_link(fitted, 450e9, nvls=False, check=check)
    assert fit.model.p2p_bandwidth > 0.5 and fit.model.p2p_latency_s > 0
    assert fit.heldout["all"]["count"] == 38
    assert fit.heldout["all"]["median_abs_error"] < 0.15
    assert fit.heldout["not_fitted"]["count"] == 19
    assert (~fit.rows["fitted"]).sum() == 19


def _x(m) -> list[float]:
    return [m.ll_latency_s * 1e6, m.ll_step_s * 1e6, m.ll_bandwidth, m.simple_latency_s * 1e6,
            m.simple_step_s * 1e6, m.simple_bandwidth, m.group_half, m.p2p_latency_s * 1e6,
            m.p2p_bandwidth, m.nvls_bandwidth, m.nvls_latency_s * 1e6]


def test_the_vectorised_fit_formula_equals_collective_choice_row_by_row(rows):
    sysm = get_system("hgx-h200")
    sub = rows[rows["gpu"] == "h200-sxm"]
    vec = fit_nccl.predict(_x(sysm.intra_link.nccl), sub, sysm.intra_node_bandwidth, True, True)
    c = Cluster.for_gpus(sysm, 8)
    scalar = [collective_choice(r["op_kind"], r["bytes"], list(range(int(r["n_gpus"]))), c)[0]
              for _, r in sub.iterrows()]
    assert len(sub) == 38
    assert vec == pytest.approx(scalar, rel=1e-9)
