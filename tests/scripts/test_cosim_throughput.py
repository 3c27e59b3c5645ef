"""scripts/cosim_throughput.py: the Markdown section update (no simulation)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

SCRIPT = "cosim_throughput"


def test_section_is_appended_then_replaced_in_place(script: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "results.md"
    path.write_text("# Results\n\n## Accuracy\n\nA table.\n")
    first = script.section(["verilator"], [("u", "k=1", "verilator", 10, 1234.4)], ["--cycles", "10"])
    script.publish(first, path)
    text = path.read_text()
    assert text.startswith("# Results\n\n## Accuracy\n\nA table.\n\n## Co-simulation throughput\n")
    assert "Command: `python3 scripts/cosim_throughput.py --cycles 10`" in text
    assert "| u | k=1 | verilator | 10 | 1,234 |" in text

    path.write_text(text + "\n## Energy\n\nKept.\n")
    second = script.section(["verilator"], [("u", "k=1", "verilator", 20, 99.0)], [])
    script.publish(second, path)
    text = path.read_text()
    assert text.count("## Co-simulation throughput") == 1
    assert "| u | k=1 | verilator | 20 | 99 |" in text and "1,234" not in text
    assert text.endswith("## Energy\n\nKept.\n") and "## Accuracy\n\nA table.\n" in text


def test_new_file_gets_a_title(script: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "docs" / "results.md"
    script.publish(script.section([], [], []), path)
    assert path.read_text().startswith("# Results\n\n## Co-simulation throughput\n")
