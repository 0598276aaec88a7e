"""``clustersim explore attention|kv|moe``: one cost as a knob moves (the lab's explorers).

The numbers come from ``sim.explore`` (the cost model); the lesson lab (``clustersim lab``)
draws exactly these documents and prints this command under each chart.
"""

from __future__ import annotations

import argparse

from sim.cli.common import add_json_flag, emit_json, fmt_bytes, table
from sim.cli.flags import FlagValueError, float_flag, parse_float, parse_int, pos_int

HELP = """\
Curves the lesson lab draws, as numbers: attention FLOPs and memory vs context (full,
sliding-window, dilated, linear; flash on/off), KV cache vs context (MHA/GQA/MQA/MLA), and a
MoE model against dense bodies (parameters, FLOPs/token, memory, decode speed, routing skew).

examples:
  clustersim explore attention --model llama3-8b --contexts 1024,8192,65536 --json
  clustersim explore kv --model llama3-70b --system dgx-h100 --tp 8 --contexts 4096,131072
  clustersim explore moe --model mixtral-8x7b --experts 16 --top-k 2 --zipf-s 1.2 --json
"""


def _int_list(text: str) -> list[int]:
    """Comma-separated token counts in [1, 2^24] (order kept: the chart's x axis)."""
    items = [x for x in str(text).split(",") if x.strip()]
    if not items or len(items) > 64:
        raise FlagValueError(f"'{text}' is not a comma-separated list of 1 to 64 token counts, "
                             "e.g. 1024,4096")
    return [parse_int(x, 1, 2**24) for x in items]


def _capacity(text: str) -> float | None:
    value = parse_float(text, 0.0, 1000.0)  # 0 = dropless; MoE capacity factors are ~1-2
    return None if value == 0 else value


CONTEXTS = "1024,2048,4096,8192,16384,32768,65536,131072"


def register(sub) -> None:
    p = sub.add_parser("explore", help="the lab's explorer curves: attention, KV cache, MoE",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = p.add_subparsers(dest="explorer", metavar="EXPLORER", required=True)
    a = inner.add_parser("attention", help="attention FLOPs and memory vs context")
    a.add_argument("--model", default="llama3-8b", help="model body (default llama3-8b)")
    a.add_argument("--contexts", type=_int_list, default=_int_list(CONTEXTS), metavar="N,N,...")
    a.add_argument("--window", type=pos_int(2**24), default=4096, help="sliding window, tokens")
    a.add_argument("--dilation", type=pos_int(2**16), default=8, help="dilated: every d-th key")
    a.set_defaults(func=run_attention)
    k = inner.add_parser("kv", help="KV cache vs context for MHA/GQA/MQA/MLA")
    k.add_argument("--model", default="llama3-70b")
    k.add_argument("--system", default="dgx-h100")
    k.add_argument("--tp", type=pos_int(4096), default=8, help="GPUs per replica (tensor parallel)")
    k.add_argument("--contexts", type=_int_list, default=_int_list(CONTEXTS), metavar="N,N,...")
    k.add_argument("--batch", type=pos_int(2**20), default=1, help="sequences cached")
    k.set_defaults(func=run_kv)
    m = inner.add_parser("moe", help="MoE vs dense: params, FLOPs/token, memory, decode")
    m.add_argument("--model", default="mixtral-8x7b", help="a MoE preset")
    m.add_argument("--system", default="dgx-h100")
    m.add_argument("--tp", type=pos_int(4096), default=2, help="GPUs per replica (tensor parallel)")
    m.add_argument("--experts", type=pos_int(2**16), default=8, help="routed experts per MoE layer")
    m.add_argument("--top-k", type=pos_int(2**16), default=2, help="experts per token")
    m.add_argument("--capacity-factor", type=_capacity, default=None, metavar="CF",
                   help="expert capacity factor (0 or omitted: dropless)")
    m.add_argument("--zipf-s", type=float_flag(0.0, 100.0), default=0.0, help="router skew (0 = uniform)")
    m.add_argument("--batch", type=pos_int(2**20), default=32, help="decode batch (sequences)")
    m.add_argument("--context", type=pos_int(2**24), default=4096, help="tokens per sequence")
    m.add_argument("--tokens", type=pos_int(2**24), default=4096, help="tokens routed for the load chart")
    m.set_defaults(func=run_moe)
    for parser in (a, k, m):
        add_json_flag(parser)


def run_attention(args) -> int:
    from sim.explore import attention_curves

    doc = attention_curves(args.model, args.contexts, args.window, args.dilation)
    if args.json:
        return emit_json(doc)
    rows = [(f"{label} @ {p['context']}", f"{p['attention_forward_flop'] / 1e12:.3f} TFLOP fwd, "
             f"act/layer {fmt_bytes(p['activation_bytes_per_layer_flash'])} flash / "
             f"{fmt_bytes(p['activation_bytes_per_layer_standard'])} standard")
            for label, pts in doc["series"].items() for p in pts]
    print(table(rows))
    return 0


def run_kv(args) -> int:
    from sim.explore import kv_curves

    doc = kv_curves(args.model, args.system, args.tp, args.contexts, args.batch)
    if args.json:
        return emit_json(doc)
    print(table([(f"{label} @ {p['context']}", f"{fmt_bytes(p['kv_bytes'])}, "
                  f"{fmt_bytes(p['kv_bytes_per_gpu'])}/GPU, fits {p['max_sequences']} seqs")
                 for label, s in doc["series"].items() for p in s["points"]]))
    return 0


def run_moe(args) -> int:
    from sim.explore import moe_compare

    doc = moe_compare(args.model, args.system, args.tp, args.experts, args.top_k,
                      args.capacity_factor, args.zipf_s, args.batch, args.context, args.tokens)
    if args.json:
        return emit_json(doc)
    print(table([(r["variant"], f"{r['params_total'] / 1e9:.2f}B total, "
                  f"{r['params_active'] / 1e9:.2f}B active, "
                  f"{r['forward_flop_per_token'] / 1e9:.2f} GFLOP/token, "
                  f"{r['decode_tokens_per_s']:,.0f} tok/s decode") for r in doc["rows"]]))
    r = doc["routing"]
    print(f"\nrouting {r['tokens']} tokens: busiest expert {r['busiest_expert_over_mean']:.2f}x "
          f"the mean, {100 * r['dropped_fraction']:.1f}% dropped")
    return 0
