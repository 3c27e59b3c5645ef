"""C simulation of the HLS target: testbench vectors from the integer model, g++ build, run.

:func:`make_vectors` runs a copy of an :class:`~model.integer.IntegerNetwork` over the
samples and records what the testbench must reproduce (predictions, class counts, spikes
per layer, and the whole learned state after learning); :func:`run_csim` compiles the
written project's firmware and testbench (``-std=c++17 -O2 -Wall -Wextra -Werror``), runs
it and parses its ``N passed, M failed`` line. :func:`compile_cxx` is shared with the native
engine (:mod:`sim.hls_engine`).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw.hls import TESTBENCH, Layout, Vectors
from model.integer import IntegerNetwork, IntegerTrace
from sim.toolchain import ToolchainError

__all__ = [
    "AP_TYPES_FLAGS",
    "CXX_FLAGS",
    "CompileError",
    "CsimResult",
    "compile_cxx",
    "ap_types_include",
    "find_compiler",
    "make_vectors",
    "run_csim",
]

#: Flags of every C++ build of the target (warnings are errors).
CXX_FLAGS = ("-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror")
#: Extra flags of a build on the vendor types (``ap_int``/``ap_uint``): their headers read
#: uninitialized members in their own constructors at -O2, a warning of theirs, not the target's.
AP_TYPES_FLAGS = ("-DSPIKEFORGE_AP_TYPES", "-Wno-uninitialized", "-Wno-maybe-uninitialized")
#: Seconds a testbench run may take.
RUN_TIMEOUT = 600

_SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$", re.MULTILINE)


class CompileError(RuntimeError):
    """The C++ compiler rejected the sources (the message's first line is its first error)."""


def find_compiler(cxx: str = "g++") -> str:
    """The path of the C++ compiler ``cxx`` (a name on PATH or a path).

    Raises
    ------
    ToolchainError
        When it is not found.
    """
    path = shutil.which(cxx)
    if path is None:
        raise ToolchainError(f"{cxx}: C++ compiler not found on PATH (install g++, e.g. apt-get install g++)")
    return path


def ap_types_include() -> Path:
    """The folder of the Apache-2.0 ``ap_types`` headers shipped in the ``hls4ml`` wheel
    (the ``hls`` extra), found without importing the package.

    Raises
    ------
    ToolchainError
        When ``hls4ml`` is not installed or lacks the headers.
    """
    spec = importlib.util.find_spec("hls4ml")
    folder = Path(spec.origin).parent / "templates" / "vivado" / "ap_types" if spec and spec.origin else None
    if folder is None or not (folder / "ap_int.h").is_file():
        raise ToolchainError("ap_types: the headers come with hls4ml (pip install -e '.[hls]')")
    return folder


def compile_cxx(
    cxx: str, sources: Sequence[Path], output: Path, *, include: Path, extra: Sequence[str] = ()
) -> None:
    """Compile ``sources`` into ``output`` with :data:`CXX_FLAGS` plus ``extra``.

    Raises
    ------
    ToolchainError
        When the compiler is missing.
    CompileError
        With the compiler's first error line.
    """
    command = [find_compiler(cxx), *CXX_FLAGS, *extra, f"-I{include}", *map(str, sources), "-o", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        lines = [line for line in result.stderr.splitlines() if " error: " in line or line.startswith("error:")]
        lines = lines or result.stderr.splitlines()
        raise CompileError(f"{cxx}: compile failed: {lines[0] if lines else f'exit {result.returncode}'}")


def _sample(vectors: Vectors, net: IntegerNetwork, pixels: np.ndarray, label: int,
            trace: IntegerTrace, index: int, learn: bool) -> None:
    vectors.sample(
        pixels, label, (net.rule.shift_w, net.rule.shift_th), learn=learn,
        prediction=int(trace.predictions()[index]), counts=trace.counts[index],
        layer_spikes=np.array([s[:, index].sum() for s in trace.spikes]),
    )


def make_vectors(
    net: IntegerNetwork,
    layout: Layout,
    pixels: np.ndarray,
    labels: np.ndarray,
    *,
    learn: tuple[np.ndarray, np.ndarray] | None = None,
) -> Vectors:
    """Testbench records of ``net`` (not modified) with the integer model's results.

    With ``learn = (pixels, labels)`` the network first learns from those samples one by
    one (an update after every B-th), then the learned state is checked, a flush applies a
    pending partial batch and the state is checked again; then every sample of ``pixels``
    is inferred and the state checked once more (inference must not change it).

    Parameters
    ----------
    net : IntegerNetwork
    layout : Layout
        The target's memory layout (:func:`hw.hls.check_target`).
    pixels, labels : numpy.ndarray
        u8 samples (N, n_0) and labels (N,) to infer.
    learn : (pixels, labels), optional
        Samples to learn from first.

    Raises
    ------
    ValueError
        For bad pixels or labels, or learning on a network that cannot learn (naming ``spec``).
    """
    net = copy.deepcopy(net)
    vectors = Vectors(layout.neurons[0])
    if learn is not None:
        train_pixels = net.check_pixels(learn[0])
        train_labels = net.check_labels(learn[1], len(train_pixels))
        for index in range(len(train_pixels)):
            p, y = train_pixels[index : index + 1], train_labels[index : index + 1]
            net.learn(p, y, callback=lambda _, trace: _sample(vectors, net, p[0], int(y[0]), trace, 0, True))
        vectors.check(layout.pack(net))
        vectors.flush((net.rule.shift_w, net.rule.shift_th))
        net.flush()
        vectors.check(layout.pack(net))
    p = net.check_pixels(pixels)
    y = net.check_labels(labels, len(p))
    trace = net.forward(p)
    for index in range(len(p)):
        _sample(vectors, net, p[index], int(y[index]), trace, index, False)
    vectors.check(layout.pack(net))
    return vectors


@dataclass(frozen=True)
class CsimResult:
    """Outcome of a testbench run.

    Attributes
    ----------
    passed, failed : int
        The testbench's ``N passed, M failed``.
    returncode : int
        Its exit code (0 only when nothing failed).
    output : str
        Its stdout and stderr.
    """

    passed: int
    failed: int
    returncode: int
    output: str


def run_csim(
    project: str | os.PathLike[str], *, cxx: str = "g++", extra: Sequence[str] = (), ap_types: bool = False
) -> CsimResult:
    """Compile ``project``'s firmware and testbench into ``build/csim`` and run it on ``tb/``.

    ``ap_types`` builds on the vendor types (:func:`ap_types_include`, :data:`AP_TYPES_FLAGS`)
    instead of the portable ones.

    Raises
    ------
    ToolchainError
        When the compiler (or, with ``ap_types``, hls4ml) is missing.
    CompileError
        When the sources do not compile warning-free.
    RuntimeError
        When the testbench prints no summary line (crash or timeout).
    """
    root = Path(project)
    firmware = root / "firmware"
    build = root / "build"
    build.mkdir(parents=True, exist_ok=True)
    executable = build / "csim"
    if ap_types:
        extra = (*extra, "-isystem", str(ap_types_include()), *AP_TYPES_FLAGS)
    compile_cxx(cxx, [firmware / "spikeforge.cpp", root / "tb" / TESTBENCH], executable,
                include=firmware, extra=extra)
    try:
        result = subprocess.run(
            [str(executable), str(root / "tb")], capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"csim: the testbench ran longer than {RUN_TIMEOUT} s") from None
    match = _SUMMARY.search(result.stdout)
    if match is None:
        raise RuntimeError(f"csim: the testbench printed no summary (exit {result.returncode})")
    return CsimResult(int(match[1]), int(match[2]), result.returncode, result.stdout + result.stderr)
