"""The native engine: the HLS target's C++ core as a shared library, called through ctypes.

:class:`CsimNetwork` wraps an :class:`~model.integer.IntegerNetwork` and runs its samples in
the C++ of :mod:`hw.hls` (``spikeforge::run``, the function the HLS top calls) instead of
numpy. The learned state stays in C between calls; whole batches of samples go in one call
as u8 pixels and int64 labels (integers only, no float conversion), so host shuffling,
schedules and reports stay in Python and are identical to the model's: the same seed gives
the same checkpoint, bit for bit. It offers the methods :func:`model.integer.fit` and the
``learn`` / ``eval`` commands use (``rule``, ``learn``, ``flush``, ``evaluate``, ``save``,
``formats_dict``).

Builds are cached by a hash of the generated sources, the compiler and its flags, under
``$SPIKEFORGE_CACHE`` (default ``$XDG_CACHE_HOME/spikeforge`` or ``~/.cache/spikeforge``),
in ``hls/<hash>/``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hw.hls import ENGINE_SOURCE, STATE_ARRAYS, Layout, check_target, engine_sources
from model import metrics
from model.integer import Formats, IntegerNetwork, LearningRule
from model.spec import NetworkSpec
from sim.cli import CLIError
from sim.hls_csim import CXX_FLAGS, CompileError, compile_cxx, find_compiler
from sim.toolchain import ToolchainError

__all__ = ["CACHE_ENV", "ENGINES", "CsimNetwork", "build_engine", "cache_dir", "engine_network"]

#: Engines of ``learn --engine`` and ``eval --engine``.
ENGINES = ("model", "csim")
#: Environment variable naming the build cache folder.
CACHE_ENV = "SPIKEFORGE_CACHE"
#: Extra flags of the shared library (after :data:`~sim.hls_csim.CXX_FLAGS`; integer code, so
#: the optimisation level and the host's instruction set never change a result).
LIBRARY_FLAGS = ("-O3", "-march=native", "-fPIC", "-shared")
#: Samples per engine call while learning (progress granularity, no effect on results).
CHUNK = 256

_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_INT = ctypes.c_int
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "sf_layout": (None, [_P]),
    "sf_create": (_P, []),
    "sf_destroy": (None, [_P]),
    "sf_load": (None, [_P, _P, _P, _P, _P, _P, _I64, _I64]),
    "sf_store": (None, [_P, _P, _P, _P, _P, _P, _P]),
    "sf_run": (None, [_P, _INT, _P, _P, _I64, _INT, _INT, _P, _P, _P, _P]),
    "sf_flush": (None, [_P, _INT, _INT]),
}


def cache_dir() -> Path:
    """The build cache folder (:data:`CACHE_ENV`, else the XDG cache folder)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spikeforge"


def _compiler_id(cxx: str) -> str:
    """The compiler's path, version and what ``-march=native`` means on this host."""
    path = find_compiler(cxx)
    outputs = [
        subprocess.run([path, *flags], capture_output=True, text=True, check=False).stdout
        for flags in (["--version"], ["-march=native", "-Q", "--help=target"])
    ]
    return "\n".join([path, *outputs])


def build_engine(net: IntegerNetwork, *, cxx: str = "g++") -> Path:
    """The shared library of ``net``'s structure (P = 1), compiled once and cached.

    Raises
    ------
    ToolchainError
        When the compiler is missing.
    CompileError
        When the sources do not compile.
    ValueError
        When the target cannot express ``net`` (:func:`hw.hls.check_target`).
    """
    layout = check_target(net, 1)
    sources = engine_sources(net, layout)
    digest = hashlib.sha256()
    for part in (_compiler_id(cxx), *CXX_FLAGS, *LIBRARY_FLAGS, *sorted(sources.items())):
        digest.update(repr(part).encode())
    folder = cache_dir() / "hls" / digest.hexdigest()[:24]
    library = folder / "libspikeforge.so"
    if library.is_file():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        for name, text in sources.items():
            (Path(scratch) / name).write_text(text, encoding="utf-8")
        built = Path(scratch) / library.name
        compile_cxx(cxx, [Path(scratch) / ENGINE_SOURCE], built, include=Path(scratch), extra=LIBRARY_FLAGS)
        os.replace(built, library)  # atomic: concurrent builds of one hash agree
    return library


