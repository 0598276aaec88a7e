"""Topology queries: same node vs across nodes vs across the spine, NIC sharing and spine
oversubscription under concurrent groups, rank mapping, link keys == graph edges; plus
hypothesis properties (symmetry, endpoint bound, N nodes -> N x gpus_per_node GPUs)."""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hardware
from hardware import Cluster
from sim.errors import HardwareError

NIC_LAT, NVL_LAT, SWITCH = 2.7e-6, 0.6e-6, 130e-9


def oversubscribed(name: str, factor: float):
    s = hardware.get_system(name)
    return replace(s, scale_out=replace(s.scale_out, oversubscription=factor))


# --- one flow alone -----------------------------------------------------------------------------
def test_same_node_is_nvlink_bandwidth_and_one_hop_latency():
    c = Cluster("dgx-h100", 4)
    assert c.bandwidth(0, 1) == 450e9
    assert c.latency(0, 1) == pytest.approx(NVL_LAT)
    assert c.path_links(0, 1) == [(("gpu", 0, 0), ("nvsw", 0)), (("nvsw", 0), ("gpu", 0, 1))]


def test_across_nodes_on_the_same_rail_leaf_is_nic_bandwidth_without_spine():
    c = Cluster("dgx-h100", 4)
    assert c.bandwidth(0, 8) == 50e9
    assert c.latency(0, 8) == pytest.approx(NIC_LAT)
    assert ("spine",) not in {v for link in c.path_links(0, 8) for v in link}


def test_across_rails_or_scalable_units_goes_through_the_spine():
    c = Cluster("dgx-h100", 64)  # 2 scalable units of 32 nodes
    for a, b in [(0, 9), (0, 32 * 8)]:  # other rail; same rail other unit
        links = c.path_links(a, b)
        assert [v for v in links[2]] == [("leaf", c.leaf_of(a)), ("spine",)]
        assert c.bandwidth(a, b) == 50e9
        assert c.latency(a, b) == pytest.approx(NIC_LAT + 2 * SWITCH)


def test_same_rank_has_infinite_bandwidth_and_no_links():
    c = Cluster("dgx-h100", 1)
    assert (c.bandwidth(3, 3), c.latency(3, 3), c.path_links(3, 3)) == (float("inf"), 0.0, [])


def test_cube_mesh_pairs_get_their_port_count_and_distant_pairs_two_hops():
    c = Cluster("dgx-v100", 1)
    assert c.bandwidth(0, 3) == 50e9  # NV2
    assert c.bandwidth(0, 1) == 25e9  # NV1
    assert len(c.path_links(0, 5)) == 2 and c.bandwidth(0, 5) == 25e9
    assert c.latency(0, 5) == pytest.approx(2 * NVL_LAT)


def test_mi300x_full_mesh_pair_gets_one_xgmi_link():
    c = Cluster("mi300x-8", 1)
    assert c.bandwidth(2, 5) == 64e9 and len(c.path_links(2, 5)) == 1


def test_gb200_nvl72_keeps_72_gpus_on_nvlink():
    c = Cluster.for_gpus("gb200-nvl72", 144)
    assert (c.n_nodes, c.bandwidth(0, 71), c.bandwidth(0, 72)) == (2, 900e9, 50e9)


# --- layout -------------------------------------------------------------------------------------
def test_rank_maps_to_node_and_rail_leaf():
    c = Cluster("dgx-h100", 64)
    assert (c.node_of(259), c.leaf_of(259)) == (32, 1 * 8 + 3)  # unit 1, rail 3
    assert c.n_leaves == 16


def test_fat_tree_leaf_holds_whole_nodes():
    c = Cluster("mi300x-8", 16)
    assert [c.leaf_of(r) for r in (0, 63, 64, 127)] == [0, 0, 1, 1]


def test_for_gpus_below_a_node_is_a_partial_node_and_must_be_whole_nodes_above():
    c = Cluster.for_gpus("dgx-h100", 4)
    assert (c.n_nodes, c.n_gpus) == (1, 4)
    assert Cluster.for_gpus("dgx-h100", 64).n_nodes == 8
    with pytest.raises(HardwareError, match="use 8 or 16"):
        Cluster.for_gpus("dgx-h100", 12)


