"""scripts/fc_decoder.py on a tiny budget: the runs, the section, the plot and the JSON."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = "fc_decoder"


def test_fc_decoder_runs_reuses_and_writes(script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["--timesteps", "2", "--seeds", "1", "--epochs", "1", "--out", str(tmp_path / "runs"),
            "--write", str(tmp_path / "results.md"), "--plot", str(tmp_path / "fig3.png"),
            "--json", str(tmp_path / "fc.json"), "--no-progress"]
    assert script.main(argv) == 0
    text = (tmp_path / "results.md").read_text()
    assert script.HEADING in text and "| integer | fc | 2 |" in text and "| float | fc | 2 |" in text
    assert "- T = 2: fc" in text and "integer, T = 2:" in text and "float, T = 2:" in text
    assert (tmp_path / "fig3.png").stat().st_size > 1000
    data = json.loads((tmp_path / "fc.json").read_text())
    assert [(row["trainer"], row["decoder"]) for row in data["rows"]] == [
        ("integer", "last"), ("integer", "fc"), ("float", "fc")
    ]
    integer_fc = data["rows"][1]
    assert all(row["cycles_per_learning_step"][0] > row["cycles_per_inference"][0] > 0 for row in data["rows"][:2])
    assert "cycles_per_inference" not in data["rows"][2]  # float rows: no core estimate
    assert integer_fc["decoder_memory_bits"] == 10 * 2 * 100 * 8  # C T n_L w
    assert [len(curve["mean_abs_weight"]) for curve in data["curves"]] == [2, 2]
    assert all(value > 0 for curve in data["curves"] for value in curve["mean_abs_weight"])
    # A second call reuses the finished runs (no run folder is rewritten).
    reports = sorted((tmp_path / "runs").glob("*/report.json"))
    stamps = [path.stat().st_mtime_ns for path in reports]
    capsys.readouterr()
    assert script.main(argv) == 0
    assert [path.stat().st_mtime_ns for path in reports] == stamps
