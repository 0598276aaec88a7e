"""``clustersim train``: how fast does one training step run, does it fit, and what limits it?

Builds a ``ParallelPlan`` from the flags, a ``Cluster`` of ``--gpus`` GPUs of ``--system``, and
asks the analytic backend (``sim.costs.analytic.estimate_train``) or the discrete-event engine
(``sim.des.simulate_train``, ``--engine des``) for the step time, throughput, MFU/HFU, memory
per GPU and the bottleneck.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sim.cli.common import add_json_flag, emit_json, fmt_bytes, fmt_time, table
from sim.cli.flags import SEED, float_flag, int_flag, parse_float, parse_int, pos_int
from sim.cli.stack_flags import add_stack_flags, stack_from_args
from sim.plan import RECOMPUTE_MODES, SCHEDULES

MAX_GPUS = 2**20  # 1M GPUs: above any cluster built so far; plans beyond are refused, not tried
MAX_BATCH = 2**24  # sequences per step
MAX_SEQ = 2**24  # tokens per sequence
CHART_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")
ROUTINGS = ("uniform", "zipf", "balanced")  # sim.des.train.ROUTINGS (not imported: keeps simpy out of --help)

EPILOG = """\
examples:
  clustersim train --model llama3-70b --system dgx-h100 --gpus 64 --tp 8 --pp 4 \\
      --global-batch 512 --seq 4096 --recompute selective --sequence-parallel
  clustersim train --model mixtral-8x7b --system dgx-h100 --gpus 16 --tp 2 --ep 8 \\
      --global-batch 256 --seq 4096 --zero 1 --json
  clustersim train --model llama3-8b --system dgx-h100 --gpus 8 --tp 1 --pp 1 \\
      --global-batch 64 --seq 8192 --overlap sum      # no comm/compute overlap: upper bound
  clustersim train --model mixtral-8x7b --system dgx-h100 --gpus 8 --tp 1 --pp 1 --ep 8 \
      --global-batch 8 --seq 1024 --engine des --routing zipf --zipf-s 1.2 --seed 3 --json

