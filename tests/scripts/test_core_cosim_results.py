"""scripts/core_cosim_results.py: the Markdown section (the co-simulation itself is tested
in tests/cosim/test_core_cosim.py)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType


from model.integer import IntegerNetwork
from model.spec import NetworkSpec

SCRIPT = "core_cosim_results"


def _row(lanes: int, cycles: float) -> dict:
    infer = {"samples": 2, "cycles_per_inference": cycles, "model_cycles_per_inference": cycles,
             "ideal_cycles_per_inference": cycles * 1.02, "mismatches": 0, "sim_cycles_per_second": 61234.5,
             "wall_cycles_per_second": 40000.0}
    learn = {"samples": 1, "cycles_per_learning_step": 3 * cycles, "model_cycles_per_learning_step": 3 * cycles,
             "mismatches": 0}
    return {"lanes": lanes, "infer": infer, "learn": learn, "passed": True}


def test_section_replaced_or_appended(script: ModuleType, tmp_path: Path) -> None:
    spec = NetworkSpec.parse("6FC-4FC", input_shape=(5,), timesteps=2, population=2)
    folder = IntegerNetwork.scratch(spec, seed=1).save(tmp_path / "ck")
    text = script.section([_row(4, 1000.0), _row(8, 520.0)], "python3 scripts/core_cosim_results.py", folder, 16)
    assert text.startswith(script.HEADING)
    rows = [line for line in text.splitlines() if line.startswith("| 4 ") or line.startswith("| 8 ")]
    assert rows[0].split("|")[3].strip() == "1,000.0" and "0.980" in rows[0] and "61,234" in rows[0]
    assert rows[1].split("|")[7].strip() == "1,560.0"
    results = tmp_path / "results.md"
    results.write_text("# Results\n\n## Other\n\nkept\n")
    script.write_section(results, text)
    script.write_section(results, text.replace("1,000.0", "999.0"))
    content = results.read_text()
    assert content.count(script.HEADING) == 1 and "kept" in content and "999.0" in content
    assert content.index("## Other") < content.index(script.HEADING)
