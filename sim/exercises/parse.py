"""Reading a learner's answer: a number, optionally with a unit or a percent sign.

"320 GiB", "0.32 TiB", "50%", "1.5x", "12 ms", "2.4e9" are read and converted to the
exercise's display unit when the two units measure the same thing (bytes, time, FLOPs,
counts, ratios); "1,5" (a decimal comma), "1e400" (not finite), negative values, zero (except
as a percentage) and
units of another dimension are refused with a message naming the fix.
"""

from __future__ import annotations

import math
import re

from sim.errors import ConfigError

# unit -> (dimension, SI scale)
_UNITS = {
    "s": ("time", 1.0), "sec": ("time", 1.0), "ms": ("time", 1e-3), "us": ("time", 1e-6),
    "µs": ("time", 1e-6), "min": ("time", 60.0),
    "b": ("bytes", 1.0), "bytes": ("bytes", 1.0), "kb": ("bytes", 1e3), "mb": ("bytes", 1e6),
    "gb": ("bytes", 1e9), "tb": ("bytes", 1e12), "kib": ("bytes", 2.0**10),
    "mib": ("bytes", 2.0**20), "gib": ("bytes", 2.0**30), "tib": ("bytes", 2.0**40),
    "flop": ("flop", 1.0), "kflop": ("flop", 1e3), "mflop": ("flop", 1e6),
    "gflop": ("flop", 1e9), "tflop": ("flop", 1e12), "pflop": ("flop", 1e15),
    "params": ("params", 1.0), "billion params": ("params", 1e9), "b params": ("params", 1e9),
    "m params": ("params", 1e6),
    "tokens": ("tokens", 1.0), "billion tokens": ("tokens", 1e9), "b tokens": ("tokens", 1e9),
    "t tokens": ("tokens", 1e12),
    "x": ("ratio", 1.0), "%": ("ratio", 1e-2), "sequences": ("count", 1.0),
    "seqs": ("count", 1.0), "tokens/s": ("rate", 1.0), "tok/s": ("rate", 1.0),
}
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(.*?)\s*$")


def _dim(unit: str) -> tuple[str, float]:
    return _UNITS[unit.lower()] if unit.lower() in _UNITS else _UNITS[unit]


def parse_answer(text, unit: str, flag: str = "--answer") -> float:
    """The value of ``text`` in the exercise's display ``unit``; ConfigError if unreadable."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _checked(float(text), text, unit, flag)
    raw = str(text)
    if re.fullmatch(r"\s*[+-]?\d+,\d+\s*\S*", raw):
        raise ConfigError(f"{flag} '{raw}': use a decimal point, not a comma (e.g. "
                          f"'{raw.replace(',', '.').strip()}')")
    m = _NUMBER.match(raw.replace("_", ""))
    if not m:
        raise ConfigError(f"{flag} '{raw}': not a number; give a number in {unit}, "
                          f"optionally with a unit (e.g. '12.5' or '12.5 {unit}')")
    value = float(m.group(1))
    return _checked(_convert(value, m.group(2), unit, raw, flag), raw, unit, flag)


def _convert(value: float, given: str, unit: str, raw: str, flag: str) -> float:
    if not given or given.lower() == unit.lower():
        return value
    if given.lower() not in _UNITS:
        raise ConfigError(f"{flag} '{raw}': unknown unit '{given}'; answer in {unit} (or a "
                          f"unit of the same kind: {_same_kind(unit)})")
    (dim_a, scale_a), (dim_b, scale_b) = _dim(given), _dim(unit)
    if dim_a != dim_b:
        raise ConfigError(f"{flag} '{raw}': '{given}' is not a unit of {unit}; answer in "
                          f"{unit} (or {_same_kind(unit)})")
    return value * scale_a / scale_b


def _same_kind(unit: str) -> str:
    dim = _dim(unit)[0]
    return ", ".join(u for u, (d, _) in _UNITS.items() if d == dim)


def _checked(value: float, raw, unit: str, flag: str) -> float:
    if not math.isfinite(value):
        raise ConfigError(f"{flag} '{raw}': not a finite number; give a finite positive "
                          f"number in {unit}")
    if value < 0 or (value == 0 and unit != "%"):
        raise ConfigError(f"{flag} '{raw}': must be positive (every answer here is a positive "
                          f"amount in {unit}{'; percentages may be 0' if unit == '%' else ''})")
    return value
