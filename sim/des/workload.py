"""What each simulated stage runs: the cost model's Ops turned into stream segments.

For every virtual stage (a pipeline chunk: layers from ``sim.costs.layout.StageLayout``;
the first also runs the embedding, the last the LM head), and every pass of a schedule task
(``F`` forward, ``B`` backward = recompute + input gradients (+ weight gradients unless the
schedule defers them), ``W`` deferred weight gradients), the ops come from
``sim.costs.lowering``; compute ops are priced by ``sim.costs.timing.op_time`` and runs of
consecutive compute ops are fused into one segment (expanded back to ops in the records);
each TP/EP collective is a critical-path segment priced by the network simulation; the CP KV
exchange is attached to the attention op it hides behind (ring attention). Nothing here
computes a cost: it only groups the cost model's answers.

MoE layers: every (layer, microbatch) draws its routing (``sim.costs.moe.route`` with the
run's seeded generator; uniform or Zipf(s) shares) and lowers the layer with that draw's
max/mean load (the hot expert sets the pace; with a capacity factor the kernels compute C
slots whatever the skew and the overflow is dropped, as the cost model says). Draws are
quantised to 1e-3 so the lowering cache keeps working.
"""

from __future__ import annotations

import numpy as np

from sim.costs import moe as moe_costs
from sim.costs import stack_effects
from sim.des.pipeline import Segment
from sim.plan import Shape

_B_PASSES = ("recompute", "bwd", "bwd_input")


class Routing:
    """Seeded per-(layer, microbatch) expert-load draws and what they did."""

    def __init__(self, model, plan, seed: int, kind: str = "uniform", zipf_s: float = 1.0):
        self.model, self.rng = model, np.random.default_rng(seed)
        self.kind, self.zipf_s, self.seed = kind, zipf_s, seed
        e = model.moe.n_experts if model.moe else 1
        self.shares = (moe_costs.zipf_shares(e, zipf_s, rng=self.rng) if kind == "zipf"
                       else moe_costs.uniform_shares(e))
        self.tokens = plan.micro_batch * plan.seq_len // plan.cp * plan.ep  # entering an EP group
        self.sampled = kind != "balanced"
        self.draws: list[tuple[int, int, float, float]] = []  # layer, mb, imbalance, dropped

    def imbalance(self, layer: int, mb: int) -> float:
        r = moe_costs.route(self.model, self.tokens, self.shares,
                            rng=self.rng if self.sampled else None)
        self.draws.append((layer, mb, r.imbalance, r.dropped_fraction))
        return round(r.imbalance, 3)


