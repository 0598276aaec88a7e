"""The search's JSON documents: what ``clustersim search ... --json`` prints.

Numbers only, no wall-clock timings, so the same search gives the same bytes every time
(the benchmark measures speed)."""

from __future__ import annotations

from sim.search.explain import why_runner_up_loses
from sim.search.reasons import DESCRIPTIONS, OUT_OF_MEMORY
from sim.search.train import TrainSearch, usd_per_million_tokens


def candidate_document(rank: int, cand) -> dict:
    """The plan, its GPU count and cost, then every field of ``clustersim train --json``."""
    doc = {"rank": rank, "n_gpus": cand.cluster.n_gpus, "plan": cand.plan.to_dict(),
           "usd_per_million_tokens": usd_per_million_tokens(cand.result, cand.plan,
                                                            cand.cluster)}
    doc.update(cand.result.to_dict())
    return doc


def train_document(found: TrainSearch) -> dict:
    results = [candidate_document(i + 1, c) for i, c in enumerate(found.ranked)]
    infeasible = dict(sorted(found.infeasible.items()))
    kinds = {"plan_constraint": sum(n for k, n in infeasible.items() if k.startswith("constraint")),
             "out_of_memory": sum(n for k, n in infeasible.items() if k.startswith(OUT_OF_MEMORY))}
    why = (why_runner_up_loses(found.objective, results[0], results[1])
           if len(results) > 1 else None)
    worse = next((r for r in results[1:] if r["step_time_s"] != results[0]["step_time_s"]
                  and found.objective != "memory"), None)
    if why and "ties" in why and worse is not None:
        why += (f" The first plan that is not tied (#{worse['rank']}): "
                + why_runner_up_loses(found.objective, results[0], worse)[4:])
    return {"objective": found.objective, "space_size": found.space_size,
            "evaluated": found.evaluated, "priced": found.priced, "infeasible": infeasible,
            "infeasible_by_kind": kinds,
            "infeasible_reasons": {k: DESCRIPTIONS.get(k, "out of memory in the DES")
                                   for k in infeasible},
            "refine": found.refined, "results": results, "why_runner_up_loses": why}


def serve_document(found, args) -> dict:
    """``clustersim search serve --json``: the SLO asked, counts, ranked configurations."""
    return {"slo": {"ttft_s": args.slo_ttft, "tpot_s": args.slo_tpot, "share": args.slo_share},
            "model": args.model, "system": args.system, "n_gpus": args.gpus,
            "evaluated": found.evaluated, "simulations": found.simulations,
            "below_top": found.below_top, "infeasible": dict(sorted(found.infeasible.items())),
            "results": [{k: v for k, v in e.items() if k != "order"} for e in found.ranked]}
