"""Invariants over random valid runs (tests/invariants.py) and same-seed byte-identical reruns.

Serving: completed + rejected = submitted, p50 <= p90 <= p99, TTFT <= E2E per request, KV
utilisation in [0, 1], every latency finite. Training (analytic and DES): memory parts >= 0
summing to the memory per GPU, MFU <= HFU <= 1, breakdown <= step time. The CI runs a few
hundred examples; benchmarks/fuzz_cli.py runs 1,000+ of each.
"""

from __future__ import annotations

import fuzzkit as fk
import invariants as inv
import pytest
from hypothesis import HealthCheck, assume, given, settings

PROPS = settings(deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))


@settings(PROPS, max_examples=60)
@given(inv.serving_run())
def test_random_valid_serving_runs_keep_every_invariant(params):
    result = inv.simulate(params)
    assert inv.check_serving(result, params["run"]["num_requests"]) == []


@settings(PROPS, max_examples=200)
@given(inv.train_run())
def test_random_valid_analytic_plans_keep_every_training_invariant(params):
    doc = inv.estimate(params)
    assume(doc is not None)
    assert inv.check_train(doc) == []


@pytest.mark.slow
@settings(PROPS, max_examples=15)
@given(inv.train_run())
def test_random_valid_des_steps_keep_every_training_invariant(params):
    doc = inv.estimate(params, "des")
    assume(doc is not None)
    assert inv.check_train(doc) == []


def test_des_memory_breakdown_of_a_multi_stage_moe_plan_has_no_negative_part():
    # issue #17: the breakdown mixed stage 0's weights with the peak rank's total (other < 0)
    doc = inv.estimate({"model": "deepseek-v2-lite", "system": "mi300x-8", "gpus": 16,
                        "plan": dict(tp=2, pp=4, dp=2, ep=2, global_batch=8, seq_len=512)},
                       "des")
    mem = doc["memory_breakdown_bytes"]
    assert min(mem.values()) >= 0
    assert sum(mem.values()) == pytest.approx(doc["memory_per_gpu_bytes"], rel=1e-9)


def test_same_seed_reruns_are_byte_identical():
    assert inv.check_determinism(reps=2)


def test_a_replayed_trace_runs_with_no_workload_flags_and_keeps_its_lengths(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_time_s,prompt_tokens,output_tokens\n0.0,16,3\n0.5,40,9\n"
                     "0.7,8,1\n")
    argv = ("serve", "--trace", str(trace), "--model", "tiny-llama", "--system", "dgx-h100",
            "--tp", "1", "--policy", "continuous", "--json")
    o = fk.run_cli(argv)
    assert o.rc == 0, o.err
    import json

    doc = json.loads(o.out)
    assert doc["requests_completed"] == 3
    assert doc["config"]["sources"] == {"arrival": "trace", "num_requests": "trace",
                                        "prompt_tokens": "trace", "output_tokens": "trace"}
    assert o.err == ""


def test_an_explicit_length_with_a_trace_wins_with_a_one_line_notice(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_time_s,prompt_tokens,output_tokens\n0.0,16,3\n0.5,40,9\n")
    o = fk.run_cli(("serve", "--trace", str(trace), "--model", "tiny-llama", "--system",
                    "dgx-h100", "--tp", "1", "--policy", "continuous", "--output-tokens", "5",
                    "--json"))
    import json

    doc = json.loads(o.out)
    assert o.rc == 0 and doc["config"]["sources"]["output_tokens"] == "flag"
    assert doc["config"]["sources"]["prompt_tokens"] == "trace"
    assert o.err.count("\n") == 1 and "--output-tokens 5 overrides" in o.err
