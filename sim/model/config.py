"""ModelConfig: one description for dense and Mixture-of-Experts decoder-only transformers.

A model is a stack of ``n_layers`` blocks, each attention + FFN with pre-norms, between a token
embedding (plus learned positions for GPT-2-style models) and an LM head (tied or not). The
attention block may be multi-head, grouped-query or multi-query (``n_kv_heads``), or DeepSeek's
multi-head latent attention (``mla``); its pattern may be full causal, sliding window,
dilated/strided sparse or linear. The FFN is dense (GELU: 2 matrices; SwiGLU: 3 matrices) or,
on MoE layers, ``moe.n_experts`` routed experts of which ``moe.top_k`` run per token plus
``moe.n_shared_experts`` that always run.

Parameter counting lives in ``sim.model.params``; presets in ``sim.model.presets``; Hugging
Face ``config.json`` loading in ``sim.model.hf``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Literal

from sim.errors import ModelError
from sim.identity import hash_once, state_without_hash

FfnKind = Literal["gelu", "swiglu"]
NormKind = Literal["layernorm", "rmsnorm"]
PositionKind = Literal["learned", "sinusoidal", "rope", "none"]
AttentionKind = Literal["full", "sliding_window", "dilated", "linear"]
LayerPattern = Literal["all", "every_k", "first_k_dense"]
RouterKind = Literal["softmax_topk", "sigmoid_topk"]


@dataclass(frozen=True)
class PositionConfig:
    kind: PositionKind = "rope"
    rope_theta: float = 10000.0
    rope_scaling: str | None = None  # e.g. "linear", "ntk", "yarn", "llama3"
    rope_scaling_factor: float = 1.0
    max_positions: int = 2048  # trained context length (learned PE table size)


@dataclass(frozen=True)
class AttentionConfig:
    kind: AttentionKind = "full"
    window: int | None = None  # sliding_window: tokens attended per query
    dilation: int | None = None  # dilated: attend every d-th key (Child et al. 2019 strided)
    linear_feature_dim: int | None = None  # linear attention feature map size (default head_dim)


@dataclass(frozen=True)
class MLAConfig:
    """DeepSeek-V2 multi-head latent attention (DeepSeek-AI 2024, Sec. 2.1)."""

    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int
    q_lora_rank: int | None = None  # None: queries projected directly (V2-Lite)


@dataclass(frozen=True)
class MoEConfig:
    n_experts: int
    top_k: int
    expert_ffn_hidden: int
    n_shared_experts: int = 0
    shared_expert_ffn_hidden: int | None = None  # None: same as expert_ffn_hidden
    layer_pattern: LayerPattern = "all"
    every_k: int = 1  # every_k: layer i is MoE when (i + 1) % every_k == 0
    first_k_dense: int = 0  # first_k_dense: layers 0..k-1 use the dense FFN
    router: RouterKind = "softmax_topk"
    capacity_factor: float | None = None  # None: dropless
    router_bias: bool = False
    shared_expert_gate: bool = False  # Qwen2-MoE: sigmoid gate (hidden x 1) on the shared expert

    @property
    def shared_hidden(self) -> int:
        return self.shared_expert_ffn_hidden or self.expert_ffn_hidden


@dataclass(frozen=True)
class ModelConfig:
    name: str
    vocab_size: int
    hidden: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_hidden: int  # dense FFN inner size (also the dense layers of a MoE model)
    ffn_kind: FfnKind = "swiglu"
    norm: NormKind = "rmsnorm"
    tied_embeddings: bool = False
    position: PositionConfig = field(default_factory=PositionConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    qkv_bias: bool = False  # bias on q/k/v projections (GPT-2, Qwen2)
    linear_bias: bool = False  # bias on attention output and FFN projections (GPT-2)
    mla: MLAConfig | None = None
    moe: MoEConfig | None = None
    source: str = ""  # where the numbers come from (paper, model card, config.json)
    # training dropout on attention probabilities and the residual branches (Megatron-LM
    # --attention-dropout / --hidden-dropout); 0 = none, as in Llama/Mistral/DeepSeek
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden", "n_layers", "n_heads", "n_kv_heads", "head_dim"):
            if getattr(self, name) <= 0:
                raise ModelError(f"model '{self.name}': {name} must be positive")
        if self.n_heads % self.n_kv_heads:
            raise ModelError(
                f"model '{self.name}': n_kv_heads={self.n_kv_heads} must divide "
                f"n_heads={self.n_heads} (GQA groups query heads evenly)"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"model '{self.name}': dropout={self.dropout} must be in [0, 1)")
        if self.moe and not 1 <= self.moe.top_k <= self.moe.n_experts:
            raise ModelError(f"model '{self.name}': top_k must be in 1..n_experts")
        if self.attention.kind == "sliding_window" and not self.attention.window:
            raise ModelError(f"model '{self.name}': sliding_window attention needs a window")
        if self.attention.kind == "dilated" and not self.attention.dilation:
            raise ModelError(f"model '{self.name}': dilated attention needs a dilation")

    # --- identity: hashed once (cost caches key on the model; see sim.identity) -------------
    __hash__ = hash_once
    __getstate__ = state_without_hash

    # --- structure -------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    def is_moe_layer(self, i: int) -> bool:
        m = self.moe
        if m is None:
            return False
        if m.layer_pattern == "all":
            return True
        if m.layer_pattern == "every_k":
            return (i + 1) % m.every_k == 0
        return i >= m.first_k_dense

    @cached_property  # hot in plan search; fields are frozen, so the count never changes
    def n_moe_layers(self) -> int:
        return sum(self.is_moe_layer(i) for i in range(self.n_layers))

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    # --- counts (implemented in sim.model.params) --------------------------------------------
    @property
    def params_total(self) -> int:
        from sim.model.params import count_params

        return count_params(self).total

    @property
    def params_active(self) -> int:
        from sim.model.params import count_params

        return count_params(self).active

    def with_(self, **changes) -> ModelConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)
