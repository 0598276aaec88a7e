"""Where sweep results live, so that a rerun resumes and an interruption corrupts nothing.

Every finished point is written at once as its own small JSON record,
``<out>.points/<point_id>.json``, through a temporary file and ``os.replace`` (atomic on
POSIX): a record is either complete or absent. A rerun loads the records of the points it
needs and computes only the others. The table itself (Parquet or CSV) is rebuilt from the
records in point order and written the same way: to ``<out>.tmp-<pid>`` first, renamed over
the previous file only when complete, so an interrupted write leaves the previous table
intact.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sim.errors import ConfigError
from sim.formatting import dumps

FORMATS = (".parquet", ".csv")


def check_out(out) -> Path:
    path = Path(out)
    if path.suffix not in FORMATS:
        raise ConfigError(f"--out '{out}': use a .parquet or .csv file name", flag="--out")
    return path


def records_dir(out: Path) -> Path:
    return out.with_name(out.name + ".points")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    from sim.fileio import atomic_write_bytes as write

    write(path, data)


class RecordStore:
    """Per-point records under ``<out>.points/`` (or in memory when ``out`` is None)."""

    def __init__(self, out: Path | None):
        self.dir = records_dir(out) if out is not None else None
        self.memory: dict[str, dict] = {}
        if self.dir is not None:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"--out: cannot create '{self.dir}': {exc.strerror}; choose "
                                  "a writable path", flag="--out") from None

    def get(self, pid: str) -> dict | None:
        if pid in self.memory or self.dir is None:
            return self.memory.get(pid)
        path = self.dir / f"{pid}.json"
        if not path.is_file():
            return None
        try:
            self.memory[pid] = json.loads(path.read_text())
        except (OSError, ValueError):  # unreadable record: recompute the point
            return None
        return self.memory[pid]

    def put(self, pid: str, record: dict) -> None:
        """Store a row; kept as its JSON round trip so a fresh row and a row read back from
        disk are the same object (same keys, order and types)."""
        data = dumps(record)
        self.memory[pid] = json.loads(data)
        if self.dir is not None:
            atomic_write_bytes(self.dir / f"{pid}.json", data.encode())


def write_table(df: pd.DataFrame, out: Path) -> None:
    """Write ``df`` to ``out`` (.parquet or .csv) atomically (``sim.fileio.atomic_path``)."""
    from sim.fileio import atomic_path

    with atomic_path(out) as tmp:
        if out.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)


def read_table(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)
