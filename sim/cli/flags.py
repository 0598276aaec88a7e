"""Typed command-line flags: every flag is parsed into a checked value before any simulation.

Use these as argparse ``type=`` functions (``p.add_argument("--tp", type=pos_int(hi=4096))``).
A bad value becomes one line naming the flag, the value, the constraint and a fix, e.g.
``--tp 'abc': must be an integer in [1, 4096]``; ``CliParser.error`` turns every argparse
complaint (missing flag, bad choice, unknown flag) into a ``FlagError`` so ``sim.cli.main``
prints it on one line (or as ``{"error": {...}}`` under ``--json``) with exit status 2.

Rules the builders enforce (the fuzz suite in tests/test_fuzz_cli.py checks them):
* integers are plain base-10 integers (``1e3`` and ``8.0`` are refused, not truncated);
* floats must be finite (``nan``/``inf`` are refused everywhere);
* every number has an upper bound; bounds that depend on the machine come from ``sim.limits``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys

from sim.errors import FlagError


class FlagValueError(argparse.ArgumentTypeError, ValueError):
    """Raised by a type function; argparse prefixes the flag name."""


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _range_text(lo, hi, lo_open: bool = False) -> str:
    if lo is not None and hi is not None and not lo_open:
        return f"in [{_fmt(lo)}, {_fmt(hi)}]"
    if lo is not None and hi is not None:
        return f"in ({_fmt(lo)}, {_fmt(hi)}]"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_fmt(lo)}"
    return f"<= {_fmt(hi)}" if hi is not None else "any value"


def parse_int(text: str, lo: int | None = None, hi: int | None = None) -> int:
    """A base-10 integer in [lo, hi] (ValueError-free: raises FlagValueError)."""
    s = str(text).strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,30}", s):  # ASCII digits only
        raise FlagValueError(f"'{text}' is not an integer; must be an integer "
                             f"{_range_text(lo, hi)}")
    v = int(s)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise FlagValueError(f"{v} is out of range; must be an integer {_range_text(lo, hi)}")
    return v


def parse_float(text: str, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite float in [lo, hi] (open ends as asked)."""
    try:
        v = float(str(text).strip())
    except ValueError:
        raise FlagValueError(f"'{text}' is not a number; must be a finite number "
                             f"{_range_text(lo, hi, lo_open)}") from None
    if not math.isfinite(v):
        raise FlagValueError(f"'{text}' is not finite; must be a finite number "
                             f"{_range_text(lo, hi, lo_open)}")
    bad_lo = lo is not None and (v <= lo if lo_open else v < lo)
    bad_hi = hi is not None and (v >= hi if hi_open else v > hi)
    if bad_lo or bad_hi:
        rng = _range_text(lo, hi, lo_open) + (" (exclusive)" if hi_open else "")
        raise FlagValueError(f"{v:g} is out of range; must be a number {rng}")
    return v


def int_flag(lo: int | None = None, hi: int | None = None):
    """argparse type: integer in [lo, hi]."""
    def conv(text: str) -> int:
        return parse_int(text, lo, hi)
    conv.__name__ = "integer"
    conv.spec = ("int", lo, hi)  # read by the fuzz suite (tests/fuzzkit.py)
    return conv


def pos_int(hi: int = 2**20):
    """argparse type: integer in [1, hi]."""
    return int_flag(1, hi)


def float_flag(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
               hi_open: bool = False):
    """argparse type: finite float in [lo, hi] (``lo_open``: lo excluded)."""
    def conv(text: str) -> float:
        return parse_float(text, lo, hi, lo_open, hi_open)
    conv.__name__ = "number"
    conv.spec = ("float", lo, hi, lo_open, hi_open)
    return conv


def pos_float(hi: float = 1e12):
    """argparse type: finite float in (0, hi]."""
    return float_flag(0.0, hi, lo_open=True)


SEED = int_flag(0, 2**32 - 1)  # numpy.random.default_rng takes any int >= 0; 32 bits is plenty


def int_list(lo: int = 1, hi: int = 2**20, max_items: int = 64):
    """argparse type: comma-separated integers in [lo, hi] (sorted, unique)."""
    def conv(text: str) -> list[int]:
        items = [x for x in str(text).split(",") if x.strip()]
        if not items or len(items) > max_items:
            raise FlagValueError(f"'{text}' must be 1 to {max_items} comma-separated integers "
                                 f"{_range_text(lo, hi)}, e.g. 64,128")
        return sorted({parse_int(x, lo, hi) for x in items})
    conv.__name__ = "integer list"
    return conv


def choice_list(choices: tuple[str, ...]):
    """argparse type: a comma-separated subset of ``choices``."""
    def conv(text: str) -> tuple[str, ...]:
        items = tuple(x.strip() for x in str(text).split(",") if x.strip())
        bad = [x for x in items if x not in choices]
        if bad or not items:
            raise FlagValueError(f"'{text}' is not a comma-separated subset of "
                                 f"{', '.join(choices)}")
        return tuple(dict.fromkeys(items))
    conv.__name__ = "list"
    return conv


_ARG_RE = re.compile(r"^argument ([^:]+): (.*)$", re.S)


def _flag_of(name: str) -> str:
    """argparse's 'argument --tp/-t' -> '--tp'."""
    return name.split("/")[0].strip()


class CliParser(argparse.ArgumentParser):
    """ArgumentParser whose errors are ``FlagError`` (one line, flag named) instead of
    usage-text-and-exit; subparsers created from it inherit the behaviour."""

    def _get_values(self, action, arg_strings):
        # argparse drops a lone '--' value (``--seq=--``) and returns [] untyped: refuse it
        if action.option_strings and action.nargs is None and list(arg_strings) == ["--"]:
            raise argparse.ArgumentError(action, "'--' is not a value; give one after the flag")
        return super()._get_values(action, arg_strings)

    def error(self, message: str):  # noqa: D401 - argparse API
        message = " ".join(str(message).split())
        m = _ARG_RE.match(message)
        if m:
            flag, why = _flag_of(m.group(1)), m.group(2)
            raise FlagError(f"{flag}: {why}; see `{self.prog} --help`", flag=flag)
        flag = first_flag(message)
        raise FlagError(f"{message}; see `{self.prog} --help`", flag=flag)


def first_flag(message: str) -> str | None:
    m = re.search(r"(--[a-z][a-z0-9-]*)", message)
    if m:
        return m.group(1)
    m = re.search(r"arguments: ([A-Za-z_.|]+)", message)
    return m.group(1) if m else None


def wants_json(argv: list[str] | None) -> bool:
    """Whether ``--json`` is among the arguments (looked at before parsing can fail)."""
    return "--json" in (sys.argv[1:] if argv is None else argv)


def explicit_flags(argv: list[str] | None) -> set[str]:
    """The long flags the user typed (``--x`` and ``--x=v``), to tell defaults from choices."""
    args = sys.argv[1:] if argv is None else argv
    return {a.split("=", 1)[0] for a in args if isinstance(a, str) and a.startswith("--")}
