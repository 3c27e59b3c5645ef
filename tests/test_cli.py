"""sim/cli.py: the shared JSON report writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli import CLIError, write_json


def test_write_json_creates_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "report.json"
    write_json(path, {"b": 1, "a": [1, 2]})
    assert path.read_text(encoding="utf-8") == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    write_json(path, {"b": 1, "a": 2}, sort_keys=False)
    assert list(json.loads(path.read_text())) == ["b", "a"]


def test_write_json_unwritable_path_is_a_cli_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CLIError, match=r"^cannot write '.*file/report\.json': "):
        write_json(blocker / "report.json", {"a": 1})
