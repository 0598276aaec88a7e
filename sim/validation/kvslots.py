"""A preallocated, slot-based KV cache for batched decoding of sequences of different lengths
(what continuous batching needs; vLLM's paged cache with a block size of the whole capacity).

Each running sequence owns a row of per-layer K/V buffers ``[slots, n_kv_heads, capacity,
head_dim]``; a decode step writes one token per row at that row's own length and attends over
the first ``max(lengths) + 1`` positions with a per-row causal mask (``Context`` with
``lengths``), so nothing is copied per step: the step reads the cache once, as the simulator
assumes. Rows are kept compact (a finished row is overwritten by the last one).
"""

from __future__ import annotations

import torch

from sim.model.config import ModelConfig
from sim.validation.layers import Context, KVCache


class SlotCache:
    def __init__(self, cfg: ModelConfig, slots: int, capacity: int, dtype=torch.float32,
                 device="cpu"):
        shape = (slots, cfg.n_kv_heads, capacity, cfg.head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.n_layers)]
        self.lengths = torch.zeros(slots, dtype=torch.long, device=device)
        self.n = 0  # active rows: 0..n-1

    def context(self, cfg: ModelConfig, seq: int, device, dtype) -> Context:
        return Context(cfg, 0, seq, device, dtype, lengths=self.lengths[: self.n])

    def update(self, layer: int, new: tuple, dim: int) -> tuple:
        k, v = new  # [n, hk, 1, d]
        rows = torch.arange(self.n, device=k.device)
        pos = self.lengths[: self.n]
        self.k[layer][rows, :, pos] = k[:, :, 0]
        self.v[layer][rows, :, pos] = v[:, :, 0]
        end = int(pos.max()) + 1
        return self.k[layer][: self.n, :, :end], self.v[layer][: self.n, :, :end]

    def advance(self, n: int) -> None:
        self.lengths[: self.n] += n

    def load(self, prefilled: KVCache) -> int:
        """Copy a batch-1 prefill cache into a new row; returns the row."""
        row, length = self.n, prefilled.length
        for layer, (k, v) in enumerate(prefilled.layers):
            self.k[layer][row, :, :length] = k[0]
            self.v[layer][row, :, :length] = v[0]
        self.lengths[row] = length
        self.n += 1
        return row

    def remove(self, row: int) -> None:
        """Free ``row``, moving the last active row into it."""
        last = self.n - 1
        if row != last:
            for buf in self.k + self.v:
                buf[row] = buf[last]
            self.lengths[row] = self.lengths[last]
        self.n -= 1
