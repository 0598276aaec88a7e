"""Collective times reproduce the alpha-beta closed forms; Megatron rank layout of groups.

The closed-form tests use a contract-shaped stand-in cluster whose ring bandwidth/latency
are fixed numbers, so the expected time is exact arithmetic."""

import pytest

from sim.costs.comm import collective_time, group_ranks
from sim.errors import PlanError
from sim.plan import ParallelPlan


class FlatCluster:
    """Two bandwidth tiers: ranks on one node of `gpn` GPUs talk at `intra`, else `inter`."""

    def __init__(self, gpn=8, intra=400e9, inter=50e9, a_intra=1e-6, a_inter=5e-6):
        self.gpus_per_node, self.intra, self.inter = gpn, intra, inter
        self.a_intra, self.a_inter = a_intra, a_inter

    def node_of(self, r):
        return r // self.gpus_per_node

    def _one_node(self, ranks):
        return len({self.node_of(r) for r in ranks}) == 1

    def ring_bandwidth(self, ranks):
        return self.intra if self._one_node(ranks) else self.inter

    def ring_latency(self, ranks):
        return self.a_intra if self._one_node(ranks) else self.a_inter

    def all_to_all_bandwidth(self, ranks):
        return self.ring_bandwidth(ranks)

    def bandwidth(self, a, b):
        return self.ring_bandwidth([a, b])

    def latency(self, a, b):
        return self.ring_latency([a, b])


S = 256 * 2**20


@pytest.mark.parametrize("n", [2, 4, 8])
def test_ring_all_reduce_is_2_n_minus_1_over_n_bandwidth_plus_2_n_minus_1_alpha(n):
    c = FlatCluster()
    expected = 2 * (n - 1) / n * S / 400e9 + 2 * (n - 1) * 1e-6
    assert collective_time("all_reduce", S, range(n), c, "ring") == pytest.approx(expected, rel=1e-12)


def test_all_gather_and_reduce_scatter_move_n_minus_1_over_n():
    c = FlatCluster()
    expected = 7 / 8 * S / 400e9 + 7 * 1e-6
    for kind in ("all_gather", "reduce_scatter", "all_to_all"):
        assert collective_time(kind, S, range(8), c, "ring") == pytest.approx(expected, rel=1e-12)


def test_tree_pays_log2_latency_steps():
    c = FlatCluster()
    expected = 2 * 3 * 1e-6 + 2 * 7 / 8 * 1024 / 400e9
    assert collective_time("all_reduce", 1024, range(8), c, "tree") == pytest.approx(expected)
    # tiny message: auto picks the tree (6 alphas beat the ring's 14)
    assert collective_time("all_reduce", 1024, range(8), c) == pytest.approx(expected)


def test_inter_node_group_is_slower_than_intra_node_group():
    c = FlatCluster()
    intra = collective_time("all_reduce", S, range(8), c, "ring")
    inter = collective_time("all_reduce", S, range(0, 64, 8), c, "ring")
    assert inter / intra == pytest.approx(
        (2 * 7 / 8 * S / 50e9 + 14 * 5e-6) / (2 * 7 / 8 * S / 400e9 + 14 * 1e-6))


def test_hierarchical_all_reduce_is_intra_rs_inter_ar_intra_ag():
    c = FlatCluster()
    ranks = range(32)  # 4 nodes x 8 GPUs
    intra = 7 / 8 * S / 400e9 + 7 * 1e-6
    inter = 2 * 3 / 4 * (S / 8) / 50e9 + 2 * 3 * 5e-6
    t = collective_time("all_reduce", S, ranks, c, "hierarchical")
    assert t == pytest.approx(2 * intra + inter)
    assert t < collective_time("all_reduce", S, ranks, c, "ring")


def test_recursive_halving_prices_each_step_on_its_partner_path():
    c = FlatCluster()
    ranks = range(32)  # distances 1, 2, 4 stay on the node; 8, 16 cross the network
    rs = (3 * 1e-6 + (1 / 2 + 1 / 4 + 1 / 8) * S / 400e9
          + 2 * 5e-6 + (1 / 16 + 1 / 32) * S / 50e9)
    assert collective_time("reduce_scatter", S, ranks, c, "tree") == pytest.approx(rs)
    assert collective_time("all_reduce", S, ranks, c, "tree") == pytest.approx(2 * rs)
    # same bandwidth as hierarchical (nearest-first halving is hierarchical), fewer latencies
    assert collective_time("all_reduce", S, ranks, c) == pytest.approx(2 * rs)


def test_send_recv_is_alpha_plus_size_over_bandwidth():
    c = FlatCluster()
    assert collective_time("send_recv", S, [0, 8], c) == pytest.approx(5e-6 + S / 50e9)


def test_single_rank_or_empty_payload_costs_nothing():
    c = FlatCluster()
    assert collective_time("all_reduce", S, [3], c) == 0.0
    assert collective_time("all_reduce", 0, range(8), c) == 0.0


def test_unknown_kind_or_algorithm_is_a_typed_error():
    with pytest.raises(PlanError, match="unknown collective"):
        collective_time("allreduce", S, range(2), FlatCluster())
    with pytest.raises(PlanError, match="unknown algorithm"):
        collective_time("all_reduce", S, range(2), FlatCluster(), "butterfly")


def test_megatron_layout_tp_innermost_then_cp_dp_pp():
    p = ParallelPlan(tp=2, cp=2, dp=4, pp=2, ep=2)
    assert group_ranks(p, "tp", 1) == [2, 3]
    assert group_ranks(p, "cp") == [0, 2]
    assert group_ranks(p, "dp") == [0, 4, 8, 12]
    assert group_ranks(p, "pp", 3) == [3, 19]
    assert group_ranks(p, "dp_cp") == [0, 2, 4, 6, 8, 10, 12, 14]
    assert group_ranks(p, "world") == list(range(32))


def test_ep_groups_are_consecutive_dp_blocks_and_edp_strides_them():
    p = ParallelPlan(tp=2, dp=8, ep=4)
    assert group_ranks(p, "ep") == [0, 2, 4, 6]
    assert group_ranks(p, "ep", 1) == [1, 3, 5, 7]  # next tp rank
    assert group_ranks(p, "ep", 2) == [8, 10, 12, 14]  # second dp block
    assert group_ranks(p, "edp") == [0, 8]


def test_every_group_family_partitions_the_world():
    p = ParallelPlan(tp=2, cp=2, dp=4, pp=2, ep=2)
    for g, size in [("tp", 2), ("cp", 2), ("dp", 4), ("pp", 2), ("ep", 2), ("edp", 2)]:
        groups = [group_ranks(p, g, i) for i in range(32 // size)]
        assert sorted(r for grp in groups for r in grp) == list(range(32))
    with pytest.raises(PlanError, match="out of range"):
        group_ranks(p, "tp", 16)
