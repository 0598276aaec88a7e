"""What a stack's kernels and fusions do to per-op time (pure; used by the cost pricing).

- Attention kernel: where the accelerator has a model fitted for the stack's kernel itself
  ([efficiency.attention] or a [efficiency.attention.<backend>] sub-table, selected in
  ``sim.costs.timing.op_time(..., attention_kernel=)``), that model prices it (factor 1).
  Otherwise the accelerator's default attention model (an FA2-class kernel) prices it, scaled
  by the kernel's published speed ratio to FA2 over the default model's own ratio:
  FlashAttention-1 takes ~2x as long (Dao 2023, FlashAttention-2, abstract and Fig. 4-5:
  "around 2x faster"), FlashAttention-3 1/1.5 on Hopper (Shah et al. 2024, FlashAttention-3,
  Sec. 4.1: 1.5-2.0x over FA2 in FP16; the low end taken), FlashInfer's prefill/decode kernels
  are FA2-class (Ye et al. 2025, FlashInfer, Sec. 5). The math path (none/math) is lowered as
  explicit GEMMs + softmax by ``sim.costs.lowering`` and is not scaled.
- Unfused softmax (math path): scale, mask and softmax as three kernels instead of Megatron's
  FusedScaleMaskSoftmax (one read, one write of the scores): two more read+write passes over
  the scores forward, the same backward.
- Unfused bias-GELU: the bias add as its own kernel, one more read+write pass over the FFN
  activation forward and backward (Megatron-LM fused_bias_gelu.py exists to remove it).
- Unfused optimizer: ``sim.costs.analytic`` doubles the optimizer's HBM traffic
  (``OPTIMIZER_UNFUSED_TRAFFIC``).
- Eager launch floor: training stacks launch every kernel from Python (no CUDA graphs: off by
  default in Megatron-LM/DeepSpeed/FSDP of these dates), the stack's ``launch_overhead_s`` of
  CPU per op, so a pass takes no less than its op count times that: small models on many GPUs
  become CPU-bound (vTrain's small-hidden, high-TP runs). The CPU runs ahead of the GPU, so
  a pass costs max(GPU time, CPU issue time), not their sum.
"""

from __future__ import annotations

KERNEL_TIME_VS_FA2 = {"fa1": 2.0, "fa2": 1.0, "fa3": 1 / 1.5, "flashinfer": 1.0,
                     # FA2's flash_attn_with_kvcache over a paged cache: no published ratio; a
                     # GPU without its own fitted model prices it as FA2
                     "fa2-paged": 1.0}

# torch.optim.Adam's single-tensor path runs ~6 kernels per parameter tensor (lerp m, mul+
# addcmul v, sqrt, add eps, addcdiv), each reading and writing fp32 state: about twice the bytes
# of one fused pass reading grad, master, m, v and writing master, m, v (torch/optim/adam.py).
OPTIMIZER_UNFUSED_TRAFFIC = 2.0


def op_factor(op, stack, flash: bool, acc=None) -> float:
    """Multiplier on a compute op's time under ``stack`` (on accelerator ``acc``)."""
    return kind_factor(op.kind, stack, flash, acc)


def kind_factor(kind: str, stack, flash: bool, acc=None) -> float:
    """``op_factor`` of any op of ``kind`` (nothing else of the op matters)."""
    if kind != "attention" or not flash:
        return 1.0
    return kernel_factor(stack.attention_kernel, acc)


def kernel_factor(kernel: str, acc=None) -> float:
    """Time multiplier of fused attention kernel ``kernel`` on ``acc`` (module docstring)."""
    model = acc.efficiency.attention if acc is not None else None
    if model is None:
        return KERNEL_TIME_VS_FA2.get(kernel, 1.0)
    if model.own(kernel) is not None:
        return 1.0
    return KERNEL_TIME_VS_FA2.get(kernel, 1.0) / KERNEL_TIME_VS_FA2.get(model.kernel, 1.0)


def attention_kernel(stack) -> str | None:
    """The attention kernel that selects the accelerator's attention model (None: default)."""
    return stack.attention_kernel if stack is not None and stack.flash else None


def unfused_extra(ops, stack, acc) -> dict:
    """Extra seconds per pass from the fusions ``stack`` lacks, from the ops' own shapes."""
    bw = acc.memory_bandwidth * acc.efficiency.memory_bandwidth
    extra: dict = {}
    for op in ops:
        if op.pass_ not in ("fwd", "bwd", "bwd_input"):
            continue
        nbytes = 0.0
        if not stack.fused_softmax and op.kind == "attention" and not stack.flash:
            nbytes = op.total_bytes  # two more read+write passes ~ the math path's own traffic
        elif not stack.bias_gelu_fusion and op.kind == "elementwise" and op.name.endswith("_act"):
            nbytes = op.total_bytes  # bias add: read + write the activation once more
        if nbytes:
            key = "bwd_input" if op.pass_ != "fwd" else "fwd"
            extra[key] = extra.get(key, 0.0) + nbytes / bw
    return extra


def eager_floor(ops, times: dict, pass_of: dict, launch_s: float,
                comm: dict | None = None) -> dict:
    """Each pass's compute time, raised so that compute + its blocking communication is at
    least (ops launched in it) x ``launch_s``: the GPU timeline (kernels and collectives)
    runs behind the CPU that issues it, so a pass takes max(CPU issue, GPU), not the sum."""
    if launch_s <= 0:
        return times
    comm = comm or {}
    counts: dict = {}
    for op in ops:
        key = pass_of.get(op.pass_, "fwd")
        counts[key] = counts.get(key, 0) + op.count
    return {k: max(t, counts.get(k, 0) * launch_s - comm.get(k, 0.0)) for k, t in times.items()}
