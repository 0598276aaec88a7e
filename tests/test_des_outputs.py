"""DES outputs: per-op/per-rank frames, Chrome trace JSON, Gantt + memory PNG."""

import json

import pytest

import hardware
from sim.des import simulate_train
from sim.des.metrics import OP_COLUMNS
from sim.des.trace import write_chrome_trace
from sim.model import get_model
from sim.plan import ParallelPlan
from sim.plots.timeline import plot_timeline


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("des")
    model = get_model("tiny-llama")
    cluster = hardware.Cluster.for_gpus("dgx-h100", 8)
    plan = ParallelPlan(tp=2, pp=2, dp=2, global_batch=8, micro_batch=1, seq_len=256)
    res = simulate_train(model, plan, cluster)
    write_chrome_trace(res.ops, res.memory, out / "step.json")
    plot_timeline(res.ops, res.memory, out / "step.png", capacity=cluster.accelerator.memory_bytes)
    return res, out


def test_ops_frame_has_one_row_per_op_with_the_documented_columns(run):
    res, _ = run
    assert list(res.ops.columns) == OP_COLUMNS
    assert sorted(res.ops["rank"].unique()) == [0, 4]  # one representative per stage
    fwd = res.ops[(res.ops["pass"] == "F") & (res.ops.stream == "compute")]
    # 4 microbatches x (stage 0: embedding + 1 layer's ops, stage 1: 1 layer + head)
    assert fwd.groupby("rank").mb.nunique().tolist() == [4, 4]
    assert (res.ops.end >= res.ops.start).all()


def test_per_rank_times_add_up_to_the_step(run):
    res, _ = run
    r = res.ranks
    total = r.compute_s + r.comm_exposed_s + r.bubble_s + r.idle_s
    assert total.tolist() == pytest.approx([res.step_time_s] * len(r), rel=1e-9)
    assert (r.peak_memory_bytes > 0).all()


def test_chrome_trace_has_one_complete_event_per_op_and_an_hbm_counter(run):
    res, out = run
    doc = json.loads((out / "step.json").read_text())
    events = doc["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert len(complete) == len(res.ops)
    assert {e["pid"] for e in complete} == {0, 4}
    assert sum(e["dur"] for e in complete) == pytest.approx(
        float((res.ops.end - res.ops.start).sum()) * 1e6, rel=1e-9)
    counters = [e for e in events if e["ph"] == "C"]
    assert len(counters) == sum(len(s) for s in res.memory.values())


def test_timeline_png_is_written(run):
    _, out = run
    data = (out / "step.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_frames_give_ops_ranks_and_one_step_row(run):
    res, _ = run
    frames = res.frames()
    assert set(frames) == {"ops", "ranks", "steps"}
    assert len(frames["steps"]) == 1
    assert frames["steps"].step_time_s[0] == res.step_time_s
