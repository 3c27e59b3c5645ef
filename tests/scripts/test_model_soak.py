"""A fast subset of scripts/model_soak.py, and proof that each of its comparisons fails when
one path is corrupted (a planted mismatch must be reported, with the network to replay)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from model.core import CoreModel
from model.fixed import ROUNDINGS
from model.integer import IntegerNetwork
from sim.hls_engine import CACHE_ENV, CsimNetwork

SCRIPT = "model_soak"
SEED = 5

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


@pytest.fixture(autouse=True)
def _engine_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "model-soak-engines"))


def test_random_networks_agree(script: ModuleType) -> None:
    summary = script.soak(seed=SEED, networks=25, samples=4, progress=False)
    assert (summary["failed_checks"], summary["failures"]) == (0, [])
    assert summary["networks"] == 25 and summary["checks"] > 25 * 200
    coverage = summary["coverage"]
    assert coverage["learnable"] >= 10 and coverage["zero pixels"] and coverage["max pixels"]
    assert coverage["saturation changes inference"] and coverage["saturation changes learning"]


@needs_gxx
def test_random_networks_agree_with_the_csim_engine(script: ModuleType) -> None:
    summary = script.soak(seed=SEED, networks=3, samples=3, hls=True, progress=False)
    assert (summary["failed_checks"], summary["failures"]) == (0, [])
    assert summary["checks"] > script.soak(seed=SEED, networks=3, samples=3, progress=False)["checks"]


def test_draws_cover_every_switch(script: ModuleType) -> None:
    cases = [script.draw(0, index, 4) for index in range(300)]
    for field, values in (("decoder", {"last", "rate", "fc"}), ("reset", {"subtract", "zero"}),
                          ("threshold", {"trainable", "fixed"}), ("surrogate", {"scaled", "rect"})):
        assert {getattr(case.net.spec, field) for case in cases} == values
    assert {case.net.rule.rounding for case in cases} == set(ROUNDINGS)
    assert {case.net.rule.batch for case in cases} == {1, 2, 3}
    assert {case.lanes for case in cases} == set(script.LANES)
    assert {case.queue_depth for case in cases} == set(script.QUEUE_DEPTHS)
    assert min(case.net.formats.w for case in cases) == 2
    assert any(case.net.formats.v == case.net.formats.w for case in cases)
    assert any((case.pixels.sum(axis=1) == 0).any() for case in cases)
    assert any((case.pixels == 255).all(axis=1).any() for case in cases)


def test_a_network_is_drawn_from_its_seed_and_index_alone(script: ModuleType) -> None:
    first = script.draw(SEED, 7, 4)
    script.draw(SEED, 6, 4)
    again = script.draw(SEED, 7, 4)
    assert first.describe() == again.describe()
    assert all(np.array_equal(a, b) for a, b in zip(first.net.weights, again.net.weights))
    assert np.array_equal(first.pixels, again.pixels)
    assert first.describe() != script.draw(SEED + 1, 7, 4).describe()


# Planted mismatches ----------------------------------------------------------------------


def _flip_after(cls: type, name: str, corrupt: Callable) -> Callable:
    """``cls.name`` followed by ``corrupt(self, result)``; returns what the original returned."""
    original = getattr(cls, name)

    def patched(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        corrupt(self, result)
        return result

    return patched


def _flip_output_spike(_, trace) -> None:
    trace.spikes[-1][0, 0, 0] ^= True


def _flip_membrane(_, trace) -> None:
    trace.last_membrane[0, 0] ^= 1


def _flip_weight(self, _) -> None:
    self.weights[0][0, 0] ^= 1


def _step_lfsr(self, _) -> None:
    self.lfsr.step()


PLANTS = {
    # (class, method, corruption, text of the expected mismatch, networks that must fail)
    "reference forward": (IntegerNetwork, "_forward_reference", _flip_output_spike, "reference vs fast spikes", "all"),
    "fast forward": (IntegerNetwork, "_forward_fast", _flip_membrane, "last membrane", "all"),
    "fast update": (IntegerNetwork, "_update_fast", _flip_weight, "weights[0]", "learnable"),
    "reference update LFSR": (IntegerNetwork, "_update_reference", _step_lfsr, "reference vs fast LFSR state", "learnable"),
    "core update": (CoreModel, "_update", _flip_weight, "core vs fast weights[0]", "learnable"),
}


@pytest.mark.parametrize("plant", PLANTS)
def test_a_planted_mismatch_is_reported(script: ModuleType, monkeypatch: pytest.MonkeyPatch, plant: str) -> None:
    cls, name, corrupt, text, failing = PLANTS[plant]
    monkeypatch.setattr(cls, name, _flip_after(cls, name, corrupt))
    summary = script.soak(seed=SEED, networks=6, samples=3, progress=False)
    learnable = [i for i in range(6) if script.learnable(script.draw(SEED, i, 3).net.spec)]
    assert 0 < len(learnable) < 6  # both kinds among the networks
    expected = list(range(6)) if failing == "all" else learnable
    assert [failure["index"] for failure in summary["failures"]] == expected
    for failure in summary["failures"]:
        assert any(text in line for line in failure["mismatches"]), failure["mismatches"]
        assert failure["replay"] == f"--seed {SEED} --samples 3 --only {failure['index']}"


def test_a_core_integration_error_is_reported(script: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """One more in the core's membrane after every integration (even without events)."""
    original = CoreModel._integrate

    def patched(self, target, v, *args):
        original(self, target, v, *args)
        v[target][0] += 1

    monkeypatch.setattr(CoreModel, "_integrate", patched)
    summary = script.soak(seed=SEED, networks=4, samples=2, progress=False)
    assert [failure["index"] for failure in summary["failures"]] == [0, 1, 2, 3]
    assert all(any("inference core sample" in line for line in f["mismatches"]) for f in summary["failures"])