class TrainWork:
    """The pipeline's view of the workload (see ``PipelineRun``)."""

    def __init__(self, model, plan, cluster, chunks: list[list[int]], *, routing=None,
                 zb: bool = False, group_of=None, net=None, private=lambda g, s: False):
        from sim.costs import lowering
        from sim.costs.timing import op_time

        self.model, self.plan, self.cluster, self.chunks = model, plan, cluster, chunks
        self.n_virtual, self.n_microbatches = len(chunks), plan.n_microbatches
        self.lowering, self._op_time, self.routing, self.zb = lowering, op_time, routing, zb
        self.frees_activations_at = "W" if zb else "B"
        self.group_of = group_of  # (group, stage) -> ranks with the stage's rank first
        self.net, self.private = net, private  # private(group, stage): links nobody shares
        self.shape = Shape(plan.micro_batch, plan.seq_len, "train")
        self._cache: dict = {}
        self._imb: dict = {}
        self._act = {moe: _activation_bytes(model, plan, moe) for moe in {
            model.is_moe_layer(i) for i in range(model.n_layers)}}

    # --- interface used by PipelineRun -------------------------------------------------------
    def activation_bytes(self, vs: int) -> float:
        return sum(self._act[self.model.is_moe_layer(i)] for i in self.chunks[vs])

    def p2p_bytes(self, vs: int) -> float:
        from sim.costs.analytic_comm import p2p_message_bytes

        return p2p_message_bytes(self.model, self.plan)

    def grads_in(self, kind: str) -> bool:
        return kind == ("W" if self.zb else "B")

    def task_segments(self, vs: int, kind: str, mb: int, merged: bool = False):
        """[(part, segments)] in execution order; ``merged``: one pseudo-part whose
        consecutive compute segments are joined across parts (no per-part hooks needed)."""
        stage = vs % self.plan.pp
        parts = self._parts(vs)
        if kind != "F":
            parts = parts[::-1]
        out = [(part, self._segments(part, kind, mb, stage)) for part in parts]
        if not merged:
            return out
        key = ("merged", vs, kind, tuple(self._imbalance(p, mb) for p in parts))
        if key not in self._cache:
            self._cache[key] = [(None, _join([seg for _, segs in out for seg in segs]))]
        return self._cache[key]

    # --- building ----------------------------------------------------------------------------
    def _parts(self, vs: int) -> list[int]:
        """Layer ids of a virtual stage in forward order; -1 embedding, n_layers LM head."""
        parts = list(self.chunks[vs])
        if vs == 0:
            parts = [-1] + parts
        if vs == self.n_virtual - 1:
            parts = parts + [self.model.n_layers]
        return parts

    def _segments(self, part: int, kind: str, mb: int, stage: int) -> list[Segment]:
        imb = self._imbalance(part, mb)
        key = (self._kind_of(part), kind, imb, stage)
        if key not in self._cache:
            self._cache[key] = self._build(part, kind, imb, stage)
        return self._cache[key]

    def _imbalance(self, part: int, mb: int) -> float:
        """The (layer, microbatch)'s routing draw, made once and reused by B and W."""
        m = self.model
        if self.routing is None or not 0 <= part < m.n_layers or not m.is_moe_layer(part):
            return 1.0
        if (part, mb) not in self._imb:
            self._imb[(part, mb)] = self.routing.imbalance(part, mb)
        return self._imb[(part, mb)]

    def _kind_of(self, part: int):
        if part < 0 or part >= self.model.n_layers:
            return part if part < 0 else "head"
        return ("moe" if self.model.is_moe_layer(part) else "dense", self._rep_layer(part))

    def _rep_layer(self, part: int) -> int:
        moe = self.model.is_moe_layer(part)
        return next(i for i in range(self.model.n_layers) if self.model.is_moe_layer(i) == moe)

    def _ops(self, part: int, imb: float) -> tuple[list, list]:
        low, m, s, p = self.lowering, self.model, self.shape, self.plan
        if part < 0:
            return list(low.lower_embedding(m, s, p)), list(low.lower_embedding_backward(m, s, p))
        if part >= m.n_layers:
            return list(low.lower_head(m, s, p)), list(low.lower_head_backward(m, s, p))
        layer = self._rep_layer(part)
        kw = {"imbalance": imb} if m.is_moe_layer(layer) else {}
        fwd = list(low.lower_layer(m, layer, s, p, **kw))
        return fwd, list(low.lower_layer_backward(m, layer, s, p, **kw))

    def _build(self, part: int, kind: str, imb: float, stage: int) -> list[Segment]:
        fwd, bwd = self._ops(part, imb)
        if kind == "F":
            ops = fwd
        elif kind == "W":
            ops = [op for op in bwd if op.pass_ == "bwd_weight"]
        else:
            keep = _B_PASSES if self.zb else _B_PASSES + ("bwd_weight",)
            ops = [op for op in bwd if op.pass_ in keep]
        return self._fuse(_attach_cp(ops), part, stage)

    def _fuse(self, ops, part: int, stage: int) -> list[Segment]:
        segs: list[Segment] = []
        run: list = []
        for op in ops:
            if not isinstance(op, tuple) and op.is_comm and self.private(op.group, stage):
                run.append(op)  # uncontended: priced by the network's ideal time, fused
            elif isinstance(op, tuple) or op.is_comm:
                segs += self._compute(run, part, stage)
                run = []
                segs += self._comm(op, part, stage)
            else:
                run.append(op)
        return segs + self._compute(run, part, stage)

    def _time(self, op, stage: int = 0) -> float:
        if op.is_comm:
            ranks = self.group_of(op.group, stage)
            return self.net.call_time(op.collective, op.bytes, ranks) * op.count
        st = self.plan.stack
        acc = self.cluster.accelerator
        t = self._op_time(op, acc, self.plan.dtype, stack_effects.attention_kernel(st))
        return t * stack_effects.op_factor(op, st, self.plan.flash_attention, acc) if st else t

    def _compute(self, run: list, part: int, stage: int = 0) -> list[Segment]:
        if not run:
            return []
        timed = tuple((op, self._time(op, stage)) for op in run)
        st = self.plan.stack
        if st is not None and st.launch_overhead_s:  # eager launch floor (stack_effects)
            busy = sum(t for op, t in timed if not op.is_comm)
            floor = len(run) * st.launch_overhead_s - sum(t for op, t in timed if op.is_comm)
            if 0 < busy < floor:  # the GPU runs behind the CPU that issues it
                timed = tuple((op, t if op.is_comm else t * floor / busy) for op, t in timed)
        comm = sum(t for op, t in timed if op.is_comm)
        busy = sum(t for _, t in timed) - comm
        if st is not None and st.tp_comm_overlap and self.plan.overlap == "stack":
            # TP collectives overlapped with the GEMMs around them (TransformerEngine
            # userbuffers): hidden up to the segment's compute, which they slow by the
            # stack's contention factor (as sim.costs.analytic_layers.PartCost)
            hid = min(comm, busy)
            comm = comm - hid + st.overlap_slowdown * hid
        name = f"L{part} {run[0].pass_} x{len(run)}"
        return [Segment("compute", name, busy, timed,
                        sum(op.total_flops for op in run), comm_s=comm, layer=part)]

    def _comm(self, op, part: int, stage: int) -> list[Segment]:
        if isinstance(op, tuple):  # (attention op, cp comm op): ring attention
            attn, kv = op
            ranks = self.group_of(kv.group, stage)
            return [Segment("ring_attention", f"L{part} ring-attention {attn.pass_}",
                            self._time(attn), ((attn, self._time(attn)),), attn.total_flops,
                            kv.bytes * kv.count, kv.collective, "cp", ranks, part)]
        ranks = self.group_of(op.group, stage)
        seg = Segment("comm", f"L{part} {op.name}", nbytes=op.bytes, collective=op.collective,
                      stream=op.group, ranks=ranks, layer=part)
        return [seg] * op.count