--dp is inferred as gpus/(tp*pp*cp) when omitted. A plan that does not fit in memory is still
answered (fits=false, bottleneck=memory); an illegal plan (e.g. tp not dividing the heads) is
an error naming the constraint.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="estimate one training step: time, throughput, MFU, memory, bottleneck",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="preset name or path to a HF config.json")
    p.add_argument("--system", required=True, help="system name from `clustersim hardware list`")
    p.add_argument("--gpus", type=pos_int(MAX_GPUS), required=True, help="total number of GPUs")
    p.add_argument("--tp", type=pos_int(MAX_GPUS), required=True, help="tensor-parallel degree")
    p.add_argument("--pp", type=pos_int(MAX_GPUS), required=True, help="pipeline-parallel stages")
    p.add_argument("--dp", type=int_flag(0, MAX_GPUS), default=0, help="data-parallel degree (default: inferred)")
    p.add_argument("--ep", type=pos_int(MAX_GPUS), default=1, help="expert-parallel degree (MoE, within dp)")
    p.add_argument("--cp", type=pos_int(MAX_GPUS), default=1, help="context-parallel degree")
    p.add_argument("--zero", type=int_flag(0, 3), default=0, choices=(0, 1, 2, 3), help="ZeRO stage")
    p.add_argument("--micro-batch", type=pos_int(MAX_BATCH), default=1, help="sequences per microbatch")
    p.add_argument("--global-batch", type=pos_int(MAX_BATCH), required=True, help="sequences per step")
    p.add_argument("--seq", type=pos_int(MAX_SEQ), required=True, help="sequence length (tokens)")
    p.add_argument("--recompute", choices=RECOMPUTE_MODES, default="none")
    p.add_argument("--sequence-parallel", action="store_true",
                   help="shard norms/dropout activations over tp (Korthikanti et al. 2022)")
    p.add_argument("--schedule", choices=SCHEDULES, default="1f1b", help="pipeline schedule")
    p.add_argument("--virtual-stages", type=pos_int(1024), default=1,
                   help="model chunks per GPU (interleaved schedule)")
    p.add_argument("--overlap", choices=("stack", "max", "sum"), default="stack",
                   help="stack (default): what overlaps follows the software stack, with "
                        "contention; max: perfect overlap (optimistic bound); sum: no "
                        "overlap (pessimistic bound)")
    p.add_argument("--engine", choices=("analytic", "des"), default="analytic")
    p.add_argument("--trace", metavar="FILE", help="(des) write a Chrome trace of the step")
    p.add_argument("--timeline", metavar="FILE.png", help="(des) draw the per-GPU timeline")
    p.add_argument("--straggler", metavar="RANK[:FACTOR[:gpu|link]]",
                   help="(des) one slow GPU (compute x FACTOR) or slow link (bandwidth / FACTOR)"
                        ", e.g. 5:1.5 or 3:2:link")
    p.add_argument("--straggler-gpu", type=int_flag(0, MAX_GPUS), metavar="RANK",
                   help="(des) same as --straggler RANK, with --straggler-factor")
    p.add_argument("--straggler-factor", type=float_flag(0.0, 1000.0, lo_open=True), default=2.0, metavar="F",
                   help="(des) slowdown of --straggler-gpu (default 2.0)")
    p.add_argument("--routing", choices=ROUTINGS, default="uniform",
                   help="(des) MoE token routing: uniform (sampled), zipf (Zipf(--zipf-s) expert "
                        "shares, sampled) or balanced (exact even split); reported as moe_routing")
    p.add_argument("--zipf-s", type=float_flag(0.0, 100.0), default=1.0, metavar="S",
                   help="(des) Zipf exponent of --routing zipf (default 1.0; larger = more skew)")
    p.add_argument("--seed", type=SEED, default=0, metavar="N",
                   help="(des) seed of the routing draws; same seed, same timeline (default 0)")
    add_stack_flags(p, "training")
    add_json_flag(p)
    p.set_defaults(func=run)


def plan_from_args(args):
    from sim.plan import ParallelPlan

    return ParallelPlan(
        tp=args.tp, pp=args.pp, dp=args.dp, ep=args.ep, cp=args.cp, zero=args.zero,
        micro_batch=args.micro_batch, global_batch=args.global_batch, seq_len=args.seq,
        recompute=args.recompute, sequence_parallel=args.sequence_parallel,
        schedule=args.schedule, virtual_stages=args.virtual_stages, overlap=args.overlap)


def _estimate(args, model, plan, cluster) -> dict:
    if args.engine == "des":
        from sim.des import simulate_train

        opts = {}
        straggler = _straggler(args)
        if straggler is not None:
            opts["straggler"] = straggler
        result = simulate_train(model, plan, cluster, seed=args.seed, routing=args.routing,
                                zipf_s=args.zipf_s, progress=_progress(args), **opts)
        _write_des_outputs(args, result, cluster)
    else:
        from sim.costs.analytic import estimate_train

        result = estimate_train(model, plan, cluster)
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)


def _write_des_outputs(args, result, cluster) -> None:
    """``--trace`` (Perfetto JSON) and ``--timeline`` (Gantt + HBM PNG) from the DES records:
    the engine returns records, the CLI writes and draws them."""
    if getattr(args, "trace", None):
        from sim.des.trace import write_chrome_trace

        write_chrome_trace(result.ops, result.memory, args.trace)
    if getattr(args, "timeline", None):
        from sim.plots.timeline import plot_timeline

        plot_timeline(result.ops, result.memory, args.timeline,
                      capacity=cluster.accelerator.memory_bytes)


def _progress(args) -> bool:
    """A tqdm bar of simulated pipeline tasks on stderr for an interactive --engine des run."""
    import sys

    return not args.json and sys.stderr.isatty()


