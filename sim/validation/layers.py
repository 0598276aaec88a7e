"""Reference PyTorch building blocks, built from a ``ModelConfig``.

These are deliberately plain ("eager") implementations: attention is two explicit matmuls
around a softmax, so ``torch.utils.flop_counter`` counts it the same way on CPU and GPU (the
fused CPU SDPA kernel is not in torch's FLOP registry), and every tensor saved for backward is
one we can name in the activation model. Patterned attention (sliding window, dilated) is a
mask over the dense score matrix, so its *executed* FLOPs are dense; the simulator's
``convention="torch"`` accounts for that (see docs/design-validation.md).

Sources: GPT-2 block (Radford et al. 2019); RMSNorm (Zhang & Sennrich 2019); SwiGLU (Shazeer
2020); RoPE (Su et al. 2021, Eq. 34); GQA (Ainslie et al. 2023); linear attention (Katharopoulos
et al. 2020, Eq. 4-6, feature map elu+1); MLA (DeepSeek-AI 2024, DeepSeek-V2 Sec. 2.1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sim.model.config import ModelConfig


class _RMSNormFn(torch.autograd.Function):
    """Fused-kernel style RMSNorm (Zhang & Sennrich 2019): y = x / rms(x) * w. Saves exactly
    what fused kernels (Apex, Megatron) save: the input and the fp32 1/rms per token."""

    @staticmethod
    def forward(ctx, x, weight, eps):
        rstd = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, weight, rstd)
        return (x.float() * rstd).to(x.dtype) * weight

    @staticmethod
    def backward(ctx, gy):
        x, weight, rstd = ctx.saved_tensors
        xhat = x.float() * rstd
        gw = (gy.float() * xhat).reshape(-1, x.shape[-1]).sum(0).to(weight.dtype)
        g = gy.float() * weight.float()
        gx = rstd * (g - xhat * (g * xhat).mean(-1, keepdim=True))
        return gx.to(x.dtype), gw, None


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return _RMSNormFn.apply(x, self.weight, self.eps)


def make_norm(cfg: ModelConfig, dim: int) -> nn.Module:
    if cfg.norm == "layernorm":
        return nn.LayerNorm(dim, eps=1e-5)
    return RMSNorm(dim)


def rope(x: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate pairs (x[..., :d/2], x[..., d/2:]) by the angles in ``table`` (Su et al. Eq. 34)."""
    cos, sin = table
    d = x.shape[-1]
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Context:
    """What every layer of one forward shares: query/key positions, the attention mask and
    RoPE cos/sin tables (computed once per forward, as real implementations do, so they are
    not per-layer activations)."""

    def __init__(self, cfg: ModelConfig, start: int, seq: int, device, dtype,
                 lengths: torch.Tensor | None = None):
        self.cfg, self.dtype = cfg, dtype
        if lengths is None:  # one shared position range
            self.positions = torch.arange(start, start + seq, device=device)
            self.k_positions = torch.arange(start + seq, device=device)
            self.blocked = ~attention_mask(cfg, self.positions, self.k_positions)
        else:  # batched decode: row b continues after its own lengths[b] cached tokens
            self.positions = lengths[:, None] + torch.arange(seq, device=device)  # [b, s]
            self.k_positions = torch.arange(int(lengths.max()) + seq, device=device)
            allowed = self.k_positions[None, None, :] <= self.positions[:, :, None]
            self.blocked = ~allowed[:, None, None]  # [b, 1, 1, s, sk] for GQA-folded scores
        self._tables: dict = {}

    def rope_table(self, d: int):
        if d not in self._tables:
            theta = self.cfg.position.rope_theta
            inv = theta ** (-torch.arange(0, d, 2, device=self.positions.device,
                                          dtype=torch.float32) / d)
            ang = self.positions.to(torch.float32)[..., None] * inv  # [(b,) s, d/2]
            if ang.dim() == 3:
                ang = ang[:, None]  # [b, 1, s, d/2] broadcasts over heads
            self._tables[d] = (ang.cos().to(self.dtype), ang.sin().to(self.dtype))
        return self._tables[d]

    def tensors(self) -> list[torch.Tensor]:
        return [self.positions, self.k_positions, self.blocked] + [t for tab in self._tables.values() for t in tab]


