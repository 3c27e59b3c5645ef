"""Hostile IDX files (model.data.read_idx): mutated, truncated, header fields replaced,
gzip bombs and headers claiming huge dims are refused with one error, never allocating
what the header claims."""

from __future__ import annotations

import gzip
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hostile import FUZZ, mutated, refused_or_valid
from hypothesis import given
from hypothesis import strategies as st

from model.data import IDX_MAX_BYTES, read_idx

ARRAY = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def peak_bytes(call) -> int:
    tracemalloc.start()
    try:
        refused_or_valid(call)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def consistent(result: np.ndarray | None) -> None:
    """A returned array is what a valid header describes."""
    if result is not None:
        assert isinstance(result, np.ndarray) and result.dtype.isnative
        assert result.ndim >= 1 and result.nbytes <= IDX_MAX_BYTES


@pytest.fixture(params=[False, True], ids=["raw", "gzip"])
def compress(request) -> bool:
    return request.param


@FUZZ
@given(data=st.data())
def test_mutated_idx_reads_or_is_refused(tmp_path: Path, compress: bool, data) -> None:
    raw = idx_bytes(ARRAY)
    content = data.draw(mutated(gzip.compress(raw) if compress else raw))
    path = tmp_path / "mutated.idx"
    path.write_bytes(content)
    consistent(refused_or_valid(lambda: read_idx(path)))


@FUZZ
@given(
    type_code=st.integers(0, 255),
    dims=st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 6), min_size=0, max_size=6),
    payload=st.integers(0, 200),
)
def test_idx_header_fields_replaced(tmp_path: Path, compress: bool, type_code, dims, payload) -> None:
    raw = bytes([0, 0, type_code, len(dims)]) + b"".join(n.to_bytes(4, "big") for n in dims) + bytes(payload)
    path = tmp_path / "crafted.idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    result = []
    assert peak_bytes(lambda: result.append(read_idx(path))) < 1 << 20
    if result:
        assert result[0].shape == tuple(dims) and result[0].nbytes == payload


def test_truncated_at_every_offset_is_refused(tmp_path: Path, compress: bool) -> None:
    raw = idx_bytes(ARRAY)
    content = gzip.compress(raw) if compress else raw
    path = tmp_path / "cut.idx"
    for offset in range(len(content)):
        path.write_bytes(content[:offset])
        with pytest.raises(ValueError, match=r"cut\.idx: ") as caught:
            read_idx(path)
        assert "\n" not in str(caught.value)


def test_header_claiming_huge_dims_is_refused_before_allocating(tmp_path: Path, compress: bool) -> None:
    raw = bytes([0, 0, 0x0E, 3]) + (65535).to_bytes(4, "big") * 3 + bytes(64)
    path = tmp_path / "huge.idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(ValueError, match=r"huge\.idx: header claims shape \(65535, 65535, 65535\)"):
        read_idx(path)
    assert peak_bytes(lambda: read_idx(path)) < 256 << 10


def test_gzip_bomb_is_not_inflated(tmp_path: Path) -> None:
    """A header of 60 bytes followed by 16 MiB of zeros (16 kB compressed)."""
    path = tmp_path / "bomb.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(ARRAY) + bytes(16 << 20)))
    assert path.stat().st_size < 64 << 10
    with pytest.raises(ValueError, match=r"bomb\.idx\.gz: payload is more than \d+ bytes, expected 60"):
        read_idx(path)
    assert peak_bytes(lambda: read_idx(path)) < 4 << 20


@pytest.mark.parametrize("type_code", [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E])
def test_every_idx_dtype_round_trips(tmp_path: Path, type_code: int) -> None:
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32, 0x0D: np.float32, 0x0E: np.float64}
    array = np.arange(-6, 6).astype(dtype[type_code]).reshape(3, 4)
    path = tmp_path / "typed.idx"
    path.write_bytes(idx_bytes(array, type_code))
    np.testing.assert_array_equal(read_idx(path), array)
    assert math.prod(read_idx(path).shape) == 12
