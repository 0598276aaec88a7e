"""Package layout (the rest of the metadata is in pyproject.toml).

The repository's ``scenarios/`` tree (scenario scripts, exercise TOMLs, sweep specs) ships
inside the wheel as ``sim/_bundled/scenarios`` so an installed clustersim finds it through
``sim.resources``; pyproject.toml cannot map a directory outside the package, hence this file.
"""

from setuptools import find_namespace_packages, setup

BUNDLED = "sim._bundled.scenarios"

setup(
    packages=find_namespace_packages(include=["sim*", "hardware*"]) + [BUNDLED],
    package_dir={BUNDLED: "scenarios"},
    package_data={
        "hardware": ["data/**/*.toml"],
        "sim": ["data/**/*", "model/data/**/*", "cli/lab/templates/*", "cli/lab/static/*"],
        BUNDLED: ["*.py", "exercises/*.toml", "sweeps/*.toml"],
    },
)
