"""Readable report figures: every run distinguishable, the legend hiding no data, tick labels and point
labels that do not run into each other (repbench/plots.py)."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.text import Text

from repbench import plots


def _curve(run, values, sizes=(100, 200, 400, 800)):
    return {"run": run, "representation": "soap", "report_unit": "meV/cation", "dataset": "nmd18",
            "target": "formation_energy", "per": "cation", "test_set": {"size": 10, "kind": "drawn"},
            "sizes": [{"size": n, "draws": [{"draw": 0}, {"draw": 1}], "mean_report": {"mae": v},
                       "std_report": {"mae": 0.05 * v}} for n, v in zip(sizes, values)]}


@pytest.fixture
def drawn(monkeypatch):
    """The figure a plot function would save, drawn, instead of the files."""
    seen = {}

    def fake_save(fig, path_stem):
        fig.canvas.draw()
        seen["fig"] = fig
        return []

    monkeypatch.setattr(plots, "_save", fake_save)
    yield seen
    if "fig" in seen:
        plt.close(seen["fig"])


def _boxes_overlap(boxes):
    return [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes) if i < j and a.overlaps(b)]


def test_run_styles_distinct_and_first_ten_unchanged():
    styles = plots.run_styles(25)
    combos = {(to_hex(s["color"]), s["marker"]) for s in styles}
    assert len(combos) == 25
    tab10 = [to_hex(c) for c in matplotlib.colormaps["tab10"].colors]
    assert [to_hex(s["color"]) for s in styles[:10]] == tab10  # matplotlib's default cycle, as before
    assert all(s["marker"] == "o" and s["linestyle"] == "-" for s in styles[:10])


def test_learning_curves_eleven_runs_distinct_and_legend_outside(tmp_path, drawn):
    rng = np.random.default_rng(0)
    curves = [_curve(f"nmd18-small-run{i}", 30 * rng.uniform(0.5, 2) * np.array([1, 0.7, 0.55, 0.5]))
              for i in range(11)]
    plots.learning_curves(curves, tmp_path / "lc")
    fig = drawn["fig"]
    ax = fig.axes[0]
    lines = [c.lines[0] for c in ax.containers]  # the data line of each errorbar
    assert len(lines) == 11
    assert len({(to_hex(ln.get_color()), ln.get_marker()) for ln in lines}) == 11
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    frame = ax.get_window_extent(renderer)
    assert legend.x0 >= frame.x1  # to the right of the axes: it hides no curve
    assert fig.get_size_inches()[0] > 6  # the figure widened for it
    assert len(ax.get_legend().get_texts()) == 11


def test_learning_curves_few_runs_legend_hides_no_point(tmp_path, drawn):
    # the curves fill the upper right where a legend would go first
    curves = [_curve("a", [40, 35, 30, 28]), _curve("b", [30, 25, 22, 20]), _curve("c", [20, 18, 16, 15])]
    plots.learning_curves(curves, tmp_path / "lc")
    fig = drawn["fig"]
    ax = fig.axes[0]
    box = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    for c in ax.containers:
        d = ax.transData.transform(np.column_stack(c.lines[0].get_data()))
        assert not any(box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1 for x, y in d)


@pytest.mark.parametrize("cost_range", [(5e-5, 0.3), (7e-4, 0.3), (0.01, 0.05)],
                         ids=["4dec", "2.6dec", "narrow"])
def test_error_vs_cost_labels_do_not_overlap(tmp_path, drawn, cost_range):
    rng = np.random.default_rng(1)
    lo, hi = cost_range
    cost = np.geomspace(lo, hi, 11) * rng.uniform(0.9, 1.1, 11)
    cost[4] = cost[3] * 1.05  # two close pairs, like soap / soap_featomic
    err = 20 * (cost / cost[0]) ** -0.05 * rng.uniform(0.95, 1.05, 11)
    err[4] = err[3] * 1.01
    points = [{"label": f"nmd18-small-run{i}", "cost_s": c, "error": e, "unit": "meV/cation"}
              for i, (c, e) in enumerate(zip(cost, err))]
    plots.error_vs_cost(points, tmp_path / "evc")
    fig = drawn["fig"]
    ax = fig.axes[0]
    for axis in (ax.xaxis, ax.yaxis):
        boxes = plots._tick_label_boxes(fig, axis)
        assert len(boxes) >= 2
        assert not _boxes_overlap(boxes), [t.get_text() for t in axis.get_ticklabels(minor=True)]
    if lo == 0.01:  # a narrow span keeps labelled minor ticks
        assert any(t.get_text() for t in ax.xaxis.get_ticklabels(minor=True))
    renderer = fig.canvas.get_renderer()
    texts = [a for a in ax.texts if a.get_text().startswith("nmd18-small-run")]
    assert len(texts) == 11
    assert not _boxes_overlap([Text.get_window_extent(a, renderer) for a in texts])
    # each label as well as its colour/marker: the runs' styles
    assert len({(to_hex(c.get_facecolor()[0]), id(c.get_paths()[0])) for c in ax.collections}) == 11
