"""Shared pytest options. ``--no-fast-forward`` runs every serving test with decode
iterations stepped one by one (fast-forward disabled), to check the suite passes both ways
(issue 18): ``pytest tests/test_serving_*.py --no-fast-forward``."""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption("--no-fast-forward", action="store_true",
                     help="serving: step every iteration (disable fast-forward)")


@pytest.fixture(autouse=True)
def _serving_stepping(request, monkeypatch):
    if request.config.getoption("--no-fast-forward"):
        from sim.serving import fastforward, lean

        monkeypatch.setattr(fastforward, "plan", lambda rep: None)
        monkeypatch.setattr(lean, "supports", lambda cfg, timer: False)


@pytest.fixture
def needs_fast_forward(request):
    """For tests that check fast-forward itself happens (skipped under --no-fast-forward)."""
    if request.config.getoption("--no-fast-forward"):
        pytest.skip("asserts that runs are fast-forwarded")
