"""Shared helpers of the scripts: replace one ``## `` section of a Markdown results file
(docs/results.md) in place, the machine note, and a positive-integer option type."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

from sim.options import positive


def write_section(path: str | os.PathLike[str], text: str) -> None:
    """Replace the section whose heading is ``text``'s first line, or append it.

    Other sections are left alone; a new file gets a ``# Results`` title.
    """
    heading = text.splitlines()[0]
    if not heading.startswith("## "):
        raise ValueError(f"text: must start with a '## ' heading, got {heading!r}")
    path = Path(path)
    old = path.read_text() if path.is_file() else ""
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", old, count=1).rstrip("\n") + "\n"
    else:
        new = (old.rstrip("\n") + "\n\n" if old.strip() else "# Results\n\n") + text.rstrip("\n") + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def machine_note() -> str:
    """One sentence on the Python version, cores and load (shared machines vary)."""
    return (
        f"Python {platform.python_version()}, {os.cpu_count()} CPU cores shared with other "
        f"jobs (load average {os.getloadavg()[0]:.1f} at the end)."
    )


def publish(text: str, path: str | os.PathLike[str] | None) -> None:
    """Print a results section and, when ``path`` is given, write it there (:func:`write_section`)."""
    print(text, end="" if text.endswith("\n") else "\n")
    if path is not None:
        write_section(path, text)


#: ``argparse`` type: an integer, 1 or more (the CLI's own, :data:`sim.options.positive`).
positive_int = positive
