"""Design-space sweeps: a grid spec expanded into points, each point a Ray task.

A spec (TOML or JSON, :func:`load_spec`) names the stages to run and one or more grids
(``[grid]``, or ``[[grid]]`` for several whose points are concatenated). Every grid key is a
list of values (a single value stands for a list of one); the points are the product of the
lists. Keys and defaults (:data:`AXES`): ``dataset`` (digits), ``arch`` (128FC-100FC),
``epochs`` (the dataset's recipe), ``batch`` (1), ``timesteps`` (8), ``population`` (10),
``decoder`` (last), ``bits`` ("" = the recipe's formats), ``seed`` (0), ``lanes`` P (2),
``queue_depth`` Q (16) and ``target`` (none, or an FPGA of :data:`sim.synth.TARGETS`).

:func:`expand` checks everything before any job starts: a bad key or value, or a core that
does not fit its target (:meth:`CoreConfig.for_target`, which names the P that do), is one
``ValueError`` naming the key and the allowed values.

Each point runs the stages ``learn -> estimate -> gen -> synth`` (``cosim`` optional) by
calling the ``spikeforge`` subcommands in the worker (:func:`sim.commands.demo.run_step`).
Points that share their learning options (dataset, arch, learn options, seed) share one
learn task: its checkpoint goes to ``DIR/learn/<learn id>/``, the point's files (estimate
JSON, Verilog, synthesis and co-simulation reports, a log) to ``DIR/points/<point id>/``.
Ids are hashes of the parameters (and of the stages and their settings for a point); a
folder's ``result.json`` is written atomically last, so a rerun reuses every finished point
and learn task and recomputes the rest. A failed stage fails its point only: the row holds
its one-line error.

The table (:data:`ROW_FIELDS`, ``DIR/results.json`` and ``DIR/results.csv``): the point's
parameters; ``accuracy`` and ``spikes_per_inference`` of the learned network on the whole
test split (``learn``); cycles per inference and per learning step, synaptic operations and
energy of the core model on the first ``[estimate] samples`` test and training samples
(``estimate``); ``fits``, ``fmax_mhz``, ``logic`` (LUT4 slots on the ECP5, logic cells on
the iCE40), ``block_ram`` (DP16KD / EBR blocks) and ``dsp`` (``synth``); latency at Fmax in
ms; ``cosim_mismatches``; ``pareto`` (on the front of accuracy against latency per learning
step, or cycles per learning step without synthesis); ``status``, ``error``, ``seconds``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import itertools
import json
import os
import shutil
import sys
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw.core_config import DEFAULT_QUEUE_DEPTH, MAX_LANES, MAX_QUEUE_DEPTH, CoreConfig, learning_refusal
from model.checks import check_field
from model.data import load_dataset
from model.energy import TABLES
from model.files import read_json, read_text
from model.integer import Formats, recipe
from model.spec import DECODERS, DEFAULT_ARCH
from sim.synth import TARGETS as FPGA_TARGETS
from sim.toolchain import SIMULATORS, ToolchainError

#: Stages of a point, in the order they run.
STAGES = ("learn", "estimate", "gen", "synth", "cosim")
#: Stages of a spec that names none.
DEFAULT_STAGES = ("learn", "estimate")
#: ``target`` values: no FPGA (the core is built for the simulator), or an FPGA.
NO_TARGET = "none"
SWEEP_TARGETS = (NO_TARGET, *FPGA_TARGETS)
#: Datasets of the integer model's on-line learning (``spikeforge learn``).
SWEEP_DATASETS = ("digits", "mnist10k")
#: Grid keys and their defaults (``epochs``: ``None`` = the dataset's recipe).
AXES: Mapping[str, Any] = {
    "dataset": "digits",
    "arch": DEFAULT_ARCH,
    "epochs": None,
    "batch": 1,
    "timesteps": 8,
    "population": 10,
    "decoder": "last",
    "bits": "",
    "seed": 0,
    "lanes": 2,
    "queue_depth": DEFAULT_QUEUE_DEPTH,
    "target": NO_TARGET,
}
#: Grid keys that decide the learned network (a learn task each).
LEARN_AXES = ("dataset", "arch", "epochs", "batch", "timesteps", "population", "decoder", "bits", "seed")
#: Settings sections: key -> default, for every stage with settings.
SETTINGS: Mapping[str, Mapping[str, Any]] = {
    "estimate": {"samples": 100, "table": "horowitz45"},
    "synth": {"seed": 1},
    "cosim": {"samples": 2, "learn": True, "sim": "verilator"},
}
#: Top-level keys of a spec.
SPEC_KEYS = ("stages", "grid", "data_root", *SETTINGS)
#: Synthesis resources of the table per FPGA family: (logic, block RAM, DSP), nextpnr names.
RESOURCES = {
    "ice40-up5k": ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP"),
    "ecp5-25k": ("TRELLIS_COMB", "DP16KD", "MULT18X18D"),
    "ecp5-45k": ("TRELLIS_COMB", "DP16KD", "MULT18X18D"),
    "ecp5-85k": ("TRELLIS_COMB", "DP16KD", "MULT18X18D"),
}
#: Columns of the results table, in order.
ROW_FIELDS = (
    "id", "status", "error", *AXES,
    "accuracy", "spikes_per_inference", "synaptic_ops_per_inference",
    "cycles_per_inference", "cycles_per_learning_step",
    "energy_per_inference", "energy_per_learning_step", "energy_unit",
    "fits", "fmax_mhz", "logic", "logic_available", "block_ram", "dsp",
    "latency_ms_per_inference", "latency_ms_per_learning_step",
    "cosim_mismatches", "pareto", "learn_id", "seconds",
)
#: The folder's files (relative to a learn or point folder).
RESULT = "result.json"
LOG = "log.txt"

EXAMPLE = """\
# A spikeforge sweep spec (TOML; JSON with the same keys works too). Every [grid] key is a
# list of values; the points are the product of the lists. Keys: dataset, arch, epochs,
# batch, timesteps, population, decoder, bits, seed (learning), lanes, queue_depth, target
# (none, ice40-up5k, ecp5-25k, ecp5-45k, ecp5-85k). Several grids: [[grid]] tables, concatenated.
# Run: spikeforge sweep sweep.toml --out runs/sweep
stages = ["learn", "estimate"]  # of learn, estimate, gen, synth, cosim

