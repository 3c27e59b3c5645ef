"""Core-model tables for docs/results.md: cycles against P, queue depth and spike rate, and
enhanced STBP against the baseline configuration.

Runs :class:`model.core.CoreModel` on integer checkpoints (digits and mnist10k networks,
e.g. from ``spikeforge learn``) and on two float networks quantized to integers (enhanced
and baseline STBP on digits: given as float checkpoints, or trained here with
:func:`model.stbp.train` and the recipe of ``--float-epochs``/``--float-lr``), and writes
the section ``## Core model: cycles, spikes and energy`` of a Markdown file (replaced when
present, appended otherwise). With ``--conv`` (an integer checkpoint of a conv network on
digits), the section ``## Core model: the digits conv network``: cycles against P and
against spike rate.

Usage::

    python3 scripts/core_estimates.py --digits DIR --mnist DIR --samples 100 \\
        --write docs/results.md
    python3 scripts/core_estimates.py --conv DIR --samples 100 --write docs/results.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from model.checkpoint import read_checkpoint_json  # noqa: E402
from model.data import load_dataset, to_u8  # noqa: E402
from model.energy import estimate_energy, get_table  # noqa: E402
from model.integer import IntegerNetwork, LearningRule, recipe  # noqa: E402
from model.spec import NetworkSpec  # noqa: E402
from model.stbp import Network, train, training_defaults  # noqa: E402
from results_md import machine_note, positive_int, publish  # noqa: E402
from sim.cli import build_parser as build_cli_parser  # noqa: E402
from sim.commands.estimate import measure  # noqa: E402

HEADING = "## Core model: cycles, spikes and energy"
CONV_HEADING = "## Core model: the digits conv network"
LANES = (1, 2, 4, 8, 16, 32, 128)
CONV_LANES = (1, 2, 4, 8, 16, 32)
DEPTHS = (1, 2, 3, 4, 8, 16, 64)
GAINS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
TABLE = "horowitz45"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", metavar="DIR", help="integer checkpoint, digits network (with --mnist)")
    parser.add_argument("--mnist", metavar="DIR", help="integer checkpoint, mnist10k network (with --digits)")
    parser.add_argument("--conv", metavar="DIR", help="integer checkpoint, a conv network on digits (its own section)")
    parser.add_argument("--enhanced", metavar="DIR", help="float checkpoint, enhanced STBP (default: train one)")
    parser.add_argument("--baseline", metavar="DIR", help="float checkpoint, baseline STBP (default: train one)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the float networks")
    parser.add_argument("--data-root", metavar="DIR", help="folder of the mnist10k IDX files")
    parser.add_argument("--samples", type=positive_int, default=100, metavar="N", help="test samples per point")
    parser.add_argument("--lanes", type=positive_int, default=8, metavar="P", help="P of the depth/rate/config tables")
    parser.add_argument("--queue-depth", type=int, default=16, metavar="Q", help="Q of the lane/rate/config tables")
    parser.add_argument("--write", metavar="FILE", help="replace or append the section in this Markdown file")
    return parser


def estimate(
    net: IntegerNetwork, pixels: np.ndarray, labels: np.ndarray, train: tuple[np.ndarray, np.ndarray] | None,
    *, lanes: int, depth: int,
) -> dict[str, Any]:
    """The ``spikeforge estimate`` report of ``net`` on ``pixels`` (learning on ``train``),
    plus ``loihi_pj_per_inference``."""
    report, core, inference = measure(net, pixels, labels, train, lanes=lanes, depth=depth, table=TABLE)
    report["loihi_pj_per_inference"] = estimate_energy(inference, core, get_table("loihi")).per_sample()
    return report


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def lanes_table(
    name: str, net: IntegerNetwork, data: tuple, train: tuple, depth: int, lanes_swept: Sequence[int] = LANES,
) -> list[str]:
    inputs = "x".join(str(size) for size in net.spec.input_shape)
    lines = [
        f"**{name}** (`{net.spec.arch}`, {inputs} inputs, population "
        f"{net.spec.population}, T = {net.spec.timesteps}), Q = {depth}:",
        "",
        _row("P", "cycles / inference", "ideal bound", "cycles / ideal", "stall cycles", "cycles / learning step"),
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for lanes in lanes_swept:
        report = estimate(net, *data, train, lanes=lanes, depth=depth)
        lines.append(_row(
            lanes, _fmt(report["cycles_per_inference"]), _fmt(report["ideal_cycles_per_inference"]),
            f"{report['cycles_over_ideal']:.3f}", _fmt(report["stall_cycles_per_inference"]),
            _fmt(report["cycles_per_learning_step"]),
        ))
    return lines


def depth_table(net: IntegerNetwork, data: tuple, lanes: int) -> list[str]:
    lines = [
        _row("Q", "cycles / inference", "cycles / ideal", "stall cycles", "queue high-water (encoder -> layer 1)"),
        "|---:|---:|---:|---:|---:|",
    ]
    for depth in DEPTHS:
        report = estimate(net, *data, None, lanes=lanes, depth=depth)
        lines.append(_row(
            depth, _fmt(report["cycles_per_inference"]), f"{report['cycles_over_ideal']:.3f}",
            _fmt(report["stall_cycles_per_inference"]), report["per_layer"][0]["queue_high_water"],
        ))
    return lines


def rate_table(name: str, net: IntegerNetwork, data: tuple, lanes: int, depth: int) -> list[str]:
    pixels, labels = data
    lines = [
        f"**{name}**, P = {lanes}, Q = {depth}:",
        "",
        _row("input gain", "spikes / inference", "synaptic ops / inference", "cycles / inference", "ideal bound", "cycles / ideal"),
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for gain in GAINS:
        scaled = np.clip(np.rint(pixels.astype(np.float64) * gain), 0, 255).astype(np.uint8)
        report = estimate(net, scaled, labels, None, lanes=lanes, depth=depth)
        lines.append(_row(
            gain, _fmt(report["spikes_per_inference"], 1), _fmt(report["synaptic_ops_per_inference"]),
            _fmt(report["cycles_per_inference"]), _fmt(report["ideal_cycles_per_inference"]),
            f"{report['cycles_over_ideal']:.3f}",
        ))
    return lines


#: The two configurations compared on digits (spec switches); ``128FC-100FC``, pop 10, T 8.
CONFIGS = {
    "enhanced STBP": {},
    "baseline STBP": {"reset": "zero", "threshold": "fixed", "surrogate": "rect", "decoder": "rate"},
}


def float_network(path: str | None, switches: dict[str, str], data: Any, args: argparse.Namespace) -> Network:
    """Load a float checkpoint, or train the digits network with ``switches``."""
    if path is not None:
        return Network.load(path)
    spec = NetworkSpec.parse("128FC-100FC", input_shape=data.input_shape, population=10, timesteps=8, **switches)
    net = Network(spec, seed=args.seed)
    defaults = training_defaults("digits")  # those of `spikeforge train --dataset digits`
    train(
        net, data, epochs=defaults["epochs"], lr=defaults["lr"], augmentation=defaults["augmentation"],
        seed=args.seed, progress=False,
    )
    return net


def config_table(nets: dict[str, IntegerNetwork], data: tuple, lanes: int, depth: int) -> list[str]:
    lines = [
        _row(
            "configuration", "switches", "accuracy (core, integer)", "spikes / inference",
            "synaptic ops / inference", "cycles / inference", "pJ / inference (horowitz45)",
            "pJ / inference (loihi)",
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, net in nets.items():
        report = estimate(net, *data, None, lanes=lanes, depth=depth)
        spec = net.spec
        switches = f"reset {spec.reset}, {spec.threshold} Vth, {spec.surrogate} surrogate, {spec.decoder} decoder"
        lines.append(_row(
            name, switches, f"{report['accuracy']:.3f}", _fmt(report["spikes_per_inference"], 1),
            _fmt(report["synaptic_ops_per_inference"]), _fmt(report["cycles_per_inference"]),
            _fmt(report["energy_pj_per_inference"]), _fmt(report["loihi_pj_per_inference"]),
        ))
    return lines


def learn_defaults() -> dict[str, Any]:
    """Options of ``spikeforge learn`` left out of a recorded command at these values: the
    command's defaults (rounding: the learning rule's, which the command applies without one)."""
    parsed = build_cli_parser().parse_args(["learn", "--dataset", "digits", "--init", "scratch", "--out", "unused"])
    defaults = {key: getattr(parsed, key) for key in ("batch", "rounding", "bits", "augment")}
    return defaults | {"rounding": defaults["rounding"] or LearningRule.rounding}


#: :func:`learn_defaults`, once.
LEARN_DEFAULTS = learn_defaults()


def learn_command(path: str) -> str:
    """The ``spikeforge learn`` command recorded in an integer checkpoint's metadata."""
    training = read_checkpoint_json(path).get("training") or {}
    spec = IntegerNetwork.load(path).spec
    arch = (
        f"{spec.arch} --population {spec.population} --timesteps {spec.timesteps}"
        + ("" if spec.decoder == "last" else f" --decoder {spec.decoder}")
    )
    keys = ("dataset", "init", "epochs", "seed")
    if not all(key in training for key in keys):
        return f"`{path}` (no training record)"
    recorded = {key: training.get(key) for key in ("schedule", "threshold_offset", *LEARN_DEFAULTS)}
    options = "".join(f" --{key.replace('_', '-')} {value}" for key, value in recorded.items()
                      if value is not None and value != LEARN_DEFAULTS.get(key))
    return (
        f"`spikeforge learn --dataset {training['dataset']} --init {training['init']} --arch {arch} "
        f"--epochs {training['epochs']}{options} --seed {training['seed']} --out {path} --json {path}.json`"
    )


