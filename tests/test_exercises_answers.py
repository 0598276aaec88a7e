"""Every expected answer is the simulator's: patching a query changes it, and recomputing a
sample through the engines (or a closed form) gives the same number."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from sim.costs.comm import collective_time
from sim.costs.flops import forward_flops
from sim.costs.inference import forward_time
from sim.costs.memory import memory_per_gpu
from sim.des import simulate_train
from sim.exercises import check, draw_params, get_exercise, load_all
from sim.exercises.answer import Answer, cluster_of, model_of
from sim.exercises.queries_scale import plan_of
from sim.exercises.registry import QUERIES
from sim.model import count_params
from sim.plan import ParallelPlan, Shape

EXERCISES = load_all()


def expected(ex_id: str, seed=None) -> tuple[float, dict]:
    ex = get_exercise(ex_id)
    return check(ex, 1.0, seed)["expected"] * ex.scale, draw_params(ex, seed)


@pytest.mark.parametrize("ex_id", sorted(EXERCISES))
def test_expected_answer_is_whatever_the_registered_query_returns(ex_id, monkeypatch):
    ex = EXERCISES[ex_id]
    query = QUERIES[ex.quantity]
    seen = []

    def tripled(p):
        seen.append(p)
        a = query.fn(p)
        return Answer(3 * a.value, a.parts, a.bound, a.givens)

    before = check(ex, 1.0, 3)["expected"]
    monkeypatch.setitem(QUERIES, ex.quantity, replace(query, fn=tripled))
    assert check(ex, 1.0, 3)["expected"] == pytest.approx(3 * before, rel=1e-12)
    assert seen[0] == draw_params(ex, 3)


def test_adam_memory_is_sixteen_bytes_per_parameter_from_the_memory_model():
    for seed in range(4):
        value, p = expected("adam-memory", seed)
        m = memory_per_gpu(model_of(p), plan_of(p), cluster_of(p["system"], p["gpus"]))
        assert value == m.weights + m.gradients + m.optimizer
        assert value == 16 * count_params(model_of(p)).total  # 2 + 2 + 4 + 8 (ZeRO Sec. 3.1)


def test_zero3_shards_all_sixteen_bytes_over_dp():
    ex = get_exercise("zero-memory")
    for seed in range(8):
        p = draw_params(ex, seed)
        if p["zero"] == 3:
            n = count_params(model_of(p)).total
            assert expected("zero-memory", seed)[0] == pytest.approx(16 * n / p["dp"], rel=1e-3)


def test_gqa_kv_cache_matches_the_closed_form():
    for seed in range(6):
        value, p = expected("gqa-kv-cache", seed)
        m = model_of(p)
        assert value == 2 * m.n_kv_heads * m.head_dim * 2 * m.n_layers * p["seq_len"] * p["batch"]


def test_active_parameters_come_from_count_params():
    for seed in range(6):
        value, p = expected("moe-active-params", seed)
        assert value == count_params(model_of(p)).active


def test_attention_growth_is_the_ratio_of_forward_attention_flops():
    value, p = expected("attention-quadratic", 1)
    m = model_of(p)
    a = forward_flops(m, Shape(1, p["short_seq"], "prefill")).attention
    b = forward_flops(m, Shape(1, p["seq_len"], "prefill")).attention
    assert value == b / a
    n = p["seq_len"] / p["short_seq"]  # causal pairs L(L+1)/2: ratio just under n^2
    assert n * n * 0.99 < value <= n * n


def test_1f1b_bubble_is_the_closed_form_fraction():
    ex = get_exercise("bubble-schedules")
    for seed in range(8):
        p = draw_params(ex, seed)
        if p["schedule"] in ("gpipe", "1f1b"):
            pp, m = p["pp"], p["microbatches"]
            frac = expected("bubble-schedules", seed)[0]
            assert frac == pytest.approx((pp - 1) / (m + pp - 1), abs=1e-12)  # Narayanan 2021


def test_uniform_capacity_padding_is_e_times_c_over_routed_slots():
    for seed in range(6):
        value, p = expected("moe-capacity-padding", seed)
        moe = model_of(p).moe
        slots = p["tokens"] * moe.top_k
        c = math.ceil(p["capacity_factor"] * slots / moe.n_experts)  # GShard Sec. 2.2
        assert value == moe.n_experts * c / slots


def test_decode_time_and_all_reduce_come_from_the_cost_functions():
    value, p = expected("decode-kv-reads", 2)
    t = forward_time(model_of(p), cluster_of(p["system"], p["tp"]), tp=p["tp"],
                     decode_kv_lens=(p["seq_len"],) * p["batch"]).time_s
    assert value == t
    value, p = expected("allreduce-nvlink", 2)
    assert value == collective_time("all_reduce", p["gbytes"] * 1e9, range(p["gpus"]),
                                    cluster_of(p["system"], p["gpus"]))


def test_moe_step_time_is_the_des_step_under_the_skewed_router():
    value, p = expected("moe-imbalance-step", None)
    g = p["gpus"]
    plan = ParallelPlan(tp=1, dp=g, ep=g, zero=2, micro_batch=1, global_batch=g,
                        seq_len=p["seq_len"], recompute="full")
    r = simulate_train(model_of(p), plan, cluster_of(p["system"], g), seed=0, routing="zipf",
                       zipf_s=p["zipf_s"])
    assert value == r.step_time_s


def test_same_seed_gives_byte_identical_check_output():
    ex = get_exercise("continuous-batching")
    a = json.dumps(check(ex, 1.5, 4), sort_keys=True, default=str)
    b = json.dumps(check(ex, 1.5, 4), sort_keys=True, default=str)
    assert a == b


def test_zero_bubble_and_interleaving_shrink_the_bubble_as_their_closed_forms_say():
    ex = get_exercise("bubble-schedules")
    for seed in range(16):
        p = draw_params(ex, seed)
        pp, m, s = p["pp"], p["microbatches"], p["schedule"]
        ratio = {"gpipe": (pp - 1) / m, "1f1b": (pp - 1) / m,  # Narayanan et al. 2021, 2.2
                 "interleaved": (pp - 1) / (p["virtual_stages"] * m),
                 "zb-h1": (pp - 1) * (1 + 1 - 1) / (m * 3)}[s]  # Qi et al. 2024, Sec. 3.1
        assert expected("bubble-schedules", seed)[0] == pytest.approx(ratio / (1 + ratio))
