"""forward_time handles equal neighbouring sequences as runs and reuses priced layer templates;
both must give exactly the floats of one plain pass over the sequences and over the ops."""

from __future__ import annotations

import random
from functools import reduce
from operator import add

import pytest

from hardware.loader import get_system
from hardware.topology import Cluster
from sim.costs import inference
from sim.costs.inference import _attention_sums, _runs, forward_time
from sim.costs.inference_replica import _Layer, _total
from sim.costs.kvcache import cached_tokens, kv_bytes_per_token_layer
from sim.errors import ConfigError
from sim.model.presets import get_model


def _fractional_terms(model, q_len, ctx, tp, db):
    """Per-sequence terms whose repeated sums round (unlike the presets' integer-valued ones)."""
    return q_len / 3 + ctx * 0.1, ctx / 7 + 0.3, q_len * 0.7 / 9


def test_runs_group_equal_neighbours_in_order_and_keep_separate_runs_apart():
    runs = _runs([512, 512, 7], [0, 0, 3], [300, 300, 300, 301, 300])
    assert runs == [(512, 0, 2), (7, 3, 1), (1, 300, 3), (1, 301, 1), (1, 300, 1)]


def test_runs_reject_bad_lengths_naming_the_constraint():
    with pytest.raises(ConfigError, match="positive"):
        _runs([0], [], [])
    with pytest.raises(ConfigError, match=">= 0"):
        _runs([], [], [5, -1])
    with pytest.raises(ConfigError, match="one context per chunk"):
        _runs([5, 6], [1], [])


def test_attention_sums_over_runs_equal_the_per_sequence_loop_bit_for_bit(monkeypatch):
    monkeypatch.setattr(inference, "_sequence_terms", _fractional_terms)
    rng = random.Random(7)
    model = get_model("llama2-7b")
    for _ in range(200):
        prefill = [rng.choice([3, 100, 101]) for _ in range(rng.randint(0, 4))]
        ctx = [rng.choice([0, 9]) for _ in prefill]
        decode = [rng.choice([300, 301]) for _ in range(rng.randint(0, 140))]
        flops = kv = qo = 0.0
        for q, c in [*zip(prefill, ctx, strict=True), *((1, c) for c in decode)]:
            f, k, o = _fractional_terms(model, q, c, 1, 2)
            flops, kv, qo = flops + f, kv + k, qo + o
        assert _attention_sums(model, _runs(prefill, ctx, decode), 1, 2) == (flops, kv, qo)


def test_a_run_of_equal_terms_is_not_n_times_the_term_so_the_sums_fold_it():
    x = _fractional_terms(None, 1, 301, 1, 2)[1]
    assert reduce(add, [x] * 137, 0.0) != 137 * x  # why _attention_sums folds each run


def test_a_layer_template_totals_equal_one_pass_over_its_records_bit_for_bit():
    rng = random.Random(3)

    def record(comm: bool) -> tuple:
        return (comm, rng.random() / 7, 0.0 if comm else rng.random() / 3,
                0.0 if comm else rng.random() / 11, rng.random() * 1e9, rng.random() * 1e6)

    for _ in range(300):
        records = [record(rng.random() < 0.3) for _ in range(rng.randint(1, 14))]
        cut = rng.randrange(len(records) + 1)
        attn = record(False)
        full = [*records[:cut], attn, *records[cut:]]
        template = _Layer.of([*records[:cut], None, *records[cut:]], 0.0)
        assert template.total(attn) == _total(full)


def test_forward_time_with_n_equal_decode_sequences_equals_the_per_sequence_sum_bit_for_bit():
    model = get_model("mistral-7b")  # sliding window: contexts past 4096 are capped
    cluster = Cluster.for_gpus(get_system("dgx-a100-80gb"), 2)
    decode = [5000] * 37 + [301] * 90 + [5000] * 3
    cost = forward_time(model, cluster, tp=2, prefill_lens=[700, 700], prefill_ctx=[0, 64],
                        decode_kv_lens=decode)
    kv_tok = kv_bytes_per_token_layer(model, 2, 2)
    kv = 0.0
    for q, c in [(700, 0), (700, 64), *((1, c) for c in decode)]:
        kv += cached_tokens(model, c + q) * kv_tok
    assert cost.kv_bytes == model.n_layers * kv / 1
    assert cost.tokens == 1400 + len(decode)
    one_by_one = forward_time(model, cluster, tp=2, prefill_lens=[700, 700],
                              prefill_ctx=[0, 64], decode_kv_lens=tuple(decode))
    assert one_by_one == cost
