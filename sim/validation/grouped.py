"""Grouped linear layer for the reference MoE: one weight per expert, stacked ``[E, out, in]``,
applied to contiguous per-expert slices of the permuted tokens (the layout after Megatron-core's
token permutation). This is what a grouped GEMM (Megatron-core GroupedMLP, MegaBlocks; Gale et
al. 2023 Sec. 3) computes: forward writes each slice's output in place, backward writes each
slice's dX and each expert's dW straight into one buffer, so nothing is concatenated, stacked or
zero-filled per expert. On a CPU the slices still run as one BLAS call each (there is no grouped
kernel); FLOPs are exactly those of E separate linears (``FlopCounterMode`` counts every mm)."""

from __future__ import annotations

import itertools

import torch


def _bounds(counts: list[int]) -> list[tuple[int, int, int]]:
    """(expert, first row, end row) of every non-empty slice."""
    ends = list(itertools.accumulate(counts))
    return [(e, end - c, end) for e, (c, end) in enumerate(zip(counts, ends, strict=True)) if c]


class GroupedLinear(torch.autograd.Function):
    """y[a:b] = x[a:b] W[e]^T (+ bias[e]) for expert e's rows a:b."""

    @staticmethod
    def forward(ctx, x, w, bias, counts):
        ctx.counts = counts
        ctx.save_for_backward(x, w)
        ctx.has_bias = bias is not None
        out = x.new_empty(x.shape[0], w.shape[1])
        for e, a, b in _bounds(counts):
            torch.mm(x[a:b], w[e].t(), out=out[a:b])
            if bias is not None:
                out[a:b] += bias[e]
        return out

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        dx, dw = torch.empty_like(x), torch.empty_like(w)
        db = dy.new_zeros(w.shape[:2]) if ctx.has_bias else None
        for e, c in enumerate(ctx.counts):
            if not c:
                dw[e].zero_()  # an expert that received no token has a zero gradient
        for e, a, b in _bounds(ctx.counts):
            torch.mm(dy[a:b], w[e], out=dx[a:b])
            torch.mm(dy[a:b].t(), x[a:b], out=dw[e])
            if db is not None:
                db[e] = dy[a:b].sum(0)
        return dx, dw, db, None


def grouped_linear(x, w, bias, counts: list[int]):
    return GroupedLinear.apply(x, w, bias, counts)
