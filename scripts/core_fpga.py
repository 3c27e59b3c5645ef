"""The whole core on FPGAs: utilisation, Fmax and latency per inference and learning step.

For each integer checkpoint, each target and each lane count P: writes the core
(``spikeforge gen --checkpoint CKPT --lanes P``), synthesizes, places and routes it
(``spikeforge synth``; needs the ``fpga`` extra), runs the core model on test samples
(``spikeforge estimate``) for the cycles per inference and per learning step, and turns
them into latency at the achieved Fmax, next to published anchors. Writes the section
``## Whole core on FPGAs`` of a Markdown file with the smallest and largest P that fit.

Usage::

    nice python3 scripts/core_fpga.py --checkpoints runs/core/digits runs/core/digits_dw16=ecp5-25k \\
        --lanes 1 2 4 8 --targets ice40-up5k ecp5-25k ecp5-85k --out runs/core_fpga --write docs/results.md

or, from the points of a ``spikeforge sweep`` whose stages end in synth (each point learned,
estimated, generated and placed and routed as a Ray task)::

    spikeforge sweep scripts/sweep_core_fpga.toml --out runs/sweep_core_fpga
    python3 scripts/core_fpga.py --sweep runs/sweep_core_fpga --write docs/results.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from hw.core_config import COUNTER_SETS, DEFAULT_QUEUE_DEPTH  # noqa: E402
from hw.core_config import TARGETS as CORE_TARGETS  # noqa: E402
from hw.core_export import write_core  # noqa: E402
from model.checkpoint import read_checkpoint_json  # noqa: E402
from model.data import load_dataset, to_u8  # noqa: E402
from model.integer import IntegerNetwork  # noqa: E402
from results_md import machine_note, publish  # noqa: E402
from sim.commands.estimate import measure  # noqa: E402
from sim.synth import TARGETS, SynthError, SynthReport, get_target, synthesize  # noqa: E402

HEADING = "## Whole core on FPGAs"
#: Published latencies the core is compared with (milliseconds, source).
ANCHORS = {
    "inference": (0.52, "MNIST 784-128-10 SNN inference on an Artix-7 (Fan & Levy)"),
    "learning": (1.5, "on-chip backpropagation per training sample on Loihi (Renner et al. 2024)"),
}


@dataclass(frozen=True)
class Point:
    """One (target, P) run: the synthesis report and the model's cycle counts."""

    lanes: int
    report: SynthReport
    cycles_per_inference: float
    cycles_per_learning_step: float | None

    def latency_us(self, cycles: float | None) -> float | None:
        """``cycles`` at the achieved Fmax, in microseconds (``None`` without a routed Fmax)."""
        if cycles is None or not self.report.fits or not self.report.fmax_mhz:
            return None
        return cycles / self.report.fmax_mhz


def _checkpoint(text: str) -> tuple[str, tuple[str, ...] | None]:
    """``DIR`` or ``DIR=TARGET,TARGET``: a checkpoint and the targets to try it on."""
    folder, sep, names = text.partition("=")
    if not sep:
        return folder, None
    targets = tuple(name.strip() for name in names.split(",") if name.strip())
    for name in targets:
        if name not in TARGETS:
            raise argparse.ArgumentTypeError(f"{name!r} is not one of {', '.join(TARGETS)}")
    if not targets:
        raise argparse.ArgumentTypeError(f"{text!r} names no target after '='")
    return folder, targets


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoints", nargs="+", type=_checkpoint, metavar="DIR[=TARGET,...]",
        help="integer checkpoint folders, each optionally with its own targets (default --targets)",
    )
    source.add_argument(
        "--sweep", type=Path, metavar="DIR",
        help="a spikeforge sweep folder with synthesized points: its tables, nothing run again",
    )
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 2, 4, 8], metavar="P")
    parser.add_argument("--queue-depth", type=int, default=DEFAULT_QUEUE_DEPTH, metavar="Q")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--samples", type=int, default=50, help="test samples for the cycle counts")
    parser.add_argument("--learn-samples", type=int, default=10, help="training samples (learning steps)")
    parser.add_argument("--out", default="runs/core_fpga", help="Verilog, reports and logs")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the synthesis reports already in --out (resume)"
    )
    parser.add_argument(
        "--counters", choices=COUNTER_SETS, help="performance counters built (gen --counters; default: the target's)"
    )
    parser.add_argument("--heading", default=HEADING, help=f"section heading (default {HEADING!r})")
    parser.add_argument("--write", metavar="MD", help="replace or append the section in this file")
    return parser


