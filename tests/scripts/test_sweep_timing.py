"""scripts/sweep_timing.py: the printed example timed as a sweep on Ray and as core_fpga.py's
sequential loop, with the cycles of both compared (slow: two Ray start-ups and a learn)."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from sim.sweep import EXAMPLE

SCRIPT = "sweep_timing"


@pytest.mark.slow
def test_example_timed_both_ways_with_equal_cycles(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[sweep]")')
    spec = tmp_path / "example.toml"
    spec.write_text(EXAMPLE)
    assert script.main([str(spec), "--out", str(tmp_path / "timing"), "--workers", "2"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.match(r"2 points \(estimate; networks learned beforehand in \d+ s\): `spikeforge sweep` \d+ s", line)
    assert "cycles equal at every point" in line
    assert len(list((tmp_path / "timing" / "sequential").iterdir())) == 2
