"""Pipeline stages as SimPy processes running a schedule's task lists.

One process per simulated stage walks its task list (``sim.des.schedules``) in order. A task
first waits for its input: a forward of virtual stage ``vs`` needs the activation that virtual
stage ``vs-1`` sends, a backward needs the gradient from ``vs+1`` (events created on demand and
triggered when the p2p transfer lands). It then holds the GPU's compute stream and runs its
segments: compute segments are timeouts, critical-path collectives (tensor/expert/context
parallel) run on the network while the compute stream waits, as Megatron-LM's blocking TP
all-reduces do. Its output leaves on the "pp" comm stream as a separate process, so the next
task starts while the send is in flight (with ``overlap="sum"`` the send blocks instead).

Activations of a (microbatch, chunk) are allocated on HBM when its forward starts and freed
when its backward (ZB-H1: its weight-gradient pass) ends, so the memory timeline shows
GPipe's m live microbatches against 1F1B's p. Bubbles are never computed: they are the gaps
in the compute stream that the records show.
"""

from __future__ import annotations

from dataclasses import dataclass

import simpy

from sim.des.schedules import Task


@dataclass(frozen=True)
class Segment:
    """A run of work on one stream: fused compute ops, or one critical-path collective."""

    kind: str  # "compute" | "comm" | "ring_attention"
    name: str
    duration: float = 0.0  # compute: nominal seconds of compute (scaled by a straggler)
    ops: tuple = ()  # ((Op, seconds), ...); comm ops inside are uncontended collectives
    flops: float = 0.0
    nbytes: float = 0.0  # comm: payload per rank (NCCL size)
    collective: str | None = None
    stream: str = "compute"
    ranks: tuple = ()
    layer: int = -1
    comm_s: float = 0.0  # seconds of fused uncontended collectives (not straggler-scaled)


