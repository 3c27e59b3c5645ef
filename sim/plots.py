"""Plots the commands write: the per-layer cycle and energy breakdown (``estimate --plot``),
the spike raster of one inference and accuracy against spikes across the float ablation
(``demo``). Each ``*_figure`` function builds a :class:`~matplotlib.figure.Figure` on the Agg
canvas (no display, no pyplot state); the ``plot_*`` functions write it as a PNG."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.transforms import Bbox

from model.integer import IntegerNetwork

#: Plot labels of the ablation rows of ``scripts/ablation.py`` (``docs/ablation.json``'s
#: ``row``), named by what they change relative to the baseline (the original STBP).
ABLATION_LABELS = {
    "baseline": "baseline",
    "subtract": "+ reset-sub",
    "scaled": "+ scaled surrogate",
    "last": "+ last-spike decoder",
    "fc": "+ fc decoder",
    "subtract_trainable": "+ reset-sub + trainable threshold",
    "subtract_scaled": "+ reset-sub + scaled",
    "subtract_trainable_scaled": "+ reset-sub + trainable + scaled",
    "enhanced": "enhanced (last)",
    "subtract_trainable_scaled_fc": "enhanced (fc)",
    "subtract_fixed_scaled_last": "enhanced (last), fixed threshold",
}

#: Bar colours of the breakdown: the inference, then the learning phases.
_COLORS = {"inference": "tab:blue", "backward": "tab:orange", "update": "tab:green"}


def _figure(**kwargs: Any) -> Figure:
    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path, dpi: int) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)


def _count(value: float) -> str:
    """``37,023``: a count with thousands separators."""
    return f"{value:,.0f}"


#: SI prefixes by power of 1000.
_PREFIXES = {-5: "f", -4: "p", -3: "n", -2: "\u00b5", -1: "m", 0: "", 1: "k", 2: "M", 3: "G"}


def _si(value: float, unit: str) -> str:
    """``298 nJ``: three significant digits and an SI prefix."""
    if value == 0:
        return f"0 {unit}"
    power = min(max(int(np.floor(np.log10(abs(value)) / 3)), min(_PREFIXES)), max(_PREFIXES))
    return f"{value / 1000.0 ** power:.3g} {_PREFIXES[power]}{unit}"


def _count_tick(value: float) -> str:
    """A tick's count: ``40,000``, from a million on ``20 M``."""
    return _count(value) if abs(value) < 1e6 else _si(value, "")


def energy_text(unit: str, ticks: bool = False) -> Callable[[float], str]:
    """Formatter of energies in ``unit``: SI prefixes for ``pJ`` (``298 nJ``), else a count
    (``445 spikes``; ``ticks``: without the unit, which the axis label names)."""
    if unit == "pJ":
        return lambda value: _si(value * 1e-12, "J")
    return _count_tick if ticks else lambda value: f"{value:,.0f} {unit}s"


def report_figure(report: dict[str, Any]) -> Figure:
    """Horizontal stacked bars per layer, cycles and energy: an inference, and what a learning
    step adds to it (backward and update) when the report has learning."""
    layers = report["per_layer"]
    names = [f"{item['layer']}: {item['name']}" for item in layers]
    phases = list(layers[0].get("learning", {}))
    energy_format = energy_text(report["energy_unit"])
    figure = _figure(figsize=(10, 1.6 + 0.45 * len(layers)), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    table = report["energy_table"]["name"]
    unit = "" if report["energy_unit"] == "pJ" else f"{report['energy_unit']}s, "
    panels = (
        ("cycles", "cycles", "cycles per sample", _count_tick, _count_tick),
        ("energy", "energy_per_inference", f"energy per sample ({unit}table {table})",
         energy_text(report["energy_unit"], ticks=True), energy_format),
    )
    y = np.arange(len(layers))
    for axis, (key, first, label, tick, text) in zip(axes, panels):
        left = np.array([item[first] for item in layers], dtype=float)
        axis.barh(y, left, color=_COLORS["inference"], label="inference (clear, forward, readout)")
        unpriced = []
        for phase in phases:
            values = np.array([item["learning"][phase][key] for item in layers], dtype=float)
            if not values.any():
                unpriced.append(phase)
                continue
            axis.barh(y, values, left=left, color=_COLORS[phase], label=f"learning step adds: {phase}")
            left = left + values
        for row, total in zip(y, left):
            axis.annotate(text(total), (total, row), xytext=(3, 0), textcoords="offset points",
                          va="center", fontsize=8)
        if unpriced and key == "energy":
            label += f"\nno {' / '.join(unpriced)} bars: not priced by this table"
        axis.set_xlim(0, 1.18 * max(left.max(), 1.0))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _, tick=tick: tick(value)))
        axis.locator_params(axis="x", nbins=5)
        axis.set_xlabel(label)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()  # the encoder on top, the output layer last
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8, frameon=False)
    title = (f"P = {report['lanes']}, Q = {report['queue_depth']}: {_count(report['cycles_per_inference'])} "
             f"cycles, {energy_format(report['energy_per_inference'])} per inference")
    if report.get("cycles_per_learning_step") is not None:
        title += (f"; {_count(report['cycles_per_learning_step'])} cycles, "
                  f"{energy_format(report['energy_per_learning_step'])} per learning step")
    figure.suptitle(title, fontsize=10)
    return figure


