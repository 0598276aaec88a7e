"""The committed report is current: every scenario's table, summary, card and config equal a
fresh run, and index.md equals the gallery rendered from the cards. Run with
CLUSTERSIM_UPDATE_GOLDEN=1 to rewrite stale outputs (then review and commit reports/)."""

from __future__ import annotations

import pytest

from sim.report.golden import UPDATE_ENV, index_is_current, refresh, stale_files, updating
from sim.report.scenario import REPORTS_DIR, scenario_names

NAMES = scenario_names()


@pytest.mark.parametrize("name", NAMES)
def test_committed_outputs_match_a_fresh_run(name):
    stale = stale_files(name)
    if stale and updating():
        refresh(name)
        stale = stale_files(name)
    assert stale == [], (f"reports/{name}/{stale} differ from a fresh run; regenerate with "
                         f"{UPDATE_ENV}=1 pytest tests/test_scenarios_golden.py")


@pytest.mark.parametrize("name", NAMES)
def test_every_chart_of_the_card_is_committed(name):
    folder = REPORTS_DIR / name
    from sim.report.golden import cached_result

    for chart in cached_result(name).charts:
        assert (folder / chart).is_file(), f"reports/{name}/{chart} missing"


def test_index_matches_the_cards():
    assert index_is_current(), f"reports/index.md is stale; regenerate with {UPDATE_ENV}=1"
