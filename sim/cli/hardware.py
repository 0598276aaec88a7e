"""``clustersim hardware list|show``: the hardware catalog (accelerators, links, systems).

``list`` prints every catalog item with its kind; ``show`` prints one item's specs (a catalog
name, or a path to a .toml file in catalog format such as one ``clustersim calibrate`` wrote).
With ``--json`` each prints exactly one JSON document (``hardware.describe`` has the fields).
"""

from __future__ import annotations

import argparse

from sim.cli.common import add_json_flag, emit_json, fmt_bytes, fmt_time, table

DESCRIPTION = """\
The hardware catalog: accelerators (peak FLOP/s per dtype, HBM, achievable efficiency), links
(bandwidth per direction, latency) and systems (GPUs per node, NVLink/PCIe fabric, NICs,
scale-out network). Every number in the catalog cites its datasheet or paper.

examples:
  clustersim hardware list
  clustersim hardware show h100-sxm
  clustersim hardware show dgx-h100 --json
  clustersim hardware show ./my-measured-node.toml     # a file in catalog format
"""


def register(subparsers) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("hardware", help="list the hardware catalog or show one item",
                              description=DESCRIPTION, formatter_class=fmt)
    sub = p.add_subparsers(dest="hardware_command", metavar="SUBCOMMAND")
    lp = sub.add_parser("list", help="every accelerator, link and system in the catalog",
                        description="List every catalog item and its kind (accelerator, link "
                        "or system).\n\nexample:\n  clustersim hardware list --json",
                        formatter_class=fmt)
    add_json_flag(lp)
    sp = sub.add_parser("show", help="one item's specs (and their sources)",
                        description="Show one catalog item: an accelerator's dense peaks, HBM "
                        "and efficiency model; a link's per-direction bandwidth and latency; "
                        "a system's node fabric, NICs and scale-out network.\n\nexamples:\n"
                        "  clustersim hardware show a100-sxm-80gb\n"
                        "  clustersim hardware show gb200-nvl72 --json", formatter_class=fmt)
    sp.add_argument("name", metavar="NAME|PATH", help="catalog name or path to a .toml file")
    add_json_flag(sp)
    p.set_defaults(func=run, _parser=p)


def run(args) -> int:
    if args.hardware_command == "list":
        return run_list(args)
    if args.hardware_command == "show":
        return run_show(args)
    args._parser.print_help()
    return 0


def run_list(args) -> int:
    from hardware import list_catalog

    items = list_catalog()
    if args.json:
        return emit_json(items)
    width = max(len(d["name"]) for d in items)
    print(f"{'name':<{width}}  kind")
    for d in items:
        print(f"{d['name']:<{width}}  {d['kind']}")
    return 0


def run_show(args) -> int:
    from hardware import get_any
    from hardware.describe import describe

    doc = describe(get_any(args.name))
    if args.json:
        return emit_json(doc)
    rows = {"accelerator": _accelerator_rows, "link": _link_rows, "system": _system_rows}
    print(table(rows[doc["kind"]](doc)))
    return 0


def _rate(v: float, unit: str) -> str:
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if v >= scale:
            return f"{v / scale:.4g} {prefix}{unit}"
    return f"{v:.4g} {unit}"


def _accelerator_rows(d: dict) -> list[tuple[str, str]]:
    e, ach = d["efficiency"], d["achievable"]
    rows = [("name", d["name"]), ("kind", "accelerator"), ("vendor", d["vendor"])]
    rows += [(f"peak {k} (dense)", f"{_rate(v, 'FLOP/s')}   achievable "
                                   f"{_rate(ach['matmul_flops'][k], 'FLOP/s')}")
             for k, v in d["peak_flops"].items()]
    rows += [
        ("HBM", fmt_bytes(d["memory_bytes"])),
        ("HBM bandwidth", f"{_rate(d['memory_bandwidth'], 'B/s')}   achievable "
                          f"{_rate(ach['memory_bandwidth'], 'B/s')}"),
        ("matmul efficiency", f"{e['matmul_max']:.2f} max, half at "
                              f"{_rate(e['matmul_half_flops'], 'FLOP')}"),
        ("attention efficiency", f"{e['attention_max']:.2f}"),
        ("kernel overhead", fmt_time(e["kernel_overhead_s"])),
    ]
    return rows


def _link_rows(d: dict) -> list[tuple[str, str]]:
    return [("name", d["name"]), ("kind", "link"),
            ("bandwidth", f"{_rate(d['bandwidth'], 'B/s')} per direction "
                          f"({_rate(d['bandwidth_bidirectional'], 'B/s')} both ways)"),
            ("latency", fmt_time(d["latency"]))]


def _system_rows(d: dict) -> list[tuple[str, str]]:
    i, o, s = d["intra_node"], d["inter_node"], d["scale_out"]
    price = d["price_per_gpu_hour"]
    return [
        ("name", d["name"]), ("kind", "system"), ("accelerator", d["accelerator"]),
        ("GPUs per node", str(d["gpus_per_node"])),
        ("intra-node", f"{i['links_per_gpu']} x {i['link']} ({i['topology']}): "
                       f"{_rate(i['bandwidth'], 'B/s')} per GPU per direction, "
                       f"{fmt_time(i['latency'])}"),
        ("inter-node", f"{o['nics_per_node']} x {o['nic_link']}: "
                       f"{_rate(o['bandwidth'], 'B/s')} per GPU per direction, "
                       f"{fmt_time(o['latency'])}"),
        ("scale-out", f"{s['topology']}, {s['nodes_per_leaf']} nodes per leaf, "
                      f"oversubscription {s['oversubscription']:g}:1"),
        ("price", f"{price:.2f} USD per GPU-hour" if price is not None else "n/a"),
    ]
