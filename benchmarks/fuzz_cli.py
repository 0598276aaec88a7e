"""Fuzz clustersim from outside the test suite and print the counts the issue asks for.

    python benchmarks/fuzz_cli.py --invalid 10000 --valid 1000 [--timeout 60] [--show 20]

Invalid inputs: ``--invalid`` cases drawn from tests/fuzzkit.py's Hypothesis strategies (every
command, every flag table, malformed files, bad output paths, too much work) plus the hostile
corpus, each run in-process through ``sim.cli.main.main`` with a SIGALRM guard; half of them
with ``--json``. Reported: tracebacks, hangs (> timeout), invalid inputs accepted (exit 0),
wrong exit status, multi-line / malformed errors, and messages that do not name their input.
Valid runs: ``--valid`` random serving runs and ``--valid`` random training plans (analytic,
and every tenth one through the DES) checked against tests/invariants.py; plus same-seed
reruns compared byte for byte.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import fuzzkit as fk  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def run_invalid(n: int, timeout: float, show: int, hostile: bool = True) -> Counter:
    counts, bad = Counter(), []

    @settings(max_examples=n, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(fk.invalid_case(), st.booleans())
    def one(case, as_json):
        case = case.with_json() if as_json else case
        o = fk.run_cli(case.argv, timeout=timeout)
        v = fk.verdict(case, o)
        counts[v] += 1
        if v != "ok" and len(bad) < show:
            bad.append((v, case.what, case.argv, (o.error or o.err or o.out)[-600:]))

    one()
    for case in fk.hostile_files() if hostile else []:
        for c in (case, case.with_json()):
            o = fk.run_cli(c.argv, timeout=timeout)
            v = fk.verdict(c, o)
            counts[v] += 1
            if v != "ok" and len(bad) < show:
                bad.append((v, c.what, c.argv, (o.error or o.err or o.out)[-600:]))
    for v, what, argv, text in bad:
        print(f"--- {v}: {what}\n    {' '.join(argv)}\n    {text.strip()}")
    return counts


def run_valid(n: int) -> dict:
    import invariants as inv

    out = {}
    for name, fn in (("serving", inv.check_random_serving), ("training", inv.check_random_train)):
        t = time.perf_counter()
        ok, failures = fn(n)
        out[name] = (ok, failures, time.perf_counter() - t)
    out["same-seed reruns byte-identical"] = inv.check_determinism()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--invalid", type=int, default=10000)
    ap.add_argument("--valid", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--show", type=int, default=20)
    ap.add_argument("--no-hostile", action="store_true", help="skip the corpus (for shards)")
    a = ap.parse_args()
    t = time.perf_counter()
    counts = run_invalid(a.invalid, a.timeout, a.show, not a.no_hostile) if a.invalid \
        else Counter()
    total = sum(counts.values())
    print(f"\ninvalid inputs run: {total} in {time.perf_counter() - t:.0f} s")
    for k in ("ok", "traceback", "hang", "accepted", "bad-status", "multiline", "unnamed"):
        print(f"  {k:<12} {counts.get(k, 0)}")
    if a.valid:
        for name, res in run_valid(a.valid).items():
            if isinstance(res, tuple):
                ok, failures, secs = res
                print(f"valid {name}: {ok} runs checked, {len(failures)} invariant failures "
                      f"({secs:.0f} s)")
                for f in failures[:a.show]:
                    print(f"    {f}")
            else:
                print(f"valid {name}: {res}")
    return 0 if counts.get("ok", 0) == total else 1


if __name__ == "__main__":
    sys.exit(main())
