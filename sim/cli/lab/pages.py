"""What each page of the lab shows: the lesson map (``sim.report.lesson``), the explorers and
which lesson and misconceptions each one serves, and the exercises linked from both."""

from __future__ import annotations

from sim.report.lesson import LESSONS, MISCONCEPTIONS

# explorer id -> (title, lesson, misconceptions it refutes, one-line question)
EXPLORER_PAGES = {
    "moe": ("MoE vs dense", "mixture-of-experts", ("moe-is-ensemble", "params-equal-compute"),
            "Total parameters grow with the experts; what about FLOPs per token and decode speed?"),
    "attention": ("Attention cost vs context", "long-context-and-efficient-attention",
                  ("flash-and-kv-solve-long-context", "long-context-is-just-longer-training"),
                  "How do full, sliding-window, dilated and linear attention scale, and what "
                  "does flash attention change: FLOPs or memory?"),
    "kv": ("KV cache vs context", "long-context-and-efficient-attention",
           ("flash-and-kv-solve-long-context", "long-context-is-just-longer-training"),
           "How big is the KV cache of MHA, GQA, MQA and MLA, and how many sequences fit?"),
    "parallel": ("Parallelism planner", "training-and-serving-at-scale",
                 ("parallelism-is-data-splitting",),
                 "Pick TP/PP/DP/ZeRO/EP/CP: does it fit, and where does the step time go?"),
    "serving": ("Serving", "training-and-serving-at-scale", ("flash-and-kv-solve-long-context",),
                "Batching policy, load and speculative decoding: what happens to TTFT and TPOT?"),
}


# One line per lesson part and per misconception's correction, paraphrasing the module plan
# (../shared/seed/000_9cc9a281b049ce94.txt, "Lesson Sequence" and "Module-Level Misconceptions").
CORE = {
    "mixture-of-experts": "Conditional computation: a router sends each token to a few FFN "
                          "experts, so total parameters and per-token compute come apart.",
    "long-context-and-efficient-attention": "Attention's quadratic cost at long context, and "
                                            "what sliding-window, dilated and linear attention "
                                            "and GQA/MQA/MLA change.",
    "training-and-serving-at-scale": "Data, tensor and pipeline parallelism and ZeRO, with "
                                     "communication as the constraint; batching and "
                                     "speculative decoding for serving.",
}
WHY_NOT = {
    "moe-is-ensemble": "Experts are FFN blocks inside one transformer: they share attention, "
                       "the residual stream and the embeddings; the router picks an FFN, not "
                       "a model.",
    "params-equal-compute": "A top-2 of 8 MoE holds ~47B parameters but does about the work "
                            "of a ~13B dense model per token.",
    "long-context-is-just-longer-training": "Position encodings have length limits and "
                                            "attention's cost grows with the square of the "
                                            "context.",
    "parallelism-is-data-splitting": "Data parallelism stops helping when the model does not "
                                     "fit; tensor and pipeline parallelism trade memory, "
                                     "compute and communication differently.",
    "flash-and-kv-solve-long-context": "Flash attention cuts memory to O(n) but keeps the "
                                       "O(n^2) FLOPs; the KV cache avoids recomputation but "
                                       "grows with every token.",
}


def exercises() -> list[dict]:
    from sim.cli.lab.bridge import run_cached

    return run_cached(["exercise", "list"])


def _explorers() -> list[dict]:
    return [{"id": k, "title": t, "lesson": lesson, "tags": list(tags), "question": q}
            for k, (t, lesson, tags, q) in EXPLORER_PAGES.items()]


def home() -> dict:
    exs, exps = exercises(), _explorers()
    lessons = [{"id": k, "title": v, "core": CORE.get(k, ""), "explorers": [e for e in exps if e["lesson"] == k],
                "exercises": [x for x in exs if x["lesson"] == k]} for k, v in LESSONS.items()]
    miscs = [{"id": k, "text": v, "why_not": WHY_NOT.get(k, ""), "explorers": [e for e in exps if k in e["tags"]],
              "exercises": [x for x in exs if k in x["tags"]]} for k, v in MISCONCEPTIONS.items()]
    return {"lessons": lessons, "misconceptions": miscs}


def catalog() -> dict:
    """Names for the pages' menus, from the CLI's own listings and argparse choices."""
    from sim.cli.lab.bridge import options, run_cached

    models = run_cached(["model", "list"])["models"]
    real = [m for m in models if not m["name"].startswith("tiny-")]
    train, serve = options(("train",)), options(("serve",))
    return {"dense_models": [m["name"] for m in real if m["kind"] == "dense"],
            "moe_models": [m["name"] for m in real if m["kind"] == "moe"],
            "all_models": [m["name"] for m in real],
            "draft_models": [m["name"] for m in models if m["kind"] == "dense"],
            "systems": [h["name"] for h in run_cached(["hardware", "list"])
                        if h["kind"] == "system"],
            "schedules": list(train["schedule"].choices),
            "recompute": list(train["recompute"].choices),
            "policies": [p for p in serve["policy"].choices if p != "disaggregated"]}


def context(name: str) -> dict:
    base = {"page": name, "nav": _explorers(), "lessons": LESSONS,
            "misconception_text": MISCONCEPTIONS}
    if name in EXPLORER_PAGES:
        base |= catalog()
    if name == "home":
        return base | home()
    if name in EXPLORER_PAGES:
        title, lesson, tags, question = EXPLORER_PAGES[name]
        return base | {"title": title, "lesson": lesson, "tags": tags, "question": question}
    return base | {"title": "Exercises"}
