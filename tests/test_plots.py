"""The plots of ``sim.plots``: what a reader sees (bars, labels, error bars, tick text)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.text import Text

from model.integer import Formats, IntegerNetwork
from model.spec import NetworkSpec
from model.stbp import Network
from sim import plots

ROOT = Path(__file__).resolve().parents[1]


def _report(learning_energy: float = 1.0) -> dict[str, Any]:
    """A three-layer estimate report; ``learning_energy`` scales the learning phases' energy."""
    layers = []
    for index, (name, cycles, energy) in enumerate((("encoder", 13_000, 1.7e5), ("128FC", 9_100, 1.2e5),
                                                     ("100FC", 400, 6.6e3))):
        layers.append({
            "layer": index, "name": name, "cycles": cycles, "energy_per_inference": energy,
            "learning": {
                "backward": {"cycles": 2 * cycles + 5_000, "energy": learning_energy * 3e5},
                "update": {"cycles": cycles // 2 + 1_000, "energy": learning_energy * 8e4},
            },
        })
    return {
        "per_layer": layers, "lanes": 2, "queue_depth": 16, "energy_unit": "pJ",
        "energy_table": {"name": "horowitz45"}, "cycles_per_inference": 22_602.3,
        "energy_per_inference": 2.98e5, "cycles_per_learning_step": 72_671.3,
        "energy_per_learning_step": 1.1e6,
    }


def _bars(axis: Any, color: str) -> list[Any]:
    from matplotlib.colors import to_rgba

    return [patch for patch in axis.patches if patch.get_facecolor() == to_rgba(color)]


def _tick_texts(figure: Figure, axis: Any) -> list[str]:
    figure.draw_without_rendering()
    return [label.get_text() for label in axis.get_xticklabels() if label.get_text()]


def test_report_energy_panel_shows_the_learning_bars_it_lists() -> None:
    figure = plots.report_figure(_report())
    cycles, energy = figure.axes
    for axis in (cycles, energy):
        for phase in ("backward", "update"):
            bars = _bars(axis, plots._COLORS[phase])
            assert len(bars) == 3 and all(bar.get_width() > 0 for bar in bars), phase
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == ["inference (clear, forward, readout)", "learning step adds: backward",
                      "learning step adds: update"]
    assert "not priced" not in energy.get_xlabel()


def test_report_unpriced_learning_says_so_instead_of_empty_bars() -> None:
    figure = plots.report_figure(_report(learning_energy=0.0))
    cycles, energy = figure.axes
    assert not _bars(energy, plots._COLORS["backward"]) and not _bars(energy, plots._COLORS["update"])
    assert len(_bars(cycles, plots._COLORS["backward"])) == 3
    assert "no backward / update bars: not priced by this table" in energy.get_xlabel()


def test_report_ticks_and_totals_are_readable() -> None:
    figure = plots.report_figure(_report())
    cycles, energy = figure.axes
    assert "20,000" in _tick_texts(figure, cycles)
    assert all(text.endswith("J") for text in _tick_texts(figure, energy))
    assert "400 nJ" in _tick_texts(figure, energy)  # an SI prefix, not 4e5 and an offset
    assert "37,850" in {text.get_text() for text in cycles.texts}  # 9,100 + 23,200 + 5,550
    assert "550 nJ" in {text.get_text() for text in energy.texts}
    assert "298 nJ per inference" in figure.get_suptitle()
    assert "72,671 cycles" in figure.get_suptitle()


def test_report_legend_and_layer_names_overlap_no_bar(tmp_path: Path) -> None:
    report = _report()
    report["per_layer"] = [dict(report["per_layer"][1], layer=index, name=f"{index}024FC")
                           for index in range(12)]
    figure = plots.report_figure(report)
    figure.draw_without_rendering()
    renderer = figure.canvas.get_renderer()
    legend = figure.legends[0].get_window_extent(renderer)
    names = [label.get_window_extent(renderer) for label in figure.axes[0].get_yticklabels()]
    for axis in figure.axes:
        for bar in axis.patches:
            assert not legend.overlaps(bar.get_window_extent(renderer))
    assert not any(a.overlaps(b) for a, b in itertools.pairwise(names))
    plots.plot_report(report, tmp_path / "energy.png")
    assert imread(tmp_path / "energy.png").shape[1] == 1000  # 10 in at 100 dpi


def _ablation_rows(**std: float) -> list[dict[str, Any]]:
    rows = json.loads((ROOT / "docs" / "ablation.json").read_text())["digits"]
    rows = [row for row in rows if row["timesteps"] == 8]
    return [{**row, **std} for row in rows]


def _labels(figure: Figure) -> list[Text]:
    return [text for text in figure.axes[0].texts]


def test_ablation_labels_are_readable_names_inside_the_axes_and_apart() -> None:
    rows = _ablation_rows()
    figure = plots.ablation_figure(rows, (0.9, 400.0))
    labels = _labels(figure)
    expected = sorted(plots.ABLATION_LABELS[row["row"]] for row in rows)
    assert sorted(text.get_text() for text in labels) == expected
    assert {"baseline", "enhanced (last)", "+ reset-sub"} <= {text.get_text() for text in labels}
    assert not any("_" in text.get_text() for text in labels)
    renderer = figure.canvas.get_renderer()
    frame = figure.axes[0].get_window_extent(renderer)
    boxes = []
    for text in labels:
        text.update_positions(renderer)
        box = Text.get_window_extent(text, renderer)
        assert frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1), text.get_text()
        boxes.append(box)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert not any(isinstance(item, ErrorbarContainer) for item in figure.axes[0].containers)


