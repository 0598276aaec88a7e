"""An installed wheel works outside the repository: the scenario scripts, exercise files and
sweep specs ship as package data (``sim.resources``), so `clustersim exercise list` and
`clustersim report --out DIR` run from another directory with nothing but the installed
package. The wheel is built from this checkout and installed (without dependencies) into a
fresh virtual environment in a temporary directory; its dependencies come from the running
interpreter's site-packages via a .pth line appended after the wheel's own."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv holding the wheel of this checkout."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"  # a clean copy: an in-tree build/ could carry stale modules
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in ("sim", "hardware", "scenarios"):
        shutil.copytree(REPO / name, src / name, ignore=junk)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(root / "dist"), str(src)],
                   check=True, cwd=root)
    (wheel,) = (root / "dist").glob("clustersim-*.whl")
    venv.create(root / "env", with_pip=True)
    py = root / "env" / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, cwd=root)
    target = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path("
                             "'purelib'))"], check=True, capture_output=True, text=True)
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(target.stdout.strip(), "zz_deps.pth").write_text("\n".join(deps) + "\n")
    return root / "env" / "bin"


def _run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(bin_dir / "clustersim"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def test_the_installed_package_is_not_the_checkout(installed, tmp_path):
    out = subprocess.run([str(installed / "python"), "-c", "import sim; print(sim.__file__)"],
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert not Path(out.strip()).is_relative_to(REPO)


def test_exercise_list_works_from_another_directory(installed, tmp_path):
    done = _run(installed, tmp_path, "exercise", "list", "--json")
    assert done.returncode == 0, done.stderr
    ids = {e["id"] for e in json.loads(done.stdout)}
    shipped = {p.stem for p in (REPO / "scenarios" / "exercises").glob("*.toml")}
    assert ids == shipped and len(ids) > 10


def test_report_writes_into_the_given_directory(installed, tmp_path):
    out = tmp_path / "out"
    done = _run(installed, tmp_path, "report", "--out", str(out), "--only",
                "moe_not_an_ensemble", "sweep_scaling", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["failed"] == [] and len(doc["scenarios"]) == 2
    assert (out / "index.md").is_file()
    assert (out / "moe_not_an_ensemble" / "table.csv").is_file()
    assert (out / "sweep_scaling" / "table.csv").is_file()
