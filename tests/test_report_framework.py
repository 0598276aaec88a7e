"""The scenario convention, the report runner, the gallery and the chart helpers, exercised on a
toy scenario written into a temporary directory (independent of the simulator's engines)."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pytest

from sim.errors import UnknownNameError
from sim.plots import charts
from sim.report.index import render_index
from sim.report.runner import run_report
from sim.report.scenario import markdown_table, table_csv

TOY = '''
"""Toy: squares grow faster than doubles.

Lesson: mixture-of-experts. Concepts: none, this is a test fixture.
"""
import pandas as pd
from sim.plots import charts
from sim.report import Result, publish

LESSON = "mixture-of-experts"
TOPIC = "a fixture"
REFUTES = ("params-equal-compute",)
N = 4  # points

def run():
    xs = list(range(1, N + 1))
    df = pd.DataFrame({"x": xs, "square": [x * x for x in xs], "double": [2 * x for x in xs]})
    ratio = df.square.iloc[-1] / df.double.iloc[-1]
    return Result(df, {"ratio": ratio}, f"At x={N} the square is {ratio:.1f}x the double.",
                  {"n": N}, {"curve.png": lambda: charts.line_chart(
                      xs, {"square": df.square, "double": df.double}, title="t",
                      xlabel="x (1)", ylabel="y (1)")})

def main(out_dir=None):
    return publish(__name__, run(), out_dir)
'''

BROKEN = TOY.replace("def run():", "def run():\n    raise RuntimeError('engine missing')")


@pytest.fixture()
def scen_dir(tmp_path):
    d = tmp_path / "scenarios"
    d.mkdir()
    (d / "toy.py").write_text(textwrap.dedent(TOY))
    (d / "_helper.py").write_text("X = 1\n")
    return d


def test_report_writes_every_scenario_file_and_a_gallery_with_the_generated_takeaway(
        scen_dir, tmp_path):
    out = tmp_path / "out"
    summary = run_report(out, progress=False, directory=scen_dir)
    assert summary["failed"] == [] and [r["name"] for r in summary["scenarios"]] == ["toy"]
    files = sorted(p.name for p in (out / "toy").iterdir())
    assert files == ["card.json", "config.json", "curve.png", "summary.md", "table.csv"]
    assert (out / "toy" / "table.csv").read_text() == "x,square,double\n1,1,2\n2,4,4\n3,9,6\n4,16,8\n"
    index = (out / "index.md").read_text()
    assert "At x=4 the square is 2.0x the double." in index
    assert "![toy: curve.png](toy/curve.png)" in index
    assert "[Toy: squares grow faster than doubles](#toy)" in index
    config = json.loads((out / "toy" / "config.json").read_text())
    assert config["knobs"] == {"N": 4} and config["effective"] == {"n": 4}


def test_report_is_byte_identical_across_runs_including_pngs(scen_dir, tmp_path):
    run_report(tmp_path / "a", progress=False, directory=scen_dir)
    run_report(tmp_path / "b", progress=False, directory=scen_dir)
    for name in ("curve.png", "summary.md", "table.csv", "config.json"):
        assert (tmp_path / "a/toy" / name).read_bytes() == (tmp_path / "b/toy" / name).read_bytes()
    assert (tmp_path / "a/index.md").read_text() == (tmp_path / "b/index.md").read_text()


def test_a_failing_scenario_is_reported_and_the_others_still_run(scen_dir, tmp_path):
    (scen_dir / "broken.py").write_text(textwrap.dedent(BROKEN))
    summary = run_report(tmp_path / "out", progress=False, directory=scen_dir)
    assert summary["failed"] == ["broken"]
    bad = next(r for r in summary["scenarios"] if r["name"] == "broken")
    assert bad["error"] == "RuntimeError: engine missing"
    assert (tmp_path / "out/toy/table.csv").is_file()


def test_only_names_an_unknown_scenario_raises_with_close_matches(scen_dir, tmp_path):
    with pytest.raises(UnknownNameError, match="unknown scenario 'toyy'; did you mean: toy"):
        run_report(tmp_path, only=["toyy"], progress=False, directory=scen_dir)


def test_coverage_table_lists_each_misconception_and_who_refutes_it():
    card = {"name": "a", "title": "A", "lesson": "mixture-of-experts", "topic": "t",
            "refutes": ["moe-is-ensemble"], "takeaway": "x", "charts": []}
    text = render_index([card])
    assert '| "MoE models are just ensembles of smaller models" | [A](#a) |' in text
    assert text.count("(none yet)") == 4


def test_golden_csv_rounds_to_six_significant_digits():
    df = pd.DataFrame({"a": [1 / 3, 2.0e12 + 0.1], "b": ["x", "y"]})
    assert table_csv(df) == "a,b\n0.333333,x\n2e+12,y\n"
    assert markdown_table(df).splitlines()[2] == "| 0.3333 | x |"


@pytest.mark.parametrize("draw", [
    lambda: charts.memory_breakdown(["a", "b"], [{"weights": 2**30, "optimizer": 2**31,
                                                  "total": 3 * 2**30}] * 2,
                                    title="m", capacity_bytes=80 * 2**30),
    lambda: charts.roofline(989e12, 3.35e12, [("train", "gemm", 300.0, 600e12),
                                                   ("decode", "gemm", 1.0, 3e12)],
                            title="r"),
    lambda: charts.heatmap(np.array([[1.0, 2.0], [0.5, 1.5]]), [1, 2], ["a", "b"], title="h",
                           xlabel="x (1)", ylabel="y (1)", cbar_label="speedup (x)", center=1.0),
    lambda: charts.expert_load_histogram({"uniform": [4, 4], "skewed": [7, 1]}, title="e",
                                         capacity=5),
    lambda: charts.throughput_latency({"static": ([1, 2], [0.1, 0.3])}, title="t"),
    lambda: charts.scaling_curve([8, 16], {"dp": [0.5, 0.4]}, title="s"),
    lambda: charts.kv_cache_vs_context([1024, 2048], {"mha": [2**30, 2**31]}, title="k",
                                       capacity_bytes=2**32),
])
def test_every_chart_has_title_and_labelled_axes(draw, tmp_path):
    fig = draw()
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    path = charts.save(fig, tmp_path / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"Software" not in path.read_bytes()


def test_chart_file_recipes_write_their_own_png(tmp_path):
    from sim.report.scenario import ChartFile, draw_chart

    def writer(path):
        return charts.save(charts.line_chart([1, 2], {"a": [1, 2]}, title="t", xlabel="x (1)",
                                             ylabel="y (1)"), path)

    out = draw_chart(ChartFile(writer), tmp_path / "w.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_progress_bar_goes_to_stderr_and_stdout_stays_clean(scen_dir, tmp_path, capsys):
    run_report(tmp_path / "out", progress=True, directory=scen_dir)
    captured = capsys.readouterr()
    assert captured.out == ""  # the scenario's printed table is captured, not leaked
    assert "scenarios: 100%" in captured.err and "1/1" in captured.err
