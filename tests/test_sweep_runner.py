"""Sweeps: the file format, one tidy row per point, resume, atomic writes, and identical
tables across reruns and backends (in-process vs local processes)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sim.cli.main import main
from sim.costs.analytic import estimate_train
from sim.errors import ConfigError
from sim.sweep import load_sweep, parse_sweep, run_sweep
from sim.sweep import runner as runner_mod
from sim.sweep.spec import point_id
from sim.sweep.store import records_dir

SWEEP = """
kind = "train"
[base]
model = "tiny-llama"
system = "dgx-h100"
gpus = 8
global_batch = 16
seq = 64
[grid]
tp = [1, 2, 3]
recompute = ["none", "full"]
"""


@pytest.fixture
def spec():
    return parse_sweep(__import__("tomllib").loads(SWEEP), name="tiny")


def test_grid_expands_in_written_order_with_defaults_filled(spec):
    assert [(p.params["tp"], p.params["recompute"]) for p in spec.points] == [
        (1, "none"), (1, "full"), (2, "none"), (2, "full"), (3, "none"), (3, "full")]
    assert spec.points[0].params["pp"] == 1 and spec.points[0].params["schedule"] == "1f1b"
    assert len({p.point_id for p in spec.points}) == 6


def test_point_id_is_a_stable_hash_of_the_effective_config(spec):
    p = spec.points[0]
    assert p.point_id == point_id("train", dict(p.params)) and len(p.point_id) == 16
    assert point_id("train", dict(p.params, tp=2)) != p.point_id


def test_rows_hold_the_engine_numbers_and_errors_as_results(spec):
    table = run_sweep(spec).table
    assert list(table["status"]) == ["ok"] * 4 + ["error"] * 2
    assert "tp=3" in table.loc[4, "error"] or "tp*pp*cp=3" in table.loc[4, "error"]
    from hardware import Cluster, get_system
    from sim.model import get_model
    from sim.plan import ParallelPlan

    direct = estimate_train(get_model("tiny-llama"), ParallelPlan(
        tp=2, dp=4, global_batch=16, seq_len=64, recompute="full"),
        Cluster.for_gpus(get_system("dgx-h100"), 8))
    assert table.loc[3, "step_time_s"] == direct.step_time_s
    assert table.loc[3, "time_breakdown_s.compute"] == direct.time_breakdown_s["compute"]
    assert table.loc[3, "plan.dp"] == 4
    assert json.loads(table.loc[3, "config_json"])["params"]["tp"] == 2


def test_rerun_resumes_and_gives_the_identical_table(spec, tmp_path, monkeypatch):
    out = tmp_path / "s.parquet"
    first = run_sweep(spec, out=out)
    assert (first.computed, first.skipped) == (6, 0)
    monkeypatch.setattr(runner_mod, "run_point", _must_not_run)
    second = run_sweep(spec, out=out)
    assert (second.computed, second.skipped) == (0, 6)
    pd.testing.assert_frame_equal(first.table, second.table)
    pd.testing.assert_frame_equal(pd.read_parquet(out), first.table)


def test_resume_computes_only_missing_points(spec, tmp_path):
    out = tmp_path / "s.csv"
    run_sweep(spec, out=out)
    (records_dir(out) / f"{spec.points[2].point_id}.json").unlink()
    again = run_sweep(spec, out=out)
    assert (again.computed, again.skipped) == (1, 5)


def test_local_processes_give_the_same_table_as_in_process(spec):
    local = run_sweep(spec, workers=1)
    pooled = run_sweep(spec, workers=2)
    assert (local.backend, pooled.backend) == ("in-process", "processes")
    pd.testing.assert_frame_equal(local.table, pooled.table)


def test_interrupted_table_write_leaves_previous_file_intact(spec, tmp_path, monkeypatch):
    out = tmp_path / "s.parquet"
    run_sweep(spec, out=out)
    before = out.read_bytes()

    def half_write(self, path, **kw):
        open(path, "wb").write(b"PAR1 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_write)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out=out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.parquet", "s.parquet.points"]


def test_interrupted_sweep_keeps_finished_points(spec, tmp_path, monkeypatch):
    out = tmp_path / "s.csv"
    calls = []

    def flaky(point):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(point.index)
        return real(point)

    real = runner_mod.run_point
    monkeypatch.setattr(runner_mod, "run_point", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out=out)
    assert len(list(records_dir(out).glob("*.json"))) == 3
    assert len(pd.read_csv(out)) == 3  # what was computed so far, written as a table
    monkeypatch.setattr(runner_mod, "run_point", real)
    assert run_sweep(spec, out=out).computed == 3
    assert len(pd.read_csv(out)) == len(spec.points)  # no row lost or duplicated


def test_unknown_parameter_is_a_config_error_listing_known_ones():
    with pytest.raises(ConfigError, match=r"unknown train parameter\(s\) \['tensor'\]"):
        parse_sweep({"base": {"model": "tiny-llama", "system": "dgx-h100", "gpus": 8,
                              "global_batch": 8, "seq": 64}, "grid": {"tensor": [1]}})
    with pytest.raises(ConfigError, match="need"):
        parse_sweep({"grid": {"tp": [1]}})


def test_cli_json_is_one_document_and_resumes(tmp_path, capsys):
    f = tmp_path / "tiny.toml"
    f.write_text(SWEEP)
    out = tmp_path / "t.csv"
    assert main(["sweep", str(f), "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["points"], doc["computed"], doc["errors"]) == (6, 6, 2)
    assert main(["sweep", str(f), "--out", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["computed"], again["skipped"]) == (0, 6)
    assert again["records"] == doc["records"]


def test_serve_points_run_the_serving_simulation():
    spec = parse_sweep({"kind": "serve", "base": {"model": "tiny-llama", "num_requests": 20,
                                                  "arrival_rate": 50.0,
                                                  "prompt_tokens": "32", "output_tokens": "8"},
                        "grid": {"max_batch": [1, 8]}})
    table = run_sweep(spec).table
    assert list(table["requests_completed"]) == [20, 20]
    assert table.loc[0, "ttft_s.p99"] > table.loc[1, "ttft_s.p99"]  # batch 1 queues longer


def test_load_sweep_reports_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_sweep(tmp_path / "nope.toml")


def _must_not_run(point):
    raise AssertionError(f"point {point.index} was recomputed")