def _cycles(
    net: IntegerNetwork, dataset: str, lanes: int, depth: int, samples: int, learn: int
) -> tuple[float, float | None]:
    data = load_dataset(dataset)
    train = (to_u8(data.train_x[:learn]), data.train_y[:learn])
    report, _, _ = measure(
        net, to_u8(data.test_x[:samples]), data.test_y[:samples], train,
        lanes=lanes, depth=depth, table="spikes",
    )
    return report["cycles_per_inference"], report["cycles_per_learning_step"]


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(target: str, points: Sequence[Point]) -> list[str]:
    """Markdown table of one target: a row per P."""
    spec = get_target(target)
    names = list(spec.resources)[:5]
    lines = [
        f"**{target}** ({spec.device}, `{spec.synth}`, constraint {spec.freq_mhz:g} MHz):",
        "",
        "| P | fits | " + " | ".join(names) + " | Fmax (MHz) | cycles / inference | "
        "latency / inference (us) | cycles / learning step | latency / learning step (us) | s |",
        "|---:|---|" + "---:|" * len(names) + "---:|---:|---:|---:|---:|---:|",
    ]
    for point in points:
        report = point.report
        cells = []
        for name in names:
            entry = report.utilisation.get(name, {"used": 0, "available": 0})
            share = 100 * entry["used"] / entry["available"] if entry["available"] else 0.0
            cells.append(f"{entry['used']:,} ({share:.0f} %)")
        fmax = report.fmax_mhz if report.fits else None
        lines.append(
            f"| {point.lanes} | {'yes' if report.fits else 'no'} | " + " | ".join(cells)
            + f" | {_fmt(fmax)} | {_fmt(point.cycles_per_inference, 0)} | "
            f"{_fmt(point.latency_us(point.cycles_per_inference))} | "
            f"{_fmt(point.cycles_per_learning_step, 0)} | "
            f"{_fmt(point.latency_us(point.cycles_per_learning_step))} | {report.seconds:.0f} |"
        )
    fitting = [point.lanes for point in points if point.report.fits]
    if fitting:
        lines += ["", f"Fits {target} for P = {min(fitting)} (smallest) to {max(fitting)} (largest) of those tried."]
    else:
        worst = points[0].report.overflow_message()
        lines += ["", f"No P tried fits {target}; at P = {points[0].lanes}: {worst}."]
    return lines


@dataclass(frozen=True)
class Sweep:
    """The runs of one checkpoint: its path, network, points per target and, per target, the
    first P whose core ``gen`` refused to build or the tools failed to synthesize (with the
    reason)."""

    checkpoint: str
    net: IntegerNetwork
    points: Mapping[str, Sequence[Point]]
    refused: Mapping[str, tuple[int, str]] = field(default_factory=dict)

    def subsection(self) -> list[str]:
        """``### checkpoint``: the network, then one table per target."""
        net = self.net
        lines = [
            f"### `{self.checkpoint}`",
            "",
            f"`{net.spec.arch}`, {net.spec.input_shape[0]} inputs, population {net.spec.population}, "
            f"T = {net.spec.timesteps}, on-line learning with B = {net.rule.batch}; formats "
            + ", ".join(f"{key} = {value}" for key, value in net.formats_dict().items() if key in FORMAT_KEYS)
            + ".",
            "",
        ]
        for target in dict.fromkeys([*self.points, *self.refused]):
            if self.points.get(target):
                lines += table(target, self.points[target])
            if target in self.refused:
                lanes, reason = self.refused[target]
                lines += ["", f"P = {lanes} is not built for {target}: {reason}."]
            lines.append("")
        return lines