def first_samples(data: Any, n: int) -> tuple[tuple, tuple]:
    """The first ``n`` test and training samples of a dataset, as (pixels u8, labels)."""
    return (to_u8(data.test_x[:n]), data.test_y[:n]), (to_u8(data.train_x[:n]), data.train_y[:n])


def section(args: argparse.Namespace, argv: Sequence[str]) -> str:
    started = time.perf_counter()
    digits = load_dataset("digits")
    mnist = load_dataset("mnist10k", root=args.data_root)
    n = args.samples
    digits_test, digits_train = first_samples(digits, n)
    mnist_test, mnist_train = first_samples(mnist, n)
    d_net = IntegerNetwork.load(args.digits)
    m_net = IntegerNetwork.load(args.mnist)
    formats = recipe("digits", "finetune").formats
    paths = {"enhanced STBP": args.enhanced, "baseline STBP": args.baseline}
    configs = {
        name: IntegerNetwork.from_float(float_network(paths[name], switches, digits, args), formats)
        for name, switches in CONFIGS.items()
    }
    lines = [
        HEADING,
        "",
        "Command: `python3 scripts/core_estimates.py "
        + " ".join(shlex.quote(a) for a in argv)
        + "`",
        "",
        f"Integer checkpoints: digits {learn_command(args.digits)}; mnist10k {learn_command(args.mnist)}.",
        "",
        "`model/core.py` runs each network sample by sample on the schedule of "
        "docs/architecture.md; every figure is the mean over the first "
        f"{n} test images (learning steps: the first {n} training images, on-line, B = 1). "
        "The ideal bound is `sum over spikes of ceil(fan_out / P)` plus one cycle per word "
        "of every fire scan (no overlap, no latency); the schedule overlaps each layer's scan "
        "with the integration of its spikes, so it can beat that bound. Cycles per learning "
        "step include the inference. Energy: table `horowitz45` (45 nm primitives at the "
        "stored widths, memory traffic included) and `loihi` (Loihi per-event energies).",
        "",
        "### Cycles per inference against P",
        "",
        *lanes_table("digits", d_net, digits_test, digits_train, args.queue_depth),
        "",
        *lanes_table("mnist10k", m_net, mnist_test, mnist_train, args.queue_depth),
        "",
        f"### Cycles per inference against queue depth (digits, P = {args.lanes})",
        "",
        *depth_table(d_net, digits_test, args.lanes),
        "",
        "### Cycles per inference against spike rate",
        "",
        "The spike rate is varied by scaling the input pixels (`rint(gain * p)`, clipped to "
        "255) on the same network.",
        "",
        *rate_table("digits", d_net, digits_test, args.lanes, args.queue_depth),
        "",
        *rate_table("mnist10k", m_net, mnist_test, args.lanes, args.queue_depth),
        "",
        f"### Enhanced STBP against the baseline configuration (digits, P = {args.lanes}, Q = {args.queue_depth})",
        "",
        "`128FC-100FC`, population 10, T = 8, trained in float "
        + (
            f"by `model.stbp.train` with the defaults of `spikeforge train --dataset digits` "
            f"(seed {args.seed}) "
            if args.enhanced is None or args.baseline is None
            else f"(`{args.enhanced}` and `{args.baseline}`, written by `spikeforge train --dataset digits` "
            "with its defaults and the switches below) "
        )
        + "and quantized with `IntegerNetwork.from_float` at the digits formats; the core runs "
        "their integer forward pass (the baseline cannot learn on the core: reset-to-zero has "
        "no eq. 15 mux). Accuracy is the core's on the same images.",
        "",
        *config_table(configs, digits_test, args.lanes, args.queue_depth),
        "",
        f"Wall-clock time of the script: {time.perf_counter() - started:.0f} s. {machine_note()}",
        "",
    ]
    return "\n".join(lines)


