"""Training plan search: same answer as brute force, exact infeasible counts, never an
infeasible plan, and the CLI contract (`clustersim search train --json`)."""

from __future__ import annotations

import io
import json
from collections import Counter
from contextlib import redirect_stdout

import pytest

from hardware import Cluster, get_system
from sim.cli.main import main
from sim.costs.analytic import estimate_train
from sim.costs.memory import memory_per_gpu
from sim.errors import ConfigError
from sim.model import get_model
from sim.plan_validation import validate_plan
from sim.search import search_train, space
from sim.search.explain import why_runner_up_loses
from sim.search.reasons import OUT_OF_MEMORY, violation
from sim.search.report import train_document
from sim.search.train import Candidate, objective_key


def brute_force(model, cluster, global_batch: int, seq: int, objective: str):
    """Brute force, independent of the search's pruning: (infeasible Counter, every feasible Candidate ranked by the objective)."""
    infeasible, feasible = Counter(), []
    for plan in space.all_plans(model, cluster.n_gpus, global_batch, seq):
        reason = violation(model, plan, cluster.n_gpus)
        mem = memory_per_gpu(model, plan, cluster).total if reason is None else 0.0
        if reason is None and mem > cluster.accelerator.memory_bytes:
            reason = OUT_OF_MEMORY
        if reason:
            infeasible[reason] += 1
            continue
        result = estimate_train(model, plan, cluster)
        assert result.fits
        cand = Candidate(plan, result, cluster, memory=mem)
        cand.key = objective_key(objective, cand)
        feasible.append(cand)
    return infeasible, sorted(feasible, key=lambda c: c.key)