def _pointer(array: np.ndarray) -> int:
    return array.ctypes.data


class CsimNetwork:
    """An integer network whose samples run in the HLS target's C++ (the ``csim`` engine).

    Parameters
    ----------
    net : IntegerNetwork
        Its values, accumulators, LFSR state and pending count are loaded into the engine;
        ``net`` itself is not modified (:meth:`network` reads the learned state back).
    cxx : str
        C++ compiler of the build.

    Raises
    ------
    ToolchainError, CompileError, ValueError
        As :func:`build_engine`.
    """

    def __init__(self, net: IntegerNetwork, *, cxx: str = "g++") -> None:
        self._net = net
        self._rule = net.rule
        self._layout = Layout.of(net, 1)
        self._lib = ctypes.CDLL(str(build_engine(net, cxx=cxx)))
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(self._lib, name)
            function.restype, function.argtypes = restype, argtypes
        sizes = np.zeros(6, np.int64)
        self._lib.sf_layout(_pointer(sizes))
        layout = self._layout
        expected = (layout.layers, net.spec.timesteps, 1, layout.neuron_total, layout.weight_total, layout.channel_total)
        if tuple(sizes) != expected:
            raise RuntimeError(f"csim engine: library layout {tuple(sizes)} is not {expected}")
        self._handle = self._lib.sf_create()
        state = self._layout.pack(net)
        arrays = [np.ascontiguousarray(state[name], np.int64) for name in STATE_ARRAYS]
        self._lib.sf_load(self._handle, *map(_pointer, arrays), state["lfsr"], state["pending"])

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle:
            self._lib.sf_destroy(handle)
            self._handle = None

    # The network's description ------------------------------------------------------

    @property
    def spec(self) -> NetworkSpec:
        return self._net.spec

    @property
    def formats(self) -> Formats:
        return self._net.formats

    @property
    def rule(self) -> LearningRule:
        """The update rule; only the shifts may change (rounding and B are compiled in)."""
        return self._rule

    @rule.setter
    def rule(self, rule: LearningRule) -> None:
        if (rule.rounding, rule.batch) != (self._rule.rounding, self._rule.batch):
            raise ValueError(
                f"rule: the csim engine was built for rounding {self._rule.rounding!r} and batch "
                f"{self._rule.batch}; only the shifts can change"
            )
        self._rule = rule

    def check_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """As :meth:`IntegerNetwork.check_pixels`."""
        return self._net.check_pixels(pixels)

    def check_labels(self, labels: np.ndarray, count: int) -> np.ndarray:
        """As :meth:`IntegerNetwork.check_labels`."""
        return self._net.check_labels(labels, count)

    # Samples ---------------------------------------------------------------------------

    def run(
        self, pixels: np.ndarray, labels: np.ndarray | None = None, *, learn: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Infer (or learn from) samples in order in one engine call.

        Returns
        -------
        (predictions, counts, layer_spikes, unit_spikes)
            int64 (N,), (N, classes), (N, L + 1) spikes per layer (encoder first), and
            every neuron's spikes summed over the samples and steps in the layout of
            :class:`hw.hls.Layout` (P = 1).
        """
        p = self.check_pixels(pixels)
        y = np.zeros(len(p), np.int64) if labels is None else self.check_labels(labels, len(p))
        if learn:
            self._net._check_learnable()
        n = len(p)
        pixels_u8 = np.ascontiguousarray(p, np.uint8)
        labels_i64 = np.ascontiguousarray(y, np.int64)
        predictions = np.zeros(n, np.int64)
        counts = np.zeros((n, self.spec.classes), np.int64)
        layer_spikes = np.zeros((n, self._layout.layers + 1), np.int64)
        unit_spikes = np.zeros(self._layout.neuron_total, np.int64)
        self._lib.sf_run(
            self._handle, int(learn), _pointer(pixels_u8), _pointer(labels_i64), n,
            self._rule.shift_w, self._rule.shift_th, _pointer(predictions), _pointer(counts),
            _pointer(layer_spikes), _pointer(unit_spikes),
        )
        return predictions, counts, layer_spikes, unit_spikes

    def learn(
        self,
        pixels: np.ndarray,
        labels: np.ndarray,
        *,
        callback: Callable[[int, None], None] | None = None,
    ) -> int:
        """Learn from a stream of samples in order (as :meth:`IntegerNetwork.learn`).

        ``callback(samples, None)`` is called after every :data:`CHUNK` samples.

        Returns
        -------
        int
            Samples whose prediction (made while learning) was correct.
        """
        p = self.check_pixels(pixels)
        y = self.check_labels(labels, len(p))
        correct = 0
        for start in range(0, len(p), CHUNK):
            predictions = self.run(p[start : start + CHUNK], y[start : start + CHUNK], learn=True)[0]
            correct += int(np.sum(predictions == y[start : start + CHUNK]))
            if callback is not None:
                callback(len(predictions), None)
        return correct

    def flush(self) -> None:
        """Apply a pending partial batch (no-op when none is pending)."""
        self._lib.sf_flush(self._handle, self._rule.shift_w, self._rule.shift_th)

    def evaluate(self, pixels: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        """Test metrics (:func:`model.metrics.summarize`), as :meth:`IntegerNetwork.evaluate`."""
        y = self.check_labels(labels, len(self.check_pixels(pixels)))
        predictions, _, _, unit_spikes = self.run(pixels)
        layout = self._layout
        units = [
            unit_spikes[layout.neuron_slice(layer)]
            .astype(np.float64)
            .reshape(self.spec.layer_shape(layer))
            for layer in self.spec.spiking_layers()
        ]
        return metrics.summarize(self.spec, units, len(y), predictions, y)

    # State -------------------------------------------------------------------------------

    def network(self) -> IntegerNetwork:
        """A new :class:`IntegerNetwork` holding the engine's learned state and rule."""
        layout = self._layout
        state = {name: np.zeros(layout.size(name), np.int64) for name in STATE_ARRAYS}
        registers = np.zeros(2, np.int64)
        self._lib.sf_store(self._handle, *(_pointer(state[name]) for name in STATE_ARRAYS), _pointer(registers))
        arrays = layout.unpack(state)
        net = IntegerNetwork(
            self.spec, self.formats, arrays["weights"], arrays["thresholds"],
            decoder=arrays["decoder"], rule=self._rule, lfsr_state=int(registers[0]),
        )
        net.dw, net.dth, net.dd, net.pending = arrays["dw"], arrays["dth"], arrays["dd"], int(registers[1])
        return net

    def formats_dict(self) -> dict[str, Any]:
        """As :meth:`IntegerNetwork.formats_dict` (the LFSR state read from the engine)."""
        return self.network().formats_dict()

    def save(self, directory: str | os.PathLike[str], *, training: Mapping[str, Any] | None = None) -> Path:
        """Write the learned state as an integer checkpoint (:meth:`IntegerNetwork.save`)."""
        return self.network().save(directory, training=training)


def engine_network(net: IntegerNetwork, engine: str) -> IntegerNetwork | CsimNetwork:
    """``net`` itself for ``engine = "model"``, a :class:`CsimNetwork` for ``"csim"``.

    Raises
    ------
    ValueError
        Naming ``--engine`` for another name.
    CLIError
        When the compiler is missing or the build fails (one line).
    """
    if engine not in ENGINES:
        raise ValueError(f"--engine: {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == "model":
        return net
    try:
        return CsimNetwork(net)
    except (ToolchainError, CompileError) as error:
        raise CLIError(f"--engine csim: {str(error).splitlines()[0]}") from None
