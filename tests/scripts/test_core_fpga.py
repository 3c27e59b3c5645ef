"""scripts/core_fpga.py: latency at Fmax and the per-target tables (no FPGA tools needed)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from model.integer import Formats, IntegerNetwork
from model.spec import NetworkSpec
from sim.synth import SynthReport

SCRIPT = "core_fpga"


@pytest.fixture
def net() -> IntegerNetwork:
    spec = NetworkSpec.parse("16FC-10FC", input_shape=(64,), timesteps=4, population=1)
    return IntegerNetwork.scratch(spec, Formats(), seed=0)


def test_latency_only_for_a_routed_design(script: ModuleType, synth_report: Callable[..., SynthReport]) -> None:
    fits = script.Point(1, synth_report("core", 4000, 40.0), 6000.0, 18000.0)
    assert fits.latency_us(fits.cycles_per_inference) == 150.0
    assert fits.latency_us(None) is None
    too_big = script.Point(2, synth_report("core", 9000, None), 3000.0, 9000.0)
    assert too_big.latency_us(too_big.cycles_per_inference) is None


def test_section_names_smallest_and_largest_fitting_p(
    script: ModuleType, synth_report: Callable[..., SynthReport], net: IntegerNetwork
) -> None:
    points = {"ice40-up5k": [
        script.Point(1, synth_report("core", 4000, 40.0), 6000.0, 18000.0),
        script.Point(2, synth_report("core", 5000, 30.0), 3000.0, 9000.0),
        script.Point(4, synth_report("core", 9000, None), 1500.0, 4500.0),
    ]}
    text = script.section([script.Sweep("CKPT", net, points)], ["--checkpoints", "CKPT"], 12.0)
    lines = text.splitlines()
    assert lines[0] == "## Whole core on FPGAs"
    assert "### `CKPT`" in lines
    assert any(line.startswith("`16FC-10FC`, 64 inputs, population 1, T = 4") and "dw = 24" in line for line in lines)
    assert "| 1 | yes | 4,000 (76 %) | 2,000 (38 %) | 0 (0 %) | 0 (0 %) | 0 (0 %) | 40.0 | 6,000 | 150.0 | 18,000 | 450.0 | 8 |" in lines
    assert "| 4 | no | 9,000 (170 %) | 4,500 (85 %) | 0 (0 %) | 0 (0 %) | 0 (0 %) | - | 1,500 | - | 4,500 | - | 8 |" in lines
    assert "Fits ice40-up5k for P = 1 (smallest) to 2 (largest) of those tried." in lines
    # anchors: 0.52 ms inference, 1.5 ms learning; the fastest fitting core is P = 2 at 30 MHz
    assert any(line.startswith("- inference: 0.52 ms = 520 us") and "100.0 us, 5.20x faster" in line for line in lines)
    assert any(line.startswith("- learning: 1.5 ms = 1,500 us") and "300.0 us, 5.00x faster" in line for line in lines)


def test_section_when_nothing_fits(
    script: ModuleType, synth_report: Callable[..., SynthReport], net: IntegerNetwork
) -> None:
    points = {"ice40-up5k": [script.Point(1, synth_report("core", 12633, None), 60000.0, 168000.0)]}
    text = script.section([script.Sweep("CKPT", net, points)], [], 1.0)
    assert "No P tried fits ice40-up5k; at P = 1: ICESTORM_LC: 12633 used, 5280 available (+7353); FF: " in text
    assert "fastest fitting core" not in text


def test_checkpoint_option_with_its_own_targets(script: ModuleType) -> None:
    args = script.build_parser().parse_args(["--checkpoints", "A", "B=ecp5-25k,ecp5-85k"])
    assert args.checkpoints == [("A", None), ("B", ("ecp5-25k", "ecp5-85k"))]
    with pytest.raises(SystemExit):
        script.build_parser().parse_args(["--checkpoints", "B=ecp5-12k"])


def test_section_names_a_p_that_gen_refused(
    script: ModuleType, synth_report: Callable[..., SynthReport], net: IntegerNetwork
) -> None:
    points = {"ice40-up5k": [script.Point(1, synth_report("core", 5100, 10.0), 40000.0, 130000.0)]}
    refused = {"ice40-up5k": (2, "target: W and dW need 6 single-port blocks"), "ecp5-25k": (1, "lanes: odd")}
    text = script.section(
        [script.Sweep("CKPT", net, points, refused)], [], 1.0, heading="## Whole core on the iCE40", counters="cycles"
    )
    lines = text.splitlines()
    assert lines[0] == "## Whole core on the iCE40"
    assert "--counters cycles" in text
    assert "Fits ice40-up5k for P = 1 (smallest) to 1 (largest) of those tried." in lines
    assert "P = 2 is not built for ice40-up5k: target: W and dW need 6 single-port blocks." in lines
    assert "P = 1 is not built for ecp5-25k: lanes: odd." in lines


def test_sweep_folder_gives_the_same_tables(
    script: ModuleType, synth_report: Callable[..., SynthReport], net: IntegerNetwork, tmp_path, capsys
) -> None:
    import json

    sweep = tmp_path / "sweep"
    net.save(sweep / "learn" / "abc" / "checkpoint")
    for name, lanes, status, fmax in (("p2", 2, "ok", 30.0), ("p1", 1, "ok", 40.0), ("p4", 4, "failed", None)):
        folder = sweep / "points" / name
        folder.mkdir(parents=True)
        row = {"learn_id": "abc", "target": "ice40-up5k", "lanes": lanes, "status": status, "seconds": 10.0,
               "error": None if status == "ok" else "synth: yosys failed",
               "cycles_per_inference": 6000.0 / lanes, "cycles_per_learning_step": 18000.0 / lanes}
        (folder / "result.json").write_text(json.dumps(row))
        if status == "ok":
            (folder / "synth.json").write_text(json.dumps(synth_report("core", 4000, fmax).to_dict()))
    (sweeps,), seconds = script.from_sweep(sweep)
    assert seconds == 30.0
    assert [point.lanes for point in sweeps.points["ice40-up5k"]] == [1, 2]
    assert sweeps.refused == {"ice40-up5k": (4, "synth: yosys failed")}
    md = tmp_path / "results.md"
    assert script.main(["--sweep", str(sweep), "--write", str(md)]) == 0
    text = md.read_text()
    assert "| 1 | yes | 4,000 (76 %) |" in text and "| 2 | yes | 4,000 (76 %) |" in text
    assert "P = 4 is not built for ice40-up5k: synth: yosys failed." in text
    assert "Time of the points (their own, added up): 30 s." in text
    capsys.readouterr()
    assert script.main(["--sweep", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "holds no finished point" in err and err.count("\n") == 1
