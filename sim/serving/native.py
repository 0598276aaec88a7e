"""Which build of the lean engine's hot modules runs: compiled, or the Python source.

``SOURCES`` are plain Python in Cython's pure-Python mode; ``setup.py`` compiles them to C
extensions when a compiler is there (issue 18: the lean engine's loop runs a few times per
request, and compiled it costs ~0.9 s instead of ~2.1 s for 100,000 requests) and writes
``STAMP``, the SHA-256 of each source it compiled (the ``.py`` and its ``.pxd`` of C types). Python imports an extension before a
``.py`` of the same name, so an extension built from an older source would silently run old
code; ``use_fresh_sources`` (called when ``sim.serving`` is imported) checks the hashes
and routes the import of any module whose extension is stale, or unstamped, to its source.
Both builds give identical results (the serving tests run on whichever is installed); only
the speed differs. ``CLUSTERSIM_INTERPRETED=1`` runs the sources everywhere (the tests
compare the two builds with it).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.util
import json
import os
import sys
from pathlib import Path

SOURCES = ("sim.serving.decoderun", "sim.serving.lean")  # compiled by setup.py
INTERPRETED = "CLUSTERSIM_INTERPRETED"  # =1: run the sources even where compiled
STAMP = "native.json"  # beside this file: {module: ``source_hash`` of what was compiled}
HERE = Path(__file__).resolve().parent


def source_hash(src: Path) -> str:
    """SHA-256 of a module's source and, when it has one, its ``.pxd`` (its C types)."""
    pxd = src.with_suffix(".pxd")
    extra = pxd.read_bytes() if pxd.exists() else b""
    return hashlib.sha256(src.read_bytes() + b"\0" + extra).hexdigest()


def stale_extensions(here: Path = HERE) -> dict[str, Path]:
    """{module: its source} for every module of ``SOURCES`` with an extension in ``here``
    that was not built from the source now there."""
    names = {p.name.split(".", 1)[0] for p in here.iterdir() if p.suffix in (".so", ".pyd")}
    try:
        built = json.loads((here / STAMP).read_text())
    except (OSError, ValueError):
        built = {}
    out = {}
    for module in SOURCES:
        short = module.rsplit(".", 1)[1]
        src = here / f"{short}.py"
        if short in names and built.get(module) != source_hash(src):
            out[module] = src
    return out


class _Sources(importlib.abc.MetaPathFinder):
    """Imports the listed modules from their ``.py`` source."""

    def __init__(self, sources: dict[str, Path]):
        self.sources = sources

    def find_spec(self, name, path=None, target=None):
        src = self.sources.get(name)
        return importlib.util.spec_from_file_location(name, src) if src else None


def use_fresh_sources() -> None:
    """Route stale extensions' imports to their sources (a no-op when none is stale);
    with ``CLUSTERSIM_INTERPRETED=1`` in the environment, every one of ``SOURCES``."""
    stale = stale_extensions()
    if os.environ.get(INTERPRETED) == "1":
        stale = {m: HERE / f"{m.rsplit('.', 1)[1]}.py" for m in SOURCES}
    if stale and not any(isinstance(f, _Sources) for f in sys.meta_path):
        sys.meta_path.insert(0, _Sources(stale))


def compiled() -> dict[str, bool]:
    """{module: whether the compiled extension runs} (imports them)."""
    return {m: not importlib.import_module(m).__file__.endswith(".py") for m in SOURCES}
