"""The pipeline-schedule registry: every entry's closed forms agree with its own task order,
and a new schedule is one entry (the CLI, validation, memory, analytic and DES all follow)."""

from __future__ import annotations

import dataclasses

import pytest

from hardware import Cluster
from sim import schedules
from sim.costs.analytic import estimate_train
from sim.costs.memory import memory_per_gpu
from sim.des import simulate_train
from sim.des.synthetic import bubble_fraction as simulated_bubble
from sim.errors import ConfigError
from sim.model import get_model
from sim.plan import SCHEDULES, ParallelPlan
from sim.schedules import get_schedule, max_live_microbatches


def test_the_plan_literal_and_cli_choices_come_from_the_registry():
    from sim.cli.main import build_parser

    assert SCHEDULES == schedules.schedule_names() == ("gpipe", "1f1b", "interleaved", "zb-h1")
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    choices = next(a.choices for a in train._actions if a.dest == "schedule")
    assert tuple(choices) == SCHEDULES


@pytest.mark.parametrize("name", ["gpipe", "1f1b", "interleaved", "zb-h1"])
def test_live_microbatches_closed_form_matches_the_task_order_on_every_stage(name):
    p, m = 4, 8
    entry = get_schedule(name)
    v = 2 if entry.interleaves else 1
    plan = ParallelPlan(pp=p, global_batch=m, schedule=name, virtual_stages=v)
    tasks = entry.tasks(p, m, v)
    for s in range(p):
        assert entry.live_microbatches(plan, s) == pytest.approx(max_live_microbatches(tasks[s]) / v)


@pytest.mark.parametrize("name", ["gpipe", "1f1b", "interleaved", "zb-h1"])
def test_closed_form_bubble_matches_the_simulated_task_order(name):
    p, m, entry = 4, 8, get_schedule(name)
    v = 2 if entry.interleaves else 1
    t_w = 1.0 if entry.splits_weight_grad else 0.0
    sim = simulated_bubble(name, p, m, v, t_fwd=1.0, t_bwd=1.0 + t_w, t_w=t_w)
    closed = entry.bubble_fraction(p, m, v, 1.0, 1.0 if t_w else 0.5, t_w if t_w else 0.5)
    assert sim == pytest.approx(closed / (1 + closed), rel=1e-9)


def test_unknown_schedule_is_a_typed_error_with_close_matches():
    with pytest.raises(ConfigError, match="did you mean: 1f1b"):
        get_schedule("1fb1")


@pytest.fixture
def one_more_schedule(monkeypatch):
    base = get_schedule("1f1b")
    entry = dataclasses.replace(base, name="1f1b-copy", summary="a test copy of 1F1B")
    monkeypatch.setitem(schedules._REGISTRY, entry.name, entry)
    return entry


def test_a_new_schedule_is_one_registry_entry(one_more_schedule):
    model, cluster = get_model("tiny-llama"), Cluster.for_gpus("dgx-h100", 4)
    kw = dict(pp=2, dp=2, global_batch=8, seq_len=256)
    new, ref = ParallelPlan(schedule="1f1b-copy", **kw), ParallelPlan(schedule="1f1b", **kw)
    assert estimate_train(model, new, cluster).step_time_s == \
        estimate_train(model, ref, cluster).step_time_s
    assert memory_per_gpu(model, new).total == memory_per_gpu(model, ref).total
    assert simulate_train(model, new, cluster).step_time_s == \
        simulate_train(model, ref, cluster).step_time_s


@pytest.mark.parametrize("name", schedules.schedule_names())
def test_live_microbatches_never_grow_with_the_stage_index(name):
    # memory_per_gpu checks only the first stage of each distinct content (StageLayout.distinct)
    entry = get_schedule(name)
    for p, m in ((2, 2), (4, 8), (8, 16), (8, 3)):
        v = 2 if entry.interleaves else 1
        plan = ParallelPlan(pp=p, global_batch=m, schedule=name, virtual_stages=v)
        live = [entry.live_microbatches(plan, s) for s in range(p)]
        assert live == sorted(live, reverse=True)