[grid]
dataset = ["digits"]
arch = ["32FC-10FC"]
population = [1]
epochs = [1]
seed = [0]
lanes = [1, 2]
queue_depth = [16]
target = ["none"]

[estimate]
samples = 20
table = "horowitz45"
"""


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its parameters (every key of :data:`AXES`) and ids."""

    params: Mapping[str, Any]
    id: str
    learn_id: str

    @property
    def build_target(self) -> str:
        """The ``gen --target`` of the point's core (``sim`` without an FPGA)."""
        return "sim" if self.params["target"] == NO_TARGET else self.params["target"]

    def learn_params(self) -> dict[str, Any]:
        """The parameters that decide the learned network."""
        return {key: self.params[key] for key in LEARN_AXES}


@dataclass(frozen=True)
class Sweep:
    """An expanded spec: the points, the stages and the stages' settings."""

    points: tuple[Point, ...]
    stages: tuple[str, ...]
    settings: Mapping[str, Mapping[str, Any]]
    data_root: str | None = None

    def config(self) -> dict[str, Any]:
        """What the worker functions need besides a point (JSON-ready)."""
        return {"stages": list(self.stages), "settings": dict(self.settings), "data_root": self.data_root}


@dataclass
class Outcome:
    """The table of a run and how many points were computed, reused and failed."""

    rows: list[dict[str, Any]]
    computed: int = 0
    reused: int = 0
    failed: int = 0
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)


# Spec -------------------------------------------------------------------------------------