def conv_section(args: argparse.Namespace, argv: Sequence[str]) -> str:
    """The conv network's section: cycles against P and against spike rate."""
    started = time.perf_counter()
    digits = load_dataset("digits")
    n = args.samples
    test, train = first_samples(digits, n)
    net = IntegerNetwork.load(args.conv)
    lines = [
        CONV_HEADING,
        "",
        "Command: `python3 scripts/core_estimates.py " + " ".join(shlex.quote(a) for a in argv) + "`",
        "",
        f"Integer checkpoint: {learn_command(args.conv)}.",
        "",
        "`model/core.py` on the conv network's schedule (docs/architecture.md section 9): the "
        f"mean over the first {n} test images (learning steps: the first {n} training images, "
        "on-line, B = 1). The ideal bound counts the words each spike's event touches (FC: "
        "`ceil(fan_out / P)`; conv: the in-image taps' `ceil(C_out / P)` words) plus one cycle "
        "per word of every fire scan. Cycles per learning step include the inference.",
        "",
        *lanes_table("digits conv", net, test, train, args.queue_depth, CONV_LANES),
        "",
        *rate_table("digits conv", net, test, args.lanes, args.queue_depth),
        "",
        f"Wall-clock time of the script: {time.perf_counter() - started:.0f} s. {machine_note()}",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.queue_depth < 1:
        print(f"core_estimates: --queue-depth: {args.queue_depth} is out of range (allowed 1 or more)", file=sys.stderr)
        return 2
    if (args.digits is None) != (args.mnist is None) or (args.digits is None and args.conv is None):
        print("core_estimates: give --digits and --mnist, or --conv, or all three", file=sys.stderr)
        return 2
    if args.digits is not None:
        publish(section(args, argv), args.write)
    if args.conv is not None:
        publish(conv_section(args, argv), args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
