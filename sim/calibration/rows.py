"""Measured kernel rows (the schema of ``../shared/data/kernels/kernels.csv``) -> clustersim Ops.

A row names an op kind (gemm, norm, act, rope, residual_add, attn_prefill, attn_decode, or a
collective), a GPU (catalog name) and the shape: GEMMs their (m, n, k); layer ops the model,
tensor-parallel degree and token count (``m``), and are lowered with ``sim.costs.lowering`` to
the op of the same name; attention rows (batch, q_len, ctx) become the serving attention op of
``sim.costs.inference``. Rows with an ``excluded`` reason are dropped.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from sim.costs.kernels import gemm_op
from sim.errors import ConfigError
from sim.ops import Op

KERNEL_KINDS = ("gemm", "norm", "act", "rope", "residual_add", "attn_prefill", "attn_decode")
COLLECTIVE_KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")
LAYER_OP = {"input_layernorm": "attn_norm", "post_attention_layernorm": "mlp_norm",
            "attn_rope": "rope", "mlp_act": "mlp_act", "add": "attn_residual"}
REQUIRED = ("op_kind", "gpu", "measured_s")


def load_rows(path, kinds=KERNEL_KINDS + COLLECTIVE_KINDS) -> pd.DataFrame:
    """Usable rows of a profile CSV (``excluded`` empty, kind in ``kinds``)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--from-profile {path}: no such file; give a CSV in the schema of "
                          "kernels.csv (op_kind, gpu, m, n, k, model, tp, measured_s, ...)")
    df = pd.read_csv(p, low_memory=False)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ConfigError(f"--from-profile {path}: missing column(s) {', '.join(missing)}; "
                          "the schema is that of ../shared/data/kernels/kernels.csv")
    if "excluded" in df.columns:
        df = df[df["excluded"].isna() | (df["excluded"].astype(str).str.strip() == "")]
    return df[df["op_kind"].isin(kinds)].reset_index(drop=True)


@lru_cache(maxsize=4096)
def layer_ops(model_name: str, tokens: int, tp: int, dtype: str = "bf16") -> dict[str, Op]:
    """The lowered forward ops of one layer of ``model_name`` at ``tokens`` rows, by name."""
    from sim.calibration.models import profiled_model
    from sim.costs.lowering import lower_layer
    from sim.plan import ParallelPlan, Shape

    model = profiled_model(model_name)
    plan = ParallelPlan(tp=tp, dp=1, global_batch=1, dtype=dtype)
    return {op.name: op for op in lower_layer(model, 0, Shape(1, tokens, "prefill"), plan)}


def attention_row_op(model_name: str, batch: int, q_len: int, ctx: int, tp: int,
                     dtype: str = "bf16") -> Op:
    from sim.calibration.models import profiled_model
    from sim.costs.inference import attention_op

    return attention_op(profiled_model(model_name), [(q_len, ctx)] * batch, tp, dtype)


def _int(v, default: int = 1) -> int:
    return default if pd.isna(v) else int(v)


def row_op(row, dtype: str = "bf16") -> Op:
    """The clustersim Op a measured kernel row times."""
    kind = row["op_kind"]
    if kind == "gemm":
        return gemm_op(int(row["m"]), int(row["n"]), int(row["k"]), dtype)
    tp = _int(row.get("tp"))
    if kind in ("attn_prefill", "attn_decode"):
        return attention_row_op(row["model"], _int(row["batch"]), _int(row["q_len"]),
                                _int(row["ctx"], 0), tp, dtype)
    name = LAYER_OP.get(row["op"], row["op"])
    ops = layer_ops(row["model"], int(row["m"]), tp, dtype)
    if name not in ops:
        raise ConfigError(f"row op {row['op']!r} ({kind}) has no lowered op {name!r}; "
                          f"known: {', '.join(sorted(ops))}")
    return ops[name]


def attention_backend(row) -> str:
    """Which fused attention kernel measured an attention row: the ``attention_kernel`` column
    where the profile has one, else read from the row's ``notes`` (kernels.csv names the
    Sarathi-Serve backend there), else "default"."""
    given = row.get("attention_kernel")
    if isinstance(given, str) and given.strip():
        return given.strip()
    notes = str(row.get("notes") or "").lower()
    if "flashinfer" in notes:
        return "flashinfer"
    if "flash_attn_with_kvcache" in notes:
        return "fa2-paged"  # FlashAttention-2 over the paged KV cache (sim.stack: fa2-paged)
    return "default"


def model_key(row) -> str:
    """What leave-one-model-out holds out together (the profiled model; GEMM rows too)."""
    m = row.get("model")
    return str(m) if isinstance(m, str) and m else "unknown"