def load_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a spec file: ``.toml`` (tomllib) or ``.json``.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file, another suffix, or a parse error (with its line).
    """
    path = Path(path)
    if path.suffix not in (".toml", ".json"):
        raise ValueError(f"SPEC: {str(path)!r} must end in .toml or .json")
    if not path.is_file():
        raise FileNotFoundError(f"SPEC: {str(path)!r} is {'a folder' if path.exists() else 'missing'}, not a file")
    if path.suffix == ".json":
        spec = read_json(path)
    else:
        text = read_text(path)
        try:
            spec = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path.name}: not valid TOML ({str(error).splitlines()[0]})") from None
        except RecursionError:
            raise ValueError(f"{path.name}: not valid TOML (nested too deeply)") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{path.name}: expected a table of keys ({', '.join(SPEC_KEYS)})")  # noqa: TRY004 - a spec error
    return spec


def _unknown(where: str, given: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in given:
        if key not in allowed:
            raise ValueError(f"{where}{key}: unknown key (allowed {', '.join(allowed)})")


def _choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _check_value(name: str, key: str, value: Any) -> Any:
    """One grid value, checked and normalised (``name`` is the key as the messages show it)."""
    if key == "dataset":
        return _choice(name, value, SWEEP_DATASETS)
    if key == "decoder":
        return _choice(name, value, DECODERS)
    if key == "target":
        return _choice(name, value, SWEEP_TARGETS)
    if key == "arch":
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name}: {value!r} is not an FC architecture such as '128FC-100FC'")
        return value
    if key == "bits":
        if not isinstance(value, str):
            raise ValueError(f"{name}: {value!r} is not formats text such as 'v=12,dw=16'")
        try:
            Formats.parse(value)
        except ValueError as error:
            raise ValueError(f"{name}: {str(error).removeprefix('bits: ')}") from None
        return value
    bounds = {
        "epochs": (1, None), "batch": (1, None), "timesteps": (1, 1024), "population": (1, None),
        "seed": (0, None), "lanes": (1, MAX_LANES), "queue_depth": (1, MAX_QUEUE_DEPTH),
    }
    if key == "epochs" and value is None:
        return None
    minimum, maximum = bounds[key]
    return check_field(name, value, minimum=minimum, maximum=maximum)


def _settings(spec: Mapping[str, Any], stages: Sequence[str]) -> dict[str, dict[str, Any]]:
    settings: dict[str, dict[str, Any]] = {}
    for section, defaults in SETTINGS.items():
        given = spec.get(section, {})
        if not isinstance(given, dict):
            raise ValueError(f"{section}: expected a table of keys ({', '.join(defaults)})")  # noqa: TRY004 - a spec error
        _unknown(f"{section}.", given, tuple(defaults))
        values = {**defaults, **given}
        if section == "estimate":
            check_field("estimate.samples", values["samples"], minimum=1)
            _choice("estimate.table", values["table"], tuple(TABLES))
        elif section == "synth":
            check_field("synth.seed", values["seed"], minimum=1)
        else:
            check_field("cosim.samples", values["samples"], minimum=1)
            if not isinstance(values["learn"], bool):
                raise ValueError(f"cosim.learn: {values['learn']!r} is not one of true, false")
            _choice("cosim.sim", values["sim"], SIMULATORS)
        if section in stages:
            settings[section] = values
    return settings


def _stages(spec: Mapping[str, Any]) -> tuple[str, ...]:
    stages = spec.get("stages", list(DEFAULT_STAGES))
    if not isinstance(stages, list) or not stages:
        raise ValueError(f"stages: expected a non-empty list of {', '.join(STAGES)}")
    for stage in stages:
        _choice("stages", stage, STAGES)
    if "learn" not in stages:
        raise ValueError("stages: must include 'learn' (every point learns its network)")
    if "synth" in stages and "gen" not in stages:
        raise ValueError("stages: 'synth' needs 'gen' (it synthesizes the generated Verilog)")
    return tuple(stage for stage in STAGES if stage in stages)


def _grid_points(grid: Any, where: str) -> Iterator[dict[str, Any]]:
    if not isinstance(grid, dict):
        raise ValueError(f"{where}: expected a table of keys ({', '.join(AXES)})")  # noqa: TRY004 - a spec error
    _unknown(f"{where}.", grid, tuple(AXES))
    axes: list[list[Any]] = []
    for key, default in AXES.items():
        values = grid.get(key, [default])
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise ValueError(f"{where}.{key}: empty list (give at least one value)")
        checked = [_check_value(f"{where}.{key}", key, value) for value in values]
        axes.append(list(dict.fromkeys(checked)))
    for combination in itertools.product(*axes):
        point = dict(zip(AXES, combination))
        if point["epochs"] is None:
            point["epochs"] = recipe(point["dataset"], "scratch").epochs
        yield point


def digest(data: Any) -> str:
    """A stable id of JSON-ready ``data``: 12 hex digits of the SHA-256 of its sorted JSON."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def expand(spec: Mapping[str, Any], *, source: str = "spec") -> Sweep:
    """Check a spec and expand it into points (see the module docstring).

    Every learned network is built from its seed (as ``learn`` builds it) and every core
    checked against its target's memories, so nothing that can be refused is left to the jobs.

    Raises
    ------
    ValueError, FileNotFoundError
        One line ``"{source}: {key}: ..."`` naming the key and the allowed values.
    """
    try:
        return _expand(spec)
    except (ValueError, FileNotFoundError) as error:
        raise type(error)(f"{source}: {str(error).splitlines()[0]}") from None


