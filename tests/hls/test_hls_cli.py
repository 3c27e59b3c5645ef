"""``spikeforge hls`` and ``--engine csim`` of learn and eval: results and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import hw.hls
from model.integer import IntegerNetwork
from model.spec import NetworkSpec
from model.stbp import Network
from sim.cli import main

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")

SMALL = ["--arch", "24FC-20FC", "--timesteps", "4", "--population", "2"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An integer digits checkpoint (seeded scratch init)."""
    spec = NetworkSpec.parse("24FC-20FC", input_shape=(64,), timesteps=4, population=2)
    folder = tmp_path_factory.mktemp("ck") / "ck"
    IntegerNetwork.scratch(spec, seed=3).save(folder, training={"dataset": "digits"})
    return folder


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as error:  # argparse errors
        code = int(error.code)
    return code, capsys.readouterr().err


def test_hls_csim_learns_and_reports(tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "csim.json"
    code, err = _run(["hls", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "prj"), "--lanes", "3",
                      "--csim", "--learn", "--samples", "6", "--json", str(report)], capsys)
    assert code == 0, err
    data = json.loads(report.read_text())
    assert (data["samples"], data["learning_samples"], data["mismatches"], data["lanes"]) == (12, 6, 0, 3)
    assert data["passed"] == 3 * 12 + 7 * 3
    assert "csim: 57 passed, 0 failed" in err


def test_hls_without_csim_writes_the_project(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _run(["hls", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "prj"),
                    "--part", "xcu250-figd2104-2L-e", "--clock-ns", "4", "--samples", "2"], capsys)
    assert code == 0
    tcl = (tmp_path / "prj" / "build_prj.tcl").read_text()
    assert "set_part {xcu250-figd2104-2L-e}" in tcl and "create_clock -period 4 " in tcl
    assert not (tmp_path / "prj" / "build").exists()


def test_hls_csim_takes_digits_images_for_a_conv_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = NetworkSpec.parse("2C3-AP2-20FC", input_shape=(1, 8, 8), timesteps=4, population=2)
    folder = IntegerNetwork.scratch(spec, seed=3).save(tmp_path / "conv", training={"dataset": "digits"})
    report = tmp_path / "csim.json"
    code, err = _run(["hls", "--checkpoint", str(folder), "--out", str(tmp_path / "prj"), "--lanes", "3",
                      "--csim", "--learn", "--samples", "2", "--json", str(report)], capsys)
    assert code == 0, err
    data = json.loads(report.read_text())
    assert (data["samples"], data["learning_samples"], data["mismatches"]) == (4, 2, 0)


def _one_line_error(code: int, err: str, message: str) -> None:
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_hls_rejects_a_float_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = NetworkSpec.parse("12FC-20FC", input_shape=(64,), timesteps=4, population=2)
    Network(spec).save(tmp_path / "float", training={"dataset": "digits"})
    code, err = _run(["hls", "--checkpoint", str(tmp_path / "float"), "--out", str(tmp_path / "p")], capsys)
    _one_line_error(code, err, "kind: checkpoint")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--csim"], "--json: required with --csim"),
        (["--samples", "999999"], "--samples: 999999 is more than"),
        (["--lanes", "0"], "--lanes: 0 is out of range"),
        (["--clock-ns", "-1"], "must be a clock period in ns > 0"),
    ],
)
def test_hls_bad_options(tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str],
                         extra: list[str], message: str) -> None:
    code, err = _run(["hls", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "p"), *extra], capsys)
    _one_line_error(code, err, message)


def test_hls_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["hls", "--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "p")], capsys)
    _one_line_error(code, err, "does not exist")


def test_hls_inexpressible_checkpoint(tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hw.hls, "MAX_SPIKE_BITS", 100)
    code, err = _run(["hls", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "p")], capsys)
    _one_line_error(code, err, "timesteps: T x neurons")


def test_hls_learn_needs_a_learnable_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = NetworkSpec.parse("20FC", input_shape=(64,), timesteps=2, population=2, reset="zero", threshold="fixed")
    IntegerNetwork.scratch(spec).save(tmp_path / "ck", training={"dataset": "digits"})
    code, err = _run(["hls", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "p"), "--learn"], capsys)
    _one_line_error(code, err, "--learn: the core learns only")


def test_missing_compiler_is_one_line(tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no g++ on PATH
    code, err = _run(["hls", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "p"), "--csim",
                      "--json", str(tmp_path / "j.json")], capsys)
    _one_line_error(code, err, "g++: C++ compiler not found on PATH")
    assert not (tmp_path / "p").exists()
    code, err = _run(["eval", "--checkpoint", str(checkpoint), "--engine", "csim"], capsys)
    _one_line_error(code, err, "--engine csim: g++: C++ compiler not found")
    code, err = _run(["learn", "--dataset", "digits", "--init", "scratch", *SMALL, "--epochs", "1", "--engine", "csim",
                      "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    _one_line_error(code, err, "--engine csim: g++: C++ compiler not found")


def test_compile_error_is_one_line(tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "fakecxx"
    fake.write_text("#!/bin/sh\necho 'spikeforge.cpp:1:1: error: something broke' >&2\nexit 1\n")
    fake.chmod(0o755)
    code, err = _run(["hls", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "p"), "--csim",
                      "--cxx", str(fake), "--json", str(tmp_path / "j.json")], capsys)
    _one_line_error(code, err, "compile failed: spikeforge.cpp:1:1: error: something broke")


def test_eval_engine_csim_needs_an_integer_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = NetworkSpec.parse("12FC-20FC", input_shape=(64,), timesteps=4, population=2)
    Network(spec).save(tmp_path / "float", training={"dataset": "digits"})
    code, err = _run(["eval", "--checkpoint", str(tmp_path / "float"), "--engine", "csim"], capsys)
    _one_line_error(code, err, "--engine: csim runs integer checkpoints; this one is float")


def test_learn_engine_csim_gives_the_model_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Same seed, B = 1 and the default rounding: every array of the npz and the JSON are equal."""
    reports = {}
    for engine in ("model", "csim"):
        code, err = _run(["learn", "--dataset", "digits", "--init", "scratch", *SMALL, "--epochs", "1",
                          "--seed", "4", "--engine", engine, "--out", str(tmp_path / engine),
                          "--json", str(tmp_path / f"{engine}.json"), "--no-progress"], capsys)
        assert code == 0, err
        reports[engine] = json.loads((tmp_path / f"{engine}.json").read_text())
    model, csim = (np.load(tmp_path / engine / "weights.npz") for engine in ("model", "csim"))
    assert sorted(model.files) == sorted(csim.files)
    for name in model.files:
        assert model[name].dtype == csim[name].dtype and np.array_equal(model[name], csim[name]), name
    assert (tmp_path / "model" / "checkpoint.json").read_text() == (tmp_path / "csim" / "checkpoint.json").read_text()
    for key in ("accuracy", "spikes_per_layer", "synaptic_ops_per_inference", "formats"):
        assert reports["model"][key] == reports["csim"][key]
    assert reports["model"]["history"]["train_accuracy"] == reports["csim"]["history"]["train_accuracy"]
    code, _ = _run(["eval", "--checkpoint", str(tmp_path / "csim"), "--engine", "csim",
                    "--json", str(tmp_path / "eval.json")], capsys)
    assert code == 0 and json.loads((tmp_path / "eval.json").read_text())["accuracy"] == reports["model"]["accuracy"]