def plot_report(report: dict[str, Any], path: str | Path) -> None:
    """Write :func:`report_figure` to ``path``."""
    _save(report_figure(report), path, dpi=100)


def raster_figure(network: IntegerNetwork, pixels: np.ndarray, label: int) -> Figure:
    """Spike raster of one inference: every layer's neurons against the time step, the output
    layer's neurons grouped by class."""
    spec = network.spec
    trace = network.forward(pixels[None, :])
    prediction = int(trace.predictions()[0])
    names = ["encoder"] + [layer.notation() for layer in spec.layers]
    figure = _figure(figsize=(7, 1.6 * len(names) + 1), layout="constrained")
    axes = figure.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    for axis, name, spikes in zip(axes, names, trace.spikes):
        grid = spikes[:, 0, :].reshape(spikes.shape[0], -1).T  # neuron x step
        axis.imshow(grid, aspect="auto", origin="lower", cmap="Greys", vmin=0, vmax=1,
                    interpolation="nearest", extent=(0.5, spec.timesteps + 0.5, -0.5, grid.shape[0] - 0.5))
        axis.set_title(f"{name}: {_count(grid.sum())} spikes", fontsize=9, loc="left")
        axis.set_ylabel("neuron")
        for step in range(1, spec.timesteps):  # keeps a neuron's spikes at t and t + 1 apart
            axis.axvline(step + 0.5, color="white", linewidth=1)
    output, population = axes[-1], spec.population
    output.set_xlabel("time step t")
    output.set_xticks(range(1, spec.timesteps + 1))
    figure.suptitle(f"One inference: test image 0, label {label}, predicted {prediction}", fontsize=11)
    for boundary in range(1, spec.classes):
        output.axhline(boundary * population - 0.5, color="0.8", linewidth=0.5)
    output.axhspan(prediction * population - 0.5, (prediction + 1) * population - 0.5,
                   color="tab:orange", alpha=0.3)
    output.set_title(f"{output.get_title('left')}, {population} neurons per class, predicted class "
                     f"{prediction} shaded", fontsize=9, loc="left")
    output.set_yticks(np.arange(spec.classes) * population + (population - 1) / 2, range(spec.classes))
    output.set_ylabel("class")
    return figure


def plot_raster(network: IntegerNetwork, pixels: np.ndarray, label: int, path: Path) -> None:
    """Write :func:`raster_figure` to ``path``."""
    _save(raster_figure(network, pixels, label), path, dpi=120)


#: Offsets (points) a point's label may take: beside it, above or below it (with a leader line).
_LABEL_OFFSETS = [(dx, dy) for dy in range(-64, 65, 8) for dx in (6, -6, 0) if dx or dy]


def _overlap(box: Bbox, others: Sequence[Bbox]) -> float:
    """Area of ``box`` shared with ``others`` (display pixels squared)."""
    common = (Bbox.intersection(box, other) for other in others)
    return sum(part.width * part.height for part in common if part is not None)