def test_rank_outside_the_cluster_is_an_error():
    with pytest.raises(HardwareError, match="rank 8 is not in this cluster"):
        Cluster.for_gpus("dgx-h100", 8).bandwidth(0, 8)


# --- concurrent groups --------------------------------------------------------------------------
def test_tp_ring_inside_a_node_gets_full_nvlink():
    assert Cluster("dgx-h100", 4).ring_bandwidth(list(range(8))) == 450e9


def test_gpus_sharing_a_nic_halve_the_ring_bandwidth():
    c = Cluster("dgx-v100", 2)  # 4 EDR NICs for 8 GPUs: GPUs 0 and 1 share NIC 0
    assert c.bandwidth(0, 8) == 12.5e9
    assert c.ring_bandwidth([0, 8]) == 6.25e9  # every [i, i+8] ring runs at once


def test_spine_oversubscription_divides_cross_unit_ring_bandwidth():
    ranks = [0, 32 * 8]  # node 0 and node 32: different scalable units, same rail
    assert Cluster("dgx-h100", 64).ring_bandwidth(ranks) == 50e9
    c = Cluster(oversubscribed("dgx-h100", 2.0), 64)
    assert c.bandwidth(*ranks) == 50e9  # one flow alone still gets its NIC
    assert c.ring_bandwidth(ranks) == 25e9  # 32 flows per rail leaf on 32 x 50e9 / 2 uplink


def test_oversubscription_does_not_touch_traffic_under_one_leaf():
    c = Cluster(oversubscribed("mi300x-8", 4.0), 16)
    assert c.ring_bandwidth([0, 8]) == 50e9  # nodes 0 and 1 share leaf 0
    assert c.ring_bandwidth([0, 64]) == pytest.approx(50e9 / 4)  # leaf 0 -> leaf 1


def test_all_to_all_in_a_node_uses_the_whole_switch_port():
    assert Cluster("dgx-h100", 1).all_to_all_bandwidth(list(range(8))) == pytest.approx(450e9)
    assert Cluster("mi300x-8", 1).all_to_all_bandwidth(list(range(8))) == pytest.approx(448e9)


def test_all_to_all_over_two_nodes_is_nic_bound():
    # each NIC carries 8 flows (to the other node's GPUs): 50e9 / 8 per flow x 15 peers
    c = Cluster("dgx-h100", 2)
    assert c.all_to_all_bandwidth(list(range(16))) == pytest.approx(15 * 50e9 / 8)


def test_ring_latency_is_the_slowest_hop():
    c = Cluster("dgx-h100", 2)
    assert c.ring_latency(list(range(8))) == pytest.approx(NVL_LAT)
    assert c.ring_latency(list(range(16))) == pytest.approx(NIC_LAT + 2 * SWITCH)  # 7 -> 8


def test_groups_of_fewer_than_two_ranks_have_no_communication():
    c = Cluster("dgx-h100", 1)
    assert (c.ring_bandwidth([3]), c.ring_latency([3]), c.all_to_all_bandwidth([3])) == (
        float("inf"), 0.0, float("inf"))


# --- links and graph ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["dgx-v100", "dgx-h100", "mi300x-8", "dgx-a100-40gb"])
def test_path_links_are_graph_edges_with_the_same_bandwidth(name):
    c = Cluster(name, 3)
    g = c.full_graph()
    for a, b in [(0, 1), (0, 5), (2, 13), (7, 16), (23, 0)]:
        for key in c.path_links(a, b):
            assert g.edges[key]["bandwidth"] == c.link_bandwidth(key)
            assert g.edges[key]["latency"] == c.link_latency(key)


def test_unknown_link_key_is_an_error():
    with pytest.raises(HardwareError, match="no link"):
        Cluster("dgx-h100", 1).link_bandwidth((("gpu", 0, 0), ("gpu", 0, 1)))


