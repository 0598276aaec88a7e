"""The catalog file format, as data: which keys each kind of TOML file has, and their types.

A checker walks a parsed TOML table against a schema and raises ``HardwareError`` naming the
file and the dotted key for every kind of mistake: an unknown key (typo), a missing required key,
a value of the wrong type, or a quantity with the wrong unit ("80 GB/s" where bytes are
expected). Every number must also carry a citation: the ``[sources]`` table mirrors the data and
a source string at a key covers that key and everything below it ("peak_flops" covers
"peak_flops.bf16").

Field kinds: ``str``, ``enum`` (one of choices), ``int`` (>= 1), ``fraction`` (0 < x <= 1),
``ratio`` (>= 1), ``qty`` (string with a unit of a dimension, see ``hardware.units``),
``table`` (sub-schema), ``dtypes`` (dtype -> FLOP/s), ``ref`` (a catalog name or an inline
table of that kind), ``mesh`` (list of [gpu_a, gpu_b, ports]) and ``sources``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hardware.kernel_models import ATTENTION_BACKENDS
from hardware.types import DTYPES
from hardware.units import UnitError, parse_quantity
from sim.errors import HardwareError


@dataclass(frozen=True)
class F:
    """One field: its kind, whether required, and the kind's argument (dimension, choices...)."""

    kind: str
    required: bool = True
    arg: Any = None


# kernel models (hardware.kernel_models), optional sub-tables of [efficiency]
GEMM = {
    "tiles": F("tiles"), "tile_k": F("int", False), "k_overhead": F("nonneg", False),
    "min_wave": F("nonneg", False), "sharpness": F("nonneg", False),
    "fixed": F("qty", False, "time"),
}
MEMORY_KERNELS = {
    "norm": F("fraction", False), "act": F("fraction", False), "rope": F("fraction", False),
    "residual": F("fraction", False), "norm_floor": F("qty", False, "time"),
    "act_floor": F("qty", False, "time"), "rope_floor": F("qty", False, "time"),
    "residual_floor": F("qty", False, "time"), "floor": F("qty", False, "time"),
    "cache_bytes": F("qty", False, "bytes"), "cache_speedup": F("nonneg", False),
    "sharpness": F("nonneg", False),
}
ATTENTION_KERNELS = {
    "block_q": F("int", False), "block_k": F("int", False), "kv_block": F("int", False),
    "prefill_seq_overhead": F("qty", False, "time"), "decode_seq_overhead": F("qty", False, "time"),
    "decode_memory_bandwidth": F("fraction", False), "floor": F("qty", False, "time"),
    "sharpness": F("nonneg", False), "attention_max": F("fraction", False),
}
# [efficiency.attention]: the default model (of the fused kernel named by `kernel`) and one
# optional sub-table per other fitted kernel ([efficiency.attention.<backend>], same keys)
ATTENTION_KERNELS = {**ATTENTION_KERNELS, "kernel": F("enum", False, ATTENTION_BACKENDS),
                     **{b: F("table", False, ATTENTION_KERNELS) for b in ATTENTION_BACKENDS}}
