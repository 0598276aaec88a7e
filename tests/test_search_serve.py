"""Serving configuration search: bisection arithmetic, branch-and-bound equals brute force,
infeasibility reasons, cost per million tokens and the CLI contract."""

from __future__ import annotations

import json

import pytest

from hardware import get_system
from sim.cli.main import main
from sim.errors import ConfigError
from sim.model import get_model
from sim.search import serve as serve_mod
from sim.search.serve import Workload, max_rate, parse_workload, search_serve


class Threshold:
    """A fake evaluator: the SLO holds iff rate <= limit[config]."""

    def __init__(self, limits):
        self.limits, self.calls = limits, 0

    def run(self, cfg, rate):
        self.calls += 1
        return {"rate": rate, "cfg": cfg}

    def meets(self, s):
        return s["rate"] <= self.limits[s["cfg"]["tp"]]


def test_bisection_doubles_then_bisects_to_the_last_passing_rate():
    ev = Threshold({1: 37.3})
    rate, summary = max_rate(ev, {"tp": 1}, 0.0, 1.0, 5)
    # 1..32 pass, 64 fails; then 48 F, 40 F, 36 P, 38 F, 37 P
    assert (rate, ev.calls) == (37.0, 7 + 5)
    assert summary["rate"] == 37.0


def test_bisection_walks_down_when_the_start_fails_and_gives_up_below_min_rate():
    ev = Threshold({1: 0.3})
    rate, _ = max_rate(ev, {"tp": 1}, 0.0, 1.0, 3)
    # 1 F, 0.5 F, 0.25 P; up: 0.5 F; bisect [0.25, 0.5): 0.375 F, 0.3125 F, 0.28125 P
    assert rate == 0.28125
    assert max_rate(Threshold({1: 1e-4}), {"tp": 1}, 0.0, 1.0, 3) is None


def test_a_config_failing_at_the_floor_is_not_bisected():
    ev = Threshold({1: 10.0})
    assert max_rate(ev, {"tp": 1}, 12.0, 1.0, 5) is None and ev.calls == 1


def test_branch_and_bound_ranking_equals_brute_force(monkeypatch):
    limits = {(1, 1): 7.1, (1, 2): 3.0, (1, 4): 2.2, (1, 8): 1.1, (2, 1): 19.9, (2, 2): 9.0,
              (2, 4): 4.4, (4, 1): 13.0, (4, 2): 6.5, (8, 1): 19.5}
    fake = Threshold(limits)
    fake.meets = lambda s: s["rate"] <= limits[(s["cfg"]["tp"], s["cfg"]["pp"])]
    monkeypatch.setattr(serve_mod._Evaluator, "run", lambda self, cfg, rate: fake.run(cfg, rate))
    monkeypatch.setattr(serve_mod._Evaluator, "meets", lambda self, s: fake.meets(s))
    monkeypatch.setattr(serve_mod._Evaluator, "check", lambda self, cfg: None)
    found = search_serve(get_model("llama3-8b"), get_system("dgx-h100"), 8, 1.0, 0.1,
                         policies=("continuous",), max_batches=(64,), top=3, iterations=6)
    # brute force: the three highest limits are (2,1) 19.9, (8,1) 19.5, (4,1) 13.0
    assert [(r["config"]["tp"], r["config"]["pp"]) for r in found.ranked] == [
        (2, 1), (8, 1), (4, 1)]
    for r in found.ranked:
        limit = limits[(r["config"]["tp"], r["config"]["pp"])]
        assert limit * (1 - 2 ** -6) <= r["max_rate_rps"] <= limit
    # (1,8) 1.1, (2,4) 4.4 and (4,2) 6.5 fail at the top-3 floor of their turn: 2.2, 7.1, 7.1
    assert (found.evaluated, found.below_top) == (10, 3)


def test_infeasible_configs_are_counted_by_reason():
    ev = serve_mod._Evaluator(get_model("llama3-70b"), get_system("dgx-h100"), 1.0, 0.1, 0.9,
                              Workload(), serve_mod.ServeSearch())
    assert ev.check({"tp": 1, "pp": 1, "replicas": 1, "policy": "continuous",
                     "max_batch": 8}) == "out_of_memory"  # 141 GB of bf16 weights
    assert ev.check({"tp": 3, "pp": 1, "replicas": 1, "policy": "continuous",
                     "max_batch": 8}) == "constraint:heads"
    assert ev.check({"tp": 4, "pp": 1, "replicas": 1, "policy": "continuous",
                     "max_batch": 8}) is None


def test_real_search_meets_the_slo_at_its_rate_and_prices_it():
    model, system = get_model("tiny-llama"), get_system("dgx-h100")
    w = Workload(30, "32", "8")
    found = search_serve(model, system, 2, 0.05, 0.005, workload=w, policies=("continuous",),
                         max_batches=(8,), top=2, iterations=3)
    best = found.ranked[0]
    assert best["slo_attainment"] >= 0.9 and not best["saturated"]
    usd = system.price_per_gpu_hour * 2 / 3600 / best["throughput_tokens_per_s"] * 1e6
    assert best["usd_per_million_output_tokens"] == pytest.approx(usd, rel=1e-12)
    again = search_serve(model, system, 2, 0.05, 0.005, workload=w, policies=("continuous",),
                         max_batches=(8,), top=2, iterations=3)
    assert again.ranked == found.ranked


def test_workload_spec_parsing_and_errors():
    assert parse_workload("prompt=64,output=uniform:4:8,requests=50") == Workload(
        50, "64", "uniform:4:8")
    with pytest.raises(ConfigError, match="key=value"):
        parse_workload("tokens=5")
    with pytest.raises(ConfigError, match="slo-share"):
        search_serve(get_model("tiny-llama"), get_system("dgx-h100"), 1, 1.0, 1.0, share=1.5)


def test_cli_json_document(capsys):
    argv = ["search", "serve", "--model", "tiny-llama", "--system", "dgx-h100", "--gpus", "1",
            "--slo-ttft", "0.05", "--slo-tpot", "0.005", "--workload",
            "prompt=32,output=8,requests=20", "--policies", "continuous", "--max-batch", "8",
            "--iterations", "2", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["evaluated"] == 1 and doc["infeasible"] == {}
    assert doc["results"][0]["config"] == {"tp": 1, "pp": 1, "replicas": 1,
                                           "policy": "continuous", "max_batch": 8}
    assert doc["results"][0]["max_rate_rps"] > 0