def _label_box(anchor: np.ndarray, size: tuple[float, float], offset: tuple[int, int], pixels: float) -> Bbox:
    """Display box of a label of ``size`` at ``offset`` points from ``anchor``, aligned as
    :func:`_place_labels` aligns it (``pixels``: per point)."""
    (width, height), (dx, dy) = size, offset
    left = anchor[0] + dx * pixels - (0 if dx > 0 else width if dx < 0 else width / 2)
    bottom = anchor[1] + dy * pixels - (height / 2 if dy == 0 else 0 if dy > 0 else height)
    return Bbox.from_bounds(left, bottom, width, height).expanded(1.05, 1.2)


def _place_labels(
    figure: Figure, axis: Any, points: Sequence[tuple[float, float, str]],
    hard: Sequence[Bbox], soft: Sequence[Bbox],
) -> None:
    """Annotate each point at the offset that costs least: overlap with the placed labels, the
    markers, the ``hard`` boxes and the outside of the axes counts ten times overlap with the
    ``soft`` boxes (error bars), plus the leader line's length."""
    renderer = figure.canvas.get_renderer()
    frame = axis.get_window_extent(renderer)
    to_display = axis.transData.transform
    taken = [Bbox.from_bounds(*(to_display((x, y)) - 5), 10, 10) for x, y, _ in points]
    taken += hard
    pixels = figure.dpi / 72  # per point
    for x, y, text in sorted(points, key=lambda point: -point[1]):
        probe = axis.text(0, 0, text, fontsize=7)
        size = tuple(probe.get_window_extent(renderer).size)
        probe.remove()
        boxes = {offset: _label_box(to_display((x, y)), size, offset, pixels) for offset in _LABEL_OFFSETS}
        costs = {
            (dx, dy): 10 * (box.width * box.height - _overlap(box, [frame]) + _overlap(box, taken))
            + _overlap(box, soft) + 2 * abs(dy) + (dx < 0)
            for (dx, dy), box in boxes.items()
        }
        dx, dy = min(costs, key=costs.__getitem__)
        axis.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=7,
                      ha="left" if dx > 0 else "right" if dx < 0 else "center",
                      va="center" if dy == 0 else "bottom" if dy > 0 else "top",
                      arrowprops={"arrowstyle": "-", "color": "0.5", "linewidth": 0.5,
                                  "shrinkA": 0, "shrinkB": 3} if dy else None)
        taken.append(boxes[dx, dy])


#: Spikes per inference of one ablation panel spanning more than this factor: a log axis.
LOG_SPIKES_SPAN = 8.0
#: Colours and markers of the ablation groups: the demo's network first, then the others.
_GROUP_STYLES = (("tab:blue", "o"), ("tab:green", "s"), ("tab:purple", "^"), ("tab:brown", "D"))


def _ablation_groups(
    axis: Any, groups: Sequence[tuple[str, Sequence[dict[str, Any]]]], styles: dict[str, tuple[str, str]],
) -> tuple[list[tuple[float, float, str]], list[tuple[np.ndarray, ...]]]:
    """Draw each group (legend name, rows) on ``axis`` in its network's style (``styles``:
    name -> colour and marker, extended in :data:`_GROUP_STYLES` order); return the points
    to label and the error bars (x, y, xerr, yerr) to keep labels off."""
    points, bars = [], []
    for name, group in groups:
        color, marker = styles.setdefault(name, _GROUP_STYLES[len(styles) % len(_GROUP_STYLES)])
        x = np.array([row["spikes_per_inference"] for row in group], dtype=float)
        y = 100 * np.array([row["accuracy"] for row in group], dtype=float)
        xerr = np.array([row.get("spikes_std") or 0.0 for row in group], dtype=float)
        yerr = 100 * np.array([row.get("accuracy_std") or 0.0 for row in group], dtype=float)
        seeds = sorted({row.get("seeds", 1) for row in group})
        over = f"mean over {'/'.join(map(str, seeds))} seed{'s' if seeds != [1] else ''}"
        if xerr.any() or yerr.any():
            axis.errorbar(x, y, xerr=xerr, yerr=yerr, fmt=marker, color=color, ecolor=color,
                          elinewidth=0.8, capsize=2, label=f"{name} ({over} ± 1 std)")
        else:
            axis.scatter(x, y, color=color, marker=marker, label=f"{name} ({over})")
        labels = [ABLATION_LABELS.get(row["row"], row["row"].replace("_", " ")) for row in group]
        points += list(zip(x, y, labels))
        bars.append((x, y, xerr, yerr))
    spikes = np.concatenate([x for x, *_ in bars])
    if spikes.max() > LOG_SPIKES_SPAN * spikes.min():  # networks of different sizes: log axis
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
    axis.margins(x=0.25, y=0.12)
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _count(value)))
    axis.set_xlabel("spikes per inference")
    axis.set_ylabel("test accuracy (%)")
    return points, bars


