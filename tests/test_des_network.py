"""Links as shared resources and collectives as algorithm steps, against closed forms."""

import math

import pytest
import simpy

from sim.costs.comm import collective_time
from sim.des.engine import Net
from sim.des.network import Fabric

B, ALPHA = 100e9, 5e-6


class FakeCluster:
    """Every GPU has one egress and one ingress port of bandwidth B; 8 GPUs per node."""

    gpus_per_node = 8

    def path_links(self, a, b):
        return [("out", a), ("in", b)]

    def link_bandwidth(self, key):
        return B

    def ring_bandwidth(self, ranks):
        return B

    def ring_latency(self, ranks):
        return ALPHA

    def all_to_all_bandwidth(self, ranks):
        return B

    def bandwidth(self, a, b):
        return B

    def latency(self, a, b):
        return ALPHA

    def node_of(self, rank):
        return rank // self.gpus_per_node


def _time(body):
    env = simpy.Environment()
    net = Net(env, FakeCluster())
    env.process(body(env, net))
    env.run()
    return env.now


@pytest.mark.parametrize("n", [2, 4, 8, 16])
@pytest.mark.parametrize("size", [1e6, 256e6])
def test_ring_all_reduce_takes_the_alpha_beta_closed_form(n, size):
    t = _time(lambda env, net: net.collective("all_reduce", size, tuple(range(n)), "ring"))
    expected = 2 * (n - 1) / n * size / B + 2 * (n - 1) * ALPHA  # Patarasuk & Yuan 2009
    assert t == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("kind", ["all_reduce", "all_gather", "reduce_scatter", "all_to_all",
                                  "send_recv", "broadcast"])
@pytest.mark.parametrize("algorithm", ["ring", "tree", "hierarchical"])
def test_uncontended_collective_matches_the_analytic_collective_time(kind, algorithm):
    cluster, ranks, size = FakeCluster(), tuple(range(0, 32, 2)), 64e6
    t = _time(lambda env, net: net.collective(kind, size, ranks, algorithm))
    assert t == pytest.approx(collective_time(kind, size, ranks, cluster, algorithm), rel=1e-9)


def test_two_flows_on_one_link_share_its_bandwidth_equally():
    env = simpy.Environment()
    fab = Fabric(env, bandwidth_of=lambda k: 10.0)
    ends = []

    def flow(nbytes, links):
        yield from fab.transfer(nbytes, links)
        ends.append(env.now)

    env.process(flow(10.0, ["a"]))
    env.process(flow(20.0, ["a", "b"]))
    env.run()
    # both at 5 B/s until the first ends at t=2 (10 B), then the second alone: 10 B left at 10 B/s
    assert ends == pytest.approx([2.0, 3.0])


def test_flow_rate_is_limited_by_its_most_crowded_link_and_its_cap():
    env = simpy.Environment()
    fab = Fabric(env, bandwidth={"a": 10.0, "b": 30.0})
    for links in (["b"], ["b"], ["a", "b"]):
        env.process(fab.transfer(30.0, links, cap=math.inf))
    env.process(fab.transfer(4.0, [], cap=2.0))
    env.run()
    # three flows on b: 10 B/s each; all 30-byte flows end at t=3; the capped flow at t=2
    assert env.now == pytest.approx(3.0)


def test_pipeline_send_on_the_same_port_slows_the_data_parallel_all_reduce():
    size, ranks = 400e6, (0, 8, 16, 24)

    def alone(env, net):
        yield from net.collective("all_reduce", size, ranks, "ring")

    def with_send(env, net):
        env.process(net.collective("send_recv", size, (0, 8)))
        yield from net.collective("all_reduce", size, ranks, "ring")

    assert _time(with_send) > 1.3 * _time(alone)


def test_a_slow_link_slows_every_flow_that_crosses_it():
    env = simpy.Environment()
    fab = Fabric(env, bandwidth_of=lambda k: 10.0, slow_links={"a": 4.0})
    env.process(fab.transfer(10.0, ["a", "b"]))
    env.run()
    assert env.now == pytest.approx(4.0)


def test_ring_all_reduce_on_a_real_node_takes_the_closed_form_with_its_ring_figures():
    import hardware

    cluster = hardware.Cluster.for_gpus("dgx-h100", 16)
    ranks, size = tuple(range(0, 16, 2)), 512e6  # 8 ranks over two nodes
    env = simpy.Environment()
    net = Net(env, cluster)
    env.process(net.collective("all_reduce", size, ranks, "ring"))
    env.run()
    b, a, n = cluster.ring_bandwidth(list(ranks)), cluster.ring_latency(list(ranks)), 8
    assert env.now == pytest.approx(2 * (n - 1) / n * size / b + 2 * (n - 1) * a, rel=0.01)


@pytest.mark.parametrize("algorithm", ["ring", "tree", "hierarchical"])
@pytest.mark.parametrize("kind", ["all_reduce", "all_gather", "reduce_scatter"])
def test_uncontended_collectives_on_a_real_cluster_match_the_analytic_time(algorithm, kind):
    import hardware

    cluster = hardware.Cluster.for_gpus("dgx-h100", 64)
    ranks = tuple(range(0, 64, 4))  # 16 ranks, 2 per node, 8 nodes
    env = simpy.Environment()
    net = Net(env, cluster)
    env.process(net.collective(kind, 128e6, ranks, algorithm))
    env.run()
    assert env.now == pytest.approx(collective_time(kind, 128e6, ranks, cluster, algorithm),
                                    rel=1e-9)
