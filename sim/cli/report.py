"""``clustersim report``: run every scenario and write the browsable gallery reports/index.md."""

from __future__ import annotations

import argparse
import sys

from sim.cli.common import add_json_flag, emit_json, table

HELP = """\
Answers "what do the built-in what-if scenarios show?": runs every script in scenarios/
(MoE vs dense, attention cost vs context, KV cache, parallelism for 70B, pipeline bubbles,
batching, speculative decoding, ...), writes each one's table, charts, summary and config into
DIR/<scenario>/ and a gallery DIR/index.md with every chart and its generated takeaway.

examples:
  clustersim report                          # all scenarios into reports/
  clustersim report --only moe_vs_dense      # one scenario (index.md keeps the others)
  clustersim report --out /tmp/r --json      # machine-readable summary of the run
"""


def register(sub) -> None:
    p = sub.add_parser("report", help="run every scenario and write reports/index.md",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output directory (default: the repository's reports/)")
    p.add_argument("--only", metavar="NAME", nargs="+", default=None,
                   help="run only these scenarios (file names in scenarios/ without .py)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from sim.fileio import check_output
    from sim.report.runner import run_report

    check_output(args.out, "--out", directory=True)
    progress = not args.json and sys.stderr.isatty()
    summary = run_report(args.out, args.only, progress=progress)
    status = 1 if summary["failed"] else 0
    if args.json:
        for r in summary["scenarios"]:
            r.pop("traceback", None)
        emit_json(summary)
        return status
    rows = [(r["name"], f"{r['seconds']:.1f} s" + ("" if r["ok"] else f"  FAILED {r['error']}"))
            for r in summary["scenarios"]]
    print(table(rows))
    print(f"\nindex: {summary['index']}")
    for r in summary["scenarios"]:
        if not r["ok"]:
            print(r["traceback"], file=sys.stderr)
    return status
