"""Collectives of real DP and Megatron-TP steps on gloo (2 local processes, tiny tensors)
against the simulator's collective list for the same plan."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from sim.model import count_params, get_model  # noqa: E402
from sim.validation.comm import (  # noqa: E402
    BATCH,
    SEQ,
    compare,
    simulated_dp_calls,
    simulated_tp_calls,
)
from sim.validation.distributed import spawn  # noqa: E402
from sim.validation.parallel import dp_step, tp_step  # noqa: E402

TOKENS_BYTES = BATCH * SEQ * get_model("tiny-llama").hidden * 4  # one fp32 activation


@pytest.fixture(scope="module")
def tp_calls():
    return [tuple(c) for c in spawn(tp_step, 2, "tiny-llama", BATCH, SEQ)[0]]


def test_megatron_tp_step_issues_two_forward_and_two_backward_all_reduces_per_layer(tp_calls):
    layers = get_model("tiny-llama").n_layers
    activation = [c for c in tp_calls if c == ("all_reduce", TOKENS_BYTES)]
    # + embedding (forward) and LM-head input gradient (backward)
    assert len(activation) == 4 * layers + 2


def test_vocab_parallel_loss_reduces_max_target_and_sum_exp_in_fp32(tp_calls):
    loss = [c for c in tp_calls if c != ("all_reduce", TOKENS_BYTES)]
    assert loss == [("all_reduce", BATCH * SEQ * 4)] * 3


def test_simulated_tp_collectives_match_except_the_fused_loss_reduction(tp_calls):
    rows = compare("tp", "tp", simulated_tp_calls("tiny-llama", 2), tp_calls)
    wrong = {r.name for r in rows if not r.ok}
    # the lowering prices the three loss all-reduces as one op of the same total bytes
    assert wrong <= {f"tp all_reduce {BATCH * SEQ * 4}B", f"tp all_reduce {3 * BATCH * SEQ * 4}B"}
    assert next(r for r in rows if r.metric == "tp_total_bytes").ok


def test_dp_step_all_reduces_every_fp32_gradient_once_as_the_simulator_says():
    real = [tuple(c) for c in spawn(dp_step, 2, "tiny-llama", BATCH, SEQ)[0]]
    total = count_params(get_model("tiny-llama")).total * 4
    assert real == [("all_reduce", total)] == simulated_dp_calls("tiny-llama", 2)
