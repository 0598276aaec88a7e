"""Reference-structure terms of the validation (issue 16): a serving stack whose prompts
join one forward each (``prefill_batching = "per-request"``, the reference server's loop),
the speculative acceptance rate measured in the simulator's own (Leviathan) definition, and
eager attention on a CPU priced as its bmms plus its score passes (fitted by the calibration)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.serving.steptime import StepTimer
from sim.stack import get_stack
from sim.stack.loader import with_overrides


@pytest.fixture(scope="module")
def model_cluster():
    from hardware import Cluster
    from sim.model import get_model

    return get_model("llama3-8b"), Cluster.for_gpus("dgx-h100", 1)


def _timers(model_cluster, batching):
    m, c = model_cluster
    stack = with_overrides(get_stack("vllm-0.2"), {"prefill_batching": batching})
    return StepTimer(m, c, exact=True, stack=stack), stack


def test_every_serving_stack_of_the_catalog_packs_its_prompts_into_one_forward():
    for name in ("vllm-2024", "vllm-0.2", "sarathi-2024", "distserve-2024"):
        assert get_stack(name).prefill_batching == "packed"


def test_per_request_prefill_is_one_forward_per_prompt_plus_one_for_the_decodes(model_cluster):
    per, stack = _timers(model_cluster, "per-request")
    packed, _ = _timers(model_cluster, "packed")
    kv = np.array([300, 700, 900])
    mixed = per.step([128, 512], [0, 0], 3, 0, kv)
    alone = packed.prefill_time(128) + packed.prefill_time(512) + packed.decode_time(kv)
    # the scheduler's per-iteration time is paid once, not once per forward
    assert mixed == pytest.approx(alone - 2 * stack.scheduler_overhead_s, rel=1e-12)
    assert mixed > packed.step([128, 512], [0, 0], 3, 0, kv) * 1.05  # separate forwards cost more


def test_prompt_only_iterations_and_decode_only_iterations_do_not_depend_on_the_batching(
        model_cluster):
    per, _ = _timers(model_cluster, "per-request")
    packed, _ = _timers(model_cluster, "packed")
    kv = np.array([300, 700])
    assert per.step([], [], 2, 0, kv) == packed.step([], [], 2, 0, kv)
    assert per.step([256], [0], 0, 0, np.array([])) == packed.step([256], [0], 0, 0, np.array([]))


def test_the_reference_stack_runs_one_forward_per_joining_request(tmp_path):
    from types import SimpleNamespace

    from sim.validation.profile import load_stack, write_stack

    cal = SimpleNamespace(reference_iteration_overhead_s=2e-4, device="cpu", machine="x86_64",
                          threads=1, torch_version="2")
    write_stack(cal, tmp_path / "p.toml")
    assert load_stack(tmp_path / "p.toml").prefill_batching == "per-request"


def test_acceptance_alpha_recovers_the_simulators_per_draft_rate_where_the_fraction_does_not():
    from sim.validation.speculative import acceptance_alpha

    k, alpha = 4, 0.6
    rng = np.random.default_rng(3)
    n_ok = np.minimum(rng.geometric(1 - alpha, 20_000) - 1, k)  # as Simulation.accepted draws
    accepted, rejected = int(n_ok.sum()), int((n_ok < k).sum())
    assert acceptance_alpha(accepted, rejected) == pytest.approx(alpha, abs=0.01)
    assert accepted / (k * len(n_ok)) == pytest.approx(0.326, abs=0.01)  # far below alpha
    assert acceptance_alpha(0, 0) == 0.0


def test_reference_speculative_decoding_counts_the_rounds_that_rejected_a_draft():
    torch = pytest.importorskip("torch")
    from sim.validation.inference import serving_model
    from sim.validation.measure import tokens
    from sim.validation.reference import build_model
    from sim.validation.speculative import draft_of, greedy, speculative

    torch.set_num_threads(1)
    cfg = serving_model(quick=True)
    target = build_model(cfg).eval()
    tok = tokens(cfg, 1, 16)
    out, acc, prop, rej = speculative(target, draft_of(target, 1), tok, 12, 4)
    assert out == greedy(target, tok, 12)
    rounds = prop // 4
    # a round without a rejection accepted all 4 drafts, one with a rejection at most 3
    assert 0 <= rej <= rounds
    assert 4 * (rounds - rej) <= acc <= 4 * (rounds - rej) + 3 * rej


def _cpu_acc(**kw):
    import dataclasses

    from hardware import get_accelerator

    a = get_accelerator("h100-sxm")
    eff = dataclasses.replace(a.efficiency, gemm=None, memory=None, attention=None, **kw)
    return dataclasses.replace(a, efficiency=eff, compute_units=None)


def test_eager_attention_on_a_cpu_profile_costs_its_bmms_plus_its_score_passes():
    from sim.costs.timing import SCORE_PASSES, op_time, op_time_parts
    from sim.ops import Op

    base, serial = _cpu_acc(), _cpu_acc(attention_memory_bandwidth=0.1)
    att = Op(name="attention", kind="attention", flops=1.3e8, bytes=1e7, scores=5e5)
    fused = Op(name="attention", kind="attention", flops=1.3e8, bytes=1e7)
    passes = SCORE_PASSES * 5e5 * 4 / (serial.memory_bandwidth * 0.1)  # fp32 scores
    assert op_time(att, serial, "fp32") == pytest.approx(
        max(op_time_parts(att, serial, "fp32")) + passes + serial.efficiency.kernel_overhead_s)
    assert op_time(att, base, "fp32") == op_time(fused, serial, "fp32")  # off, or no scores
    gemm = Op(name="qkv", kind="matmul", flops=1.3e8, bytes=1e7, mnk=(512, 768, 256))
    assert op_time(gemm, serial, "fp32") == op_time(gemm, base, "fp32")


def test_the_math_path_lowering_counts_its_scores_and_the_backward_twice():
    from sim.costs.lowering import lower_layer, lower_layer_backward
    from sim.model import get_model
    from sim.plan import ParallelPlan, Shape

    m = get_model("tiny-llama")
    plan = ParallelPlan(seq_len=64, flash_attention=False)
    fwd = [o for o in lower_layer(m, 0, Shape(2, 64), plan) if o.kind == "attention"][0]
    bwd = [o for o in lower_layer_backward(m, 0, Shape(2, 64), plan) if o.kind == "attention"][0]
    assert fwd.scores == 2 * m.n_heads * 64 * 64 and bwd.scores == 2 * fwd.scores
    flash = ParallelPlan(seq_len=64, flash_attention=True)
    assert [o for o in lower_layer(m, 0, Shape(2, 64), flash) if o.kind == "attention"][0].scores == 0


def test_attention_term_round_trips_through_toml_and_is_absent_from_the_catalog(tmp_path):
    import dataclasses

    from hardware import get_accelerator, get_system, to_toml

    acc = _cpu_acc(attention_memory_bandwidth=0.12)
    acc = dataclasses.replace(acc, sources={**acc.sources, "efficiency": "test"})
    path = tmp_path / "p.toml"
    path.write_text(to_toml(dataclasses.replace(get_system("dgx-h100"), accelerator=acc)))
    assert get_system(str(path)).accelerator.efficiency.attention_memory_bandwidth == 0.12
    assert "attention_memory_bandwidth" not in to_toml(get_accelerator("h100-sxm"))


def test_attention_fit_recovers_rate_bandwidth_and_fixed_cost_and_caps_the_rate_at_peak():
    from sim.validation.calibrate import fit_attention
    from sim.validation.microbench import ATTENTION_SHAPES, attention_flops, attention_score_bytes

    names = ["attention " + "x".join(map(str, s)) for s in ATTENTION_SHAPES]
    f = np.array([attention_flops(n) for n in names])
    b = np.array([attention_score_bytes(n) for n in names])
    rate, bw, c = fit_attention(f, b, f / 60e9 + b / 5e9 + 30e-6)
    assert (rate, bw, c) == pytest.approx((60e9, 5e9, 30e-6), rel=1e-6)
    capped, bw2, _ = fit_attention(f, b, f / 60e9 + b / 5e9 + 30e-6, peak=40e9)
    assert capped == 40e9 and bw2 > 5e9  # the bytes term keeps what the capped bmms cannot


def test_the_server_clock_leaves_excluded_time_off_and_stays_continuous_across_a_rate_change(
        monkeypatch):
    from sim.validation import clock as C

    t = {"now": 10.0}
    monkeypatch.setattr(C, "now", lambda kind=None: t["now"])
    clk = C.Clock(kind="cpu", rate=2.0)
    t["now"] = 11.0
    assert clk.now() == 2.0
    t["now"] = 11.5
    clk.exclude(0.5)  # a reference timing: not the server's time
    assert clk.now() == 2.0
    clk.set_rate(1.0)
    assert clk.now() == 2.0
    t["now"] = 12.5
    assert clk.now() == 3.0


def test_the_pacer_runs_the_clock_at_the_scale_over_the_mean_reference_time(monkeypatch):
    from sim.validation import protocol, serving

    protocol.set_scale(2e-4)
    try:
        pacer = serving.Pacer("cpu", warm=3)
        pacer.times = [2e-4, 3e-4, 4e-4]  # the machine made the reference 1.5x slower on average
        assert pacer.rate() == pytest.approx(2e-4 / 3e-4)
    finally:
        protocol.set_scale(None)
