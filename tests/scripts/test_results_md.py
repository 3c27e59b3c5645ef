"""scripts/results_md.py: one section of a Markdown file replaced in place."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "results_md.py"
spec = importlib.util.spec_from_file_location("results_md", SCRIPT)
results_md = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results_md)


def test_section_is_appended_then_replaced(tmp_path: Path) -> None:
    path = tmp_path / "docs" / "results.md"
    results_md.write_section(path, "## Integer model: goals\n\nfirst\n")
    assert path.read_text() == "# Results\n\n## Integer model: goals\n\nfirst\n"
    path.write_text(path.read_text() + "\n## Other\n\nkept\n")
    results_md.write_section(path, "## Integer model: goals\n\nsecond\n")
    text = path.read_text()
    assert "first" not in text and text.count("## Integer model: goals") == 1
    assert text == "# Results\n\n## Integer model: goals\n\nsecond\n\n## Other\n\nkept\n"


def test_text_needs_a_heading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^text: "):
        results_md.write_section(tmp_path / "r.md", "no heading\n")