#: Formats named in the subsection headings (widths of docs/numerics.md).
FORMAT_KEYS = ("w", "fw", "v", "g", "gf", "dw", "dth", "k")


def from_sweep(folder: Path) -> tuple[list[Sweep], float]:
    """The points of a ``spikeforge sweep`` folder (``points/<id>/``: ``result.json``,
    ``estimate.json``, ``synth.json``) as one :class:`Sweep` per learned checkpoint, P
    ascending per target (a failed point is named with its error, as a refused P), and the
    points' own times added up, in seconds.

    Raises
    ------
    ValueError
        When the folder holds no finished point.
    """
    results = sorted((folder / "points").glob("*/result.json"))
    if not results:
        raise ValueError(f"--sweep: {str(folder)!r} holds no finished point (points/*/result.json)")
    points: dict[str, dict[str, list[Point]]] = {}
    refused: dict[str, dict[str, tuple[int, str]]] = {}
    seconds = 0.0
    for path in results:
        row = json.loads(path.read_text())
        seconds += row["seconds"]
        learned = folder / "learn" / row["learn_id"] / "checkpoint"
        if row["status"] != "ok":
            refused.setdefault(str(learned), {})[row["target"]] = (row["lanes"], row["error"])
            continue
        report = SynthReport.from_dict(json.loads((path.parent / "synth.json").read_text()))
        point = Point(row["lanes"], report, row["cycles_per_inference"], row["cycles_per_learning_step"])
        points.setdefault(str(learned), {}).setdefault(row["target"], []).append(point)
    sweeps = [
        Sweep(
            checkpoint,
            IntegerNetwork.load(checkpoint),
            {target: sorted(rows, key=lambda point: point.lanes) for target, rows in points.get(checkpoint, {}).items()},
            refused.get(checkpoint, {}),
        )
        for checkpoint in sorted({*points, *refused})
    ]
    return sweeps, seconds


def section(
    sweeps: Sequence[Sweep], argv: Sequence[str], seconds: float, heading: str = HEADING, counters: str | None = None
) -> str:
    """The results section (``## Whole core on FPGAs`` by default); ``seconds`` is the wall
    clock of the points (the script's, or a sweep's points' own times added up)."""
    tools = sorted({
        f"{name} {version}"
        for sweep in sweeps for rows in sweep.points.values()
        for name, version in rows[0].report.tool_versions.items()
    })
    lines = [
        heading,
        "",
        f"Command: `python3 scripts/core_fpga.py {shlex.join(argv)}`",
        "",
        *(
            [
                "The points of a `spikeforge sweep` (`spikeforge sweep SPEC --out DIR`; the spec of "
                "these devices is `scripts/sweep_core_fpga.toml`): each point a Ray task that learns "
                "its checkpoint (points with the same learning options share one), estimates, "
                "generates and places and routes it; the tables are read from the points' reports, "
                "nothing is run again. A subsection per learned checkpoint (`DIR/learn/<id>`).",
                "",
            ]
            if "--sweep" in argv else []
        ),
        (
            "Per checkpoint and P: `spikeforge gen --checkpoint CKPT --lanes P"
            + (f" --counters {counters}` " if counters else "` ")
            + "(with `--target TARGET` for a target with single-port RAM, which then holds W and dW: "
            "docs/architecture.md section 2.1), then "
            f"`spikeforge synth --gen-dir DIR --target TARGET` ({', '.join(tools) or 'no synthesis run'}; ports through "
            "the 4-pin scan wrapper, memories initialised from the images except the single-port "
            "banks, which the host loads). Cycles are the core "
            "model's (equal to the RTL's, see the co-simulation section) on test samples "
            "(inference) and training samples (learning step: inference + backward + update); "
            "latency = cycles / Fmax after routing (seed 1). A target is not tried at larger P "
            "once a P does not fit: logic grows with P (block RAM can shrink a little as wider "
            "words pack better, compare the rows of a larger device)."
        ),
        "",
    ]
    for sweep in sweeps:
        lines += sweep.subsection()
    lines.append("Anchors:")
    lines.append("")
    for kind, (ms, source) in ANCHORS.items():
        best = [
            point.latency_us(point.cycles_per_inference if kind == "inference" else point.cycles_per_learning_step)
            for sweep in sweeps for rows in sweep.points.values() for point in rows
        ]
        best = [value for value in best if value is not None]
        ours = ""
        if best:
            ratio = 1000 * ms / min(best)
            ours = f"; fastest fitting core here: {min(best):,.1f} us, " + (
                f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
            )
        lines.append(f"- {kind}: {ms} ms = {1000 * ms:,.0f} us, {source}{ours}.")
    timing = "Time of the points (their own, added up)" if "--sweep" in argv else "Wall-clock time of the script"
    lines += ["", f"{timing}: {seconds:.0f} s. {machine_note()}"]
    return "\n".join(lines) + "\n"


