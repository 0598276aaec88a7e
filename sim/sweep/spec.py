"""A sweep file: which points to run, and where.

TOML, small on purpose::

    kind = "train"              # or "serve"
    workers = 2                 # optional: local processes (default 1 = this process)
    dask_scheduler = "tcp://127.0.0.1:8786"   # optional: run on a Dask cluster instead
    out = "results.parquet"     # optional: where the table goes (.parquet or .csv)

    [base]                      # parameters every point shares
    model = "llama3-8b"
    system = "dgx-h100"
    gpus = 8
    global_batch = 64
    seq = 4096

    [grid]                      # cartesian product, in the order written (last varies fastest)
    tp = [1, 2, 4, 8]
    recompute = ["none", "full"]

    [[points]]                  # optional explicit list (each crossed with the grid)
    pp = 2

A point is ``base`` + one ``points`` entry + one grid combination, with every parameter
missing from it set to its default (``TRAIN_DEFAULTS`` / ``SERVE_DEFAULTS``): that full
dictionary is the point's effective config, and its stable hash (SHA-256 of the canonical
JSON with the clustersim version) is the key resume uses. Unknown keys are errors that list
the known ones.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from sim import __version__
from sim.errors import ConfigError
from sim.serving.config import ServingConfig

TRAIN_DEFAULTS = {
    "model": None, "system": None, "gpus": None, "tp": 1, "pp": 1, "dp": 0, "ep": 1, "cp": 1,
    "zero": 0, "micro_batch": 1, "global_batch": None, "seq": None, "recompute": "none",
    "sequence_parallel": False, "schedule": "1f1b", "virtual_stages": 1, "overlap": "stack",
    "engine": "analytic", "seed": 0,
}
SERVE_DEFAULTS = {f.name: f.default for f in fields(ServingConfig)} | {
    "num_requests": 100, "arrival_rate": 1.0, "prompt_tokens": "512", "output_tokens": "128",
    "arrival": "poisson",
}
DEFAULTS = {"train": TRAIN_DEFAULTS, "serve": SERVE_DEFAULTS}
TOP_KEYS = {"kind", "workers", "dask_scheduler", "out", "base", "grid", "points", "name"}


@dataclass(frozen=True)
class Point:
    index: int
    kind: str
    params: dict  # effective config: every parameter, defaults filled in

    @property
    def point_id(self) -> str:
        return point_id(self.kind, self.params)

    def config_json(self) -> str:
        return canonical({"kind": self.kind, "params": self.params, "version": __version__})


@dataclass(frozen=True)
class SweepSpec:
    name: str
    kind: str
    points: tuple
    workers: int = 1
    dask_scheduler: str | None = None
    out: str | None = None


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def point_id(kind: str, params: dict) -> str:
    text = canonical({"kind": kind, "params": params, "version": __version__})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


MAX_POINTS = 100_000  # a sweep table of more rows is a job for a cluster, not one command
MAX_FILE_BYTES = 1 << 20  # a sweep file is a few lines; 1 MiB is far above any real one


def load_sweep(path) -> SweepSpec:
    """Read a sweep TOML file (ConfigError naming the problem when it is malformed)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"sweep file '{path}' is over {MAX_FILE_BYTES} bytes; a sweep "
                              "file holds a few lines of TOML", field=str(path))
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"sweep file '{path}' does not exist", field=str(path)) from None
    except (OSError, UnicodeDecodeError, RecursionError) as exc:
        why = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise ConfigError(f"cannot read sweep file '{path}': {why}; give a UTF-8 TOML file",
                          field=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"sweep file '{path}' is not valid TOML: {exc}",
                          field=str(path)) from None
    try:
        return parse_sweep(doc, name=path.stem)
    except ConfigError as exc:
        raise ConfigError(f"sweep file '{path}': {exc}",
                          field=f"{path}: {exc.field}" if exc.field else str(path)) from None


def _top(doc: dict, key: str, types, default, what: str):
    value = doc.get(key, default)
    if value is default or (isinstance(value, types) and not isinstance(value, bool)):
        return value
    raise ConfigError(f"{key} = {value!r} must be {what}", field=key)


def parse_sweep(doc: dict, name: str = "sweep") -> SweepSpec:
    unknown = sorted(set(doc) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"unknown sweep key(s) {unknown}; known: {sorted(TOP_KEYS)}",
                          field=str(unknown[0]))
    kind = doc.get("kind", "train")
    if not isinstance(kind, str) or kind not in DEFAULTS:
        raise ConfigError(f"kind = {kind!r} is not one of \"train\", \"serve\"", field="kind")
    workers = doc.get("workers", 1)
    if type(workers) is not int or not 1 <= workers <= 64:
        raise ConfigError(f"workers = {workers!r}: use an integer from 1 to 64", field="workers")
    address = _top(doc, "dask_scheduler", str, None, "a string like \"tcp://host:8786\"")
    if address is not None:
        check_address(address, "dask_scheduler")
    base = _top(doc, "base", dict, {}, "a table ([base])")
    grid = _top(doc, "grid", dict, {}, "a table ([grid]) of lists")
    listed = _top(doc, "points", list, [{}], "an array of tables ([[points]])")
    if not all(isinstance(x, dict) for x in listed):
        raise ConfigError("points must be an array of tables ([[points]] with key = value "
                          "lines)", field="points")
    points = expand(kind, base, grid, listed)
    return SweepSpec(_top(doc, "name", str, name, "a string"), kind, points, workers, address,
                     _top(doc, "out", str, None, "a file name ending .parquet or .csv"))


def check_address(address: str, where: str) -> str:
    """A Dask scheduler address: ``tcp://HOST:PORT`` (or tls://, or HOST:PORT)."""
    import re

    m = re.fullmatch(r"(?:(tcp|tls)://)?([A-Za-z0-9_.\-\[\]:]+?):(\d{1,5})", address.strip())
    if not m or not 0 < int(m.group(3)) < 65536:
        raise ConfigError(f"{where} '{address}' is not a Dask scheduler address; use "
                          "tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786",
                          flag=where if where.startswith("--") else None,
                          field=None if where.startswith("--") else where)
    return address


def expand(kind: str, base: dict, grid: dict, listed: list) -> tuple:
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{key} must be a non-empty list of values",
                              field=f"grid.{key}")
    size = len(listed or [{}])
    for values in grid.values():
        size *= len(values)
    if size > MAX_POINTS:
        raise ConfigError(f"the grid has {size} points, above the limit of {MAX_POINTS}; "
                          "split the sweep into several files or shorten the grid lists",
                          field="grid")
    combos = [dict(zip(grid, vals, strict=True)) for vals in itertools.product(*grid.values())]
    out = []
    for extra in listed or [{}]:
        for combo in combos:
            params = effective(kind, {**base, **extra, **combo})
            out.append(Point(len(out), kind, params))
    if not out:
        raise ConfigError("the sweep has no points")
    return tuple(out)


def effective(kind: str, given: dict) -> dict:
    defaults = DEFAULTS[kind]
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown {kind} parameter(s) {unknown}; known: {sorted(defaults)}",
                          field=str(unknown[0]))
    params = {**defaults, **given}
    missing = sorted(k for k, v in params.items() if v is None and k in _REQUIRED[kind])
    if missing:
        raise ConfigError(f"{kind} sweep points need {missing} (set them in [base] or [grid])",
                          field=missing[0])
    from sim.sweep.params import check_params

    check_params(kind, params)
    return params


_REQUIRED = {"train": {"model", "system", "gpus", "global_batch", "seq"}, "serve": set()}
