"""Smoke tests of scripts/bench_snntorch.py: options, the missing-peers error and the table;
with the peers extra installed (``-m slow``), that the snnTorch network (FC and conv)
computes ours and that a tiny run writes its JSON."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPT = "bench_snntorch"


@pytest.fixture
def thread_env(script: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Restore the thread variables the script sets."""
    for variable in script.THREAD_VARIABLES:
        monkeypatch.setenv(variable, "2")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--threads", "0"], "argument --threads: 0 is out of range (allowed 1 or more)"),
        (["--epochs", "two"], "argument --epochs: 'two' is not an integer"),
        (["--lr", "-1"], "argument --lr: -1.0 is out of range (allowed a finite number > 0)"),
        (["--dataset", "cifar10"], "argument --dataset: invalid choice: 'cifar10'"),
    ],
)
def test_bad_option_exits_2(
    script: ModuleType, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as stop:
        script.main(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_peers_is_one_line(
    script: ModuleType,
    thread_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "snntorch", None)
    assert script.main(["--threads", "1"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("bench_snntorch: ")
    assert out.err.endswith("; install the peers extra: pip install -e .[peers]\n")
    assert out.err.count("\n") == 1


def test_format_table(script: ModuleType) -> None:
    peer = script.Throughput("snnTorch 1.0.0", [])
    ours = script.Throughput("spikeforge", [])
    for peer_seconds, our_seconds in ((2.0, 0.5), (2.5, 0.5)):
        peer.add(1000, peer_seconds, 0.06, 0.8)
        ours.add(1000, our_seconds, 0.05, 0.9)
    record = {
        "config": {"dataset": "digits", "arch": "128FC-100FC", "timesteps": 8, "batch": 50,
                   "threads": 1, "epochs": 5, "repeats": 2},
        "environment": {"torch": "2.13.0", "numpy": "2.0", "cpus": 2,
                        "loadavg_before": [0.5, 0, 0], "loadavg_after": [1.25, 0, 0]},
        "results": [{"name": r.name, "samples_per_s": r.samples_per_s, "last_loss": r.last_loss,
                     "last_accuracy": r.last_accuracy, "mean": r.mean, "stdev": r.stdev}
                    for r in (peer, ours)],
        "ratio": {"mean_of_means": ours.mean / peer.mean, "min": 4.0, "max": 5.0},
    }
    assert peer.mean == 450.0 and math.isclose(peer.stdev, math.sqrt(5000))
    lines = script.format_table(record).splitlines()
    assert "load 0.50 -> 1.25" in lines[0]
    assert lines[2].split() == ["snnTorch", "1.0.0", "450", "71", "400", "500", "0.0600", "0.800"]
    assert lines[3].split() == ["spikeforge", "2000", "0", "2000", "2000", "0.0500", "0.900"]
    assert lines[4] == "ratio spikeforge / snnTorch: 4.44x (per repeat 4.00x .. 5.00x)"


@pytest.mark.slow  # needs the peers extra, which CI does not install
@pytest.mark.parametrize("arch", ["32FC-20FC", "4C3-AP2-6C3-AP2-20FC"])
def test_snntorch_network_matches_ours(script: ModuleType, arch: str) -> None:
    """Same weights and thresholds -> same decoded outputs (thresholds moved off the
    ties that snnTorch's strict ``V > Vth`` resolves differently from ``V >= Vth``); the
    conv network on the 1x8x8 images, with per-channel thresholds."""
    pytest.importorskip("snntorch")
    torch, snntorch, surrogate = script._import_peers()
    from model.data import load_dataset
    from model.spec import NetworkSpec, parse_arch
    from model.stbp import Network

    data = load_dataset("digits", flatten=parse_arch(arch)[0].kind == "fc")
    spec = NetworkSpec.parse(arch, input_shape=data.input_shape, timesteps=6, population=2)
    net = Network(spec, seed=3, dtype=np.float32)
    net.calibrate(data.train_x[:100])  # the output layer spikes (the FC init alone: 0.05 %)
    for vth in net.thresholds:
        vth += np.float32(1e-3)
    peer = script.SnnTorchTrainer(net, 0.5, torch, snntorch, surrogate)
    x = data.train_x[:100]
    with torch.no_grad():
        theirs = peer.decoded(torch.from_numpy(x)).numpy()
    ours = net.forward(x).output
    assert 0.05 < ours.mean() < 0.95
    np.testing.assert_array_equal(theirs, ours)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["16FC-100FC", "4C3-AP2-100FC"])
def test_run_writes_json(
    script: ModuleType, thread_env: None, tmp_path: Path, capsys: pytest.CaptureFixture, arch: str
) -> None:
    pytest.importorskip("snntorch")
    out = tmp_path / "script.json"
    argv = ["--epochs", "1", "--warmup", "0", "--repeats", "2", "--timesteps", "2",
            "--arch", arch, "--json", str(out)]
    assert script.main(argv) == 0
    record = json.loads(out.read_text())
    assert record["config"]["arch"] == arch and record["config"]["threads"] == 1
    assert [len(r["samples_per_s"]) for r in record["results"]] == [2, 2]
    assert all(r["mean"] > 0 and math.isfinite(r["last_loss"]) for r in record["results"])
    assert len(record["ratio"]["per_repeat"]) == 2
    assert "ratio spikeforge / snnTorch" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("128FC-90FC", "population: the last layer has 90 neurons, which is not classes (10)"),
        ("100FC-8C3", "arch: layer 2 (8C3) needs an image input"),
    ],
)
def test_unusable_arch_is_one_line(
    script: ModuleType, thread_env: None, capsys: pytest.CaptureFixture, arch: str, message: str
) -> None:
    pytest.importorskip("snntorch")
    assert script.main(["--arch", arch]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bench_snntorch: {message}") and err.count("\n") == 1