def sweep(checkpoint: str, targets: Sequence[str], args: argparse.Namespace) -> Sweep:
    """Generate, estimate and synthesize ``checkpoint`` for every P and target."""
    net = IntegerNetwork.load(checkpoint)
    dataset = (read_checkpoint_json(checkpoint).get("training") or {}).get("dataset", "digits")
    out = Path(args.out) / Path(checkpoint).name
    points: dict[str, list[Point]] = {}
    refused: dict[str, tuple[int, str]] = {}
    for lanes in args.lanes:
        dual = out / f"p{lanes}"
        write_core(net, lanes=lanes, queue_depth=args.queue_depth, out_dir=dual, counters=args.counters)
        cycles = _cycles(net, dataset, lanes, args.queue_depth, args.samples, args.learn_samples)
        for target in targets:
            if target in refused or any(not point.report.fits for point in points.get(target, ())):
                continue  # logic grows with P
            print(f"{checkpoint}: P = {lanes} on {target}", file=sys.stderr, flush=True)
            gen_dir = dual
            if CORE_TARGETS[target].single_port_blocks:
                gen_dir = out / f"p{lanes}.{target}.gen"
                try:
                    write_core(
                        net, lanes=lanes, queue_depth=args.queue_depth, out_dir=gen_dir, target=target,
                        counters=args.counters,
                    )
                except ValueError as error:
                    refused[target] = (lanes, str(error))
                    print(f"  not built: {error}", file=sys.stderr)
                    continue
            saved = out / f"p{lanes}.{target}.json"
            if args.reuse and saved.is_file():
                report = SynthReport.from_dict(json.loads(saved.read_text()))
            else:
                try:
                    report = synthesize(gen_dir, target, work_dir=out / f"p{lanes}.{target}")
                except SynthError as error:  # a tool failure: say so in the section, go on
                    refused[target] = (lanes, f"the synthesis did not complete ({error})")
                    print(f"  {error}", file=sys.stderr)
                    continue
                saved.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
            points.setdefault(target, []).append(Point(lanes, report, *cycles))
            print(f"  fits {report.fits}, Fmax {report.fmax_mhz}, {report.overflow_message()}", file=sys.stderr)
    return Sweep(checkpoint, net, points, refused)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    start = time.monotonic()
    if args.sweep is not None:
        try:
            sweeps, seconds = from_sweep(args.sweep)
        except (ValueError, OSError) as error:
            print(f"core_fpga.py: error: {error}", file=sys.stderr)
            return 2
    else:
        sweeps = [sweep(folder, targets or args.targets, args) for folder, targets in args.checkpoints]
        seconds = time.monotonic() - start
    text = section(sweeps, argv, seconds, args.heading, args.counters)
    publish(text, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