def test_ablation_draws_error_bars_over_seeds() -> None:
    figure = plots.ablation_figure(_ablation_rows(accuracy_std=0.004, spikes_std=12.0), (0.9, 400.0))
    containers = [item for item in figure.axes[0].containers if isinstance(item, ErrorbarContainer)]
    assert len(containers) == 1 and containers[0].has_xerr and containers[0].has_yerr
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "float ablation (mean over 4 seeds ± 1 std)" in legend
    assert any("this demo" in text and "90.0 %" in text for text in legend)


def test_ablation_without_the_core_point_names_its_context() -> None:
    figure = plots.ablation_figure(_ablation_rows(), context="mnist10k, 16C3-AP2-32C3-AP2-256FC-100FC")
    title = figure.axes[0].get_title()
    assert title.startswith("mnist10k, 16C3-AP2-32C3-AP2-256FC-100FC, T = 8") and "this core" not in title
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert not any("this demo" in text for text in legend)
    assert len(_labels(figure)) == len(_ablation_rows())


def test_ablation_unknown_row_falls_back_to_a_spaced_name(tmp_path: Path) -> None:
    rows = [{"row": "new_switch_row", "timesteps": 8, "seeds": 1, "accuracy": 0.95,
             "spikes_per_inference": 1234.0}]
    figure = plots.ablation_figure(rows, (0.9, 2000.0))
    assert [text.get_text() for text in _labels(figure)] == ["new switch row"]
    assert "1,200" in _tick_texts(figure, figure.axes[0])
    plots.plot_ablation(rows, (0.9, 2000.0), tmp_path / "ablation.png")
    assert imread(tmp_path / "ablation.png").shape[:2] == (660, 960)  # 8 x 5.5 in at 120 dpi


@pytest.fixture(scope="module")
def network() -> IntegerNetwork:
    spec = NetworkSpec.parse("12FC-6FC", input_shape=(8,), timesteps=4, population=2, classes=3)
    return IntegerNetwork.from_float(Network(spec, seed=1), Formats())


def test_raster_groups_the_output_layer_by_class(network: IntegerNetwork, tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, 8, dtype=np.uint8)
    figure = plots.raster_figure(network, pixels, 1)
    encoder, hidden, output = figure.axes
    assert [image.get_array().shape for image in (encoder.images[0], hidden.images[0], output.images[0])] == [
        (8, 4), (12, 4), (6, 4)
    ]
    assert [label.get_text() for label in output.get_yticklabels()] == ["0", "1", "2"]
    assert "2 neurons per class, predicted class" in output.get_title("left")
    assert [tick for tick in output.get_xticks()] == [1, 2, 3, 4]
    plots.plot_raster(network, pixels, 1, tmp_path / "raster.png")
    assert imread(tmp_path / "raster.png").shape[1] == 840  # 7 in at 120 dpi



def test_ablation_panel_of_networks_of_different_sizes_has_a_log_spike_axis() -> None:
    rows = _ablation_rows()
    conv = [{**row, "spikes_per_inference": 30 * row["spikes_per_inference"]} for row in rows[:2]]
    figure = plots.ablation_figure(rows, None, panels={"mnist10k": {"128FC-100FC": rows, "16C3-100FC": conv}})
    assert [axis.get_xscale() for axis in figure.axes] == ["linear", "log"]
    assert [len(axis.texts) for axis in figure.axes] == [len(rows), len(rows) + 2]
