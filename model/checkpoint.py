"""Checkpoint folders shared by the float and integer models.

A checkpoint is a folder holding

* ``checkpoint.json``: ``{"kind": "float" | "integer", "format_version": 1,
  "spec": NetworkSpec.to_dict(), ...}`` plus model-specific fields;
* ``weights.npz``: named numeric arrays written by :func:`numpy.savez` and read back by
  :func:`model.files.read_npz` (never unpickled, every size checked before allocation).

:func:`load_checkpoint_kind` tells which model wrote a folder, so a loader can dispatch
on it before reading the arrays.

A learner's state (:data:`STATE_FOLDER` of a run's output folder, ``--resume``) is a
checkpoint with one more archive, ``state.npz`` (gradient accumulators, optimizer moments),
read with :func:`read_arrays` ``(..., name=STATE_NPZ)``.

Atomic writes
-------------
:func:`write_checkpoint` leaves a folder that holds either the previous complete checkpoint
or the new one, whenever the process is killed. ``checkpoint.json`` is the commit record:

1. each archive is written to a temporary file, fsynced, and renamed to a *pending* name
   carrying the write's token, ``weights.<token[:16]>.npz``; the old ``weights.npz`` is
   untouched;
2. ``checkpoint.json`` (with ``"arrays_sha256": token``) is written to a temporary file,
   fsynced and renamed over the old one: this rename commits the new checkpoint;
3. each pending archive is renamed over its final name, and the folder is fsynced.

The token is the SHA-256 of every array's name, dtype, shape and bytes (deterministic:
equal arrays give equal JSON). A reader takes the pending archive of the committed token
when it exists (a write killed between steps 2 and 3), else the final one; the next write
finishes such a write first and removes the leftovers of a killed one. Every archive also
carries the token as its zip comment, and :func:`read_arrays` refuses an archive whose
token differs from the JSON's (a torn pair, e.g. files copied from two checkpoints); an
archive without a token (written by hand, or by older code) is not checked.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from model import files

#: Version of the checkpoint layout written by this code.
FORMAT_VERSION = 1
#: File names inside a checkpoint folder.
CHECKPOINT_JSON = "checkpoint.json"
WEIGHTS_NPZ = "weights.npz"
STATE_NPZ = "state.npz"
#: Subfolder of a run's ``--out`` folder that holds its learner state (``--resume``).
STATE_FOLDER = "resume"
#: ``checkpoint.json`` field of the write token (see "Atomic writes").
TOKEN_FIELD = "arrays_sha256"
_ARCHIVES = (WEIGHTS_NPZ, STATE_NPZ)
_TEMPORARY = ".checkpoint-"  # prefix of the temporary files of a write
_TOKEN = re.compile(r"[0-9a-f]{64}")
#: The names a write leaves when it is killed: temporary and pending files.
_LEFTOVER = re.compile(r"\.checkpoint-[0-9a-f]{16}\.tmp|(weights|state)\.[0-9a-f]{16}\.npz")


def checkpoint_folder(directory: str | os.PathLike[str]) -> Path:
    """Return ``directory`` as a path after checking it is an existing folder.

    Raises
    ------
    FileNotFoundError
        When the folder does not exist or is not a folder.
    """
    folder = Path(directory)
    if folder.is_file():
        raise FileNotFoundError(f"checkpoint: {str(folder)!r} is a file, not a checkpoint folder")
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint: folder {str(folder)!r} does not exist")
    return folder


def read_checkpoint_json(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``checkpoint.json`` of a checkpoint folder.

    Returns
    -------
    dict
        The JSON object; ``kind`` is a non-empty string and ``format_version`` equals
        :data:`FORMAT_VERSION`.

    Raises
    ------
    FileNotFoundError
        When the folder or the file is missing.
    ValueError
        When the file is larger than :data:`model.files.MAX_JSON_BYTES`, not UTF-8 JSON,
        not an object, or ``kind``/``format_version`` is missing or unsupported.
    """
    path = checkpoint_folder(directory) / CHECKPOINT_JSON
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: {str(path)!r} does not exist")
    data = files.read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    kind = data.get("kind")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"{path}: 'kind' must be a non-empty string such as 'float'")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {version!r} is not supported (allowed {FORMAT_VERSION})"
        )
    return data