def test_a_wrong_counter_is_reported(script: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    original = CoreModel._dw_pass

    def patched(self, index, t, dv, result, c, *args):
        c.dw_rows += int(t == 1)
        return original(self, index, t, dv, result, c, *args)

    monkeypatch.setattr(CoreModel, "_dw_pass", patched)
    summary = script.soak(seed=SEED, networks=6, samples=2, progress=False)
    assert summary["failures"] and summary["failed_checks"] >= 2
    assert all("backward counter dw_rows" in line for f in summary["failures"] for line in f["mismatches"])


@needs_gxx
def test_a_planted_csim_mismatch_is_reported(script: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CsimNetwork, "network", _flip_after(CsimNetwork, "network", lambda _, net: _flip_weight(net, None)))
    index = next(i for i in range(20) if script.learnable(script.draw(SEED, i, 2).net.spec))
    summary = script.soak(seed=SEED, only=[index], samples=2, hls=True, progress=False)
    (failure,) = summary["failures"]
    assert failure["index"] == index and failure["replay"].endswith(f"--only {index} --hls")
    assert {line.split(" weights")[0] for line in failure["mismatches"]} == {"csim learned vs fast", "csim flushed vs fast"}


# The command line -----------------------------------------------------------------------


def test_main_writes_the_summary_and_replays_one_network(script: ModuleType, tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "soak.json"
    assert script.main(["--seed", str(SEED), "--networks", "3", "--samples", "2", "--json", str(path), "--no-progress"]) == 0
    summary = json.loads(path.read_text())
    assert (summary["networks"], summary["failures"], summary["seed"]) == (3, [], SEED)
    assert "3 networks" in capsys.readouterr().out
    monkeypatch.setattr(IntegerNetwork, "_forward_reference", _flip_after(IntegerNetwork, "_forward_reference", _flip_output_spike))
    argv = ["--seed", str(SEED), "--samples", "2", "--only", "4", "1", "--json", str(path), "--no-progress"]
    assert script.main(argv) == 1
    summary = json.loads(path.read_text())
    assert summary["indices"] == [4, 1] and [f["index"] for f in summary["failures"]] == [4, 1]
    out = capsys.readouterr().out
    assert "FAIL network 4 (--seed 5 --samples 2 --only 4)" in out and "failed in networks [4, 1]" in out


@pytest.mark.parametrize("argv, message", [
    (["--networks", "0"], "argument --networks: 0 is out of range (allowed 1 or more)"),
    (["--samples", "x"], "argument --samples: 'x' is not an integer"),
    (["--only", "-1"], "argument --only: -1 is out of range (allowed 0 or more)"),
])
def test_bad_arguments_exit_2_with_one_line(script: ModuleType, capsys, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_request:
        script.main(argv)
    assert exit_request.value.code == 2
    assert capsys.readouterr().err == f"model_soak.py: error: {message}\n"


def test_an_unwritable_summary_exits_2_with_one_line(script: ModuleType, tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("")
    argv = ["--networks", "1", "--samples", "1", "--json", str(tmp_path / "file" / "soak.json"), "--no-progress"]
    assert script.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("model_soak.py: error: cannot write ") and err.count("\n") == 1


def test_hls_without_a_compiler_exits_2_with_one_line(script: ModuleType, monkeypatch, capsys) -> None:
    from sim import hls_csim
    from sim.toolchain import ToolchainError

    def missing(cxx: str) -> str:
        raise ToolchainError(f"{cxx} not found on PATH\nsecond line")

    monkeypatch.setattr(hls_csim, "find_compiler", missing)
    assert script.main(["--networks", "1", "--hls", "--no-progress"]) == 2
    assert capsys.readouterr().err == "model_soak.py: error: --hls: g++ not found on PATH\n"
