"""Fast-forward (issue 18): decode-only runs in one timeout give the same results as stepping
every iteration: per-request timestamps identical bit for bit (the issue asks for 1e-9
relative), identical counts (completed, rejected, preemptions, tokens, iterations), over
random workloads, policies and deployments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.serving import Workload, simulate_serving

COUNTS = ("rid", "replica", "prompt_tokens", "output_tokens", "generated_tokens",
          "preemptions", "rejected")
TIMES = ("queueing_delay_s", "ttft_s", "tpot_s", "e2e_s")
SUMMARY = ("requests_completed", "requests_rejected", "preemptions", "iterations",
           "batch_size_mean", "kv_cache_mean_utilization", "kv_cache_peak_utilization")


def assert_same(a, b) -> None:
    da, db = a.requests, b.requests
    for col in COUNTS:
        assert da[col].equals(db[col]), col
    for col in TIMES:  # absolute times, the same floats
        x, y = (da[col] + da.arrival_s).to_numpy(), (db[col] + db.arrival_s).to_numpy()
        assert np.array_equal(x, y, equal_nan=True), col
    for key in SUMMARY:
        assert a.summary[key] == b.summary[key], key
    assert a.summary.get("speculative") == b.summary.get("speculative")


def both(**kw):
    return simulate_serving(fast_forward=False, **kw), simulate_serving(fast_forward=True, **kw)


def _workload(seed: int, n: int, rate: float, prompt: float, output: float) -> Workload:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    lengths = [np.maximum(1, rng.lognormal(np.log(m), 1.0, n).astype(int)) for m in
               (prompt, output)]
    return Workload(arrivals, *lengths)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), n=st.integers(1, 40), rate=st.sampled_from([0.5, 4, 40]),
       policy=st.sampled_from(["continuous", "chunked", "prefill-first", "disaggregated"]),
       memory=st.sampled_from([0.9, 0.21]), spec=st.booleans(),
       replicas=st.integers(1, 2), preemption=st.sampled_from(["recompute", "swap"]))
def test_fast_forward_equals_stepping_on_random_workloads(seed, n, rate, policy, memory, spec,
                                                          replicas, preemption):
    w = _workload(seed, n, rate, 300, 200)
    kw = dict(policy=policy, workload=w, gpu_memory_utilization=memory, replicas=replicas,
              preemption=preemption, seed=seed, max_batch=32)
    if spec and policy != "disaggregated":
        kw.update(draft_model="tiny-llama", speculative_tokens=3, acceptance="beta:2:2")
    a, b = both(**kw)
    assert_same(a, b)


def test_a_long_quiet_decode_becomes_a_few_runs_with_the_same_records(needs_fast_forward):
    w = Workload(np.array([0.0, 0.01]), np.array([64, 64]), np.array([900, 1500]))
    a, b = both(policy="continuous", workload=w)
    assert_same(a, b)
    iterations = a.summary["iterations"]
    assert iterations >= 1501 and len(a.timeline) == iterations  # B's 1500 tokens at least
    assert len(b.timeline) < 40 and b.timeline.steps.sum() == iterations


def test_exact_pricing_and_speculative_decoding_fast_forward_identically(needs_fast_forward):
    w = Workload(np.array([0.0, 0.3, 0.7]), np.array([128, 256, 64]), np.array([300, 80, 200]))
    a, b = both(policy="continuous", workload=w, exact_step_times=True,
                draft_model="tiny-llama", speculative_tokens=4, acceptance="0.7")
    assert_same(a, b)
    assert len(b.timeline) < len(a.timeline)


def test_static_batching_never_fast_forwards():
    w = Workload(np.zeros(4), np.full(4, 64), np.array([10, 20, 30, 40]))
    a, b = both(policy="static", workload=w, batch_timeout_s=0.0)
    assert_same(a, b)
    assert (b.timeline.steps == 1).all()


@pytest.mark.parametrize("policy", ["continuous", "chunked", "prefill-first"])
def test_tight_memory_runs_end_where_the_pool_runs_out(policy):
    a, b = both(policy=policy, num_requests=60, arrival_rate=100, prompt_tokens=256,
                output_tokens="uniform:64:512", gpu_memory_utilization=0.2, max_batch=64)
    assert a.summary["preemptions"] > 0
    assert_same(a, b)


@pytest.mark.parametrize("now, at", [(7.993605777301127e-14, 28.943725551289067),  # a tie
                                     (0.0, 1.2345), (0.1, 0.30000000000000004), (5e3, 5e3 + 1e-9)])
def test_a_fast_forward_lands_on_the_stepping_clock_in_at_most_two_timeouts(now, at):
    from sim.serving.replica import _delay_to

    t, hops = now, 0
    while t < at:  # SimPy's clock: now + delay
        t, hops = t + _delay_to(t, at), hops + 1
    assert t == at and hops <= 2
