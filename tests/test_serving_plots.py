"""Serving charts draw what they claim: one CDF line per result per metric, one curve per
policy over the sweep with saturated points marked, both policies side by side."""

from __future__ import annotations

from sim.plots import serving as charts
from sim.serving import simulate_serving

KW = dict(num_requests=30, prompt_tokens=128, output_tokens="uniform:8:64", max_batch=8)


def test_cdfs_sweep_and_side_by_side():
    s = simulate_serving(policy="static", arrival_rate=10, **KW)
    c = simulate_serving(policy="continuous", arrival_rate=10, **KW)
    fig = charts.latency_cdfs({"static": s, "continuous": c})
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2, 2]
    sweep = {p: [simulate_serving(policy=p, arrival_rate=r, **KW).summary for r in (1, 500)]
             for p in ("static", "continuous")}
    fig = charts.throughput_vs_latency(sweep)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2
    hollow = sum(len(c.get_offsets()) for c in ax.collections)
    assert hollow == sum(x["saturated"] for v in sweep.values() for x in v) >= 1
    fig = charts.static_vs_continuous(s, c)
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title().startswith("static:")
    assert fig.axes[1].get_title().startswith("continuous:")
