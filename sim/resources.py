"""Where clustersim's shipped data lives: scenario scripts, exercise files, sweep specs.

In a source checkout (or an editable install) they are the repository's ``scenarios/`` tree;
an installed wheel carries the same tree as package data under ``sim/_bundled/scenarios``
(``setup.py`` maps the directory into the package). Every reader goes through this module, so
``clustersim exercise list`` and ``clustersim report --out DIR`` work from any directory.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_SCENARIOS = PACKAGE_DIR / "_bundled" / "scenarios"
CHECKOUT_ROOT = PACKAGE_DIR.parent


def in_checkout() -> bool:
    """True when running from a source tree that has its own ``scenarios/`` directory."""
    return not BUNDLED_SCENARIOS.is_dir() and (CHECKOUT_ROOT / "scenarios").is_dir()


def scenarios_dir() -> Path:
    """The scenario scripts (``*.py``), with ``exercises/`` and ``sweeps/`` beneath."""
    return BUNDLED_SCENARIOS if BUNDLED_SCENARIOS.is_dir() else CHECKOUT_ROOT / "scenarios"


def exercises_dir() -> Path:
    """One TOML file per exercise."""
    return scenarios_dir() / "exercises"


def default_reports_dir() -> Path:
    """``reports/`` of the checkout, or ``./reports`` when running from an installed wheel."""
    return CHECKOUT_ROOT / "reports" if in_checkout() else Path.cwd() / "reports"
