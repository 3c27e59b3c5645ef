"""The paper's ablation (Table II) and time-step study (Table III) with the float trainer.

Tan, Wu & Lu's enhanced STBP combines four changes to the original STBP: reset by
subtraction (eq. 8), trainable thresholds (eq. 11), the scaled surrogate (eq. 14) and
last-spike decoding. The rows below are the project's reading of the paper's ablation axes,
built from the switches of :class:`model.spec.NetworkSpec` (``reset``, ``threshold``,
``surrogate``, ``decoder``): the baseline (reset to zero, fixed thresholds, rectangular
surrogate, rate decoding) and ten rows named by what they change relative to it.

* Table II: every row at T = 8.
* Table III: the enhanced configuration and the baseline (for the spike ratio) at each
  T of ``--timesteps`` (default 4, 8, 16); the T = 8 runs are the Table II runs.

Every run is one ``spikeforge train`` call (``sim/commands/train.py``) with the command's
defaults for the dataset (architecture, population, batch, momentum, schedule, learning
rate, augmentation and epochs: ``model.stbp.TRAINING_DEFAULTS``), only the four switches,
T, the seed and optionally a smaller epoch budget set here. Each run's checkpoint and
``result.json`` go to ``--out/<dataset>/<row>_T<T>_s<seed>/``; a run whose ``result.json``
exists (the train command writes it last, after the checkpoint) is not trained again (an
existing run with another configuration is an error). The tables need only the results, so
a long ablation is kept as its ``result.json`` files (``docs/runs/``, where Git tracks
nothing else) and resumes from them on another machine. ``--write FILE`` replaces the section
``## Float trainer: Table II ablation and Table III timesteps`` of a Markdown file.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from results_md import machine_note, positive_int, write_section

from model.stbp import training_defaults
from sim.cli import build_parser as build_cli_parser
from sim.cli import main as cli
from sim.commands.train import RESULT_JSON
from sim.plots import plot_ablation
from sim.resume import state_folder

HEADING = "## Float trainer: Table II ablation and Table III timesteps"


def heading(arch: str | None) -> str:
    """The section's heading: :data:`HEADING`, followed by the architecture when given."""
    return HEADING if arch is None else f"{HEADING}, {arch}"


def json_name(arch: str | None) -> str:
    """The tables' JSON file next to the results file: ``ablation.json`` (the demo's plot
    reads it) or ``ablation_<arch>.json``."""
    return "ablation.json" if arch is None else f"ablation_{arch}.json"


#: Datasets the ablation runs on (the train command's 128FC-100FC default fits both).
DATASETS = ("digits", "mnist10k")

#: The four switches of NetworkSpec that the paper ablates, in table order.
SWITCHES = ("reset", "threshold", "surrogate", "decoder")


@dataclass(frozen=True)
class Row:
    """One configuration of the ablation.

    Parameters
    ----------
    name : str
        Short name, also the run folder's prefix.
    label : str
        What the row changes relative to the baseline.
    changes : dict
        The switches that differ from :data:`BASELINE` (empty for the baseline).
    """

    name: str
    label: str
    changes: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def switches(self) -> dict[str, str]:
        """All four switches of the row."""
        return {**BASELINE, **self.changes}

    def train_flags(self) -> list[str]:
        """The ``spikeforge train`` options that set the four switches."""
        return [item for key in SWITCHES for item in (f"--{key}", self.switches[key])]


#: The original STBP of the paper's Table II first row.
BASELINE = {"reset": "zero", "threshold": "fixed", "surrogate": "rect", "decoder": "rate"}

_SUB = {"reset": "subtract"}
_SUB_TRAIN = {"reset": "subtract", "threshold": "trainable"}
_SUB_TRAIN_SCALED = {**_SUB_TRAIN, "surrogate": "scaled"}

