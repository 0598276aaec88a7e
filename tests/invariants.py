"""Random valid runs and the invariants every result must satisfy (serving and training).

Serving (``serving_run``): completed + rejected = submitted; p50 <= p90 <= p99 for TTFT, TPOT,
end-to-end latency and queueing delay; every latency finite and >= 0; TTFT <= E2E per request;
KV-cache utilisation (peak and mean) in [0, 1]. Training (``train_run``, analytic or DES):
memory parts are >= 0 and sum to the memory per GPU; 0 <= MFU <= HFU <= 1; the time
breakdown never exceeds the step time; every number finite. Used by
tests/test_fuzz_properties.py (CI: a few hundred runs) and benchmarks/fuzz_cli.py (1,000+).
"""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

TINY = ["tiny-llama", "tiny-gpt", "tiny-mqa", "tiny-moe", "tiny-swa", "tiny-mla"]
LENGTHS = st.one_of(st.integers(1, 96).map(str),
                    st.tuples(st.integers(1, 48), st.integers(0, 48)).map(
                        lambda t: f"uniform:{t[0]}:{t[0] + t[1]}"),
                    st.tuples(st.integers(1, 64), st.floats(0, 1.5)).map(
                        lambda t: f"lognormal:{t[0]}:{t[1]:.3f}"))


@st.composite
def serving_run(draw) -> dict:
    """Keyword arguments of ``simulate_serving`` for one small valid run."""
    policy = draw(st.sampled_from(["static", "continuous", "chunked", "disaggregated"]))
    model = draw(st.sampled_from(["tiny-llama", "tiny-gpt", "tiny-mqa", "tiny-moe"]))
    kw = dict(model=model, system=draw(st.sampled_from(["dgx-h100", "dgx-a100-80gb"])),
              tp=draw(st.sampled_from([1, 2])), policy=policy,
              max_batch=draw(st.integers(1, 48)), block_size=draw(st.sampled_from([1, 4, 16])),
              chunk_tokens=draw(st.integers(8, 256)),
              batch_timeout_s=draw(st.floats(0, 0.2)),
              preemption=draw(st.sampled_from(["recompute", "swap"])),
              router=draw(st.sampled_from(["round-robin", "least-outstanding"])),
              replicas=draw(st.integers(1, 3)), prefill_replicas=draw(st.integers(1, 2)),
              decode_replicas=draw(st.integers(1, 2)),
              gpu_memory_utilization=draw(st.floats(0.2, 0.95)),
              seed=draw(st.integers(0, 2**32 - 1)))
    if policy != "disaggregated" and draw(st.booleans()):
        kw.update(draft_model="tiny-gpt", speculative_tokens=draw(st.integers(1, 4)),
                  acceptance=draw(st.sampled_from(["0.5", "0.9", "beta:2:2", "0"])))
    run = dict(num_requests=draw(st.integers(1, 25)),
               arrival_rate=draw(st.floats(0.5, 500)), prompt_tokens=draw(LENGTHS),
               output_tokens=draw(LENGTHS),
               arrival=draw(st.sampled_from(["poisson", "gamma:0.5", "gamma:3"])))
    return {"config": kw, "run": run}


def simulate(params: dict):
    from sim.serving.api import simulate_serving
    from sim.serving.config import ServingConfig

    return simulate_serving(ServingConfig(**params["config"]), **params["run"])


def check_serving(result, submitted: int) -> list[str]:
    """Every broken serving invariant, as text (empty when all hold)."""
    doc, bad = result.to_dict(), []
    if doc["requests_completed"] + doc["requests_rejected"] != submitted:
        bad.append(f"completed {doc['requests_completed']} + rejected "
                   f"{doc['requests_rejected']} != submitted {submitted}")
    for key in ("ttft_s", "tpot_s", "e2e_s", "queueing_delay_s"):
        s = doc[key]
        if s["mean"] is None:
            continue
        vals = [s[k] for k in ("mean", "p50", "p90", "p99")]
        if not all(math.isfinite(v) and v >= 0 for v in vals):
            bad.append(f"{key} not finite/non-negative: {s}")
        elif not s["p50"] <= s["p90"] * (1 + 1e-12) + 1e-15 <= s["p99"] * (1 + 1e-9) + 2e-15:
            bad.append(f"{key} percentiles out of order: {s}")
    for key in ("kv_cache_peak_utilization", "kv_cache_mean_utilization"):
        if key in doc and not 0.0 <= doc[key] <= 1.0:
            bad.append(f"{key} = {doc[key]} outside [0, 1]")
    df = result.requests
    ok = df[df["rejected"] == ""]
    if len(ok) and not (ok["ttft_s"] <= ok["e2e_s"] * (1 + 1e-12) + 1e-15).all():
        bad.append("a request's TTFT exceeds its end-to-end latency")
    if len(ok) and not np.isfinite(ok[["ttft_s", "e2e_s"]].to_numpy(dtype=float)).all():
        bad.append("a completed request has a non-finite latency")
    return bad


