"""MoE and Chinchilla: total parameters, active parameters and what a compute budget buys.

Lesson 1 (mixture-of-experts). Concepts: MoE decouples parameters from per-token compute; the
training compute of a step is ~6 x active parameters per token (Kaplan et al. 2020), so at a
fixed budget an MoE trains on as many tokens as a dense model of its *active* size while holding
several times more parameters; Chinchilla's ~20 tokens per parameter (Hoffmann et al. 2022)
becomes ambiguous: per total or per active parameter?
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.costs.flops import backward_flops, forward_flops
from sim.model import count_params, get_model
from sim.plan import Shape
from sim.plots import charts
from sim.report import Result, publish

LESSON = "mixture-of-experts"
TOPIC = "Chinchilla with MoE: total vs active parameters vs compute budget"
REFUTES = ("params-equal-compute",)

MODELS = ("llama2-13b", "mixtral-8x7b", "llama2-70b", "mixtral-8x22b", "deepseek-v3")
SEQ_LEN = 4096  # tokens per training sequence
BUDGET_FLOPS = 1e24  # training compute budget for the table (FLOPs)
BUDGETS = (1e21, 1e22, 1e23, 1e24, 1e25)  # compute budgets for the chart (FLOPs)
TOKENS_PER_PARAM = 20  # Chinchilla compute-optimal ratio (Hoffmann et al. 2022, Table 3)


def train_flops_per_token(model) -> float:
    """Forward + backward FLOPs of one token in a SEQ_LEN sequence (no recomputation)."""
    shape = Shape(batch=1, seq=SEQ_LEN, phase="train")
    f = forward_flops(model, shape, padding=False).total
    return (f + backward_flops(model, shape, padding=False).total) / SEQ_LEN


def row(name: str) -> dict:
    model = get_model(name)
    counts = count_params(model)
    per_token = train_flops_per_token(model)
    tokens = BUDGET_FLOPS / per_token
    return {"model": name, "params_total_B": counts.total / 1e9,
            "params_active_B": counts.active / 1e9,
            "train_gflop_per_token": per_token / 1e9,
            "flops_per_token_per_total_param": per_token / counts.total,
            "tokens_at_budget_T": tokens / 1e12,
            "tokens_per_total_param": tokens / counts.total,
            "tokens_per_active_param": tokens / counts.active}


def run() -> Result:
    table = pd.DataFrame([row(m) for m in MODELS])
    by = table.set_index("model")
    dense, moe = by.loc["llama2-13b"], by.loc["mixtral-8x7b"]
    n = {"param_ratio": moe.params_total_B / dense.params_total_B,
         "flop_ratio": moe.train_gflop_per_token / dense.train_gflop_per_token,
         "moe_gflop": moe.train_gflop_per_token, "dense_gflop": dense.train_gflop_per_token,
         "moe_tokens_T": moe.tokens_at_budget_T, "dense_tokens_T": dense.tokens_at_budget_T,
         "moe_tpp_total": moe.tokens_per_total_param, "moe_tpp_active": moe.tokens_per_active_param,
         "v3_fpp": by.loc["deepseek-v3"].flops_per_token_per_total_param,
         "dense_fpp": dense.flops_per_token_per_total_param}
    return Result(table, n, takeaway(n), {"models": list(MODELS), "seq_len": SEQ_LEN,
                                          "budget_flops": BUDGET_FLOPS},
                  {"params_vs_compute.png": lambda: bars(table),
                   "tokens_vs_budget.png": lambda: budget_curves(table)})


def takeaway(n: dict) -> str:
    return (f"Mixtral-8x7B has {n['param_ratio']:.1f}x the parameters of Llama-2-13B but costs "
            f"{n['flop_ratio']:.2f}x its training compute per token ({n['moe_gflop']:.0f} vs "
            f"{n['dense_gflop']:.0f} GFLOP), so a {BUDGET_FLOPS:.0e} FLOP budget trains it on "
            f"{n['moe_tokens_T']:.1f}T tokens against {n['dense_tokens_T']:.1f}T for the dense "
            f"model. That is {n['moe_tpp_active']:.0f} tokens per active parameter but only "
            f"{n['moe_tpp_total']:.0f} per total parameter: Chinchilla's "
            f"{TOKENS_PER_PARAM}-tokens-per-parameter rule must say which. A dense model spends "
            f"{n['dense_fpp']:.1f} FLOPs per parameter per token, DeepSeek-V3 only "
            f"{n['v3_fpp']:.2f}: more parameters do not mean proportionally more compute.")


def bars(table: pd.DataFrame):
    series = {"total parameters": list(table.params_total_B),
              "active parameters": list(table.params_active_B),
              "compute-equivalent (FLOPs/token / 6)": list(table.train_gflop_per_token / 6)}
    return charts.grouped_bars(list(table.model), series, logy=True, xlabel="model",
                               title=f"Parameters vs per-token training compute (seq {SEQ_LEN})",
                               ylabel="billions (log scale)")


def budget_curves(table: pd.DataFrame):
    series = {m: list(np.array(BUDGETS) / (g * 1e9) / 1e12)
              for m, g in zip(table.model, table.train_gflop_per_token, strict=True)}
    return charts.line_chart([b / 1e21 for b in BUDGETS], series, logx=False, logy=True,
                             title=f"Training tokens a compute budget buys (seq {SEQ_LEN})",
                             xlabel="compute budget (ZFLOP = 1e21 FLOPs)",
                             ylabel="training tokens (trillions, log scale)")


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
