"""convention="torch" equals what torch.utils.flop_counter.FlopCounterMode counts for a
straightforward PyTorch decoder (explicit-matmul attention with GQA, SwiGLU FFN or MoE with
a per-expert loop over the tokens routed to it, untied LM head)."""

from __future__ import annotations

import pytest

from sim.costs.flops import backward_flops, forward_flops
from sim.model.config import ModelConfig, MoEConfig
from sim.plan import Shape

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402


class Layer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        h, self.cfg = cfg.hidden, cfg
        self.qkv = nn.Linear(h, cfg.q_dim + 2 * cfg.kv_dim, bias=False)
        self.o = nn.Linear(cfg.q_dim, h, bias=False)
        if cfg.moe is None:
            self.ffn = nn.ModuleList([self._ffn(cfg.ffn_hidden)])
        else:
            self.router = nn.Linear(h, cfg.moe.n_experts, bias=False)
            self.ffn = nn.ModuleList([self._ffn(cfg.moe.expert_ffn_hidden)
                                      for _ in range(cfg.moe.n_experts)])

    def _ffn(self, f: int) -> nn.ModuleList:
        h = self.cfg.hidden
        return nn.ModuleList([nn.Linear(h, 2 * f, bias=False), nn.Linear(f, h, bias=False)])

    def _swiglu(self, ffn, x):
        g, u = ffn[0](x).chunk(2, dim=-1)
        return ffn[1](nn.functional.silu(g) * u)

    def forward(self, x):
        c = self.cfg
        b, s, _ = x.shape
        q, k, v = self.qkv(x).split([c.q_dim, c.kv_dim, c.kv_dim], dim=-1)
        q = q.view(b, s, c.n_heads, c.head_dim).transpose(1, 2)
        rep = c.n_heads // c.n_kv_heads
        k = k.view(b, s, c.n_kv_heads, c.head_dim).transpose(1, 2).repeat_interleave(rep, 1)
        v = v.view(b, s, c.n_kv_heads, c.head_dim).transpose(1, 2).repeat_interleave(rep, 1)
        scores = (q @ k.transpose(-1, -2)) / c.head_dim**0.5
        mask = torch.ones(s, s, dtype=torch.bool).triu(1)
        att = scores.masked_fill(mask, float("-inf")).softmax(-1) @ v
        x = x + self.o(att.transpose(1, 2).reshape(b, s, c.q_dim))
        return x + self._mlp(x)

    def _mlp(self, x):
        if self.cfg.moe is None:
            return self._swiglu(self.ffn[0], x)
        flat = x.reshape(-1, x.shape[-1])
        probs = self.router(flat).softmax(-1)
        w, idx = probs.topk(self.cfg.moe.top_k, dim=-1)
        out = torch.zeros_like(flat)
        for e, ffn in enumerate(self.ffn):
            rows, slot = (idx == e).nonzero(as_tuple=True)
            if len(rows):
                out = out.index_add(0, rows, self._swiglu(ffn, flat[rows]) * w[rows, slot, None])
        return out.view_as(x)


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.emb = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.layers = nn.ModuleList([Layer(cfg) for _ in range(cfg.n_layers)])
        self.head = nn.Linear(cfg.hidden, cfg.vocab_size, bias=False)

    def forward(self, tokens):
        x = self.emb(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def tiny(moe: MoEConfig | None = None) -> ModelConfig:
    return ModelConfig(name="tiny", vocab_size=97, hidden=64, n_layers=2, n_heads=4,
                       n_kv_heads=2, head_dim=16, ffn_hidden=96, moe=moe)


def counted(cfg: ModelConfig, batch: int, seq: int) -> tuple[int, int]:
    torch.manual_seed(0)
    model = Decoder(cfg)
    tokens = torch.randint(0, cfg.vocab_size, (batch, seq))
    with FlopCounterMode(display=False) as fwd:
        logits = model(tokens)
    with FlopCounterMode(display=False) as bwd:
        logits.float().pow(2).mean().backward()
    return fwd.get_total_flops(), bwd.get_total_flops()


@pytest.mark.parametrize("moe", [None, MoEConfig(n_experts=4, top_k=2, expert_ffn_hidden=48)])
def test_torch_convention_equals_flop_counter_forward_and_backward(moe):
    cfg, shape = tiny(moe), Shape(2, 24)
    fwd, bwd = counted(cfg, 2, 24)
    assert forward_flops(cfg, shape, convention="torch").total == fwd
    # explicit matmul attention: backward = 4 bmms = 2x forward (the math path, flash=False)
    assert backward_flops(cfg, shape, flash=False, convention="torch").total == bwd
