"""JSON-ready descriptions of catalog items: the ``clustersim hardware show --json`` documents.

Field names are a contract (scenario scripts and reports read them); every value is SI
(bytes, bytes/s, FLOP/s, s). Bandwidths are per direction; the link document also states the
bidirectional total a datasheet would quote, so the factor of 2 is visible.
"""

from __future__ import annotations

from hardware.types import Accelerator, Link, System


def describe(obj) -> dict:
    if isinstance(obj, Accelerator):
        return accelerator_doc(obj)
    if isinstance(obj, Link):
        return link_doc(obj)
    return system_doc(obj)


def accelerator_doc(a: Accelerator) -> dict:
    e = a.efficiency
    return {
        "name": a.name, "kind": "accelerator", "vendor": a.vendor,
        "peak_flops": dict(a.peak_flops), "memory_bytes": a.memory_bytes,
        "memory_bandwidth": a.memory_bandwidth,
        "compute_units": a.compute_units,
        "efficiency": {
            "matmul_max": e.matmul_max, "matmul_half_flops": e.matmul_half_flops,
            "attention_max": e.attention_max, "memory_bandwidth": e.memory_bandwidth,
            "kernel_overhead_s": e.kernel_overhead_s,
            # fused attention kernels with a model of their own (the first is the default);
            # a stack's attention_kernel selects one (sim.costs.stack_effects)
            "attention_kernels": _attention_kernels(e),
        },
        # spec sheet vs achievable: a large GEMM reaches matmul_max x peak, a streaming kernel
        # memory_bandwidth x HBM bandwidth (hardware.types.EfficiencyModel)
        "achievable": {
            "matmul_flops": {d: v * e.matmul_max for d, v in a.peak_flops.items()},
            "memory_bandwidth": a.memory_bandwidth * e.memory_bandwidth,
        },
        "sources": dict(a.sources),
    }


def _attention_kernels(e) -> dict:
    a = e.attention
    if a is None:
        return {}
    return {a.kernel: e.attention_max,
            **{b: m.attention_max or e.attention_max for b, m in a.backends}}


def link_doc(link: Link) -> dict:
    return {"name": link.name, "kind": "link", "bandwidth": link.bandwidth,
            "bandwidth_bidirectional": 2 * link.bandwidth, "latency": link.latency,
            "sources": dict(link.sources)}


def system_doc(s: System) -> dict:
    so = s.scale_out
    return {
        "name": s.name, "kind": "system", "accelerator": s.accelerator.name,
        "gpus_per_node": s.gpus_per_node,
        "intra_node": {
            "bandwidth": s.intra_node_bandwidth, "latency": s.intra_link.latency,
            "link": s.intra_link.name, "links_per_gpu": s.intra_links_per_gpu,
            "topology": s.intra_topology,
        },
        "inter_node": {
            "bandwidth": s.inter_node_bandwidth, "latency": s.nic_link.latency,
            "nic_link": s.nic_link.name, "nics_per_node": s.nics_per_node,
            "bandwidth_per_nic": s.nic_link.bandwidth,
        },
        "scale_out": {"topology": so.topology, "nodes_per_leaf": so.nodes_per_leaf,
                      "oversubscription": so.oversubscription,
                      "switch_latency": so.switch_latency},
        "price_per_gpu_hour": s.price_per_gpu_hour,
        "accelerator_spec": accelerator_doc(s.accelerator),
        "sources": dict(s.sources),
    }
