"""`clustersim report`: one JSON document with --json, a readable table without, --only."""

from __future__ import annotations

import json

import pytest

from sim.cli.main import main


def test_report_json_is_one_document_with_each_run(tmp_path, capsys):
    rc = main(["report", "--out", str(tmp_path), "--only", "moe_not_an_ensemble", "--json"])
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert rc == 0 and doc["failed"] == []
    (run,) = doc["scenarios"]
    assert run["name"] == "moe_not_an_ensemble" and run["ok"] is True
    assert run["charts"] == ["parameters.png"] and "46.7B parameters" in run["takeaway"]
    assert run["refutes"] == ["moe-is-ensemble"]
    assert (tmp_path / "index.md").read_text().count("moe_not_an_ensemble/parameters.png") == 1


def test_report_without_json_prints_a_table_and_the_index_path(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path), "--only", "moe_not_an_ensemble"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("moe_not_an_ensemble")
    assert f"index: {tmp_path / 'index.md'}" in out


def test_unknown_scenario_is_a_one_line_error_with_exit_status_2(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path), "--only", "moe_vs_dens"]) == 2
    err = capsys.readouterr().err
    assert "unknown scenario 'moe_vs_dens'; did you mean: moe_vs_dense" in err


def test_help_teaches_with_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert "clustersim report --only moe_vs_dense" in out and "--out DIR" in out
