"""Requests that cannot be served are rejected at the door, with a reason count in the JSON."""

from __future__ import annotations

import json

import fuzzkit as fk


def _serve(*extra):
    o = fk.run_cli(("serve", "--model", "llama3-8b", "--system", "dgx-h100", "--tp", "1",
                    "--policy", "continuous", "--arrival-rate", "5", *extra, "--json"))
    assert o.rc == 0, o.err
    return json.loads(o.out)


def test_a_prompt_longer_than_the_context_is_rejected_not_served():
    # issue #17: 200,000 prompt tokens on an 8K-context model were served in 155 s
    doc = _serve("--num-requests", "3", "--prompt-tokens", "200000", "--output-tokens", "128")
    assert (doc["requests_completed"], doc["requests_rejected"]) == (0, 3)
    assert doc["rejection_counts"] == {"longer_than_context": 3}
    assert "8192-token context window" in doc["rejection_reasons"][0]


def test_prompt_plus_output_over_the_context_counts_each_reason():
    # 8,000 + 100 fits the 8,192 context; 8,000 + 300 does not
    doc = _serve("--num-requests", "40", "--prompt-tokens", "8000", "--output-tokens",
                 "uniform:100:300", "--seed", "3")
    counts = doc["rejection_counts"]
    assert doc["requests_rejected"] == counts["longer_than_context"] > 0
    assert doc["requests_completed"] + doc["requests_rejected"] == 40


def test_a_request_larger_than_the_whole_kv_pool_is_rejected_by_that_reason():
    o = fk.run_cli(("serve", "--model", "llama3-405b", "--system", "dgx-h100", "--tp", "8",
                    "--policy", "continuous", "--arrival-rate", "1", "--num-requests", "2",
                    "--prompt-tokens", "120000", "--output-tokens", "8", "--json"))
    doc = json.loads(o.out)
    assert doc["requests_rejected"] == 2 and set(doc["rejection_counts"]) <= {
        "longer_than_kv_pool", "no_kv_cache"}
