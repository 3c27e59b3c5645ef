"""``spikeforge cosim``: run the generated core under cocotb against the core model.

Builds the whole core for an integer checkpoint (P lanes, queue depth Q) with a trace
buffer per memory (:mod:`sim.core_harness`), streams dataset samples through it (test
split for inference, training split with ``--learn``) and compares, exactly, every memory
write with :class:`model.core.CoreModel`'s trace, the outputs of each sample, every
performance counter, and the weights, thresholds and accumulators at the end
(:mod:`sim.tb.tb_core`).

JSON keys: ``samples``, ``mismatches`` (0 when equal), ``mismatches_by_kind``,
``accuracy``, ``cycles_per_inference`` (RTL counters), ``model_cycles_per_inference``,
``ideal_cycles_per_inference``, ``cycles_per_learning_step`` and
``model_cycles_per_learning_step`` (``null`` without ``--learn``), ``simulated_cycles``,
``sim_cycles_per_second`` (simulated cycles per second of the bench, the model's own time
excluded), ``wall_cycles_per_second`` (model included), ``simulator``, ``lanes``,
``queue_depth``, ``build_seconds``, ``log``. Exit code 1 when a mismatch was found.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from hw.core_config import COUNTER_SETS, TARGETS, CoreConfig, learning_refusal
from model.data import DATASETS, to_u8
from model.integer import IntegerNetwork
from sim import options
from sim.cli import CLIError, write_json
from sim.core_cosim import WAVE_BYTES_PER_CYCLE, WAVE_FORMATS, check_waves, cosimulate
from sim.runner import BuildError
from sim.tb.common import PATTERNS
from sim.toolchain import ToolchainError, require


def run(args: argparse.Namespace) -> int:
    try:
        require(args.sim)
    except ToolchainError as error:
        raise CLIError(str(error)) from None
    if args.waves:
        check_waves(args.sim, args.waves)
    network = IntegerNetwork.load(args.checkpoint)
    config = CoreConfig.for_target(
        network, lanes=args.lanes, queue_depth=args.queue_depth, target=args.target, counters=args.counters
    )
    if args.learn and not config.learnable:
        raise ValueError(f"--learn: {learning_refusal(network.spec, config)}")
    dataset = options.load_network_dataset(args.dataset, network.spec, args.data_root)
    x, y = (dataset.train_x, dataset.train_y) if args.learn else (dataset.test_x, dataset.test_y)
    if args.samples > len(x):
        raise ValueError(f"--samples: {args.samples} is more than the {len(x)} samples of the split")
    pixels, labels = to_u8(x[: args.samples]), y[: args.samples]
    bars: list[tqdm] = []  # opened when the build is ready, so its rate is the simulation's

    def progress(done: int) -> None:
        if not bars:
            bars.append(tqdm(total=args.samples, desc="cosim", unit="sample", disable=args.no_progress, file=sys.stderr))
        bars[0].update(done - bars[0].n)

    try:
        report = cosimulate(
            args.checkpoint, pixels, labels, lanes=args.lanes, queue_depth=args.queue_depth,
            target=args.target, counters=args.counters,
            learn=args.learn, simulator=args.sim, input_pattern=args.input_stalls,
            output_pattern=args.output_stalls, seed=args.seed, waves=args.waves,
            optimize=not args.quick_build, progress=progress,
            announce=lambda line: print(f"cosim: {line}", file=sys.stderr, flush=True),
        )
    except (ToolchainError, BuildError) as error:
        raise CLIError(str(error).splitlines()[0]) from None
    finally:
        for bar in bars:
            bar.close()
    stats = report.stats
    if not stats:
        raise CLIError(f"the simulation ended without results; log {report.log}")
    result = {
        **stats,
        "simulator": args.sim,
        "lanes": args.lanes,
        "queue_depth": args.queue_depth,
        "learn": bool(args.learn),
        "dataset": args.dataset,
        "build_seconds": report.build_seconds,
        "log": str(report.log),
    }
    if args.waves:
        result["waves"] = str(args.waves)
    write_json(args.json, result)
    line = (
        f"{stats['samples']} samples, {stats['mismatches']} mismatches, "
        f"{stats['cycles_per_inference']:.1f} cycles/inference (model {stats['model_cycles_per_inference']:.1f})"
    )
    if stats.get("cycles_per_learning_step") is not None:
        line += f", {stats['cycles_per_learning_step']:.1f} cycles/learning step"
    speed = stats.get("sim_cycles_per_second")
    if speed:
        line += f", {speed:,.0f} simulated cycles/s"
    print(line, file=sys.stderr)
    if not report.passed:
        print(f"spikeforge cosim: mismatches against the core model; log {report.log}", file=sys.stderr)
        return 1
    return 0


def _waves(text: str) -> str:
    if Path(text).suffix not in WAVE_FORMATS.values():
        raise argparse.ArgumentTypeError(f"{text!r} must end in .vcd (Verilator) or .fst (Icarus)")
    return text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cosim`` subcommand."""
    parser = subparsers.add_parser(
        "cosim",
        help="co-simulate the generated core against the core model",
        description=(
            "Run the whole core (generated for an integer checkpoint) under cocotb and "
            "compare every memory write, output, performance counter and the learned "
            "weights with the core model, exactly."
        ),
    )
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help="integer checkpoint folder")
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="samples to stream")
    options.add_data_root(parser)
    parser.add_argument("--samples", type=options.positive, default=10, metavar="N", help="samples (default 10)")
    parser.add_argument("--learn", action="store_true", help="learn on training samples (else infer test samples)")
    options.add_lanes(parser, required=True)
    options.add_queue_depth(parser)
    parser.add_argument(
        "--target", choices=TARGETS, default="sim",
        help="the core as generated for this target (gen --target; default sim)",
    )
    parser.add_argument(
        "--counters", choices=COUNTER_SETS,
        help="performance counters built (gen --counters; default: the target's)",
    )
    options.add_sim(parser)
    parser.add_argument(
        "--waves", type=_waves, metavar="FILE",
        help="write the waveform of every sample: FILE.vcd with Verilator (about "
        f"{WAVE_BYTES_PER_CYCLE / 1000:.1f} kB per simulated cycle at P = 2, some 100 MB per digits inference), "
        "FILE.fst with Icarus; keep --samples small",
    )
    parser.add_argument(
        "--quick-build", action="store_true",
        help="compile the simulation without C++ optimisation: faster to build, slower to run",
    )
    stalls = [p for p in PATTERNS if p != "never"]
    parser.add_argument("--input-stalls", choices=stalls, default="always", help="input valid pattern")
    parser.add_argument("--output-stalls", choices=stalls, default="always", help="result ready pattern")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the stall patterns")
    parser.add_argument("--json", required=True, metavar="FILE", help="write the report here")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)