#: Table II: the baseline and the ten ablation rows, in table order.
ROWS: tuple[Row, ...] = (
    Row("baseline", "baseline (original STBP)"),
    Row("subtract", "reset-by-subtraction", _SUB),
    Row("scaled", "scaled surrogate (eq. 14)", {"surrogate": "scaled"}),
    Row("last", "last-spike decoder", {"decoder": "last"}),
    Row("fc", "spatio-temporal fc decoder", {"decoder": "fc"}),
    Row("subtract_trainable", "subtract + trainable threshold", _SUB_TRAIN),
    Row("subtract_scaled", "subtract + scaled", {**_SUB, "surrogate": "scaled"}),
    Row("subtract_trainable_scaled", "subtract + trainable + scaled", _SUB_TRAIN_SCALED),
    Row(
        "enhanced",
        "subtract + trainable + scaled + last = enhanced STBP",
        {**_SUB_TRAIN_SCALED, "decoder": "last"},
    ),
    Row(
        "subtract_trainable_scaled_fc",
        "subtract + trainable + scaled + fc",
        {**_SUB_TRAIN_SCALED, "decoder": "fc"},
    ),
    Row(
        "subtract_fixed_scaled_last",
        "subtract + fixed + scaled + last",
        {**_SUB, "surrogate": "scaled", "decoder": "last"},
    ),
)
ROW_BY_NAME = {row.name: row for row in ROWS}


def train_command_defaults() -> argparse.Namespace:
    """The options of ``spikeforge train`` at their defaults (architecture, T, population...)."""
    return build_cli_parser().parse_args(["train", "--out", "unused"])


#: The train command's defaults (architecture, T, ...).
TRAIN_DEFAULTS = train_command_defaults()

#: Table II's time steps: the train command's default T.
TABLE2_T: int = TRAIN_DEFAULTS.timesteps

#: The paper's findings checked against the results: (from row, to row, what changes).
FINDINGS: tuple[tuple[str, str, str], ...] = (
    ("baseline", "subtract", "reset-by-subtraction"),
    ("subtract", "subtract_trainable", "trainable threshold (with subtraction)"),
    ("baseline", "scaled", "scaled surrogate (alone)"),
    ("subtract_trainable", "subtract_trainable_scaled", "scaled surrogate (with subtract + trainable)"),
    ("baseline", "last", "last-spike decoder (alone)"),
    ("subtract_trainable_scaled", "enhanced", "last-spike decoder (with the other three)"),
    ("baseline", "enhanced", "all four: enhanced STBP against the baseline"),
)


class UsageError(Exception):
    """A user error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (no usage dump)
        self.exit(2, f"{self.prog}: error: {message}\n")


# Options -----------------------------------------------------------------------------



def _datasets(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in DATASETS:
            raise argparse.ArgumentTypeError(f"{name!r} is not one of {', '.join(DATASETS)}")
    if not names:
        raise argparse.ArgumentTypeError(f"needs one or more of {', '.join(DATASETS)}")
    return list(dict.fromkeys(names))


def _per_dataset(text: str) -> dict[str | None, int]:
    """``N`` (every dataset) or ``name=N,name=N`` (a positive integer per dataset)."""
    budget: dict[str | None, int] = {}
    for part in (item.strip() for item in text.split(",")):
        if not part:
            continue
        name, _, value = part.rpartition("=")
        if "=" in part and name not in DATASETS:
            raise argparse.ArgumentTypeError(f"{name!r} is not one of {', '.join(DATASETS)}")
        budget[name or None] = positive_int(value)
    if not budget:
        raise argparse.ArgumentTypeError("needs N or dataset=N entries, e.g. 'mnist10k=10'")
    return budget


def _rows(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in ROW_BY_NAME:
            raise argparse.ArgumentTypeError(f"{name!r} is not one of {', '.join(ROW_BY_NAME)}")
    return names


def _timesteps(text: str) -> list[int]:
    values = [positive_int(part) for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError("needs one or more time steps, e.g. 4,8,16")
    return sorted(set(values))


def add_run_options(parser: argparse.ArgumentParser, *, seeds: int, seeds_help: str) -> None:
    """``--datasets``, ``--epochs`` and ``--seeds`` (0..N-1, default ``seeds``) of the
    training runs; the scripts that reuse the ablation's runs share them."""
    parser.add_argument(
        "--datasets", type=_datasets, default=list(DATASETS),
        help="comma-separated, of digits, mnist10k (default both)",
    )
    parser.add_argument(
        "--epochs", type=_per_dataset, default={}, metavar="N|DATASET=N,...",
        help="epochs of every training run (default: the train command's recipe for the dataset)",
    )
    parser.add_argument(
        "--seeds", type=_per_dataset, default={None: seeds}, metavar="N|DATASET=N,...",
        help=f"seeds 0..N-1 {seeds_help} (default {seeds})",
    )