def read_learner_fields(directory: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """The ``learner`` object of a learner-state checkpoint (``what`` names the state in
    the error, e.g. ``"a learner state"``).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_checkpoint_json`; when the folder holds a plain checkpoint.
    """
    fields = read_checkpoint_json(directory).get("learner")
    if not isinstance(fields, dict):
        raise ValueError(f"learner: {str(directory)!r} holds a checkpoint, not {what}")
    return fields


def load_checkpoint_kind(directory: str | os.PathLike[str]) -> str:
    """The ``kind`` of a checkpoint folder (``"float"`` or ``"integer"``).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_checkpoint_json`.
    """
    return read_checkpoint_json(directory)["kind"]


def arrays_digest(*groups: Mapping[str, np.ndarray]) -> str:
    """SHA-256 (hex) of the arrays of ``groups``: each group's names in order, dtype, shape
    and C-order bytes (the write token; also a fingerprint of training data)."""
    digest = hashlib.sha256()
    for number, group in enumerate(groups):
        for name in sorted(group):
            array = np.ascontiguousarray(group[name])
            digest.update(f"{number}:{name}:{array.dtype.str}:{array.shape};".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def _pending(name: str, token: str) -> str:
    """The pending name of archive ``name`` in the write of ``token``."""
    stem, suffix = os.path.splitext(name)
    return f"{stem}.{token[:16]}{suffix}"


def _committed_token(folder: Path) -> str | None:
    """The token of the committed ``checkpoint.json``, or ``None`` (no token, no readable file)."""
    try:
        token = read_checkpoint_json(folder).get(TOKEN_FIELD)
    except (OSError, ValueError):
        return None
    return token if isinstance(token, str) and _TOKEN.fullmatch(token) else None


def _write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to a new temporary file, fsync it and rename it to ``path``."""
    temporary = path.with_name(f"{_TEMPORARY}{secrets.token_hex(8)}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without folder descriptors: the renames are still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _finish_write(folder: Path) -> None:
    """Finish a committed write (step 3) and remove the leftovers of an uncommitted one."""
    token = _committed_token(folder)
    for name in _ARCHIVES:
        if token is not None and (folder / _pending(name, token)).is_file():
            os.replace(folder / _pending(name, token), folder / name)
    for path in folder.iterdir():
        if _LEFTOVER.fullmatch(path.name) and path.is_file():
            path.unlink()


def _archive(arrays: Mapping[str, np.ndarray], token: str) -> bytes:
    """An npz archive of ``arrays`` (as :func:`numpy.savez`) whose zip comment is ``token``."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.comment = token.encode("ascii")
    return buffer.getvalue()


def write_checkpoint(
    directory: str | os.PathLike[str],
    meta: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    *,
    state: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write ``checkpoint.json`` (``meta`` plus ``format_version`` and the token),
    ``weights.npz`` and, with ``state``, ``state.npz``, atomically ("Atomic writes").

    The folder (and its parents) is created when missing. Without ``state`` a
    ``state.npz`` left by an earlier write is removed.

    Returns
    -------
    pathlib.Path
        The checkpoint folder.

    Raises
    ------
    ValueError
        When ``meta`` lacks a ``kind`` or ``directory`` exists and is not a folder.
    """
    if not isinstance(meta.get("kind"), str):
        raise ValueError("checkpoint: meta needs a string 'kind'")
    folder = Path(directory)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"checkpoint: {str(folder)!r} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    _finish_write(folder)
    groups = {WEIGHTS_NPZ: {name: np.asarray(a) for name, a in arrays.items()}}
    if state is not None:
        groups[STATE_NPZ] = {name: np.asarray(a) for name, a in state.items()}
    token = arrays_digest(*groups.values())
    for name, group in groups.items():  # step 1
        _write_durably(folder / _pending(name, token), _archive(group, token))
    record = {**meta, "format_version": FORMAT_VERSION, TOKEN_FIELD: token}
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    _write_durably(folder / CHECKPOINT_JSON, text.encode("utf-8"))  # step 2: the commit
    for name in groups:  # step 3
        os.replace(folder / _pending(name, token), folder / name)
    if state is None and (folder / STATE_NPZ).is_file():
        (folder / STATE_NPZ).unlink()
    _fsync_folder(folder)
    return folder


def _check_token(path: Path, folder: Path) -> None:
    """Refuse an archive whose zip comment is a token other than the committed JSON's."""
    with zipfile.ZipFile(path) as archive:
        comment = archive.comment.decode("ascii", "replace")
    if not _TOKEN.fullmatch(comment):  # no token: written by hand or by older code
        return
    token = _committed_token(folder)
    if comment != token:
        raise ValueError(
            f"{path}: written with token {comment[:16]}, {CHECKPOINT_JSON} names "
            f"{(token or 'none')[:16]}: a torn checkpoint (its files come from different writes)"
        )


def read_arrays(
    directory: str | os.PathLike[str],
    expected: Mapping[str, files.ArraySpec] | None = None,
    *,
    name: str = WEIGHTS_NPZ,
) -> dict[str, np.ndarray]:
    """Read every array of ``weights.npz`` (or ``name``, e.g. :data:`STATE_NPZ`); nothing is
    unpickled (:func:`model.files.read_npz`).

    Parameters
    ----------
    expected : mapping of str to ArraySpec, optional
        The arrays the checkpoint's spec implies: exactly these names, shapes and dtypes,
        checked from the ``.npy`` headers before any array is allocated (their total bytes
        bound the read). Without it, any numeric arrays up to
        :data:`model.files.MAX_NPZ_BYTES` in all.

    Raises
    ------
    FileNotFoundError
        When the folder or the file is missing.
    ValueError
        When the file is not a readable npz archive, holds object arrays, or an array is
        missing, unexpected, of another shape or dtype, or larger than allowed (naming it);
        when its write token differs from ``checkpoint.json``'s (a torn checkpoint).
    """
    folder = checkpoint_folder(directory)
    token = _committed_token(folder)
    pending = folder / _pending(name, token) if token is not None else None
    path = pending if pending is not None and pending.is_file() else folder / name
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: {str(path)!r} does not exist")
    arrays = files.read_npz(path, expected=expected)
    _check_token(path, folder)
    return arrays


def restore_generator(state: Any, name: str = "rng") -> np.random.Generator:
    """A numpy generator in the saved ``bit_generator.state`` ``state`` (a JSON object).

    Raises
    ------
    ValueError
        Naming ``name`` when ``state`` is not a PCG64 state.
    """
    rng = np.random.default_rng()
    try:
        if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
            raise ValueError("not a PCG64 state")
        rng.bit_generator.state = state
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"{name}: the saved generator state is not usable ({error!s})") from None
    return rng
