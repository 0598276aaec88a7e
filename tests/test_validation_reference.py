"""The reference PyTorch models are what the simulator claims to describe: exact parameter
counts (meta device, every preset), a KV cache that reproduces the full forward, batched
slot decoding equal to per-sequence decoding, and MoE capacity per Switch Transformer."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from sim.model import count_params, get_model, list_models  # noqa: E402
from sim.validation.exact import param_cases  # noqa: E402
from sim.validation.kvslots import SlotCache  # noqa: E402
from sim.validation.layers import KVCache  # noqa: E402
from sim.validation.measure import tokens  # noqa: E402
from sim.validation.reference import build_model, count_torch_params, expert_capacity  # noqa: E402

TINY = [n for n in list_models() if n.startswith("tiny-")]


def test_every_preset_parameter_count_equals_the_meta_device_torch_model():
    rows = param_cases()
    assert {r.name for r in rows} == set(list_models())
    assert [r.name for r in rows if r.predicted != r.measured] == []


def test_gpt2_small_torch_model_has_124_439_808_parameters():
    model = build_model(get_model("gpt2-124m"), device="meta")
    assert count_torch_params(model) == 124_439_808 == count_params(get_model("gpt2-124m")).total


@pytest.mark.parametrize("name", [n for n in TINY if n != "tiny-moe"])
def test_prefill_plus_decode_with_kv_cache_reproduces_the_full_forward(name):
    cfg = get_model(name)
    model = build_model(cfg).eval()
    tok = tokens(cfg, 2, 20)
    with torch.no_grad():
        full = model(tok)
        cache = KVCache(cfg.n_layers)
        steps = [model(tok[:, :12], cache)] + [model(tok[:, i:i + 1], cache)
                                               for i in range(12, 20)]
    assert cache.length == 20
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=2e-5, rtol=1e-4)


def test_batched_slot_decode_of_different_lengths_equals_each_sequence_alone():
    cfg = get_model("tiny-llama")
    model = build_model(cfg).eval()
    slots = SlotCache(cfg, 4, 32)
    prompts = [tokens(cfg, 1, n, seed=n) for n in (5, 11, 3)]
    nxt = tokens(cfg, 3, 1, seed=99)
    with torch.no_grad():
        for p in prompts:
            c = KVCache(cfg.n_layers)
            model(p, c)
            slots.load(c)
        out = model(nxt, slots)
        for i, p in enumerate(prompts):
            alone = model(torch.cat([p, nxt[i:i + 1]], 1))[0, -1]
            torch.testing.assert_close(out[i, -1], alone, atol=2e-5, rtol=1e-4)
    assert slots.lengths[:3].tolist() == [6, 12, 4]


def test_slot_removal_moves_the_last_row_into_the_freed_one():
    cfg = get_model("tiny-llama")
    slots = SlotCache(cfg, 3, 8)
    slots.n, slots.lengths[:3] = 3, torch.tensor([1, 2, 3])
    slots.k[0][2].fill_(7.0)
    slots.remove(0)
    assert slots.n == 2 and slots.lengths[:2].tolist() == [3, 2]
    assert float(slots.k[0][0].mean()) == 7.0


def test_expert_capacity_is_ceil_of_factor_times_tokens_times_k_over_experts():
    assert expert_capacity(64, 2, 4, 1.25) == math.ceil(1.25 * 64 * 2 / 4) == 40
    assert expert_capacity(10, 1, 3, 1.0) == 4
    assert expert_capacity(10, 2, 4, None) == 20  # dropless: every routed slot fits


def test_moe_with_a_tight_capacity_drops_exactly_the_overflow():
    cfg = get_model("tiny-moe")
    model = build_model(cfg)
    moe = model.blocks[0].ffn
    moe.m = type(moe.m)(**{**moe.m.__dict__, "capacity_factor": 0.5})
    x = torch.randn(1, 32, cfg.hidden)
    with torch.no_grad():
        _, idx = moe.route(x.reshape(-1, cfg.hidden))
        moe(x)
    cap = expert_capacity(32, 2, 4, 0.5)
    loads = torch.bincount(idx.flatten(), minlength=4)
    assert moe.last_dropped == int((loads - cap).clamp(min=0).sum()) > 0


def test_full_recompute_reproduces_the_gradients_of_no_recompute():
    cfg = get_model("tiny-gpt")
    tok = tokens(cfg, 2, 16)
    grads = []
    for mode in ("none", "full"):
        model = build_model(cfg)
        model.recompute = mode
        model(tok).sum().backward()
        grads.append(model.blocks[0].attn.q_proj.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])