EFFICIENCY = {
    "matmul_max": F("fraction"), "matmul_half_flops": F("qty", arg="flops"),
    "attention_max": F("fraction"), "memory_bandwidth": F("fraction"),
    "kernel_overhead": F("qty", arg="time"),
    # optional shape terms of calibrated profiles (hardware.types.EfficiencyModel)
    "matmul_half_dim": F("nonneg", False), "matmul_memory_bandwidth": F("fraction", False),
    "gemv_memory_bandwidth": F("fraction", False),
    "gemv_row": F("qty", False, arg="time"), "repeat_call": F("qty", False, arg="time"),
    "attention_memory_bandwidth": F("fraction", False),
    "gemm": F("table", False, GEMM), "memory": F("table", False, MEMORY_KERNELS),
    "attention": F("table", False, ATTENTION_KERNELS),
}
ACCELERATOR = {
    "name": F("str"), "kind": F("enum", False, ("accelerator",)), "vendor": F("str"),
    "memory": F("qty", arg="bytes"), "memory_bandwidth": F("qty", arg="bandwidth"),
    "peak_flops": F("dtypes"), "efficiency": F("table", arg=EFFICIENCY), "sources": F("sources"),
    "compute_units": F("int", False),  # SMs (NVIDIA) / CUs (AMD): GEMM wave quantisation
}
NCCL = {  # hardware.kernel_models.NcclModel: NCCL protocol regimes over this link
    "ll_latency": F("qty", arg="time"), "ll_step_latency": F("qty", arg="time"),
    "ll_bandwidth": F("fraction"), "simple_latency": F("qty", arg="time"),
    "simple_step_latency": F("qty", arg="time"), "simple_bandwidth": F("fraction"),
    "nvls_bandwidth": F("fraction", False), "nvls_latency": F("qty", False, "time"),
    "group_half": F("nonneg", False), "p2p_latency": F("qty", False, "time"),
    "p2p_bandwidth": F("fraction", False),
}
LINK = {
    "name": F("str"), "kind": F("enum", False, ("link",)),
    "bandwidth_per_direction": F("qty", arg="bandwidth"), "latency": F("qty", arg="time"),
    "sources": F("sources"), "nccl": F("table", False, NCCL),
}
INTRA_NODE = {
    "link": F("ref", arg="link"), "links_per_gpu": F("int"),
    "topology": F("enum", False, ("switch", "full-mesh", "mesh")), "mesh": F("mesh", False),
}
INTER_NODE = {"nic_link": F("ref", arg="link"), "nics_per_node": F("int")}
SCALE_OUT = {
    "topology": F("enum", arg=("fat-tree", "rail-optimized", "none")),
    "nodes_per_leaf": F("int"), "oversubscription": F("ratio", False),
    "switch_latency": F("qty", False, "time"),
}
SYSTEM = {
    "name": F("str"), "kind": F("enum", False, ("system",)),
    "accelerator": F("ref", arg="accelerator"), "gpus_per_node": F("int"),
    "price_per_gpu_hour": F("qty", False, "price"),
    "intra_node": F("table", arg=INTRA_NODE), "inter_node": F("table", arg=INTER_NODE),
    "scale_out": F("table", arg=SCALE_OUT), "sources": F("sources"),
}
SCHEMAS = {"accelerator": ACCELERATOR, "link": LINK, "system": SYSTEM}
NUMERIC = {"int", "fraction", "ratio", "nonneg", "qty", "dtypes", "tiles"}


MAX_INT = 1 << 16  # counts in a hardware file (GPUs per node, ports, SMs): far above any system
POSITIVE_DIMENSIONS = {"bandwidth", "flop_rate", "bytes"}  # zero would divide by zero


def fail(where: str, key: str, message: str) -> HardwareError:
    text = repr(message) if not isinstance(message, str) else message
    return HardwareError(f"{where}: key '{key}': {text}", field=f"{where}: {key}")


def check_table(table: dict, schema: dict[str, F], where: str, prefix: str = "") -> dict:
    """Validate ``table`` against ``schema``; return {key: converted value} (SI floats, ints,
    nested dicts; refs and sources are left as parsed). Raises HardwareError."""
    for key in table:
        if key not in schema:
            known = ", ".join(schema)
            raise fail(where, prefix + key, f"unknown key (allowed here: {known})")
    out = {}
    for key, spec in schema.items():
        path = prefix + key
        if key not in table:
            if spec.required:
                raise fail(where, path, "missing (required)")
            continue
        out[key] = _convert(table[key], spec, where, path)
    return out


def _convert(value: Any, spec: F, where: str, path: str) -> Any:
    kind = spec.kind
    if kind == "str":
        return _typed(value, str, where, path)
    if kind == "enum":
        if not isinstance(value, str) or value not in spec.arg:
            raise fail(where, path, f"must be one of {', '.join(spec.arg)}, got "
                                    f"{_short(value)}")
        return value
    if kind == "int":
        return _positive_int(value, where, path)
    if kind in ("fraction", "ratio", "nonneg"):
        return _dimensionless(value, kind, where, path)
    if kind == "qty":
        return _quantity(value, spec.arg, where, path)
    if kind == "table":
        return check_table(_typed(value, dict, where, path), spec.arg, where, path + ".")
    if kind == "dtypes":
        return _dtypes(value, where, path)
    if kind == "ref":
        if not isinstance(value, (str, dict)):
            raise fail(where, path, f"expected a catalog {spec.arg} name or an inline table, "
                                    f"got {type(value).__name__}")
        return value
    if kind == "mesh":
        return _mesh(value, where, path)
    if kind == "tiles":
        return _tiles(value, where, path)
    return flatten_sources(_typed(value, dict, where, path), where, path)


def _typed(value: Any, typ: type, where: str, path: str) -> Any:
    if not isinstance(value, typ) or isinstance(value, bool):
        raise fail(where, path, f"expected {typ.__name__}, got {type(value).__name__} "
                                f"{_short(value)}")
    return value


