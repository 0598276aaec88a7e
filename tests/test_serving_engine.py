"""Serving engine invariants: conservation, memory as a hard limit, low-load latencies equal to
the cost model's step times, the M/D/1 queue, rejection, preemption and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from sim.serving import ServingConfig, Workload, simulate_serving
from sim.serving.steptime import StepTimer

H100 = "dgx-h100"


def _fixed(n: int, gap: float, prompt: int, output: int) -> Workload:
    return Workload(np.arange(n) * gap, np.full(n, prompt), np.full(n, output))


def _check_conservation(r):
    df = r.requests[r.requests.rejected == ""]
    assert (df.generated_tokens == df.output_tokens).all()
    assert (df.queueing_delay_s >= 0).all()
    first = df.arrival_s + df.ttft_s
    last = df.arrival_s + df.e2e_s
    assert (df.arrival_s <= first).all() and (first <= last).all()
    cap = r.kv.blocks
    assert r.timeline.kv_blocks_used.max() <= cap
    assert r.summary["kv_cache_peak_utilization"] <= 1.0


@pytest.mark.parametrize("policy", ["continuous", "chunked", "static", "disaggregated"])
def test_every_admitted_request_gets_exactly_its_output_tokens(policy):
    r = simulate_serving(policy=policy, num_requests=150, arrival_rate=40,
                         prompt_tokens="uniform:16:1024", output_tokens="lognormal:64:1",
                         max_batch=32)
    assert r.summary["requests_completed"] == 150
    _check_conservation(r)


@pytest.mark.parametrize("mode", ["recompute", "swap"])
def test_tight_memory_preempts_and_still_conserves_tokens(mode):
    # 0.215 of 80 GB leaves ~1.2 GB of KV next to 15 GB of weights: ~9k tokens for 64 seqs
    r = simulate_serving(policy="continuous", num_requests=120, arrival_rate=200,
                         prompt_tokens=256, output_tokens="uniform:64:512",
                         gpu_memory_utilization=0.2, preemption=mode, max_batch=64)
    assert r.kv.tokens < 64 * 600  # memory, not the batch cap, is binding
    assert r.summary["preemptions"] > 0
    assert r.requests.preemptions.sum() == r.summary["preemptions"]
    _check_conservation(r)
    assert r.summary["kv_cache_peak_utilization"] > 0.95


def test_request_that_can_never_fit_is_rejected_with_a_reason():
    r = simulate_serving(policy="continuous", num_requests=3, arrival_rate=1,
                         prompt_tokens=900_000, output_tokens=10)
    assert r.summary["requests_rejected"] == 3 and r.summary["requests_completed"] == 0
    reason = r.requests.rejected.iloc[0]
    assert "KV blocks" in reason and "900000 prompt" in reason


def test_low_load_ttft_is_the_prefill_and_tpot_the_batch1_decode_step():
    cfg = ServingConfig(policy="continuous", exact_step_times=True)
    r = simulate_serving(cfg, workload=_fixed(4, 10.0, 512, 17))
    from hardware import Cluster
    from sim.model import get_model

    timer = StepTimer(get_model("llama3-8b"), Cluster.for_gpus(H100, 1))
    prefill = timer.prefill_time(512)
    steps = [timer.decode_time([512 + i]) for i in range(16)]  # tokens 2..17 see 512..527
    df = r.requests
    assert df.ttft_s.to_numpy() == pytest.approx([prefill] * 4, rel=1e-12)
    assert df.tpot_s.to_numpy() == pytest.approx([np.mean(steps)] * 4, rel=1e-12)
    assert df.queueing_delay_s.max() == 0.0


def test_batch1_fixed_lengths_wait_matches_md1_pollaczek_khinchine():
    # M/D/1: Wq = rho * S / (2 (1 - rho)) for deterministic service S (Pollaczek-Khinchine)
    cfg = ServingConfig(policy="continuous", max_batch=1)
    probe = simulate_serving(cfg, workload=_fixed(1, 1.0, 64, 4))
    service = float(probe.requests.e2e_s.iloc[0])
    lam = 0.6 / service
    r = simulate_serving(cfg, num_requests=6000, arrival_rate=lam, prompt_tokens=64,
                         output_tokens=4)
    assert (r.requests.e2e_s - r.requests.queueing_delay_s).to_numpy() == pytest.approx(
        service, rel=1e-9)  # service time is deterministic
    rho = lam * service
    expected = rho * service / (2 * (1 - rho))
    assert r.requests.queueing_delay_s.mean() == pytest.approx(expected, rel=0.08)


def test_same_seed_same_records_different_seed_different_arrivals():
    kw = dict(policy="chunked", num_requests=80, arrival_rate=30, prompt_tokens="lognormal:300:1",
              output_tokens="uniform:8:128")
    a, b = simulate_serving(seed=3, **kw), simulate_serving(seed=3, **kw)
    assert a.requests.equals(b.requests) and a.timeline.equals(b.timeline)
    assert a.to_dict() == b.to_dict()
    c = simulate_serving(seed=4, **kw)
    assert not np.array_equal(a.requests.arrival_s, c.requests.arrival_s)


def test_overload_is_flagged_saturated_and_light_load_is_not():
    kw = dict(policy="continuous", num_requests=400, prompt_tokens=1024, output_tokens=64)
    assert simulate_serving(arrival_rate=500, **kw).summary["saturated"] is True
    assert simulate_serving(arrival_rate=2, **kw).summary["saturated"] is False


def test_round_robin_and_least_outstanding_spread_requests_over_replicas():
    kw = dict(policy="continuous", replicas=3, num_requests=90, arrival_rate=50,
              prompt_tokens=128, output_tokens="uniform:4:200")
    rr = simulate_serving(router="round-robin", **kw).requests
    assert rr.replica.value_counts().to_dict() == {0: 30, 1: 30, 2: 30}
    lo = simulate_serving(router="least-outstanding", **kw).requests
    assert set(lo.replica) == {0, 1, 2}


def test_moe_that_does_not_fit_one_gpu_rejects_and_fits_with_expert_parallelism():
    kw = dict(model="mixtral-8x7b", policy="continuous", num_requests=20, arrival_rate=5,
              prompt_tokens=256, output_tokens=32)
    alone = simulate_serving(tp=1, ep=1, **kw)  # ~93 GB of weights on an 80 GB GPU
    assert alone.kv.blocks == 0 and alone.summary["requests_rejected"] == 20
    assert "weights leave no HBM" in alone.summary["rejection_reasons"][0]
    split = simulate_serving(tp=1, ep=2, **kw)  # two attention groups share the experts
    assert split.kv.groups == 2 and split.summary["requests_completed"] == 20
    assert split.kv.tokens == 2 * int(split.kv.free_bytes // split.kv.kv_bytes_per_token)
    _check_conservation(split)


def test_a_decode_step_that_preempts_reserves_its_kv_blocks_once(monkeypatch):
    # A steady decode step that preempts requeues the newest sequence; the iteration then admits
    # from the queue and must not take the step's new-block reservation a second time.
    from sim.serving.replica import Replica

    calls: dict[tuple[int, int], int] = {}
    reserve = Replica.reserve_decode

    def counting(self, adv):
        if self.run.n:
            key = (id(self), self.run.k)
            calls[key] = calls.get(key, 0) + 1
        return reserve(self, adv)

    monkeypatch.setattr(Replica, "reserve_decode", counting)
    rng = np.random.default_rng(3)  # this workload reserved 3 blocks twice before the fix
    w = Workload(np.sort(rng.uniform(0, 3, 150)), rng.integers(64, 1024, 150),
                 rng.integers(64, 512, 150))
    r = simulate_serving(workload=w, policy="continuous", gpu_memory_utilization=0.2,
                         max_batch=64, fast_forward=False)
    assert r.summary["preemptions"] > 50
    assert calls and max(calls.values()) == 1
    _check_conservation(r)
