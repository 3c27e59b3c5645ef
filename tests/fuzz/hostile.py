"""Shared pieces of the hostile-file tests: hypothesis settings, byte mutations, the
check that a reader either returns or raises one clear error, and tiny checkpoints.

Imported first by every ``test_fuzz_*`` module: without hypothesis (the ``dev`` extra)
they are skipped with the reason."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("hypothesis", reason="the fuzz tests need hypothesis: pip install -e '.[dev]'")

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from model.integer import IntegerNetwork
from model.spec import NetworkSpec
from model.stbp import Network

#: Bounded fuzzing (reproducible by the conftest profile: CI runs the same examples every time).
FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: The errors a reader may raise on a hostile file.
CLEAR_ERRORS = (ValueError, FileNotFoundError)
#: A message names its file or field first: ``"<path or field>: <reason>"``.
_NAMED = re.compile(r"^\S[^\n]*?: \S")


def refused_or_valid(call: Callable[[], Any]) -> Any:
    """``call()``'s result, or ``None`` when it raised a clear one-line error naming a field or file.

    Any other exception (MemoryError, IndexError, struct.error, KeyError, TypeError,
    zipfile's ...) propagates and fails the test.
    """
    try:
        return call()
    except CLEAR_ERRORS as error:
        message = str(error)
        assert "\n" not in message, message
        assert _NAMED.match(message), message
        assert "Traceback" not in message
        return None


@st.composite
def mutated(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` with bit flips, a truncation, an insertion or an overwrite."""
    kind = draw(st.sampled_from(("flip", "truncate", "insert", "overwrite")))
    data = bytearray(raw)
    if kind == "flip":
        for position, bit in draw(
            st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 7)), min_size=1, max_size=8)
        ):
            data[position] ^= 1 << bit
    elif kind == "truncate":
        del data[draw(st.integers(0, len(raw) - 1)) :]
    elif kind == "insert":
        position = draw(st.integers(0, len(raw)))
        data[position:position] = draw(st.binary(min_size=1, max_size=16))
    else:
        position = draw(st.integers(0, len(raw) - 1))
        patch = draw(st.binary(min_size=1, max_size=16))
        data[position : position + len(patch)] = patch
    return bytes(data)


def zip_offsets(path: Path) -> list[int]:
    """Every structure boundary of a zip (local headers, data, central directory, end record), +-1."""
    size = path.stat().st_size
    marks = {0, 4, size - 22, size - 1}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            local = info.header_offset
            data = local + 30 + len(info.filename.encode()) + len(info.extra)
            marks.update({local, local + 30, data, data + 10, data + 128, data + info.compress_size})
        marks.add(archive.start_dir)
    return sorted({m + d for m in marks for d in (-1, 0, 1) if 0 < m + d < size})


#: A network the digits data fits (64 inputs): small enough to load in milliseconds.
def tiny_spec() -> NetworkSpec:
    return NetworkSpec.parse("6FC-10FC", input_shape=(64,), timesteps=2, population=1)


def integer_checkpoint(folder: Path) -> Path:
    """An integer checkpoint of :func:`tiny_spec` trained on nothing (digits named)."""
    IntegerNetwork.scratch(tiny_spec(), seed=3).save(folder, training={"dataset": "digits"})
    return folder


def float_checkpoint(folder: Path) -> Path:
    """A float checkpoint of :func:`tiny_spec` (digits named)."""
    Network(tiny_spec(), seed=3).save(folder, training={"dataset": "digits"})
    return folder
