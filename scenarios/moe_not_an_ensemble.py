"""Where Mixtral-8x7B's parameters live: one transformer with eight FFNs, not eight models.

Lesson 1 (mixture-of-experts). Concepts: experts are FFN sub-networks inside each block; the
attention layers, residual stream, embeddings and LM head are shared; the router picks an FFN,
not a model. We count every parameter of Mixtral-8x7B by component and compare it with an
ensemble of eight Mistral-7B models (whose FFN is exactly one Mixtral expert).
"""

from __future__ import annotations

import pandas as pd

from sim.model import count_params, get_model
from sim.plots import charts
from sim.report import Result, publish

LESSON = "mixture-of-experts"
TOPIC = "MoE anatomy: shared attention and embeddings, routed FFN experts"
REFUTES = ("moe-is-ensemble",)

MOE_MODEL = "mixtral-8x7b"
BASE_MODEL = "mistral-7b"  # same blocks, one FFN per layer
ENSEMBLE_SIZE = 8  # models in the hypothetical ensemble (= Mixtral's experts)
COMPONENTS = ("embeddings + head", "attention", "FFN / experts", "router", "norms")


def breakdown(name: str) -> dict[str, int]:
    """Parameters of a model by component, summed over layers (exact counts)."""
    counts = count_params(get_model(name))
    layers = [counts.per_layer(i) for i in range(len(counts.layers))]
    return {
        "embeddings + head": counts.embedding + counts.lm_head,
        "attention": sum(p["attention"] for p in layers),
        "FFN / experts": sum(p["ffn"] + p["experts"] + p["shared_experts"] for p in layers),
        "router": sum(p["router"] for p in layers),
        "norms": sum(p["norms"] for p in layers) + counts.final_norm,
        "active per token": counts.active,
    }


def run() -> Result:
    moe, base = breakdown(MOE_MODEL), breakdown(BASE_MODEL)
    ensemble = {k: ENSEMBLE_SIZE * v for k, v in base.items()}
    ensemble["active per token"] = 2 * base["active per token"]  # top-2 models of the ensemble
    rows = {BASE_MODEL: base, MOE_MODEL: moe, f"{ENSEMBLE_SIZE} x {BASE_MODEL}": ensemble}
    table = pd.DataFrame([{"model": k, **{c: v[c] / 1e9 for c in (*COMPONENTS, "active per token")},
                           "total": sum(v[c] for c in COMPONENTS) / 1e9} for k, v in rows.items()])
    table = table.rename(columns=lambda c: c if c == "model" else f"{c} (B)")
    n = {"moe_total": sum(moe[c] for c in COMPONENTS), "ens_total": sum(ensemble[c] for c in COMPONENTS),
         "shared": moe["attention"] + moe["embeddings + head"],
         "moe_attention": moe["attention"], "base_attention": base["attention"],
         "expert_share": moe["FFN / experts"] / sum(moe[c] for c in COMPONENTS),
         "router": moe["router"], "moe_active": moe["active per token"]}
    return Result(table, n, takeaway(n), {"moe_model": get_model(MOE_MODEL).to_dict(),
                                           "base_model": get_model(BASE_MODEL).to_dict()},
                  {"parameters.png": lambda: chart(rows)})


def takeaway(n: dict) -> str:
    same = "the same" if n["moe_attention"] == n["base_attention"] else "different"
    return (f"{MOE_MODEL} has {n['moe_total'] / 1e9:.1f}B parameters, not the "
            f"{n['ens_total'] / 1e9:.1f}B an ensemble of {ENSEMBLE_SIZE} {BASE_MODEL} models would "
            f"have: its {n['moe_attention'] / 1e9:.2f}B attention parameters ({same} as one "
            f"{BASE_MODEL}) and its embeddings exist once and are shared by every expert, and "
            f"only the FFNs are replicated ({100 * n['expert_share']:.0f}% of the weights). The "
            f"router that chooses between them is {n['router'] / 1e6:.2f}M parameters, and a "
            f"token touches {n['moe_active'] / 1e9:.1f}B of them: experts are FFN sub-layers "
            "inside one model, not separate models.")


def chart(rows: dict) -> object:
    parts = {c: [r[c] / 1e9 for r in rows.values()] for c in COMPONENTS}
    return charts.stacked_bars(list(rows), parts, title="Parameters by component",
                               ylabel="parameters (billions)", xlabel="model")


def main(out_dir=None):
    return publish(__name__, run(), out_dir)


if __name__ == "__main__":
    main()
