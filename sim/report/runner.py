"""Run every scenario (or a chosen few) and write the gallery.

Scenarios run one after another in this process (the machine's cores are shared and each
scenario is small); their printed tables are captured so ``--json`` output stays clean, and a
tqdm bar on stderr shows progress. A scenario that raises is recorded as failed with its error
and the others still run, so one broken engine does not hide every other chart.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
import traceback
from pathlib import Path

from tqdm import tqdm

from sim.errors import UnknownNameError
from sim.report.index import write_index
from sim.report.scenario import REPORTS_DIR, SCENARIO_DIR, load_scenario, scenario_names


def _run_one(name: str, out_dir: Path, directory: Path) -> dict:
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            card = load_scenario(name, directory).main(out_dir=out_dir / name)
    except Exception as exc:  # noqa: BLE001 - reported, the run goes on
        return {"name": name, "ok": False, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "seconds": time.perf_counter() - start}
    return {**card, "ok": True, "seconds": time.perf_counter() - start,
            "dir": str(out_dir / name)}


def select(only: list[str] | None, directory: Path = SCENARIO_DIR) -> list[str]:
    names = scenario_names(directory)
    for name in only or ():
        if name not in names:
            raise UnknownNameError("scenario", name, names)
    return [n for n in names if not only or n in only]


def run_report(out_dir: str | Path | None = None, only: list[str] | None = None,
               progress: bool = True, directory: Path = SCENARIO_DIR) -> dict:
    """Run scenarios into ``out_dir`` (default ``reports/``) and rewrite its index.md."""
    out = Path(out_dir) if out_dir is not None else REPORTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    names = select(only, directory)
    runs = []
    bar = tqdm(names, desc="scenarios", unit="scenario", file=sys.stderr, disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        runs.append(_run_one(name, out, directory))
    index = write_index(out, scenario_names(directory))
    return {"out_dir": str(out), "index": str(index), "scenarios": runs,
            "failed": [r["name"] for r in runs if not r["ok"]]}
