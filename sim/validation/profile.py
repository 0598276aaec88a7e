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
                          gemv_memory_bandwidth=cal.gemv_memory_efficiency,
                          gemv_row_s=cal.gemv_row_s, repeat_call_s=cal.repeat_call_s,
                          attention_memory_bandwidth=getattr(cal, "attention_memory_bandwidth",
                                                             0.0))
    peaks = {"fp32": cal.peak_fp32, "tf32": cal.peak_fp32, "bf16": cal.peak_bf16,
             "fp16": cal.peak_bf16}
    sources = {"memory": "physical memory of the machine", "memory_bandwidth": src,
               "peak_flops": src + " (fp32: fitted matmul throughput; bf16: 1024^3 matmul)"}
    sources.update({f"efficiency.{k}": src for k in (
        "matmul_max", "matmul_half_flops", "attention_max", "memory_bandwidth",
        "kernel_overhead", "matmul_half_dim", "matmul_memory_bandwidth",
        "gemv_memory_bandwidth", "gemv_row", "repeat_call", "attention_memory_bandwidth")})
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


def busy_calibration(cal):
    """The calibration as each worker sees it while both workers of the node compute
    (``allreduce.measure_contention``): rates divided, fixed costs multiplied by it."""
    from dataclasses import replace

    f = cal.node_contention
    return replace(cal, peak_fp32=cal.peak_fp32 / f, peak_bf16=cal.peak_bf16 / f,
                   memory_bandwidth=cal.memory_bandwidth / f,
                   matmul_fixed_s=cal.matmul_fixed_s * f,
                   kernel_overhead_s=cal.kernel_overhead_s * f, gemv_row_s=cal.gemv_row_s * f,
                   repeat_call_s=cal.repeat_call_s * f)


def busy_path(path: str | Path) -> Path:
    """Where ``write_profile`` puts the both-workers-busy profile beside ``path``."""
    path = Path(path)
    return path.with_name(f"{path.stem}-busy{path.suffix}")


def _write(system_: System, path: Path) -> System:
    from hardware import get_system, to_toml
    from sim.fileio import atomic_write_text

    atomic_write_text(path, to_toml(system_))
    return get_system(str(path))


def write_profile(cal, path: str | Path, name: str = "calibrated") -> System:
    """Write the profile as catalog TOML and read it back through the loader (a round trip
    that proves every command can use it), plus the both-workers-busy profile beside it
    (``busy_path``) and the calibration itself as JSON (``scale_path``: the protocol's time
    scale, for ``validate --system``); returns the loaded ``System``."""
    import json
    from dataclasses import asdict

    path = Path(path)
    _write(system(busy_calibration(cal), f"{name}-busy"), busy_path(path))
    from sim.fileio import atomic_write_text

    atomic_write_text(scale_path(path), json.dumps(
        {"reference_s": cal.reference_s, "calibration": asdict(cal)}, indent=1,
        default=str) + "\n")
    write_stack(cal, path)
    return _write(system(cal, name), path)


REFERENCE_STACK = """\
name = "{name}"
kind = "serving"
description = "sim.validation's reference continuous-batching server: eager PyTorch on this machine, one Python loop iteration per engine iteration"

[attention]
kernel = "math"

[collectives]
algorithms = ["ring"]

[serving]
cuda_graphs = false
scheduler_overhead_s = {overhead!r}
prefill_batching = "per-request"

[sources]
"attention" = "sim/validation/layers.py eager_attention: two matmuls and a softmax, scores materialised"
"collectives" = "one process serves; the gloo cases use torch.distributed's ring all-reduce"
"serving.cuda_graphs" = "eager PyTorch (no graph capture)"
"serving.scheduler_overhead_s" = "{where}: sim.validation.serving.iteration_overhead, the reference server's busy time minus its model-forward time per iteration"
"serving.prefill_batching" = "sim/validation/serving.py RealServer.run: one batch-1 forward per joining request (_prefill), then one forward for the running decodes (_decode)"
"""


def stack_path(path: str | Path) -> Path:
    """Where ``write_profile`` puts the reference implementation's serving stack."""
    path = Path(path)
    return path.with_name(f"{path.stem}-stack.toml")


def write_stack(cal, path: str | Path) -> Path:
    """The software stack of the reference server (``sim.stack`` format, kind serving) with
    the calibrated per-iteration overhead: the reference implementation's own Python time."""
    out = stack_path(path)
    text = REFERENCE_STACK.format(name=out.stem, overhead=float(cal.reference_iteration_overhead_s),
                                  where=_where(cal))
    from sim.fileio import atomic_write_text

    atomic_write_text(out, text)
    return out


def load_stack(path: str | Path):
    """The reference stack written beside the profile ``path``, or None."""
    from sim.stack import get_stack

    out = stack_path(path)
    return get_stack(str(out)) if out.exists() else None


def scale_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def load_scale(path: str | Path) -> float | None:
    """The reference time of the calibration that wrote ``path`` (None when unknown)."""
    import json

    try:
        return float(json.loads(scale_path(path).read_text())["reference_s"]) or None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_busy(path: str | Path, fallback: System) -> System:
    """The busy profile written beside ``path``, or ``fallback`` when there is none."""
    from hardware import get_system

    busy = busy_path(path)
    return get_system(str(busy)) if busy.exists() else fallback
