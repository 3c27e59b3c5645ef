"""Smoke tests of scripts/core_estimates.py: the recorded learn command and the tables on a
tiny network."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np

from model.integer import IntegerNetwork
from model.spec import NetworkSpec

SCRIPT = "core_estimates"


def test_learn_command_and_tables(script: ModuleType, tmp_path: Path) -> None:
    spec = NetworkSpec.parse("6FC-4FC", input_shape=(5,), timesteps=2, population=2)
    net = IntegerNetwork.scratch(spec, seed=1)
    folder = tmp_path / "ck"
    net.save(folder, training={"dataset": "digits", "init": "scratch", "epochs": 3, "seed": 7})
    command = script.learn_command(str(folder))
    assert command.startswith(
        "`spikeforge learn --dataset digits --init scratch --arch 6FC-4FC --population 2 --timesteps 2 --epochs 3"
    )
    pixels = np.random.default_rng(0).integers(0, 256, (3, 5), dtype=np.uint8)
    data = (pixels, np.array([0, 1, 0]))
    lines = script.lanes_table("tiny", net, data, data, depth=3)
    assert len(lines) == 4 + len(script.LANES)
    assert all(line.count("|") == 7 for line in lines[2:])
    report = script.estimate(net, *data, None, lanes=2, depth=3)
    assert report["cycles_per_learning_step"] is None and report["loihi_pj_per_inference"] > 0


def test_conv_section_needs_its_checkpoint_or_both_fc_ones(script: ModuleType, capsys) -> None:
    assert script.main(["--digits", "a"]) == 2
    assert script.main([]) == 2
    assert "give --digits and --mnist, or --conv" in capsys.readouterr().err


def test_conv_learn_command_names_the_decoder_and_the_time_steps(script: ModuleType, tmp_path: Path) -> None:
    spec = NetworkSpec.parse("2C3-AP2-4FC", input_shape=(1, 4, 4), timesteps=2, population=2, decoder="fc")
    folder = tmp_path / "conv"
    IntegerNetwork.scratch(spec, seed=1).save(folder, training={"dataset": "digits", "init": "scratch", "epochs": 2, "seed": 0})
    assert "--arch 2C3-AP2-4FC --population 2 --timesteps 2 --decoder fc --epochs 2" in script.learn_command(str(folder))


def test_recorded_learn_command_reproduces_a_run_with_non_default_options(script: ModuleType, tmp_path: Path) -> None:
    from sim.cli import main

    first = tmp_path / "first"
    options = ["--arch", "12FC-10FC", "--population", "1", "--timesteps", "2", "--epochs", "1", "--batch", "4",
               "--rounding", "nearest", "--bits", "w=6,fw=5", "--augment", "on", "--seed", "3"]
    learn = ["learn", "--dataset", "digits", "--init", "scratch", *options, "--out", str(first), "--no-progress"]
    assert main(learn) == 0
    command = script.learn_command(str(first)).strip("`").split()
    for flag in ("--batch 4", "--rounding nearest", "--bits w=6,fw=5", "--augment on", "--seed 3"):
        assert flag in " ".join(command)
    again = tmp_path / "again"
    command[command.index("--out") + 1] = str(again)
    command[command.index("--json") + 1] = str(tmp_path / "again.json")
    assert main([*command[1:], "--no-progress"]) == 0
    a, b = IntegerNetwork.load(first), IntegerNetwork.load(again)
    assert a.formats == b.formats and a.rule == b.rule
    assert all(np.array_equal(x, y) for x, y in zip(a.weights, b.weights, strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(a.thresholds, b.thresholds, strict=True))