def _expand(spec: Mapping[str, Any]) -> Sweep:
    from sim.synth import get_target, require_tools
    from sim.toolchain import require

    _unknown("", spec, SPEC_KEYS)
    stages = _stages(spec)
    settings = _settings(spec, stages)
    data_root = spec.get("data_root")
    if data_root is not None and not isinstance(data_root, str):
        raise ValueError(f"data_root: {data_root!r} is not a folder path")
    grids = spec.get("grid", {})
    grids = grids if isinstance(grids, list) else [grids]
    if not grids:
        raise ValueError("grid: empty list (give at least one [[grid]] table)")
    params = []
    for index, grid in enumerate(grids):
        where = "grid" if len(grids) == 1 else f"grid[{index}]"
        params += [(where, point) for point in _grid_points(grid, where)]
    try:
        if "synth" in stages:
            for target in dict.fromkeys(p["target"] for _, p in params if p["target"] != NO_TARGET):
                require_tools(get_target(target))
        if "cosim" in stages:
            require(settings["cosim"]["sim"])
    except ToolchainError as error:
        raise ValueError(f"stages: {error}") from None
    settings_id = {stage: settings.get(stage) for stage in stages}
    networks: dict[str, Any] = {}
    points: list[Point] = []
    seen: set[str] = set()
    for where, point in params:
        learn = {key: point[key] for key in LEARN_AXES}
        learn_id = digest(learn)
        if learn_id not in networks:
            networks[learn_id] = _network(learn, where, data_root)
        point_id = digest({"point": point, "stages": settings_id})
        if point_id in seen:  # the same point in two grids runs once
            continue
        seen.add(point_id)
        _check_core(networks[learn_id], point, where, stages, settings)
        points.append(Point(params=point, id=point_id, learn_id=learn_id))
    return Sweep(points=tuple(points), stages=stages, settings=settings, data_root=data_root)


def _network(learn: Mapping[str, Any], where: str, data_root: str | None) -> Any:
    """The network ``learn`` starts from (as the learn stage builds it)."""
    from sim.cli import build_parser
    from sim.commands.learn import build_network

    dataset = load_dataset(learn["dataset"], root=data_root)
    args = build_parser().parse_args(learn_argv(learn, Path("unused"), data_root))
    try:
        network, _ = build_network(args, dataset)
    except ValueError as error:
        raise ValueError(f"{where}: {error} (arch {learn['arch']!r}, population {learn['population']})") from None
    return network


def _check_core(
    network: Any, point: Mapping[str, Any], where: str, stages: Sequence[str], settings: Mapping[str, Any]
) -> None:
    target = "sim" if point["target"] == NO_TARGET else point["target"]
    try:
        config = CoreConfig.for_target(network, lanes=point["lanes"], queue_depth=point["queue_depth"], target=target)
    except ValueError as error:
        raise ValueError(
            f"{where}.lanes: P = {point['lanes']}, Q = {point['queue_depth']} on {point['target']} "
            f"({point['arch']}, bits {point['bits'] or 'default'}): {error}"
        ) from None
    if "cosim" in stages and settings["cosim"]["learn"] and not config.learnable:
        raise ValueError(f"{where}: cosim.learn: {learning_refusal(network.spec, config)}")


