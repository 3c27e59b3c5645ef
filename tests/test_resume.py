"""Interrupted runs resume bit-exactly: atomic checkpoint writes, ``learn``/``train --resume``.

The CLI tests start ``python -m sim.cli`` as a child, SIGKILL it at seeded random moments
(after the learner state has been rewritten a random number of times, plus a random
delay, so kills land inside and between writes), resume it until it finishes and compare
the final checkpoint and report with an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from model import checkpoint
from model.data import load_dataset, to_u8
from model.integer import (
    IntegerNetwork,
    LearningRule,
    ShiftSchedule,
    fit,
    load_learner,
    save_learner,
)
from model.spec import NetworkSpec
from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
LEARN = [
    "learn", "--dataset", "digits", "--init", "scratch", "--arch", "16FC-10FC", "--population", "1",
    "--timesteps", "4", "--batch", "16", "--epochs", "3", "--schedule", "12,13", "--seed", "4",
    "--checkpoint-every", "300", "--no-progress",
]
TRAIN = [
    "train", "--dataset", "digits", "--arch", "16FC-10FC", "--population", "1", "--timesteps", "4",
    "--epochs", "8", "--seed", "5", "--no-progress",
]
#: Report fields that measure time (or name the output folder): not compared.
TIMING = {"seconds", "samples_per_second", "learn_samples_per_second", "checkpoint"}


# Atomic writes -------------------------------------------------------------------------


def _write(folder: Path, value: int) -> None:
    arrays = {"weight_1": np.full((3, 4), value), "threshold_0": np.full(4, value)}
    checkpoint.write_checkpoint(folder, {"kind": "test", "value": value}, arrays,
                                state={"dw_1": np.full((3, 4), -value)})


def _read(folder: Path) -> int:
    """The value of the complete checkpoint in ``folder`` (every file agreeing)."""
    value = checkpoint.read_checkpoint_json(folder)["value"]
    arrays = checkpoint.read_arrays(folder)
    state = checkpoint.read_arrays(folder, name=checkpoint.STATE_NPZ)
    assert sorted(arrays) == ["threshold_0", "weight_1"] and list(state) == ["dw_1"]
    assert (arrays["weight_1"] == value).all() and (arrays["threshold_0"] == value).all()
    assert (state["dw_1"] == -value).all()
    return value


class _Killed(BaseException):
    pass


class _HalfWritten:
    """A file whose ``stop``-th write stores half its bytes and is then killed."""

    def __init__(self, handle, calls):
        self._handle, self._calls = handle, calls

    def write(self, data):
        self._calls["n"] += 1
        if self._calls["n"] == self._calls["stop"]:
            self._handle.write(bytes(data)[: len(data) // 2])
            self._handle.flush()
            raise _Killed
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


@pytest.mark.parametrize("target", ["replace", "fsync", "write"])
def test_write_interrupted_at_every_step_leaves_old_or_new(tmp_path, monkeypatch, target):
    """A write killed at any of its file operations (before a rename, an fsync, or halfway
    through a file's bytes) leaves the old or the new checkpoint, and the next write
    finishes or removes what it left."""
    folder = tmp_path / "ck"
    _write(folder, 1)
    calls = {"n": 0, "stop": 0}
    if target == "write":
        monkeypatch.setattr(checkpoint, "open", lambda *a: _HalfWritten(open(*a), calls), raising=False)  # noqa: SIM115
    else:
        real = getattr(os, target)

        def stopping(*args):
            calls["n"] += 1
            if calls["n"] == calls["stop"]:
                raise _Killed
            return real(*args)

        monkeypatch.setattr(os, target, stopping)
    _write(folder, 2)  # count the operations of one write
    total, outcomes = calls["n"], set()
    assert total >= 2
    for stop in range(1, total + 1):
        old, new = _read(folder), 10 + stop
        calls["n"], calls["stop"] = 0, stop
        with pytest.raises(_Killed):
            _write(folder, new)
        calls["stop"] = 0
        value = _read(folder)
        assert value in (old, new)
        outcomes.add(value == new)
        _write(folder, new + 100)
        assert _read(folder) == new + 100
        assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.json", "state.npz", "weights.npz"]
    if target == "replace":
        assert outcomes == {False, True}  # killed before and after the commit


def test_killed_writer_child_leaves_a_complete_checkpoint(tmp_path):
    """SIGKILL a child that rewrites a checkpoint in a loop: a complete one is always left."""
    folder = tmp_path / "ck"
    _write(folder, 0)
    code = (  # _write, importing only numpy and model.checkpoint
        "import sys, numpy as np\n"
        "from model.checkpoint import write_checkpoint\n"
        "for v in range(1, 10**6):\n"
        "    arrays = {'weight_1': np.full((3, 4), v), 'threshold_0': np.full(4, v)}\n"
        "    write_checkpoint(sys.argv[1], {'kind': 'test', 'value': v}, arrays,\n"
        "                     state={'dw_1': np.full((3, 4), -v)})\n"
        "    if v == 1:\n"
        "        print('ready', flush=True)\n"
    )
    rng = random.Random(19)
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=ROOT,
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        assert _read(folder) >= 1  # complete, and written by the child


def test_torn_pair_is_refused_with_a_clear_error(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    _write(first, 1)
    _write(second, 2)
    shutil.copy(first / "weights.npz", second / "weights.npz")
    with pytest.raises(ValueError, match="torn checkpoint"):
        checkpoint.read_arrays(second)
    # An archive written by hand carries no token and is read as before.
    np.savez(second / "weights.npz", weight_1=np.zeros((3, 4)), threshold_0=np.zeros(4))
    assert sorted(checkpoint.read_arrays(second)) == ["threshold_0", "weight_1"]


def test_writes_touch_only_their_own_files(tmp_path):
    """Other files survive a write; a token that is not 64 hex digits names no file."""
    folder = tmp_path / "ck"
    _write(folder, 1)
    (folder / "weights.backup.npz").write_bytes(b"mine")
    meta = json.loads((folder / "checkpoint.json").read_text())
    (tmp_path / "outside.npz").write_bytes(b"outside")
    meta[checkpoint.TOKEN_FIELD] = "/../../outside" + "0" * 50
    (folder / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="torn checkpoint"):  # the archive's token differs
        checkpoint.read_arrays(folder)
    _write(folder, 2)
    assert (folder / "weights.backup.npz").read_bytes() == b"mine"
    assert (tmp_path / "outside.npz").read_bytes() == b"outside" and _read(folder) == 2


def test_pending_archive_of_a_committed_write_is_read(tmp_path, monkeypatch):
    """Killed after the JSON commit, before the final rename: readers see the new arrays."""
    folder = tmp_path / "ck"
    _write(folder, 1)
    real, renames = os.replace, []

    def stop_after_commit(source, target):
        if renames and renames[-1] == checkpoint.CHECKPOINT_JSON:
            raise _Killed
        real(source, target)
        renames.append(Path(target).name)

    monkeypatch.setattr(os, "replace", stop_after_commit)
    with pytest.raises(_Killed):
        _write(folder, 2)
    monkeypatch.setattr(os, "replace", real)
    assert any(".npz" in p.name and p.name.count(".") == 2 for p in folder.iterdir())
    assert _read(folder) == 2


# fit: continuing from a saved state --------------------------------------------------


class _Stop(Exception):
    pass


@pytest.mark.parametrize("seed", [0, 1])
def test_fit_continues_bit_exactly_from_any_saved_state(tmp_path, seed):
    """Stop fit at a seeded random save (mid-batch, augmented), reload, finish: identical."""
    dataset = load_dataset("digits")
    pixels, labels = to_u8(dataset.train_x)[:240], dataset.train_y[:240]
    spec = NetworkSpec.parse("12FC-10FC", input_shape=dataset.input_shape, timesteps=4, population=1)
    options = {
        "epochs": 3, "schedule": ShiftSchedule((12, 13), (0.5,)), "seed": seed, "progress": False,
        "augmentation": {"flip": False, "shift": 1, "rotate_deg": 0.0}, "image_shape": (1, 8, 8),
        "checkpoint_every": 70,
    }

    def scratch() -> IntegerNetwork:
        return IntegerNetwork.scratch(spec, seed=seed, rule=LearningRule(batch=6))

    reference = scratch()
    expected = fit(reference, pixels, labels, **options)
    stop_at = random.Random(seed).randrange(2, 12)
    saves = []
    net = scratch()

    def save(state):
        save_learner(tmp_path / "state", net, state)
        saves.append(state.sample)
        if len(saves) == stop_at:
            raise _Stop

    with pytest.raises(_Stop):
        fit(net, pixels, labels, **options, on_checkpoint=save)
    net, state, _ = load_learner(tmp_path / "state")
    assert (state.epoch, state.sample) != (0, 0)
    history = fit(net, pixels, labels, **options, state=state)
    for mine, theirs in zip(net.weights + net.thresholds, reference.weights + reference.thresholds):
        np.testing.assert_array_equal(mine, theirs)
    assert net.lfsr.state == reference.lfsr.state and net.pending == reference.pending == 0
    assert history.train_accuracy == expected.train_accuracy and history.shifts == expected.shifts


# CLI: kill and resume ----------------------------------------------------------------


def _run_killed(
    args: list[str], out: Path, kills: int, seed: int, delay: float, timeout: float = 300
) -> list[str]:
    """Run ``spikeforge ARGS --out OUT`` as a child, SIGKILL it ``kills`` times at seeded
    random moments (after 1-3 rewrites of the state file plus up to ``delay`` seconds),
    resuming each time, then let the last resumption finish.

    Returns the positions the resumed children report ("epoch E[, sample S]").
    """
    rng = random.Random(seed)
    state = out / checkpoint.STATE_FOLDER / checkpoint.CHECKPOINT_JSON
    resumed: list[str] = []
    for attempt in range(kills + 1):
        command = [sys.executable, "-m", "sim.cli", *args, "--out", str(out)]
        if state.exists():
            command.append("--resume")
        child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
        if attempt < kills:
            last = state.stat().st_mtime_ns if state.exists() else None
            changes, deadline = rng.randint(1, 3), time.monotonic() + timeout
            while changes and child.poll() is None and time.monotonic() < deadline:
                now = state.stat().st_mtime_ns if state.exists() else None
                if now != last:
                    changes, last = changes - 1, now
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, delay))
            child.send_signal(signal.SIGKILL)
        _, err = child.communicate(timeout=timeout)
        resumed += re.findall(r"resuming at (epoch \d+(?:, sample \d+)?)", err)
        if child.returncode != -signal.SIGKILL:
            assert child.returncode == 0, err
            break  # finished (before its kill, if any was due)
    assert child.returncode == 0
    return resumed


def _compare_runs(expected: Path, actual: Path) -> None:
    """The final checkpoints are identical array by array and field by field."""
    meta = (json.loads((folder / checkpoint.CHECKPOINT_JSON).read_text()) for folder in (expected, actual))
    assert _without_timing(next(meta)) == _without_timing(next(meta))
    mine, theirs = checkpoint.read_arrays(actual), checkpoint.read_arrays(expected)
    assert sorted(mine) == sorted(theirs)
    for key in theirs:
        assert mine[key].dtype == theirs[key].dtype
        np.testing.assert_array_equal(mine[key], theirs[key], err_msg=key)


def _without_timing(value):
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING}
    return value


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """An uninterrupted learn run (in-process) and its report."""
    folder = tmp_path_factory.mktemp("learn")
    assert main([*LEARN, "--out", str(folder / "ref"), "--json", str(folder / "ref.json")]) == 0
    return folder


def test_learn_killed_and_resumed_is_bit_identical(learned, tmp_path):
    out = tmp_path / "run"
    resumed = _run_killed([*LEARN, "--json", str(tmp_path / "run.json")], out, kills=2, seed=7, delay=0.2)
    assert resumed, "the run finished before it was killed"
    _compare_runs(learned / "ref", out)
    expected = json.loads((learned / "ref.json").read_text())
    assert _without_timing(json.loads((tmp_path / "run.json").read_text())) == _without_timing(expected)
    # A finished run resumed learns nothing and writes the same outputs again.
    before = checkpoint.read_arrays(out)
    assert main([*LEARN, "--out", str(out), "--resume"]) == 0
    after = checkpoint.read_arrays(out)
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_learn_killed_many_times_is_bit_identical(learned, tmp_path, seed):
    resumed = _run_killed(LEARN, tmp_path / "run", kills=6, seed=100 + seed, delay=0.2)
    assert len(resumed) >= 2, resumed
    _compare_runs(learned / "ref", tmp_path / "run")


def test_learn_resume_refusals(learned, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(learned / "ref", out)
    capsys.readouterr()
    assert main([*LEARN, "--out", str(tmp_path / "empty"), "--resume"]) == 2
    assert "holds no saved run" in capsys.readouterr().err
    changed = list(LEARN)
    changed[LEARN.index("--epochs") + 1] = "5"
    assert main([*changed, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--epochs 3, this command line has 5" in err and len(err.strip().splitlines()) == 1
    assert main([*TRAIN, "--out", str(out), "--resume"]) == 2
    assert "holds no float learner state" in capsys.readouterr().err


@pytest.mark.parametrize(("first", "second"), [("csim", "csim"), ("csim", "model")])
def test_learn_resume_on_the_csim_engine(learned, tmp_path, monkeypatch, first, second):
    """The csim engine's state is read back from the engine: stopped after a save and
    resumed (on either engine), the run ends as the uninterrupted one."""
    if shutil.which("g++") is None:
        pytest.skip("the csim engine needs g++ on PATH")
    from sim.commands import learn

    real, saves = learn.save_learner, []

    def save_then_stop(*args, **kwargs):
        real(*args, **kwargs)
        saves.append(1)
        if len(saves) == 4:
            raise _Killed

    monkeypatch.setattr(learn, "save_learner", save_then_stop)
    with pytest.raises(_Killed):
        main([*LEARN, "--engine", first, "--out", str(tmp_path / "run")])
    monkeypatch.setattr(learn, "save_learner", real)
    assert main([*LEARN, "--engine", second, "--out", str(tmp_path / "run"), "--resume"]) == 0
    _compare_runs(learned / "ref", tmp_path / "run")


@pytest.mark.slow
def test_learn_killed_on_the_csim_engine(learned, tmp_path):
    if shutil.which("g++") is None:
        pytest.skip("the csim engine needs g++ on PATH")
    resumed = _run_killed([*LEARN, "--engine", "csim"], tmp_path / "run", kills=3, seed=3, delay=0.2)
    assert len(resumed) >= 2, resumed
    _compare_runs(learned / "ref", tmp_path / "run")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    assert main([*TRAIN, "--out", str(folder / "ref")]) == 0
    return folder


def test_learn_from_a_float_checkpoint_resumes_with_its_report(trained, tmp_path, monkeypatch):
    """Fine-tuning a float checkpoint, stopped after the 3rd save and resumed, reports the
    float and quantized accuracies of the start and ends as the uninterrupted run."""
    from sim.commands import learn

    args = ["learn", "--dataset", "digits", "--init", str(trained / "ref"), "--batch", "16",
            "--epochs", "2", "--checkpoint-every", "400", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "ref"), "--json", str(tmp_path / "ref.json")]) == 0
    real, saves = learn.save_learner, []

    def save_then_stop(*a, **k):
        real(*a, **k)
        saves.append(1)
        if len(saves) == 3:
            raise _Killed

    monkeypatch.setattr(learn, "save_learner", save_then_stop)
    with pytest.raises(_Killed):
        main([*args, "--out", str(tmp_path / "run")])
    monkeypatch.setattr(learn, "save_learner", real)
    assert main([*args, "--out", str(tmp_path / "run"), "--json", str(tmp_path / "run.json"), "--resume"]) == 0
    _compare_runs(tmp_path / "ref", tmp_path / "run")
    report, expected = (json.loads((tmp_path / name).read_text()) for name in ("run.json", "ref.json"))
    assert "float_accuracy" in report and "quantized_accuracy" in report
    assert _without_timing(report) == _without_timing(expected)


def test_train_killed_and_resumed_is_bit_identical(trained, tmp_path):
    out = tmp_path / "run"
    resumed = _run_killed(TRAIN, out, kills=1, seed=11, delay=0.05)  # more kills: the slow variant
    assert resumed, "the run finished before it was killed"
    _compare_runs(trained / "ref", out)
    result, expected = (json.loads((folder / "result.json").read_text()) for folder in (out, trained / "ref"))
    assert _without_timing(result) == _without_timing(expected)


def test_train_resume_refusals(trained, tmp_path, capsys):
    capsys.readouterr()
    assert main([*TRAIN, "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "holds no saved run" in capsys.readouterr().err
    out = tmp_path / "copy"
    shutil.copytree(trained / "ref", out)
    assert main([*TRAIN, "--lr", "0.3", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--lr (not given), this command line has 0.3" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_train_killed_many_times_is_bit_identical(trained, tmp_path, seed):
    resumed = _run_killed(TRAIN, tmp_path / "run", kills=5, seed=200 + seed, delay=0.05)
    assert len(resumed) >= 2, resumed
    _compare_runs(trained / "ref", tmp_path / "run")
