"""Spine oversubscription and NIC sharing in the DES, on real clusters with closed forms.

Numbers: docs/design-hardware.md ("Oversubscription"), tests/test_hardware_oversubscription.py.
A DP ring over one GPU per node leaves each leaf once per direction; behind 2-node rack switches
at 4:1 the 8 concurrent rings (one per local GPU) share 2 x 8 x 50e9 / 4 = 200 GB/s of uplink:
25 GB/s instead of the NIC's 50. A pipeline boundary between scalable units of dgx-h100 puts
all 32 nodes of a rail leaf on its uplink: 32 x 50e9 / 4 / 32 = 12.5 GB/s at 4:1."""

from dataclasses import replace

import pytest
import simpy

import hardware
from sim.costs.analytic_comm import p2p_message_bytes
from sim.des import simulate_train
from sim.des.engine import Net
from sim.model import get_model
from sim.plan import ParallelPlan

NIC = 50e9


@pytest.fixture(scope="module")
def llama():
    return get_model("llama3-8b")


def variant(**scale_out):
    s = hardware.get_system("dgx-h100")
    return replace(s, scale_out=replace(s.scale_out, **scale_out))


def exposed(model, plan, cluster, group: str) -> float:
    return simulate_train(model, plan, cluster).to_dict()["communication_exposed_by_group_s"][group]


def test_same_dp_all_reduce_is_twice_as_slow_behind_4_to_1_rack_switches(llama):
    plan = ParallelPlan(tp=8, dp=4, micro_batch=1, global_batch=4, seq_len=2048, overlap="sum")
    times = [exposed(llama, plan, hardware.Cluster(
        variant(topology="fat-tree", nodes_per_leaf=2, oversubscription=f), 4), "dp")
        for f in (1.0, 4.0)]
    assert times[1] / times[0] == pytest.approx(2.0, rel=0.01)  # 50 -> 25 GB/s; alphas unchanged


def test_pipeline_sends_between_scalable_units_are_four_times_slower_at_4_to_1(llama):
    # stage 0 on unit 0 (nodes 0-31), stage 1 on unit 1: exposed pp = k x (alpha + bytes / B)
    plan = ParallelPlan(tp=8, pp=2, dp=32, micro_batch=1, global_batch=128, seq_len=2048,
                        overlap="sum", sequence_parallel=True)
    c1, c4 = (hardware.Cluster(variant(oversubscription=f), 64) for f in (1.0, 4.0))
    alpha, nbytes = c1.latency(0, 256), p2p_message_bytes(llama, plan)
    t1, t4 = exposed(llama, plan, c1, "pp"), exposed(llama, plan, c4, "pp")
    sends = t1 / (alpha + nbytes / NIC)
    assert sends == pytest.approx(round(sends), rel=1e-6)
    assert t4 == pytest.approx(round(sends) * (alpha + nbytes / (NIC / 4)), rel=1e-6)


def test_dp_all_reduce_and_pipeline_send_on_one_real_nic_slow_each_other():
    cluster = hardware.Cluster("dgx-h100", 4)
    dp, size, send = (0, 8, 16, 24), 400e6, 400e6  # rank 0's NIC carries its ring hop and send
    a_ring, a_send = cluster.ring_latency(list(dp)), cluster.latency(0, 16)

    def run(with_send: bool) -> tuple[float, float]:
        env, ends = simpy.Environment(), {}
        net = Net(env, cluster)

        def body(name, gen):
            yield from gen
            ends[name] = env.now

        env.process(body("dp", net.collective("all_reduce", size, dp, "ring")))
        if with_send:
            env.process(body("pp", net.collective("send_recv", send, (0, 16))))
        env.run()
        return ends["dp"], ends.get("pp", 0.0)

    ring_bytes = 2 * 3 / 4 * size  # Patarasuk & Yuan 2009: 2(n-1)/n S
    alone, _ = run(False)
    assert alone == pytest.approx(6 * a_ring + ring_bytes / NIC, rel=1e-9)
    dp_end, pp_end = run(True)
    assert pp_end == pytest.approx(a_send + send / (NIC / 2), rel=1e-9)  # half the NIC throughout
    shared = (pp_end - 6 * a_ring) * NIC / 2  # ring bytes moved at half rate until the send ends
    assert dp_end == pytest.approx(pp_end + (ring_bytes - shared) / NIC, rel=1e-9)
    assert dp_end > 1.3 * alone
