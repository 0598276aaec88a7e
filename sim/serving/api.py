"""``simulate_serving``: the Python entry point (the CLI, scenarios and plan search call it).

It resolves the three inputs (model preset or config.json, system and cluster, serving
config), sizes each replica's KV cache from the memory model, draws the workload, builds the
SimPy world and runs it to the last request, then returns a ``ServingResult`` holding the
per-request and per-iteration DataFrames and the aggregate summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from sim.errors import ConfigError, PlanError
from sim.serving import lean, results
from sim.serving.config import ServingConfig
from sim.serving.kvcache import KVBudget, budget
from sim.serving.lean import LeanSimulation
from sim.serving.steptime import StepTimer
from sim.serving.workload import ArrivalSpec, LengthSpec, Workload, make_workload, read_trace

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class ServingResult:
    config: ServingConfig
    summary: dict
    columns: dict = field(repr=False)  # per-request arrays (``results.COLUMNS``)
    logs: list = field(repr=False)  # (replica index, IterLog) per replica
    kv: KVBudget
    _timeline: pd.DataFrame | None = field(default=None, repr=False)
    _requests: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def requests(self) -> pd.DataFrame:
        """One row per request (``results.COLUMNS``), built on first use (a run that only
        reports its summary never imports pandas)."""
        if self._requests is None:
            self._requests = results.frame(self.columns)
        return self._requests

    @property
    def timeline(self) -> pd.DataFrame:
        """One row per stepped iteration or fast-forwarded run per replica (built on first
        use: a million-request run need not hold it)."""
        if self._timeline is None:
            self._timeline = results.timeline(self.logs, self.kv.blocks)
        return self._timeline

    def to_dict(self) -> dict:
        from sim.bands import serve_band

        out = {**self.summary, "config": self.config.to_dict()}
        out.update(serve_band(out))
        return out


def _model(name_or_cfg):
    if name_or_cfg is None or not isinstance(name_or_cfg, str):
        return name_or_cfg
    from sim.model import get_model

    return get_model(name_or_cfg)


def acceptance_rates(spec: str, n: int, seed: int) -> np.ndarray:
    """Per-request acceptance rate: a fixed ``A`` or ``beta:ALPHA:BETA`` draws."""
    parts = str(spec).split(":")
    try:
        if len(parts) == 1 and 0 <= float(parts[0]) < 1:
            return np.full(n, float(parts[0]))
        if (parts[0] == "beta" and len(parts) == 3
                and all(0 < float(x) <= 1e6 for x in parts[1:])):  # finite Beta parameters
            rng = np.random.default_rng([seed, 2])
            return rng.beta(float(parts[1]), float(parts[2]), size=n)
    except ValueError:
        pass
    raise ConfigError(f"--acceptance-rate '{spec}': use a rate in [0, 1) or beta:ALPHA:BETA "
                      "with 0 < ALPHA, BETA <= 1e6", flag="--acceptance-rate")


def build_workload(cfg: ServingConfig, num_requests: int, arrival_rate: float,
                   prompt_tokens="512", output_tokens="128", arrival="poisson",
                   trace=None) -> Workload:
    table = read_trace(trace) if trace is not None else None
    spec = ArrivalSpec.parse("trace" if trace is not None and arrival is None else
                             arrival or "poisson")
    return make_workload(num_requests, arrival_rate, LengthSpec.parse(prompt_tokens),
                         LengthSpec.parse(output_tokens), arrival=spec, trace=table,
                         seed=cfg.seed)


def simulate_serving(config: ServingConfig | None = None, *, workload: Workload | None = None,
                     num_requests: int = 100, arrival_rate: float = 1.0,
                     prompt_tokens="512", output_tokens="128", arrival: str | None = None,
                     trace=None, model=None, draft=None, cluster=None, forward_time=None,
                     **overrides) -> ServingResult:
    """Simulate serving ``num_requests`` requests (or a given ``workload``).

    ``config`` fields can be overridden by keyword (``policy="chunked"``); ``model``/``draft``
    accept a ModelConfig instead of the preset named in the config, ``cluster`` a built
    ``hardware.Cluster``, and ``forward_time`` another pricing function (tests use it).
    Names are resolved here; ``serve`` does the work on the objects.
    """
    cfg = replace(config or ServingConfig(), **overrides).validate()
    target, plan, cluster, small = resolve(cfg, model=model, draft=draft, cluster=cluster)
    if workload is None:
        workload = build_workload(cfg, num_requests, arrival_rate, prompt_tokens,
                                  output_tokens, arrival, trace)
    return serve(target, plan, cluster, cfg, workload, draft=small, forward_time=forward_time)


def resolve(cfg: ServingConfig, *, model=None, draft=None, cluster=None) -> tuple:
    """(model, plan, cluster, draft) objects for a configuration: presets looked up by name
    unless given, the plan from the config's tp/pp/ep/dtype, the cluster sized to hold every
    replica's GPUs."""
    target, small = _model(model or cfg.model), _model(draft or cfg.draft_model)
    check_plan(target, cfg)  # before sizing a cluster for it: the plan error is the clearer
    if cluster is None:
        from hardware import Cluster

        cluster = Cluster.for_gpus(cfg.system, cfg.n_replicas * cfg.gpus_per_replica)
    return target, cfg.plan(), cluster, small


