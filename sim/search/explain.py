"""Why the winner wins: a sentence built from the numbers of the top two plans.

The runner-up's plan is compared field by field with the winner's, and its step time (or
memory, for the memory objective) is split into the same parts the backend reports, so the
sentence names the part that differs most: "the runner-up differs in pp 2 -> 4; it is 3.1%
slower (+52 ms per step): pipeline bubble +61 ms, exposed communication -9 ms, compute +0 ms".
"""

from __future__ import annotations

from sim.formatting import fmt_bytes

PLAN_FIELDS = ("tp", "pp", "dp", "cp", "ep", "zero", "micro_batch", "schedule",
               "virtual_stages", "recompute", "sequence_parallel")
TIME_PARTS = {"compute": "compute", "communication_exposed": "exposed communication",
              "pipeline_bubble": "pipeline bubble"}


def plan_diff(a: dict, b: dict) -> list[str]:
    return [f"{k} {a[k]} -> {b[k]}" for k in PLAN_FIELDS if a[k] != b[k]]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:+,.1f} ms"


def time_story(a: dict, b: dict) -> str:
    ta, tb = a["time_breakdown_s"], b["time_breakdown_s"]
    delta = b["step_time_s"] - a["step_time_s"]
    if abs(delta) <= 1e-12 * max(a["step_time_s"], 1e-30):
        return "it ties on step time and is ranked second only by the deterministic tie-break"
    parts = sorted(TIME_PARTS, key=lambda k: -abs(tb[k] - ta[k]))
    detail = ", ".join(f"{TIME_PARTS[k]} {_ms(tb[k] - ta[k])}" for k in parts)
    rel = delta / a["step_time_s"]
    return (f"it is {rel:.2%} slower ({_ms(delta)} per step): {detail}; the biggest "
            f"difference is {TIME_PARTS[parts[0]]}")


def memory_story(a: dict, b: dict) -> str:
    ma, mb = a["memory_breakdown_bytes"], b["memory_breakdown_bytes"]
    delta = b["memory_per_gpu_bytes"] - a["memory_per_gpu_bytes"]
    parts = sorted(ma, key=lambda k: -abs(mb[k] - ma[k]))
    sign = "+" if delta >= 0 else "-"
    detail = ", ".join(f"{k} {'+' if mb[k] >= ma[k] else '-'}{fmt_bytes(abs(mb[k] - ma[k]))}"
                       for k in parts[:3])
    return (f"it needs {sign}{fmt_bytes(abs(delta))} per GPU ({detail}); the biggest "
            f"difference is {parts[0]}")


def why_runner_up_loses(objective: str, winner: dict, runner_up: dict) -> str:
    """One paragraph from two result documents (``clustersim train --json`` shape + plan)."""
    diff = plan_diff(winner["plan"], runner_up["plan"])
    if winner.get("n_gpus") != runner_up.get("n_gpus"):
        diff.insert(0, f"GPUs {winner['n_gpus']} -> {runner_up['n_gpus']}")
    head = f"The runner-up differs in {', '.join(diff) or 'nothing but its GPU count'}; "
    if objective == "memory":
        return head + memory_story(winner, runner_up) + "."
    story = time_story(winner, runner_up)
    if objective == "cost":
        ca, cb = winner["usd_per_million_tokens"], runner_up["usd_per_million_tokens"]
        story = f"it costs {cb - ca:+.4f} USD per million tokens more; " + story
    return head + story + "."
