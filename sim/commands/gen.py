"""``spikeforge gen``: write the Verilog of datapath units (one ``NAME.v`` per unit) or of
the whole core for an integer checkpoint (Verilog top, memory images, manifest)."""

from __future__ import annotations

import argparse

from hw.core_config import COUNTER_SETS, DEFAULT_QUEUE_DEPTH, TARGETS
from hw.core_export import MANIFEST, TOP, write_core
from hw.export import UNITS, write_all, write_unit
from model.integer import IntegerNetwork
from sim import options


def _parse_params(text: str | None) -> dict[str, int]:
    """``"index_bits=8,depth=32"`` -> ``{"index_bits": 8, "depth": 32}``."""
    params: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--params: {item!r} is not KEY=VALUE")
        try:
            params[key.strip()] = int(value)
        except ValueError:
            raise ValueError(f"--params: {key.strip()}: {value!r} is not an integer") from None
    return params


def run(args: argparse.Namespace) -> int:
    """Write the requested units (or the core) and print one path per line."""
    core_options = {
        "--lanes": args.lanes, "--queue-depth": args.queue_depth, "--target": args.target, "--counters": args.counters,
    }
    if args.checkpoint is None:
        given = [name for name, value in core_options.items() if value is not None]
        if given:
            raise ValueError(f"{given[0]}: only allowed with --checkpoint")
    else:
        if args.params:
            raise ValueError("--params: only allowed with --unit")
        if args.lanes is None:
            raise ValueError("--lanes: required with --checkpoint")
        depth = DEFAULT_QUEUE_DEPTH if args.queue_depth is None else args.queue_depth
        data = write_core(
            IntegerNetwork.load(args.checkpoint), lanes=args.lanes, queue_depth=depth,
            out_dir=args.out, target=args.target or "sim", counters=args.counters,
        )
        files = data["files"]
        for name in (files["verilog"], *files["images"], MANIFEST):
            print(f"{args.out}/{name}")
        return 0
    if args.all_units:
        if args.params:
            raise ValueError("--params: only allowed with --unit (--all-units uses the defaults)")
        paths = write_all(args.out)
    else:
        paths = [write_unit(args.unit, args.out, _parse_params(args.params))]
    for path in paths:
        print(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``gen`` subcommand."""
    parser = subparsers.add_parser(
        "gen",
        help="write Verilog of datapath units or of the whole core",
        description=(
            "Write one Verilog file per unit, NAME.v with top module NAME "
            f"(units: {', '.join(UNITS)}; defaults follow docs/numerics.md), or, with "
            f"--checkpoint, the whole core: {TOP}.v, one $readmemh image per initialised "
            f"memory (<MEMORY><layer>.hex) and {MANIFEST} (parameters, widths, memory map, "
            "ports)."
        ),
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--unit", metavar="NAME", help="one unit")
    which.add_argument("--all-units", action="store_true", help="every unit, default parameters")
    which.add_argument("--checkpoint", metavar="DIR", help="integer checkpoint: generate the whole core")
    options.add_lanes(parser, prefix="core: ")
    options.add_queue_depth(parser, default=None, prefix="core: ")
    parser.add_argument(
        "--target", choices=tuple(TARGETS),
        help="core: build for this device and check that the memories fit (default sim; "
             "ice40-up5k keeps W and dW in its single-port SPRAM, loaded by the host)",
    )
    parser.add_argument(
        "--counters", choices=COUNTER_SETS,
        help="core: performance counters (default: all; cycles on ice40-up5k; events: cycles "
             "per phase, spikes, synaptic ops and window events; cycles: cycles per phase)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument(
        "--params",
        metavar="KEY=VALUE,...",
        help="override parameters of --unit, e.g. index_bits=8,depth=32",
    )
    parser.set_defaults(func=run)
