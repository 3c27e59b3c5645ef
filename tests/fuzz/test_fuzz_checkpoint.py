"""Hostile checkpoints: mutated and crafted weights.npz and checkpoint.json files are
either read as a valid network or refused with one clear error, never allocating what a
header claims (model.files.read_npz, model.checkpoint, IntegerNetwork.load, Network.load)."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hostile import (
    FUZZ,
    float_checkpoint,
    integer_checkpoint,
    mutated,
    refused_or_valid,
    zip_offsets,
)
from hypothesis import given
from hypothesis import strategies as st

from model import files
from model.checkpoint import read_arrays
from model.integer import IntegerNetwork
from model.stbp import Network

LOADERS = {"integer": (integer_checkpoint, IntegerNetwork.load), "float": (float_checkpoint, Network.load)}


@pytest.fixture(params=sorted(LOADERS))
def checkpoint(request, tmp_path):
    """(folder, loader) of a tiny checkpoint of each kind."""
    make, load = LOADERS[request.param]
    return make(tmp_path / request.param), load


def npy_member(shape, descr="<i8", fortran=False, data=b"") -> bytes:
    """A .npy file with a hand-written header (any shape and descr, however hostile)."""
    header = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {tuple(shape)!r}, }}"
    header = header.encode("latin1")
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def write_npz(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, raw in members.items():
            archive.writestr(f"{name}.npy", raw)


def members_of(folder: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(folder / "weights.npz") as archive:
        return {info.filename[:-4]: archive.read(info) for info in archive.infolist()}


def peak_bytes(call) -> int:
    """Peak traced allocation (bytes; numpy's array data included) while ``call()`` runs."""
    tracemalloc.start()
    try:
        refused_or_valid(call)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# weights.npz --------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_mutated_weights_npz_loads_or_is_refused(checkpoint, data) -> None:
    folder, load = checkpoint
    path = folder / "weights.npz"
    original = path.read_bytes()
    try:
        path.write_bytes(data.draw(mutated(original)))
        refused_or_valid(lambda: load(folder))
    finally:
        path.write_bytes(original)


def test_weights_npz_truncated_at_every_boundary_is_refused(checkpoint) -> None:
    folder, load = checkpoint
    path = folder / "weights.npz"
    original = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        central = archive.start_dir
    offsets = zip_offsets(path)
    assert len(offsets) > 20
    for offset in offsets:
        path.write_bytes(original[:offset])
        result = refused_or_valid(lambda: load(folder))
        if offset <= central:  # the arrays or the directory are cut: never a network
            assert result is None, offset
    path.write_bytes(original)
    assert load(folder) is not None


#: Header fields a crafted member may claim.
DESCRS = ("<i8", "<f8", "|u1", ">i8", "|O", "<U8", "|V8", "<c16", "<M8[s]", "[('a', '<i8')]", "|b1", "<f2")
SHAPES = st.lists(
    st.one_of(st.integers(-3, 12), st.sampled_from([-(1 << 62), 1 << 20, 1 << 31, 1 << 40, (1 << 63) - 1])),
    max_size=4,
).map(tuple)


@FUZZ
@given(descr=st.sampled_from(DESCRS), shape=SHAPES, fortran=st.booleans(), keep_data=st.booleans())
def test_npy_header_fields_replaced(checkpoint, descr, shape, fortran, keep_data) -> None:
    folder, load = checkpoint
    path = folder / "weights.npz"
    original = path.read_bytes()
    members = members_of(folder)
    name = min(members)
    data = members[name][128:] if keep_data else b"\x00" * 64  # the original array bytes, or others
    members[name] = npy_member(shape, descr, fortran, data)
    try:
        write_npz(path, members)
        assert peak_bytes(lambda: load(folder)) < 4 << 20  # never the claimed size
    finally:
        path.write_bytes(original)


@pytest.mark.parametrize("claimed", [(1 << 40,), (1 << 20, 1 << 20), (1 << 29,)])
def test_huge_shape_is_refused_from_the_header_before_allocating(tmp_path, claimed) -> None:
    path = tmp_path / "huge.npz"
    write_npz(path, {"weight_1": npy_member(claimed, "<i8", data=b"\x00" * 4096)})
    for expected in (None, {"weight_1": files.ArraySpec((6, 64), "iu")}):
        with pytest.raises(ValueError, match=r"huge\.npz: ") as caught:
            files.read_npz(path, expected=expected)
        assert "\n" not in str(caught.value)
        assert peak_bytes(lambda e=expected: files.read_npz(path, expected=e)) < 1 << 20


def test_zip_bomb_is_refused_without_inflating(tmp_path) -> None:
    """A deflated member of 16 MiB of zeros (16 kB on disk), and one claiming 2 GiB."""
    path = tmp_path / "bomb.npz"
    bomb = npy_member((16 << 20,), "|u1", data=bytes(16 << 20))
    write_npz(path, {"weight_1": bomb}, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 1 << 20
    expected = {"weight_1": files.ArraySpec((6, 64), "iu")}
    with pytest.raises(ValueError, match=r"bomb\.npz: "):
        files.read_npz(path, expected=expected)
    assert peak_bytes(lambda: files.read_npz(path, expected=expected)) < 1 << 20
    write_npz(path, {"weight_1": npy_member((2 << 30,), "|u1", data=bytes(1 << 20))}, zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match=r"bomb\.npz: "):
        files.read_npz(path)
    assert peak_bytes(lambda: files.read_npz(path)) < 2 << 20


def test_huge_shape_refused_under_an_address_space_limit(tmp_path) -> None:
    """In a process that cannot map 1 GiB more, the 4 GiB claim is refused as a ValueError
    (an allocation would be a MemoryError: the control shows the limit bites)."""
    path = tmp_path / "huge.npz"
    write_npz(path, {"weight_1": npy_member((1 << 29,), "<i8", data=bytes(1 << 16))})
    script = textwrap.dedent(
        f"""
        import resource
        import numpy as np
        from model import files
        pages = int(open("/proc/self/statm").read().split()[0])
        limit = pages * resource.getpagesize() + (1 << 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            files.read_npz({str(path)!r})
        except ValueError as error:
            print("refused:", error)
        try:
            np.empty(1 << 29, np.int64).fill(0)
        except MemoryError:
            print("control: MemoryError")
        """
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env, check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "huge.npz" in done.stdout
    assert "control: MemoryError" in done.stdout


@pytest.mark.parametrize(
    ("kind", "change", "message"),
    [
        ("integer", lambda a: a.update(weight_1=np.full((6, 64), 1000)), r"weights\[0\]: values .* do not fit signed 8 bits"),
        ("integer", lambda a: a.update(threshold_1=np.zeros(6, np.int64)), r"thresholds\[1\]: 0 is out of range"),
        ("integer", lambda a: a.update(weight_1=np.full((6, 64), 2**64 - 1, np.uint64)), "weights\\[0\\]: values exceed"),
        ("integer", lambda a: a.update(weight_1=np.zeros((6, 64), bool)), "array weight_1 is bool"),
        ("integer", lambda a: a.update(weight_1=np.zeros((6, 64))), "array weight_1 is float64"),
        ("integer", lambda a: a.update(weight_1=np.zeros((64, 6), np.int64)), r"array weight_1 is int64 \(64, 6\)"),
        ("float", lambda a: a["weight_1"].__setitem__((0, 0), np.inf), "array weight_1 has non-finite"),
        ("float", lambda a: a["weight_2"].__setitem__((0, 0), np.nan), "array weight_2 has non-finite"),
        ("float", lambda a: a.update(weight_1=a["weight_1"].astype(">f8")), "array weight_1 is >f8"),
        ("float", lambda a: a.update(threshold_0=np.array([-1.0])), "array threshold_0 is float64 \\(1,\\)"),
    ],
)
def test_arrays_that_disagree_with_the_spec_are_refused(tmp_path, kind, change, message) -> None:
    make, load = LOADERS[kind]
    folder = make(tmp_path / kind)
    arrays = read_arrays(folder)
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (folder / "weights.npz").write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match=message) as caught:
        load(folder)
    assert "\n" not in str(caught.value)


def test_object_and_pickle_npz_run_nothing(tmp_path) -> None:
    folder = integer_checkpoint(tmp_path / "ck")
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    arrays = read_arrays(folder)
    arrays["weight_1"] = np.array([Payload()], dtype=object)
    np.savez(folder / "weights.npz", **arrays)
    with pytest.raises(ValueError, match="pickled data, which is never loaded"):
        IntegerNetwork.load(folder)
    assert not marker.exists()


# checkpoint.json ----------------------------------------------------------------------

#: JSON values a hostile checkpoint.json may put anywhere.
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 70), 1 << 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["1048577FC-10FC", "99999999FC-10FC", "6FC-" * 80 + "10FC", "6C3-10FC", "AP2", "1" * 5000 + "FC"]),
    st.lists(st.integers(-(1 << 40), 1 << 40), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
)
#: Where a value may be replaced (or deleted, with None as the new value's stand-in).
JSON_PATHS = (
    ("kind",), ("format_version",), ("spec",), ("spec", "arch"), ("spec", "input_shape"),
    ("spec", "timesteps"), ("spec", "population"), ("spec", "classes"), ("spec", "decoder"),
    ("spec", "initial_threshold"), ("spec", "reset"), ("formats",), ("formats", "w"),
    ("formats", "v"), ("formats", "k"), ("formats", "lfsr_state"), ("formats", "rounding"),
    ("formats", "batch"), ("formats", "shift_w"), ("dtype",), ("training",),
)


