"""Serving configuration search: the highest request rate each configuration sustains
within an SLO, and the best configuration with its cost per million tokens.

Configurations: every tp * pp * replicas = N (tp at most the heads; legality from
``sim.plan_validation`` via the serving simulator), every batching policy asked for
(``disaggregated`` splits the replicas half prefill, half decode, and needs two), every max
batch. A configuration whose weights leave no room for a single KV block is out of memory.

A rate *meets the SLO* when at least ``share`` of all requests finish with TTFT <= slo_ttft
and TPOT <= slo_tpot (the goodput definition of DistServe, Zhong et al. 2024, Sec. 2.2) and
the run is not saturated (``sim.serving.results.saturation``). The same seeded workload is
replayed at every rate (arrival gaps scale as 1/rate), so the verdict is a deterministic
function of the rate; the search doubles the rate until it fails, then bisects
``iterations`` times. Branch and bound: once ``top`` configurations are known, a new one is
first simulated at the top-th best rate; if it fails there it cannot enter the top and is
not bisected (counted as ``below_top``).

Cost: ``price_per_gpu_hour`` x N GPUs / output tokens per second at the best rate, per
million output tokens.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sim.errors import ClusterSimError, ConfigError, PlanError
from sim.search.reasons import OUT_OF_MEMORY, constraint_of
from sim.search.space import divisors

POLICIES = ("continuous", "chunked", "static", "disaggregated")
MAX_DOUBLINGS = 24
MIN_RATE = 1e-3  # requests/s below which a configuration is declared unable to meet the SLO


@dataclass(frozen=True)
class Workload:
    num_requests: int = 200
    prompt_tokens: str = "512"
    output_tokens: str = "128"
    arrival: str = "poisson"
    seed: int = 0


@dataclass
class ServeSearch:
    evaluated: int = 0  # configurations simulated
    simulations: int = 0
    infeasible: Counter = field(default_factory=Counter)
    below_top: int = 0
    ranked: list = field(default_factory=list)  # dicts, best first


def configurations(model, n_gpus: int, policies, max_batches) -> list[dict]:
    out = []
    for tp in (d for d in divisors(n_gpus) if d <= model.n_heads):
        for pp in divisors(n_gpus // tp):
            replicas = n_gpus // (tp * pp)
            for policy in policies:
                if policy == "disaggregated" and replicas < 2:
                    continue
                for mb in max_batches:
                    out.append(_config(tp, pp, replicas, policy, mb))
    return out


def _config(tp, pp, replicas, policy, max_batch) -> dict:
    cfg = {"tp": tp, "pp": pp, "replicas": replicas, "policy": policy, "max_batch": max_batch}
    if policy == "disaggregated":
        cfg.update(prefill_replicas=replicas // 2, decode_replicas=replicas - replicas // 2)
    return cfg


class _Evaluator:
    """Simulates one configuration at a rate and says whether the SLO holds."""

    def __init__(self, model, system, slo_ttft, slo_tpot, share, workload, out):
        self.model, self.system, self.out = model, system, out
        self.slo = (slo_ttft, slo_tpot)
        self.share, self.workload = share, workload

    def serving_config(self, cfg: dict):
        from sim.serving.config import ServingConfig

        return ServingConfig(model=self.model.name, system=self.system.name,
                             slo_ttft_s=self.slo[0], slo_tpot_s=self.slo[1],
                             seed=self.workload.seed, **cfg)

    def run(self, cfg: dict, rate: float) -> dict:
        from sim.serving.api import simulate_serving

        w = self.workload
        self.out.simulations += 1
        res = simulate_serving(self.serving_config(cfg), model=self.model,
                               num_requests=w.num_requests, arrival_rate=rate,
                               prompt_tokens=w.prompt_tokens, output_tokens=w.output_tokens,
                               arrival=w.arrival)
        return res.summary

    def meets(self, summary: dict) -> bool:
        good = (summary["slo_attainment"] or 0.0) * summary["requests_completed"]
        return good >= self.share * self.workload.num_requests and not summary["saturated"]

    def check(self, cfg: dict) -> str | None:
        """None when the configuration can run, else its infeasibility reason."""
        from hardware import Cluster
        from sim.serving.kvcache import budget

        sc = self.serving_config(cfg)
        try:
            from sim.serving.api import check_plan

            check_plan(self.model, sc)
        except PlanError as exc:
            return constraint_of(exc)
        cluster = Cluster.for_gpus(self.system, sc.n_replicas * sc.gpus_per_replica)
        kv = budget(self.model, cluster, tp=sc.tp, pp=sc.pp, ep=sc.ep, dtype=sc.dtype,
                    block_size=sc.block_size, utilization=sc.gpu_memory_utilization)
        return OUT_OF_MEMORY if kv.blocks < 1 else None


def max_rate(ev: _Evaluator, cfg: dict, floor: float, start: float, iterations: int):
    """(highest rate verified to meet the SLO, its summary), or None when the SLO fails at
    ``floor`` (> 0: the configuration cannot beat it) or at every rate down to MIN_RATE."""
    lo = hi = None
    if floor > 0:
        s = ev.run(cfg, floor)
        if not ev.meets(s):
            return None
        lo, rate = (floor, s), floor * 2
    else:
        rate = start
    while lo is None:  # walk down from the start until a rate passes
        s = ev.run(cfg, rate)
        if ev.meets(s):
            lo = (rate, s)
        elif rate / 2 < MIN_RATE:
            return None
        else:
            hi, rate = rate, rate / 2
    rate = lo[0] * 2
    for _ in range(MAX_DOUBLINGS if hi is None else 0):  # walk up until a rate fails
        s = ev.run(cfg, rate)
        if not ev.meets(s):
            hi = rate
            break
        lo, rate = (rate, s), rate * 2
    for _ in range(iterations if hi is not None else 0):  # bisect [lo, hi)
        mid = (lo[0] + hi) / 2
        s = ev.run(cfg, mid)
        lo, hi = ((mid, s), hi) if ev.meets(s) else (lo, mid)
    return lo


def search_serve(model, system, n_gpus: int, slo_ttft: float, slo_tpot: float, *,
                 share: float = 0.9, workload: Workload | None = None,
                 policies=POLICIES, max_batches=(32, 128, 256), top: int = 3,
                 iterations: int = 5, start_rate: float = 1.0,
                 progress: bool = False) -> ServeSearch:
    """Rank serving configurations of ``model`` on ``n_gpus`` GPUs of ``system`` by the
    highest request rate meeting the SLO for ``share`` of requests."""
    from tqdm import tqdm

    _check_args(share, slo_ttft, slo_tpot, policies, top, n_gpus)
    out, workload = ServeSearch(), workload or Workload()
    ev = _Evaluator(model, system, slo_ttft, slo_tpot, share, workload, out)
    found: list[dict] = []
    for cfg in tqdm(configurations(model, n_gpus, policies, max_batches), desc="configs",
                    disable=not progress, leave=False):
        reason = ev.check(cfg)
        if reason:
            out.infeasible[reason] += 1
            continue
        out.evaluated += 1
        floor = found[top - 1]["max_rate_rps"] if len(found) >= top else 0.0
        best = max_rate(ev, cfg, floor, start_rate, iterations)
        if best is None and floor > 0:
            out.below_top += 1
            continue
        if best is None:
            out.infeasible["slo_unreachable"] += 1
            continue
        found.append(_entry(cfg, best, system, n_gpus))
        found.sort(key=lambda e: (-e["max_rate_rps"], e["order"]))
    out.ranked = [dict(e, rank=i + 1) for i, e in enumerate(found[:top])]
    return out


def _entry(cfg: dict, best, system, n_gpus: int) -> dict:
    rate, summary = best
    price = system.price_per_gpu_hour
    tps = summary.get("throughput_tokens_per_s")
    usd = price * n_gpus / 3600.0 / tps * 1e6 if price is not None and tps else None
    keep = ("goodput_requests_per_s", "slo_attainment", "throughput_tokens_per_s",
            "throughput_requests_per_s", "ttft_s", "tpot_s", "e2e_s", "requests_completed",
            "requests_rejected", "saturated", "kv_cache_peak_utilization", "preemptions")
    return {"config": cfg, "order": tuple(sorted(cfg.items())), "max_rate_rps": rate,
            "usd_per_million_output_tokens": usd, "n_gpus": n_gpus,
            **{k: summary[k] for k in keep if k in summary}}


def _check_args(share, slo_ttft, slo_tpot, policies, top, n_gpus) -> None:
    if not 0 < share <= 1:
        raise ConfigError(f"--slo-share {share}: use a fraction in (0, 1]")
    if slo_ttft <= 0 or slo_tpot <= 0:
        raise ConfigError("--slo-ttft and --slo-tpot must be > 0 seconds")
    bad = [p for p in policies if p not in POLICIES]
    if bad:
        raise ConfigError(f"--policies {bad}: choose among {', '.join(POLICIES)}")
    if top < 1 or n_gpus < 1:
        raise ConfigError("--top and --gpus must be >= 1")


def parse_workload(text: str | None) -> Workload:
    """``prompt=SPEC,output=SPEC,requests=N,arrival=SPEC,seed=N`` (any subset) -> Workload."""
    names = {"prompt": "prompt_tokens", "output": "output_tokens", "requests": "num_requests",
             "arrival": "arrival", "seed": "seed"}
    kw: dict = {}
    for item in filter(None, (text or "").split(",")):
        key, _, value = item.partition("=")
        if key.strip() not in names or not value:
            raise ConfigError(f"--workload item '{item}': use key=value with keys "
                              f"{', '.join(names)} (e.g. prompt=512,output=128,requests=200)")
        field_ = names[key.strip()]
        kw[field_] = int(value) if field_ in ("num_requests", "seed") else value.strip()
    return Workload(**kw)


__all__ = ["ClusterSimError", "POLICIES", "parse_workload", "ServeSearch", "Workload", "configurations",
           "max_rate", "search_serve"]
