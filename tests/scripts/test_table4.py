"""Smoke tests of scripts/table4.py: a tiny digits run (1 STBP epoch, one seed, T = 4 and
64) writes the section and table4.json, reuses its runs, and bad options exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = "table4"


def test_tiny_run_writes_the_table_and_reuses_its_runs(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    results = tmp_path / "results.md"
    argv = ["--datasets", "digits", "--seeds", "1", "--epochs", "1", "--timesteps", "4,64",
            "--out", str(tmp_path / "runs"), "--write", str(results), "--no-progress"]
    assert script.main(argv) == 0
    text = results.read_text()
    assert text.startswith("# Results\n\n" + script.HEADING)
    for needle in ("| enhanced STBP (last-spike decoder) | 8 |", "| conversion | 4 |", "| conversion | 64 |"):
        assert needle in text
    data = json.loads((tmp_path / "table4.json").read_text())["digits"]
    assert [row["timesteps"] for row in data["conversion"]] == [4, 64]
    assert [row["row"] for row in data["stbp"]] == list(script.STBP_ROWS)
    # more time steps, more spikes; the ANN reaches digits accuracy
    assert data["conversion"][1]["spikes_per_inference"] > 4 * data["conversion"][0]["spikes_per_inference"]
    assert data["conversion"][0]["ann_accuracy"] > 0.9
    match = data["equal_accuracy_timesteps"]
    assert match in (None, 4, 64)
    folders = sorted((tmp_path / "runs" / "digits").iterdir())
    assert [folder.name for folder in folders] == [
        "convert_s0", "enhanced_T8_s0", "subtract_trainable_scaled_fc_T8_s0"]
    stamps = {folder: (folder / "result.json").stat().st_mtime_ns for folder in folders}
    capsys.readouterr()
    assert script.main(argv) == 0  # every run reused
    assert {folder: (folder / "result.json").stat().st_mtime_ns for folder in folders} == stamps


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--datasets", "cifar10"], "argument --datasets: 'cifar10' is not one of digits, mnist10k"),
        (["--seeds", "0"], "argument --seeds: 0 is out of range (allowed 1 or more)"),
        (["--timesteps", "8,x"], "argument --timesteps: 'x' is not an integer"),
    ],
)
def test_bad_option_exits_2_with_one_line(
    script: ModuleType, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as stop:
        script.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_failing_convert_is_one_line(script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = script.Conversion("mnist10k", 0, (8,))
    with pytest.raises(script.UsageError, match="spikeforge convert failed for .*mnist10k"):
        script.convert(run, tmp_path, str(tmp_path / "no-such-folder"))
