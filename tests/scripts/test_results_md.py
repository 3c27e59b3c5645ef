"""scripts/results_md.py: one section of a Markdown file replaced in place."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = "results_md"


def test_section_is_appended_then_replaced(script: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "docs" / "results.md"
    script.write_section(path, "## Integer model: goals\n\nfirst\n")
    assert path.read_text() == "# Results\n\n## Integer model: goals\n\nfirst\n"
    path.write_text(path.read_text() + "\n## Other\n\nkept\n")
    script.write_section(path, "## Integer model: goals\n\nsecond\n")
    text = path.read_text()
    assert "first" not in text and text.count("## Integer model: goals") == 1
    assert text == "# Results\n\n## Integer model: goals\n\nsecond\n\n## Other\n\nkept\n"


def test_text_needs_a_heading(script: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^text: "):
        script.write_section(tmp_path / "r.md", "no heading\n")


def test_publish_prints_and_writes_when_asked(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.md"
    script.publish("## A\n\ntext\n", None)
    assert capsys.readouterr().out == "## A\n\ntext\n" and not path.exists()
    script.publish("## A\n\ntext", path)
    assert capsys.readouterr().out == "## A\n\ntext\n"
    assert path.read_text() == "# Results\n\n## A\n\ntext\n"


@pytest.mark.parametrize(("text", "message"), [("0", "out of range"), ("x", "not an integer")])
def test_positive_int_rejects(script: ModuleType, text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        script.positive_int(text)
    assert script.positive_int("3") == 3
