"""Killing a sweep loses no finished row, duplicates none, and leaves no worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

SWEEP = """\
kind = "serve"
[base]
model = "llama3-8b"
system = "dgx-h100"
num_requests = 2000  # ~0.2 s a point: the sweep is still running when it is killed
arrival_rate = 20.0
prompt_tokens = "256"
output_tokens = "64"
[grid]
seed = [1, 2, 3, 4, 5, 6, 7, 8]
"""


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_two_worker_sweep_leaves_no_orphans_and_resumes_exactly(tmp_path, sig):
    spec, out = tmp_path / "s.toml", tmp_path / "s.csv"
    spec.write_text(SWEEP)
    argv = [sys.executable, "-m", "sim.cli.main", "sweep", str(spec), "--out", str(out),
            "--workers", "2"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    points, workers = Path(str(out) + ".points"), set()
    deadline = time.time() + 300
    while time.time() < deadline and len(list(points.glob("*.json"))) < 1:
        workers |= set(_children(proc.pid))
        time.sleep(0.05)
    workers |= set(_children(proc.pid))
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    time.sleep(3)  # PDEATHSIG / terminate() need a moment
    assert workers and not [w for w in workers if _alive(w)], "orphan pool workers"
    if sig == signal.SIGTERM:  # a clean stop writes what is done as a table
        assert out.exists() and 1 <= len(pd.read_csv(out)) <= 8
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out)
    assert sorted(table["seed"]) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert table["point_id"].is_unique and (table["status"] == "ok").all()
    assert os.path.getsize(out) > 0
