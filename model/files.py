"""Bounded readers of untrusted files: JSON documents and npz archives.

A checkpoint, a data file or a generated folder may come from anywhere. These readers
refuse what is not the asked-for content with one ``ValueError`` naming the file, and
they check every size against a bound *before* allocating: a JSON file is at most
:data:`MAX_JSON_BYTES`; an npz member's ``.npy`` header is parsed from the archive and
its shape, dtype and byte count checked against the caller's expectation (or
:data:`MAX_NPZ_BYTES`) before its array exists. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_NPZ_BYTES",
    "MAX_NPZ_MEMBERS",
    "ArraySpec",
    "check_file_size",
    "read_json",
    "read_npz",
    "read_text",
]

#: Largest JSON file read (bytes): checkpoint metadata, manifests, reports.
MAX_JSON_BYTES = 16 << 20
#: Largest total of array bytes an npz may hold when the caller expects no shapes.
MAX_NPZ_BYTES = 1 << 30
#: Most members an npz may have.
MAX_NPZ_MEMBERS = 4096
#: Bytes an npz needs besides its arrays: per member a zip entry and a ``.npy`` header
#: (numpy caps headers at 10,000 bytes), plus the central directory.
_NPZ_MEMBER_OVERHEAD = 16 << 10
_NPY_HEADER_MAX = 10_000
#: Dtype kinds an array of a checkpoint may have: bool, signed, unsigned, float.
_NUMERIC_KINDS = "biuf"
_CHUNK = 1 << 20
#: Errors of zipfile, zlib and numpy's header parser on malformed input.
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    OSError,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    OverflowError,
    NotImplementedError,
    RuntimeError,
    SyntaxError,
    TypeError,
)
_PICKLE_MAGIC = b"\x80"
_NPY_MAGIC = b"\x93NUMPY"


def check_file_size(path: Path, maximum: int) -> int:
    """The size of file ``path`` in bytes after checking it is at most ``maximum``.

    Raises
    ------
    ValueError
        ``"{path}: N bytes is too large (allowed up to M bytes)"``.
    """
    size = path.stat().st_size
    if size > maximum:
        raise ValueError(f"{path}: {size} bytes is too large (allowed up to {maximum} bytes)")
    return size


def read_text(path: str | os.PathLike[str], *, max_bytes: int = MAX_JSON_BYTES) -> str:
    """The UTF-8 text file ``path`` of at most ``max_bytes`` bytes.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    ValueError
        Naming the file when it is too large or not UTF-8.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist or is not a file")
    size = check_file_size(path, max_bytes)
    with path.open("rb") as handle:
        raw = handle.read(size + 1)  # a read of n bytes reserves n: never more than the file
    if len(raw) > max_bytes or len(raw) > size:  # grew since the check
        raise ValueError(f"{path}: too large (allowed up to {max_bytes} bytes)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start})") from None


