"""Reference PyTorch decoder transformers built from the same ``ModelConfig`` the simulator
reads: GPT-style (learned positions, GELU, LayerNorm, biases), Llama-style (RMSNorm, SwiGLU,
RoPE, GQA/MQA), Mixture-of-Experts (softmax or sigmoid top-k router, shared experts, capacity
factor with token dropping), sliding-window / dilated / linear attention and MLA.

``build_model(cfg, device="meta")`` costs nothing, so parameter counts of 405B-parameter
presets can be checked exactly. The MoE layer dispatches tokens expert by expert (gather, FFN,
scatter-add), so the executed matmul FLOPs are exactly tokens x top_k expert FFNs (minus what
the capacity factor drops) and match what the simulator counts.

Sources: Shazeer et al. 2017 (top-k gating); Fedus et al. 2021, Switch Transformer Sec. 2.2
(capacity = capacity_factor * tokens * k / experts, overflow dropped); DeepSeekMoE (Dai et al.
2024) shared experts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from sim.model.config import ModelConfig
from sim.validation.layers import Attention, Context, KVCache, MLAttention, make_norm


class FFN(nn.Module):
    """GELU (2 matrices, GPT-2) or SwiGLU (3 matrices, Shazeer 2020 Eq. 6)."""

    def __init__(self, cfg: ModelConfig, inner: int, bias: bool | None = None):
        super().__init__()
        bias = cfg.linear_bias if bias is None else bias
        self.swiglu = cfg.ffn_kind == "swiglu"
        self.up = nn.Linear(cfg.hidden, inner, bias=bias)
        if self.swiglu:
            self.gate = nn.Linear(cfg.hidden, inner, bias=bias)
        self.down = nn.Linear(inner, cfg.hidden, bias=bias)

    def forward(self, x):
        if self.swiglu:
            return self.down(F.silu(self.gate(x)) * self.up(x))
        return self.down(F.gelu(self.up(x), approximate="tanh"))


class Experts(nn.Module):
    """``n`` FFNs of one shape stored as stacked weights [n, out, in] (as grouped-GEMM MoE
    kernels store them); expert ``e`` is ``F.linear`` with slice ``e``, so FLOPs and parameter
    counts equal ``n`` separate FFNs while building 14,848 experts on the meta device is cheap."""

    def __init__(self, cfg: ModelConfig, n: int, inner: int):
        super().__init__()
        self.swiglu, h, bias = cfg.ffn_kind == "swiglu", cfg.hidden, cfg.linear_bias
        names = ("up", "gate", "down") if self.swiglu else ("up", "down")
        for name in names:
            shape = (n, h, inner) if name == "down" else (n, inner, h)
            self.register_parameter(f"w_{name}", nn.Parameter(torch.randn(shape) * h ** -0.5))
            b = nn.Parameter(torch.zeros(shape[:2])) if bias else None
            self.register_parameter(f"b_{name}", b)

    def _lin(self, name: str, e: int, x):
        b = getattr(self, f"b_{name}")
        return F.linear(x, getattr(self, f"w_{name}")[e], None if b is None else b[e])

    def forward(self, e: int, x):
        if self.swiglu:
            return self._lin("down", e, F.silu(self._lin("gate", e, x)) * self._lin("up", e, x))
        return self._lin("down", e, F.gelu(self._lin("up", e, x), approximate="tanh"))


def expert_capacity(tokens: int, top_k: int, n_experts: int, factor: float | None) -> int:
    """Switch Transformer Sec. 2.2: capacity = ceil(factor * tokens * k / experts)."""
    if factor is None:
        return tokens * top_k
    return math.ceil(factor * tokens * top_k / n_experts)


class MoE(nn.Module):
    """Routed experts + always-on shared experts. Top-k weights are the router probabilities
    of the chosen experts (renormalised for softmax routing, as Mixtral does)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        m = cfg.moe
        self.m = m
        self.router = nn.Linear(cfg.hidden, m.n_experts, bias=m.router_bias)
        self.experts = Experts(cfg, m.n_experts, m.expert_ffn_hidden)
        self.shared = nn.ModuleList(FFN(cfg, m.shared_hidden) for _ in range(m.n_shared_experts))
        # Qwen2-MoE: sigmoid(x W_g) scales the shared experts' output (HF Qwen2MoeSparseMoeBlock).
        gated = getattr(m, "shared_expert_gate", False) and m.n_shared_experts
        self.shared_gate = nn.Linear(cfg.hidden, 1, bias=False) if gated else None
        self.last_dropped = 0

    def route(self, x2d):
        logits = self.router(x2d)
        if self.m.router == "sigmoid_topk":
            w, idx = torch.sigmoid(logits).topk(self.m.top_k, dim=-1)
        else:
            w, idx = torch.softmax(logits, dim=-1).topk(self.m.top_k, dim=-1)
        return w / w.sum(-1, keepdim=True), idx

    def forward(self, x):
        shape = x.shape
        x2d = x.reshape(-1, shape[-1])
        w, idx = self.route(x2d)
        cap = expert_capacity(x2d.shape[0], self.m.top_k, self.m.n_experts, self.m.capacity_factor)
        out = torch.zeros_like(x2d)
        self.last_dropped = 0
        for e in range(self.m.n_experts):
            tok, slot = (idx == e).nonzero(as_tuple=True)  # token order = priority
            self.last_dropped += max(0, tok.numel() - cap)
            tok, slot = tok[:cap], slot[:cap]
            if tok.numel():
                y = self.experts(e, x2d.index_select(0, tok)) * w[tok, slot].unsqueeze(-1)
                out = out.index_add(0, tok, y)
        if self.shared:
            shared = sum(s(x2d) for s in self.shared)
            if self.shared_gate is not None:
                shared = shared * torch.sigmoid(self.shared_gate(x2d))
            out = out + shared
        return out.view(shape)


