"""Turn a ``Calibration`` into a catalog ``System`` (accelerator + link inline) and back.

The "GPUs" of the profile are the local worker processes (2 per node: what the gloo
benchmark measured); the intra-node link is the measured gloo all-reduce path. The values are
measured, so every field's ``source`` says "measured by clustersim calibrate" with the
machine, thread count and torch version.
"""

from __future__ import annotations

import os
from pathlib import Path

from hardware.types import Accelerator, EfficiencyModel, Link, ScaleOut, System

PROCESSES_PER_NODE = 2


def _where(cal) -> str:
    return (f"measured by `clustersim calibrate --device {cal.device}` on {cal.machine}, "
            f"{cal.threads} thread(s), torch {cal.torch_version}")


def accelerator(cal, name: str, memory_bytes: int) -> Accelerator:
    src = _where(cal)
    eff = EfficiencyModel(matmul_max=1.0, matmul_half_flops=cal.matmul_half_flops,
                          attention_max=cal.attention_max,
                          memory_bandwidth=cal.memory_efficiency,
                          kernel_overhead_s=cal.kernel_overhead_s, source=src,
                          matmul_half_dim=cal.matmul_half_dim,
                          matmul_memory_bandwidth=cal.gemm_memory_efficiency,
                          gemv_memory_bandwidth=cal.gemv_memory_efficiency)
    peaks = {"fp32": cal.peak_fp32, "tf32": cal.peak_fp32, "bf16": cal.peak_bf16,
             "fp16": cal.peak_bf16}
    sources = {"memory": "physical memory of the machine", "memory_bandwidth": src,
               "peak_flops": src + " (fp32: fitted matmul throughput; bf16: 1024^3 matmul)"}
    sources.update({f"efficiency.{k}": src for k in (
        "matmul_max", "matmul_half_flops", "attention_max", "memory_bandwidth",
        "kernel_overhead", "matmul_half_dim", "matmul_memory_bandwidth",
        "gemv_memory_bandwidth")})
    return Accelerator(name=name, vendor=cal.device, peak_flops=peaks, memory_bytes=memory_bytes,
                       memory_bandwidth=cal.memory_bandwidth, efficiency=eff, sources=sources)


def device_memory(device: str) -> int:
    """Bytes of memory one "GPU" has: the CUDA device's, or the machine's RAM."""
    if device == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(0).total_memory)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def system(cal, name: str = "calibrated") -> System:
    """One node of ``PROCESSES_PER_NODE`` workers joined by the measured gloo path."""
    src = _where(cal)
    link = Link(name=f"{name}-gloo", bandwidth=cal.link_bandwidth, latency=cal.link_latency,
                sources={"bandwidth_per_direction": src + " (gloo all-reduce fit)",
                         "latency": src + " (gloo all-reduce fit)"})
    acc = accelerator(cal, f"{name}-{cal.device}", device_memory(cal.device))
    sources = {k: "a calibrated profile is one node of local worker processes" for k in (
        "gpus_per_node", "intra_node", "inter_node", "scale_out")}
    return System(name=name, accelerator=acc, gpus_per_node=PROCESSES_PER_NODE, intra_link=link,
                  intra_links_per_gpu=1, nic_link=link, nics_per_node=1,
                  scale_out=ScaleOut(topology="fat-tree", nodes_per_leaf=1), sources=sources)


def write_profile(cal, path: str | Path, name: str = "calibrated") -> System:
    """Write the profile as catalog TOML and read it back through the loader (a round trip
    that proves every command can use it); returns the loaded ``System``."""
    from hardware import get_system, to_toml
    from sim.fileio import atomic_write_text

    path = Path(path)
    atomic_write_text(path, to_toml(system(cal, name)))
    return get_system(str(path))
