"""Layering: nothing below the CLI imports it; one strict dtype table; shipped data is read
through one resource module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sim import resources
from sim.dtypes import DTYPE_BYTES, dtype_bytes
from sim.errors import ConfigError

SIM = Path(__file__).resolve().parents[1] / "sim"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_no_module_outside_the_cli_imports_the_cli():
    offenders = [str(p.relative_to(SIM)) for p in SIM.rglob("*.py")
                 if "cli" not in p.relative_to(SIM).parts
                 and any(m == "sim.cli" or m.startswith("sim.cli.") for m in _imports(p))]
    assert offenders == []


def test_the_dtype_table_exists_once_in_the_source():
    hits = [p for p in SIM.rglob("*.py") if '"tf32": 4' in p.read_text()]
    assert [p.name for p in hits] == ["dtypes.py"]


def test_an_unknown_dtype_is_a_config_error_naming_the_value_and_choices():
    with pytest.raises(ConfigError, match=r"dtype 'bf17' is unknown: must be one of fp64, "):
        dtype_bytes("bf17")
    assert dtype_bytes("fp8") == 1 and dtype_bytes("fp4") == 0.5 and len(DTYPE_BYTES) == 7


def test_pipeline_message_of_an_unknown_dtype_is_an_error_not_two_bytes():
    from types import SimpleNamespace

    from sim.costs.analytic_comm import p2p_message_bytes
    from sim.model import get_model

    model = get_model("llama3-8b")
    plan = SimpleNamespace(dtype="int3", tp=1, micro_batch=1, seq_len=4096, cp=1,
                           sequence_parallel=False)
    with pytest.raises(ConfigError, match="dtype 'int3' is unknown"):
        p2p_message_bytes(model, plan)


def test_shipped_data_resolves_to_the_checkout_when_not_installed():
    assert resources.in_checkout()
    assert resources.scenarios_dir() == SIM.parent / "scenarios"
    assert (resources.exercises_dir() / "adam-memory.toml").is_file()
    assert resources.default_reports_dir() == SIM.parent / "reports"
