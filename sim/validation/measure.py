"""Measurements on the reference models: FLOPs, KV-cache bytes, saved activations.

- FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` counts every matmul-like aten op
  (mm/addmm/bmm/baddbmm, 2 FLOPs per multiply-add) of a forward, or of a forward+backward.
  Elementwise ops, norms and softmax are not counted by torch, so the simulator is compared
  with its ``convention="torch"`` breakdown (matmul + attention).
- KV cache: bytes of every tensor the decode cache holds after prefill + decode steps.
- Activations: every tensor autograd saves for backward, captured with
  ``torch.autograd.graph.saved_tensors_hooks`` and deduplicated by storage (views of one
  buffer, e.g. q/k/v slices or a tensor saved by two ops, count once). Parameters are excluded
  (they are weights, not activations).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from sim.model.config import ModelConfig
from sim.validation.layers import Context, KVCache
from sim.validation.reference import Block, build_model


def tokens(cfg: ModelConfig, batch: int, seq: int, seed: int = 0, device="cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.vocab_size, (batch, seq), generator=g).to(device)


def measure_flops(cfg: ModelConfig, batch: int, seq: int, backward: bool) -> int:
    """Matmul + attention FLOPs torch executes for one forward (+ backward) of the model."""
    model = build_model(cfg)
    tok = tokens(cfg, batch, seq)
    with FlopCounterMode(display=False) as counter:
        out = model(tok)
        if backward:
            out.float().sum().backward()
    return counter.get_total_flops()


def measure_kv_bytes(cfg: ModelConfig, batch: int, prompt: int, steps: int,
                     dtype: torch.dtype = torch.bfloat16) -> tuple[int, int]:
    """(bytes held by the cache, tokens in it) after a prefill of ``prompt`` and ``steps``
    single-token decode steps."""
    model = build_model(cfg, dtype=dtype)
    cache = KVCache(cfg.n_layers)
    tok = tokens(cfg, batch, prompt + steps)
    with torch.no_grad():
        model(tok[:, :prompt], cache)
        for i in range(prompt, prompt + steps):
            model(tok[:, i : i + 1], cache)
    return cache.nbytes(), cache.length


class SavedTensors:
    """Context manager recording unique storages autograd saves (parameters excluded)."""

    def __init__(self, exclude: list[torch.Tensor]):
        self._exclude = {p.untyped_storage().data_ptr() for p in exclude}
        self.storages: dict[int, int] = {}

    def _pack(self, t: torch.Tensor):
        st = t.untyped_storage()
        ptr = st.data_ptr()
        if ptr not in self._exclude and st.nbytes() > 0:
            self.storages[ptr] = st.nbytes()
        return t

    def __enter__(self):
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)

    def nbytes_excluding(self, shared: list[torch.Tensor]) -> int:
        """Bytes saved, less storages shared by all layers of a forward (mask, RoPE tables)."""
        skip = {t.untyped_storage().data_ptr() for t in shared}
        return sum(n for ptr, n in self.storages.items() if ptr not in skip)


def measure_layer_activations(cfg: ModelConfig, layer: int, batch: int, seq: int,
                              recompute: str = "none", dtype=torch.bfloat16) -> int:
    """Bytes one transformer block saves for backward with a micro-batch of ``batch`` x
    ``seq`` tokens; ``recompute="full"`` checkpoints the block (only its input is kept)."""
    torch.manual_seed(0)
    block = Block(cfg, layer).to(dtype)
    x = torch.randn(batch, seq, cfg.hidden, dtype=dtype, requires_grad=True)
    ctx = Context(cfg, 0, seq, x.device, dtype)
    with SavedTensors(list(block.parameters())) as saved:
        if recompute == "full":
            out = torch.utils.checkpoint.checkpoint(block, x, ctx, use_reentrant=True)
        else:
            out = block(x, ctx)
    del out
    return saved.nbytes_excluding(ctx.tensors())