def read_json(path: str | os.PathLike[str], *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse the UTF-8 JSON file ``path`` of at most ``max_bytes`` bytes.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    ValueError
        Naming the file when it is too large, not UTF-8, not JSON, nested too deeply for
        the parser, or holds an integer of more digits than Python converts.
    """
    text = read_text(path, max_bytes=max_bytes)
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as error:  # JSONDecodeError, or an integer of too many digits
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path}: not valid JSON ({reason})") from None


class ArraySpec(NamedTuple):
    """What a reader expects of one npz array.

    Attributes
    ----------
    shape : tuple of int
        The exact shape.
    kinds : str
        Allowed dtype kinds (``"iu"`` integers, ``"f"`` floats, ...).
    dtype : numpy.dtype or None
        The exact dtype, when one is required.
    """

    shape: tuple[int, ...]
    kinds: str = _NUMERIC_KINDS
    dtype: np.dtype | None = None

    def describe(self) -> str:
        """``"float64 (6, 64)"`` or ``"integers (6, 64)"``: the expectation in a message."""
        kind = {"iu": "integers", "f": "floats"}.get(self.kinds, f"dtype kind {self.kinds}")
        return f"{self.dtype if self.dtype is not None else kind} {self.shape}"

    def itemsize(self) -> int:
        """Largest bytes per element an accepted array may have."""
        return self.dtype.itemsize if self.dtype is not None else 8


class _Member(NamedTuple):
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    nbytes: int


def _not_npz(path: Path, reason: str) -> ValueError:
    return ValueError(f"{path}: not a readable npz archive ({reason})")


def _why_not_zip(path: Path) -> str:
    """Why ``path`` is no zip: a pickle or a bare ``.npy`` is named as such."""
    with path.open("rb") as handle:
        start = handle.read(len(_NPY_MAGIC))
    if start.startswith(_PICKLE_MAGIC):
        return "it holds pickled data, which is never loaded"
    if start == _NPY_MAGIC:
        return "found a single .npy array"
    return "not a zip file"


def _read_header(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
    """Shape, order and dtype of a member from its ``.npy`` header (the data is not read)."""
    name = info.filename[:-4]
    with archive.open(info) as handle:
        major, minor = np.lib.format.read_magic(handle)
        if (major, minor) == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle, _NPY_HEADER_MAX)
        elif (major, minor) == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle, _NPY_HEADER_MAX)
        else:
            raise _not_npz(path, f"array {name}: .npy version {major}.{minor} is not supported")
        offset = handle.tell()
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise _not_npz(path, f"array {name} has dtype {dtype}: it holds pickled data, which is never loaded")
    if dtype.kind not in _NUMERIC_KINDS:
        raise ValueError(f"{path}: array {name} has dtype {dtype} (allowed bool, integers, floats)")
    if any(n < 0 for n in shape):
        raise ValueError(f"{path}: array {name} has a negative size in shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if offset + nbytes != info.file_size:
        raise ValueError(
            f"{path}: array {name} claims shape {shape} of {dtype} ({nbytes} bytes) but its "
            f"member holds {info.file_size - offset} bytes of data"
        )
    return _Member(info, tuple(shape), bool(fortran), dtype, nbytes)


def _read_data(archive: zipfile.ZipFile, member: _Member) -> np.ndarray:
    """The member's array, read into a buffer of the header's size (checked by the caller)."""
    flat = np.empty(math.prod(member.shape), member.dtype)
    view = memoryview(flat.view(np.uint8).reshape(-1)) if member.nbytes else memoryview(b"")
    with archive.open(member.info) as handle:
        handle.seek(member.info.file_size - member.nbytes)
        done = 0
        while done < member.nbytes:
            chunk = handle.read(min(_CHUNK, member.nbytes - done))
            if not chunk:
                break
            view[done : done + len(chunk)] = chunk
            done += len(chunk)
        if done != member.nbytes or handle.read(1):  # the read to the end checks the CRC
            raise EOFError(f"array data is {done} bytes, expected {member.nbytes}")
    if member.fortran:
        return flat.reshape(member.shape[::-1]).transpose()
    return flat.reshape(member.shape)


def read_npz(
    path: str | os.PathLike[str],
    *,
    expected: Mapping[str, ArraySpec] | None = None,
    max_bytes: int = MAX_NPZ_BYTES,
) -> dict[str, np.ndarray]:
    """Read the arrays of an npz archive, every size checked before it is allocated.

    Parameters
    ----------
    path : path
        The ``.npz`` file (as written by :func:`numpy.savez`, stored or deflated).
    expected : mapping of str to ArraySpec, optional
        The arrays the archive must hold: exactly these names, shapes and dtypes, and
        ``max_bytes`` becomes their total. Without it any names, numeric dtypes and
        shapes are read up to ``max_bytes`` in all.
    max_bytes : int
        Most bytes of array data, all members together.

    Returns
    -------
    dict of str to numpy.ndarray
        Each array by member name (without ``.npy``).

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    ValueError
        Naming the file (and the array) when it is no zip or no npz, is larger than its
        arrays can explain, a member is encrypted, compressed other than by deflate, not a
        ``.npy`` array, holds objects (pickles), a non-numeric dtype, a negative or
        unexpected shape, more data than ``max_bytes``, or data that is truncated or
        fails its CRC; when an expected array is missing or an unexpected one present.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist or is not a file")
    if expected is not None:
        max_bytes = sum(math.prod(spec.shape) * spec.itemsize() for spec in expected.values())
        members = len(expected)
    else:
        members = MAX_NPZ_MEMBERS
    check_file_size(path, max_bytes + (members + 1) * _NPZ_MEMBER_OVERHEAD)
    if not zipfile.is_zipfile(path):
        raise _not_npz(path, _why_not_zip(path))
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = [info.filename[:-4] for info in infos]
            if expected is None and len(infos) > MAX_NPZ_MEMBERS:
                raise ValueError(
                    f"{path}: {len(infos)} members is too many (allowed up to {MAX_NPZ_MEMBERS})"
                )
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise _not_npz(path, f"member {info.filename!r} is not a .npy array")
                if info.flag_bits & 0x1:
                    raise _not_npz(path, f"member {info.filename!r} is encrypted")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise _not_npz(path, f"member {info.filename!r} uses compression {info.compress_type}")
            if expected is not None:
                missing = sorted(set(expected) - set(names))
                extra = sorted(set(names) - set(expected))
                if missing or extra:
                    raise ValueError(
                        f"{path}: arrays {missing or extra} are {'missing' if missing else 'unexpected'}"
                    )
            if len(set(names)) != len(names):
                raise _not_npz(path, "a member name appears twice")
            headers = [_read_header(path, archive, info) for info in infos]
            for name, member in zip(names, headers):
                spec = None if expected is None else expected[name]
                if spec is not None and (
                    member.shape != tuple(spec.shape)
                    or member.dtype.kind not in spec.kinds
                    or (spec.dtype is not None and member.dtype != spec.dtype)
                ):
                    raise ValueError(
                        f"{path}: array {name} is {member.dtype} {member.shape}, expected {spec.describe()}"
                    )
            total = sum(member.nbytes for member in headers)
            if total > max_bytes:
                raise ValueError(
                    f"{path}: arrays of {total} bytes in all (allowed up to {max_bytes} bytes)"
                )
            return {name: _read_data(archive, member) for name, member in zip(names, headers)}
    except _ARCHIVE_ERRORS as error:
        if isinstance(error, ValueError) and str(error).startswith(f"{path}: "):
            raise
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise _not_npz(path, reason) from None
