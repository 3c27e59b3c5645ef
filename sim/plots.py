"""Plots the commands write: the per-layer cycle and energy breakdown (``estimate --plot``),
the spike raster of one inference and accuracy against spikes across the float ablation
(``demo``). Every plot is drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.integer import IntegerNetwork


def plot_report(report: dict[str, Any], path: str | Path) -> None:
    """Bar chart of the per-layer breakdown: cycles and energy, inference and learning."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = report["per_layer"]
    names = [f"{item['layer']}: {item['name']}" for item in layers]
    x = np.arange(len(layers))
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = (("cycles", "cycles per sample"), ("energy", f"energy per sample ({report['energy_unit']})"))
    for axis, (key, label) in zip(axes, panels):
        bottom = np.zeros(len(layers))
        first = "cycles" if key == "cycles" else "energy_per_inference"
        values = np.array([item[first] for item in layers], dtype=float)
        axis.bar(x, values, label="inference", color="tab:blue")
        bottom += values
        for phase, color in zip(layers[0].get("learning", {}), ("tab:orange", "tab:green")):
            values = np.array([item["learning"][phase][key] for item in layers], dtype=float)
            axis.bar(x, values, bottom=bottom, label=f"learning: {phase}", color=color)
            bottom += values
        axis.set_xticks(x, names)
        axis.set_ylabel(label)
        axis.legend(fontsize=8)
    figure.suptitle(
        f"P = {report['lanes']}, Q = {report['queue_depth']}: "
        f"{report['cycles_per_inference']:.0f} cycles / inference, table {report['energy_table']['name']}"
    )
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_raster(network: IntegerNetwork, pixels: np.ndarray, label: int, path: Path) -> None:
    """Spike raster of one inference: every layer's spikes against the time step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trace = network.forward(pixels[None, :])
    names = ["encoder"] + [layer.notation() for layer in network.spec.layers]
    figure, axes = plt.subplots(
        len(names), 1, figsize=(7, 1.6 * len(names) + 1), sharex=True, squeeze=False
    )
    for axis, name, spikes in zip(axes[:, 0], names, trace.spikes):
        steps, neurons = np.nonzero(spikes[:, 0, :])
        axis.scatter(steps + 1, neurons, s=6, marker="|")
        axis.set_ylabel(f"{name}\nneuron")
        axis.set_ylim(-1, spikes.shape[2])
        axis.set_title(f"{name}: {int(spikes.sum())} spikes", fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time step t")
    axes[-1, 0].set_xticks(range(1, network.spec.timesteps + 1))
    prediction = int(trace.predictions()[0])
    figure.suptitle(f"One inference: test image 0, label {label}, predicted {prediction}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_ablation(rows: Sequence[dict[str, Any]], ours: tuple[float, float], path: Path) -> None:
    """Test accuracy against spikes per inference: the float ablation rows and this core."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 5))
    for row in rows:
        axis.scatter(row["spikes_per_inference"], 100 * row["accuracy"], color="tab:blue")
        axis.annotate(row["row"], (row["spikes_per_inference"], 100 * row["accuracy"]), fontsize=7)
    axis.scatter(ours[1], 100 * ours[0], marker="*", s=200, color="tab:red", label="this demo (integer, on-line)")
    axis.set_xlabel("spikes per inference")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title("digits: accuracy against spikes, float ablation (scripts/ablation.py) and this core", fontsize=9)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
