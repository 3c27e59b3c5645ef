"""Checkpoint folders shared by the float and integer models.

A checkpoint is a folder holding

* ``checkpoint.json``: ``{"kind": "float" | "integer", "format_version": 1,
  "spec": NetworkSpec.to_dict(), ...}`` plus model-specific fields;
* ``weights.npz``: named numeric arrays written by :func:`numpy.savez` and read back with
  ``allow_pickle=False`` (no code can run while loading).

:func:`load_checkpoint_kind` tells which model wrote a folder, so a loader can dispatch
on it before reading the arrays.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: Version of the checkpoint layout written by this code.
FORMAT_VERSION = 1
#: File names inside a checkpoint folder.
CHECKPOINT_JSON = "checkpoint.json"
WEIGHTS_NPZ = "weights.npz"


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


def _unreadable(path: Path, error: Exception) -> ValueError:
    """The error of an npz that cannot be read (numpy's advice to unpickle is not passed on)."""
    reason = "it holds pickled data, which is never loaded" if "pickle" in str(error) else str(error)
    return ValueError(f"{path}: not a readable npz archive ({reason})")


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
        When the file is not UTF-8 JSON, not an object, or ``kind``/``format_version``
        is missing or unsupported.
    """
    path = checkpoint_folder(directory) / CHECKPOINT_JSON
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
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


def load_checkpoint_kind(directory: str | os.PathLike[str]) -> str:
    """The ``kind`` of a checkpoint folder (``"float"`` or ``"integer"``).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_checkpoint_json`.
    """
    return read_checkpoint_json(directory)["kind"]


def write_checkpoint(
    directory: str | os.PathLike[str],
    meta: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
) -> Path:
    """Write ``checkpoint.json`` (``meta`` plus ``format_version``) and ``weights.npz``.

    The folder (and its parents) is created when missing.

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
    np.savez(folder / WEIGHTS_NPZ, **{name: np.asarray(a) for name, a in arrays.items()})
    text = json.dumps({**meta, "format_version": FORMAT_VERSION}, indent=2, sort_keys=True)
    (folder / CHECKPOINT_JSON).write_text(text + "\n", encoding="utf-8")
    return folder


def read_arrays(directory: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read every array of ``weights.npz`` with ``allow_pickle=False``.

    Raises
    ------
    FileNotFoundError
        When the folder or the file is missing.
    ValueError
        When the file is not a readable npz archive or holds object arrays.
    """
    path = checkpoint_folder(directory) / WEIGHTS_NPZ
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: {str(path)!r} does not exist")
    errors = (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError)
    try:
        archive = np.load(path, allow_pickle=False)
    except errors as error:
        raise _unreadable(path, error) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not an npz archive (found a single .npy array)")
    with archive:
        try:
            return {name: archive[name] for name in archive.files}
        except errors as error:
            raise _unreadable(path, error) from None
