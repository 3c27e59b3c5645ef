"""``spikeforge export-nir`` and ``spikeforge import-nir``: NIR files (the ``nir`` extra).

``export-nir`` writes the NIR graph of a float or integer checkpoint (an integer one as its
dequantized float values); ``import-nir`` reads a NIR graph, from spikeforge or a peer
(snnTorch, Norse, ...), into a float checkpoint that ``eval`` and ``learn --init`` accept.
The mapping and the rules (reset, ``dt``, pools) are in :mod:`sim.nir_io` and docs/nir.md.
"""

from __future__ import annotations

import argparse
import math

from model.spec import RESETS
from sim import nir_io, options


def _positive_float(text: str) -> float:
    """An ``argparse`` type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{value} is out of range (allowed a finite number > 0)")
    return value


def run_export(args: argparse.Namespace) -> int:
    """Write the NIR file, print one line."""
    graph = nir_io.export_checkpoint(args.checkpoint, args.out, pool=args.pool)
    meta = graph.metadata
    kind = meta["checkpoint_kind"]
    spec = nir_io.NetworkSpec.from_json(meta["spikeforge_spec"])
    what = "dequantized integer checkpoint" if kind == "integer" else "float checkpoint"
    print(
        f"{args.out}: {spec.arch} T={spec.timesteps} reset {spec.reset} decoder {spec.decoder} "
        f"({what}, {len(graph.nodes)} nodes)"
    )
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Read the NIR file, write the float checkpoint, print the assumptions and one line."""
    result = nir_io.import_file(
        args.file, args.out, reset=args.reset, dt=args.dt, timesteps=args.timesteps,
        decoder=args.decoder, population=args.population,
    )
    for note in result.notes:
        print(f"note: {note}")
    spec = result.network.spec
    print(
        f"{args.out}: float checkpoint {spec.arch} on {spec.input_shape} T={spec.timesteps} "
        f"reset {spec.reset} threshold {spec.threshold} decoder {spec.decoder} "
        f"({len(result.chain)} nodes read)"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export-nir`` and ``import-nir`` subcommands."""
    export = subparsers.add_parser(
        "export-nir",
        help="write a checkpoint as a NIR graph (HDF5; needs the nir extra)",
        description="Write the NIR graph of a float or integer checkpoint (an integer one as its "
        "dequantized float values); reset, decoder, T and the spec go into the graph metadata.",
    )
    export.add_argument("--checkpoint", required=True, metavar="DIR", help="float or integer checkpoint")
    export.add_argument("--out", required=True, metavar="FILE", help="NIR file to write (e.g. net.nir)")
    export.add_argument(
        "--pool", choices=nir_io.POOLS, default="avg",
        help="AP2 as AvgPool2d (avg, default) or SumPool2d with the next weights / 4 (sum, for "
        "importers without AvgPool2d such as Norse)",
    )
    export.set_defaults(func=run_export)

    imp = subparsers.add_parser(
        "import-nir",
        help="read a NIR graph into a float checkpoint (needs the nir extra)",
        description="Read a NIR graph (Input -> IF encoder -> [Flatten] Linear/Conv2d -> IF ... "
        "-> Output) into a float checkpoint; docs/nir.md has the mapping and the rules.",
    )
    imp.add_argument("file", metavar="FILE", help="NIR file (HDF5)")
    imp.add_argument("--out", required=True, metavar="DIR", help="float checkpoint folder (created)")
    imp.add_argument(
        "--reset", choices=RESETS,
        help="default: the file's reset metadata, else zero (NIR's IF resets to v_reset = 0)",
    )
    imp.add_argument(
        "--dt", type=_positive_float, metavar="DT",
        help="one step in the file's time unit; an IF integrates r * DT * I per step "
        "(default: the file's dt metadata, else 1)",
    )
    imp.add_argument(
        "--timesteps", type=options.bounded_int(1, 1024), metavar="T",
        help="1..1024 (default: the file's timesteps metadata, else 8)",
    )
    imp.add_argument(
        "--decoder", choices=("rate", "last"),
        help="default: the file's spec, else rate (the fc decoder needs its weight from a spikeforge file)",
    )
    imp.add_argument(
        "--population", type=options.positive, metavar="P",
        help="output neurons per class (default: the file's spec, else 1)",
    )
    imp.set_defaults(func=run_import)
