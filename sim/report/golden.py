"""Golden outputs: the committed ``reports/`` must be what the code produces now.

Each scenario's text outputs (``table.csv`` is the golden table; ``summary.md``, ``card.json``
and ``config.json`` carry the generated takeaway and the effective config) are recomputed and
compared with the committed files, and ``index.md`` is re-rendered from the cards. PNGs are
not compared byte for byte here (they are checked for determinism separately), because their
pixels depend on the installed FreeType. Setting ``CLUSTERSIM_UPDATE_GOLDEN=1`` rewrites a
stale scenario's whole folder, charts included, and the index.
"""

from __future__ import annotations

import contextlib
import io
import os
from functools import cache

from sim.report.index import read_cards, render_index, write_index
from sim.report.scenario import REPORTS_DIR, Result, load_scenario, scenario_names, text_outputs

UPDATE_ENV = "CLUSTERSIM_UPDATE_GOLDEN"


def updating() -> bool:
    return os.environ.get(UPDATE_ENV, "") not in ("", "0")


@cache
def cached_result(name: str) -> Result:
    """``run()`` of one scenario, once per process (tests share it)."""
    return load_scenario(name).run()


def stale_files(name: str) -> list[str]:
    """Names of the scenario's committed text outputs that differ from a fresh run."""
    module, result = load_scenario(name), cached_result(name)
    folder = REPORTS_DIR / name
    return [fname for fname, text in text_outputs(module, result).items()
            if not (folder / fname).is_file() or (folder / fname).read_text() != text]


def refresh(name: str) -> None:
    """Rewrite one scenario's folder (charts included) from the cached result."""
    module = load_scenario(name)
    from sim.report.scenario import publish

    with contextlib.redirect_stdout(io.StringIO()):
        publish(module.__name__, cached_result(name), REPORTS_DIR / name)


def index_is_current() -> bool:
    path = REPORTS_DIR / "index.md"
    expected = render_index(read_cards(REPORTS_DIR, scenario_names()))
    if updating() and (not path.is_file() or path.read_text() != expected):
        write_index(REPORTS_DIR, scenario_names())
    return path.is_file() and path.read_text() == expected
