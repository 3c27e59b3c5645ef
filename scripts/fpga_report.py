"""FPGA utilisation and Fmax of the datapath units for docs/results.md (``## FPGA reports``).

Writes the Verilog of every unit of :data:`hw.export.UNITS` at its default parameters
(what ``spikeforge gen --all-units`` writes), synthesizes, places and routes each one on
each target with :func:`sim.synth.synthesize` (``spikeforge synth``; needs the ``fpga``
extra), keeps the JSON reports and writes the section ``## FPGA reports`` of a Markdown
file (replaced when present, appended otherwise).

Usage::

    nice python3 scripts/fpga_report.py --targets ice40-up5k ecp5-25k \\
        --out runs/fpga --write docs/results.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from hw.export import UNITS, write_all  # noqa: E402
from results_md import machine_note, publish  # noqa: E402
from sim.synth import TARGETS, SynthReport, get_target, synthesize  # noqa: E402

HEADING = "## FPGA reports"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="+", default=["ice40-up5k", "ecp5-25k"], choices=list(TARGETS))
    parser.add_argument("--units", nargs="+", default=list(UNITS), choices=list(UNITS))
    parser.add_argument("--out", default="runs/fpga", help="Verilog (OUT/units) and JSON reports")
    parser.add_argument("--write", metavar="MD", help="replace or append the section in this file")
    return parser


def _cell(entry: Mapping[str, int], share: bool) -> str:
    used = f"{entry['used']:,}"
    return f"{used} ({100 * entry['used'] / entry['available']:.1f} %)" if share else used


def table(target: str, reports: Sequence[SynthReport]) -> list[str]:
    """Markdown table of one target: a row per unit, a column per listed resource."""
    spec = get_target(target)
    names = list(spec.resources)
    available = reports[0].utilisation
    lines = [
        f"**{target}** ({spec.device}, `{spec.synth}`, constraint {spec.freq_mhz:g} MHz):",
        "",
        "| unit | scan bits in + out | " + " | ".join(names) + " | Fmax (MHz) | s |",
        "|---|---:|" + "---:|" * len(names) + "---:|---:|",
    ]
    for report in reports:
        bits = report.scan_bits or {"inputs": 0, "outputs": 0}
        cells = [_cell(report.utilisation[name], i == 0) for i, name in enumerate(names)]
        fmax = f"{report.fmax_mhz:.1f}" if report.fmax_mhz is not None else "-"
        lines.append(
            f"| {report.top} | {bits['inputs']} + {bits['outputs']} | " + " | ".join(cells)
            + f" | {fmax} | {report.seconds:.0f} |"
        )
    lines.append(
        "| *available* | | " + " | ".join(f"{available[name]['available']:,}" for name in names) + " | | |"
    )
    return lines


def section(reports: Mapping[str, Sequence[SynthReport]], argv: Sequence[str], seconds: float) -> str:
    """The ``## FPGA reports`` section for ``reports`` (target -> one report per unit)."""
    tools = sorted({
        f"{name} {version}" for rows in reports.values() for name, version in rows[0].tool_versions.items()
    })
    lines = [
        HEADING,
        "",
        f"Command: `python3 scripts/fpga_report.py {shlex.join(argv)}`",
        "",
        "Each unit is synthesized on its own: `spikeforge gen --all-units --out runs/fpga/units`, "
        "then per unit `spikeforge synth --gen-dir runs/fpga/units --top UNIT --target TARGET "
        f"--json runs/fpga/UNIT.TARGET.json` (`pip install -e .[fpga]`: {', '.join(tools)}). "
        "The default `--io scan` "
        "puts every port of the unit on a shift register (`scan bits`), so 4 pins suffice and "
        "the unit sits between registers as it does inside the core; the counts include those "
        "registers, about one flip-flop and one logic cell (iCE40) or one LUT (ECP5) per scan "
        "bit. Resources are nextpnr's (`ICESTORM_LC` = logic cell of a LUT4 and a flip-flop, "
        "`FF` = Yosys flip-flops, `ICESTORM_RAM` = 4 kbit EBR, `TRELLIS_COMB` = LUT4 slots, "
        "`TRELLIS_RAMW` = distributed-RAM write ports, `DP16KD` = 18 kbit EBR); the first column's "
        "share is of the device. Fmax is nextpnr's for the unit's clock after routing with "
        "seed 1 (`--seed` moves it by a few per cent); `s` is the wall-clock time of the run.",
        "",
    ]
    for target, target_reports in reports.items():
        lines += table(target, target_reports) + [""]
    lines.append(f"Wall-clock time of the script: {seconds:.0f} s. {machine_note()}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    start = time.monotonic()
    out = Path(args.out)
    write_all(out / "units")
    reports: dict[str, list[SynthReport]] = {}
    for target in args.targets:
        for unit in args.units:
            print(f"{unit} on {target}", file=sys.stderr, flush=True)
            report = synthesize(out / "units", target, top=unit)
            (out / f"{unit}.{target}.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
            reports.setdefault(target, []).append(report)
    text = section(reports, argv, time.monotonic() - start)
    publish(text, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
