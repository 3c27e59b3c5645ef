"""``spikeforge convert``: a short run on digits, its report and checkpoints, and user errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_runner import run

from model.checkpoint import load_checkpoint_kind
from model.convert import ANN
from model.stbp import Network
from sim.cli import main

SMALL = ["--dataset", "digits", "--arch", "32FC-30FC", "--population", "3", "--epochs", "15",
         "--norm-samples", "300", "--no-progress"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("convert")
    code = main(["convert", *SMALL, "--timesteps", "4", "32", "--seed", "1", "--out",
                 str(folder / "run"), "--json", str(folder / "report.json")])
    assert code == 0
    return folder


def test_report_fields_and_checkpoints(converted):
    report = json.loads((converted / "report.json").read_text())
    assert json.loads((converted / "run" / "result.json").read_text()) == report
    assert 0.7 < report["ann_accuracy"] <= 1.0
    assert report["percentile"] == 99.9
    assert report["scales"][0] == 1.0 and len(report["scales"]) == 3
    config = report["config"]
    assert (config["epochs"], config["seed"], config["norm_samples"]) == (15, 1, 300)
    assert config["encoder_threshold"] == 1.0 and config["batch"] == 50
    assert len(report["history"]["loss"]) == 15
    assert [row["timesteps"] for row in report["rows"]] == [4, 32]
    for row in report["rows"]:
        for key in ("accuracy", "spikes_per_inference", "synaptic_ops_per_inference"):
            assert isinstance(row[key], float)
        assert len(row["spikes_per_layer"]) == 3
        assert sum(row["spikes_per_layer"]) == pytest.approx(row["spikes_per_inference"])
        net = Network.load(row["checkpoint"])
        assert net.spec.timesteps == row["timesteps"] and net.spec.decoder == "rate"
        assert net.spec.reset == "subtract" and net.spec.threshold == "fixed"
        assert all((vth == 1.0).all() for vth in net.thresholds)
    short, long = report["rows"]
    assert abs(long["accuracy"] - report["ann_accuracy"]) <= 0.03
    assert long["spikes_per_inference"] > short["spikes_per_inference"]
    assert load_checkpoint_kind(report["ann_checkpoint"]) == "ann"
    ann = ANN.load(report["ann_checkpoint"])
    assert ann.spec.arch == "32FC-30FC"
    net = Network.load(report["rows"][1]["checkpoint"])
    np.testing.assert_allclose(
        net.weights[0], ann.weights[0] * (report["scales"][0] / report["scales"][1]), rtol=1e-6
    )


def test_eval_accepts_the_converted_checkpoint(converted, capsys):
    report = json.loads((converted / "report.json").read_text())
    row = report["rows"][1]
    code, out, err = run(["eval", "--checkpoint", row["checkpoint"], "--json",
                          str(converted / "eval.json")], capsys)
    assert code == 0 and err == ""
    assert out.startswith("digits 32FC-30FC T=32 (float): accuracy ")
    evaluated = json.loads((converted / "eval.json").read_text())
    for key in ("accuracy", "spikes_per_layer", "synaptic_ops_per_inference"):
        assert evaluated[key] == row[key]


def test_summary_lines(tmp_path, capsys):
    code, out, err = run(["convert", *SMALL, "--epochs", "1", "--timesteps", "2",
                          "--percentile", "100", "--out", str(tmp_path / "run")], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("digits 32FC-30FC: ANN accuracy ") and "percentile 100," in lines[0]
    assert lines[1].startswith("  T=2: accuracy ") and len(lines) == 2
    assert json.loads((tmp_path / "run" / "result.json").read_text())["percentile"] == 100.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--arch", "12XY-10FC"], "arch: bad layer '12XY'"),
        (["--arch", "10FC-AP2-30FC"], "arch: layer 2 (AP2) needs an image input"),
        (["--population", "4"], "population: the last layer has 30 neurons"),
        (["--timesteps", "0"], "timesteps: 0 is out of range (allowed 1..1024)"),
        (["--timesteps", "8", "2000"], "timesteps: 2000 is out of range (allowed 1..1024)"),
        (["--timesteps", "8", "16", "8"], "--timesteps: 8 is given twice"),
        (["--timesteps", "eight"], "invalid int value: 'eight'"),
        (["--percentile", "0"], "percentile: 0.0 is out of range (allowed 0 < percentile <= 100)"),
        (["--percentile", "100.5"], "percentile: 100.5 is out of range"),
        (["--percentile", "nan"], "percentile: nan is out of range"),
        (["--epochs", "0"], "argument --epochs: 0 is out of range (allowed 1 or more)"),
        (["--lr", "-1"], "lr: -1.0 is out of range (allowed a finite number > 0)"),
        (["--lr", "inf"], "lr: inf is out of range"),
        (["--seed", "-1"], "seed: -1 is out of range (allowed 0 or more)"),
        (["--norm-samples", "0"], "argument --norm-samples: 0 is out of range (allowed 1 or more)"),
        (["--json", "/"], "--json: '/' is a folder"),
        (["--dataset", "mnist10k", "--arch", "128FC-100FC", "--data-root", "/nonexistent/mnist"],
         "mnist10k: data folder '/nonexistent/mnist' does not exist"),
    ],
)
def test_bad_options_are_one_line_exit_2(tmp_path, capsys, argv, message):
    timesteps = [] if "--timesteps" in argv else ["--timesteps", "8"]
    out = tmp_path / "run"
    code, stdout, err = run(["convert", *SMALL, *timesteps, "--out", str(out), *argv], capsys)
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("spikeforge convert: error: ")
    assert message in err
    assert not out.exists()


def test_missing_timesteps_and_out_file(tmp_path, capsys):
    code, _, err = run(["convert", *SMALL, "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "the following arguments are required: --timesteps" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(["convert", *SMALL, "--timesteps", "8", "--out", str(blocker)], capsys)
    message = f"spikeforge convert: error: --out: {str(blocker)!r} exists and is not a folder"
    assert code == 2 and err.strip() == message
