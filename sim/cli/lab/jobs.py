"""Long simulations (serving, the training DES) as cancellable jobs in a separate process.

A job is the CLI command itself (``bridge.run_argv``) run in a spawned process, so cancelling
it is terminating that process and the web server never blocks. Besides the CLI's JSON the
worker returns the over-time data the CLI draws as PNGs: the serving timeline (KV use and
batch per iteration, ``ServingResult.timeline``) and, for ``train --engine des``, the per-GPU
op timeline read back from the Chrome trace the CLI writes with ``--trace`` (to a temporary
file the server picks, never a learner-given path). Progress is the elapsed time against the
last run of the same command kind (a guide, not a promise).
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MAX_LANES = 16  # GPU streams drawn in the DES timeline
MAX_POINTS = 2000  # samples of the serving over-time chart


def _serving_timeline(result) -> dict:
    tl = result.timeline
    step = max(1, len(tl) // MAX_POINTS)
    tl = tl.iloc[::step]
    return {"t_s": [float(x) for x in tl.t_s], "replica": [int(x) for x in tl.replica],
            "kv_utilization": [float(x) for x in tl.kv_utilization],
            "batch": [int(x) for x in tl.batch]}


def _run_serve(argv: list[str]) -> dict:
    import sim.serving
    from sim.cli.lab.bridge import run_argv

    seen = {}
    original = sim.serving.simulate_serving

    def recording(*a, **kw):  # the CLI's own call, observed (this process runs one job)
        seen["result"] = original(*a, **kw)
        return seen["result"]

    sim.serving.simulate_serving = recording
    try:
        doc = run_argv(argv)
    finally:
        sim.serving.simulate_serving = original
    return {"result": doc, "timeline": _serving_timeline(seen["result"])}


def _lanes(events: list[dict]) -> dict:
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e.get("ph") == "M" and e["name"] == "thread_name"}
    ops = [e for e in events if e.get("ph") == "X"]
    lanes = sorted({(e["pid"], e["tid"]) for e in ops})[:MAX_LANES]
    keep = set(lanes)
    out = {"lanes": [f"GPU {p} {names.get((p, t), t)}" for p, t in lanes], "ops": []}
    index = {lane: i for i, lane in enumerate(lanes)}
    for e in ops:
        if (e["pid"], e["tid"]) in keep:
            kind, pass_ = (e.get("cat", "op,") + ",").split(",")[:2]
            out["ops"].append([index[(e["pid"], e["tid"])], e["ts"] / 1e3, e["dur"] / 1e3,
                               f"{kind} {pass_}".strip(), e["name"]])
    return out  # ops: [lane, start ms, duration ms, kind, name]


def _run_train(argv: list[str]) -> dict:
    from sim.cli.lab.bridge import run_argv

    if "--engine=des" not in argv:
        return {"result": run_argv(argv)}
    with tempfile.TemporaryDirectory(prefix="clustersim-lab-") as tmp:
        trace = Path(tmp) / "step.json"
        doc = run_argv([*argv, f"--trace={trace}"])
        events = json.loads(trace.read_text())["traceEvents"]
    return {"result": doc, "timeline": _lanes(events)}


def _worker(kind: str, argv: list[str], conn) -> None:
    from sim.cli.lab.bridge import BadRequest

    try:
        out = _run_serve(argv) if kind == "serve" else _run_train(argv)
        conn.send(("done", out))
    except BadRequest as exc:
        conn.send(("failed", exc.message))
    except Exception as exc:  # noqa: BLE001 (reported to the page, not swallowed)
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


@dataclass
class Job:
    id: str
    kind: str
    argv: list[str]
    process: object
    conn: object
    started: float = field(default_factory=time.monotonic)
    state: str = "running"
    ended: float | None = None
    output: dict | None = None
    error: str | None = None

    def poll(self) -> None:
        if self.state != "running":
            return
        if self.conn.poll():
            self.state, payload = self.conn.recv()
            self.output, self.error = (payload, None) if self.state == "done" else (None, payload)
            self.ended = time.monotonic()
        elif not self.process.is_alive():
            self.state, self.error, self.ended = "failed", "the simulation process died", \
                time.monotonic()


class JobStore:
    """Running and finished jobs of this server (in memory; a restart forgets them)."""

    def __init__(self, keep: int = 32):
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._last_s: dict[str, float] = {}
        self._keep = keep

    def start(self, kind: str, argv: list[str]) -> Job:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(kind, argv, child), daemon=True)
        proc.start()
        child.close()
        with self._lock:
            job = Job(str(next(self._ids)), kind, argv, proc, parent)
            self._jobs[job.id] = job
            self._trim()
        return job

    def _trim(self) -> None:
        done = [j for j in self._jobs.values() if j.state != "running"]
        for j in done[: max(0, len(self._jobs) - self._keep)]:
            del self._jobs[j.id]

    def get(self, job_id: str) -> Job | None:
        job = self._jobs.get(job_id)
        if job is not None:
            job.poll()
            if job.state == "done" and job.ended is not None:
                self._last_s[job.kind] = job.ended - job.started
        return job

    def cancel(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        if job is not None and job.state == "running":
            job.process.terminate()
            job.process.join(timeout=5)
            job.state, job.ended = "cancelled", time.monotonic()
        return job

    def status(self, job: Job) -> dict:
        end = job.ended if job.ended is not None else time.monotonic()
        elapsed = end - job.started
        typical = self._last_s.get(job.kind)
        progress = 1.0 if job.state == "done" else (
            min(0.95, elapsed / typical) if typical else None)
        out = {"id": job.id, "kind": job.kind, "state": job.state, "elapsed_s": elapsed,
               "progress": progress}
        if job.output is not None:
            out.update(job.output)
        if job.error is not None:
            out["error"] = job.error
        return out

    def shutdown(self) -> None:
        for job in list(self._jobs.values()):
            if job.state == "running":
                job.process.terminate()