# Stages (run in the workers) --------------------------------------------------------------


def learn_argv(learn: Mapping[str, Any], folder: Path, data_root: str | None) -> list[str]:
    """``spikeforge learn`` of a learn task writing into ``folder``."""
    argv = [
        "learn", "--dataset", learn["dataset"], "--init", "scratch", "--arch", learn["arch"],
        "--timesteps", str(learn["timesteps"]), "--population", str(learn["population"]),
        "--decoder", learn["decoder"], "--batch", str(learn["batch"]), "--epochs", str(learn["epochs"]),
        "--seed", str(learn["seed"]), "--out", str(folder / "checkpoint"), "--json", str(folder / "learn.json"),
        "--no-progress",
    ]
    if learn["bits"]:
        argv += ["--bits", learn["bits"]]
    return argv + (["--data-root", data_root] if data_root else [])


def stage_argv(stage: str, point: Point, checkpoint: str, folder: Path, config: Mapping[str, Any]) -> list[str]:
    """The ``spikeforge`` subcommand of one hardware stage of ``point``."""
    p, settings = point.params, config["settings"].get(stage, {})
    core = ["--lanes", str(p["lanes"]), "--queue-depth", str(p["queue_depth"])]
    root = ["--data-root", config["data_root"]] if config.get("data_root") else []
    if stage == "estimate":
        return [
            "estimate", "--checkpoint", checkpoint, "--dataset", p["dataset"], *core,
            "--samples", str(settings["samples"]), "--table", settings["table"],
            "--json", str(folder / "estimate.json"), *root,
        ]
    if stage == "gen":
        return ["gen", "--checkpoint", checkpoint, *core, "--target", point.build_target, "--out", str(folder / "verilog")]
    if stage == "synth":
        return [
            "synth", "--gen-dir", str(folder / "verilog"), "--target", p["target"],
            "--json", str(folder / "synth.json"), "--seed", str(settings["seed"]), "--quiet",
        ]
    if stage == "cosim":
        return [
            "cosim", "--checkpoint", checkpoint, "--dataset", p["dataset"], "--samples", str(settings["samples"]),
            *(["--learn"] if settings["learn"] else []), *core, "--target", point.build_target,
            "--sim", settings["sim"], "--json", str(folder / "cosim.json"), "--no-progress", *root,
        ]
    raise ValueError(f"stage: {stage!r} is not one of {', '.join(STAGES[1:])}")


def one_line(error: BaseException) -> str:
    """An exception as one line; the type is named unless it is a user error."""
    from sim.cli import CLIError

    text = (str(error).strip().splitlines() or [""])[0]
    user = isinstance(error, (CLIError, ValueError, FileNotFoundError, PermissionError))
    return text if user and text else f"{type(error).__name__}: {text}".rstrip(": ")


