"""``clustersim search``: which plan should I run?

``search train`` walks every legal training plan (TP, PP, DP, EP, CP, ZeRO stage, micro-batch,
schedule, virtual stages, recompute, sequence parallelism) of a model on N GPUs, counts the
infeasible ones by reason (a broken plan constraint, or out of memory), ranks the rest with
the analytic backend (optionally re-simulating the best with the DES) and explains why the
runner-up loses. ``search serve`` finds the serving configuration (TP, PP, replicas, batching
policy, max batch) that sustains the highest request rate within an SLO, and its cost.
"""

from __future__ import annotations

import argparse
import sys

from sim.cli.common import add_json_flag, emit_json, fmt_bytes, fmt_time, table
from sim.cli.flags import (
    FlagValueError,
    choice_list,
    float_flag,
    int_list,
    parse_int,
    pos_float,
    pos_int,
)
from sim.errors import ConfigError
from sim.schedules import get_schedule

MAX_GPUS, MAX_BATCH, MAX_SEQ = 2**20, 2**24, 2**24  # as sim.cli.train
SERVE_POLICIES = ("continuous", "chunked", "static", "disaggregated")  # sim.search.serve.POLICIES

TRAIN_EPILOG = """\
examples:
  clustersim search train --model llama3-70b --system dgx-h100 --gpus 64 \\
      --global-batch 512 --seq 4096 --top 5
  clustersim search train --model mixtral-8x7b --system dgx-h100 --gpus 32 \\
      --global-batch 256 --seq 4096 --objective memory --json
  clustersim search train --model llama3-8b --system dgx-h100 --gpus 8,16 \\
      --global-batch 64 --seq 4096 --objective cost --top 3 --refine des

--gpus takes one count or a comma-separated list (the cost objective then finds the cheapest
count per token). The JSON document holds `evaluated` (plans priced), `infeasible`
(reason -> count), `results` (best first, each with its plan and every field of
`clustersim train --json`) and `why_runner_up_loses`.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("search", help="search the best training plan or serving config",
                              description=__doc__, epilog=TRAIN_EPILOG.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="search_kind", metavar="KIND")
    t = sub.add_parser("train", help="rank every legal training plan",
                       description=__doc__, epilog=TRAIN_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--model", required=True, help="preset name or path to a HF config.json")
    t.add_argument("--system", required=True, help="system name from `clustersim hardware list`")
    t.add_argument("--gpus", type=int_list(1, MAX_GPUS, 16), required=True,
                   help="GPU count, or a comma-separated list")
    t.add_argument("--global-batch", type=pos_int(MAX_BATCH), required=True, help="sequences per step")
    t.add_argument("--seq", type=pos_int(MAX_SEQ), required=True, help="sequence length (tokens)")
    t.add_argument("--objective", choices=("throughput", "memory", "cost"),
                   default="throughput", help="rank by step time, memory per GPU, or USD/token")
    t.add_argument("--top", type=pos_int(1000), default=5, help="how many plans to report (default 5)")
    t.add_argument("--refine", choices=("des",), default=None,
                   help="re-simulate the top plans with the discrete-event engine and re-rank")
    add_json_flag(t)
    t.set_defaults(func=run_train)
    register_serve(sub)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def gpu_counts(text) -> list[int]:
    if isinstance(text, list):  # already parsed by int_list
        return text
    try:
        counts = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise ConfigError(f"--gpus '{text}': give a positive count or a list like 64,128")
    return sorted(set(counts))


def progress_enabled(args) -> bool:
    return not args.json and sys.stderr.isatty()


def run_train(args) -> int:
    from hardware import Cluster, get_system
    from sim.model import get_model
    from sim.search import search_train
    from sim.search.report import train_document

    model, system = get_model(args.model), get_system(args.system)
    clusters = [Cluster.for_gpus(system, n) for n in gpu_counts(args.gpus)]
    found = search_train(model, clusters, args.global_batch, args.seq,
                         objective=args.objective, top=args.top, refine=args.refine,
                         progress=progress_enabled(args))
    doc = train_document(found)
    if args.json:
        return emit_json(doc)
    print(render_train(doc))
    return 0


def short_plan(p: dict) -> str:
    s = f"tp{p['tp']} pp{p['pp']} dp{p['dp']}"
    s += "".join(f" {k}{p[k]}" for k in ("cp", "ep") if p[k] > 1)
    s += f" z{p['zero']} mb{p['micro_batch']} {p['schedule']}"
    s += f"x{p['virtual_stages']}" if get_schedule(p["schedule"]).interleaves else ""
    return s + f" rc={p['recompute']}" + (" sp" if p["sequence_parallel"] else "")


def render_train(doc: dict) -> str:
    lines = [f"{doc['space_size']:,} plans: {doc['evaluated']:,} feasible "
             f"({doc['priced']:,} timed, the rest provably outside the top), "
             f"{sum(doc['infeasible'].values()):,} infeasible"]
    lines += [f"  {n:>9,}  {k}: {doc['infeasible_reasons'][k]}"
              for k, n in doc["infeasible"].items()]
    if not doc["results"]:
        lines.append("\nno feasible plan: each one breaks a constraint or exceeds HBM; try "
                     "more GPUs or a shorter sequence")
        return "\n".join(lines)
    lines.append(f"\nbest {len(doc['results'])} by {doc['objective']}"
                 + (" (re-simulated with the DES)" if doc["refine"] == "des" else "") + ":")
    head = f"{'#':>2}  {'gpus':>5}  {'plan':<46} {'step':>10} {'MFU':>6} {'mem/GPU':>10}"
    lines.append(head)
    for r in doc["results"]:
        lines.append(f"{r['rank']:>2}  {r['n_gpus']:>5}  {short_plan(r['plan']):<46} "
                     f"{fmt_time(r['step_time_s']):>10} {r['mfu']:>6.1%} "
                     f"{fmt_bytes(r['memory_per_gpu_bytes']):>10}")
    if doc["results"]:
        w = doc["results"][0]
        rows = [(f"  {k}", fmt_time(v)) for k, v in w["time_breakdown_s"].items()]
        rows += [(f"  {k}", fmt_bytes(v)) for k, v in w["memory_breakdown_bytes"].items()]
        lines += ["\nwinner: " + short_plan(w["plan"]), table(rows),
                  f"bottleneck: {w['bottleneck']}"]
    if doc["why_runner_up_loses"]:
        lines.append("\n" + doc["why_runner_up_loses"])
    return "\n".join(lines)


SERVE_EPILOG = """\
examples:
  clustersim search serve --model llama3-8b --system dgx-h100 --gpus 8 \\
      --slo-ttft 0.5 --slo-tpot 0.05
  clustersim search serve --model llama3-70b --system dgx-h100 --gpus 8 --slo-ttft 2 \\
      --slo-tpot 0.1 --slo-share 0.99 --workload prompt=lognormal:1024:0.8,output=256 --json