class Block(nn.Module):
    """Pre-norm block: x + attn(norm(x)); x + ffn(norm(x))."""

    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.norm1 = make_norm(cfg, cfg.hidden)
        self.attn = MLAttention(cfg) if cfg.mla else Attention(cfg)
        self.norm2 = make_norm(cfg, cfg.hidden)
        self.ffn = MoE(cfg) if cfg.is_moe_layer(layer) else FFN(cfg, cfg.ffn_hidden)

    def forward(self, x, ctx: Context, cache: KVCache | None = None):
        x = x + self.attn(self.norm1(x), ctx, cache, self.layer)
        return x + self.ffn(self.norm2(x))


def sinusoidal(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Vaswani et al. 2017 Sec. 3.5: PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos."""
    inv = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    ang = positions.float()[:, None] * inv[None, :]
    return torch.stack((ang.sin(), ang.cos()), dim=-1).flatten(1)


class Transformer(nn.Module):
    """Decoder-only LM. ``recompute="full"`` checkpoints every block (Chen et al. 2016)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden)
        if cfg.position.kind == "learned":
            self.pos_embed = nn.Embedding(cfg.position.max_positions, cfg.hidden)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = make_norm(cfg, cfg.hidden)
        self.lm_head = nn.Linear(cfg.hidden, cfg.vocab_size, bias=False)
        if cfg.tied_embeddings:
            self.lm_head.weight = self.embed.weight
        self.recompute = "none"

    def embed_tokens(self, tokens, positions):
        x = self.embed(tokens)
        if self.cfg.position.kind == "learned":
            x = x + self.pos_embed(positions)
        elif self.cfg.position.kind == "sinusoidal":
            x = x + sinusoidal(positions, self.cfg.hidden).to(x)
        return x

    def forward(self, tokens, cache: KVCache | None = None, last_only: bool = False):
        dtype, seq = self.embed.weight.dtype, tokens.shape[1]
        if cache is not None:
            ctx = cache.context(self.cfg, seq, tokens.device, dtype)
        else:
            ctx = Context(self.cfg, 0, seq, tokens.device, dtype)
        x = self.embed_tokens(tokens, ctx.positions)
        for block in self.blocks:
            if self.recompute == "full" and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, ctx, use_reentrant=True)
            else:
                x = block(x, ctx, cache)
        if cache is not None:
            cache.advance(seq)
        if last_only:  # serving samples from the last position only (as vLLM computes logits)
            x = x[:, -1:]
        return self.lm_head(self.norm(x))


def build_model(cfg: ModelConfig, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32, seed: int = 0) -> Transformer:
    """The reference model on ``device`` (``"meta"``: shapes only, no memory, no init cost)."""
    torch.manual_seed(seed)
    with torch.device(device):
        model = Transformer(cfg)
    return model.to(dtype=dtype)


def count_torch_params(model: nn.Module) -> int:
    """Unique parameters (tied embeddings counted once, as ``nn.Module.parameters`` does)."""
    return sum(p.numel() for p in model.parameters())
