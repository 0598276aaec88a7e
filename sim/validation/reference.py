"""Reference PyTorch decoder transformers built from the same ``ModelConfig`` the simulator
reads: GPT-style (learned positions, GELU, LayerNorm, biases), Llama-style (RMSNorm, SwiGLU,
RoPE, GQA/MQA), Mixture-of-Experts (softmax or sigmoid top-k router, shared experts, capacity
factor with token dropping), sliding-window / dilated / linear attention and MLA.

``build_model(cfg, device="meta")`` costs nothing, so parameter counts of 405B-parameter
presets can be checked exactly. The MoE layer permutes tokens as Megatron-core does (one
sorted gather, per-expert FFN on contiguous slices, one weighted scatter-add), so the executed
matmul FLOPs are exactly tokens x top_k expert FFNs (minus what the capacity factor drops) and
match what the simulator counts.

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
from sim.validation.grouped import grouped_linear
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
    kernels store them); expert ``e`` multiplies by slice ``e``, so FLOPs and parameter
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

    def forward(self, xs, counts: list[int]):
        """The FFN of expert ``e`` on its contiguous slice of the permuted tokens ``xs``, as one
        grouped GEMM per weight and one activation over all rows (Megatron-core GroupedMLP)."""
        def lin(name, v):
            return grouped_linear(v, getattr(self, f"w_{name}"), getattr(self, f"b_{name}"),
                                  counts)

        if self.swiglu:
            return lin("down", F.silu(lin("gate", xs)) * lin("up", xs))
        return lin("down", F.gelu(lin("up", xs), approximate="tanh"))


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

    def permute(self, idx, n_tokens: int):
        """Token permutation (Megatron-core ``moe_utils.permute``): stable sort of the flat
        (token, slot) choices by expert, so each expert's tokens are contiguous and in token
        order (= capacity priority); the first ``capacity`` of each expert are kept. Returns
        the kept flat indices (token * k + slot) and the tokens per expert."""
        n_exp = self.m.n_experts
        flat = idx.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=n_exp)
        cap = expert_capacity(n_tokens, self.m.top_k, n_exp, self.m.capacity_factor)
        start = (torch.cumsum(counts, 0) - counts).repeat_interleave(counts)
        keep = torch.arange(flat.numel(), device=flat.device) - start < cap
        self.last_dropped = int(flat.numel() - keep.sum())
        return order[keep], counts.clamp(max=cap).tolist()

    def forward(self, x):
        shape = x.shape
        x2d = x.reshape(-1, shape[-1])
        w, idx = self.route(x2d)
        order, counts = self.permute(idx, x2d.shape[0])
        tok = order // self.m.top_k
        # dispatch: one gather of t*k hidden vectors; combine: weight, one scatter-add back
        y = self.experts(x2d.index_select(0, tok), counts) * w.reshape(-1)[order].unsqueeze(-1)
        out = torch.zeros_like(x2d).index_add_(0, tok, y)
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