CASES = {  # name -> (model, system, gpus, global batch, seq)
    "8b-a100": ("llama3-8b", "dgx-a100-40gb", 8, 32, 4096),  # many plans out of memory
    "tiny-moe": ("tiny-moe", "dgx-h100", 8, 16, 64),  # expert parallelism in the space
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    name, system, gpus, gb, seq = CASES[request.param]
    model, cluster = get_model(name), Cluster.for_gpus(get_system(system), gpus)
    infeasible, ranked = brute_force(model, cluster, gb, seq, "throughput")
    return model, cluster, gb, seq, infeasible, ranked


def test_search_top_plans_equal_brute_force_ranking(case):
    model, cluster, gb, seq, _, ranked = case
    found = search_train(model, cluster, gb, seq, top=5)
    assert [c.plan for c in found.ranked] == [c.plan for c in ranked[:5]]
    assert [c.result.step_time_s for c in found.ranked] == [
        c.result.step_time_s for c in ranked[:5]]


def test_search_counts_equal_brute_force_counts(case):
    model, cluster, gb, seq, infeasible, ranked = case
    found = search_train(model, cluster, gb, seq, top=3)
    assert found.evaluated == len(ranked)
    assert dict(found.infeasible) == dict(infeasible)
    assert found.space_size == len(ranked) + sum(infeasible.values())
    assert found.priced < found.evaluated  # the bound spared some timings


def test_known_counts_for_llama3_8b_on_eight_a100_40gb():
    model, cluster = get_model("llama3-8b"), Cluster.for_gpus(get_system("dgx-a100-40gb"), 8)
    found = search_train(model, cluster, 32, 4096, top=1)
    assert (found.space_size, found.evaluated) == (7116, 1381)
    assert dict(found.infeasible) == {"out_of_memory": 2273, "constraint:pipeline": 792,
                                      "constraint:zero": 2670}


def test_memory_objective_equals_brute_force_on_memory_then_time():
    model, cluster = get_model("llama3-8b"), Cluster.for_gpus(get_system("dgx-a100-40gb"), 8)
    _, ranked = brute_force(model, cluster, 32, 4096, "memory")
    found = search_train(model, cluster, 32, 4096, objective="memory", top=4)
    assert [c.plan for c in found.ranked] == [c.plan for c in ranked[:4]]
    mems = [c.result.memory_per_gpu_bytes for c in found.ranked]
    assert mems == sorted(mems)


def test_results_are_never_infeasible(case):
    model, cluster, gb, seq, _, _ = case
    for cand in search_train(model, cluster, gb, seq, top=10).ranked:
        validate_plan(model, cand.plan, cluster.n_gpus)  # raises if illegal
        assert cand.result.fits
        assert cand.result.memory_per_gpu_bytes <= cluster.accelerator.memory_bytes


def test_cost_objective_picks_the_cheaper_gpu_count_per_token():
    model, system = get_model("llama3-8b"), get_system("dgx-h100")
    clusters = [Cluster.for_gpus(system, n) for n in (4, 8)]
    found = search_train(model, clusters, 32, 2048, objective="cost", top=3)
    best = found.ranked[0]
    usd = [system.price_per_gpu_hour * c.cluster.n_gpus * c.result.step_time_s / 3600
           / (32 * 2048) * 1e6 for c in found.ranked]
    assert usd == sorted(usd)
    alone = {n: search_train(model, Cluster.for_gpus(system, n), 32, 2048, top=1).ranked[0]
             for n in (4, 8)}
    cheapest = min(alone, key=lambda n: n * alone[n].result.step_time_s)
    assert best.cluster.n_gpus == cheapest
    assert best.plan == alone[cheapest].plan


def test_cost_objective_without_a_price_is_a_config_error():
    model, system = get_model("tiny-llama"), get_system("dgx-h800")
    if system.price_per_gpu_hour is not None:
        pytest.skip("dgx-h800 gained a price")
    with pytest.raises(ConfigError, match="price_per_gpu_hour"):
        search_train(model, Cluster.for_gpus(system, 8), 16, 64, objective="cost")


def test_why_runner_up_loses_names_the_largest_time_difference():
    a = {"plan": dict(tp=8, pp=1, dp=1, cp=1, ep=1, zero=0, micro_batch=1, schedule="1f1b",
                      virtual_stages=1, recompute="none", sequence_parallel=True),
         "n_gpus": 8, "step_time_s": 1.0, "memory_per_gpu_bytes": 0,
         "time_breakdown_s": {"compute": 0.9, "communication_exposed": 0.1,
                              "pipeline_bubble": 0.0}}
    b = dict(a, plan=dict(a["plan"], pp=2, tp=4), step_time_s=1.25,
             time_breakdown_s={"compute": 0.9, "communication_exposed": 0.05,
                               "pipeline_bubble": 0.3})
    text = why_runner_up_loses("throughput", a, b)
    assert text.startswith("The runner-up differs in tp 8 -> 4, pp 1 -> 2; it is 25.00% slower "
                           "(+250.0 ms per step): pipeline bubble +300.0 ms, exposed "
                           "communication -50.0 ms, compute +0.0 ms")
    assert text.endswith("the biggest difference is pipeline bubble.")


def _cli(argv: list[str]) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(argv) == 0
    return buf.getvalue()


ARGV = ["search", "train", "--model", "llama3-8b", "--system", "dgx-a100-40gb", "--gpus", "8",
        "--global-batch", "32", "--seq", "4096", "--top", "3", "--json"]


def test_cli_json_contract_and_byte_identical_reruns():
    first, second = _cli(ARGV), _cli(ARGV)
    assert first == second
    doc = json.loads(first)
    assert doc["evaluated"] == 1381
    assert doc["infeasible"] == {"constraint:pipeline": 792, "constraint:zero": 2670,
                                 "out_of_memory": 2273}
    assert doc["infeasible_by_kind"] == {"plan_constraint": 3462, "out_of_memory": 2273}
    assert [r["rank"] for r in doc["results"]] == [1, 2, 3]
    model, cluster = get_model("llama3-8b"), Cluster.for_gpus(get_system("dgx-a100-40gb"), 8)
    top = search_train(model, cluster, 32, 4096, top=1).ranked[0]
    train_doc = json.loads(json.dumps(estimate_train(model, top.plan, cluster).to_dict()))
    assert set(train_doc) <= set(doc["results"][0])
    assert doc["results"][0]["step_time_s"] == train_doc["step_time_s"]
    assert doc["why_runner_up_loses"].startswith("The runner-up differs in ")


def test_cli_text_output_shows_winner_breakdowns():
    text = _cli(ARGV[:-1])
    assert "7,116 plans: 1,381 feasible (" in text
    assert "winner: " in text and "pipeline_bubble" in text and "activations" in text


def test_train_document_counts_by_kind():
    model, cluster = get_model("tiny-moe"), Cluster.for_gpus(get_system("dgx-h100"), 8)
    doc = train_document(search_train(model, cluster, 16, 64, top=2))
    assert doc["infeasible_by_kind"] == {"plan_constraint": 2052, "out_of_memory": 0}
    assert doc["evaluated"] == 2220


def test_refine_des_resimulates_the_top_plans_and_reranks_by_simulated_time():
    model, cluster = get_model("tiny-llama"), Cluster.for_gpus(get_system("dgx-h100"), 4)
    found = search_train(model, cluster, 8, 64, top=2, refine="des")
    doc = train_document(found)
    assert doc["refine"] == "des"
    assert [r["config"]["engine"] for r in doc["results"]] == ["des", "des"]
    times = [r["step_time_s"] for r in doc["results"]]
    assert times == sorted(times)
    for r in doc["results"]:
        assert "analytic_step_time_s" in r and r["fits"]


def test_no_feasible_plan_is_an_empty_ranking_with_every_plan_counted():
    model, cluster = get_model("llama3-70b"), Cluster.for_gpus(get_system("dgx-h100"), 1)
    doc = train_document(search_train(model, cluster, 8, 4096, top=3))
    # one GPU: 4 ZeRO stages x 4 micro-batches x 3 recompute modes, all over 80 GB
    assert (doc["space_size"], doc["evaluated"], doc["infeasible"]) == (
        48, 0, {"out_of_memory": 48})
    assert doc["results"] == [] and doc["why_runner_up_loses"] is None
