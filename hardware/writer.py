"""``to_toml(obj)``: a hardware dataclass back to catalog-format TOML that the loader reads back
to an equal object.

A system is written self-contained: its accelerator and both links become inline tables
(``[accelerator]``, ``[intra_node.link]``, ``[inter_node.nic_link]``), so one file describes a
whole machine (this is how ``clustersim calibrate`` stores a measured profile). Quantities are
written in SI base units with ``repr`` precision, so the round trip is exact.
"""

from __future__ import annotations

import json
import numbers

from hardware.types import Accelerator, Link, System
from hardware.units import format_quantity as q
from sim.errors import HardwareError


def to_toml(obj) -> str:
    if isinstance(obj, Accelerator):
        raw = accelerator_raw(obj)
    elif isinstance(obj, Link):
        raw = link_raw(obj)
    elif isinstance(obj, System):
        raw = system_raw(obj)
    else:
        raise HardwareError(f"to_toml takes an Accelerator, Link or System, got "
                            f"{type(obj).__name__}")
    return "\n".join(_emit(raw, "")) + "\n"


def _sources(obj, extra: dict[str, str] | None = None) -> dict[str, str]:
    out = dict(extra or {})
    out.update(obj.sources)
    return out


def accelerator_raw(a: Accelerator, kind: bool = True) -> dict:
    e = a.efficiency
    has_eff = any(k.split(".")[0] == "efficiency" for k in a.sources)
    extra = {} if has_eff else {"efficiency": e.source or "unspecified"}
    raw = {
        "name": a.name, "kind": "accelerator", "vendor": a.vendor,
        "memory": q(a.memory_bytes, "bytes"), "memory_bandwidth": q(a.memory_bandwidth,
                                                                    "bandwidth"),
        "peak_flops": {d: q(v, "flop_rate") for d, v in a.peak_flops.items()},
        "efficiency": {
            "matmul_max": float(e.matmul_max), "matmul_half_flops": q(e.matmul_half_flops, "flops"),
            "attention_max": float(e.attention_max),
            "memory_bandwidth": float(e.memory_bandwidth),
            "kernel_overhead": q(e.kernel_overhead_s, "time"),
        },
        "sources": _sources(a, extra),
    }
    if e.matmul_half_dim > 0:  # optional shape terms: written only when set
        raw["efficiency"]["matmul_half_dim"] = float(e.matmul_half_dim)
    for key in ("matmul_memory_bandwidth", "gemv_memory_bandwidth"):
        if getattr(e, key) is not None:
            raw["efficiency"][key] = float(getattr(e, key))
    for key in ("gemv_row", "repeat_call"):  # optional CPU call terms: written only when set
        if getattr(e, f"{key}_s") > 0:
            raw["efficiency"][key] = q(getattr(e, f"{key}_s"), "time")
    if e.attention_memory_bandwidth > 0:  # optional CPU attention term
        raw["efficiency"]["attention_memory_bandwidth"] = float(e.attention_memory_bandwidth)
    raw["efficiency"].update(kernel_models_raw(e))
    if a.compute_units is not None:
        raw["compute_units"] = a.compute_units
    return raw


def kernel_models_raw(e) -> dict:
    """The optional [efficiency.gemm|memory|attention] sub-tables (hardware.kernel_models)."""
    out = {}
    if e.gemm is not None:
        g = e.gemm
        out["gemm"] = {"tiles": [[tm, tn, float(r)] for tm, tn, r in g.tiles],
                       "tile_k": g.tile_k, "k_overhead": float(g.k_overhead),
                       "min_wave": float(g.min_wave), "sharpness": float(g.sharpness),
                       "fixed": q(g.fixed_s, "time")}
    if e.memory is not None:
        m = e.memory
        out["memory"] = {**{c: float(v) for c, v in m.fractions.items()},
                         **{f"{c}_floor": q(v, "time") for c, v in m.floors.items()},
                         "floor": q(m.floor_s, "time"), "cache_bytes": q(m.cache_bytes, "bytes"),
                         "cache_speedup": float(m.cache_speedup),
                         "sharpness": float(m.sharpness)}
    if e.attention is not None:
        out["attention"] = {**_attention_raw(e.attention), "kernel": e.attention.kernel,
                            **{b: _attention_raw(m) for b, m in e.attention.backends}}
    return out


