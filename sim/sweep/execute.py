"""Run one sweep point and flatten its answer into one table row.

A train point goes through ``estimate_train`` (or ``simulate_train`` with ``engine = "des"``),
a serve point through ``simulate_serving``; nothing is re-derived here. The row holds the
point's parameters, its id and effective config (JSON), ``status`` ("ok" or "error"; a point
whose plan is illegal is a result, with the typed error's message), and every scalar of the
result document, nested names joined with dots (``time_breakdown_s.compute``). Lists become
JSON strings; wall-clock fields are dropped so the same point always gives the same row.
"""

from __future__ import annotations

import json

from sim.errors import ClusterSimError

DROP = {"config"}


def run_point(point) -> dict:
    """The row of ``point`` (a ``sim.sweep.spec.Point``); picklable for processes and Dask."""
    row = {"point": point.index, "point_id": point.point_id, **point.params,
           "status": "ok", "error": ""}
    try:
        doc = _train(point.params) if point.kind == "train" else _serve(point.params)
    except ClusterSimError as exc:
        return {**row, "status": "error", "error": str(exc)}
    row.update(flatten(doc))
    row["config_json"] = point.config_json()
    return row


def _train(p: dict) -> dict:
    from hardware import Cluster, get_system
    from sim.model import get_model
    from sim.plan import ParallelPlan
    from sim.plan_validation import resolve_plan

    model = get_model(p["model"])
    cluster = Cluster.for_gpus(get_system(p["system"]), p["gpus"])
    plan = resolve_plan(ParallelPlan(
        tp=p["tp"], pp=p["pp"], dp=p["dp"], ep=p["ep"], cp=p["cp"], zero=p["zero"],
        micro_batch=p["micro_batch"], global_batch=p["global_batch"], seq_len=p["seq"],
        recompute=p["recompute"], sequence_parallel=p["sequence_parallel"],
        schedule=p["schedule"], virtual_stages=p["virtual_stages"], overlap=p["overlap"]),
        p["gpus"])
    if p["engine"] == "des":
        from sim.des import simulate_train

        doc = simulate_train(model, plan, cluster, seed=p["seed"]).to_dict()
    else:
        from sim.costs.analytic import estimate_train

        doc = estimate_train(model, plan, cluster).to_dict()
    doc["plan"] = doc["config"]["plan"]  # the resolved plan (dp inferred) as columns
    return doc


def _serve(p: dict) -> dict:
    from sim.serving.api import simulate_serving
    from sim.serving.config import ServingConfig

    run = {k: p[k] for k in ("num_requests", "arrival_rate", "prompt_tokens",
                             "output_tokens", "arrival")}
    cfg = ServingConfig(**{k: v for k, v in p.items() if k not in run})
    return simulate_serving(cfg, **run).to_dict()


def flatten(doc: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if key in DROP and not prefix or key.endswith("wall_s"):
            continue
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value, sort_keys=True)
        else:
            out[name] = value
    return out
