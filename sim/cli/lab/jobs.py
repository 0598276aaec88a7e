"""Long simulations (serving, the training DES) as cancellable jobs in a separate process.

A job is the CLI command itself (``bridge.run_argv``) run in a spawned process, so cancelling
it is terminating that process and the web server never blocks. Besides the CLI's JSON the
worker returns the over-time data the CLI draws as PNGs: the serving timeline (KV use and
batch per iteration, ``ServingResult.timeline``) and, for ``train --engine des``, the per-GPU
op timeline of one GPU per pipeline stage (``DesResult.ops``), observed as the CLI's own call
returns it. Progress is the elapsed time against the
last run of the same command kind (a guide, not a promise).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing as mp
import threading
import time
from dataclasses import dataclass, field

MAX_SEGMENTS = 6000  # bars in the DES timeline (back-to-back ops of a kind merged beyond)
MAX_POINTS = 2000  # samples of the serving over-time chart


def _serving_timeline(result) -> dict:
    tl = result.timeline
    step = max(1, len(tl) // MAX_POINTS)
    tl = tl.iloc[::step]
    return {"t_s": [float(x) for x in tl.t_s], "replica": [int(x) for x in tl.replica],
            "kv_utilization": [float(x) for x in tl.kv_utilization],
            "batch": [int(x) for x in tl.batch]}


@contextlib.contextmanager
def _observe(module, name: str):
    """Record what ``module.name`` returns while the CLI's own command calls it (a worker
    process runs one job, so the swap is seen by nobody else)."""
    seen, original = {}, getattr(module, name)

    def recording(*a, **kw):
        seen["result"] = original(*a, **kw)
        return seen["result"]

    setattr(module, name, recording)
    try:
        yield seen
    finally:
        setattr(module, name, original)


def _run_serve(argv: list[str]) -> dict:
    import sim.serving
    from sim.cli.lab.bridge import run_argv

    with _observe(sim.serving, "simulate_serving") as seen:
        doc = run_argv(argv)
    return {"result": doc, "timeline": _serving_timeline(seen["result"])}


PASSES = {"F": "forward", "B": "backward", "W": "weight grad", "optimizer": "optimizer"}


def _labels(ops):
    """What a bar says: the compute stream's pass, or the communication stream's group."""
    compute = ops["stream"] == "compute"
    passes = ops["pass"].map(lambda p: PASSES.get(p, str(p)))
    return ("compute " + passes).where(compute, ops["stream"] + " communication")


def _segments(ops, eps_s: float):
    """Back-to-back ops with the same label on one lane (gap <= ``eps_s``) become one bar."""
    ops = ops.sort_values(["lane", "start"], kind="stable")
    prev_end = ops.groupby("lane")["end"].shift()
    new = ((ops["label"] != ops["label"].shift()) | (ops["lane"] != ops["lane"].shift())
           | ((ops["start"] - prev_end) > eps_s))
    seg = new.cumsum()
    return ops.groupby(seg, sort=True).agg(lane=("lane", "first"), start=("start", "min"),
                                           end=("end", "max"), label=("label", "first"),
                                           name=("name", "first"), n=("name", "size"))


def des_timeline(result) -> dict:
    """The per-GPU timeline of one GPU per pipeline stage (replica 0), every stream, as
    merged bars; when still too many, the first ``MAX_SEGMENTS`` bars in time."""
    ops = result.ops
    ops = ops[ops["rank"].isin(result.stage_ranks)].copy()
    lanes = sorted({(int(r), s) for r, s in zip(ops["rank"], ops["stream"], strict=True)},
                   key=lambda x: (x[0], x[1] != "compute", x[1]))
    index = {lane: i for i, lane in enumerate(lanes)}
    ops["lane"] = [index[(int(r), s)] for r, s in zip(ops["rank"], ops["stream"], strict=True)]
    ops["label"] = _labels(ops)
    span = float(ops["end"].max()) if len(ops) else 0.0
    seg = _segments(ops, span / 2000).sort_values("start")  # gaps < 0.05% of the step
    shown = span if len(seg) <= MAX_SEGMENTS else float(seg["end"].iloc[:MAX_SEGMENTS].max())
    seg = seg.iloc[:MAX_SEGMENTS]
    return {"lanes": [f"GPU {r} {s}" for r, s in lanes], "span_ms": 1e3 * span,
            "shown_ms": 1e3 * shown,
            "ops": [[int(o.lane), 1e3 * o.start, 1e3 * (o.end - o.start), o.label, o.name,
                     int(o.n)] for o in seg.itertuples()]}  # [lane, ms, ms, kind, name, ops]


def _run_train(argv: list[str]) -> dict:
    import sim.des
    from sim.cli.lab.bridge import run_argv

    if "--engine=des" not in argv:
        return {"result": run_argv(argv)}
    with _observe(sim.des, "simulate_train") as seen:
        doc = run_argv(argv)
    return {"result": doc, "timeline": des_timeline(seen["result"])}


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
