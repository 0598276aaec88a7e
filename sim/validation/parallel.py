"""Megatron-style tensor-parallel and plain data-parallel training steps of the reference
model, run inside a gloo process group (see ``sim.validation.comm`` for what is compared).

The TP model is cut from the full reference model's weights (column-parallel: output rows of
this rank's heads / FFN columns / vocab rows; row-parallel: the matching input columns, bias
added once after the reduction), so a TP step computes the same loss as the unsplit model;
``tp_step`` returns that difference too, as evidence that the split is the real one.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from sim.model import get_model
from sim.validation.distributed import CollectiveRecorder
from sim.validation.layers import Context, eager_attention, rope
from sim.validation.measure import tokens
from sim.validation.reference import build_model


class _F(torch.autograd.Function):
    """Megatron ``f``: identity forward, all-reduce of the gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, g):
        g = g.contiguous()
        dist.all_reduce(g)
        return g


class _G(torch.autograd.Function):
    """Megatron ``g``: all-reduce forward, identity backward."""

    @staticmethod
    def forward(ctx, x):
        x = x.contiguous()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, g):
        return g


def _rows(lin: nn.Linear, lo: int, hi: int) -> nn.Linear:
    out = nn.Linear(lin.in_features, hi - lo, bias=lin.bias is not None)
    out.weight.data.copy_(lin.weight.data[lo:hi])
    if lin.bias is not None:
        out.bias.data.copy_(lin.bias.data[lo:hi])
    return out


def _cols(lin: nn.Linear, lo: int, hi: int) -> nn.Linear:
    out = nn.Linear(hi - lo, lin.out_features, bias=False)
    out.weight.data.copy_(lin.weight.data[:, lo:hi])
    out.full_bias = lin.bias  # added once, after the all-reduce
    return out


def _row_out(lin: nn.Linear, x):
    y = _G.apply(lin(x))
    return y if lin.full_bias is None else y + lin.full_bias


class TPBlock(nn.Module):
    def __init__(self, block, cfg, tp: int, rank: int):
        super().__init__()
        self.cfg, self.tp, a, f = cfg, tp, block.attn, block.ffn
        self.norm1, self.norm2 = block.norm1, block.norm2
        hq, hk, d = cfg.n_heads // tp, cfg.n_kv_heads // tp, cfg.head_dim
        self.hq, self.hk = hq, hk
        self.q = _rows(a.q_proj, rank * hq * d, (rank + 1) * hq * d)
        self.k = _rows(a.k_proj, rank * hk * d, (rank + 1) * hk * d)
        self.v = _rows(a.v_proj, rank * hk * d, (rank + 1) * hk * d)
        self.o = _cols(a.o_proj, rank * hq * d, (rank + 1) * hq * d)
        n = cfg.ffn_hidden // tp
        self.up = _rows(f.up, rank * n, (rank + 1) * n)
        self.gate = _rows(f.gate, rank * n, (rank + 1) * n) if f.swiglu else None
        self.down = _cols(f.down, rank * n, (rank + 1) * n)

    def attention(self, x, ctx):
        b, s, _ = x.shape
        d = self.cfg.head_dim
        q = self.q(x).view(b, s, self.hq, d).transpose(1, 2)
        k = self.k(x).view(b, s, self.hk, d).transpose(1, 2)
        v = self.v(x).view(b, s, self.hk, d).transpose(1, 2)
        if self.cfg.position.kind == "rope":
            table = ctx.rope_table(d)
            q, k = rope(q, table), rope(k, table)
        out = eager_attention(q, k, v, ctx.blocked).transpose(1, 2).reshape(b, s, -1)
        return _row_out(self.o, out)

    def mlp(self, x):
        if self.gate is not None:
            return _row_out(self.down, F.silu(self.gate(x)) * self.up(x))
        return _row_out(self.down, F.gelu(self.up(x), approximate="tanh"))

    def forward(self, x, ctx):
        x = x + self.attention(_F.apply(self.norm1(x)), ctx)
        return x + self.mlp(_F.apply(self.norm2(x)))


def _vocab_parallel_ce(logits, target, lo: int, hi: int):
    """Megatron vocab-parallel cross entropy: all-reduce max, target logit, sum of exp."""
    logits = logits.float()
    m = logits.max(-1).values.detach()
    dist.all_reduce(m, op=dist.ReduceOp.MAX)
    shifted = logits - m.unsqueeze(-1)
    mine = (target >= lo) & (target < hi)
    local = (target - lo).clamp(0, hi - lo - 1)
    tgt = shifted.gather(-1, local.unsqueeze(-1)).squeeze(-1) * mine
    tgt = _G.apply(tgt)
    sum_exp = _G.apply(shifted.exp().sum(-1))
    return (sum_exp.log() - tgt).mean()


def tp_loss(model, cfg, tok, target, tp: int, rank: int):
    v = cfg.vocab_size // tp
    lo, hi = rank * v, (rank + 1) * v
    ctx = Context(cfg, 0, tok.shape[1], tok.device, torch.float32)
    inside = (tok >= lo) & (tok < hi)
    x = F.embedding((tok - lo).clamp(0, v - 1), model.embed.weight[lo:hi]) * inside.unsqueeze(-1)
    x = _G.apply(x)
    if cfg.position.kind == "learned":
        x = x + model.pos_embed(ctx.positions)
    for blk in [TPBlock(b, cfg, tp, rank) for b in model.blocks]:
        x = blk(x, ctx)
    logits = F.linear(_F.apply(model.norm(x)), model.lm_head.weight[lo:hi])
    return _vocab_parallel_ce(logits, target, lo, hi)


def tp_step(rank: int, world: int, name: str, batch: int, seq: int) -> list:
    """One forward+backward of the TP-split model; the recorded collectives (rank 0 also
    checks that the loss equals the unsplit model's)."""
    cfg = get_model(name)
    model = build_model(cfg)
    tok = tokens(cfg, batch, seq + 1)
    inp, target = tok[:, :-1], tok[:, 1:]
    with CollectiveRecorder() as rec:
        loss = tp_loss(model, cfg, inp, target, world, rank)
        loss.backward()
    ref = F.cross_entropy(model(inp).flatten(0, 1), target.flatten())
    if abs(loss.item() - ref.item()) > 1e-4:
        raise RuntimeError(f"TP loss {loss.item()} != reference {ref.item()}")
    return rec.calls


def dp_step(rank: int, world: int, name: str, batch: int, seq: int) -> list:
    """Forward+backward on this rank's micro-batch, then bucketed fp32 gradient all-reduce."""
    from sim.costs.analytic_comm import bucket_bytes

    cfg = get_model(name)
    model = build_model(cfg)
    tok = tokens(cfg, batch, seq + 1, seed=rank)
    loss = F.cross_entropy(model(tok[:, :-1]).flatten(0, 1), tok[:, 1:].flatten())
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    per_bucket = int(bucket_bytes(world, 4)) // 4
    with CollectiveRecorder() as rec:
        for chunk in grads.split(per_bucket):
            dist.all_reduce(chunk.contiguous())
    return rec.calls
