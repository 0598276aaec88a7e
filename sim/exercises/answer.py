"""What a simulator query returns, and the small helpers every query shares.

A query answers in SI units (seconds, bytes, FLOPs, fractions) and carries the parts the answer
is made of, a one-line statement of which resource bound it and by how much, and the *givens*:
simulator numbers the prompt hands to the learner (e.g. one micro-batch's time, for a question
about the pipeline step built from it). Models and clusters are built once per name.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import hardware
from sim.formatting import fmt_time
from sim.model import get_model
from sim.model.config import AttentionConfig, MLAConfig, ModelConfig


@dataclass(frozen=True)
class Answer:
    value: float  # SI
    parts: dict = field(default_factory=dict)  # named components of the value (SI)
    bound: str = ""  # which resource bound it, by how much
    givens: dict = field(default_factory=dict)  # simulator numbers shown in the prompt
    parts_unit: str = ""  # unit of ``parts`` when it differs from the query's SI unit


@functools.cache
def _model(name: str, overrides: tuple) -> ModelConfig:
    model, changes = get_model(name), dict(overrides)
    if "attention" in changes:
        changes["attention"] = AttentionConfig(**dict(changes["attention"]))
    if "mla" in changes:
        changes["mla"] = MLAConfig(**dict(changes["mla"]))
    return model.with_(**changes) if changes else model


def _freeze(v):
    return tuple(sorted((k, _freeze(x)) for k, x in v.items())) if isinstance(v, dict) else v


def model_of(p: dict, key: str = "model") -> ModelConfig:
    """The preset ``p[key]`` with the exercise's ``model_overrides`` (attention, kv heads...)."""
    over = p.get("model_overrides", {}) if key == "model" else {}
    return _model(p[key], tuple(sorted((k, _freeze(v)) for k, v in over.items())))


@functools.cache
def cluster_of(system: str, gpus: int):
    return hardware.Cluster.for_gpus(system, int(gpus))


def dominant(parts: dict, what: str = "of the total") -> str:
    """'<largest part>: NN% <what>' for a dict of non-negative parts."""
    total = sum(parts.values())
    if not parts or total <= 0:
        return "no cost"
    name = max(parts, key=parts.get)
    return f"dominated by {name}: {100 * parts[name] / total:.0f}% {what}"


def versus(a_name: str, a: float, b_name: str, b: float) -> str:
    """'<a>-bound: <a> X vs <b> Y (Nx)' for two times in seconds, the larger one first."""
    if b > a:
        a_name, a, b_name, b = b_name, b, a_name, a
    ratio = a / b if b > 0 else float("inf")
    return f"{a_name}-bound: {a_name} {fmt_time(a)} vs {b_name} {fmt_time(b)} ({ratio:.1f}x)"


def step_parts(step) -> dict:
    """Seconds of a serving iteration (``StepCost``) by resource: HBM time split over weight,
    KV-cache and other bytes in proportion, FLOP time, communication."""
    other = max(step.bytes - step.weight_bytes - step.kv_bytes, 0.0)
    per_byte = step.memory_s / step.bytes if step.bytes else 0.0
    return {"hbm_weights_s": per_byte * step.weight_bytes, "hbm_kv_s": per_byte * step.kv_bytes,
            "hbm_other_s": per_byte * other, "compute_s": step.compute_s,
            "comm_s": step.comm_s}


def model_facts(p: dict) -> dict:
    """Architecture numbers a prompt may quote: layers, widths, heads, experts, window..."""
    if "model" not in p:
        return {}
    m = model_of(p)
    facts = {"n_layers": m.n_layers, "hidden": m.hidden, "n_heads": m.n_heads,
             "n_kv_heads": m.n_kv_heads, "head_dim": m.head_dim, "ffn_hidden": m.ffn_hidden,
             "params_b": m.params_total / 1e9, "active_b": m.params_active / 1e9,
             "vocab": m.vocab_size, "window": m.attention.window,
             "dilation": m.attention.dilation}
    if m.moe:
        facts |= {"n_experts": m.moe.n_experts, "top_k": m.moe.top_k,
                  "expert_ffn_hidden": m.moe.expert_ffn_hidden,
                  "n_shared_experts": m.moe.n_shared_experts}
    if m.mla:
        facts |= {"kv_lora_rank": m.mla.kv_lora_rank, "qk_rope_head_dim": m.mla.qk_rope_head_dim}
    return facts
