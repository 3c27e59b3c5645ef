"""``spikeforge train`` / ``spikeforge eval``: a short run, the result JSON, and user errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_runner import run

from sim.cli import main

SMALL = ["--arch", "40FC-50FC", "--population", "5", "--timesteps", "8", "--epochs", "3",
         "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    code = main(["train", "--dataset", "digits", *SMALL, "--seed", "1", "--out",
                 str(folder / "ckpt"), "--json", str(folder / "copy.json")])
    assert code == 0
    return folder


def test_train_writes_checkpoint_and_result(trained):
    result = json.loads((trained / "ckpt" / "result.json").read_text())
    assert json.loads((trained / "copy.json").read_text()) == result
    for key in ("accuracy", "spikes_per_inference", "synaptic_ops_per_inference",
                "activation_sparsity"):
        assert isinstance(result[key], float)
    assert 0.5 < result["accuracy"] <= 1.0
    assert len(result["spikes_per_layer"]) == 3
    assert sum(result["spikes_per_layer"]) == pytest.approx(result["spikes_per_inference"])
    config = result["config"]
    assert config["arch"] == "40FC-50FC" and config["dataset"] == "digits"
    assert config["epochs"] == 3 and config["batch"] == 50 and config["seed"] == 1
    assert config["reset"] == "subtract" and config["decoder"] == "last"
    assert (trained / "ckpt" / "weights.npz").is_file()


def test_train_default_lr_follows_timesteps(tmp_path, capsys):
    """Above T = 8 the recipe's learning rate is scaled by 8 / T; the config records it."""
    small = ["--arch", "10FC-10FC", "--population", "1", "--epochs", "1", "--no-progress"]
    for timesteps, extra, lr in ((16, [], 0.25), (4, [], 0.5), (16, ["--lr", "0.3"], 0.3)):
        out = tmp_path / f"T{timesteps}-{len(extra)}"
        assert main(["train", "--dataset", "digits", *small, "--timesteps", str(timesteps),
                     *extra, "--out", str(out)]) == 0
        config = json.loads((out / "result.json").read_text())["config"]
        assert config["timesteps"] == timesteps and config["lr"] == lr
    capsys.readouterr()


def test_eval_reproduces_train_metrics(trained, capsys):
    code, out, err = run(["eval", "--checkpoint", str(trained / "ckpt"), "--json",
                          str(trained / "eval.json")], capsys)
    assert code == 0 and err == ""
    assert "accuracy" in out
    evaluated = json.loads((trained / "eval.json").read_text())
    trained_result = json.loads((trained / "ckpt" / "result.json").read_text())
    for key in ("accuracy", "spikes_per_layer", "synaptic_ops_per_inference"):
        assert evaluated[key] == trained_result[key]
    assert evaluated["config"]["kind"] == "float"


def test_train_prints_summary(tmp_path, capsys):
    code, out, err = run(["train", *SMALL[:-3], "--epochs", "1", "--no-progress", "--out",
                          str(tmp_path / "run"), "--json", str(tmp_path / "new" / "r.json")],
                         capsys)
    assert code == 0
    assert out.startswith("digits 40FC-50FC T=8: accuracy ") and "spikes/inference" in out
    assert (tmp_path / "run" / "result.json").is_file()
    assert (tmp_path / "new" / "r.json").is_file()


def _corrupt_weights(folder):
    (folder / "weights.npz").write_bytes(b"garbage")


def _unknown_kind(folder):
    meta = json.loads((folder / "checkpoint.json").read_text())
    meta["kind"] = "analog"
    (folder / "checkpoint.json").write_text(json.dumps(meta))


def _wrong_shape(folder):
    with np.load(folder / "weights.npz") as archive:
        arrays = dict(archive)
    arrays["weight_1"] = arrays["weight_1"][:, :10]
    np.savez(folder / "weights.npz", **arrays)


def _bad_spec(folder):
    meta = json.loads((folder / "checkpoint.json").read_text())
    meta["spec"]["reset"] = "sideways"
    (folder / "checkpoint.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_corrupt_weights, "not a readable npz archive"),
        (_unknown_kind, "kind 'analog' is not supported yet"),
        (_wrong_shape, "array weight_1"),
        (_bad_spec, "checkpoint spec: reset"),
    ],
)
def test_eval_bad_checkpoint_is_one_line_exit_2(trained, tmp_path, capsys, damage, message):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(trained / "ckpt", folder)
    damage(folder)
    code, out, err = run(["eval", "--checkpoint", str(folder)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("spikeforge eval: error: ")
    assert message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--arch", "12XY-10FC"], "arch: bad layer '12XY'"),
        (["train", "--arch", "10FC-AP2-100FC"], "arch: layer 2 (AP2) needs an image input"),
        (["train", "--dataset", "imagenet"], "invalid choice: 'imagenet'"),
        (["train", "--timesteps", "0"], "timesteps: 0 is out of range"),
        (["train", "--population", "3"], "population: the last layer has 100 neurons"),
        (["train", "--epochs", "0"], "epochs: 0 is out of range"),
        (["train", "--lr", "-1"], "lr: -1.0 is out of range"),
        (["train", "--batch", "0"], "batch: 0 is out of range"),
        (["train", "--momentum", "1.5"], "momentum: 1.5 is out of range"),
        (["train", "--reset", "zero"], "threshold: 'trainable' needs reset 'subtract'"),
        (["train", "--timesteps", "eight"], "invalid int value: 'eight'"),
        (["train", "--json", "/"], "--json: '/' is a folder"),
        (["train", "--dataset", "mnist10k", "--data-root", "/nonexistent/mnist"],
         "mnist10k: data folder '/nonexistent/mnist' does not exist"),
        (["eval", "--checkpoint", "/nonexistent/ckpt"],
         "folder '/nonexistent/ckpt' does not exist"),
    ],
)
def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, argv, message):
    if argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path / "out"), "--no-progress"]
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(f"spikeforge {argv[0]}: error: ")
    assert message in err


def test_train_rejects_out_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    code, _, err = run(["train", "--out", str(target)], capsys)
    assert code == 2 and "--out" in err and err.count("\n") == 1


def test_eval_missing_checkpoint_json(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(["eval", "--checkpoint", str(tmp_path / "empty")], capsys)
    assert code == 2 and "checkpoint.json" in err and "does not exist" in err
