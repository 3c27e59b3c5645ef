"""sim/cli.py and sim/options.py: the shared JSON report writer, the options every command
shares and the help texts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sim.cli import CLIError, build_parser, plain_text, write_json


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


# Shared options and help texts ----------------------------------------------------------

#: Each shared option, a value out of its range and the one message every command gives.
SHARED = {
    "--lanes": ("0", "argument --lanes: 0 is out of range (allowed 1..1024)"),
    "--queue-depth": ("70000", "argument --queue-depth: 70000 is out of range (allowed 1..65536)"),
    "--bits": ("w=99", "argument --bits: w: 99 is out of range (allowed 2..16)"),
    "--batch": ("0", "argument --batch: 0 is out of range (allowed 1 or more)"),
    "--epochs": ("0", "argument --epochs: 0 is out of range (allowed 1 or more)"),
    "--samples": ("x", "argument --samples: 'x' is not an integer"),
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _option(parser: argparse.ArgumentParser, name: str) -> argparse.Action | None:
    return next((a for a in parser._actions if name in a.option_strings), None)


@pytest.mark.parametrize("name", sorted(SHARED))
def test_every_command_gives_a_shared_option_one_range_and_message(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    value, message = SHARED[name]
    commands = [command for command, parser in _subparsers().items() if _option(parser, name)]
    assert commands, name
    for command in commands:
        parser = _subparsers()[command]
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, value])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"spikeforge {command}: error: {message}"], command


def test_lanes_and_queue_depth_are_in_every_core_command() -> None:
    parsers = _subparsers()
    for command in ("demo", "estimate", "gen", "cosim"):
        for name in ("--lanes", "--queue-depth"):
            assert _option(parsers[command], name) is not None, (command, name)
    helps = {_option(parsers[c], "--lanes").help.rsplit("lanes P", 1)[1].split(", default")[0] for c in parsers
             if _option(parsers[c], "--lanes")}
    assert helps == {", values per memory word, 1..1024"}


def test_help_texts_are_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    for command, parser in _subparsers().items():
        text = parser.format_help()
        assert "``" not in text and ":class:" not in text and ":func:" not in text, command
    assert plain_text("Builds an :class:`~model.integer.IntegerNetwork` from ``--init``") == (
        "Builds an IntegerNetwork from --init"
    )
