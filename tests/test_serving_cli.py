"""``clustersim serve``: the JSON contract, the table, charts and typed errors."""

from __future__ import annotations

import json

import pytest

from sim.cli import main as cli
from sim.cli.main import main

BASE = ["serve", "--model", "llama3-8b", "--system", "dgx-h100", "--tp", "1",
        "--arrival-rate", "20", "--num-requests", "40", "--prompt-tokens", "uniform:64:512",
        "--output-tokens", "lognormal:64:0.5"]


@pytest.fixture(autouse=True)
def _only_serve(monkeypatch):
    """Build the real entry point with just this command (others may be mid-edit)."""
    monkeypatch.setattr(cli, "COMMANDS", ("serve",))


def _run(capsys, *extra):
    assert main([*BASE, *extra]) == 0
    return capsys.readouterr().out


def test_json_has_every_contract_field(capsys):
    doc = json.loads(_run(capsys, "--policy", "continuous", "--json"))
    for key in ("requests_completed", "requests_rejected", "throughput_tokens_per_s",
                "throughput_requests_per_s", "preemptions", "kv_cache_peak_utilization",
                "saturated", "config"):
        assert key in doc
    for key in ("ttft_s", "tpot_s", "e2e_s"):
        assert set(doc[key]) >= {"mean", "p50", "p90", "p99"}
    assert doc["requests_completed"] == 40 and doc["requests_rejected"] == 0
    assert isinstance(doc["saturated"], bool)
    assert doc["config"]["policy"] == "continuous" and doc["config"]["num_requests"] == 40
    assert 0 < doc["kv_cache_peak_utilization"] <= 1


def test_same_flags_same_json_bytes(capsys):
    args = ("--policy", "chunked", "--chunk-tokens", "256", "--seed", "7", "--json")
    assert _run(capsys, *args) == _run(capsys, *args)


def test_speculative_and_disaggregated_flags_reach_the_simulation(capsys):
    doc = json.loads(_run(capsys, "--policy", "disaggregated", "--draft-model", "tiny-llama",
                          "--speculative-tokens", "3", "--acceptance-rate", "0.6", "--json"))
    assert doc["speculative"]["k"] == 3 and doc["kv_transfer_s"]["count"] == 40
    assert doc["config"]["prefill_replicas"] == 1 and doc["config"]["decode_replicas"] == 1


def test_table_output_and_charts(capsys, tmp_path):
    out = _run(capsys, "--policy", "static", "--max-batch", "8", "--charts", str(tmp_path))
    assert "TTFT mean/p50/p90/p99" in out and "saturated" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "kv_and_batch_over_time.png", "latency_cdfs.png"]


@pytest.mark.parametrize(("extra", "message"), [
    (("--policy", "continuous", "--tp", "3"), "tp=3 does not divide n_heads=32"),
    (("--policy", "continuous", "--speculative-tokens", "2"), "needs --draft-model"),
    (("--policy", "continuous", "--max-batch", "0"), "--max-batch: 0 is out of range"),
    (("--policy", "continuous", "--acceptance-rate", "1.5", "--draft-model", "tiny-llama",
      "--speculative-tokens", "2"), "--acceptance-rate"),
])
def test_bad_input_is_a_one_line_error_naming_the_constraint(capsys, extra, message):
    assert main([*BASE, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_trace_replay_through_the_cli(capsys, tmp_path):
    f = tmp_path / "trace.csv"
    f.write_text("arrival_time_s,prompt_tokens,output_tokens\n0.0,100,20\n0.2,2000,50\n"
                 "0.3,50,5\n")
    argv = ["serve", "--model", "llama3-8b", "--system", "dgx-h100", "--tp", "1",
            "--policy", "continuous", "--arrival-rate", "1", "--num-requests", "3",
            "--prompt-tokens", "trace", "--output-tokens", "trace", "--trace", str(f), "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["requests_completed"] == 3 and doc["config"]["arrival"] == "trace"
    assert doc["throughput_tokens_per_s"] * doc["makespan_s"] == pytest.approx(75)
