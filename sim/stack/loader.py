"""Strict loader and registry of software stacks: ``sim/data/stacks/<name>.toml`` -> ``Stack``.

File format (one file per stack, the stem is its name)::

    name = "megatron-core-2024"
    kind = "training"            # or "serving"
    description = "..."
    [attention]   kernel = "fa2"
    [fusions]     grad_accumulation, optimizer, bias_gelu, softmax  (booleans)
    [dropout]     rate
    [overlap]     grad_reduce, param_gather, bucket_elements, bucket_elements_per_rank,
                  zero3_prefetch, zero3_granularity, tp_comm, cp_comm, pp_async_p2p,
                  compute_slowdown
    [collectives] algorithms = ["ring", "tree"]
    [framework]   iteration_overhead_s
    [serving]     cuda_graphs, scheduler_overhead_s, prefill_batching
    [sources]     "<section>" or "<section>.<key>" = "paper / code / dataset that says so"

A training stack sets every training knob, a serving stack every serving knob (the attention
kernel and collective algorithms are both). Every knob set must be covered by a source (a
source at a section covers its keys), like the hardware catalog. Any mistake (unknown key,
wrong type, value out of range, missing knob or source) raises ``ConfigError`` naming the file,
the key, the value, the constraint and the fix.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import replace
from pathlib import Path

from sim.errors import ConfigError, UnknownNameError
from sim.stack.types import ALGORITHMS, BY_NAME, FIELDS, KINDS, Stack

DATA = Path(__file__).resolve().parent.parent / "data" / "stacks"
TRAINING_DEFAULT = "megatron-core-2024"
SERVING_DEFAULT = "vllm-2024"  # documented in docs/design-stacks.md
TOP = {"name", "kind", "description", "sources"}
SECTIONS = {f.section for f in FIELDS}


def stack_names() -> list[str]:
    return sorted(p.stem for p in DATA.glob("*.toml"))


def list_stacks() -> list[Stack]:
    return [get_stack(n) for n in stack_names()]


def get_stack(name_or_path) -> Stack:
    """A catalog stack by name, or a ``.toml`` file in catalog format; a Stack passes through."""
    if isinstance(name_or_path, Stack):
        return name_or_path
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text:
        return load_file(Path(text))
    return _catalog(text)


@functools.cache
def _catalog(name: str) -> Stack:
    path = DATA / f"{name}.toml"
    if not path.is_file():
        raise UnknownNameError("stack", name, stack_names())
    return load_file(path)


def load_file(path: Path) -> Stack:
    if not path.is_file():
        raise ConfigError(f"stack file '{path}' does not exist; pass a catalog name "
                          f"({', '.join(stack_names())}) or an existing .toml path")
    try:
        if path.stat().st_size > 1 << 20:  # a stack file is a page of TOML
            raise ConfigError(f"stack file '{path}' is over 1 MiB; give a stack .toml",
                              field=str(path))
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"stack file '{path}': invalid TOML ({e}); fix the syntax",
                          field=str(path)) from None
    except (OSError, UnicodeDecodeError, RecursionError) as e:
        why = " ".join(str(e).split())[:120] or type(e).__name__
        raise ConfigError(f"stack file '{path}': cannot read it as UTF-8 TOML ({why}); give a "
                          "stack .toml", field=str(path)) from None
    return parse(data, str(path))


def _fail(where: str, key: str, value, constraint: str, fix: str):
    raise ConfigError(f"stack file '{where}': {key} = {value!r} {constraint}; {fix}")


def parse(data: dict, where: str) -> Stack:
    """Check ``data`` (a parsed stack file) strictly and build the Stack."""
    for key in data:
        if key not in TOP | SECTIONS:
            _fail(where, key, data[key], "is not a stack key",
                  f"use one of {', '.join(sorted(TOP | SECTIONS))}")
    for key in ("name", "kind"):
        if not isinstance(data.get(key), str):
            _fail(where, key, data.get(key), "is missing or not a string", f"set {key} = \"...\"")
    if data["kind"] not in KINDS:
        _fail(where, "kind", data["kind"], "is not a stack kind", "use training or serving")
    values = _values(data, where)
    sources = _sources(data.get("sources", {}), where)
    for name in values:
        f = BY_NAME[name]
        if f"{f.section}.{f.key}" not in sources and f.section not in sources:
            _fail(where, f"sources.{f.section}.{f.key}", None, "is missing",
                  "cite the paper, code or dataset this setting comes from")
    for f in FIELDS:
        if _required(f, data["kind"]) and f.name not in values:
            _fail(where, f"{f.section}.{f.key}", None, f"is missing (a {data['kind']} stack "
                  "sets every knob)", f"add it under [{f.section}]")
    return Stack(name=data["name"], kind=data["kind"], description=data.get("description", ""),
                 sources=tuple(sorted(sources.items())), **values)


def _required(f, kind: str) -> bool:
    both = f.name in ("attention_kernel", "collective_algorithms")
    return both or (f.serving == (kind == "serving"))


def _values(data: dict, where: str) -> dict:
    by_key = {(f.section, f.key): f for f in FIELDS}
    out = {}
    for section in SECTIONS & data.keys():
        table = data[section]
        if not isinstance(table, dict):
            _fail(where, section, table, "must be a table", f"write it as [{section}]")
        for key, value in table.items():
            f = by_key.get((section, key))
            if f is None:
                known = sorted(k for s, k in by_key if s == section)
                _fail(where, f"{section}.{key}", value, "is not a stack key",
                      f"use one of {', '.join(known)}")
            out[f.name] = check_value(f, value, f"stack file '{where}': {section}.{key}")
    return out


def _sources(table, where: str) -> dict:
    if not isinstance(table, dict):
        _fail(where, "sources", table, "must be a table", "write it as [sources]")
    out = {}
    for key, value in table.items():
        if not isinstance(value, str) or not value.strip():
            _fail(where, f"sources.{key}", value, "must be a non-empty string", "cite it")
        section = key.split(".")[0]
        if section not in SECTIONS or ("." in key and (section, key.split(".", 1)[1]) not in
                                       {(f.section, f.key) for f in FIELDS}):
            _fail(where, f"sources.{key}", value, "names no stack section or key",
                  f"use one of {', '.join(sorted(SECTIONS))} or section.key")
        out[key] = value
    return out


def check_value(f, value, what: str):
    """``value`` of field ``f`` converted to its type, or ConfigError naming ``what``."""
    def bad(constraint: str, fix: str):
        raise ConfigError(f"{what} = {value!r} {constraint}; {fix}")

    if f.kind == "bool":
        if not isinstance(value, bool):
            bad("must be true or false", "write true or false")
        return value
    if f.kind == "enum":
        if value not in f.choices:
            bad("is not allowed", f"use one of {', '.join(f.choices)}")
        return value
    if f.kind == "algorithms":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items or any(
                a not in ALGORITHMS for a in items):
            bad("must be a non-empty list of algorithms", f"use some of {', '.join(ALGORITHMS)}")
        return tuple(dict.fromkeys(items))
    return _number(f, value, bad)


def _number(f, value, bad):
    if isinstance(value, bool) or not isinstance(value, int | float):
        bad("must be a number", "write a plain number")
    if f.kind == "int0":
        if value != int(value) or value < 0:
            bad("must be a whole number >= 0", "e.g. 1")
        return int(value)
    if value < 0 or (f.kind == "fraction0" and value >= 1):
        bad("is out of range", "use a value in [0, 1)" if f.kind == "fraction0" else
            "use a value >= 0")
    return float(value)


def with_overrides(stack: Stack, overrides: dict) -> Stack:
    """``stack`` with some knobs replaced (field name -> raw value, checked like the file)."""
    if not overrides:
        return stack
    vals = {k: check_value(BY_NAME[k], v, BY_NAME[k].flag) for k, v in overrides.items()}
    src = dict(stack.sources)
    for k in vals:
        f = BY_NAME[k]
        src[f"{f.section}.{f.key}"] = "set on the command line"
    return replace(stack, name=f"{stack.name}+overrides", sources=tuple(sorted(src.items())),
                   **vals)