def _join(segs: list[Segment]) -> list[Segment]:
    """Join consecutive compute segments into one (their ops back to back)."""
    out: list[Segment] = []
    for seg in segs:
        if out and seg.kind == "compute" and out[-1].kind == "compute":
            a = out[-1]
            out[-1] = Segment("compute", a.name, a.duration + seg.duration, a.ops + seg.ops,
                              a.flops + seg.flops, comm_s=a.comm_s + seg.comm_s, layer=a.layer)
        else:
            out.append(seg)
    return out


def _attach_cp(ops: list) -> list:
    """Pair each ring (p2p) context-parallel comm op with the nearest attention op of the same
    pass (after it in the forward, before it in the reversed backward): ring attention. An
    all-gathered K/V (stack ``cp_comm = "all_gather"``) stays a blocking collective."""
    ops, paired, out = list(ops), {}, []
    for i, op in enumerate(ops):
        if op.is_comm and op.group == "cp" and op.collective == "send_recv":
            j = _nearest_attention(ops, i, paired)
            if j is not None:
                paired[j] = op
    for i, op in enumerate(ops):
        if op.is_comm and op.group == "cp" and op in paired.values():
            continue
        out.append((op, paired[i]) if i in paired else op)
    return out


def _nearest_attention(ops: list, i: int, taken: dict) -> int | None:
    cands = [j for j, op in enumerate(ops) if op.kind == "attention" and j not in taken
             and op.pass_ == ops[i].pass_]
    return min(cands, key=lambda j: abs(j - i)) if cands else None


def _activation_bytes(model, plan, moe_layer: bool) -> float:
    """One microbatch's stored activations of one layer (cost model, recompute mode
    included)."""
    from sim.costs.memory import activation_bytes_per_layer

    layer = next(i for i in range(model.n_layers) if model.is_moe_layer(i) == moe_layer)
    return float(activation_bytes_per_layer(model, plan, "clustersim", layer))
