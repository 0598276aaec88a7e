"""The scenario convention: what a script in ``scenarios/`` declares and how its outputs are
written.

A scenario module has a docstring whose first paragraph is its title (the rest names the
lesson and concepts), ``LESSON`` (a key of ``sim.report.lesson.LESSONS``), ``TOPIC`` (one line),
``REFUTES`` (misconception ids, possibly empty), a few CAPITALISED knobs with their units in a
comment, ``run() -> Result`` and ``main(out_dir=None)`` which calls ``publish``. ``run`` does the
simulation and returns the table, the headline numbers, a takeaway sentence built from those
numbers, the effective configuration and chart *recipes* (callables drawing a Figure, or a
``ChartFile`` whose writer saves its own PNG), so the golden tests can check the numbers without
paying for drawing.

``publish`` prints the table and writes into ``reports/<scenario>/``: ``table.csv`` (the golden
output), ``summary.md``, ``config.json`` (knobs, effective config and the full description of
every model and system a knob names), ``card.json`` (what the gallery needs) and one PNG per
chart.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pandas as pd

from sim import __version__, resources
from sim.errors import ConfigError, UnknownNameError
from sim.fileio import atomic_write_text
from sim.report.lesson import LESSONS, MISCONCEPTIONS, check_lesson, check_misconceptions

REPO_ROOT = resources.CHECKOUT_ROOT  # the source tree (or site-packages when installed)
SCENARIO_DIR = resources.scenarios_dir()
REPORTS_DIR = resources.default_reports_dir()
META_NAMES = {"LESSON", "TOPIC", "REFUTES"}
KNOB_TYPES = (int, float, str, bool, tuple, list, dict)


@dataclass
class Result:
    """What ``run()`` returns. ``numbers`` are the headline figures the takeaway quotes."""

    table: pd.DataFrame
    numbers: dict[str, float]
    takeaway: str
    config: dict = field(default_factory=dict)
    charts: dict[str, Callable] = field(default_factory=dict)


@dataclass(frozen=True)
class ChartFile:
    """A chart recipe that writes its own PNG (e.g. ``sim.plots.timeline.plot_timeline``)
    instead of returning a Figure: ``write(path)`` must produce ``path``."""

    write: Callable


def draw_chart(recipe, path: Path) -> Path:
    """Run one chart recipe into ``path`` (a Figure-returning callable or a ChartFile)."""
    from sim.plots.charts import save

    if isinstance(recipe, ChartFile):
        recipe.write(path)
        return path
    return save(recipe(), path)


# --- discovery --------------------------------------------------------------------------------
def scenario_names(directory: Path = SCENARIO_DIR) -> list[str]:
    """Every scenario script (``scenarios/*.py`` except private ``_*.py`` helpers)."""
    return sorted(p.stem for p in directory.glob("*.py") if not p.stem.startswith("_"))


def load_scenario(name: str, directory: Path = SCENARIO_DIR) -> ModuleType:
    """Import ``scenarios/<name>.py`` (scenarios are scripts, not an installed package)."""
    path = directory / f"{name}.py"
    if resources.in_checkout() and str(REPO_ROOT) not in sys.path:  # the working tree's
        sys.path.insert(0, str(REPO_ROOT))  # packages, not an older installed copy
    if not path.is_file():
        raise UnknownNameError("scenario", name, scenario_names(directory))
    mod_name = f"clustersim_scenarios.{name}"
    cached = sys.modules.get(mod_name)
    if cached is not None and Path(cached.__file__) == path:
        return cached
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[mod_name]
        raise
    module._scenario_name = name
    return module


def title_of(module: ModuleType) -> str:
    doc = (module.__doc__ or "").strip()
    if not doc:
        raise ConfigError(f"scenario {module.__name__} needs a docstring whose first line is "
                          "its title")
    first = doc.split("\n\n")[0]  # the first paragraph, however many lines it wraps over
    return " ".join(line.strip() for line in first.splitlines()).rstrip(".")


def knobs_of(module: ModuleType) -> dict:
    """The CAPITALISED module-level settings (the scenario's knobs)."""
    return {k: v for k, v in vars(module).items()
            if k.isupper() and k not in META_NAMES and isinstance(v, KNOB_TYPES)}


def name_of(module: ModuleType) -> str:
    return getattr(module, "_scenario_name", None) or Path(module.__file__).stem


# --- rendering (pure: text only, used by publish and by the golden tests) --------------------
def table_csv(table: pd.DataFrame) -> str:
    """The golden output: 6 significant digits so last-bit float noise cannot flip a byte."""
    return table.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown_table(table: pd.DataFrame) -> str:
    head = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join([head, rule, *rows])


def card(module: ModuleType, result: Result) -> dict:
    """What the gallery shows for one scenario."""
    return {
        "name": name_of(module),
        "title": title_of(module),
        "lesson": check_lesson(module.LESSON),
        "topic": module.TOPIC,
        "refutes": list(check_misconceptions(module.REFUTES)),
        "takeaway": result.takeaway,
        "charts": sorted(result.charts),
    }


def summary_md(module: ModuleType, result: Result) -> str:
    c = card(module, result)
    lines = [f"# {c['title']}", "", f"*{LESSONS[c['lesson']]}* - {c['topic']}", ""]
    if c["refutes"]:
        lines += ["Refutes: " + "; ".join(f'"{MISCONCEPTIONS[t]}"' for t in c["refutes"]), ""]
    lines += ["## Takeaway", "", result.takeaway, ""]
    lines += [f"![{name}]({name})" for name in c["charts"]]
    lines += ["", "## Table", "", markdown_table(result.table), "",
              "Files: [table.csv](table.csv), [config.json](config.json), "
              f"source [`scenarios/{c['name']}.py`](../../scenarios/{c['name']}.py).", ""]
    return "\n".join(lines)


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def resolved_names(knobs: dict) -> dict:
    """Full descriptions of every model preset and hardware system a knob names, so the
    config records the numbers used, not just names (catalog entries can change)."""
    import hardware
    from sim.model import get_model, list_models

    names = set(_strings(list(knobs.values())))
    catalog = {c["name"]: c["kind"] for c in hardware.list_catalog()}
    systems = {n for n, k in catalog.items() if k == "system"}
    out = {"models": {n: get_model(n).to_dict() for n in sorted(names & set(list_models()))},
           "accelerators": {}, "systems": {}}
    for n in sorted(n for n in names if catalog.get(n) == "accelerator"):
        acc = hardware.get_accelerator(n)
        out["accelerators"][n] = {"peak_flops": dict(acc.peak_flops),
                                  "memory_bytes": acc.memory_bytes,
                                  "memory_bandwidth": acc.memory_bandwidth}
    for n in sorted(names & systems):
        sysd = hardware.get_system(n)
        acc = sysd.accelerator
        out["systems"][n] = {"accelerator": acc.name, "gpus_per_node": sysd.gpus_per_node,
                             "peak_flops": dict(acc.peak_flops), "memory_bytes": acc.memory_bytes,
                             "memory_bandwidth": acc.memory_bandwidth,
                             "intra_node_bandwidth": sysd.intra_node_bandwidth,
                             "inter_node_bandwidth": sysd.inter_node_bandwidth}
    return out


def config_json(module: ModuleType, result: Result) -> str:
    knobs = knobs_of(module)
    doc = {"scenario": name_of(module), "clustersim_version": __version__, "knobs": knobs,
           "effective": result.config, "resolved": resolved_names(knobs)}
    return json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"


def text_outputs(module: ModuleType, result: Result) -> dict[str, str]:
    """Every text file ``publish`` writes, by file name."""
    return {
        "table.csv": table_csv(result.table),
        "summary.md": summary_md(module, result),
        "config.json": config_json(module, result),
        "card.json": json.dumps(card(module, result), indent=2, sort_keys=True) + "\n",
    }


# --- publishing --------------------------------------------------------------------------------
def print_table(table: pd.DataFrame) -> None:
    with pd.option_context("display.width", 160, "display.max_columns", 30,
                           "display.float_format", "{:.4g}".format):
        print(table.to_string(index=False))


def publish(module_name: str, result: Result, out_dir: str | Path | None = None) -> dict:
    """Print the table and write the scenario's files; returns its gallery card."""
    module = sys.modules[module_name]
    out = Path(out_dir) if out_dir is not None else REPORTS_DIR / name_of(module)
    out.mkdir(parents=True, exist_ok=True)
    print_table(result.table)
    for fname, text in text_outputs(module, result).items():
        atomic_write_text(out / fname, text)
    for fname, draw in sorted(result.charts.items()):
        draw_chart(draw, out / fname)
    print(f"\n{result.takeaway}\nwritten to {out}")
    return card(module, result)
