"""Helpers shared by CLI commands: the ``--json`` flag and JSON output on stdout. The
formatting itself lives in ``sim.formatting`` (re-exported here for the commands)."""

from __future__ import annotations

import sys
from typing import Any

from sim.formatting import dumps, fmt_bytes, fmt_time, table

__all__ = ["add_json_flag", "dumps", "emit_json", "fmt_bytes", "fmt_time", "table"]


def add_json_flag(parser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document on stdout and nothing else"
    )


def emit_json(obj: Any) -> int:
    sys.stdout.write(dumps(obj) + "\n")
    return 0
