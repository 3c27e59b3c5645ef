"""``spikeforge gen``: write the Verilog of datapath units (one ``NAME.v`` per unit)."""

from __future__ import annotations

import argparse

from hw.export import UNITS, write_all, write_unit


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
    """Write the requested units and print one path per line."""
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
        help="write Verilog of datapath units",
        description=(
            "Write one Verilog file per unit, NAME.v with top module NAME "
            f"(units: {', '.join(UNITS)}). Defaults follow docs/numerics.md."
        ),
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--unit", metavar="NAME", help="one unit")
    which.add_argument("--all-units", action="store_true", help="every unit, default parameters")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument(
        "--params",
        metavar="KEY=VALUE,...",
        help="override parameters of --unit, e.g. index_bits=8,depth=32",
    )
    parser.set_defaults(func=run)
