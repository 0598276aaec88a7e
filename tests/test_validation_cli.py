"""The torch-free side of the harness: importing it (and building the CLI) does not import
torch, bad flags are typed errors, and the report renders a complete table and chart."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sim.cli.main import main
from sim.validation.cases import Case, exact_mismatches, summary
from sim.validation.report import case_lines, markdown_report, scatter_chart, text_report


def test_importing_the_harness_and_building_the_cli_does_not_import_torch():
    code = ("import sys, sim.validation, sim.validation.cases, sim.validation.report, "
            "sim.cli.validate, sim.cli.calibrate; import sim.cli.main as m; m.build_parser(); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_stage_is_a_one_line_error_with_exit_status_2(capsys):
    pytest.importorskip("torch")
    assert main(["validate", "--stages", "training,warp-drive"]) == 2
    err = capsys.readouterr().err
    assert "warp-drive" in err and "choose from" in err


def _result(cases):
    return {"device": "cpu", "quick": True, "commit": "abc1234", "threads": 1, "clock": "cpu",
            "profile": "p.toml", "stem": "cpu-test", "published": [],
            "machine": {"torch": "2.13.0", "python": "3.11", "platform": "linux",
                        "cpu_count": 2, "loadavg_start": [1.0], "loadavg_end": [2.0]},
            "cases": [c.to_dict() for c in cases], "exact_mismatches": exact_mismatches(cases),
            **summary(cases)}


def test_report_lists_every_case_with_its_error_and_the_target_verdict(tmp_path):
    cases = [Case("a", "train_step_s", 0.11, 0.10, kind="timing"),
             Case("b", "decode_step_s", 0.05, 0.10, kind="timing"),
             Case("tiny", "params", 10, 10)]
    result = _result(cases)
    lines = case_lines(result["cases"])
    assert len(lines) == 4 and "+10.0%" in lines[1] and "-50.0%" in lines[2]
    text = text_report(result)
    assert "median |error| 30.0%" in text and "max |error| 50.0%" in text and "NOT met" in text
    assert "load average at start 1.0" in markdown_report(result)
    png = scatter_chart(result, tmp_path / "s.png")
    assert open(png, "rb").read(4) == b"\x89PNG"