def add_output_options(parser: argparse.ArgumentParser, *, out_help: str) -> None:
    """``--data-root``, ``--out`` (default ``runs/ablation``), ``--write``, ``--no-progress``
    and ``--jobs``."""
    parser.add_argument("--data-root", metavar="PATH", help="data folder for mnist10k")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"), help=out_help)
    parser.add_argument("--write", type=Path, metavar="FILE", help="update the section in FILE")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--jobs", type=positive_int, default=1, metavar="N",
        help="training runs at a time, each in a process of its own (default 1; e.g. the "
        "number of cores, with OMP_NUM_THREADS=1)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ablation.py", description=__doc__.split("\n\n")[0])
    add_run_options(parser, seeds=3, seeds_help="per row")
    parser.add_argument(
        "--rows", type=_rows, metavar="NAME,...",
        help="only these Table II rows (the baseline always runs); default all",
    )
    parser.add_argument(
        "--timesteps", type=_timesteps, default=[4, 8, 16], metavar="T,...",
        help="Table III time steps (default 4,8,16)",
    )
    parser.add_argument(
        "--arch", metavar="ARCH",
        help="architecture of every run, e.g. 16C3-AP2-32C3-AP2-256FC-100FC (default: the "
        "train command's); its tables get a section and a JSON file of their own",
    )
    add_output_options(parser, out_help="run folders")
    parser.add_argument(
        "--plot", type=Path, metavar="DIR",
        help="write accuracy against spikes of every Table II row, one PNG per dataset: "
        "DIR/ablation[_ARCH]_DATASET.png",
    )
    return parser


# Runs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One training run: a row on a dataset at T steps with one seed."""

    dataset: str
    row: Row
    timesteps: int
    seed: int
    epochs: int | None  # None: the recipe's epochs
    arch: str | None = None  # None: the train command's default architecture

    def folder(self, out: Path) -> Path:
        return out / self.dataset / f"{self.row.name}_T{self.timesteps}_s{self.seed}"

    def train_argv(self, out: Path, data_root: str | None, progress: bool) -> list[str]:
        """The ``spikeforge train`` arguments of the run (with ``--resume`` when its folder
        holds the trainer state of a cut-short run: it continues from its last epoch)."""
        argv = ["train", "--dataset", self.dataset, "--timesteps", str(self.timesteps),
                *self.row.train_flags(), "--seed", str(self.seed), "--out", str(self.folder(out))]
        if state_folder(self.folder(out)).is_dir():
            argv.append("--resume")
        if self.epochs is not None:
            argv += ["--epochs", str(self.epochs)]
        if self.arch is not None:
            argv += ["--arch", self.arch]
        if data_root is not None:
            argv += ["--data-root", data_root]
        if not progress:
            argv.append("--no-progress")
        return argv

    def expected(self) -> dict[str, Any]:
        """The fields of the train command's result config this run must have."""
        epochs = training_defaults(self.dataset)["epochs"] if self.epochs is None else self.epochs
        arch = TRAIN_DEFAULTS.arch if self.arch is None else self.arch
        return {"dataset": self.dataset, "timesteps": self.timesteps, "seed": self.seed,
                "epochs": epochs, "arch": arch, **self.row.switches}


def plan(args: argparse.Namespace) -> list[Run]:
    """Every run of the requested tables, seed-major per dataset (a cut-short run has
    whole seeds), without duplicates (Table III's T = 8 runs are Table II's)."""
    names = ["baseline", *(args.rows or [row.name for row in ROWS])]
    runs: list[Run] = []
    for dataset in args.datasets:
        epochs = args.epochs.get(dataset, args.epochs.get(None))
        seeds = args.seeds.get(dataset, args.seeds.get(None, 3))
        for seed in range(seeds):
            keys = [(name, TABLE2_T) for name in names]
            keys += [(name, t) for t in args.timesteps for name in ("enhanced", "baseline")]
            for name, timesteps in dict.fromkeys(keys):
                runs.append(Run(dataset, ROW_BY_NAME[name], timesteps, seed, epochs, args.arch))
    return runs


def finished(run: Run, out: Path) -> dict[str, Any] | None:
    """The result of a finished run in ``out``, or None when it has not run yet.

    Raises
    ------
    UsageError
        When the folder holds a finished run of another configuration.
    """
    folder = run.folder(out)
    if not (folder / RESULT_JSON).is_file():
        return None
    result = json.loads((folder / RESULT_JSON).read_text())
    config = result.get("config", {})
    wrong = {key: config.get(key) for key, value in run.expected().items() if config.get(key) != value}
    if wrong:
        found = ", ".join(f"{key}={value}" for key, value in wrong.items())
        raise UsageError(
            f"{folder} holds a run with {found}, not this configuration; pass another --out "
            "or delete the folder"
        )
    return result


