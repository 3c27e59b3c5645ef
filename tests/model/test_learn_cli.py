"""``spikeforge learn`` and ``spikeforge eval`` on integer checkpoints (small, fast runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from model.integer import IntegerNetwork
from model.spec import NetworkSpec
from model.stbp import Network
from sim.cli import main

SMALL = ["--arch", "24FC-20FC", "--timesteps", "4", "--population", "2", "--epochs", "1", "--schedule", "10"]


def _learn(tmp_path: Path, *extra: str) -> tuple[int, dict]:
    out, report = tmp_path / "ck", tmp_path / "report.json"
    code = main(["learn", "--dataset", "digits", "--out", str(out), "--json", str(report), "--no-progress", *extra])
    return code, json.loads(report.read_text()) if report.is_file() else {}


def test_learn_from_scratch_writes_checkpoint_and_report(tmp_path: Path, capsys) -> None:
    code, report = _learn(tmp_path, *SMALL, "--init", "scratch", "--seed", "3", "--bits", "v=14,dw=20")
    assert code == 0
    for key in ("accuracy", "spikes_per_inference", "spikes_per_layer", "synaptic_ops_per_inference", "formats"):
        assert key in report
    assert "float_accuracy" not in report
    assert report["formats"]["v"] == 14 and report["formats"]["dw"] == 20 and report["formats"]["fw"] == 7
    assert len(report["spikes_per_layer"]) == 3 and report["accuracy"] > 0.25  # chance: 0.1
    net = IntegerNetwork.load(tmp_path / "ck")
    assert net.spec.arch == "24FC-20FC" and net.formats.v == 14
    meta = json.loads((tmp_path / "ck" / "checkpoint.json").read_text())
    assert meta["kind"] == "integer" and meta["training"]["dataset"] == "digits"
    # eval dispatches on the kind and reproduces the accuracy.
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(tmp_path / "ck"), "--json", str(tmp_path / "eval.json")]) == 0
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["accuracy"] == report["accuracy"] and evaluated["formats"]["v"] == 14


def test_learn_from_float_checkpoint_reports_float_accuracy(tmp_path: Path) -> None:
    spec = NetworkSpec.parse("12FC-20FC", input_shape=(64,), timesteps=4, population=2)
    Network(spec, seed=1).save(tmp_path / "float", training={"dataset": "digits"})
    code, report = _learn(tmp_path, "--init", str(tmp_path / "float"), "--epochs", "1", "--timesteps", "4")
    assert code == 0
    assert 0 <= report["float_accuracy"] <= 1 and 0 <= report["quantized_accuracy"] <= 1
    assert report["training"]["init"] == str(tmp_path / "float")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--init", "scratch", "--arch", "12FC-20FC", "--population", "2", "--bits", "w=40"], "w: 40 is out of range"),
        (["--init", "scratch", "--arch", "12FC-20FC", "--population", "2", "--bits", "q=4"], "argument --bits: 'q=4' is not key=value"),
        (["--init", "scratch", "--arch", "20FC-4C3-20FC", "--population", "2"], "arch: layer 2 (4C3) needs an image input"),
        (["--init", "scratch", "--arch", "12FC-21FC", "--population", "2"], "population:"),
        (["--init", "/nonexistent/ck", "--population", "2"], "does not exist"),
        (["--init", "scratch", "--arch", "12FC-20FC", "--population", "2", "--batch", "0"], "--batch: 0"),
        # 20 output neurons at population 10 would be 2 classes: refused before learning.
        (["--init", "scratch", "--arch", "12FC-20FC"],
         "population: the last layer has 20 neurons, which is not classes (10) x population (10)"),
    ],
)
def test_learn_bad_input_is_one_line_exit_2(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    try:  # option errors exit from argparse, the others return 2 from main
        code = main(["learn", "--dataset", "digits", "--out", str(tmp_path / "o"), "--json", str(tmp_path / "j.json"), *args])
    except SystemExit as error:
        code = error.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_learn_rejects_mismatched_float_checkpoint(tmp_path: Path, capsys) -> None:
    spec = NetworkSpec.parse("12FC-20FC", input_shape=(64,), timesteps=4, population=2)
    Network(spec).save(tmp_path / "float", training={"dataset": "digits"})
    code = main([
        "learn", "--dataset", "digits", "--init", str(tmp_path / "float"), "--arch", "10FC-20FC",
        "--out", str(tmp_path / "o"), "--json", str(tmp_path / "j.json"),
    ])
    err = capsys.readouterr().err
    assert code == 2 and "--arch: '10FC-20FC' differs from the checkpoint's '12FC-20FC'" in err


def test_learn_and_eval_refuse_a_network_of_other_classes(tmp_path: Path, capsys) -> None:
    """A checkpoint with 2 classes on digits (10): one line naming both class counts."""
    spec = NetworkSpec.parse("12FC-4FC", input_shape=(64,), timesteps=4, population=2)
    Network(spec).save(tmp_path / "float", training={"dataset": "digits"})
    for argv in (["learn", "--dataset", "digits", "--init", str(tmp_path / "float"), "--out", str(tmp_path / "o")],
                 ["eval", "--checkpoint", str(tmp_path / "float"), "--dataset", "digits"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "--dataset: digits has input shape (64,) and 10 classes, the checkpoint expects (64,) and 2" in err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_learn_fc_decoder_on_every_target(tmp_path: Path, capsys) -> None:
    # The recipe's schedule with the fc decoder's offset (SMALL's fixed shift 10 is the last
    # decoder's scale: the fc decoder's error is 2^7 larger).
    small = SMALL[: SMALL.index("--schedule")]
    code, report = _learn(tmp_path, *small, "--init", "scratch", "--decoder", "fc", "--seed", "1")
    assert code == 0 and report["accuracy"] > 0.2  # chance: 0.1
    net = IntegerNetwork.load(tmp_path / "ck")
    assert net.spec.decoder == "fc" and net.decoder.shape == (10, 4 * 20)
    assert report["formats"]["df"] == 9
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(tmp_path / "ck"), "--json", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["accuracy"] == report["accuracy"]
    # The core model estimates it: the readout pass reads one D row per output spike.
    estimate = ["estimate", "--checkpoint", str(tmp_path / "ck"), "--lanes", "4", "--samples", "5",
                "--json", str(tmp_path / "e.json")]
    assert main(estimate) == 0
    cycles = json.loads((tmp_path / "e.json").read_text())["cycles_by_phase_per_inference"]
    assert cycles["readout"] > 10  # C = 10 compares plus the decoder's passes
    capsys.readouterr()
    # The RTL core builds it: the decoder's memory image is generated with the weights.
    assert main(["gen", "--checkpoint", str(tmp_path / "ck"), "--lanes", "2", "--out", str(tmp_path / "rtl")]) == 0
    image = (tmp_path / "rtl" / f"D{net.spec.num_layers}.hex").read_text().split()
    assert len(image) == 4 * 20 * 5  # T n_L rows of ceil(10 / 2) words
    if shutil.which("g++"):  # the HLS target builds it: C simulation against the model
        hls = ["hls", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "hls"), "--lanes", "3",
               "--samples", "6", "--learn", "--csim", "--json", str(tmp_path / "hls.json")]
        assert main(hls) == 0
        result = json.loads((tmp_path / "hls.json").read_text())
        assert result["mismatches"] == 0 and result["passed"] > 0


def test_learn_a_conv_network_and_build_its_core(tmp_path: Path, capsys) -> None:
    """learn takes conv architectures (digits as 1x8x8 images); eval reproduces the result;
    estimate runs it on the core model; gen builds its RTL core, which learns it on-line."""
    small = ["--arch", "2C3-AP2-20FC", "--timesteps", "3", "--population", "2", "--epochs", "1"]
    code, report = _learn(tmp_path, *small, "--init", "scratch", "--seed", "1")
    assert code == 0 and len(report["spikes_per_layer"]) == 3
    net = IntegerNetwork.load(tmp_path / "ck")
    assert net.spec.input_shape == (1, 8, 8) and net.weights[0].shape == (2, 9)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(tmp_path / "ck"), "--json", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["accuracy"] == report["accuracy"]
    argv = ["--checkpoint", str(tmp_path / "ck"), "--samples", "2"]
    assert main(["estimate", *argv, "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["cycles_per_inference"] > 0
    capsys.readouterr()
    assert main(["gen", "--checkpoint", str(tmp_path / "ck"), "--lanes", "2", "--out", str(tmp_path / "rtl")]) == 0
    assert json.loads((tmp_path / "rtl" / "manifest.json").read_text())["parameters"]["learnable"] is True


def test_learn_conv_from_scratch_rotates_training_images_by_default(tmp_path: Path) -> None:
    small = ["--init", "scratch", "--arch", "2C3-AP2-20FC", "--timesteps", "4", "--population", "2",
             "--epochs", "1", "--schedule", "12"]
    code, report = _learn(tmp_path, *small)
    assert code == 0
    assert report["training"]["augmentation"] == {"flip": False, "shift": 0, "rotate_deg": 10.0}
    code, off = _learn(tmp_path, *small, "--augment", "off")
    assert code == 0 and off["training"]["augmentation"] is None
    # The same init and shuffling: only the rotated images differ.
    assert report["history"]["train_accuracy"] != off["history"]["train_accuracy"]
    code, flat = _learn(tmp_path, *SMALL, "--init", "scratch")
    assert code == 0 and flat["training"]["augmentation"] is None
