"""The ``spikeforge`` command line.

Every subcommand lives in its own module exposing ``register(subparsers)``, which adds an
``argparse`` parser whose ``func`` default takes the parsed namespace and returns an exit
code. Errors a user can cause (bad options, files, specs) are raised as ``ValueError``,
``FileNotFoundError`` or :class:`CLIError` and printed as one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: Modules under ``sim.commands`` that define subcommands, in help order.
COMMAND_MODULES = ("demo", "train", "convert", "learn", "gen", "estimate", "synth", "cosim", "hls", "faults", "sweep", "nir")


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any], *, sort_keys: bool = True) -> None:
    """Write a command's JSON report (indented, UTF-8), creating missing folders.

    Raises
    ------
    CLIError
        When the file or its folder cannot be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, sort_keys=sort_keys) + "\n", encoding="utf-8")
    except OSError as error:
        raise CLIError(f"cannot write {str(path)!r}: {error.strerror or error}") from None


_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")


def plain_text(text: str) -> str:
    """``text`` without reStructuredText markup: ``:class:`~a.B``` -> ``B``, ````x```` -> ``x``."""
    text = _ROLE.sub(lambda match: match[2].rsplit(".", 1)[-1] if match[1] else match[2], text)
    return text.replace("``", "")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        self.exit(2, f"{self.prog}: error: {message}\n")

    def format_help(self) -> str:  # help texts come from docstrings: show them as plain text
        return plain_text(super().format_help())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="spikeforge",
        description="On-line learning SNN cores: float STBP, integer model, RTL, co-simulation.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"sim.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help (0) or a bad option, already printed (2)
        return exit_request.code if isinstance(exit_request.code, int) else 2
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError, FileNotFoundError, IsADirectoryError, PermissionError) as error:
        message = str(error) or type(error).__name__
        print(f"spikeforge {args.command}: error: {message.splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spikeforge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
