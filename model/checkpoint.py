"""Checkpoint folders shared by the float and integer models.

A checkpoint is a folder holding

* ``checkpoint.json``: ``{"kind": "float" | "integer", "format_version": 1,
  "spec": NetworkSpec.to_dict(), ...}`` plus model-specific fields;
* ``weights.npz``: named numeric arrays written by :func:`numpy.savez` and read back by
  :func:`model.files.read_npz` (never unpickled, every size checked before allocation).

:func:`load_checkpoint_kind` tells which model wrote a folder, so a loader can dispatch
on it before reading the arrays.
"""

from __future__ import annotations

import json
import os
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


def read_arrays(
    directory: str | os.PathLike[str], expected: Mapping[str, files.ArraySpec] | None = None
) -> dict[str, np.ndarray]:
    """Read every array of ``weights.npz``; nothing is unpickled (:func:`model.files.read_npz`).

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
        missing, unexpected, of another shape or dtype, or larger than allowed (naming it).
    """
    path = checkpoint_folder(directory) / WEIGHTS_NPZ
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: {str(path)!r} does not exist")
    return files.read_npz(path, expected=expected)
