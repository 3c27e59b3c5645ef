"""scripts/bench_hls.py: the results table (the measurement itself is a long run)."""

from __future__ import annotations

from types import ModuleType

SCRIPT = "bench_hls"


def test_table(script: ModuleType) -> None:
    row = {"dataset": "digits", "samples": 2874, "model_learn": 400.0, "csim_learn": 9000.0, "identical": True,
           "images": 360, "model_infer": 80000.0, "csim_infer": 40000.0}
    text = script.table([row], "python3 scripts/bench_hls.py")
    assert text.startswith(script.HEADING + "\n")
    assert "| digits | 2,874 | 400 | 9,000 | 22.5 | yes | 360 | 80,000 | 40,000 | 0.50 |" in text
