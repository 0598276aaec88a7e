"""``clustersim model list|show``: the model zoo and what one model costs per token.

``show`` reports exact parameter counts (``sim.model.params``), the architecture in words, and
the forward FLOPs per token at a given sequence length and KV-cache bytes per token, both
taken from the cost model (``sim.costs``) so the numbers agree with ``clustersim train``.
"""

from __future__ import annotations

import argparse

from sim.cli.common import add_json_flag, emit_json, fmt_bytes, table
from sim.cli.flags import pos_int
from sim.errors import ConfigError

DESCRIPTION = """\
List the built-in model presets, or show one model (a preset name or a path to a Hugging Face
config.json / a directory holding one): exact parameter counts (total and active per token),
architecture, forward FLOPs per token at sequence length S and KV-cache bytes per token.

examples:
  clustersim model list
  clustersim model show llama3-8b --seq 4096
  clustersim model show mixtral-8x7b --json
  clustersim model show path/to/Meta-Llama-3-8B/        # a directory with config.json
"""


def register(subparsers) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("model", help="list model presets or show one model's size/cost",
                              description=DESCRIPTION, formatter_class=fmt)
    sub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    lp = sub.add_parser("list", help="every built-in preset with its parameter counts",
                        description="List every built-in model preset (name, dense/moe, total "
                        "and active parameters, attention kind).\n\nexample:\n  clustersim "
                        "model list --json", formatter_class=fmt)
    add_json_flag(lp)
    sp = sub.add_parser("show", help="one model: params, architecture, FLOPs/token, KV cache",
                        description=DESCRIPTION, formatter_class=fmt)
    sp.add_argument("model", metavar="NAME|PATH", help="preset name or HF config.json path")
    sp.add_argument("--seq", type=pos_int(2**24), default=2048,
                    help="sequence length S for FLOPs per token (default 2048)")
    add_json_flag(sp)
    p.set_defaults(func=run, _parser=p)


def run(args) -> int:
    if args.model_command == "list":
        return run_list(args)
    if args.model_command == "show":
        return run_show(args)
    args._parser.print_help()
    return 0


def run_list(args) -> int:
    from sim.model import get_model, list_models
    from sim.model.summary import list_row

    rows = [list_row(get_model(n)) for n in list_models()]
    if args.json:
        return emit_json({"models": rows})
    width = max(len(r["name"]) for r in rows)
    print(f"{'name':<{width}}  {'kind':<5}  {'total':>9}  {'active':>9}  attention")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['kind']:<5}  {_billions(r['params_total']):>9}  "
              f"{_billions(r['params_active']):>9}  {r['attention']}")
    return 0


def _billions(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def _flops(model, seq: int) -> dict:
    # Forward FLOPs per token from the cost model: a prefill of one sequence of S tokens
    # (LM head on the last token only), divided by S (sim.costs.flops conventions).
    from sim.costs.flops import forward_flops
    from sim.plan import Shape

    prefill = forward_flops(model, Shape(batch=1, seq=seq, phase="prefill"))
    train = forward_flops(model, Shape(batch=1, seq=seq, phase="train"))
    return {
        "flops_per_token_forward": prefill.total / seq,
        "flops_per_token_forward_breakdown": {k: v / seq for k, v in prefill.to_dict().items()},
        # training forward runs the LM head on every token: compare with 2N (Kaplan et al. 2020)
        "flops_per_token_forward_train": train.total / seq,
    }


def _kv_cache(model) -> dict:
    from sim.costs.memory import kv_cache_bytes_per_token

    return {"kv_cache_bytes_per_token": kv_cache_bytes_per_token(model, dtype_bytes=2),
            "kv_cache_dtype": "bf16"}


def show(name_or_path: str, seq: int) -> dict:
    """The ``model show --json`` document."""
    from sim.model import get_model
    from sim.model.params import count_params
    from sim.model.summary import architecture, params_by_component

    if seq <= 0:
        raise ConfigError(f"--seq must be a positive number of tokens, got {seq}")
    m = get_model(name_or_path)
    c = count_params(m)
    doc = {
        "name": m.name, "source": m.source, "params_total": c.total, "params_active": c.active,
        "n_layers": m.n_layers, "hidden": m.hidden, "n_heads": m.n_heads,
        "n_kv_heads": m.n_kv_heads, "head_dim": m.head_dim, "vocab_size": m.vocab_size,
        "seq": seq,
    }
    doc |= _flops(m, seq)
    doc |= _kv_cache(m)
    doc |= {"architecture": architecture(m), "params_by_component": params_by_component(m),
            "config": m.to_dict()}
    return doc


def run_show(args) -> int:
    doc = show(args.model, args.seq)
    if args.json:
        return emit_json(doc)
    arch = doc["architecture"]
    rows = [
        ("name", doc["name"]), ("kind", arch["kind"]),
        ("params total", f"{doc['params_total']:,}"),
        ("params active/token", f"{doc['params_active']:,}"),
        ("layers x hidden", f"{doc['n_layers']} x {doc['hidden']}"),
        ("attention", arch["attention"]), ("ffn", arch["ffn"]), ("norm", arch["norm"]),
        ("position", arch["position"]),
        (f"fwd FLOPs/token (S={doc['seq']})", f"{doc['flops_per_token_forward'] / 1e9:.3f} G"),
        ("KV cache/token (bf16)", fmt_bytes(doc["kv_cache_bytes_per_token"])),
        ("source", doc["source"]),
    ]
    if arch["moe"]:
        moe = arch["moe"]
        rows.insert(9, ("experts", f"{moe['n_experts']} routed (top-{moe['top_k']}), "
                                   f"{moe['n_shared_experts']} shared, "
                                   f"{moe['n_moe_layers']} MoE layers"))
    print(table(rows))
    return 0
