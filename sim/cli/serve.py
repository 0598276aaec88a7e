"""``clustersim serve``: what latency and throughput does a serving deployment deliver?

Simulates a stream of requests (Poisson, bursty gamma, or a replayed CSV trace) through model
replicas under a batching policy (static, continuous, chunked prefill, or disaggregated
prefill/decode pools), optionally with speculative decoding, with the paged KV cache as a hard
memory limit. Every iteration's time comes from the cost model for its actual mix of prefill
and decode tokens. Answers TTFT, TPOT and end-to-end latency percentiles, token and request
throughput, goodput under an SLO, preemptions, peak KV-cache use, and whether the system is
saturated (a backlog that keeps growing makes percentiles meaningless).
"""

from __future__ import annotations

import argparse
import sys

from sim.cli.common import add_json_flag, emit_json, fmt_time, table
from sim.cli.flags import SEED, float_flag, int_flag, pos_float, pos_int
from sim.cli.serve_inputs import (
    MAX_BATCH,
    MAX_REPLICAS,
    MAX_REQUESTS,
    MAX_SPEC_TOKENS,
    MAX_TOKENS,
    acceptance_spec,
    arrival_spec,
    length_spec,
    resolve_workload_flags,
)
from sim.cli.stack_flags import add_stack_flags, stack_from_args
from sim.serving.config import POLICY_NAMES, PREEMPTION, ROUTERS, ServingConfig

