"""Spine oversubscription, worked with numbers (docs/design-hardware.md, "Oversubscription").

dgx-h100 (rail-optimised, 32 nodes per scalable unit, one 50 GB/s NDR NIC per GPU): a rail leaf
has 32 NIC ports down, so its uplink is 32 x 50e9 / oversubscription. Which collectives the
oversubscription slows depends on how many of the concurrent flows leave each leaf:
- a ring in rank order over one GPU per node leaves each leaf once per direction (1 flow), so
  4:1 (400 GB/s of uplink) leaves it at the NIC rate; only oversubscription > 32 slows it;
- a ring over two GPUs per node on different rails (a TP=4 layout's DP group) crosses rails at
  every node boundary: all 32 nodes of a leaf send up at once, 32 x 50e9 / 4 / 32 = 12.5 GB/s;
- a pipeline boundary (every GPU of a stage sends to the next stage in another unit) is the
  same 32 flows per leaf.
Inside one leaf nothing changes."""

from dataclasses import replace

import pytest

import hardware
from hardware import Cluster

NIC = 50e9  # NDR 400 Gb/s per direction


def variant(name: str, **scale_out):
    s = hardware.get_system(name)
    return replace(s, scale_out=replace(s.scale_out, **scale_out))


def rail(over: float, n_nodes: int = 64) -> Cluster:
    return Cluster(variant("dgx-h100", oversubscription=over), n_nodes)


def test_cross_rail_ring_across_leaves_is_four_times_slower_at_4_to_1():
    ranks = list(range(0, 256, 4))  # local GPUs 0 and 4 of 32 nodes: rails 0 and 4
    assert rail(1.0).ring_bandwidth(ranks) == NIC
    assert rail(4.0).ring_bandwidth(ranks) == pytest.approx(32 * NIC / 4 / 32)


def test_ring_inside_one_leaf_is_unchanged_by_oversubscription():
    ranks = list(range(0, 256, 8))  # rail 0 of the 32 nodes of unit 0: one leaf
    assert {rail(4.0).leaf_of(r) for r in ranks} == {0}
    assert rail(1.0).ring_bandwidth(ranks) == rail(4.0).ring_bandwidth(ranks) == NIC


def test_rank_ordered_rail_ring_leaves_each_leaf_once_so_only_over_32_slows_it():
    ranks = list(range(0, 512, 8))  # rail 0 of 64 nodes: leaves 0 (unit 0) and 8 (unit 1)
    spine = {k: n for k, n in rail(4.0).ring_links(ranks).items() if k[1] == ("spine",)}
    assert spine == {(("leaf", 0), ("spine",)): 1, (("leaf", 8), ("spine",)): 1}
    assert rail(1.0).ring_bandwidth(ranks) == rail(4.0).ring_bandwidth(ranks) == NIC
    assert rail(64.0).ring_bandwidth(ranks) == pytest.approx(32 * NIC / 64)  # uplink < NIC


def test_pipeline_boundary_across_units_shares_the_leaf_uplink():
    c = rail(4.0)
    assert c.bandwidth(0, 256) == NIC  # one flow alone
    assert c.ring_bandwidth([0, 256]) == pytest.approx(32 * NIC / 4 / 32)  # all 32 nodes at once


def test_ring_across_oversubscribed_rack_switches_halves():
    # a fat tree of 2-node racks (16 NIC ports per leaf): a DP ring over one GPU per node of 4
    # nodes leaves each rack once per ring, 8 rings (one per local GPU) at once:
    # 4:1 -> 2 x 8 x 50e9 / 4 = 200 GB/s uplink / 8 flows = 25 GB/s
    def rack(over):
        return Cluster(variant("dgx-h100", topology="fat-tree", nodes_per_leaf=2,
                               oversubscription=over), 4)

    assert rack(1.0).ring_bandwidth([0, 8, 16, 24]) == NIC
    assert rack(4.0).ring_bandwidth([0, 8, 16, 24]) == pytest.approx(NIC / 2)
    assert rack(4.0).ring_bandwidth([0, 8]) == NIC  # nodes 0 and 1: one rack
