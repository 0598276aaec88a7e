"""Lesson 3 (training-and-serving-at-scale) training and decode queries.

Memory per GPU from ``sim.costs.memory.memory_per_gpu`` (mixed-precision Adam: 2+2+12 bytes per
parameter, ZeRO stages shard optimizer/gradients/weights over data parallelism); step times,
pipeline bubbles and communication from the analytic estimate ``estimate_train``; collective
times from ``sim.costs.comm.collective_time`` (alpha-beta with NCCL bus-bandwidth factors,
per-direction link bandwidth); the bubble of a schedule from the DES on uniform stages; one
decode iteration from ``sim.costs.inference.forward_time`` (roofline per op: weights and KV-cache
bytes over HBM bandwidth vs FLOPs over peak).
"""

from __future__ import annotations

from sim.costs.analytic import estimate_train
from sim.costs.comm import collective_time
from sim.costs.inference import forward_time
from sim.costs.memory import memory_per_gpu
from sim.des.synthetic import bubble_fraction
from sim.exercises.answer import Answer, cluster_of, dominant, model_of, step_parts, versus
from sim.exercises.registry import query
from sim.plan import ParallelPlan
from sim.schedules import get_schedule

STATE = ("weights", "gradients", "optimizer")


def plan_of(p: dict) -> ParallelPlan:
    keys = ("tp", "pp", "dp", "cp", "zero", "micro_batch", "global_batch", "seq_len",
            "recompute", "schedule", "virtual_stages", "sequence_parallel")
    return ParallelPlan(**{k: p[k] for k in keys if k in p})


def _train(p: dict):
    return estimate_train(model_of(p), plan_of(p), cluster_of(p["system"], p["gpus"]))


@query("training_memory", "bytes")
def model_state_memory(p: dict) -> Answer:
    """Weights + gradients + optimizer state (fp32 master and moments) per GPU."""
    m = memory_per_gpu(model_of(p), plan_of(p), cluster_of(p["system"], p["gpus"])).to_dict()
    parts = {k: float(m[k]) for k in STATE}
    return Answer(sum(parts.values()), parts, dominant(parts, "of the model state"))


@query("training_memory_total", "bytes")
def train_memory_per_gpu(p: dict) -> Answer:
    """Everything a training GPU holds: model state, activations, buffers."""
    r = _train(p)
    parts = {k: float(v) for k, v in r.memory_breakdown_bytes.items()}
    cap = r.extras["memory_capacity_bytes"]
    fit = "fits" if r.fits else "does not fit"
    return Answer(r.memory_per_gpu_bytes, parts,
                  f"{dominant(parts)}; {fit} in {cap / 2**30:.0f} GiB")


@query("comm_time", "s")
def allreduce_time(p: dict) -> Answer:
    """All-reduce of ``gbytes`` GB per rank over ``gpus`` GPUs: the fastest of ring, tree and
    hierarchical, as NCCL's tuner picks (NCCL conventions, sim.costs.comm)."""
    cluster = cluster_of(p["system"], p["gpus"])
    ranks, size = list(range(p["gpus"])), p["gbytes"] * 1e9
    parts = {a: collective_time("all_reduce", size, ranks, cluster, algorithm=a)
             for a in ("ring", "tree", "hierarchical")}
    best = min(parts, key=parts.get)
    bw, sysm = cluster.ring_bandwidth(ranks), cluster.system
    nvlink = sysm.intra_link.bandwidth * sysm.intra_links_per_gpu
    facts = {"ring_gbps": bw / 1e9, "bidir_gbps": 2 * nvlink / 1e9, "nodes": cluster.n_nodes,
             "nic_gbit": 8 * sysm.nic_link.bandwidth / 1e9, "nics": sysm.nics_per_node}
    where = "inside one node" if cluster.n_nodes == 1 else f"across {cluster.n_nodes} nodes"
    return Answer(collective_time("all_reduce", size, ranks, cluster), parts,
                  f"{best} all-reduce is fastest {where}; a flat ring's bottleneck hop is "
                  f"{bw / 1e9:.0f} GB/s per direction", facts)


@query("cross_node_comm_time", "s")
def allreduce_time_cross_node(p: dict) -> Answer:
    """The same all-reduce when the GPUs span nodes (the NIC, not NVLink, is the bottleneck)."""
    return allreduce_time(p)


@query("pipeline_step_time", "s")
def pipeline_step_time(p: dict) -> Answer:
    """Training step with pp stages; givens: one micro-batch's forward+backward on a stage."""
    r = _train(p)
    m = plan_of(p).n_microbatches
    t_mb = r.time_breakdown_s["compute"] / m
    return Answer(r.step_time_s, dict(r.time_breakdown_s),
                  f"bubble {100 * r.extras['bubble_fraction']:.0f}% of useful time; "
                  f"{dominant(r.time_breakdown_s, 'of the step')}",
                  {"t_mb_ms": 1e3 * t_mb, "microbatches": m})


@query("bubble_fraction", "fraction")
def schedule_bubble(p: dict) -> Answer:
    """Idle share of the step, simulated by the DES on uniform stages (t_f = t_b = 1)."""
    sched = get_schedule(p["schedule"])
    v = p.get("virtual_stages", 1) if sched.interleaves else 1
    t_w = 1.0 if sched.splits_weight_grad else 0.0  # B and W each one unit (B+W = 2)
    f = bubble_fraction(p["schedule"], p["pp"], p["microbatches"], v, t_fwd=1.0, t_bwd=2.0,
                        t_w=t_w)
    return Answer(f, {"busy": 1 - f, "bubble": f}, f"{p['pp'] - 1} fill and drain slots over "
                  f"{p['microbatches'] * v} micro-batch chunks")


@query("comm_share", "fraction")
def dp_comm_share(p: dict) -> Answer:
    """Gradient all-reduce time over step time for data parallelism on ``gpus`` GPUs."""
    r = _train(p)
    comm = sum(r.extras["communication_by_group_s"].values())
    return Answer(comm / r.step_time_s, {"communication": comm, "step": r.step_time_s},
                  f"{r.extras['communication_exposed_by_group_s']['dp'] * 1e3:.1f} ms of it "
                  f"exposed; step {r.step_time_s:.2f} s", parts_unit="s")


def _decode(p: dict):
    return forward_time(model_of(p), cluster_of(p["system"], p["tp"]), tp=p["tp"],
                        decode_kv_lens=(p["seq_len"],) * p["batch"])


@query("decode_time", "s")
def decode_step_time(p: dict) -> Answer:
    """One decode iteration of ``batch`` sequences with ``seq_len`` cached tokens each."""
    s = _decode(p)
    share = s.kv_bytes / (s.kv_bytes + s.weight_bytes)
    return Answer(s.time_s, step_parts(s),
                  f"{versus('memory', s.memory_s, 'compute', s.compute_s)}; KV cache is "
                  f"{100 * share:.0f}% of the weight + KV bytes read")


@query("decode_throughput", "tokens/s")
def decode_tokens_per_s(p: dict) -> Answer:
    """Tokens per second of that decode iteration: batch / step time."""
    s = _decode(p)
    return Answer(p["batch"] / s.time_s, step_parts(s),
                  versus("memory", s.memory_s, "compute", s.compute_s), parts_unit="s")
