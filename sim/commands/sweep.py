"""``spikeforge sweep``: a design-space sweep on Ray (:mod:`sim.sweep`).

Expands a grid spec (TOML or JSON) into points, checks every point before any job starts,
runs each point as a Ray task (learn -> estimate -> gen -> synth, cosim optional) on a local
Ray with ``--workers`` CPUs (default: all cores) or on an existing cluster (``--address``),
and writes ``DIR/results.json``, ``DIR/results.csv`` and ``DIR/pareto.png``. A rerun reuses
the finished points; a failed point is a row with its error. ``--print-example`` prints a
spec that runs as it is. Exit code 1 when a point failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sim import options
from sim.cli import CLIError
from sim.sweep import EXAMPLE, expand, load_spec, run_sweep

#: The extra that installs Ray.
INSTALL_HINT = 'pip install -e ".[sweep]"'


def _say(text: str) -> None:
    print(f"sweep: {text}", file=sys.stderr, flush=True)


def _ray():
    """The ``ray`` module, or one line naming the extra."""
    try:
        import ray
    except ImportError:
        raise CLIError(f"Ray is not installed: {INSTALL_HINT}") from None
    return ray


def start_ray(ray, address: str | None, workers: int | None) -> bool:
    """Connect to ``address`` or start a local Ray with ``workers`` CPUs unless Ray is already
    running in this process; returns whether this call started it (and must shut it down)."""
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address is not None:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        else:
            ray.init(num_cpus=workers or os.cpu_count() or 1, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"--address {address}" if address else "local Ray"
        raise CLIError(f"{where}: cannot start Ray: {str(error).splitlines()[0] if str(error) else error}") from None
    return True


def run(args: argparse.Namespace) -> int:
    """Print the example, or check the spec, run the sweep and print a summary."""
    if args.print_example:
        if args.spec is not None:
            raise CLIError("--print-example: takes no SPEC")
        print(EXAMPLE, end="")
        return 0
    if args.spec is None or args.out is None:
        raise CLIError("SPEC and --out DIR are required (or --print-example)")
    if args.address is not None and args.workers is not None:
        raise CLIError("--workers: only for a local Ray (the cluster at --address has its own)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out: {str(out)!r} is a file, not a folder")
    sweep = expand(load_spec(args.spec), source=Path(args.spec).name)
    ray = _ray()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CLIError(f"--out: cannot create {str(out)!r}: {error.strerror or error}") from None
    _say(f"{len(sweep.points)} points, stages {' -> '.join(sweep.stages)}")
    started = start_ray(ray, args.address, args.workers)
    try:
        outcome = run_sweep(sweep, out, ray=ray, progress=not args.no_progress, status=_say)
    finally:
        if started:
            ray.shutdown()
    for row in outcome.rows:
        if row["status"] != "ok":
            _say(f"point {row['id']} (P = {row['lanes']}, {row['target']}) failed: {row['error']}")
    _say(
        f"{outcome.computed} computed, {outcome.reused} reused, {outcome.failed} failed in "
        f"{outcome.seconds:.1f} s; table {outcome.files['results.csv']}, plot {outcome.files['pareto.png']}"
    )
    return 1 if outcome.failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` subcommand."""
    parser = subparsers.add_parser(
        "sweep",
        help="design-space sweep on Ray: learn, estimate, gen, synth per grid point, one table",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("spec", nargs="?", metavar="SPEC", help="grid spec, .toml or .json")
    parser.add_argument("--out", metavar="DIR", help="sweep folder (created; reused points are read from it)")
    parser.add_argument(
        "--address", metavar="ADDR",
        help="an existing Ray cluster: 'auto', HOST:6379 or ray://HOST:10001 (default: a local Ray)",
    )
    parser.add_argument(
        "--workers", type=options.positive, metavar="N",
        help="CPUs of the local Ray, one point per CPU (default: all cores)",
    )
    parser.add_argument("--print-example", action="store_true", help="print a minimal spec that runs as it is")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)
