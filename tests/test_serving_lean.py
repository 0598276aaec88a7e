"""The lean engine (issue 18) gives the SimPy engine's results: the same per-request records
(timestamps and counts identical), the same summary and the same iteration log row for row,
over random workloads, policies, token budgets and memory pressure; its decode runs (end
time, KV blocks) equal the step-by-step sums. Serving
engine stacks (packed or per-request prefills) price through the same corners in both."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.serving import Workload, api, simulate_serving
from sim.serving.config import ServingConfig
from sim.serving.decoderun import DecodeClock, Hits, run_blocks, run_fit
from sim.serving.steptime import StepTimer
from sim.stack.loader import get_stack
from tests.test_serving_fastforward import assert_same


def lean_and_simpy(**kw):
    a = simulate_serving(**kw)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(api, "engine_for", lambda cfg, timer: "simpy")
        b = simulate_serving(**kw)
    return a, b


def assert_same_log(a, b) -> None:
    ta, tb = a.timeline, b.timeline
    assert list(ta.columns) == list(tb.columns) and len(ta) == len(tb)
    for col in ta.columns:
        assert ta[col].equals(tb[col]), col
    assert a.summary["step_time_cache"] == b.summary["step_time_cache"]


def _workload(seed: int, n: int, rate: float) -> Workload:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    lengths = [np.maximum(1, rng.lognormal(np.log(m), 1.0, n).astype(int)) for m in (300, 200)]
    return Workload(arrivals, *lengths)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), n=st.integers(1, 60), rate=st.sampled_from([0.5, 4, 40]),
       policy=st.sampled_from(["continuous", "prefill-first"]),
       memory=st.sampled_from([0.9, 0.21]), budget=st.sampled_from([None, 2048]),
       max_batch=st.sampled_from([4, 32]), stack=st.sampled_from([None, "packed", "per-request"]),
       replicas=st.sampled_from([1, 1, 3]))
def test_the_lean_engine_equals_the_simpy_engine_on_random_workloads(
        seed, n, rate, policy, memory, budget, max_batch, stack, replicas):
    engine = None if stack is None else replace(get_stack("vllm-2024"), prefill_batching=stack)
    a, b = lean_and_simpy(policy=policy, workload=_workload(seed, n, rate),
                          gpu_memory_utilization=memory, max_batch=max_batch,
                          max_batched_tokens=budget, seed=seed, stack=engine,
                          replicas=replicas)
    assert_same(a, b)
    assert_same_log(a, b)


def test_memory_pressure_preempts_the_same_requests_in_both_engines():
    a, b = lean_and_simpy(policy="continuous", num_requests=120,
                          arrival_rate=50, prompt_tokens=256, output_tokens="uniform:64:512",
                          gpu_memory_utilization=0.2, max_batch=64)
    assert a.summary["preemptions"] > 10
    assert a.requests.preemptions.equals(b.requests.preemptions)
    assert_same(a, b)
    assert_same_log(a, b)


def test_rejections_at_the_door_carry_the_same_reasons():
    w = Workload(np.array([0.0, 0.1, 0.2]), np.array([100, 9000, 100]), np.array([50, 10, 50]))
    a, b = lean_and_simpy(policy="continuous", workload=w,
                          max_batched_tokens=4096)
    assert list(a.requests.rejected) == list(b.requests.rejected)
    assert "max-batched-tokens" in a.requests.rejected.iloc[1]
    assert_same(a, b)


@pytest.mark.parametrize(("overrides", "engine"), [
    ({}, "lean"), ({"policy": "prefill-first"}, "lean"), ({"fast_forward": False}, "simpy"),
    ({"policy": "chunked"}, "simpy"), ({"policy": "static"}, "simpy"),
    ({"replicas": 2}, "lean"), ({"replicas": 2, "router": "least-outstanding"}, "simpy"),
    ({"replicas": 1, "router": "least-outstanding"}, "lean"),
    ({"policy": "disaggregated"}, "simpy"),
    ({"preemption": "swap"}, "simpy"),
    ({"draft_model": "tiny-llama", "speculative_tokens": 2}, "simpy")])
def test_one_dispatch_point_picks_the_lean_engine_only_where_it_is_exact(overrides, engine,
                                                                        needs_fast_forward):
    cfg = ServingConfig(**overrides)
    assert api.engine_for(cfg, StepTimer(None, None)) == engine
    assert api.engine_for(cfg, StepTimer(None, None, exact=True)) == "simpy"


def test_a_decode_run_ends_exactly_where_the_step_by_step_clock_does():
    from hardware import Cluster
    from sim.model import get_model

    timer = StepTimer(get_model("llama2-7b"), Cluster.for_gpus("dgx-a100-80gb", 1))
    clock = DecodeClock(timer)
    for n, m0, steps in ((1, 0, 50), (23, 250, 300), (100, 1020, 80), (7, 63, 5), (3, 5, 40)):
        t, ends = 3.0, []
        for j in range(steps):  # SimPy's clock: now + step time, one step at a time
            t = t + timer.step((), (), n, n * (m0 + j))
            ends.append(t)
        assert clock.advance(n, m0, steps, 3.0, np.inf) == (steps, ends[-1])
        cut = ends[steps // 2] - 1e-7  # an arrival inside step steps//2
        assert clock.advance(n, m0, steps, 3.0, cut) == (steps // 2 + 1, ends[steps // 2])
        assert clock.advance(n, m0, steps, 3.0, ends[3]) == (4, ends[3])  # a tie: that step


@pytest.mark.parametrize("bs", [1, 4, 16])
def test_kv_blocks_of_a_decode_run_are_the_boundary_counts_summed(bs):
    rng = np.random.default_rng(bs)
    ctx, k = rng.integers(1, 200, size=13), 37
    hits = Hits(bs)
    for c in ctx.tolist():
        hits.add(c - k, +1)
    hits.add(500, +1)
    hits.add(500, -1)  # a sequence that left again
    n, s0 = len(ctx), k % bs
    need = [int(((ctx + j) % bs == 0).sum()) for j in range(2000)]  # step j's new blocks
    cum = np.cumsum(need)
    got = [run_blocks(hits.d2, hits.e2, s0, n, bs, s) for s in range(1, 2001)]
    assert [b for b, _ in got] == cum.tolist()
    assert [s for _, s in got][:60:7] == [int(cum[:m].sum()) for m in range(1, 61, 7)]
    assert got[1999][1] == int(cum.sum())
    for free in (0, 5, 40, 333):
        assert run_fit(hits.d2, s0, n, bs, 10**6, free) == int(
            np.searchsorted(cum, free, side="right"))


@pytest.mark.parametrize("arrival", [np.repeat(np.arange(6) * 0.5, 5), np.zeros(30),
                                     np.array([0.5, 0.1, 0.3, 2.0, 1.0, 1.0] * 5)])
def test_simultaneous_and_unsorted_arrivals_are_served_in_the_same_order(arrival):
    n = len(arrival)
    w = Workload(arrival, np.arange(1, n + 1) * 37, np.arange(n, 0, -1) * 11)
    for policy in ("continuous", "prefill-first"):
        a, b = lean_and_simpy(policy=policy, workload=w, gpu_memory_utilization=0.2,
                              max_batch=8)
        assert_same(a, b)
        assert_same_log(a, b)


def test_a_replica_without_kv_memory_rejects_everything_in_both_engines():
    a, b = lean_and_simpy(policy="continuous", model="llama3-70b", system="dgx-a100-80gb",
                          num_requests=5, arrival_rate=1)
    assert a.summary["requests_rejected"] == 5 and a.summary["iterations"] == 0
    assert_same(a, b)