The rate is bisected on a seeded workload replayed at each rate; results (best first) give
the configuration, `max_rate_rps`, its latencies and `usd_per_million_output_tokens` from the
system's price per GPU-hour.
"""


def register_serve(sub) -> None:
    s = sub.add_parser("serve", help="find the serving config with the highest rate in an SLO",
                       description=__doc__, epilog=SERVE_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--model", required=True, help="preset name or path to a HF config.json")
    s.add_argument("--system", required=True, help="system name from `clustersim hardware list`")
    s.add_argument("--gpus", type=pos_int(4096), required=True, help="GPUs to spend in total")
    s.add_argument("--slo-ttft", type=pos_float(1e6), required=True, help="time-to-first-token SLO (s)")
    s.add_argument("--slo-tpot", type=pos_float(1e6), required=True, help="time-per-output-token SLO (s)")
    s.add_argument("--slo-share", type=float_flag(0.0, 1.0, lo_open=True), default=0.9,
                   help="share of requests that must meet both SLOs (default 0.9)")
    s.add_argument("--workload", type=workload_spec, default=None, metavar="SPEC",
                   help="prompt=SPEC,output=SPEC,requests=N,arrival=SPEC,seed=N "
                        "(default prompt=512,output=128,requests=200,arrival=poisson)")
    s.add_argument("--policies", type=choice_list(SERVE_POLICIES),
                   default=("continuous", "chunked"),
                   help="batching policies to try, comma-separated, among continuous, "
                        "chunked, static, disaggregated (default continuous,chunked)")
    s.add_argument("--max-batch", type=int_list(1, 65536, 16), default=[64, 256], help="max batch sizes to try")
    s.add_argument("--top", type=pos_int(100), default=3, help="how many configurations to rank")
    s.add_argument("--iterations", type=pos_int(40), default=5, help="bisection steps per config")
    add_json_flag(s)
    s.set_defaults(func=run_serve)


def run_serve(args) -> int:
    from hardware import get_system
    from sim.model import get_model
    from sim.search.report import serve_document
    from sim.search.serve import parse_workload, search_serve

    workload = parse_workload(args.workload)
    check_serve_search_work(args, workload)
    found = search_serve(
        get_model(args.model), get_system(args.system), args.gpus, args.slo_ttft,
        args.slo_tpot, share=args.slo_share, workload=workload,
        policies=tuple(args.policies), max_batches=tuple(args.max_batch),
        top=args.top, iterations=args.iterations, progress=progress_enabled(args))
    doc = serve_document(found, args)
    if args.json:
        return emit_json(doc)
    print(render_serve(doc))
    return 0


WORKLOAD_KEYS = ("prompt", "output", "requests", "arrival", "seed")


def workload_spec(text: str) -> str:
    """argparse type of ``search serve --workload``: every key=value checked here."""
    from sim.serving.workload import ArrivalSpec, LengthSpec

    for item in filter(None, str(text).split(",")):
        key, _, value = (x.strip() for x in item.partition("="))
        if key not in WORKLOAD_KEYS or not value:
            raise FlagValueError(f"item '{item}' is not key=value with a key among "
                                 f"{', '.join(WORKLOAD_KEYS)} (e.g. prompt=512,output=128)")
        try:
            if key in ("prompt", "output"):
                LengthSpec.parse(value)
            elif key == "arrival":
                if ArrivalSpec.parse(value).kind == "trace":
                    raise ConfigError("arrival=trace needs a trace file; use poisson or gamma:CV")
            else:
                parse_int(value, 1 if key == "requests" else 0,
                          100_000 if key == "requests" else 2**32 - 1)
        except (ConfigError, ValueError) as exc:
            raise FlagValueError(f"{key}={value}: {exc}") from None
    return text


def check_serve_search_work(args, workload) -> None:
    """Refuse a serving search whose simulations would exceed the event budget."""
    from sim.cli.serve_inputs import mean_tokens
    from sim.limits import check_events

    per_run = workload.num_requests * (3 + mean_tokens(workload.output_tokens, 128.0))
    configs = len(args.policies) * len(args.max_batch) * max(1, args.gpus.bit_length()) ** 2
    runs = configs * (24 + args.iterations)  # sim.search.serve.MAX_DOUBLINGS + bisection
    check_events(runs * per_run, "this serving search",
                 "--iterations, --max-batch, --policies or requests= in --workload")


def render_serve(doc: dict) -> str:
    lines = [f"{doc['evaluated']} configurations simulated ({doc['simulations']} runs), "
             f"{doc['below_top']} below the top, infeasible: {doc['infeasible'] or 'none'}",
             f"{'#':>2}  {'tp':>3} {'pp':>3} {'repl':>4} {'policy':<14}{'max batch':>9} "
             f"{'rate (req/s)':>13} {'TTFT p90':>10} {'TPOT p90':>10} {'USD/M tok':>10}"]
    for r in doc["results"]:
        c, usd = r["config"], r["usd_per_million_output_tokens"]
        lines.append(f"{r['rank']:>2}  {c['tp']:>3} {c['pp']:>3} {c['replicas']:>4} "
                     f"{c['policy']:<14}{c['max_batch']:>9} {r['max_rate_rps']:>13.3f} "
                     f"{fmt_time(r['ttft_s']['p90']):>10} {fmt_time(r['tpot_s']['p90']):>10} "
                     f"{'-' if usd is None else f'{usd:.3f}':>10}")
    return "\n".join(lines)