@FUZZ
@given(where=st.sampled_from(JSON_PATHS), value=JSON_VALUES, delete=st.booleans())
def test_checkpoint_json_fields_replaced(checkpoint, where, value, delete) -> None:
    folder, load = checkpoint
    path = folder / "checkpoint.json"
    original = path.read_text()
    meta = json.loads(original)
    parent = meta
    for key in where[:-1]:
        parent = parent.setdefault(key, {}) if isinstance(parent.get(key), dict) else {}
    if delete:
        parent.pop(where[-1], None)
    else:
        parent[where[-1]] = value
    try:
        path.write_text(json.dumps(meta))
        net = refused_or_valid(lambda: load(folder))
        if net is not None:
            assert math.prod(net.spec.input_shape) == 64
    finally:
        path.write_text(original)


@FUZZ
@given(data=st.data())
def test_mutated_checkpoint_json_bytes(checkpoint, data) -> None:
    folder, load = checkpoint
    path = folder / "checkpoint.json"
    original = path.read_bytes()
    try:
        path.write_bytes(data.draw(mutated(original)))
        refused_or_valid(lambda: load(folder))
    finally:
        path.write_bytes(original)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"kind": "integer", "x": "\xff\xfe"}', "not UTF-8 text"),
        (b"[" * 100_000, "not valid JSON"),
        (b'{"a":' * 50_000, "not valid JSON"),
        (b'{"kind": "integer", "format_version": 1, "n": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
    ],
)
def test_hostile_checkpoint_json_is_one_error(tmp_path, content, message) -> None:
    folder = integer_checkpoint(tmp_path / "ck")
    (folder / "checkpoint.json").write_bytes(content)
    with pytest.raises(ValueError, match=message) as caught:
        IntegerNetwork.load(folder)
    assert "\n" not in str(caught.value) and "checkpoint.json" in str(caught.value)


def test_oversized_checkpoint_json_is_refused_unread(tmp_path) -> None:
    folder = integer_checkpoint(tmp_path / "ck")
    with (folder / "checkpoint.json").open("r+b") as handle:  # sparse: no disk used
        handle.truncate(files.MAX_JSON_BYTES + 1)
    with pytest.raises(ValueError, match=r"checkpoint\.json: \d+ bytes is too large"):
        IntegerNetwork.load(folder)
