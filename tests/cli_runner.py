"""The CLI run in-process for tests: ``run(argv, capsys)`` -> (exit code, stdout, stderr)."""

from __future__ import annotations

from sim.cli import main


def run(argv, capsys):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err