EPILOG = """\
examples:
  clustersim serve --model llama3-8b --system dgx-h100 --tp 1 --policy continuous \\
      --arrival-rate 20 --num-requests 2000 --prompt-tokens lognormal:512:1 \\
      --output-tokens lognormal:128:1
  clustersim serve --model llama3-8b --system dgx-h100 --tp 1 --policy static --max-batch 32 \\
      --arrival-rate 5 --num-requests 500 --prompt-tokens 512 --output-tokens uniform:16:512
  clustersim serve --model llama3-70b --system dgx-h100 --tp 4 --policy disaggregated \\
      --prefill-replicas 1 --decode-replicas 1 --arrival-rate 2 --num-requests 300 \\
      --prompt-tokens 2048 --output-tokens 256 --json
  clustersim serve --model llama3-8b --system dgx-h100 --tp 1 --policy continuous \\
      --draft-model tiny-llama --speculative-tokens 4 --acceptance-rate 0.7 \\
      --arrival-rate 1 --num-requests 200 --prompt-tokens 256 --output-tokens 256

SPEC is a token count (512), uniform:LO:HI, lognormal:MEAN:SIGMA (MEAN in tokens, SIGMA of
the log), or trace (lengths from --trace FILE.csv with columns
arrival_time_s,prompt_tokens,output_tokens; with --trace the arrival times are replayed unless
--arrival says otherwise). --acceptance-rate takes a rate or beta:ALPHA:BETA (per request).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="simulate serving: latency percentiles, throughput, KV cache, saturation",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = ServingConfig()
    p.add_argument("--model", required=True, help="preset name or path to a HF config.json")
    p.add_argument("--system", required=True, help="system name from `clustersim hardware list`")
    p.add_argument("--tp", type=pos_int(4096), required=True,
                   help="tensor-parallel degree per replica")
    p.add_argument("--pp", type=pos_int(4096), default=1, help="pipeline stages per replica")
    p.add_argument("--ep", type=pos_int(4096), default=1,
                   help="expert-parallel degree (MoE): ep attention groups share the experts")
    p.add_argument("--replicas", type=pos_int(MAX_REPLICAS), default=1,
                   help="replicas behind the router (disaggregated: use the two pool flags)")
    p.add_argument("--policy", required=True, choices=POLICY_NAMES)
    p.add_argument("--max-batch", type=pos_int(MAX_BATCH), default=d.max_batch,
                   help="most sequences in one iteration (static: batch size B)")
    p.add_argument("--block-size", type=pos_int(4096), default=d.block_size,
                   help="KV block, tokens")
    p.add_argument("--chunk-tokens", type=pos_int(MAX_TOKENS), default=d.chunk_tokens,
                   help="chunked: token budget per iteration")
    p.add_argument("--max-batched-tokens", type=pos_int(MAX_TOKENS), default=None,
                   metavar="N", help="tokens one iteration may batch, prefill + decode (vLLM "
                   "max_num_batched_tokens); prefill-first defaults to max(context, 2048)")
    p.add_argument("--batch-timeout", type=float_flag(0.0, 3600.0), default=d.batch_timeout_s,
                   help="static: seconds the oldest request waits for a full batch")
    p.add_argument("--arrival-rate", type=pos_float(1e7), default=None,
                   help="requests per second (required unless --trace replays arrivals)")
    p.add_argument("--arrival", type=arrival_spec, default=None,
                   help="poisson (default), gamma:CV, or trace (default with --trace)")
    p.add_argument("--num-requests", type=pos_int(MAX_REQUESTS), default=None,
                   help="requests to simulate (default with --trace: the trace's rows)")
    p.add_argument("--prompt-tokens", type=length_spec, default=None, metavar="SPEC",
                   help="prompt length SPEC (default with --trace: the trace's column)")
    p.add_argument("--output-tokens", type=length_spec, default=None, metavar="SPEC",
                   help="output length SPEC (default with --trace: the trace's column)")
    p.add_argument("--trace", default=None, metavar="FILE.csv",
                   help="replay arrivals and lengths from this CSV "
                        "(arrival_time_s,prompt_tokens,output_tokens)")
    p.add_argument("--draft-model", default=None, help="speculative decoding proposer")
    p.add_argument("--speculative-tokens", type=int_flag(0, MAX_SPEC_TOKENS), default=0,
                   metavar="K")
    p.add_argument("--acceptance-rate", type=acceptance_spec, default=d.acceptance,
                   metavar="A")
    p.add_argument("--preemption", choices=PREEMPTION, default=d.preemption)
    p.add_argument("--router", choices=ROUTERS, default=d.router)
    p.add_argument("--prefill-replicas", type=pos_int(MAX_REPLICAS), default=1,
                   help="disaggregated: prefill pool")
    p.add_argument("--decode-replicas", type=pos_int(MAX_REPLICAS), default=1,
                   help="disaggregated: decode pool")
    p.add_argument("--gpu-memory-utilization", type=float_flag(0.0, 1.0, lo_open=True),
                   default=d.gpu_memory_utilization,
                   help="share of HBM for weights + KV (rest: activation reserve)")
    p.add_argument("--slo-ttft", type=pos_float(1e6), default=d.slo_ttft_s,
                   help="goodput SLO, seconds")
    p.add_argument("--slo-tpot", type=pos_float(1e6), default=d.slo_tpot_s,
                   help="goodput SLO, seconds")
    p.add_argument("--exact-step-times", action="store_true",
                   help="price every iteration's exact shape (slow; no interpolation)")
    p.add_argument("--no-fast-forward", action="store_true",
                   help="step every decode iteration (same results as the default "
                   "fast-forward of decode-only runs, slower; for comparison)")
    p.add_argument("--requests-out", default=None, metavar="FILE.csv",
                   help="write one row per request (arrival, first token, finish, prompt "
                   "and output tokens, preemptions, replica)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--charts", default=None, metavar="DIR", help="write PNG charts here")
    add_stack_flags(p, "serving")
    add_json_flag(p)
    p.set_defaults(func=run)


def config_from_args(args) -> ServingConfig:
    return ServingConfig(
        model=args.model, system=args.system, tp=args.tp, pp=args.pp, ep=args.ep,
        replicas=args.replicas, policy=args.policy, max_batch=args.max_batch,
        block_size=args.block_size, chunk_tokens=args.chunk_tokens,
        batch_timeout_s=args.batch_timeout, preemption=args.preemption, router=args.router,
        prefill_replicas=args.prefill_replicas, decode_replicas=args.decode_replicas,
        gpu_memory_utilization=args.gpu_memory_utilization, draft_model=args.draft_model,
        speculative_tokens=args.speculative_tokens, acceptance=args.acceptance_rate,
        slo_ttft_s=args.slo_ttft, slo_tpot_s=args.slo_tpot,
        exact_step_times=args.exact_step_times, max_batched_tokens=args.max_batched_tokens,
        fast_forward=not args.no_fast_forward, seed=args.seed,
        stack=stack_from_args(args, "serving"))


def run(args) -> int:
    from sim.fileio import check_output
    from sim.serving import simulate_serving

    check_output(args.charts, "--charts", directory=True,
                 inputs=(args.trace, args.model, args.system))
    check_output(args.requests_out, "--requests-out",
                 inputs=(args.trace, args.model, args.system))
    w = resolve_workload_flags(args)
    cfg = config_from_args(args)
    result = simulate_serving(cfg, num_requests=w.num_requests,
                              arrival_rate=w.arrival_rate, prompt_tokens=w.prompt_tokens,
                              output_tokens=w.output_tokens, arrival=w.arrival,
                              trace=args.trace)
    doc = result.to_dict()
    doc["config"].update(num_requests=w.num_requests, arrival_rate=w.arrival_rate,
                         arrival=w.arrival, prompt_tokens=w.prompt_tokens,
                         output_tokens=w.output_tokens, trace=args.trace, sources=w.sources)
    if args.requests_out:
        from sim.fileio import atomic_write_text
        from sim.serving.results import request_table

        # floats as repr (shortest exact): at 250,000 s into a run 9 digits would round
        # timestamps to 1 ms, 3% of a 30 ms TTFT taken as first_token_s - arrival_s
        atomic_write_text(args.requests_out, request_table(result.requests).to_csv(
            index=False, lineterminator="\n"))
        doc["requests_out"] = args.requests_out
    if args.charts:
        from sim.plots.serving import write_charts

        doc["charts"] = write_charts(result, args.charts)
    if args.json:
        return emit_json(doc)
    sys.stdout.write(render(doc) + "\n")
    return 0


def _pcts(d: dict) -> str:
    if d["mean"] is None:
        return "-"
    return " / ".join(fmt_time(d[k]) for k in ("mean", "p50", "p90", "p99"))


def _rate(x: float | None, unit: str) -> str:
    return f"{x:.2f} {unit}" if x is not None and x == x else "-"


def render(doc: dict) -> str:
    c = doc["config"]
    rows = [
        ("deployment", f"{c['model']} on {c['system']}, tp={c['tp']} pp={c['pp']} "
                       f"ep={c['ep']}, policy={c['policy']}"),
        ("requests", f"{doc['requests_completed']} completed, "
                     f"{doc['requests_rejected']} rejected"),
        ("throughput", f"{_rate(doc['throughput_tokens_per_s'], 'output tok/s')}, "
                       f"{_rate(doc['throughput_requests_per_s'], 'req/s')}"),
        ("goodput", f"{_rate(doc['goodput_requests_per_s'], 'req/s')} within SLO"),
        ("TTFT mean/p50/p90/p99", _pcts(doc["ttft_s"])),
        ("TPOT mean/p50/p90/p99", _pcts(doc["tpot_s"])),
        ("e2e mean/p50/p90/p99", _pcts(doc["e2e_s"])),
        ("preemptions", str(doc["preemptions"])),
        ("KV cache peak", f"{100 * doc['kv_cache_peak_utilization']:.1f}% of "
                          f"{doc['kv_cache']['kv_capacity_tokens']} tokens"),
        ("saturated", "YES: backlog grows; percentiles reflect run length, not latency"
         if doc["saturated"] else "no (stable)"),
    ]
    if "speculative" in doc:
        rows.append(("tokens/verification", f"{doc['speculative']['tokens_per_verification']:.3f}"))
    for reason in doc.get("rejection_reasons", []):
        rows.append(("rejected because", reason))
    return table(rows)