def _positive_int(value: Any, where: str, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_INT:
        raise fail(where, path, f"expected an integer from 1 to {MAX_INT}, got {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _dimensionless(value: Any, kind: str, where: str, path: str) -> float:
    if isinstance(value, str):
        raise fail(where, path, f"is dimensionless: write a plain number, not {value!r}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise fail(where, path, f"expected a number, got {type(value).__name__} "
                                f"{_short(value)}")
    if not math.isfinite(value) or abs(value) > 1e30:
        raise fail(where, path, f"must be a finite number, got {value!r}")
    rules = {"fraction": ("0 < x <= 1 (a fraction of peak)", 0 < value <= 1),
             "ratio": (">= 1", value >= 1), "nonneg": (">= 0", value >= 0)}
    rule, ok = rules[kind]
    if not ok:
        raise fail(where, path, f"must be {rule}, got {value!r}")
    return float(value)


def _quantity(value: Any, dimension: str, where: str, path: str) -> float:
    try:
        v = parse_quantity(value, dimension)
    except UnitError as exc:
        raise fail(where, path, str(exc)) from None
    if v > 1e30 or (dimension in POSITIVE_DIMENSIONS and v <= 0):
        raise fail(where, path, f"{value!r} must be a {dimension} above 0 and below 1e30 "
                                "(SI units)")
    return v


def _dtypes(value: Any, where: str, path: str) -> dict[str, float]:
    table = _typed(value, dict, where, path)
    if not table:
        raise fail(where, path, f"needs at least one dtype of {', '.join(DTYPES)}")
    out = {}
    for dtype, text in table.items():
        if dtype not in DTYPES:
            raise fail(where, f"{path}.{dtype}", f"unknown dtype (allowed: {', '.join(DTYPES)})")
        out[dtype] = _quantity(text, "flop_rate", where, f"{path}.{dtype}")
    return out


def _mesh(value: Any, where: str, path: str) -> tuple[tuple[int, int, int], ...]:
    rows = _typed(value, list, where, path)
    out = []
    for i, row in enumerate(rows):
        if (not isinstance(row, list) or len(row) != 3
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in row)):
            raise fail(where, f"{path}[{i}]", f"expected [gpu_a, gpu_b, ports], got "
                                              f"{_short(row)}")
        out.append(tuple(row))
    return tuple(out)


def _tiles(value: Any, where: str, path: str) -> tuple[tuple[int, int, float], ...]:
    rows = _typed(value, list, where, path)
    out = []
    for i, row in enumerate(rows):
        ok = (isinstance(row, list) and len(row) == 3
              and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in row[:2])
              and isinstance(row[2], (int, float)) and not isinstance(row[2], bool)
              and 0 < row[2] <= 1)
        if not ok:
            raise fail(where, f"{path}[{i}]", f"expected [tile_m, tile_n, relative throughput "
                                              f"in (0, 1]], got {row!r}")
        out.append((row[0], row[1], float(row[2])))
    if not out:
        raise fail(where, path, "needs at least one [tile_m, tile_n, throughput] row")
    return tuple(out)


def flatten_sources(table: dict, where: str, prefix: str = "sources") -> dict[str, str]:
    """Nested [sources] table -> {"peak_flops": ..., "efficiency.matmul_max": ...}."""
    flat: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            inner = flatten_sources(value, where, f"{prefix}.{key}")
            flat.update({f"{key}.{k}": v for k, v in inner.items()})
        elif isinstance(value, str) and value.strip():
            flat[key] = value
        else:
            raise fail(where, f"{prefix}.{key}", "a source must be a non-empty string "
                                                  "(datasheet title/URL or paper)")
    return flat


def numeric_paths(table: dict, schema: dict[str, F], prefix: str = "") -> list[str]:
    """Dotted paths of every number in a (validated) raw table, for the source check."""
    paths = []
    for key, spec in schema.items():
        if key not in table:
            continue
        if spec.kind == "table":
            paths += numeric_paths(table[key], spec.arg, f"{prefix}{key}.")
        elif spec.kind == "dtypes":
            paths += [f"{prefix}{key}.{d}" for d in table[key]]
        elif spec.kind in NUMERIC or spec.kind == "mesh":
            paths.append(prefix + key)
    return paths


def check_sources(raw: dict, schema: dict[str, F], sources: dict[str, str], where: str) -> None:
    for path in numeric_paths(raw, schema):
        parts = path.split(".")
        if not any(".".join(parts[:i]) in sources for i in range(1, len(parts) + 1)):
            raise fail(where, path, f"has no source; add sources.{path} = \"<datasheet title "
                                    f"and URL, or paper>\" (a source for '{parts[0]}' covers it)")
