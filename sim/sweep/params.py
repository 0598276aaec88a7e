"""Types and ranges of every sweep parameter, checked when the file is read.

The same limits as the CLI flags (``sim.cli.train`` / ``sim.cli.serve``): a sweep point is a
set of flags written as TOML, so a value the flag would refuse is refused here too, naming
the key (``grid.tp``-style names come from the caller), the value and the constraint, before
any point runs.
"""

from __future__ import annotations

import math

from sim.errors import ConfigError

BIG = 2**20
TOKENS = 2**24


def _int(lo: int, hi: int):
    return ("int", lo, hi)


def _float(lo: float, hi: float, lo_open: bool = False):
    return ("float", lo, hi, lo_open)


def _choice(*values: str):
    return ("choice", values)


TRAIN = {
    "model": ("str",), "system": ("str",), "gpus": _int(1, BIG), "tp": _int(1, BIG),
    "pp": _int(1, BIG), "dp": _int(0, BIG), "ep": _int(1, BIG), "cp": _int(1, BIG),
    "zero": _int(0, 3), "micro_batch": _int(1, TOKENS), "global_batch": _int(1, TOKENS),
    "seq": _int(1, TOKENS), "recompute": _choice("none", "selective", "full"),
    "sequence_parallel": ("bool",), "schedule": ("str",), "virtual_stages": _int(1, 1024),
    "overlap": _choice("stack", "max", "sum"), "engine": _choice("analytic", "des"),
    "seed": _int(0, 2**32 - 1),
}
SERVE = {
    "model": ("str",), "system": ("str",), "tp": _int(1, 4096), "pp": _int(1, 4096),
    "ep": _int(1, 4096), "replicas": _int(1, 1024), "policy": ("str",),
    "max_batch": _int(1, 65536), "block_size": _int(1, 4096), "chunk_tokens": _int(1, TOKENS),
    "batch_timeout_s": _float(0.0, 3600.0), "preemption": ("str",), "router": ("str",),
    "prefill_replicas": _int(1, 1024), "decode_replicas": _int(1, 1024),
    "gpu_memory_utilization": _float(0.0, 1.0, True), "swap_bandwidth": _float(0.0, 1e15, True),
    "dtype": ("str",), "draft_model": ("str?",), "speculative_tokens": _int(0, 64),
    "acceptance": ("spec",), "slo_ttft_s": _float(0.0, 1e6, True),
    "slo_tpot_s": _float(0.0, 1e6, True), "exact_step_times": ("bool",),
    "seed": _int(0, 2**32 - 1), "num_requests": _int(1, 10_000_000),
    "arrival_rate": _float(0.0, 1e7, True), "prompt_tokens": ("length",),
    "output_tokens": ("length",), "arrival": ("arrival",),
}
RULES = {"train": TRAIN, "serve": SERVE}


def check_params(kind: str, params: dict) -> None:
    """Raise ConfigError naming the first parameter whose type or range is wrong."""
    for key, value in params.items():
        rule = RULES[kind].get(key)
        if rule is not None:
            why = _why(rule, value)
            if why:
                raise ConfigError(f"{key} = {value!r}: {why}", field=key)


def _why(rule: tuple, v) -> str:
    kind = rule[0]
    if kind == "str":
        return "" if isinstance(v, str) and v else "must be a non-empty string"
    if kind == "str?":
        return "" if v is None or (isinstance(v, str) and v) else "must be a string"
    if kind == "bool":
        return "" if isinstance(v, bool) else "must be true or false"
    if kind == "int":
        ok = type(v) is int and rule[1] <= v <= rule[2]
        return "" if ok else f"must be an integer from {rule[1]} to {rule[2]}"
    if kind == "float":
        return _why_float(rule, v)
    if kind == "choice":
        return "" if v in rule[1] else f"must be one of {', '.join(rule[1])}"
    return _why_spec(kind, v)


def _why_float(rule: tuple, v) -> str:
    _, lo, hi, lo_open = rule
    ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
          and (v > lo if lo_open else v >= lo) and v <= hi)
    return "" if ok else f"must be a finite number {'>' if lo_open else '>='} {lo:g} and <= {hi:g}"


def _why_spec(kind: str, v) -> str:
    from sim.serving.api import acceptance_rates
    from sim.serving.workload import ArrivalSpec, LengthSpec

    if not isinstance(v, (str, int)) or isinstance(v, bool):
        return "must be a string (or an integer token count)"
    parse = {"length": LengthSpec.parse, "arrival": ArrivalSpec.parse,
             "spec": lambda t: acceptance_rates(str(t), 1, 0)}[kind]
    try:
        parse(v)
    except ConfigError as exc:
        return str(exc)
    return ""
