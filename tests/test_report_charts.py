"""Charts that teach at a glance: good/bad colour direction, no series hidden under another,
no bars on log axes, infeasible plans marked, huge bars clipped, greyscale-readable maps."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.patches import Rectangle

from sim.plots import charts


def _luma(rgb) -> float:
    r, g, b = rgb[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def _image(fig):
    return fig.axes[0].get_images()[0]


@pytest.mark.parametrize("higher, good_is", [(True, "high"), (False, "low")])
def test_heatmap_colours_the_good_end_dark_green_whichever_direction_is_good(higher, good_is):
    fig = charts.heatmap([[1.0, 2.0], [3.0, 4.0]], [1, 2], ["a", "b"], title="t", xlabel="x",
                         ylabel="y", cbar_label="c", higher_is_better=higher)
    im = _image(fig)
    best = 4.0 if good_is == "high" else 1.0
    worst = 1.0 if good_is == "high" else 4.0
    good, bad = im.cmap(im.norm(best)), im.cmap(im.norm(worst))
    assert good[1] > good[0] and good[1] > good[2]  # green dominates at the good end
    assert _luma(good) < _luma(bad)  # and it is the dark end: readable in greyscale


def test_a_heatmap_without_good_or_bad_uses_a_sequential_map_with_monotonic_lightness():
    fig = charts.heatmap([[1.0, 2.0], [3.0, 4.0]], [1, 2], ["a", "b"], title="t", xlabel="x",
                         ylabel="y", cbar_label="c")
    im = _image(fig)
    lumas = [_luma(im.cmap(v)) for v in np.linspace(0, 1, 11)]
    assert im.cmap.name == "viridis" and all(np.diff(lumas) > 0)


def test_heatmap_text_is_white_on_dark_cells_and_black_on_light_ones():
    fig = charts.heatmap([[0.0, 10.0]], [1], ["lo", "hi"], title="t", xlabel="x", ylabel="y",
                         cbar_label="c", higher_is_better=True)
    colours = {t.get_text(): to_rgb(t.get_color()) for t in fig.axes[0].texts}
    assert colours["10.00"] == (1.0, 1.0, 1.0) and colours["0.00"] == (0.0, 0.0, 0.0)


def test_equal_series_stay_visible_with_distinct_markers_and_dashes():
    fig = charts.line_chart([1, 2, 3], {"gpipe": [5, 4, 3], "1f1b": [5, 4, 3]}, title="t",
                            xlabel="x", ylabel="y", note="equal by definition")
    a, b = fig.axes[0].get_lines()[:2]
    assert a.get_marker() != b.get_marker() and a.get_linestyle() != b.get_linestyle()
    assert any("equal by definition" in t.get_text() for t in fig.axes[0].texts)


def test_closed_form_reference_curves_are_drawn_and_labelled():
    fig = charts.line_chart([1, 2], {"sim": [1, 2]}, title="t", xlabel="x", ylabel="y",
                            refs={"closed form": [1, 2]})
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "closed form" in labels


def test_no_bars_on_a_log_axis():
    fig = charts.grouped_bars(["a", "b"], {"s": [1.0, 1000.0], "t": [2.0, 3.0]}, title="t",
                              ylabel="y", xlabel="x", logy=True)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert not [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 0]
    assert len(ax.get_lines()) == 2  # one dot series per series


def test_infeasible_plans_are_hatched_and_a_huge_bar_is_clipped_with_its_value():
    fig = charts.memory_breakdown(
        ["ok", "huge"], [{"weights": 40 * charts.GIB}, {"weights": 1060 * charts.GIB}],
        title="t", capacity_bytes=80 * charts.GIB, clip_at_capacity=2.5)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_height() > 0]
    assert [bool(b.get_hatch()) for b in bars] == [False, True]
    assert ax.get_ylim()[1] == pytest.approx(200)  # 2.5 x 80 GiB: the small bar stays legible
    assert any("1,060" in t.get_text() for t in ax.texts)


def test_roofline_spreads_ops_that_land_on_the_same_point():
    ops = [("train", "mlp_up", 300.0, 6e14), ("train", "mlp_down", 300.0, 6e14),
           ("decode", "mlp_up", 1.0, 3e12)]
    shifts = charts._spread(ops)
    assert shifts[0] != shifts[1] and shifts[2] == 1.0
