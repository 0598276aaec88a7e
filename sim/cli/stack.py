"""``clustersim stack list|show``: the software-stack catalog (issue 13).

``list`` prints every stack with its kind and a one-line description; ``show`` prints one
stack's settings, each with its source (a catalog name or a path to a stack .toml file).
With ``--json`` each prints exactly one JSON document.
"""

from __future__ import annotations

import argparse

from sim.cli.common import add_json_flag, emit_json, table

DESCRIPTION = """\
Software stacks as data: which attention kernel, which fusions, what dropout, what overlaps
with what (DP buckets, ZeRO-3/FSDP prefetch, TP overlap, async pipeline p2p), which collective
algorithms, per-iteration overheads; every setting cites its source. `train` and `serve`
take --stack NAME|FILE, and a flag per setting.

examples:
  clustersim stack list
  clustersim stack show megatron-lm-2021
  clustersim stack show vllm-0.2 --json
"""


def register(subparsers) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("stack", help="list the software stacks or show one",
                              description=DESCRIPTION, formatter_class=fmt)
    sub = p.add_subparsers(dest="stack_command", metavar="SUBCOMMAND")
    lp = sub.add_parser("list", help="every stack in the catalog",
                        description="List every software stack: name, kind, description."
                        "\n\nexample:\n  clustersim stack list --json", formatter_class=fmt)
    add_json_flag(lp)
    sp = sub.add_parser("show", help="one stack's settings and their sources",
                        description="Show one stack: every setting with its source.\n\n"
                        "examples:\n  clustersim stack show megatron-core-2024\n"
                        "  clustersim stack show ./my-stack.toml --json", formatter_class=fmt)
    sp.add_argument("name", metavar="NAME|FILE", help="catalog name or path to a .toml file")
    add_json_flag(sp)
    p.set_defaults(func=run, _parser=p)


def run(args) -> int:
    if args.stack_command == "list":
        return run_list(args)
    if args.stack_command == "show":
        return run_show(args)
    args._parser.print_help()
    return 0


def run_list(args) -> int:
    from sim.stack import SERVING_DEFAULT, TRAINING_DEFAULT, list_stacks

    defaults = {TRAINING_DEFAULT, SERVING_DEFAULT}
    items = [{"name": s.name, "kind": s.kind, "default": s.name in defaults,
              "description": s.description} for s in list_stacks()]
    if args.json:
        return emit_json({"stacks": items, "default_training": TRAINING_DEFAULT,
                          "default_serving": SERVING_DEFAULT})
    rows = [(i["name"] + (" (default)" if i["default"] else ""),
             f"{i['kind']:9s} {i['description'][:90]}") for i in items]
    print(table(rows))
    return 0


def run_show(args) -> int:
    from sim.stack import FIELDS, get_stack

    stack = get_stack(args.name)
    if args.json:
        doc = stack.to_dict()
        doc["settings"] = [{"field": f.name, "key": f"{f.section}.{f.key}", "flag": f.flag,
                            "value": doc[f.name], "source": stack.source_of(f.name)}
                           for f in FIELDS if _set(stack, f)]
        return emit_json(doc)
    rows = [("name", stack.name), ("kind", stack.kind), ("description", stack.description)]
    for f in FIELDS:
        if _set(stack, f):
            value = getattr(stack, f.name)
            value = ",".join(value) if isinstance(value, tuple) else value
            rows.append((f"{f.section}.{f.key}", f"{value}    [{stack.source_of(f.name)}]"))
    print(table(rows))
    return 0


def _set(stack, f) -> bool:
    both = f.name in ("attention_kernel", "collective_algorithms")
    return both or f.serving == (stack.kind == "serving")