def ablation_figure(
    rows: Sequence[dict[str, Any]], ours: tuple[float, float] | None = None, *, context: str = "digits",
    name: str | None = None, others: Mapping[str, Sequence[dict[str, Any]]] | None = None,
    panels: Mapping[str, Mapping[str, Sequence[dict[str, Any]]]] | None = None,
) -> Figure:
    """Test accuracy against spikes per inference: the float ablation rows (mean over seeds,
    error bars of one standard deviation where a row has ``accuracy_std`` / ``spikes_std``),
    the rows of other networks' ablations (``others``: network name -> rows, each in its own
    colour and marker) and, when given, this core (``ours``: accuracy, spikes per inference);
    ``context`` (the dataset, and the network when it is not the default) opens the title;
    ``name``, the network of ``rows``, joins their legend entry. ``panels`` (context -> network
    name -> rows: the ablations of other datasets) adds one panel each, right of the first,
    a network keeping its colour and marker across panels."""
    layout = [(context, [(name, rows), *(others or {}).items()], ours),
              *((title, list(groups.items()), None) for title, groups in (panels or {}).items())]
    figure = _figure(figsize=(8 * len(layout), 5.5), layout="constrained")
    axes = figure.subplots(1, len(layout), squeeze=False)[0]
    styles: dict[str, tuple[str, str]] = {}
    drawn = []
    for axis, (title, groups, point) in zip(axes, layout, strict=True):
        named = [("float ablation" if arch is None else f"float ablation, {arch}", group) for arch, group in groups]
        points, bars = _ablation_groups(axis, named, styles)
        if point is not None:
            axis.scatter(point[1], 100 * point[0], marker="*", s=180, color="tab:red", edgecolors="white",
                         linewidths=0.5, zorder=3,
                         label=f"this demo (integer, on-line): {100 * point[0]:.1f} %, {point[1]:,.0f} spikes")
        every = [row for _, group in groups for row in group]
        steps = ", ".join(f"T = {t}" for t in sorted({row["timesteps"] for row in every}))
        core = "" if point is None else " and this core"
        axis.set_title(f"{title}, {steps}: accuracy against spikes, float ablation (scripts/ablation.py)"
                       f"{core}", fontsize=9)
        drawn.append((axis, points, bars, point))
    legend = {}  # one entry per label over all panels
    for axis in axes:
        legend.update(zip(*reversed(axis.get_legend_handles_labels()), strict=True))
    figure.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    figure.draw_without_rendering()  # final layout before the labels are placed
    for axis, points, bars_data, point in drawn:
        to_display = axis.transData.transform
        hard = [] if point is None else [Bbox.from_bounds(*(to_display((point[1], 100 * point[0])) - 10), 20, 20)]
        bars = []
        for x, y, xerr, yerr in bars_data:
            for xs, ys in zip(np.stack([x - xerr, x + xerr], axis=1), np.stack([y - yerr, y + yerr], axis=1),
                              strict=True):
                bars += [Bbox(to_display([(xs[0], ys.mean()), (xs[1], ys.mean())])).padded(3),
                         Bbox(to_display([(xs.mean(), ys[0]), (xs.mean(), ys[1])])).padded(3)]
        _place_labels(figure, axis, points, hard, bars)
    figure.set_layout_engine("none")  # keep the positions the labels were placed against
    return figure


