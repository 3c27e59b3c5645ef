"""``spikeforge hls``: write the HLS C++ project of an integer checkpoint, optionally C-simulate it.

Writes ``firmware/`` (the top function ``spikeforge_top``, the core and the numerics header,
``parameters.h`` and ``weights.h`` of the checkpoint), ``tb/`` (the self-checking testbench
with ``--samples`` records of the dataset written from the integer model), ``build_prj.tcl``
(Vitis HLS: csim, csynth, cosim, export) and a README. With ``--learn`` the records first
learn from training samples (the learned state is checked), then infer test samples.
``--csim`` compiles firmware and testbench with ``g++ -std=c++17 -O2 -Wall -Wextra -Werror``
and runs it. JSON keys: ``samples``, ``mismatches`` (the testbench's failed checks),
``learning_samples``, ``passed``, ``lanes``, ``project``, ``ap_types``. Exit code 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import sys

from hw.hls import DEFAULT_CLOCK_NS, DEFAULT_PART, check_target, learnable, write_project
from model.checkpoint import read_checkpoint_json
from model.data import DATASETS, to_u8
from model.integer import IntegerNetwork
from sim import options
from sim.cli import CLIError, write_json
from sim.hls_csim import CompileError, find_compiler, make_vectors, run_csim
from sim.toolchain import ToolchainError


def _dataset_name(args: argparse.Namespace) -> str:
    training = read_checkpoint_json(args.checkpoint).get("training")
    name = args.dataset or (training.get("dataset") if isinstance(training, dict) else None)
    if name not in DATASETS:
        raise CLIError("--dataset: the checkpoint does not name its dataset; pass --dataset")
    return name


def run(args: argparse.Namespace) -> int:
    """Write the project (and run the C simulation), print the summary."""
    if args.csim:
        if args.json is None:
            raise CLIError("--json: required with --csim")
        try:
            find_compiler(args.cxx)
        except ToolchainError as error:
            raise CLIError(str(error)) from None
    net = IntegerNetwork.load(args.checkpoint)
    layout = check_target(net, args.lanes)
    spec = net.spec
    if args.learn and not learnable(spec):
        raise ValueError("--learn: the core learns only networks with reset 'subtract' and surrogate 'scaled'")
    dataset = options.load_network_dataset(_dataset_name(args), spec, args.data_root)
    splits = [("test", dataset.test_x, dataset.test_y)]
    if args.learn:
        splits.append(("training", dataset.train_x, dataset.train_y))
    for name, x, _ in splits:
        if args.samples > len(x):
            raise ValueError(f"--samples: {args.samples} is more than the {len(x)} samples of the {name} split")
    learn = (to_u8(dataset.train_x[: args.samples]), dataset.train_y[: args.samples]) if args.learn else None
    vectors = make_vectors(
        net, layout, to_u8(dataset.test_x[: args.samples]), dataset.test_y[: args.samples], learn=learn
    )
    write_project(net, args.out, vectors, lanes=args.lanes, part=args.part, clock_ns=args.clock_ns)
    report = {
        "project": str(args.out),
        "lanes": args.lanes,
        "samples": vectors.count("infer") + vectors.count("learn"),
        "learning_samples": vectors.count("learn"),
    }
    if not args.csim:
        print(f"{args.out}: HLS project of {spec.arch} (P = {args.lanes}), {report['samples']} testbench samples",
              file=sys.stderr)
        if args.json is not None:
            write_json(args.json, report)
        return 0
    try:
        result = run_csim(args.out, cxx=args.cxx, ap_types=args.ap_types)
    except (ToolchainError, CompileError, RuntimeError) as error:
        raise CLIError(str(error).splitlines()[0]) from None
    report.update(passed=result.passed, mismatches=result.failed, ap_types=bool(args.ap_types))
    write_json(args.json, report)
    print(f"csim: {result.passed} passed, {result.failed} failed ({report['samples']} samples, "
          f"{report['learning_samples']} learning)", file=sys.stderr)
    if result.returncode:
        print(f"spikeforge hls: the C simulation differs from the integer model\n{result.output.strip()}",
              file=sys.stderr)
        return 1
    return 0


def _clock(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a clock period in ns > 0")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``hls`` subcommand."""
    parser = subparsers.add_parser(
        "hls",
        help="write the HLS C++ project of an integer checkpoint (and C-simulate it)",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help="integer checkpoint folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="project folder (created)")
    options.add_lanes(parser, default=1)
    parser.add_argument("--part", default=DEFAULT_PART, help=f"FPGA part of build_prj.tcl (default {DEFAULT_PART})")
    parser.add_argument(
        "--clock-ns", type=_clock, default=DEFAULT_CLOCK_NS, metavar="NS",
        help=f"clock period of build_prj.tcl in ns (default {DEFAULT_CLOCK_NS:g})",
    )
    parser.add_argument(
        "--dataset", choices=DATASETS, help="testbench samples (default: the checkpoint's dataset)"
    )
    options.add_data_root(parser)
    parser.add_argument(
        "--samples", type=options.positive, default=10, metavar="N", help="testbench samples (default 10)"
    )
    parser.add_argument(
        "--learn", action="store_true", help="learn from N training samples first, then infer N test samples"
    )
    parser.add_argument("--csim", action="store_true", help="compile and run the testbench (g++)")
    parser.add_argument("--cxx", default="g++", metavar="CXX", help="C++ compiler of --csim (default g++)")
    parser.add_argument(
        "--ap-types", action="store_true",
        help="--csim on the vendor ap_int/ap_uint types (headers from hls4ml: the 'hls' extra)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the report here (required with --csim)")
    parser.set_defaults(func=run)
