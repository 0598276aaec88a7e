"""``clustersim op``: the time of one op as clustersim prices it (for users and outside checks).

  op matmul     one GEMM (m x n x k) on an accelerator
  op layer      one transformer layer's ops on one tensor-parallel rank at T tokens
  op attention  one fused attention call (prefill or decode) over a batch of sequences
  op collective one NCCL collective over N GPUs (on K nodes)
  op iteration  one serving iteration (prefill chunks + decode tokens) of a model replica

Kernel times (matmul, layer, attention) are GPU kernel durations as a profiler reports them
(``sim.costs.timing.kernel_time``); the launch gap the simulator adds per kernel is given
separately as ``launch_overhead_s``. Collectives and iterations are end-to-end per call.
"""

from __future__ import annotations

import argparse

from hardware.kernel_models import ATTENTION_BACKENDS
from sim.cli.common import add_json_flag, emit_json, fmt_time, table
from sim.cli.flags import FlagValueError, int_flag, parse_int, pos_int

KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")
DTYPES = ("bf16", "fp16", "fp32", "fp8")
EPILOG = """\
examples:
  clustersim op matmul --accelerator a100-sxm-80gb --m 4096 --n 4096 --k 4096 --json
  clustersim op layer --model llama3-8b --accelerator h100-sxm --tokens 2048 --tp 2 --json
  clustersim op attention --model llama3-8b --accelerator a100-sxm-80gb --phase decode \\
      --batch 32 --q-len 1 --context 2048 --json
  clustersim op collective --system dgx-h100 --kind all_reduce --bytes 67108864 --gpus 8 --json
  clustersim op iteration --model llama3-8b --system dgx-a100-80gb --tp 1 \\
      --prefill-lens 512 --decode-context-lens 1000,2000 --json
"""


def len_list(text: str) -> list[int]:
    """Comma-separated token counts in order (duplicates kept: each is one sequence)."""
    items = [x for x in str(text).split(",") if x.strip()]
    if not items or len(items) > 4096:
        raise FlagValueError(f"'{text}' must be 1 to 4096 comma-separated integers in "
                             "[0, 1048576], e.g. 512,512,1024")
    return [parse_int(x, 0, 2**20) for x in items]


def register(subparsers) -> None:
    p = subparsers.add_parser("op", help="time of one op: matmul, layer, attention, collective, "
                              "iteration", description=__doc__, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="op_kind", metavar="OP")
    _matmul(sub)
    _layer(sub)
    _attention(sub)
    _collective(sub)
    _iteration(sub)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def _common(p, *, accelerator: bool = True, dtype: str = "bf16") -> None:
    if accelerator:
        p.add_argument("--accelerator", required=True, metavar="NAME",
                       help="catalog accelerator or a .toml (e.g. from clustersim calibrate)")
    p.add_argument("--dtype", choices=DTYPES, default=dtype)
    add_json_flag(p)


def _matmul(sub) -> None:
    p = sub.add_parser("matmul", help="one m x n x k GEMM")
    for dim in ("m", "n", "k"):
        p.add_argument(f"--{dim}", type=pos_int(2**24), required=True)
    _common(p)
    p.set_defaults(func=run_matmul)


def _layer(sub) -> None:
    p = sub.add_parser("layer", help="one transformer layer's ops on one TP rank")
    p.add_argument("--model", required=True)
    p.add_argument("--tokens", type=pos_int(2**22), required=True)
    p.add_argument("--tp", type=pos_int(1024), default=1)
    _common(p, dtype="fp16")
    p.set_defaults(func=run_layer)


def _attention(sub) -> None:
    p = sub.add_parser("attention", help="one fused attention call")
    p.add_argument("--model", required=True)
    p.add_argument("--phase", choices=("prefill", "decode"), required=True)
    p.add_argument("--batch", type=pos_int(2**16), required=True)
    p.add_argument("--q-len", type=pos_int(2**22), default=None,
                   help="new tokens per sequence (decode: 1)")
    p.add_argument("--context", type=int_flag(0, 2**22), required=True,
                   help="tokens already in each sequence's KV cache")
    p.add_argument("--tp", type=pos_int(1024), default=1)
    p.add_argument("--attention-kernel", choices=ATTENTION_BACKENDS, default=None,
                   help="fused kernel (a stack's attention_kernel): its fitted model where the "
                        "accelerator has one (default: the accelerator's default model)")
    _common(p, dtype="fp16")
    p.set_defaults(func=run_attention)


def _collective(sub) -> None:
    p = sub.add_parser("collective", help="one NCCL collective")
    p.add_argument("--system", required=True, metavar="NAME")
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--bytes", type=pos_int(2**44), required=True,
                   help="NCCL size: each rank's full buffer (AG output, RS input)")
    p.add_argument("--gpus", type=pos_int(2**20), required=True)
    p.add_argument("--nodes", type=pos_int(2**16), default=1)
    p.add_argument("--algorithm", choices=("auto", "ring", "tree", "hierarchical", "nvls"),
                   default="auto")
    add_json_flag(p)
    p.set_defaults(func=run_collective)


def _iteration(sub) -> None:
    p = sub.add_parser("iteration", help="one serving iteration of a model replica")
    p.add_argument("--model", required=True)
    p.add_argument("--system", required=True, metavar="NAME")
    p.add_argument("--tp", type=pos_int(1024), default=1)
    p.add_argument("--prefill-lens", type=len_list, default=[], metavar="L,L,...")
    p.add_argument("--decode-context-lens", type=len_list, default=[], metavar="C,C,...")
    _common(p, accelerator=False, dtype="fp16")
    p.set_defaults(func=run_iteration)


def _emit(args, doc: dict, rows: list[tuple[str, str]]) -> int:
    if args.json:
        return emit_json(doc)
    print(table(rows))
    return 0


def run_matmul(args) -> int:
    from sim.costs.opquery import matmul

    doc = matmul(args.accelerator, args.m, args.n, args.k, args.dtype)
    return _emit(args, doc, [("time", fmt_time(doc["time_s"])), ("bound", doc["bound"]),
                             ("achieved", f"{doc['achieved_tflops']:.1f} TFLOP/s")])


def run_layer(args) -> int:
    from sim.costs.opquery import layer

    doc = layer(args.model, args.accelerator, args.tokens, args.tp, args.dtype)
    return _emit(args, doc, [(o["name"], f"{fmt_time(o['time_s'])}  ({o['kind']})")
                             for o in doc["ops"]] + [("total", fmt_time(doc["time_s"]))])


def run_attention(args) -> int:
    from sim.costs.opquery import attention

    doc = attention(args.model, args.accelerator, args.phase, args.batch, args.q_len,
                    args.context, args.tp, args.dtype, args.attention_kernel)
    return _emit(args, doc, [("time", fmt_time(doc["time_s"])), ("bound", doc["bound"]),
                             ("attention model", str(doc["attention_model"]))])


def run_collective(args) -> int:
    from sim.costs.opquery import collective

    doc = collective(args.system, args.kind, args.bytes, args.gpus, args.nodes, args.algorithm)
    return _emit(args, doc, [("time", fmt_time(doc["time_s"])), ("algorithm", doc["algorithm"]),
                             ("bus bandwidth", f"{doc['bus_bandwidth_gbps']:.1f} GB/s")])


def run_iteration(args) -> int:
    from sim.costs.opquery import iteration

    doc = iteration(args.model, args.system, args.tp, args.prefill_lens,
                    args.decode_context_lens, args.dtype)
    return _emit(args, doc, [("time", fmt_time(doc["time_s"])), ("bound", doc["bound"])])
