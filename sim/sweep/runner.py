"""Run a sweep: skip what is stored, compute the rest in parallel, assemble one table.

Backends: this process (``workers = 1``), local processes
(``concurrent.futures.ProcessPoolExecutor``) or a Dask distributed cluster
(``distributed.Client(address).map``). Whatever the backend, the driver process receives
each finished row and stores it at once (``sim.sweep.store``), so workers need no shared
file system, and the table is assembled in point order: the same sweep gives the same table
on every backend and every rerun.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import pandas as pd

from sim.sweep.execute import run_point
from sim.sweep.store import RecordStore, check_out, write_table


@dataclass
class SweepRun:
    table: pd.DataFrame
    computed: int
    skipped: int
    backend: str
    out: str | None


def run_sweep(spec, *, out=None, workers: int | None = None, dask_scheduler: str | None = None,
              progress: bool = False) -> SweepRun:
    """Run every point of ``spec`` (a ``SweepSpec``) not already stored beside ``out``."""
    out = out or spec.out
    path = check_out(out) if out else None
    store = RecordStore(path)
    todo = [p for p in spec.points if store.get(p.point_id) is None]
    address = dask_scheduler or spec.dask_scheduler
    n_workers = workers or spec.workers
    backend = "dask" if address else ("processes" if n_workers > 1 and len(todo) > 1
                                      else "in-process")
    try:
        for point, row in _execute(todo, backend, n_workers, address, progress):
            store.put(point.point_id, row)
        table = assemble([store.get(p.point_id) for p in spec.points])
        if path is not None:
            write_table(table, path)
    except KeyboardInterrupt:  # Ctrl-C / SIGTERM, even while the table is written:
        _write_partial(spec, store, path)  # keep what is done, as a complete table
        raise
    return SweepRun(table, len(todo), len(spec.points) - len(todo), backend,
                    str(path) if path else None)


def _write_partial(spec, store, path) -> None:
    """Write the rows computed so far (point order, atomically); a rerun computes the rest."""
    rows = [r for r in (store.get(p.point_id) for p in spec.points) if r is not None]
    if path is not None and rows:
        write_table(assemble(rows), path)


def _execute(todo: list, backend: str, workers: int, address, progress: bool):
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="sweep", unit="point", disable=not progress, leave=False)
    if backend == "in-process":
        runs = ((p, run_point(p)) for p in todo)
    elif backend == "processes":
        runs = _processes(todo, workers)
    else:
        runs = _dask(todo, address)
    for item in runs:
        bar.update()
        yield item
    bar.close()


def _die_with_parent() -> None:
    """Worker initializer: exit when the driver dies, even by SIGKILL (no orphan workers).

    Linux: prctl(PR_SET_PDEATHSIG, SIGKILL) (man 2 prctl); elsewhere a daemon thread that
    polls the parent pid once a second."""
    import ctypes
    import os
    import signal
    import threading
    import time

    parent = os.getppid()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the driver's handler is inherited by fork
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0 and os.getppid() == parent:
            return  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _processes(todo: list, workers: int):
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_die_with_parent)
    futures = {pool.submit(run_point, p): p for p in todo}
    try:
        for fut in as_completed(futures):
            yield futures[fut], fut.result()
    except BaseException:  # Ctrl-C, SIGTERM, a failing point: stop every worker now
        procs = list((getattr(pool, "_processes", None) or {}).values())  # no public API in 3.11
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
        raise
    pool.shutdown(wait=True)


def _dask(todo: list, address: str):
    from distributed import Client
    from distributed import as_completed as dask_completed

    try:
        client = Client(address, timeout="30s")
    except (OSError, TimeoutError, ValueError) as exc:
        from sim.errors import ConfigError

        why = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ConfigError(f"--dask-scheduler {address}: cannot reach a Dask scheduler ({why}); "
                          "start one (`dask scheduler`) or drop the flag to run locally",
                          flag="--dask-scheduler") from None
    with client:
        futures = client.map(run_point, todo, key=[f"clustersim-point-{p.point_id}"
                                                   for p in todo])
        by_key = {f.key: p for f, p in zip(futures, todo, strict=True)}
        for fut in dask_completed(futures):
            yield by_key[fut.key], fut.result()


def assemble(rows: list[dict]) -> pd.DataFrame:
    """One tidy row per point, in point order; missing values are None (Parquet-safe)."""
    df = pd.DataFrame(rows)
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].map(lambda v: None if isinstance(v, float) and math.isnan(v)
                                  else v)
    return df
