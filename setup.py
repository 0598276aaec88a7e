"""Package layout and the compiled serving engine (the rest of the metadata is in pyproject.toml).

The repository's ``scenarios/`` tree (scenario scripts, exercise TOMLs, sweep specs) ships
inside the wheel as ``sim/_bundled/scenarios`` so an installed clustersim finds it through
``sim.resources``; pyproject.toml cannot map a directory outside the package, hence this file.

The lean serving engine's hot modules (``sim.native.SOURCES``) are plain Python in Cython's
pure-Python mode: Cython compiles them to C extensions here (issue 18: the engine's loop runs
a few times per request). The extensions are optional: where no C compiler is found the
same ``.py`` files run interpreted, with identical results, only slower. ``sim.native``
records the sources' hashes at build time and ignores an extension whose source has changed
since (an edited ``lean.py`` is never shadowed by a stale build).
"""

import importlib.util
import json
import time
from pathlib import Path

from setuptools import Extension, find_namespace_packages, setup
from setuptools.command.build_ext import build_ext

BUNDLED = "sim._bundled.scenarios"
HERE = Path(__file__).resolve().parent


def _native():
    """sim/serving/native.py (standard library only), loaded without importing ``sim``."""
    spec = importlib.util.spec_from_file_location("native", HERE / "sim/serving/native.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


native = _native()


def _extensions() -> list:
    try:
        from Cython.Build import cythonize
    except ImportError:  # no Cython: the engine runs interpreted
        return []
    mods = [Extension(m, [m.replace(".", "/") + ".py"], optional=True) for m in native.SOURCES]
    return cythonize(mods, language_level=3, quiet=True)


class BuildNative(build_ext):
    """build_ext that then records which sources the extensions it built came from: only
    those it wrote in this run (an optional extension that failed to build keeps its old
    entry, so an older extension left in place is still recognised as stale)."""

    def run(self) -> None:
        start = time.time()
        super().run()
        for root in {HERE, Path(self.build_lib).resolve()}:
            stamp = root / "sim/serving" / native.STAMP
            try:
                hashes = json.loads(stamp.read_text())
            except (OSError, ValueError):
                hashes = {}
            for ext in self.extensions:
                built = Path(self.get_ext_fullpath(ext.name))
                if built.exists() and built.stat().st_mtime >= start - 1:
                    hashes[ext.name] = native.source_hash(
                        HERE / (ext.name.replace(".", "/") + ".py"))
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")


setup(
    packages=find_namespace_packages(include=["sim*", "hardware*"]) + [BUNDLED],
    package_dir={BUNDLED: "scenarios"},
    package_data={
        "hardware": ["data/**/*.toml"],
        "sim": ["data/**/*", "model/data/**/*", "cli/lab/templates/*", "cli/lab/static/*"],
        BUNDLED: ["*.py", "exercises/*.toml", "sweeps/*.toml"],
    },
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildNative},
)
