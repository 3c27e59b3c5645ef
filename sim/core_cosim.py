"""Co-simulate the whole core against :class:`model.core.CoreModel` (host side).

:func:`cosimulate` builds :class:`sim.core_harness.CoreHarness` for an integer checkpoint,
P lanes and queue depth Q (one build directory per design, cached by
:func:`sim.runner.build`), runs the bench :mod:`sim.tb.tb_core` on a set of samples and
returns its statistics (:class:`CosimReport`). Only the bench touches the simulator; this
module stays importable without cocotb running.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hw.core_config import CoreConfig, learning_refusal
from model.integer import IntegerNetwork
from sim import runner
from sim.core_harness import TOP, harness_verilog
from sim.tb.common import PATTERNS
from sim.toolchain import require

__all__ = ["BENCH", "QUICK_BUILD_ARGS", "WAVE_BYTES_PER_CYCLE", "WAVE_FORMATS", "CosimReport", "build_core", "check_waves", "cosimulate"]

#: The cocotb bench module.
BENCH = "sim.tb.tb_core"
#: Waveform format each simulator writes (Verilator: VCD, Icarus: FST).
WAVE_FORMATS = {"verilator": ".vcd", "icarus": ".fst"}
#: Waveform bytes per simulated cycle, measured on the digits core at P = 2 (VCD from
#: Verilator: 98 MB for one 20,760-cycle inference); wider cores write more.
WAVE_BYTES_PER_CYCLE = 4_700
#: Where each simulator leaves the waveform: Verilator in the run directory, Icarus (cocotb's
#: dump module) in the build directory.
_WAVE_FILES = {"verilator": ("run", "dump.vcd"), "icarus": ("build", f"{TOP}.fst")}
#: Extra Verilator options of a quick build: compile without C++ optimisation (a few times
#: faster to build, a few times slower to run; right for small networks and few cycles).
QUICK_BUILD_ARGS = ("-CFLAGS", "-O0")


@dataclass(frozen=True)
class CosimReport:
    """Outcome of :func:`cosimulate`.

    Attributes
    ----------
    passed : bool
        The bench ran to the end with no mismatch.
    stats : dict
        The bench's statistics (``samples``, ``mismatches``, ``mismatches_by_kind``,
        ``accuracy``, ``cycles_per_inference``, ``model_cycles_per_inference``,
        ``ideal_cycles_per_inference``, ``cycles_per_learning_step``,
        ``model_cycles_per_learning_step``, ``simulated_cycles``, ``seconds``,
        ``model_seconds``, ``sim_cycles_per_second``, ``wall_cycles_per_second``); empty
        when the simulation ended abnormally.
    log : Path
        The simulator log.
    build_seconds : float
        Verilog generation and compilation (0 when cached).
    """

    passed: bool
    stats: dict[str, Any]
    log: Path
    build_seconds: float


def check_waves(simulator: str, path: str | Path) -> None:
    """Raise ``ValueError`` naming ``waves`` unless ``path`` has the simulator's suffix."""
    suffix = Path(path).suffix
    if suffix != WAVE_FORMATS[simulator]:
        raise ValueError(f"waves: {simulator} writes {WAVE_FORMATS[simulator]} waveforms, not {suffix or 'no suffix'!r}")


def build_core(
    network: IntegerNetwork, config: CoreConfig, simulator: str, *, waves: bool = False,
    optimize: bool = True, build_root: str | Path | None = None,
    announce: Callable[[str], None] | None = None,
) -> runner.Build:
    """Generate and compile the harness for ``network`` (cached per Verilog text and options).

    ``optimize=False`` compiles Verilator's C++ without optimisation (:data:`QUICK_BUILD_ARGS`);
    ``announce`` gets one line before a compilation starts (:func:`sim.runner.build`).
    """
    verilog = harness_verilog(config, config.initial_contents(network), simulator=simulator)
    digest = hashlib.sha256(verilog.encode()).hexdigest()[:12]
    quick = simulator == "verilator" and not optimize
    variant = f"p{config.lanes}_q{config.queue_depth}_{digest}" + "_quick" * quick + "_waves" * waves
    return runner.build(
        TOP, verilog, simulator, variant=variant, build_root=build_root, waves=waves,
        build_args=QUICK_BUILD_ARGS if quick else (), public=False, announce=announce,
    )


