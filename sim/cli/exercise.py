"""``clustersim exercise``: predict a number, let the simulator answer, see the gap explained."""

from __future__ import annotations

import argparse

from sim.cli.common import add_json_flag, emit_json, table
from sim.cli.flags import SEED, int_flag

HELP = """\
Answers "is my mental model of this cost right?". Each exercise asks for one number (memory
per GPU, a step time, FLOPs, a p99 latency...) for a setup whose every needed number the prompt
gives; --seed N draws your own variant (another model, GPU, batch or context). `check` runs the
simulator, compares your answer and names the mistake it matches (or says how far off it is);
`hint` reveals hints one level at a time; `solve` prints the worked solution from the givens.
Answers may carry a unit or a percent sign ("320 GiB", "50%", "12 ms").

examples:
  clustersim exercise list
  clustersim exercise show zero-memory --seed 7
  clustersim exercise hint zero-memory --seed 7 --level 1
  clustersim exercise check zero-memory --seed 7 --answer "35 GiB"
  clustersim exercise solve zero-memory --seed 7 --json
"""


def register(sub) -> None:
    p = sub.add_parser("exercise", help="predict-then-simulate lesson exercises",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = inner.add_parser("list", help="every exercise in lesson order: id, topic, difficulty")
    add_json_flag(ls)
    ls.set_defaults(func=run_list)
    show = inner.add_parser("show", help="print an exercise's prompt with your numbers")
    _common(show)
    show.set_defaults(func=run_show)
    chk = inner.add_parser("check", help="compare your answer with the simulator's")
    _common(chk)
    chk.add_argument("--answer", required=True, metavar="VALUE",
                     help='your prediction in the unit the prompt asks for; a unit or percent '
                          'sign may follow ("320 GiB", "50%%", "12 ms")')
    chk.set_defaults(func=run_check)
    sol = inner.add_parser("solve", help="the worked solution from the prompt's givens")
    _common(sol)
    sol.set_defaults(func=run_solve)
    hnt = inner.add_parser("hint", help="one hint level at a time (1 = gentlest)")
    _common(hnt)
    hnt.add_argument("--level", type=int_flag(1, 64), default=1, metavar="K",
                     help="hint level K, 1..(levels); shows levels 1..K (default 1)")
    hnt.set_defaults(func=run_hint)


def _common(p) -> None:
    p.add_argument("id", metavar="ID", help="exercise id (see `clustersim exercise list`)")
    p.add_argument("--seed", type=SEED, default=None, metavar="N",
                   help="draw variant N (your own numbers); omit for the base setup")
    add_json_flag(p)


def run_list(args) -> int:
    from sim.exercises import list_exercises

    rows = list_exercises()
    if args.json:
        return emit_json(rows)
    lesson = None
    for r in rows:
        if r["lesson"] != lesson:
            lesson = r["lesson"]
            print(f"{'' if r['position'] == 1 else chr(10)}{lesson}")
        print(f"{r['position']:>3}  {r['id']:<26} {r['difficulty']:<8} {r['unit']:<15} "
              f"{r['topic']}")
    return 0


def run_show(args) -> int:
    from sim.exercises import get_exercise, show

    out = show(get_exercise(args.id), args.seed)
    if args.json:
        return emit_json(out)
    seed = f" --seed {args.seed}" if args.seed is not None else ""
    print(f"{out['id']} ({out['lesson']}: {out['topic']}; {out['difficulty']})\n")
    print(out["prompt"])
    print(f"\nAnswer in {out['unit']} (within {100 * out['tolerance']:.0f}%): "
          f"clustersim exercise check {out['id']}{seed} --answer VALUE")
    print(f"Hints ({out['hint_levels']} level(s)): clustersim exercise hint {out['id']}{seed} "
          "--level 1")
    print(f"Worked solution: clustersim exercise solve {out['id']}{seed}")
    if out["scenario"]:
        print(f"At scale: reports/{out['scenario']}/README.md")
    return 0


def run_check(args) -> int:
    from sim.exercises import check, get_exercise

    out = check(get_exercise(args.id), args.answer, args.seed)
    if args.json:
        return emit_json(out)
    u = out["unit"]
    verdict = ("correct" if out["correct"] else
               f"off by {out['off_by_pct']:+.0f}% (tolerance {100 * out['tolerance']:.0f}%)")
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


def run_solve(args) -> int:
    from sim.exercises import get_exercise, solve

    out = solve(get_exercise(args.id), args.seed)
    if args.json:
        return emit_json(out)
    u = out["unit"]
    print("givens:")
    print(table([(k, _fmt(v)) for k, v in out["givens"].items()]))
    print("\nworked solution:")
    for i, step in enumerate(out["solution_steps"], 1):
        print(f"  {i}. {step}")
    print(f"\nanswer     {out['solution']:.4g} {u}")
    print(f"simulator  {out['expected']:.4g} {u}  (solution / simulator = "
          f"{out['agreement']:.3f})")
    if out["simulator_adds"]:
        print(f"the simulator adds: {out['simulator_adds']}")
    print(f"\n{out['consequence']}")
    return 0


def run_hint(args) -> int:
    from sim.exercises import get_exercise, hint

    out = hint(get_exercise(args.id), args.seed, args.level)
    if args.json:
        return emit_json(out)
    for i, text in enumerate(out["hints"], 1):
        print(f"hint {i}/{out['levels']}: {text}")
    if out["level"] < out["levels"]:
        print(f"(more: --level {out['level'] + 1})")
    return 0


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)
