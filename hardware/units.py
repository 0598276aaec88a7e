"""Quantities with units, as written in the hardware TOML files.

Every dimensional number in a catalog file is a string "<number> <unit>" ("80 GiB",
"3.35 TB/s", "989.4 TFLOP/s", "400 Gb/s", "4 us"), so a file can never silently mix up GB and
GiB, bytes and bits, or FLOP/s and bytes/s. Units are case-sensitive on purpose: "Gb/s" is
gigabits, "GB/s" gigabytes. Decimal prefixes are powers of 1000 (as datasheets use them), binary
prefixes (KiB, MiB, GiB, TiB) powers of 1024. The parsed value is SI (bytes, bytes/s, FLOP,
FLOP/s, s, USD/h). A plain number is accepted only for dimensionless fields.
"""

from __future__ import annotations

import math
import re

_DEC = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BIN = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}


def _prefixed(base: str, scale: float = 1.0, binary: bool = False) -> dict[str, float]:
    table = {f"{p}{base}": f * scale for p, f in _DEC.items()}
    if binary:
        table.update({f"{p}{base}": f * scale for p, f in _BIN.items()})
    return table


def _bandwidth_units() -> dict[str, float]:
    table = {k + "/s": v for k, v in _prefixed("B", binary=True).items()}
    table.update({k + "/s": v for k, v in _prefixed("b", scale=1 / 8).items()})  # bits: /8
    return table


# dimension -> {unit: factor to SI}
UNITS: dict[str, dict[str, float]] = {
    "bytes": _prefixed("B", binary=True),
    "bandwidth": _bandwidth_units(),
    "flops": _prefixed("FLOP"),
    "flop_rate": {k + "/s": v for k, v in _prefixed("FLOP").items()},
    "time": {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9},
    "price": {"USD/h": 1.0},
}

# How the writer spells each dimension (SI base unit, so repr() round-trips exactly).
BASE_UNIT = {"bytes": "B", "bandwidth": "B/s", "flops": "FLOP", "flop_rate": "FLOP/s",
             "time": "s", "price": "USD/h"}

_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z/]+)\s*$")


class UnitError(ValueError):
    """Raised with a message naming what was expected; the loader adds file and key."""


def parse_quantity(text: object, dimension: str) -> float:
    """'3.35 TB/s' -> 3.35e12 for dimension 'bandwidth'. Raises UnitError on anything else."""
    allowed = UNITS[dimension]
    example = f'"1.5 {next(u for u in allowed if u.startswith(("G", "T", "m", "u", "U")))}"'
    if not isinstance(text, str):
        raise UnitError(f"expected a string with a {dimension} unit such as {example}, "
                        f"got {type(text).__name__} {text!r}")
    match = _QUANTITY.match(text)
    if not match:
        raise UnitError(f"expected '<number> <unit>' such as {example}, got {text!r}")
    number, unit = match.groups()
    if unit not in allowed:
        raise UnitError(f"unit '{unit}' is not a {dimension} unit; use one of "
                        f"{', '.join(sorted(allowed))}")
    value = float(number) * allowed[unit]
    if not math.isfinite(value) or value < 0:
        raise UnitError(f"expected a finite non-negative {dimension}, got {text!r}")
    return value


def format_quantity(value: float, dimension: str) -> str:
    """SI value -> string the parser reads back to exactly the same float."""
    return f"{float(value)!r} {BASE_UNIT[dimension]}"
