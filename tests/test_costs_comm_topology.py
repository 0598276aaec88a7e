"""Collective times on real catalog topologies: NVLink vs network, and spine oversubscription."""

import dataclasses

import pytest

from hardware import Cluster, get_system
from sim.costs.comm import collective_time

S = 512 * 2**20


@pytest.fixture(scope="module")
def dgx():
    return get_system("dgx-h100")


def test_ring_all_reduce_on_one_nvlink_node_matches_the_nccl_closed_form(dgx):
    c = Cluster.for_gpus(dgx, 8)
    ranks = list(range(8))
    bw, m = c.ring_bandwidth(ranks), dgx.intra_link.nccl
    share = 8 / (8 + m.group_half)
    simple = m.simple_latency_s + 14 * m.simple_step_s + 2 * 7 / 8 * S / (
        bw * m.simple_bandwidth * share)
    ll = m.ll_latency_s + 14 * m.ll_step_s + 2 * 7 / 8 * S / (bw * m.ll_bandwidth * share)
    assert collective_time("all_reduce", S, ranks, c, "ring") == pytest.approx(min(simple, ll),
                                                                               rel=1e-12)


def test_eight_gpus_across_eight_nodes_are_slower_than_inside_one(dgx):
    c = Cluster.for_gpus(dgx, 64)
    inside = collective_time("all_reduce", S, range(8), c, "ring")
    across = collective_time("all_reduce", S, range(0, 64, 8), c, "ring")
    assert across > 3 * inside  # NVLink 450 GB/s per direction vs 50 GB/s per GPU NIC


def _oversubscribed(system, factor):
    return dataclasses.replace(
        system, scale_out=dataclasses.replace(system.scale_out, oversubscription=factor))


def test_spine_oversubscription_slows_groups_that_cross_leaves(dgx):
    per_leaf = dgx.scale_out.nodes_per_leaf  # DGX H100 SuperPOD: 32 nodes per rail leaf
    gpus = 8 * 2 * per_leaf
    flat = Cluster.for_gpus(dgx, gpus)
    over = Cluster.for_gpus(_oversubscribed(dgx, 4.0), gpus)
    # pairs (r, r + half): every same-shaped pair crosses the spine at once (a DP group of 2)
    cross = [0, gpus // 2]
    t_flat = collective_time("all_reduce", S, cross, flat, "ring")
    t_over = collective_time("all_reduce", S, cross, over, "ring")
    assert t_over > 3 * t_flat
    inside_leaf = [0, 8]  # two nodes under the same leaf switches: no spine hop
    assert collective_time("all_reduce", S, inside_leaf, over, "ring") == pytest.approx(
        collective_time("all_reduce", S, inside_leaf, flat, "ring"))
