"""Data parallelism and ZeRO on the "dp" communication stream.

Each stage's parameters form contiguous buffers (dense weights synchronised over the
data x context parallel group, expert weights over the expert-data-parallel group), laid out
in forward order and cut into byte-range buckets of Megatron-Core's default size
(``sim.costs.analytic_comm.bucket_bytes``). A bucket's collective is issued on the stage's
"dp" stream as soon as every part (layer, embedding, head) overlapping it is ready:

- ZeRO-0: all-reduce of the gradients, during the last microbatch's backward (DDP overlap).
- ZeRO-1: reduce-scatter of the gradients (last microbatch), optimizer on the 1/dp shard,
  all-gather of the updated weights. The all-gather belongs to the boundary between steps and
  hides behind the next forward (Megatron ``--overlap-param-gather``), so it is simulated at
  the start of the step: microbatch 0's forward of a part waits for its buckets.
- ZeRO-2: as ZeRO-1 but the gradients are reduce-scattered after every microbatch.
- ZeRO-3 / FSDP: per microbatch, each part's weights are all-gathered before its forward and
  again before its backward (prefetch: the next part's gather runs while this part computes,
  at most one ahead, at higher stream priority than gradient traffic), the gathered copy
  lives in HBM only while the part runs, and gradients are reduce-scattered per part.

With ``overlap="sum"`` every collective blocks the compute stream where it is issued; with
``overlap="stack"`` what the stack does not overlap blocks (gradient buckets, weight gathers),
buckets take the stack's size, ZeRO-3 prefetches ``zero3_prefetch`` parts ahead (0: on the
critical path) in one call per part or per parameter tensor. When a
straggler replica is simulated, each bucket's collective starts only when every simulated
replica has reached it (a synchronous collective waits for its slowest member).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.costs.analytic_comm import bucket_bytes


@dataclass(frozen=True)
class Buffer:
    name: str  # "dense" | "expert"
    ranks: tuple  # the sync group, this stage's representative first
    parts: tuple  # part ids in forward order
    nbytes: tuple  # bytes per part (grad_bytes per parameter)

    def buckets(self, size: float) -> list[tuple[float, frozenset]]:
        """(bytes, parts overlapping) per bucket, buckets cut over the reversed buffer."""
        order = list(zip(self.parts, self.nbytes, strict=True))[::-1]
        total = sum(self.nbytes)
        out, lo = [], 0.0
        while lo < total:
            hi = min(lo + size, total)
            out.append((hi - lo, frozenset(_overlapping(order, lo, hi))))
            lo = hi
        return out


def _overlapping(order, lo: float, hi: float) -> list:
    out, off = [], 0.0
    for part, b in order:
        if b > 0 and off < hi and off + b > lo:
            out.append(part)
        off += b
    return out


class DataParallel:
    def __init__(self, env, net, gpus, rec, plan, buffers, *, grads_in, barrier=None):
        self.env, self.net, self.gpus, self.rec, self.plan = env, net, gpus, rec, plan
        buffers = [[b for b in bufs if len(b.ranks) > 1] for bufs in buffers]  # dp=1: nothing
        self.buffers, self.barrier, self.grads_in = buffers, barrier, grads_in  # per stage
        self.zero, self.sum = plan.zero, plan.overlap == "sum"
        st = plan.stack if plan.overlap == "stack" else None
        # under a stack: what it does not overlap blocks (sim.costs.analytic_overlap)
        self.block_grads = self.sum or (st is not None and not st.overlap_grad_reduce)
        self.block_params = self.sum or (st is not None and not st.overlap_param_gather)
        self.prefetch = 0 if self.sum else (st.zero3_prefetch if st is not None else 1)
        self.calls = 12 if st is not None and st.zero3_granularity == "parameter" else 1
        self.m = plan.n_microbatches
        self.pending: list = [[] for _ in gpus]  # gradient collectives per stage
        self._ready = [set() for _ in gpus]
        size = bucket_bytes  # Megatron-Core default bucket (elements x grad bytes)
        if st is not None:  # the stack's bucket (0: the whole buffer in one call)
            size = lambda dp, gb: st.bucket_bytes(dp, gb) or float("inf")  # noqa: E731
        self._buckets = [{b.name: b.buckets(size(len(b.ranks), plan.optimizer.grad_bytes))
                          for b in bufs} for bufs in buffers]
        self._step_gathers: list[dict] = [{} for _ in gpus]
        self._z3: dict = {}  # (stage, mb, kind) -> {part: (event gathered, bytes)}
        if self.zero in (1, 2):
            for s in range(len(gpus)):
                self._start_step_gathers(s)

    # --- hooks called by PipelineRun ---------------------------------------------------------
    def needs_hooks(self, task) -> bool:
        """Whether this task must stop between parts (gathers to wait for, grads to send)."""
        if not any(self.buffers):
            return False
        if self.zero == 3:
            return task.kind in ("F", "B") or self.grads_in(task.kind)
        if self.zero in (1, 2) and task.kind == "F" and task.mb == 0:
            return True
        grads_now = self.zero == 2 or task.mb == self.m - 1
        return self.grads_in(task.kind) and grads_now

    def before_layer(self, s: int, part, task, parts):
        """Wait for this part's weights (ZeRO-1/2: microbatch 0's forward; ZeRO-3: every
        forward and backward, with a one-part-ahead prefetch unless overlap is off)."""
        if self.zero in (1, 2) and task.kind == "F" and task.mb == 0:
            procs = (sum(self._step_gathers[s].values(), []) if self.block_params
                     else self._step_gathers[s].get(part, []))
            yield self.env.all_of(procs)
        elif self.zero == 3 and task.kind in ("F", "B"):
            yield from self._zero3_wait(s, part, task, parts)

    def after_layer(self, s: int, part, task) -> list:
        """Free ZeRO-3 gathered weights; launch the gradient buckets this part completes.
        Returns the launched processes (the caller blocks on them when overlap is off)."""
        if self.zero == 3 and task.kind in ("F", "B"):
            _, nbytes = self._z3[(s, task.mb, task.kind)][part]
            self.gpus[s].hbm.free(nbytes, f"gathered weights {part}", "zero3_gathered")
        if not self.grads_in(task.kind):
            return []
        return self._grad_ready(s, part, task.mb)

    def finish(self, s: int):
        """After the pipeline: wait for the outstanding gradient collectives."""
        yield self.env.all_of(self.pending[s])

    # --- gradients ---------------------------------------------------------------------------
    def _grad_ready(self, s: int, part, mb: int) -> list:
        per_mb = self.zero >= 2
        if not per_mb and mb != self.m - 1:
            return []
        rnd = mb if per_mb else 0
        self._ready[s].add((rnd, part))
        kind = "all_reduce" if self.zero == 0 else "reduce_scatter"
        procs = []
        for buf in self.buffers[s]:
            for i, (nb, parts) in enumerate(self._buckets[s][buf.name]):
                if part in parts and all((rnd, p) in self._ready[s] for p in parts):
                    tag = ("grad", buf.name, i, rnd)
                    procs.append(self.env.process(self._collective(s, kind, nb, buf, tag, 1)))
        self.pending[s] += procs
        return procs

    def _collective(self, s, kind, nbytes, buf, tag, priority):
        gpu = self.gpus[s]
        if self.barrier is not None:
            yield self.barrier.arrive((s,) + tag)
        with gpu.streams["dp"].request(priority=priority) as req:
            yield req
            start = self.env.now
            yield from self.net.collective(kind, nbytes, buf.ranks)
            self.rec.add(gpu.rank, "dp", "collective", f"{kind} {buf.name} {tag[2]}", start,
                         self.env.now, nbytes, 0.0, tag[3] if len(tag) > 3 else -1, "dp")

    # --- weights -----------------------------------------------------------------------------
    def _start_step_gathers(self, s: int) -> None:
        """ZeRO-1/2: all-gather the updated weights bucket by bucket, in forward order."""
        for buf in self.buffers[s]:
            for i, (nb, parts) in enumerate(self._buckets[s][buf.name][::-1]):
                proc = self.env.process(self._collective(s, "all_gather", nb, buf,
                                                         ("param", buf.name, i), 0))
                for p in parts:
                    self._step_gathers[s].setdefault(p, []).append(proc)

    def _zero3_wait(self, s, part, task, parts):
        key = (s, task.mb, task.kind)
        if self.prefetch == 0:  # no prefetch: gather right here, on the critical path
            self._z3.setdefault(key, {})[part] = (None, 0.0)
            yield from self._zero3_gather(s, part, task, key)
            return
        if key not in self._z3:  # first part of the task: start the gather chain
            self._z3[key] = {p: (self.env.event(), 0.0) for p in parts}
            self._z3[("started",) + key] = {p: self.env.event() for p in parts}
            self.env.process(self._zero3_chain(s, task, parts))
        yield self._z3[key][part][0]
        self._z3[("started",) + key][part].succeed()

    def _zero3_chain(self, s, task, parts):
        """Gather parts in order, at most ``prefetch`` parts ahead of the compute stream."""
        key = (s, task.mb, task.kind)
        for k, part in enumerate(parts):
            if k >= self.prefetch:
                yield self._z3[("started",) + key][parts[k - self.prefetch]]
            yield from self._zero3_gather(s, part, task, key)
            self._z3[key][part][0].succeed()

    def _zero3_gather(self, s, part, task, key):
        gathered = 0.0
        for buf in self.buffers[s]:
            nb = dict(zip(buf.parts, buf.nbytes, strict=True)).get(part, 0.0)
            for c in range(self.calls if nb > 0 else 0):  # one call per layer or tensor
                # S = the part's full weights; this rank already holds 1/n of them
                yield self.env.process(self._collective(
                    s, "all_gather", nb / self.calls, buf,
                    ("z3", buf.name, part, task.mb, task.kind, c), 0))
                gathered += nb * (1 - 1 / len(buf.ranks))
        self.gpus[s].hbm.alloc(gathered, f"gathered weights {part}", "zero3_gathered")
        event = self._z3[key][part][0]
        self._z3[key][part] = (event, gathered)