def train_run(run: Run, out: Path, data_root: str | None, progress: bool) -> tuple[dict[str, Any], str]:
    """Train one run with ``spikeforge train``; returns its result and the summary line."""
    printed, errors = io.StringIO(), io.StringIO()
    # The train command's per-batch bar (``progress``) writes to stderr: keep it visible.
    capture = contextlib.nullcontext() if progress else contextlib.redirect_stderr(errors)
    with contextlib.redirect_stdout(printed), capture:
        code = cli(run.train_argv(out, data_root, progress))
    if code:
        message = errors.getvalue().strip().splitlines() or [f"exit code {code}"]
        raise UsageError(f"spikeforge train failed for {run.folder(out)}: {message[-1]}")
    return json.loads((run.folder(out) / RESULT_JSON).read_text()), printed.getvalue().strip()


def execute(
    runs: Sequence[Run],
    out: Path,
    data_root: str | None = None,
    progress: bool = True,
    trainer: Callable[..., tuple[dict[str, Any], str]] | None = None,
    jobs: int = 1,
) -> tuple[dict[Run, dict[str, Any]], int]:
    """Run (or reuse) every run, ``jobs`` training runs at a time (worker processes when
    more than one); returns the results in the order of ``runs`` and how many were trained now."""
    trainer = trainer or train_run
    inner = progress and jobs == 1 and sys.stderr.isatty()  # per-batch bars: one run on a terminal
    done = {run: finished(run, out) for run in runs}
    pending = [run for run in runs if done[run] is None]
    bar = tqdm(total=len(runs), initial=len(runs) - len(pending), disable=not progress, unit="run",
               desc="ablation", dynamic_ncols=True)

    def report(run: Run, result: dict[str, Any], summary: str) -> None:
        done[run] = result
        bar.update()
        if progress:
            bar.write(f"{run.dataset} {run.row.name} T={run.timesteps} seed {run.seed}: {summary}",
                      file=sys.stderr)

    if jobs == 1:
        for run in pending:
            bar.set_postfix_str(f"{run.dataset} {run.row.name} T={run.timesteps} s{run.seed}")
            report(run, *trainer(run, out, data_root, inner))
    else:
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {pool.submit(trainer, run, out, data_root, False): run for run in pending}
            try:
                for future in concurrent.futures.as_completed(futures):
                    report(futures[future], *future.result())
            except BaseException:  # a failed run: the others running finish, no new one starts
                pool.shutdown(cancel_futures=True)
                raise
    bar.close()
    return done, len(pending)


# Tables ------------------------------------------------------------------------------


@dataclass
class Cell:
    """A row's metrics over its seeds (one dataset, one T)."""

    accuracy: list[float]
    spikes: list[float]
    encoder: list[float]
    ops: list[float]
    seconds: list[float]
    epochs: int
    arch: str
    population: int
    test_images: int

    @property
    def mean_accuracy(self) -> float:
        return statistics.fmean(self.accuracy)

    @property
    def spread(self) -> float | None:
        """Sample standard deviation of the accuracy over seeds (None for one seed)."""
        return statistics.stdev(self.accuracy) if len(self.accuracy) > 1 else None

    @property
    def mean_spikes(self) -> float:
        return statistics.fmean(self.spikes)

    @property
    def encoder_share(self) -> float:
        return statistics.fmean(self.encoder) / self.mean_spikes if self.mean_spikes else 0.0

    @property
    def mean_ops(self) -> float:
        return statistics.fmean(self.ops)


def collect(results: dict[Run, dict[str, Any]]) -> dict[tuple[str, str, int], Cell]:
    """Results grouped by (dataset, row name, T)."""
    cells: dict[tuple[str, str, int], Cell] = {}
    for run, result in results.items():
        key = (run.dataset, run.row.name, run.timesteps)
        config = result["config"]
        cell = cells.setdefault(key, Cell([], [], [], [], [], config["epochs"], config["arch"],
                                          config["population"], result["samples"]))
        cell.accuracy.append(result["accuracy"])
        cell.spikes.append(result["spikes_per_inference"])
        cell.encoder.append(result["spikes_per_layer"][0])
        cell.ops.append(result["synaptic_ops_per_inference"])
        cell.seconds.append(result["history"]["seconds"])
    return cells


