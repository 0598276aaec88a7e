"""Deployments as a registry, one policy instance per replica, one take-while-it-fits loop,
and serving on (model, plan, cluster) objects."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import simpy

from sim.serving import ServingConfig, Workload, simulate_serving
from sim.serving.api import resolve, serve
from sim.serving.config import POLICY_NAMES
from sim.serving.deployments import DEPLOYMENTS, Colocated, Disaggregated, deployment_for
from sim.serving.engine import Simulation
from sim.serving.kvcache import BlockPool
from sim.serving.policies import POLICIES
from sim.serving.steptime import StepTimer


def _pool(blocks: int) -> BlockPool:
    return BlockPool(simpy.Environment(), blocks, 16)


def test_take_while_stops_at_the_first_head_that_does_not_fit():
    pool, queue = _pool(10), deque([3, 4, 5, 1])
    taken = pool.take_while(queue, lambda n: n)
    assert taken == [(3, 3), (4, 4)] and list(queue) == [5, 1]
    assert pool.available == 3 and pool.peak == 7


def test_take_while_respects_the_limit_and_an_empty_queue():
    pool = _pool(100)
    assert pool.take_while(deque([1, 1, 1]), lambda n: n, limit=2) == [(1, 1), (1, 1)]
    assert pool.take_while(deque(), lambda n: n) == [] and pool.available == 98


def test_policy_names_are_the_policies_plus_the_non_default_deployments():
    assert POLICY_NAMES == (*POLICIES, "disaggregated")
    assert deployment_for("chunked") == "colocated"
    assert deployment_for("disaggregated") == "disaggregated"
    assert DEPLOYMENTS == {"colocated": Colocated, "disaggregated": Disaggregated}


def _sim(**kw) -> Simulation:
    cfg = ServingConfig(**kw).validate()
    model, _, cluster, _ = resolve(cfg)
    return Simulation(cfg, StepTimer(model, cluster), 1000, 1.0, cluster)


def test_every_replica_builds_its_own_policy_instance():
    sim = _sim(policy="static", replicas=3)
    policies = [r.policy for r in sim.replicas]
    assert len({id(p) for p in policies}) == 3
    policies[0].reserved = 7
    assert [p.reserved for p in policies] == [7, 0, 0]


def test_disaggregated_builds_both_pools_and_routes_into_the_prefill_pool():
    sim = _sim(policy="disaggregated", prefill_replicas=2, decode_replicas=3)
    assert [r.hand_off is not None for r in sim.replicas] == [True, True, False, False, False]
    assert sim.entry.replicas == sim.replicas[:2]
    assert [type(r.policy).__name__ for r in sim.replicas[2:]] == ["DecodeOnly"] * 3
    assert ServingConfig(policy="disaggregated", prefill_replicas=2,
                         decode_replicas=3).n_replicas == 5


def test_static_batches_on_two_replicas_keep_separate_reservations():
    w = Workload(np.arange(8) * 1e-3, np.full(8, 100), np.array([5, 50] * 4))
    r = simulate_serving(policy="static", replicas=2, max_batch=4, batch_timeout_s=0.01,
                         workload=w, exact_step_times=True)
    assert r.summary["requests_completed"] == 8
    assert set(r.requests.replica) == {0, 1}


def test_serve_takes_model_plan_and_cluster_objects_like_training():
    cfg = ServingConfig(policy="continuous", tp=2)
    model, plan, cluster, draft = resolve(cfg)
    assert (plan.tp, plan.pp, plan.ep, plan.dtype) == (2, 1, 1, "bf16") and draft is None
    w = Workload(np.array([0.0, 0.5]), np.array([128, 256]), np.array([8, 16]))
    by_objects = serve(model, plan, cluster, cfg, w)
    by_names = simulate_serving(cfg, workload=w)
    assert by_objects.requests.equals(by_names.requests)
    assert by_objects.config.tp == 2


def test_serve_reports_the_plan_it_was_given():
    cfg = ServingConfig(policy="continuous")
    model, plan, cluster, _ = resolve(ServingConfig(tp=2))
    w = Workload(np.array([0.0]), np.array([64]), np.array([4]))
    assert serve(model, plan, cluster, cfg, w).config.tp == 2


@pytest.mark.parametrize("policy", ["continuous", "chunked", "static"])
def test_colocated_replicas_all_take_requests_round_robin(policy):
    w = Workload(np.arange(6) * 0.2, np.full(6, 64), np.full(6, 4))
    r = simulate_serving(policy=policy, replicas=3, workload=w, batch_timeout_s=0.0)
    assert list(r.requests.replica) == [0, 1, 2, 0, 1, 2]