def plot_ablation(
    rows: Sequence[dict[str, Any]], ours: tuple[float, float] | None, path: Path, *, context: str = "digits",
    name: str | None = None, others: Mapping[str, Sequence[dict[str, Any]]] | None = None,
    panels: Mapping[str, Mapping[str, Sequence[dict[str, Any]]]] | None = None,
) -> None:
    """Write :func:`ablation_figure` to ``path``."""
    _save(ablation_figure(rows, ours, context=context, name=name, others=others, panels=panels), path, dpi=120)


def decoder_weights_figure(curves: Sequence[dict[str, Any]]) -> Figure:
    """The paper's Fig. 3: mean |decoder weight| against the time step t, one line per
    trainer and T (``curves``: ``trainer``, ``timesteps``, ``mean_abs_weight`` and
    ``std_abs_weight`` per step, over the seeds), one panel per T."""
    steps = sorted({curve["timesteps"] for curve in curves})
    figure = _figure(figsize=(4.5 * len(steps), 3.6), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(steps), squeeze=False)[0])
    styles = {"float": ("tab:blue", "o"), "integer": ("tab:red", "s")}
    for axis, timesteps in zip(axes, steps):
        for curve in (curve for curve in curves if curve["timesteps"] == timesteps):
            color, marker = styles.get(curve["trainer"], ("tab:gray", "^"))
            t = np.arange(1, timesteps + 1)
            axis.errorbar(t, curve["mean_abs_weight"], yerr=curve["std_abs_weight"], color=color,
                          marker=marker, markersize=4, capsize=2, label=curve["trainer"])
        axis.set_title(f"T = {timesteps}", fontsize=9)
        axis.set_xlabel("time step t")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylim(bottom=0)
    axes[0].set_ylabel("mean |decoder weight|")
    axes[0].legend(fontsize=8, frameon=False)
    figure.suptitle("digits, 128FC-100FC: the fc decoder's weight per time step (mean over seeds ± 1 std)",
                    fontsize=9)
    return figure