def _accuracy_text(cell: Cell) -> str:
    spread = cell.spread
    text = f"{100 * cell.mean_accuracy:.2f}"
    return text + (f" ± {100 * spread:.2f}" if spread is not None else "")


def spike_ratio(cells: dict[tuple[str, str, int], Cell], dataset: str, name: str, timesteps: int) -> float:
    """Mean spikes of a row over the baseline's mean spikes (same dataset and T)."""
    return cells[dataset, name, timesteps].mean_spikes / cells[dataset, "baseline", timesteps].mean_spikes


def table2(cells: dict[tuple[str, str, int], Cell], dataset: str) -> list[str]:
    lines = [
        ("| # | row | reset | threshold | surrogate | decoder | accuracy % | spikes / inference "
        "| encoder share | synaptic ops / inference | spikes / baseline |"),
        "|---:|---|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for number, row in enumerate(ROWS):
        cell = cells.get((dataset, row.name, TABLE2_T))
        if cell is None:
            continue
        label = f"**{row.label}**" if row.name == "enhanced" else row.label
        switches = [row.switches[key] for key in SWITCHES]
        lines.append(
            f"| {number or '-'} | {label} | {' | '.join(switches)} | {_accuracy_text(cell)} | "
            f"{cell.mean_spikes:.1f} | {100 * cell.encoder_share:.1f} % | {cell.mean_ops:,.0f} | "
            f"{spike_ratio(cells, dataset, row.name, TABLE2_T):.3f} |"
        )
    return lines


def table3(cells: dict[tuple[str, str, int], Cell], dataset: str, steps: Sequence[int]) -> list[str]:
    lines = [
        ("| T | configuration | accuracy % | spikes / inference | encoder share "
        "| synaptic ops / inference | spikes / baseline (same T) |"),
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for timesteps in steps:
        for name in ("enhanced", "baseline"):
            cell = cells.get((dataset, name, timesteps))
            if cell is None:
                continue
            lines.append(
                f"| {timesteps} | {name} | {_accuracy_text(cell)} | {cell.mean_spikes:.1f} | "
                f"{100 * cell.encoder_share:.1f} % | {cell.mean_ops:,.0f} | "
                f"{spike_ratio(cells, dataset, name, timesteps):.3f} |"
            )
    return lines


def _noise(a: Cell, b: Cell) -> float:
    """Accuracy differences at or below this are not resolved: the larger seed spread,
    and at least one test image."""
    spreads = [s for s in (a.spread, b.spread) if s is not None]
    return max([1.0 / a.test_images, *spreads])


def compare(a: Cell, b: Cell) -> tuple[str, bool]:
    """One finding (row ``a`` -> row ``b``) in words and whether it agrees with the paper
    (accuracy not lower beyond the noise, fewer spikes)."""
    delta = b.mean_accuracy - a.mean_accuracy
    ratio = b.mean_spikes / a.mean_spikes
    resolved = abs(delta) > _noise(a, b)
    if not resolved:
        accuracy = f"same accuracy within the noise ({100 * delta:+.2f} points)"
    else:
        accuracy = f"accuracy {'higher' if delta > 0 else 'lower'} by {100 * abs(delta):.2f} points"
    spikes = f"{'fewer' if ratio < 1 else 'more'} spikes (x{ratio:.3f})"
    agrees = (delta > 0 or not resolved) and ratio < 1
    return (
        (f"{accuracy} ({100 * a.mean_accuracy:.2f} -> {100 * b.mean_accuracy:.2f} %), {spikes} "
        f"({a.mean_spikes:.1f} -> {b.mean_spikes:.1f})"),
        agrees,
    )


def findings(cells: dict[tuple[str, str, int], Cell], dataset: str, steps: Sequence[int]) -> list[str]:
    """The paper's directions (each change raises accuracy, the whole lowers spikes) checked."""
    lines = []
    for before, after, what in FINDINGS:
        a, b = cells.get((dataset, before, TABLE2_T)), cells.get((dataset, after, TABLE2_T))
        if a is None or b is None:
            continue
        text, agrees = compare(a, b)
        verdict = "agrees with the paper" if agrees else "**disagrees with the paper**"
        lines.append(f"- {what} (row {before} -> {after}): {text}; {verdict}.")
    for timesteps in steps:
        a, b = cells.get((dataset, "baseline", timesteps)), cells.get((dataset, "enhanced", timesteps))
        if a is None or b is None or timesteps == TABLE2_T:
            continue
        text, agrees = compare(a, b)
        verdict = "agrees with the paper" if agrees else "**disagrees with the paper**"
        lines.append(f"- enhanced against baseline at T = {timesteps}: {text}; {verdict}.")
    return lines


#: A run this many accuracy points (0..1) below the baseline's mean at the same T is listed.
FAILED_MARGIN = 0.10


def failed_runs(results: dict[Run, dict[str, Any]], cells: dict[tuple[str, str, int], Cell], dataset: str) -> list[str]:
    """The runs of ``dataset`` more than :data:`FAILED_MARGIN` below the baseline's mean
    accuracy at their T, with what their training history shows."""
    lines = []
    order = sorted(results, key=lambda run: (run.timesteps, ROWS.index(run.row), run.seed))
    for run in order:
        result = results[run]
        base = cells.get((dataset, "baseline", run.timesteps))
        if run.dataset != dataset or base is None or result["accuracy"] >= base.mean_accuracy - FAILED_MARGIN:
            continue
        loss, accuracy = result["history"]["loss"], result["history"]["train_accuracy"]
        if max(loss) - min(loss) <= 1e-9:
            what = (
                f"its training loss was {loss[0]:.4f} in every epoch (1/classes = 0.1 when every decoded "
                "output is 0): no update changed the network"
            )
        else:
            best = max(range(len(accuracy)), key=accuracy.__getitem__)
            what = (
                f"its training accuracy peaked at {100 * accuracy[best]:.1f} % in epoch {best + 1} and "
                f"ended at {100 * accuracy[-1]:.1f} % (training loss {min(loss):.4f} at best, "
                f"{loss[-1]:.4f} at the end): training went unstable"
            )
        lines.append(
            f"- {run.row.name}, T = {run.timesteps}, seed {run.seed}: test accuracy "
            f"{100 * result['accuracy']:.2f} %; {what}."
        )
    if lines:
        lines = [
            (f"Runs more than {100 * FAILED_MARGIN:.0f} points below the baseline's mean accuracy at "
            "the same T (the recipe's learning rate and initialisation, unchanged for every T):"),
            "",
            *lines,
            "",
        ]
    return lines


def _command(argv: Sequence[str]) -> str:
    threads = "OPENBLAS_NUM_THREADS=1 " if os.environ.get("OPENBLAS_NUM_THREADS") == "1" else ""
    return f"{threads}python3 scripts/ablation.py {' '.join(argv)}".rstrip()


def section(
    argv: Sequence[str],
    runs: Sequence[Run],
    results: dict[Run, dict[str, Any]],
    steps: Sequence[int],
    wall: float,
    trained: int,
) -> str:
    """The Markdown section of the results."""
    cells = collect(results)
    datasets = list(dict.fromkeys(run.dataset for run in runs))
    total = sum(result["history"]["seconds"] for result in results.values())
    lines = [
        heading(runs[0].arch),
        "",
        f"Command: `{_command(argv)}`",
        "",
        ("Each run is one `spikeforge train` call with the command's defaults for the dataset "
        "(`model.stbp.TRAINING_DEFAULTS`: batch 50, Nesterov momentum 0.9, cosine learning-rate "
        "schedule, the dataset's learning rate and augmentation; architecture and population as "
        "below, float32); only the four switches, T, the seed and the epoch budget are set by the "
        "script. The row set is the project's reading of the paper's ablation axes (the four "
        "switches of `NetworkSpec`: reset zero|subtract, threshold fixed|trainable, surrogate "
        "rect|scaled, decoder rate|last|fc; a trainable threshold needs reset by subtraction), "
        "not a copy of the paper's table; each row is named by what it changes relative to the "
        "baseline (the original STBP). Accuracy: test accuracy after the last epoch, mean ± "
        "sample standard deviation over the seeds (no ± with one seed). Spikes per inference: "
        "every spike of every spiking layer, the encoder included, per test image; encoder "
        "share: the encoder's part of it. Synaptic ops: spikes times fan-out "
        "(`model.metrics`). Spikes / baseline: the row's mean spikes over the baseline's at the "
        "same T. Checkpoints: `<out>/<dataset>/<row>_T<T>_s<seed>/`."),
        "",
    ]
    for dataset in datasets:
        base = cells[dataset, "baseline", TABLE2_T]
        seeds = len(base.accuracy)
        recipe = training_defaults(dataset)["epochs"]
        budget = f"{base.epochs} epoch{'s' if base.epochs > 1 else ''}" + (
            " (the recipe's)" if base.epochs == recipe else f" (the recipe has {recipe})"
        )
        lines += [
            f"### {dataset}",
            "",
            (f"{base.arch}, population {base.population}, {base.test_images} test images, "
            f"{budget}, {seeds} seed{'s' if seeds > 1 else ''} ({', '.join(map(str, range(seeds)))})."),
            "",
            f"Table II (T = {TABLE2_T}):",
            "",
            *table2(cells, dataset),
            "",
            "Table III (time steps):",
            "",
            *table3(cells, dataset, steps),
            "",
            ("Against the paper's findings (reset-by-subtraction, trainable thresholds, the scaled "
            "surrogate and last-spike decoding give higher accuracy with fewer spikes). An accuracy "
            "difference counts only beyond the noise: the larger seed spread, and at least one test "
            f"image ({100 / base.test_images:.2f} points); a finding agrees when the accuracy is "
            "not lower beyond the noise and the spikes are fewer:"),
            "",
            *findings(cells, dataset, steps),
            "",
            *failed_runs(results, cells, dataset),
        ]
    lines += [
        f"Training time summed over the {len(results)} runs: {total / 60:.1f} min (one core, "
        f"`OPENBLAS_NUM_THREADS=1`); wall-clock time of the command that wrote this section: "
        f"{wall / 60:.1f} min ({trained} runs trained, {len(results) - trained} reused). "
        + machine_note(),
    ]
    return "\n".join(lines) + "\n"


def summary_json(results: dict[Run, dict[str, Any]], out: Path) -> dict[str, Any]:
    """JSON-ready record of every run (written to ``<out>/summary.json``)."""
    return {
        "runs": [
            {
                "dataset": run.dataset, "row": run.row.name, "label": run.row.label,
                "timesteps": run.timesteps, "seed": run.seed, **run.row.switches,
                "epochs": result["config"]["epochs"], "folder": str(run.folder(out)),
                "accuracy": result["accuracy"], "spikes_per_inference": result["spikes_per_inference"],
                "spikes_per_layer": result["spikes_per_layer"],
                "synaptic_ops_per_inference": result["synaptic_ops_per_inference"],
                "seconds": result["history"]["seconds"],
            }
            for run, result in results.items()
        ]
    }


def table_json(cells: dict[tuple[str, str, int], Cell]) -> dict[str, list[dict[str, Any]]]:
    """Mean accuracy and spikes of every (row, T) per dataset, with their sample standard
    deviations over seeds (``None`` for one seed): ``docs/ablation.json``, the data of
    ``spikeforge demo``'s accuracy-against-spikes plot (error bars)."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for (dataset, name, timesteps), cell in sorted(cells.items(), key=lambda item: item[0]):
        tables.setdefault(dataset, []).append({
            "row": name, "timesteps": timesteps, "seeds": len(cell.accuracy),
            "accuracy": cell.mean_accuracy, "spikes_per_inference": cell.mean_spikes,
            "synaptic_ops_per_inference": cell.mean_ops,
            "accuracy_std": cell.spread,
            "spikes_std": statistics.stdev(cell.spikes) if len(cell.spikes) > 1 else None,
        })
    return tables


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    runs = plan(args)
    try:
        results, trained = execute(runs, args.out, args.data_root, not args.no_progress, jobs=args.jobs)
    except (UsageError, ValueError, FileNotFoundError) as error:
        print(f"ablation.py: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    (args.out / "summary.json").write_text(json.dumps(summary_json(results, args.out), indent=2) + "\n")
    text = section(argv, runs, results, args.timesteps, time.perf_counter() - started, trained)
    print(text)
    tables = table_json(collect(results))
    if args.write:
        write_section(args.write, text)
        Path(args.write).with_name(json_name(args.arch)).write_text(json.dumps(tables, indent=1) + "\n")
    if args.plot:
        stem = Path(json_name(args.arch)).stem
        for dataset, rows in tables.items():
            context = dataset if args.arch is None else f"{dataset}, {args.arch}"
            table2 = [row for row in rows if row["timesteps"] == TABLE2_T]
            plot_ablation(table2, None, args.plot / f"{stem}_{dataset}.png", context=context)
    return 0


if __name__ == "__main__":
    sys.exit(main())
