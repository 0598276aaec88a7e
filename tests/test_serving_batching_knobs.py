"""--max-batched-tokens on every policy and the prefill-first policy, against schedules worked
out by hand. Every iteration is priced at exactly 1 s (a stub cost model), so an iteration's
end time is its index."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sim.errors import ConfigError
from sim.serving import ServingConfig, Workload, simulate_serving


def _one_second(*args, **kwargs):
    return SimpleNamespace(time_s=1.0)


def _run(policy: str, arrivals, prompts, outputs, **kw):
    w = Workload(np.asarray(arrivals, float), np.asarray(prompts), np.asarray(outputs))
    r = simulate_serving(policy=policy, workload=w, forward_time=_one_second,
                         exact_step_times=True, **kw)
    df = r.requests
    return df, (df.arrival_s + df.ttft_s).tolist(), (df.arrival_s + df.e2e_s).tolist()


def test_prefill_first_pauses_decodes_while_it_prefills_a_newcomer():
    # t0-1 prefill A; t1-2 prefill B alone (A waits); t2-3 decode A,B (B done); t3-4 A done
    _, first, finish = _run("prefill-first", [0.0, 0.5], [100, 100], [3, 2])
    assert first == [1.0, 2.0] and finish == [4.0, 3.0]


def test_continuous_mixes_the_newcomers_prefill_with_the_decodes():
    # t0-1 prefill A; t1-2 prefill B + decode A; t2-3 decode A,B: both done
    _, first, finish = _run("continuous", [0.0, 0.5], [100, 100], [3, 2])
    assert first == [1.0, 2.0] and finish == [3.0, 3.0]


def test_a_token_budget_defers_the_prompt_that_does_not_fit():
    # budget 150: t0-1 prefill A (B's 100 tokens exceed the 50 left); t1-2 decode A (1 token)
    # + prefill B (100 <= 149): A done; t2-3 decode B: done
    _, first, finish = _run("continuous", [0.0, 0.0], [100, 100], [2, 2],
                            max_batch=4, max_batched_tokens=150)
    assert first == [1.0, 2.0] and finish == [2.0, 3.0]
    _, first, finish = _run("continuous", [0.0, 0.0], [100, 100], [2, 2], max_batch=4)
    assert first == [1.0, 1.0] and finish == [2.0, 2.0]  # without it: one shared prefill


def test_prefill_first_fills_each_prefill_iteration_up_to_the_budget():
    # budget 250: t0-1 prefill A,B (200); t1-2 prefill C (A,B wait); t2-3 decode all: done
    _, first, finish = _run("prefill-first", [0.0, 0.0, 0.0], [100, 100, 100], [2, 2, 2],
                            max_batch=4, max_batched_tokens=250)
    assert first == [1.0, 1.0, 2.0] and finish == [3.0, 3.0, 3.0]


def test_chunked_uses_the_smaller_of_chunk_tokens_and_the_budget():
    # budget 60 < chunk 512: a 100-token prompt takes chunks of 60 and 40: first token at 2
    _, first, finish = _run("chunked", [0.0], [100], [2], max_batch=8, max_batched_tokens=60)
    assert first == [2.0] and finish == [3.0]


def test_static_pads_the_batch_within_the_budget():
    # budget 150 (padded prompt tokens): A and B cannot share a batch of 2 x 100
    _, first, _ = _run("static", [0.0, 0.0], [100, 100], [1, 1], max_batch=4,
                       max_batched_tokens=150, batch_timeout_s=0.0)
    assert first == [1.0, 2.0]


@pytest.mark.parametrize("policy", ["continuous", "prefill-first", "static"])
def test_a_prompt_longer_than_the_budget_is_rejected_with_the_flag_named(policy):
    df, _, _ = _run(policy, [0.0], [200], [2], max_batch=4, max_batched_tokens=150,
                    batch_timeout_s=0.0)
    assert "exceeds the 150 tokens" in df.rejected[0]
    assert "--max-batched-tokens" in df.rejected[0]


def test_prefill_first_defaults_to_vllms_budget_of_the_context_or_2048():
    df, _, _ = _run("prefill-first", [0.0, 0.0], [4096, 4097], [1, 1])  # llama3-8b: 8192
    assert list(df.rejected == "") == [True, True]
    df, _, _ = _run("prefill-first", [0.0], [9000], [1])
    assert "exceeds the 8192 tokens" in df.rejected[0]


def test_a_budget_below_the_batch_cap_is_a_config_error():
    with pytest.raises(ConfigError, match="--max-batched-tokens 8 is below --max-batch 16"):
        ServingConfig(max_batch=16, max_batched_tokens=8).validate()