def attention_mask(cfg: ModelConfig, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
    """Boolean [sq, sk] mask of allowed (query, key) pairs for the configured pattern."""
    diff = q_pos[:, None] - k_pos[None, :]
    allowed = diff >= 0
    kind = cfg.attention.kind
    if kind == "sliding_window":
        allowed &= diff < cfg.attention.window
    elif kind == "dilated":
        allowed &= diff % cfg.attention.dilation == 0
    return allowed


def eager_attention(q, k, v, blocked: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d), -inf where ``blocked``) v; K/V heads broadcast over query
    groups (GQA) by folding the group into the query axis, so K/V are never copied."""
    b, h, sq, d = q.shape
    hk = k.shape[1]
    q = q.reshape(b, hk, (h // hk) * sq, d)
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
    scores = scores.view(b, hk, h // hk, sq, -1).masked_fill(blocked, float("-inf"))
    probs = torch.softmax(scores, dim=-1).view(b, hk, (h // hk) * sq, -1)
    out = torch.matmul(probs, v.to(probs.dtype))
    return out.view(b, h, sq, v.shape[-1])


def linear_attention(q, k, v, state):
    """Causal linear attention with phi = elu + 1 (Katharopoulos et al. 2020, Eq. 4-6).

    ``state`` is (S, z): S = sum_j phi(k_j) v_j^T [b, h, d, dv] and z = sum_j phi(k_j)
    [b, h, d]; it replaces the KV cache and has constant size. Returns (out, new_state)."""
    b, h, s, d = q.shape
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    kv = torch.matmul(fk.unsqueeze(-1), v.unsqueeze(-2))  # [b, h, s, d, dv] outer products
    S = torch.cumsum(kv, dim=2) + state[0].unsqueeze(2)
    z = torch.cumsum(fk, dim=2) + state[1].unsqueeze(2)
    num = torch.matmul(fq.unsqueeze(-2), S).squeeze(-2)  # [b, h, s, dv]
    den = (fq * z).sum(-1, keepdim=True) + 1e-6
    return num / den, (S[:, :, -1], z[:, :, -1])


class KVCache:
    """Per-layer cache. Standard attention: K and V [b, n_kv_heads, L, head_dim] grown by
    concatenation, so the bytes held are exactly L tokens' worth. MLA: the compressed latent
    and the shared RoPE key [b, L, kv_lora_rank + rope_dim]. Linear attention: the (S, z)
    recurrent state, constant in L."""

    def __init__(self, n_layers: int):
        self.layers: list[tuple | None] = [None] * n_layers
        self.dims: list[int] = [2] * n_layers
        self.length = 0

    def context(self, cfg: ModelConfig, seq: int, device, dtype) -> Context:
        return Context(cfg, self.length, seq, device, dtype)

    def update(self, layer: int, new: tuple, dim: int) -> tuple:
        """Append this step's keys/values (along ``dim``) and return everything cached."""
        self.dims[layer] = dim
        self.layers[layer] = append(self.layers[layer], new, dim)
        return self.layers[layer]

    def advance(self, n: int) -> None:
        self.length += n

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` tokens (speculative decoding rolls back rejected drafts)."""
        for i, entry in enumerate(self.layers):
            if entry is not None:
                self.layers[i] = tuple(t.narrow(self.dims[i], 0, n) for t in entry)
        self.length = n

    def tensors(self) -> list[torch.Tensor]:
        return [t for entry in self.layers if entry is not None for t in entry]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors())


def append(entry: tuple | None, new: tuple, dim: int) -> tuple:
    if entry is None:
        return new
    return tuple(torch.cat((old, x), dim=dim) for old, x in zip(entry, new, strict=True))


class Attention(nn.Module):
    """Multi-head / grouped-query / multi-query attention with optional RoPE and patterns."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.q_proj = nn.Linear(h, cfg.q_dim, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(h, cfg.kv_dim, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(h, cfg.kv_dim, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(cfg.q_dim, h, bias=cfg.linear_bias)

    def forward(self, x, ctx: Context, cache: KVCache | None = None, layer: int = 0):
        cfg, (b, s, _) = self.cfg, x.shape
        q = self.q_proj(x).view(b, s, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        if cfg.position.kind == "rope":
            table = ctx.rope_table(cfg.head_dim)
            q, k = rope(q, table), rope(k, table)
        if cfg.attention.kind == "linear":
            out = self._linear(q, k, v, cache, layer)
        else:
            if cache is not None:
                k, v = cache.update(layer, (k, v), dim=2)
            out = eager_attention(q, k, v, ctx.blocked)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, cfg.q_dim))

    def _linear(self, q, k, v, cache, layer):
        if self.cfg.n_kv_heads != self.cfg.n_heads:
            rep = self.cfg.n_heads // self.cfg.n_kv_heads
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        b, h, _, d = q.shape
        state = cache.layers[layer] if cache is not None else None
        if state is None:
            state = (q.new_zeros(b, h, d, v.shape[-1]), q.new_zeros(b, h, d))
        out, new_state = linear_attention(q, k, v, state)
        if cache is not None:
            cache.layers[layer] = new_state
        return out


class MLAttention(nn.Module):
    """DeepSeek-V2 multi-head latent attention (Sec. 2.1.2-2.1.3): keys/values come from a
    compressed latent c_kv (kv_lora_rank) plus one shared RoPE key per token; only those are
    cached. Queries are projected directly or through a low-rank q latent."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        m, h, nh = cfg.mla, cfg.hidden, cfg.n_heads
        self.cfg, self.m = cfg, m
        qk_dim = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            self.q_a_proj = nn.Linear(h, m.q_lora_rank, bias=False)
            self.q_a_norm = make_norm(cfg, m.q_lora_rank)
            self.q_b_proj = nn.Linear(m.q_lora_rank, nh * qk_dim, bias=False)
        else:
            self.q_proj = nn.Linear(h, nh * qk_dim, bias=False)
        self.kv_a_proj = nn.Linear(h, m.kv_lora_rank + m.qk_rope_head_dim, bias=False)
        self.kv_a_norm = make_norm(cfg, m.kv_lora_rank)
        self.kv_b_proj = nn.Linear(m.kv_lora_rank, nh * (m.qk_nope_head_dim + m.v_head_dim), bias=False)
        self.o_proj = nn.Linear(nh * m.v_head_dim, h, bias=False)

    def _queries(self, x):
        if self.m.q_lora_rank:
            return self.q_b_proj(self.q_a_norm(self.q_a_proj(x)))
        return self.q_proj(x)

    def forward(self, x, ctx: Context, cache: KVCache | None = None, layer: int = 0):
        m, nh, (b, s, _) = self.m, self.cfg.n_heads, x.shape
        table = ctx.rope_table(m.qk_rope_head_dim)
        q = self._queries(x).view(b, s, nh, -1).transpose(1, 2)
        q_nope, q_rope = q.split((m.qk_nope_head_dim, m.qk_rope_head_dim), dim=-1)
        c_kv, k_rope = self.kv_a_proj(x).split((m.kv_lora_rank, m.qk_rope_head_dim), dim=-1)
        k_rope = rope(k_rope, table)
        if cache is not None:
            c_kv, k_rope = cache.update(layer, (c_kv, k_rope), dim=1)
        sk = c_kv.shape[1]
        kv = self.kv_b_proj(self.kv_a_norm(c_kv)).view(b, sk, nh, -1).transpose(1, 2)
        k_nope, v = kv.split((m.qk_nope_head_dim, m.v_head_dim), dim=-1)
        k_r = k_rope.unsqueeze(1).expand(b, nh, sk, m.qk_rope_head_dim)
        q = torch.cat((q_nope, rope(q_rope, table)), dim=-1)
        k = torch.cat((k_nope, k_r), dim=-1)
        out = eager_attention(q, k, v, ctx.blocked)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, nh * m.v_head_dim))