def serve(model, plan, cluster, config: ServingConfig, workload: Workload, *, draft=None,
          forward_time=None) -> ServingResult:
    """Serve ``workload`` with ``model`` laid out by ``plan`` (tp, pp, ep, dtype of one
    replica) on ``cluster``, batching and deploying as ``config`` says (as training takes
    model, plan and cluster objects)."""
    cfg = replace(config, tp=plan.tp, pp=plan.pp, ep=plan.ep, dtype=plan.dtype).validate()
    check_plan(model, cfg)
    if draft is not None:
        try:
            check_plan(draft, replace(cfg, ep=1))
        except PlanError as exc:  # the draft shares the target's tp/pp: say which model broke
            raise PlanError(f"--draft-model {draft.name}: {exc} (the draft runs with the "
                            "target's --tp/--pp; pick a draft whose heads they divide)",
                            flag="--draft-model") from None
    kv = budget(model, cluster, tp=cfg.tp, pp=cfg.pp, ep=cfg.ep, dtype=cfg.dtype,
                block_size=cfg.block_size, utilization=cfg.gpu_memory_utilization, draft=draft)
    timer = StepTimer(model, cluster, tp=cfg.tp, pp=cfg.pp, ep=cfg.ep, dtype=cfg.dtype,
                      exact=cfg.exact_step_times, draft=draft, spec_k=cfg.speculative_tokens,
                      forward_time=forward_time, stack=cfg.stack)
    return run_simulation(cfg, workload, timer, kv, cluster)


def check_plan(model, cfg: ServingConfig) -> None:
    """tp must divide the heads, pp fit the layers, ep divide the experts (PlanError)."""
    from sim.plan_validation import validate_plan

    validate_plan(model, cfg.plan(), cfg.gpus_per_replica)


def run_simulation(cfg: ServingConfig, workload: Workload, timer, kv: KVBudget,
                   cluster=None) -> ServingResult:
    """Run the workload on the engine for this configuration (``engine_for``)."""
    acc = acceptance_rates(cfg.acceptance, len(workload), cfg.seed)
    if engine_for(cfg, timer) == "lean":
        sim = LeanSimulation(cfg, timer, kv.blocks)
        cols = results.columns(sim.run(
            workload.arrival_s, workload.prompt_tokens, workload.output_tokens))
    else:
        from sim.serving.engine import Simulation
        from sim.serving.request import Request

        cols = (workload.arrival_s, workload.prompt_tokens, workload.output_tokens, acc)
        reqs = [Request(i, t, p, o, a) for i, (t, p, o, a) in enumerate(
            zip(*(np.asarray(c).tolist() for c in cols), strict=True))]
        sim = Simulation(cfg, timer, kv.blocks, kv.kv_bytes_per_token, cluster)
        sim.run(reqs)
        cols = results.records(sim.done, sim.rejected)
    logs = [(r.idx, r.log) for r in sim.replicas]
    extra = _extra(sim, kv, timer)
    extra.update(results.iteration_means(logs, kv.blocks))
    summary = results.summarize(cols, cfg, extra)
    return ServingResult(cfg, summary, cols, logs, kv)


def engine_for(cfg: ServingConfig, timer) -> str:
    """The one dispatch point: ``lean`` (``sim.serving.lean``: no SimPy, closed-form runs)
    where it reproduces the SimPy engine, else ``simpy`` (every policy and deployment; with
    ``--no-fast-forward`` it steps every iteration, the reference both are tested against)."""
    return "lean" if lean.supports(cfg, timer) else "simpy"


def _extra(sim, kv: KVBudget, timer) -> dict:
    peak = max(r.pool.peak for r in sim.replicas)
    steps = sum(r.spec_steps for r in sim.replicas)
    out = {
        "kv_cache_peak_utilization": peak / kv.blocks if kv.blocks else 0.0,
        "kv_cache": kv.to_dict(),
        "iterations": sum(r.log.iterations for r in sim.replicas),
        "step_time_cache": {"entries": len(timer.cache), "cost_model_calls": timer.calls},
    }
    if sim.spec_k:
        out["speculative"] = {
            "k": sim.spec_k, "verification_steps": steps,
            "tokens_per_verification": sum(r.spec_tokens for r in sim.replicas) / steps
            if steps else None,
        }
    if sim.transfers:
        secs = [s for _, s in sim.transfers]
        out["kv_transfer_s"] = {"count": len(secs), "mean": float(np.mean(secs)),
                                "total": float(np.sum(secs))}
    return out