def write_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def read_result(folder: Path) -> dict[str, Any] | None:
    """A folder's finished result (``None`` when missing, unreadable or failed)."""
    try:
        result = json.loads((folder / RESULT).read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and result.get("status") == "ok" else None


def _fresh(folder: Path) -> None:
    """An empty ``folder`` (the leftovers of an interrupted run removed)."""
    if folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _save(folder: Path, result: Mapping[str, Any]) -> None:
    """Write a task's ``result.json`` when its folder exists (a failure to create it is in
    the result the task returns)."""
    if folder.is_dir():
        write_atomic(folder / RESULT, result)


@contextlib.contextmanager
def _logged(folder: Path) -> Iterator[None]:
    """Send the subcommands' output (and any traceback) to ``folder/log.txt``."""
    with (folder / LOG).open("a", encoding="utf-8") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        yield


def _run(argv: Sequence[str], folder: Path) -> int:
    from sim.commands.demo import run_step

    with _logged(folder):
        print(f"$ spikeforge {' '.join(argv)}", flush=True)
        try:
            return run_step(argv)
        except BaseException:
            traceback.print_exc()
            raise


def learn_task(learn: Mapping[str, Any], folder: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Learn one network into ``folder`` (a Ray task); returns its result, never raises."""
    folder_path = Path(folder)
    start = time.monotonic()
    result: dict[str, Any] = {"learn": dict(learn), "status": "ok", "error": None}
    try:
        _fresh(folder_path)
        _run(learn_argv(learn, folder_path, config.get("data_root")), folder_path)
        report = json.loads((folder_path / "learn.json").read_text())
        result.update(
            checkpoint="checkpoint", accuracy=report["accuracy"],
            spikes_per_inference=report["spikes_per_inference"], formats=report["formats"],
        )
    except Exception as error:  # noqa: BLE001 - a failed learn fails its points, not the sweep
        result.update(status="failed", error=f"learn: {one_line(error)}")
    result["seconds"] = round(time.monotonic() - start, 2)
    _save(folder_path, result)
    return result


def point_task(
    point: Point, learned: Mapping[str, Any], learn_folder: str, folder: str, config: Mapping[str, Any]
) -> dict[str, Any]:
    """Run the hardware stages of ``point`` on its network, learned into ``learn_folder`` (a
    Ray task); returns its row, never raises."""
    folder_path = Path(folder)
    start = time.monotonic()
    row: dict[str, Any] = {name: None for name in ROW_FIELDS}
    row.update(point.params, id=point.id, learn_id=point.learn_id, status="ok")
    stage = "learn"
    try:
        _fresh(folder_path)
        if learned.get("status") != "ok":
            raise _PointFailed(learned.get("error") or "learn: failed")
        row.update(accuracy=learned["accuracy"], spikes_per_inference=learned["spikes_per_inference"])
        for stage in config["stages"][1:]:
            if stage == "synth" and point.params["target"] == NO_TARGET:
                continue
            checkpoint = str(Path(learn_folder) / learned["checkpoint"])
            code = _run(stage_argv(stage, point, checkpoint, folder_path, config), folder_path)
            if code not in (0, 1) or (code == 1 and stage != "cosim"):
                raise _PointFailed(f"{stage}: exit code {code}")
        row.update(figures(folder_path))
        if row["cosim_mismatches"]:
            raise _PointFailed(f"cosim: {row['cosim_mismatches']} mismatches against the core model")
    except _PointFailed as failure:
        row.update(status="failed", error=str(failure))
    except Exception as error:  # noqa: BLE001 - a failed stage fails its point, not the sweep
        if stage == "synth" and (folder_path / "synth.json").is_file():  # does not fit: a result
            row.update(figures(folder_path))
        else:
            row.update(status="failed", error=f"{stage}: {one_line(error)}")
    row["seconds"] = round(time.monotonic() - start, 2)
    _save(folder_path, row)
    return row


class _PointFailed(Exception):
    """A stage's failure, already one line."""


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def figures(folder: Path) -> dict[str, Any]:
    """The table's figures from a point folder's reports (estimate, synth, cosim)."""
    estimate = _read(folder / "estimate.json")
    synth = _read(folder / "synth.json")
    cosim = _read(folder / "cosim.json")
    values: dict[str, Any] = {
        key: estimate.get(key)
        for key in (
            "synaptic_ops_per_inference", "cycles_per_inference", "cycles_per_learning_step",
            "energy_per_inference", "energy_per_learning_step", "energy_unit",
        )
    }
    if synth:
        logic, ram, dsp = RESOURCES[synth["target"]]
        used = synth["utilisation"]
        fmax = synth["fmax_mhz"] if synth["fits"] else None
        values.update(
            fits=synth["fits"], fmax_mhz=fmax, logic=used.get(logic, {}).get("used"),
            logic_available=used.get(logic, {}).get("available"),
            block_ram=used.get(ram, {}).get("used"), dsp=used.get(dsp, {}).get("used"),
        )
        for kind in ("inference", "learning_step"):
            cycles = values[f"cycles_per_{kind}"]
            values[f"latency_ms_per_{kind}"] = cycles / fmax / 1000 if cycles is not None and fmax else None
    if cosim:
        values["cosim_mismatches"] = cosim.get("mismatches")
    return values


# Driver ------------------------------------------------------------------------------------


def pareto_axis(rows: Sequence[Mapping[str, Any]]) -> str:
    """The x column of the Pareto front: latency per learning step at Fmax when any point was
    synthesized, else cycles per learning step."""
    synthesized = any(row.get("latency_ms_per_learning_step") is not None for row in rows)
    return "latency_ms_per_learning_step" if synthesized else "cycles_per_learning_step"


def mark_pareto(rows: list[dict[str, Any]]) -> str:
    """Set each row's ``pareto`` (no other row is at least as accurate and at least as fast,
    and better in one); returns the x column used (:func:`pareto_axis`)."""
    from sim.plots import pareto_front

    axis = pareto_axis(rows)
    usable = [row for row in rows if row.get("accuracy") is not None and row.get(axis) is not None]
    front = pareto_front([row[axis] for row in usable], [row["accuracy"] for row in usable])
    for row in rows:
        row["pareto"] = None
    for row, on in zip(usable, front):
        row["pareto"] = on
    return axis


def write_table(rows: list[dict[str, Any]], out: Path) -> dict[str, str]:
    """Write ``results.json``, ``results.csv`` and ``pareto.png``; returns their paths."""
    from sim.plots import plot_pareto

    axis = mark_pareto(rows)
    files = {name: str(out / name) for name in ("results.json", "results.csv", "pareto.png")}
    write_atomic(out / "results.json", rows)
    with (out / "results.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=ROW_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({key: "" if row.get(key) is None else row[key] for key in ROW_FIELDS} for row in rows)
    plot_pareto(rows, axis, out / "pareto.png")
    return files


def run_sweep(
    sweep: Sweep, out: str | os.PathLike[str], *, ray: Any, progress: bool = True,
    status: Callable[[str], None] | None = None,
) -> Outcome:
    """Run every unfinished point of ``sweep`` as a Ray task on the running Ray (``ray``: the
    imported module, initialised), then write the table.

    Finished points (``DIR/points/<id>/result.json`` with status ok) and learn tasks are
    reused; the others run, each learn task once for all its points.
    """
    from tqdm import tqdm

    out = Path(out).resolve()  # the workers may run elsewhere (a cluster's shared folder)
    start = time.monotonic()
    config = sweep.config()
    remote_learn = ray.remote(num_cpus=1)(learn_task)
    remote_point = ray.remote(num_cpus=1)(point_task)
    rows: dict[str, dict[str, Any]] = {}
    learns: dict[str, Any] = {}
    pending: dict[Any, Point] = {}
    for point in sweep.points:
        folder = out / "points" / point.id
        done = read_result(folder)
        if done is not None:
            rows[point.id] = done
            continue
        learn_folder = out / "learn" / point.learn_id
        if point.learn_id not in learns:
            learns[point.learn_id] = read_result(learn_folder) or remote_learn.remote(
                point.learn_params(), str(learn_folder), config
            )
        pending[remote_point.remote(point, learns[point.learn_id], str(learn_folder), str(folder), config)] = point
    outcome = Outcome(rows=[], reused=len(rows), computed=len(pending))
    if status is not None:
        status(
            f"{len(sweep.points)} points: {outcome.reused} finished earlier, {len(pending)} to run "
            f"({sum(not isinstance(ref, dict) for ref in learns.values())} learn tasks)"
        )
    with tqdm(total=len(sweep.points), initial=len(rows), unit="point", desc="sweep", disable=not progress,
              file=sys.stderr) as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                point = pending.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception as error:  # noqa: BLE001 - the worker died (killed, out of memory)
                    row = {name: None for name in ROW_FIELDS}
                    row.update(point.params, id=point.id, learn_id=point.learn_id, status="failed",
                               error=f"ray: {one_line(error)}")
                rows[point.id] = row
                bar.update(1)
    outcome.rows = [rows[point.id] for point in sweep.points]
    outcome.failed = sum(row["status"] != "ok" for row in outcome.rows)
    outcome.files = write_table(outcome.rows, out)
    outcome.seconds = time.monotonic() - start
    return outcome
