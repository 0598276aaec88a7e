"""``clustersim exercise``: predict a number, let the simulator answer, see the gap explained."""

from __future__ import annotations

import argparse

from sim.cli.common import add_json_flag, emit_json, table
from sim.cli.flags import SEED, float_flag

HELP = """\
Answers "is my mental model of this cost right?". Each exercise asks for one number (memory
per GPU, a step time, FLOPs, a p99 latency...) for a setup; --seed N draws your own variant
(another model, GPU, batch or context). `check` runs the simulator, compares your answer as a
ratio and explains the gap from a catalogue of typical mistakes, with a breakdown of what bound
the simulated answer.

examples:
  clustersim exercise list
  clustersim exercise show zero-memory --seed 7
  clustersim exercise check zero-memory --seed 7 --answer 35
  clustersim exercise check zero-memory --seed 7 --answer 35 --json
"""


def register(sub) -> None:
    p = sub.add_parser("exercise", help="predict-then-simulate lesson exercises",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = inner.add_parser("list", help="every exercise: id, lesson, topic, misconception tags")
    add_json_flag(ls)
    ls.set_defaults(func=run_list)
    show = inner.add_parser("show", help="print an exercise's prompt with your numbers")
    _common(show)
    show.set_defaults(func=run_show)
    chk = inner.add_parser("check", help="compare your answer with the simulator's")
    _common(chk)
    chk.add_argument("--answer", type=float_flag(-1e30, 1e30), required=True, metavar="VALUE",
                     help="your prediction, in the unit the prompt asks for")
    chk.set_defaults(func=run_check)


def _common(p) -> None:
    p.add_argument("id", metavar="ID", help="exercise id (see `clustersim exercise list`)")
    p.add_argument("--seed", type=SEED, default=None, metavar="N",
                   help="draw variant N (your own numbers); omit for the base setup")
    add_json_flag(p)


def run_list(args) -> int:
    from sim.exercises import load_all

    rows = [ex.summary() for ex in load_all().values()]
    if args.json:
        return emit_json(rows)
    print(table([(r["id"], f"{r['lesson']}: {r['topic']}"
                  + (f"  [{', '.join(r['tags'])}]" if r["tags"] else "")) for r in rows]))
    return 0


def run_show(args) -> int:
    from sim.exercises import get_exercise, show

    out = show(get_exercise(args.id), args.seed)
    if args.json:
        return emit_json(out)
    print(f"{out['id']} ({out['lesson']}: {out['topic']})\n")
    print(out["prompt"])
    print(f"\nAnswer in {out['unit']} (within {100 * out['tolerance']:.0f}%).")
    for i, hint in enumerate(out["hints"], 1):
        print(f"hint {i}: {hint}")
    return 0


def run_check(args) -> int:
    from sim.exercises import check, get_exercise

    out = check(get_exercise(args.id), args.answer, args.seed)
    if args.json:
        return emit_json(out)
    u = out["unit"]
    verdict = "correct" if out["correct"] else f"off by more than {100 * out['tolerance']:.0f}%"
    print(table([("your answer", f"{out['answer']:.4g} {u}"),
                 ("simulator", f"{out['expected']:.4g} {u}"),
                 ("ratio", f"{out['ratio']:.3f}  ({verdict})"),
                 ("signature", out["signature"] + (f"  [{out['misconception']}]"
                                                   if out["misconception"] else ""))]))
    print(f"\n{out['explanation']}")
    parts = out["breakdown"]["parts"]
    print("\nbreakdown (" + out["breakdown"]["si_unit"] + "):")
    print(table([(k, f"{v:.4g}") for k, v in parts.items()]))
    return 0
