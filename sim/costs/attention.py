"""Attention core cost: how many (query, key) pairs a pattern touches, and what that costs.

The core of attention is two batched matmuls per head, ``S = Q K^T`` and ``O = softmax(S) V``.
For one sequence with ``q_len`` new queries placed after ``ctx`` tokens already cached
(``ctx = 0`` in training and a fresh prefill; the KV-cache length in decode or a chunked
prefill), the work is ``2 * pairs * n_heads * (d_qk + d_v)`` FLOPs, where ``pairs`` counts the
(query, key) pairs the pattern computes (a multiply-add = 2 FLOPs; Vaswani et al. 2017, Sec.
3.2.1). ``pairs`` depends on the pattern:

- full causal: query at absolute position p sees keys 0..p, so ``pairs = q_len*ctx +
  q_len*(q_len+1)/2``. Without *causal halving* (the convention of Megatron-LM Eq. 3 and of
  ``torch.utils.flop_counter``, which count the dense rectangle) ``pairs = q_len*(ctx+q_len)``.
- sliding window of W (Beltagy et al. 2020; Mistral 7B): each query sees ``min(p+1, W)`` keys,
  about ``s*W`` in total instead of ``s^2/2``. Without halving: ``q_len*min(W, ctx+q_len)``.
- dilated / strided (Child et al. 2019): every d-th key of the (windowed) causal pattern,
  ``ceil(keys/d)`` per query.
- linear attention (Katharopoulos et al. 2020, Eq. 4-6): no score matrix; each token updates a
  ``d_f x d_v`` state (``S += phi(k)^T v``) and reads it (``o = phi(q) S``): ``4*d_f*d_v`` FLOPs
  per token per head, O(s*d^2), and no KV cache (a constant-size state instead).

MLA (DeepSeek-V2) scores with ``d_qk = nope + rope`` dims and values of ``v_head_dim``.
Flash attention (Dao et al. 2022) changes the memory traffic (no s^2 score matrix in HBM), not
these FLOPs. ``convention="torch"`` counts what ``FlopCounterMode`` counts for a mask-based
PyTorch implementation (``scaled_dot_product_attention`` with a mask): the dense rectangle for
every softmax pattern, whatever the window or dilation.
"""

from __future__ import annotations

from sim.errors import ConfigError
from sim.model.config import ModelConfig

CONVENTIONS = ("clustersim", "torch")


def head_dims(model: ModelConfig) -> tuple[int, int]:
    """(d_qk, d_v) of one attention head (MLA: nope+rope and v_head_dim, DeepSeek-V2 Sec. 2.1)."""
    if model.mla is not None:
        m = model.mla
        return m.qk_nope_head_dim + m.qk_rope_head_dim, m.v_head_dim
    return model.head_dim, model.head_dim


def linear_feature_dim(model: ModelConfig) -> int:
    return model.attention.linear_feature_dim or head_dims(model)[0]


def _causal_pairs(q_len: int, ctx: int) -> int:
    # queries at positions ctx..ctx+q_len-1 each see keys 0..p: sum_{p} (p+1)
    return q_len * ctx + q_len * (q_len + 1) // 2


def _window_pairs(q_len: int, ctx: int, w: int) -> int:
    """sum over p in [ctx, ctx+q_len) of min(p+1, w), in closed form."""
    lo, hi = ctx + 1, ctx + q_len  # key counts p+1 range over lo..hi
    below = max(0, min(hi, w) - lo + 1)  # terms with p+1 <= w
    first = lo
    growing = below * (first + first + below - 1) // 2 if below else 0
    return growing + (q_len - below) * w


def _dilated(keys: int, d: int) -> int:
    return -(-keys // d)


def _dilated_pairs_fast(q_len: int, ctx: int, window: int | None, d: int) -> int:
    # sum_{k=a}^{b} ceil(k/d) in closed form via floor sums: ceil(k/d) = (k + d - 1)//d
    def upto(n: int) -> int:  # sum_{k=1}^{n} ceil(k/d)
        if n <= 0:
            return 0
        q, r = divmod(n, d)
        return d * q * (q + 1) // 2 + r * (q + 1)

    lo, hi = ctx + 1, ctx + q_len
    if window is None:
        return upto(hi) - upto(lo - 1)
    below_hi = min(hi, window)
    growing = upto(below_hi) - upto(lo - 1) if below_hi >= lo else 0
    flat = q_len - max(0, below_hi - lo + 1)
    return growing + flat * _dilated(window, d)


def attended_pairs(model: ModelConfig, q_len: int, ctx: int = 0, *,
                   causal_halving: bool = True, convention: str = "clustersim") -> int:
    """(query, key) pairs one sequence's attention computes (see module docstring)."""
    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown FLOP convention '{convention}'; use one of {CONVENTIONS}")
    a = model.attention
    if convention == "torch" or a.kind == "linear":
        return q_len * (ctx + q_len)
    if a.kind == "full":
        return _causal_pairs(q_len, ctx) if causal_halving else q_len * (ctx + q_len)
    window = a.window if a.kind == "sliding_window" or a.window else None
    if not causal_halving:
        keys = ctx + q_len if window is None else min(window, ctx + q_len)
        return q_len * (_dilated(keys, a.dilation) if a.kind == "dilated" else keys)
    if a.kind == "sliding_window":
        return _window_pairs(q_len, ctx, window)
    return _dilated_pairs_fast(q_len, ctx, window, a.dilation)


def attention_core_flops(model: ModelConfig, q_len: int, ctx: int = 0, *,
                         causal_halving: bool = True, convention: str = "clustersim") -> int:
    """Forward FLOPs of QK^T and AV (or the linear-attention recurrence) for one sequence."""
    d_qk, d_v = head_dims(model)
    if model.attention.kind == "linear":
        # Katharopoulos et al. 2020, Eq. 6: state update phi(k)^T v and readout phi(q) S
        return 4 * q_len * model.n_heads * linear_feature_dim(model) * d_v
    pairs = attended_pairs(model, q_len, ctx, causal_halving=causal_halving,
                           convention=convention)
    return 2 * pairs * model.n_heads * (d_qk + d_v)  # QK^T: 2*d_qk, AV: 2*d_v per pair per head


def softmax_flops(model: ModelConfig, q_len: int, ctx: int = 0, *,
                  causal_halving: bool = True) -> int:
    """Elementwise work on the scores: ~5 FLOPs per score (max, subtract, exp, sum, divide)."""
    if model.attention.kind == "linear":
        return 0
    pairs = attended_pairs(model, q_len, ctx, causal_halving=causal_halving)
    return 5 * pairs * model.n_heads


def attention_backward_factor(flash: bool) -> float:
    """Backward/forward FLOP ratio of the attention core: 2 for the math path (4 bmms vs 2);
    2.5 with flash attention, which recomputes the scores (5 bmms vs 2; Dao et al. 2022 Alg. 4,
    and exactly ``torch.utils.flop_counter.sdpa_backward_flop_count``)."""
    return 2.5 if flash else 2.0