def _attention_raw(t) -> dict:
    out = {"block_q": t.block_q, "block_k": t.block_k, "kv_block": t.kv_block,
           "prefill_seq_overhead": q(t.prefill_seq_s, "time"),
           "decode_seq_overhead": q(t.decode_seq_s, "time"),
           "decode_memory_bandwidth": float(t.decode_memory_bandwidth),
           "floor": q(t.floor_s, "time"), "sharpness": float(t.sharpness)}
    if t.attention_max is not None:
        out["attention_max"] = float(t.attention_max)
    return out


def nccl_raw(n) -> dict:
    out = {"ll_latency": q(n.ll_latency_s, "time"), "ll_step_latency": q(n.ll_step_s, "time"),
           "ll_bandwidth": float(n.ll_bandwidth), "simple_latency": q(n.simple_latency_s, "time"),
           "simple_step_latency": q(n.simple_step_s, "time"),
           "simple_bandwidth": float(n.simple_bandwidth), "group_half": float(n.group_half)}
    if n.p2p_bandwidth > 0:
        out["p2p_latency"] = q(n.p2p_latency_s, "time")
        out["p2p_bandwidth"] = float(n.p2p_bandwidth)
    if n.nvls_bandwidth > 0:
        out["nvls_bandwidth"] = float(n.nvls_bandwidth)
        out["nvls_latency"] = q(n.nvls_latency_s, "time")
    return out


def link_raw(link: Link) -> dict:
    raw = {"name": link.name, "kind": "link",
           "bandwidth_per_direction": q(link.bandwidth, "bandwidth"),
           "latency": q(link.latency, "time"), "sources": _sources(link)}
    if link.nccl is not None:
        raw["nccl"] = nccl_raw(link.nccl)
    return raw


def system_raw(s: System) -> dict:
    so = s.scale_out
    intra = {"link": link_raw(s.intra_link), "links_per_gpu": s.intra_links_per_gpu,
             "topology": s.intra_topology}
    if s.intra_mesh:
        intra["mesh"] = [list(edge) for edge in s.intra_mesh]
    raw = {
        "name": s.name, "kind": "system", "accelerator": accelerator_raw(s.accelerator),
        "gpus_per_node": s.gpus_per_node, "intra_node": intra,
        "inter_node": {"nic_link": link_raw(s.nic_link), "nics_per_node": s.nics_per_node},
        "scale_out": {"topology": so.topology, "nodes_per_leaf": so.nodes_per_leaf,
                      "oversubscription": float(so.oversubscription),
                      "switch_latency": q(so.switch_latency, "time")},
        "sources": _sources(s),
    }
    if s.price_per_gpu_hour is not None:
        raw["price_per_gpu_hour"] = q(s.price_per_gpu_hour, "price")
    return raw


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, numbers.Integral):
        return repr(int(v))
    if isinstance(v, numbers.Real):  # numpy scalars too: repr(float) round-trips exactly
        return repr(float(v))
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return json.dumps(str(v))  # JSON string escapes are valid TOML basic-string escapes


def _emit(table: dict, prefix: str) -> list[str]:
    """Scalars of this table first, then one [header] per sub-table (sources keys quoted)."""
    lines = []
    for key, value in table.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {_value(value)}")
    for key, value in table.items():
        if isinstance(value, dict):
            header = f"{prefix}{key}"
            lines += ["", f"[{header}]"]
            if key == "sources":
                lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()]
            else:
                lines += _emit(value, header + ".")
    return lines


def toml_lines(table: dict) -> list[str]:
    """The TOML lines of a plain table (scalars, then one [header] per sub-table)."""
    return _emit(table, "")
