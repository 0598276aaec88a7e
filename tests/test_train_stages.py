"""``clustersim train --json`` gains ``stages``: one record per pipeline stage from the one
StageLayout, under both engines; the DES builds it (and its whole step) from its own run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sim.cli.main import main
from sim.costs.layout import StageLayout
from sim.model import get_model
from sim.plan import ParallelPlan

STAGE_FIELDS = ["stage", "layers", "params", "weights_bytes", "memory_bytes", "compute_s"]
SIM = Path(__file__).resolve().parents[1] / "sim"
ARGV = ["train", "--model", "llama3-8b", "--system", "dgx-h100", "--gpus", "6", "--tp", "1",
        "--pp", "6", "--global-batch", "12", "--seq", "1024", "--overlap", "sum", "--json"]


def run_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def docs():
    import io
    from contextlib import redirect_stdout

    out = {}
    for engine in ("analytic", "des"):
        buf = io.StringIO()
        with redirect_stdout(buf):
            assert main(ARGV + ["--engine", engine]) == 0
        out[engine] = json.loads(buf.getvalue())
    return out


@pytest.mark.parametrize("engine", ["analytic", "des"])
def test_stages_has_one_record_per_stage_with_the_contract_fields(docs, engine):
    stages = docs[engine]["stages"]
    assert [list(s) for s in stages] == [STAGE_FIELDS] * 6
    assert [s["stage"] for s in stages] == list(range(6))


@pytest.mark.parametrize("engine", ["analytic", "des"])
def test_stage_layers_and_params_come_from_the_one_layout(docs, engine):
    lay = StageLayout.of(get_model("llama3-8b"), ParallelPlan(pp=6, global_batch=12))
    stages = docs[engine]["stages"]
    assert [s["layers"] for s in stages] == [5, 5, 6, 6, 5, 5]  # 32 layers, light ends
    assert [s["params"] for s in stages] == pytest.approx([st.params for st in lay.stages])
    assert sum(s["layers"] for s in stages) == 32


def test_analytic_stage_bytes_add_up_to_the_reported_peak(docs):
    d = docs["analytic"]
    assert max(s["memory_bytes"] for s in d["stages"]) == pytest.approx(d["memory_per_gpu_bytes"])
    assert all(s["weights_bytes"] == pytest.approx(2 * s["params"]) for s in d["stages"])


def test_des_stage_records_are_its_own_simulated_gpus(docs):
    d = docs["des"]
    assert max(s["memory_bytes"] for s in d["stages"]) == d["peak_memory_per_gpu_bytes"]
    assert all(s["weights_bytes"] == pytest.approx(2 * s["params"]) for s in d["stages"])
    heavy, light = d["stages"][2]["compute_s"], d["stages"][1]["compute_s"]
    assert heavy == pytest.approx(light * 6 / 5, rel=0.02)  # 6 layers vs 5, no ends on either


def test_des_step_is_its_own_and_agrees_with_analytic_when_nothing_overlaps(docs):
    des, ana = docs["des"], docs["analytic"]
    assert des["step_time_s"] != des["analytic_step_time_s"]
    assert des["analytic_step_time_s"] == ana["step_time_s"]
    assert des["tokens_per_s"] == pytest.approx(12 * 1024 / des["step_time_s"], rel=1e-12)
    assert des["time_breakdown_s"]["compute"] == pytest.approx(
        ana["time_breakdown_s"]["compute"], rel=0.02)
    mem = des["memory_breakdown_bytes"]
    assert sum(mem.values()) == pytest.approx(des["memory_per_gpu_bytes"], rel=1e-12)


def test_engines_write_no_files_and_read_no_private_simpy_state():
    sim_src = (SIM / "des" / "simulate.py").read_text()
    assert "sim.plots" not in re.sub(r'""".*?"""', "", sim_src, flags=re.S)
    for path in (SIM / "des").rglob("*.py"):
        text = path.read_text()
        assert "_eid" not in text, path
        assert "open(" not in text or path.name == "trace.py", path


def test_no_private_name_is_imported_across_modules():
    offenders = []
    for path in SIM.rglob("*.py"):
        for m in re.finditer(r"^\s*from (sim[\w.]*) import \(?([^)]*?)\)?$", path.read_text(), re.M):
            names = [n.strip().split(" as ")[0] for n in m.group(2).split(",")]
            offenders += [f"{path.relative_to(SIM)}: {n}" for n in names
                          if n.startswith("_") and not n.startswith("__")]
    assert offenders == []


def test_nothing_below_the_cli_imports_the_cli():
    import ast

    offenders = []
    for path in SIM.rglob("*.py"):
        if path.relative_to(SIM).parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(SIM)}: {n}" for n in names
                          if n == "sim.cli" or n.startswith("sim.cli.")]
    assert offenders == []