def cosimulate(
    checkpoint: str | Path,
    pixels: np.ndarray,
    labels: np.ndarray,
    *,
    lanes: int,
    queue_depth: int,
    target: str = "sim",
    counters: str | None = None,
    learn: bool = False,
    simulator: str = "verilator",
    load: str | Path | None = None,
    input_pattern: str = "always",
    output_pattern: str = "always",
    corrupt: str | None = None,
    faults: str | Path | None = None,
    seed: int = 0,
    waves: str | Path | None = None,
    optimize: bool = True,
    build_root: str | Path | None = None,
    run_name: str = "run",
    progress: Callable[[int], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> CosimReport:
    """Co-simulate ``pixels`` (u8, (N, n_0)) on the core built from ``checkpoint``.

    Parameters
    ----------
    checkpoint : path
        Integer checkpoint (the memory images).
    pixels, labels : numpy.ndarray
        Samples and labels (labels are the learning targets and give the accuracy).
    lanes, queue_depth : int
        P and Q.
    target, counters : str
        The core as generated for ``target`` (single-port weight banks on iCE40) with the
        counter set ``counters`` (default: the target's; :meth:`CoreConfig.from_network`).
    learn : bool
        Learn on every sample instead of inferring.
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    load : path, optional
        A checkpoint of the same geometry loaded through the host port before the samples.
    input_pattern, output_pattern : str
        Stall patterns of the input and result streams (:data:`sim.tb.common.PATTERNS`).
    corrupt : str, optional
        ``"model"``: perturb the reference (the run must then fail).
    faults : path, optional
        A JSON file of bit flips (``faults`` of sim/tb/tb_core.py) written into the core's
        memories through the host port before the first sample, and into the model.
    seed : int
        Seeds the stall patterns.
    waves : path, optional
        Write the waveform here (VCD with Verilator, FST with Icarus: :data:`WAVE_FORMATS`).
    optimize : bool
        Optimised C++ for Verilator (default); ``False`` builds several times faster and
        simulates several times slower (:func:`build_core`).
    build_root, run_name : optional
        Build cache and run directory name (:func:`sim.runner.run`).
    progress : callable, optional
        Called with the number of finished samples while the simulation runs, first with 0
        when the build is ready.
    announce : callable, optional
        Called with one line before the simulation is compiled (not when it is cached).

    Raises
    ------
    ValueError
        For a bad pattern, simulator, waveform suffix or sample array (naming it), or a
        network the core cannot build.
    sim.toolchain.ToolchainError
        When the simulator is missing.
    """
    require(simulator)  # an unknown or missing simulator fails before any generation
    for name, value in (("input_pattern", input_pattern), ("output_pattern", output_pattern)):
        if value not in PATTERNS or value == "never":
            raise ValueError(f"{name}: {value!r} is not one of {', '.join(p for p in PATTERNS if p != 'never')}")
    if waves is not None:
        check_waves(simulator, waves)
    network = IntegerNetwork.load(checkpoint)
    config = CoreConfig.from_network(network, lanes=lanes, queue_depth=queue_depth, target=target, counters=counters)
    pixels = network.check_pixels(np.asarray(pixels))
    labels = network.check_labels(np.asarray(labels), len(pixels))
    if learn and not config.learnable:
        raise ValueError(f"learn: {learning_refusal(network.spec, config)}")
    if load is not None:
        IntegerNetwork.load(load)  # fail early on a bad checkpoint
    started = time.perf_counter()
    build = build_core(
        network, config, simulator, waves=waves is not None, optimize=optimize, build_root=build_root,
        announce=announce,
    )
    build_seconds = time.perf_counter() - started
    if progress is not None:
        progress(0)
    directory = build.directory / "runs" / run_name
    directory.mkdir(parents=True, exist_ok=True)
    samples = directory / "samples.npz"
    np.savez(samples, pixels=pixels.astype(np.uint8), labels=labels.astype(np.int64))
    progress_file = directory / "progress.txt"
    progress_file.unlink(missing_ok=True)
    options = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "load": None if load is None else str(Path(load).resolve()),
        "samples": str(samples),
        "learn": bool(learn),
        "lanes": lanes,
        "queue_depth": queue_depth,
        "target": target,
        "counters": counters,
        "input_pattern": input_pattern,
        "output_pattern": output_pattern,
        "corrupt": corrupt,
        "faults": None if faults is None else str(Path(faults).resolve()),
        "seed": seed,
        "progress": str(progress_file),
    }
    outcome: dict[str, Any] = {}

    def simulate() -> None:
        try:
            outcome["result"] = runner.run(
                build, BENCH, config=options, name=run_name, check=False, waves=waves is not None
            )
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=simulate, daemon=True)
    worker.start()
    seen = 0
    while worker.is_alive():
        worker.join(0.2)
        if progress is not None and progress_file.is_file():
            text = progress_file.read_text().strip()
            if text.isdigit() and int(text) != seen:
                seen = int(text)
                progress(seen)
    if "error" in outcome:
        raise outcome["error"]
    result: runner.CosimResult = outcome["result"]
    if waves is not None:
        where, name = _WAVE_FILES[simulator]
        dump = (directory if where == "run" else build.directory) / name
        if dump.is_file():
            Path(waves).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(os.fspath(dump), os.fspath(waves))
    stats = result.stats.get("cosim", {})
    return CosimReport(result.passed and stats.get("mismatches") == 0, stats, result.log, build_seconds)
