"""Validation harness: clustersim against real PyTorch runs.

This is the only package of clustersim that imports torch, and it does so lazily: importing
``sim.validation`` costs nothing, the torch-backed modules (``reference``, ``layers``,
``measure``, ``comm``, ``calibrate``, ``timing``, ``inference``) are imported by the commands
that need them. ``cases`` and ``report`` are torch-free.

What it checks (docs/design-validation.md):
- exact: parameter counts (every tiny config and every preset, built on the meta device),
  forward and forward+backward FLOPs under ``torch.utils.flop_counter``, KV-cache bytes in
  decode, activation bytes saved for backward (saved-tensor hooks), and the list of collectives
  a DP or Megatron-TP step issues on gloo vs the lowering's comm Ops;
- timing: a calibrated profile of this machine (``clustersim calibrate``), then real training
  steps, DP over gloo, prefill/decode, continuous batching and speculative decoding vs the
  simulator's predictions on that profile (``clustersim validate``).
"""


def torch_available() -> bool:
    """True when PyTorch can be imported (the harness needs it; the simulator does not)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None
