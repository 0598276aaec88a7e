"""What the batching policies are for: continuous beats static when output lengths vary,
chunked prefill trades TTFT for TPOT tails, disaggregation pays a KV transfer, speculative
decoding yields (1 - a^(k+1)) / (1 - a) tokens per verification and helps less at large batch."""

from __future__ import annotations

import numpy as np
import pytest

from sim.serving import ServingConfig, Workload, simulate_serving


def _throughput(policy: str, output: str) -> float:
    r = simulate_serving(policy=policy, num_requests=320, arrival_rate=1000, max_batch=32,
                         prompt_tokens=128, output_tokens=output, seed=1)
    assert r.summary["saturated"]  # offered far above capacity: throughput = capacity
    return r.summary["throughput_tokens_per_s"]


def test_continuous_beats_static_and_the_gap_grows_with_output_variance():
    ratios = []
    for spread in ("uniform:96:160", "uniform:32:224", "uniform:1:255"):  # mean 128 each
        ratios.append(_throughput("continuous", spread) / _throughput("static", spread))
    assert ratios[0] > 1.0
    assert ratios[0] < ratios[1] < ratios[2]


def test_chunked_prefill_cuts_the_tpot_tail_and_costs_ttft_on_long_prompts():
    kw = dict(num_requests=60, arrival_rate=1.5, prompt_tokens="uniform:4096:8192",
              output_tokens=128, seed=2)
    plain = simulate_serving(policy="continuous", **kw).summary
    chunked = simulate_serving(policy="chunked", chunk_tokens=512, **kw).summary
    assert not plain["saturated"] and not chunked["saturated"]
    # stalls spread thin; with #12's kernel costs (a 512-token chunk at 4-8K context pays its
    # attention blocks and floors every iteration) the tail gain is ~4%, no longer the old 15%
    assert chunked["tpot_s"]["p99"] < plain["tpot_s"]["p99"]
    assert chunked["ttft_s"]["mean"] > plain["ttft_s"]["mean"]


def test_static_batch_waits_for_its_timeout_when_alone():
    w = Workload(np.array([0.0]), np.array([256]), np.array([8]))
    r = simulate_serving(policy="static", max_batch=8, batch_timeout_s=0.05, workload=w)
    assert r.requests.queueing_delay_s.iloc[0] == pytest.approx(0.05, abs=1e-12)


def test_disaggregated_request_pays_prefill_then_kv_transfer_then_decode():
    from hardware import Cluster
    from sim.model import get_model
    from sim.serving.kvcache import kv_bytes_per_gpu_token
    from sim.serving.steptime import StepTimer

    w = Workload(np.array([0.0]), np.array([2048]), np.array([5]))
    r = simulate_serving(policy="disaggregated", workload=w, exact_step_times=True)
    model, cluster = get_model("llama3-8b"), Cluster.for_gpus("dgx-h100", 2)
    timer = StepTimer(model, cluster)
    transfer = cluster.latency(0, 1) + 2048 * kv_bytes_per_gpu_token(
        model, 1, 1, "bf16") / cluster.bandwidth(0, 1)
    decode = sum(timer.decode_time([2048 + i]) for i in range(4))
    row = r.requests.iloc[0]
    assert row.ttft_s == pytest.approx(timer.prefill_time(2048), rel=1e-12)
    assert row.e2e_s == pytest.approx(timer.prefill_time(2048) + transfer + decode, rel=1e-9)
    assert r.summary["kv_transfer_s"]["mean"] == pytest.approx(transfer, rel=1e-12)


@pytest.mark.parametrize(("a", "k"), [(0.5, 2), (0.8, 4), (0.9, 6)])
def test_speculative_tokens_per_verification_match_the_closed_form(a, k):
    r = simulate_serving(policy="continuous", draft_model="tiny-llama", speculative_tokens=k,
                         acceptance=str(a), num_requests=60, arrival_rate=50,
                         prompt_tokens=64, output_tokens=2000)
    spec = r.summary["speculative"]
    expected = (1 - a ** (k + 1)) / (1 - a)  # Leviathan et al. 2023, Eq. 1
    assert spec["verification_steps"] > 20_000
    assert spec["tokens_per_verification"] == pytest.approx(expected, rel=0.02)
    assert (r.requests.generated_tokens == 2000).all()


def test_per_request_beta_acceptance_gives_the_harmonic_mean_of_the_closed_form():
    r = simulate_serving(policy="continuous", draft_model="tiny-llama", speculative_tokens=3,
                         acceptance="beta:8:2", num_requests=200, arrival_rate=100,
                         prompt_tokens=32, output_tokens=400)
    from sim.serving.api import acceptance_rates

    acc = acceptance_rates("beta:8:2", 200, 0)
    per_request = (1 - acc**4) / (1 - acc)
    # every request makes 400 tokens in ~400/E_i steps: tokens per step is the harmonic mean
    expected = 1 / np.mean(1 / per_request)
    got = r.summary["speculative"]["tokens_per_verification"]
    assert got == pytest.approx(expected, rel=0.03)


def test_speculation_helps_at_batch_one_and_less_when_batches_are_compute_bound():
    from sim.model import get_model

    draft = get_model("llama3-8b").with_(name="llama3-draft-2l", n_layers=2)
    spec = dict(draft_model="draft", speculative_tokens=4, acceptance="0.8", draft=draft)
    cfg = ServingConfig(max_batch=256)
    low = dict(num_requests=10, arrival_rate=0.05, prompt_tokens=256, output_tokens=256)
    high = dict(num_requests=600, arrival_rate=5000, prompt_tokens=256, output_tokens=256)
    gain_low = (simulate_serving(cfg, **low).summary["tpot_s"]["mean"]
                / simulate_serving(cfg, **low, **spec).summary["tpot_s"]["mean"])
    gain_high = (simulate_serving(cfg, **high, **spec).summary["throughput_tokens_per_s"]
                 / simulate_serving(cfg, **high).summary["throughput_tokens_per_s"])
    assert gain_low > 1.5
    assert gain_high < gain_low


def test_concurrent_kv_transfers_share_the_link_bandwidth():
    from hardware import Cluster
    from sim.model import get_model
    from sim.serving.kvcache import kv_bytes_per_gpu_token

    w = Workload(np.array([0.0, 0.0]), np.array([4096, 4096]), np.array([3, 3]))
    r = simulate_serving(policy="disaggregated", workload=w)
    cluster = Cluster.for_gpus("dgx-h100", 2)
    nbytes = 4096 * kv_bytes_per_gpu_token(get_model("llama3-8b"), 1, 1, "bf16")
    both = cluster.latency(0, 1) + 2 * nbytes / cluster.bandwidth(0, 1)  # fair share: half each
    assert r.summary["kv_transfer_s"]["count"] == 2
    assert r.summary["kv_transfer_s"]["mean"] == pytest.approx(both, rel=1e-9)
