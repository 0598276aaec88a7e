"""The same sweep on a Dask distributed cluster gives the same table as the local run.

The cluster is real and local: ``dask scheduler`` and ``dask worker`` run as separate
processes on 127.0.0.1 with a free port, and are shut down at the end."""

from __future__ import annotations

import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from sim.sweep import parse_sweep, run_sweep

distributed = pytest.importorskip("distributed")

SWEEP = """
kind = "train"
[base]
model = "tiny-llama"
system = "dgx-h100"
gpus = 8
global_batch = 16
seq = 64
[grid]
tp = [1, 2, 4]
zero = [0, 1]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scheduler():
    dask = str(Path(sys.executable).with_name("dask"))
    address = f"tcp://127.0.0.1:{_free_port()}"
    port = address.rsplit(":", 1)[1]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", port,
                               "--no-dashboard"], **quiet)]
    procs.append(subprocess.Popen([dask, "worker", address, "--nworkers", "1", "--nthreads",
                                   "1", "--no-dashboard", "--no-nanny"], **quiet))
    try:
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            _stop(p)


def _stop(proc: subprocess.Popen) -> None:
    """Wait for a terminated process; kill it if it has not exited after 30 s (a loaded
    machine can be slow to shut a Dask worker down, which is not what these tests check)."""
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def test_dask_cluster_gives_the_local_table(scheduler, tmp_path):
    spec = parse_sweep(tomllib.loads(SWEEP), name="dask")
    local = run_sweep(spec, out=tmp_path / "local.parquet")
    remote = run_sweep(spec, out=tmp_path / "dask.parquet", dask_scheduler=scheduler)
    assert (remote.backend, remote.computed) == ("dask", 6)
    pd.testing.assert_frame_equal(local.table, remote.table)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "dask.parquet"), local.table)


def test_dask_scheduler_from_the_sweep_file_and_resume(scheduler, tmp_path):
    doc = tomllib.loads(SWEEP) | {"dask_scheduler": scheduler}
    spec = parse_sweep(doc, name="dask")
    assert spec.dask_scheduler == scheduler
    first = run_sweep(spec, out=tmp_path / "d.csv")
    second = run_sweep(spec, out=tmp_path / "d.csv")
    assert (first.computed, second.computed, second.skipped) == (6, 0, 6)
    pd.testing.assert_frame_equal(first.table, second.table)