MODELS = TINY + ["llama3-8b", "mixtral-8x7b", "deepseek-v2-lite", "gpt2-124m"]


@st.composite
def train_run(draw) -> dict:
    """A training plan (maybe illegal: callers skip PlanError) on a small cluster."""
    tp, pp, cp = (draw(st.sampled_from([1, 2, 4])), draw(st.sampled_from([1, 2])),
                  draw(st.sampled_from([1, 2])))
    dp = draw(st.sampled_from([1, 2, 4]))
    mb = draw(st.sampled_from([1, 2]))
    return dict(model=draw(st.sampled_from(MODELS)), system=draw(st.sampled_from(
        ["dgx-h100", "dgx-a100-80gb", "mi300x-8"])), gpus=tp * pp * dp * cp,
        plan=dict(tp=tp, pp=pp, dp=dp, cp=cp, ep=draw(st.sampled_from([1, dp])),
                  zero=draw(st.sampled_from([0, 1, 2, 3])), micro_batch=mb,
                  global_batch=dp * mb * draw(st.sampled_from([1, 2, 4])),
                  seq_len=draw(st.sampled_from([64, 256, 1024])),
                  recompute=draw(st.sampled_from(["none", "selective", "full"])),
                  sequence_parallel=draw(st.booleans()),
                  schedule=draw(st.sampled_from(["1f1b", "gpipe"])),
                  overlap=draw(st.sampled_from(["max", "sum"]))))


def estimate(params: dict, engine: str = "analytic") -> dict | None:
    """The result document, or None when the plan is illegal (PlanError)."""
    from hardware import Cluster, get_system
    from sim.errors import PlanError
    from sim.model import get_model
    from sim.plan import ParallelPlan

    model = get_model(params["model"])
    cluster = Cluster.for_gpus(get_system(params["system"]), params["gpus"])
    try:
        plan = ParallelPlan(**params["plan"])
        if engine == "des":
            from sim.des import simulate_train

            return simulate_train(model, plan, cluster, seed=1).to_dict()
        from sim.costs.analytic import estimate_train
        from sim.plan_validation import validate_plan

        validate_plan(model, plan, params["gpus"])
        return estimate_train(model, plan, cluster).to_dict()
    except PlanError:
        return None


def check_train(doc: dict) -> list[str]:
    bad = []
    mem, total = doc["memory_breakdown_bytes"], doc["memory_per_gpu_bytes"]
    if any(v < 0 or not math.isfinite(v) for v in mem.values()):
        bad.append(f"negative or non-finite memory part: {mem}")
    if abs(sum(mem.values()) - total) > 1e-6 * total + 1:
        bad.append(f"memory parts sum {sum(mem.values())} != memory per GPU {total}")
    if not 0 <= doc["mfu"] <= doc["hfu"] * (1 + 1e-12) <= 1 + 1e-9:
        bad.append(f"MFU {doc['mfu']} <= HFU {doc['hfu']} <= 1 broken")
    t = doc["time_breakdown_s"]
    if sum(t.values()) > doc["step_time_s"] * (1 + 1e-9) + 1e-12:
        bad.append(f"breakdown {sum(t.values())} s exceeds step time {doc['step_time_s']} s")
    if not (math.isfinite(doc["step_time_s"]) and doc["step_time_s"] > 0):
        bad.append(f"step time {doc['step_time_s']}")
    return bad


def _collect(strategy, check, n: int) -> tuple[int, list[str]]:
    """Run ``check`` on ``n`` drawn examples; (examples checked, failure texts)."""
    seen, failures = [0], []

    @settings(max_examples=n, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(params):
        msgs = check(params)
        assume(msgs is not None)
        seen[0] += 1
        failures.extend(f"{m} <- {json.dumps(params)[:300]}" for m in msgs)

    one()
    return seen[0], failures


def _serving_check(params):
    return check_serving(simulate(params), params["run"]["num_requests"])


def _train_check(params, engine="analytic"):
    doc = estimate(params, engine)
    return None if doc is None else check_train(doc)


def check_random_serving(n: int):
    return _collect(serving_run(), _serving_check, n)


def check_random_train(n: int):
    done, fails = _collect(train_run(), _train_check, n)
    d2, f2 = _collect(train_run(), lambda p: _train_check(p, "des"), max(1, n // 10))
    return done + d2, fails + f2


def check_determinism(reps: int = 3) -> bool:
    """Same seed, same bytes: serve and DES train JSON documents, rerun in this process."""
    import fuzzkit as fk

    runs = [(*fk.SERVE_BASE, "--seed", "7", "--json"),
            ("train", "--model", "tiny-moe", "--system", "dgx-h100", "--gpus", "2", "--tp", "1",
             "--pp", "1", "--ep", "2", "--global-batch", "4", "--seq", "64", "--engine", "des",
             "--routing", "zipf", "--seed", "3", "--json")]
    for argv in runs:
        outs = {fk.run_cli(argv).out for _ in range(reps)}
        if len(outs) != 1:
            return False
    return True
