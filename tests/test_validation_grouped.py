"""The reference MoE's grouped linear: same numbers and FLOPs as one linear per expert slice."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sim.validation.grouped import grouped_linear  # noqa: E402


def _inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, dtype=torch.double, generator=g, requires_grad=True)
    w = torch.randn(3, 4, 5, dtype=torch.double, generator=g, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.double, generator=g, requires_grad=True)
    return x, w, b


def test_grouped_linear_equals_one_linear_per_expert_slice_and_passes_gradcheck():
    x, w, b = _inputs()
    counts = [3, 2, 2]
    ref = torch.cat([torch.nn.functional.linear(xe, w[e], b[e])
                     for e, xe in enumerate(x.split(counts))])
    assert torch.equal(grouped_linear(x, w, b, counts), ref)
    assert torch.autograd.gradcheck(lambda *a: grouped_linear(*a, counts), (x, w, b))


def test_an_expert_without_tokens_gets_a_zero_weight_gradient():
    x, w, b = _inputs()
    grouped_linear(x, w, b, [2, 0, 5]).sum().backward()
    assert torch.count_nonzero(w.grad[1]) == 0 and torch.count_nonzero(b.grad[1]) == 0
    assert torch.count_nonzero(w.grad[0]) == 20


def test_flop_counter_sees_forward_and_both_backward_gemms():
    from torch.utils.flop_counter import FlopCounterMode

    x, w, _ = _inputs()
    with FlopCounterMode(display=False) as fc:
        grouped_linear(x, w, None, [2, 0, 5]).sum().backward()
    assert fc.get_total_flops() == 3 * 2 * 7 * 4 * 5 == 840  # fwd + dX + dW, 2*m*n*k each
