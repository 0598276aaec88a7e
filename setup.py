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

import hashlib
import json
from pathlib import Path

from setuptools import Extension, find_namespace_packages, setup
from setuptools.command.build_ext import build_ext

BUNDLED = "sim._bundled.scenarios"
NATIVE = ("sim.serving.decoderun", "sim.serving.lean")  # = sim.native.SOURCES
STAMP = Path("sim/serving/native.json")  # = sim.native.STAMP: source hashes of the build


def _extensions() -> list:
    try:
        from Cython.Build import cythonize
    except ImportError:  # no Cython: the engine runs interpreted
        return []
    mods = [Extension(m, [m.replace(".", "/") + ".py"], optional=True) for m in NATIVE]
    return cythonize(mods, language_level=3, quiet=True)


class BuildNative(build_ext):
    """build_ext that then records which sources the extensions were built from."""

    def run(self) -> None:
        super().run()
        here = Path(__file__).resolve().parent
        hashes = {m: hashlib.sha256((here / (m.replace(".", "/") + ".py")).read_bytes())
                  .hexdigest() for m in NATIVE}
        text = json.dumps(hashes, indent=1, sort_keys=True) + "\n"
        for root in {here, Path(self.build_lib).resolve()}:
            (root / STAMP).parent.mkdir(parents=True, exist_ok=True)
            (root / STAMP).write_text(text)


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