def test_big_cluster_graph_is_compact():
    c = Cluster.for_gpus("dgx-h100", 16384)
    g = c.graph
    assert g.graph["compact"] and g.number_of_nodes() < 1000
    assert sum(1 for v in g if v[0] == "gpu") == 8


# --- properties ---------------------------------------------------------------------------------
SYSTEMS = [d["name"] for d in hardware.list_catalog() if d["kind"] == "system"]


@st.composite
def cluster_and_pair(draw):
    c = Cluster(draw(st.sampled_from(SYSTEMS)), draw(st.integers(1, 5)))
    a = draw(st.integers(0, c.n_gpus - 1))
    b = draw(st.integers(0, c.n_gpus - 1).filter(lambda x: x != a))
    return c, a, b


@settings(max_examples=60, deadline=None)
@given(cluster_and_pair())
def test_bandwidth_and_latency_are_symmetric(cab):
    c, a, b = cab
    assert c.bandwidth(a, b) == c.bandwidth(b, a)
    assert c.latency(a, b) == pytest.approx(c.latency(b, a))


@settings(max_examples=60, deadline=None)
@given(cluster_and_pair())
def test_bandwidth_never_exceeds_either_endpoints_link(cab):
    c, a, b = cab
    links = c.path_links(a, b)
    bw = c.bandwidth(a, b)
    assert bw <= c.link_bandwidth(links[0]) and bw <= c.link_bandwidth(links[-1])
    assert bw <= max(c.system.intra_node_bandwidth, c.system.nic_link.bandwidth)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(SYSTEMS), st.integers(1, 6))
def test_n_nodes_have_n_times_gpus_per_node_gpus(name, n):
    c = Cluster(name, n)
    gpus = [v for v in c.full_graph() if v[0] == "gpu"]
    assert c.n_gpus == len(gpus) == n * c.gpus_per_node


@settings(max_examples=30, deadline=None)
@given(cluster_and_pair())
def test_concurrent_groups_never_speed_a_pair_up(cab):
    c, a, b = cab
    assert c.ring_bandwidth([a, b]) <= c.bandwidth(a, b)


def _ring_share_all_groups(c, ranks):
    """Reference: load every link with every concurrent group (no pruning)."""
    import numpy as np

    from hardware import contention

    fam = contention.family(np.array(ranks), c.n_gpus)
    links = c._space.hop_links(fam.ravel(), np.roll(fam, -1, axis=1).ravel())
    return contention._min_share(c._space, links, links[: len(ranks)])


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(SYSTEMS), st.integers(2, 40), st.integers(1, 3), st.integers(2, 4),
       st.floats(1.0, 4.0))
def test_pruning_distant_groups_leaves_ring_bandwidth_unchanged(name, n_nodes, stride_nodes,
                                                                size, over):
    c = Cluster(oversubscribed(name, over), n_nodes)
    stride = stride_nodes * c.gpus_per_node + 1
    ranks = [i * stride for i in range(size) if i * stride < c.n_gpus]
    if len(ranks) < 2:
        return
    assert c.ring_bandwidth(ranks) == _ring_share_all_groups(c, ranks)


def test_ring_links_lists_each_link_with_its_hop_count():
    c = Cluster("dgx-h100", 2)
    links = c.ring_links([0, 1, 8])  # 0 -> 1 on NVLink, 1 -> 8 and 8 -> 0 over the network
    assert links[(("gpu", 0, 0), ("nvsw", 0))] == 1
    assert links[(("nic", 0, 1), ("leaf", 1))] == 1
    assert (("leaf", 1), ("spine",)) in links  # rail 1 -> rail 0 crosses the spine
    assert sum(1 for k in links if k[0] == ("gpu", 0, 0)) == 1


def test_all_to_all_links_count_every_ordered_pair():
    c = Cluster("dgx-h100", 1)
    links = c.all_to_all_links([0, 1, 2, 3])
    assert links[(("gpu", 0, 0), ("nvsw", 0))] == 3  # 0 sends to 3 peers
    assert links[(("nvsw", 0), ("gpu", 0, 3))] == 3  # 3 receives from 3 peers
    assert len(links) == 8