class PipelineRun:
    """Runs every stage's tasks; ``work`` supplies segments, bytes and ranks (see train.py)."""

    def __init__(self, env, net, gpus, work, schedule, recorder, *, overlap="max", dp=None,
                 stack=None):
        self.env, self.net, self.gpus, self.work = env, net, gpus, work
        self.schedule, self.rec, self.overlap, self.dp = schedule, recorder, overlap, dp
        self.stack = stack if overlap == "stack" else None
        self.p = len(gpus)
        self._arrivals: dict[tuple, simpy.Event] = {}
        self.done = [env.event() for _ in gpus]
        self.on_task = None  # progress callback, called with 1 after every task

    def start(self) -> None:
        for s in range(self.p):
            self.env.process(self._stage(s))

    def _arrival(self, key: tuple) -> simpy.Event:
        if key not in self._arrivals:
            self._arrivals[key] = self.env.event()
        return self._arrivals[key]

    def _stage(self, s: int):
        gpu = self.gpus[s]
        for task in self.schedule[s]:
            yield from self._wait_input(s, task)
            with gpu.compute.request() as req:
                yield req
                yield from self._run_task(s, task)
            yield from self._send_output(s, task)
            if self.on_task is not None:
                self.on_task(1)
        self.done[s].succeed()

    def _vs(self, s: int, task: Task) -> int:
        return task.chunk * self.p + s

    def _wait_input(self, s: int, task: Task):
        vs, last = self._vs(s, task), self.work.n_virtual - 1
        if task.kind == "F" and vs > 0:
            yield self._arrival(("F", task.mb, vs))
        elif task.kind == "B" and vs < last:
            yield self._arrival(("B", task.mb, vs))

    def _run_task(self, s: int, task: Task):
        gpu, vs = self.gpus[s], self._vs(s, task)
        act = self.work.activation_bytes(vs)
        label = f"{task.kind}{task.mb}.c{task.chunk}"
        if task.kind == "F":
            gpu.hbm.alloc(act, f"activations {label}", "activations")
        hooks = self.dp is not None and self.dp.needs_hooks(task)
        parts = self.work.task_segments(vs, task.kind, task.mb, merged=not hooks)
        order = [part for part, _ in parts]
        for part, segs in parts:
            if hooks:
                yield from self.dp.before_layer(s, part, task, order)
            for seg in segs:
                yield from self.run_segment(gpu, seg, task)
            if hooks:
                launched = self.dp.after_layer(s, part, task)
                if self.dp.block_grads and launched:
                    yield self.env.all_of(launched)
        if task.kind == self.work.frees_activations_at:
            gpu.hbm.free(act, f"activations {label}", "activations")

    def run_segment(self, gpu, seg: Segment, task: Task):
        start = self.env.now
        if seg.kind == "compute":
            yield self.env.timeout(seg.duration * gpu.slowdown * self._contention(gpu)
                                   + seg.comm_s)
        elif seg.kind == "ring_attention":
            yield from self._ring_attention(gpu, seg, task)
            return
        else:
            yield from self.net.collective(seg.collective, seg.nbytes, seg.ranks)
        self.rec.add(gpu.rank, seg.stream, seg.kind, seg.name, start, self.env.now,
                     seg.nbytes, seg.flops, task.mb, task.kind, seg.ops, gpu.slowdown)

    def _contention(self, gpu) -> float:
        """1 + the stack's overlap slowdown while a DP or PP collective runs beside this
        compute segment (collective kernels take SMs and HBM; sim.costs.analytic_overlap)."""
        st = self.stack
        if st is None or not st.overlap_slowdown:
            return 1.0
        busy = any(gpu.streams[k].users for k in ("dp", "pp") if k in gpu.streams)
        return 1.0 + st.overlap_slowdown if busy else 1.0

    def _ring_attention(self, gpu, seg: Segment, task: Task):
        """Ring attention (Liu et al. 2023, Sec. 3): cp blocks of the attention; block i
        computes while the next KV block travels to the ring neighbour (with overlap off the
        exchange happens first). Records its own compute blocks and KV sends."""
        cp = len(seg.ranks)
        block, kv = seg.duration * gpu.slowdown / cp, seg.nbytes / (cp - 1)
        for i in range(cp):
            send = [self.env.process(self._kv_send(gpu, seg, kv, task))] if i < cp - 1 else []
            if self.overlap == "sum" and send:
                yield send[0]
            start = self.env.now
            yield self.env.timeout(block)
            self.rec.add(gpu.rank, "compute", "attention", f"{seg.name} block {i}", start,
                         self.env.now, 0.0, seg.flops / cp, task.mb, task.kind)
            if send:
                yield send[0]

    def _kv_send(self, gpu, seg: Segment, nbytes: float, task: Task):
        start = self.env.now
        yield from self.net.collective("send_recv", nbytes, seg.ranks)
        self.rec.add(gpu.rank, "cp", "p2p", f"{seg.name} kv", start, self.env.now, nbytes,
                     0.0, task.mb, task.kind)

    def _send_output(self, s: int, task: Task):
        vs, last = self._vs(s, task), self.work.n_virtual - 1
        if task.kind == "F" and vs < last:
            key, to = ("F", task.mb, vs + 1), (vs + 1) % self.p
        elif task.kind == "B" and vs > 0:
            key, to = ("B", task.mb, vs - 1), (vs - 1) % self.p
        else:
            return
        proc = self.env.process(self._p2p(s, to, self.work.p2p_bytes(vs), key, task))
        if self.overlap == "sum" or (self.stack is not None and not self.stack.pp_async_p2p):
            yield proc

    def _p2p(self, s: int, to: int, nbytes: float, key: tuple, task: Task):
        gpu = self.gpus[s]
        if to == s:  # interleaving wrap-around on a single stage
            self._arrival(key).succeed()
            return
        with gpu.streams["pp"].request() as req:
            yield req
            start = self.env.now
            ranks = (gpu.rank, self.gpus[to].rank)
            yield from self.net.collective("send_recv", nbytes, ranks)
            self.rec.add(gpu.rank, "pp", "p2p", f"send {task.kind}{task.mb}", start,
                         self.env.now, nbytes, 0.0, task.mb, task.kind)
        self._arrival(key).succeed()
