"""Timing validation of inference: prefill and decode steps with a KV cache, vs
``sim.costs.inference.forward_time`` on the calibrated profile.

- prefill: batch x prompt tokens through the model with an empty cache, logits for the last
  position only (as serving engines compute them); predicted with ``prefill_lens``;
- decode: one token per sequence against a preallocated cache holding ``context`` tokens per
  sequence (``SlotCache``: the step writes one K/V column and reads the cache once);
  predicted with ``decode_kv_lens``.

Both in fp32, no autograd; all prefill and decode cases measured together under the protocol
of ``sim.validation.protocol`` (interleaved rounds, paired reference GEMM, lower quantile). The model is a small Llama-style config large
enough that a decode step reads tens of MB of weights (memory-bound, as on a GPU).
"""

from __future__ import annotations

import dataclasses

import torch

from sim.model import get_model
from sim.model.config import ModelConfig
from sim.validation.cases import Case

PREFILL_GRID = [(1, 128), (1, 512), (4, 128), (2, 256)]
DECODE_GRID = [(1, 128), (1, 1024), (4, 256), (16, 256), (16, 1024), (32, 128)]
QUICK_PREFILL = [(1, 64), (2, 64)]
QUICK_DECODE = [(1, 64), (4, 64)]


def serving_model(quick: bool = False) -> ModelConfig:
    """Llama-style, 4 layers x hidden 512 (2 x 256 when quick), vocab 2048."""
    h, layers = (128, 2) if quick else (512, 4)
    return dataclasses.replace(get_model("tiny-llama"), name=f"serve-h{h}-l{layers}",
                               vocab_size=2048, hidden=h, n_layers=layers, n_heads=8,
                               n_kv_heads=4, head_dim=h // 8, ffn_hidden=int(h * 2.6875))


def predict_forward(cfg: ModelConfig, system, **mix) -> float:
    from sim.costs.inference import forward_time

    return forward_time(cfg, system.accelerator, dtype="fp32", **mix).time_s


def prefill_case(model, cfg: ModelConfig, batch: int, prompt: int, device: str):
    from sim.validation.layers import KVCache
    from sim.validation.measure import tokens

    tok = tokens(cfg, batch, prompt, device=device)
    return lambda: model(tok, KVCache(cfg.n_layers), last_only=True)


def decode_case(model, cfg: ModelConfig, batch: int, context: int, device: str):
    from sim.validation.kvslots import SlotCache
    from sim.validation.measure import tokens

    cache = SlotCache(cfg, batch, context + 1, device=device)
    cache.n = batch
    cache.lengths[:] = context
    tok = tokens(cfg, batch, 1, device=device)

    def run():
        model(tok, cache)
        cache.lengths[:] = context  # the same step again, not a longer one

    return run


def _grid(quick: bool):
    return ([("prefill", b, p) for b, p in (QUICK_PREFILL if quick else PREFILL_GRID)]
            + [("decode", b, c) for b, c in (QUICK_DECODE if quick else DECODE_GRID)])


def _name(kind: str, b: int, n: int) -> str:
    return f"prefill b={b} prompt={n}" if kind == "prefill" else f"decode b={b} context={n}"


def _predict(cfg, system, kind: str, b: int, n: int) -> float:
    if kind == "prefill":
        return predict_forward(cfg, system, prefill_lens=[n] * b)
    return predict_forward(cfg, system, decode_kv_lens=[n] * b)


@torch.no_grad()
def inference_cases(system, device: str = "cpu", quick: bool = False, rounds: int = 7
                    ) -> list[Case]:
    from sim.validation.protocol import interleaved_seconds
    from sim.validation.reference import build_model

    cfg = serving_model(quick)
    model = build_model(cfg, device=device).eval()
    make = {"prefill": prefill_case, "decode": decode_case}
    cases = {_name(k, b, n): make[k](model, cfg, b, n, device) for k, b, n in _grid(quick)}
    measured = interleaved_seconds(cases, rounds=rounds, warmup=2, device=device)
    return [Case(_name(k, b, n), f"{k}_s" if k == "prefill" else "decode_step_s",
                 _predict(cfg, system, k, b, n), measured[_name(k, b, n)].seconds,
                 kind="timing", spread=measured[_name(k, b, n)].spread)
            for k, b, n in _grid(quick)]
