"""``--resume`` of ``spikeforge learn`` and ``spikeforge train``: continuing a saved run.

A run saves its learner state in ``OUT/resume`` (:data:`model.checkpoint.STATE_FOLDER`)
together with the options that decide its result and a fingerprint of its training data.
The same command line with ``--resume`` added reads that state back; this module refuses,
with one line, a folder without a saved run, a state of the other command, or a command
line whose recorded options or data differ (naming the first differing one).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from model.checkpoint import STATE_FOLDER, arrays_digest, read_checkpoint_json

#: Key of the training data's fingerprint among the recorded options.
DATA_KEY = "training data sha256"

T = TypeVar("T")


def add_resume(parser: argparse.ArgumentParser) -> None:
    """``--resume``: continue the run whose state ``--out`` holds."""
    parser.add_argument(
        "--resume", action="store_true",
        help=f"continue the run saved in --out ({STATE_FOLDER}/), given the same options; "
        "a finished run writes its outputs again",
    )


def run_options(
    args: argparse.Namespace, names: Sequence[str], train_x: np.ndarray, train_y: np.ndarray
) -> dict[str, Any]:
    """The options of a run that decide its result, ``{"--name": value}``, and the
    fingerprint of its training data (:data:`DATA_KEY`)."""
    recorded: dict[str, Any] = {f"--{name.replace('_', '-')}": getattr(args, name) for name in names}
    recorded[DATA_KEY] = arrays_digest({"x": train_x, "y": train_y})
    return recorded


def state_folder(out: str | Path) -> Path:
    """The learner-state folder of an ``--out`` folder."""
    return Path(out) / STATE_FOLDER


def load_state(
    out: str | Path, kind: str, options: Mapping[str, Any], loader: Callable[[Path], T]
) -> T:
    """The saved run of ``out`` read by ``loader`` after checking it matches this run.

    Parameters
    ----------
    kind : str
        The checkpoint kind of the command's state (``"integer"`` for learn, ``"float"``
        for train).
    options : mapping
        :func:`run_options` of this command line.

    Raises
    ------
    ValueError
        ``--resume: ...`` naming the folder and what is missing or differs.
    """
    folder = state_folder(out)
    try:
        meta = read_checkpoint_json(folder)
    except FileNotFoundError:
        raise ValueError(f"--resume: {folder} holds no saved run (start without --resume)") from None
    learner = meta.get("learner")
    saved = learner.get("options") if isinstance(learner, dict) else None
    if meta["kind"] != kind or not isinstance(saved, dict):
        raise ValueError(
            f"--resume: {folder} holds no {kind} learner state (a {meta['kind']!r} checkpoint)"
        )
    for name, value in options.items():
        if name not in saved or saved[name] != value:
            raise ValueError(
                f"--resume: {folder} holds a run with {name} {_shown(saved.get(name))}, "
                f"this command line has {_shown(value)}"
            )
    return loader(folder)


def _shown(value: Any) -> str:
    return "(not given)" if value is None else repr(value)