def _straggler(args):
    """``--straggler RANK[:FACTOR[:KIND]]`` (or ``--straggler-gpu``) as a sim.des Straggler."""
    if args.straggler is None and args.straggler_gpu is None:
        return None
    from sim.des.train import Straggler
    from sim.errors import ConfigError

    if args.straggler is None:
        return Straggler(rank=args.straggler_gpu, factor=args.straggler_factor)
    parts = args.straggler.split(":")
    try:
        if len(parts) > 3 or (len(parts) == 3 and parts[2] not in ("gpu", "link")):
            raise ValueError("KIND must be gpu or link")
        rank = parse_int(parts[0], 0, args.gpus - 1)
        factor = (parse_float(parts[1], 0.0, 1000.0, lo_open=True) if len(parts) > 1
                  else args.straggler_factor)
    except ValueError as exc:
        raise ConfigError(f"--straggler '{args.straggler}' is not RANK[:FACTOR[:gpu|link]] "
                          f"({exc}); e.g. --straggler 5:1.5", flag="--straggler") from None
    return Straggler(rank=rank, factor=factor, kind=parts[2] if len(parts) > 2 else "gpu")


def run(args) -> int:
    from hardware import Cluster, get_system
    from sim.fileio import check_output
    from sim.model import get_model
    from sim.plan_validation import resolve_plan
    from sim.stack.apply import apply_stack

    for flag in ("trace", "timeline"):
        check_output(getattr(args, flag), f"--{flag}", inputs=(args.model, args.system))
    if args.timeline and Path(args.timeline).suffix.lower() not in CHART_SUFFIXES:
        from sim.errors import FlagError

        raise FlagError(f"--timeline '{args.timeline}': end the file name with one of "
                        f"{', '.join(CHART_SUFFIXES)} (the image format)", flag="--timeline")
    if args.trace and args.timeline:
        check_output(args.trace, "--trace", inputs=(args.timeline,))
    cluster = Cluster.for_gpus(get_system(args.system), args.gpus)
    model, plan = apply_stack(get_model(args.model), resolve_plan(plan_from_args(args), args.gpus),
                              stack_from_args(args, "training"))
    if args.engine == "des":
        from sim.cli.train_limits import check_des_work

        check_des_work(model, plan, args)
    doc = _estimate(args, model, plan, cluster)
    if args.json:
        return emit_json(doc)
    print(render(doc))
    return 0


def render(doc: dict) -> str:
    cfg, t, mem = doc["config"], doc["time_breakdown_s"], doc["memory_breakdown_bytes"]
    p = cfg["plan"]
    plan = (f"tp={p['tp']} pp={p['pp']} dp={p['dp']} ep={p['ep']} cp={p['cp']} "
            f"zero={p['zero']} mb={p['micro_batch']} gb={p['global_batch']} seq={p['seq_len']} "
            f"{p['schedule']} recompute={p['recompute']} overlap={p['overlap']}"
            + (f" stack={p['stack']}" if p.get("stack") else ""))
    rows = [
        ("model", cfg["model"]["name"]), ("system", f"{cfg['system']} x {cfg['n_gpus']} GPUs"),
        ("plan", plan), ("step time", fmt_time(doc["step_time_s"])),
        ("  likely range", f"{fmt_time(doc['step_time_s_low'])} - "
                           f"{fmt_time(doc['step_time_s_high'])} (validation residuals)"),
        ("  compute", fmt_time(t["compute"])),
        ("  exposed communication", fmt_time(t["communication_exposed"])),
        ("  pipeline bubble", fmt_time(t["pipeline_bubble"])),
        ("tokens/s", f"{doc['tokens_per_s']:,.0f}"),
        ("TFLOP/s per GPU", f"{doc['tflops_per_gpu']:.1f}"),
        ("MFU / HFU", f"{doc['mfu']:.1%} / {doc['hfu']:.1%}"),
        ("memory per GPU", fmt_bytes(doc["memory_per_gpu_bytes"])
         + ("" if doc["fits"] else "  (DOES NOT FIT)")),
    ]
    rows += [(f"  {k}", fmt_bytes(v)) for k, v in mem.items()]
    rows.append(("bottleneck", doc["bottleneck"]))
    return table(rows)