def plot_decoder_weights(curves: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Write :func:`decoder_weights_figure` to ``path``."""
    _save(decoder_weights_figure(curves), path, dpi=120)


def faults_figure(report: dict[str, Any]) -> Figure:
    """Accuracy against bit-error rate per memory (``spikeforge faults``): after injection
    (solid) and after on-line learning continued on the faulty core (dashed, when present);
    with ``bit_rows`` a second panel of the accuracy lost per bit position."""
    bits = report.get("bit_rows") or []
    figure = _figure(figsize=(11 if bits else 7, 4.5), layout="constrained")
    axes = figure.subplots(1, 2 if bits else 1, squeeze=False)[0]
    clean = 100 * report["accuracy_without_faults"]
    memories = list(dict.fromkeys(row["memory"] for row in report["rows"]))
    colors = dict(zip(memories, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")))
    axis = axes[0]
    for memory in memories:
        rows = [row for row in report["rows"] if row["memory"] == memory]
        ber = [row["ber"] for row in rows]
        axis.errorbar(ber, [100 * row["accuracy"] for row in rows],
                      yerr=[100 * row["accuracy_std"] for row in rows], marker="o", capsize=2,
                      color=colors[memory], label=f"{memory}, after injection")
        if "accuracy_after_learning" in rows[0]:
            axis.errorbar(ber, [100 * row["accuracy_after_learning"] for row in rows],
                          yerr=[100 * row["accuracy_after_learning_std"] for row in rows], marker="s",
                          linestyle="--", capsize=2, color=colors[memory],
                          label=f"{memory}, after on-line learning")
    axis.axhline(clean, color="grey", linewidth=0.8, label=f"no faults: {clean:.1f} %")
    if "accuracy_after_learning_without_faults" in report:
        axis.axhline(100 * report["accuracy_after_learning_without_faults"], color="grey",
                     linestyle="--", linewidth=0.8, label="no faults, after learning")
    axis.set_xscale("log")
    axis.set_xlabel("bit-error rate")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title(f"{report['dataset']} {report['arch']}: {report['mode']} faults, "
                   f"mean of {report['repeats']}", fontsize=9)
    axis.legend(fontsize=7)
    if bits:
        axis = axes[1]
        width = 0.8 / len(memories)
        for n, memory in enumerate(memories):
            rows = [row for row in bits if row["memory"] == memory]
            positions = np.array([row["bit"] for row in rows]) + (n - (len(memories) - 1) / 2) * width
            axis.bar(positions, [clean - 100 * row["accuracy"] for row in rows], width,
                     color=colors[memory], label=memory)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("bit position (0 = LSB)")
        axis.set_ylabel("accuracy lost (points)")
        axis.set_title(f"one bit position faulted, rate {bits[0]['ber']:g} per value", fontsize=9)
        axis.legend(fontsize=7)
    return figure


def plot_faults(report: dict[str, Any], path: str | Path) -> None:
    """Write :func:`faults_figure` to ``path``."""
    _save(faults_figure(report), path, dpi=120)


def pareto_front(x: Sequence[float], y: Sequence[float]) -> list[bool]:
    """Which points are on the front of small ``x`` and large ``y``: no other point has an
    ``x`` at most as large and a ``y`` at least as large, one of them strictly."""
    points = list(zip(x, y, strict=True))
    return [
        not any(ox <= px and oy >= py and (ox < px or oy > py) for ox, oy in points)
        for px, py in points
    ]


#: Axis labels of the Pareto plot's x columns (:func:`sim.sweep.pareto_axis`).
PARETO_AXES = {
    "latency_ms_per_learning_step": "latency per learning step at Fmax (ms)",
    "cycles_per_learning_step": "cycles per learning step (no synthesis: no Fmax)",
}


def pareto_figure(rows: Sequence[dict[str, Any]], axis_key: str) -> Figure:
    """Accuracy against ``axis_key`` (latency or cycles per learning step) of a sweep's rows,
    one colour per target, marker area proportional to the logic used (LUT4 / logic cells;
    a fixed size without synthesis), the Pareto front (``pareto``) edged in black and joined."""
    figure = _figure(figsize=(8, 5.5), layout="constrained")
    axis = figure.subplots()
    usable = [row for row in rows if row.get("accuracy") is not None and row.get(axis_key) is not None]
    logic = [row["logic"] for row in usable if row.get("logic")]
    largest = max(logic, default=1)
    colors = dict(zip(dict.fromkeys(row["target"] for row in usable), itertools.cycle(
        ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"))))
    for target, color in colors.items():
        group = [row for row in usable if row["target"] == target]
        sizes = [30 + 400 * row["logic"] / largest if row.get("logic") else 60 for row in group]
        axis.scatter([row[axis_key] for row in group], [100 * row["accuracy"] for row in group], s=sizes,
                     color=color, alpha=0.7, edgecolors="black",
                     linewidths=[1.5 if row.get("pareto") else 0.0 for row in group], label=target)
    front = sorted((row for row in usable if row.get("pareto")), key=lambda row: row[axis_key])
    if front:
        axis.step([row[axis_key] for row in front], [100 * row["accuracy"] for row in front], where="post",
                  color="black", linestyle="--", linewidth=0.8, label="Pareto front")
        labels: dict[tuple[float, float], list[str]] = {}
        for row in front:  # one label per position: equal points share it
            text = f"P={row['lanes']} Q={row['queue_depth']}"
            names = labels.setdefault((row[axis_key], 100 * row["accuracy"]), [])
            if text not in names:
                names.append(text)
        for position, names in labels.items():
            axis.annotate(", ".join(names), position, xytext=(5, 4), textcoords="offset points", fontsize=7)
    axis.margins(x=0.15, y=0.15)
    if axis_key.startswith("cycles"):
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _count_tick(value)))
    axis.set_xlabel(PARETO_AXES.get(axis_key, axis_key))
    axis.set_ylabel("test accuracy (%)")
    size = f"marker area: logic used (largest {largest:,})" if logic else "no synthesis: marker size fixed"
    failed = len(rows) - len(usable)
    axis.set_title(f"{len(usable)} points" + (f" ({failed} without figures)" if failed else "") + f"; {size}",
                   fontsize=9)
    if usable:
        axis.legend(fontsize=8, frameon=False)
    return figure


def plot_pareto(rows: Sequence[dict[str, Any]], axis_key: str, path: str | Path) -> None:
    """Write :func:`pareto_figure` to ``path``."""
    _save(pareto_figure(rows, axis_key), path, dpi=110)
