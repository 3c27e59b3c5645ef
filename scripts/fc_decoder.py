"""The spatio-temporal (fc) decoder on the integer model, and the paper's Fig. 3.

1. Integer on-line learning from scratch (B = 1, ``spikeforge learn --dataset digits``
   with its defaults: 128FC-100FC, population 10, the recipe's 60 epochs and shifts) with
   the ``last`` and the ``fc`` decoder at each T, seeds 0..N-1: test accuracy, spikes per
   inference (all layers and the output layer), the decoder's memory and row reads per
   inference (one D row of C values per output spike), and the core model's cycles per
   inference and per learning step (``spikeforge estimate``, P = :data:`LANES`, 100 test
   images).
   ``--engine csim`` learns with the HLS C++ (bit-identical, about 10x faster).
2. The float trainer's fc decoder (``spikeforge train --dataset digits --decoder fc``,
   the enhanced switches and digits defaults) at the same T and seeds.
3. The paper's Fig. 3: the mean |decoder weight| at each time step t (over the classes and
   output neurons, float units: an integer D times ``2^-df``), float and integer, mean over
   the seeds, as a table and a plot.

Runs live in ``--out`` (default ``runs/fc_decoder``), one folder per run; a finished run is
reused, so the script can be stopped and run again. ``--write FILE`` replaces the section
``## Integer model: the fc decoder`` of FILE, ``--plot PNG`` writes the figure and
``--json FILE`` the rows.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from model.integer import IntegerNetwork  # noqa: E402
from model.stbp import Network  # noqa: E402
from results_md import machine_note, publish  # noqa: E402
from sim.cli import main as cli  # noqa: E402
from sim.plots import plot_decoder_weights  # noqa: E402

HEADING = "## Integer model: the fc decoder"
#: Runs of the table: (trainer, decoder).
KINDS = (("integer", "last"), ("integer", "fc"), ("float", "fc"))
REPORT = "report.json"
ESTIMATE = "estimate.json"
#: Lanes and test images of the core-model estimate of the integer runs.
LANES = 8
ESTIMATE_SAMPLES = 100


@dataclass(frozen=True)
class Run:
    """One training run: a trainer (integer on-line or float) with a decoder at T, a seed."""

    trainer: str
    decoder: str
    timesteps: int
    seed: int
    epochs: int | None = None  # None: the command's default
    engine: str = "model"  # the integer runs' engine (bit-identical results)

    def folder(self, out: Path) -> Path:
        epochs = "" if self.epochs is None else f"_e{self.epochs}"
        return out / f"{self.trainer}_{self.decoder}_T{self.timesteps}_s{self.seed}{epochs}"

    def argv(self, out: Path) -> list[str]:
        """The ``spikeforge learn`` / ``train`` arguments of the run."""
        folder = self.folder(out)
        common = ["--dataset", "digits", "--decoder", self.decoder, "--timesteps",
                  str(self.timesteps), "--seed", str(self.seed), "--json", str(folder / REPORT),
                  "--no-progress"]
        if self.epochs is not None:
            common += ["--epochs", str(self.epochs)]
        if self.trainer == "integer":
            return ["learn", "--init", "scratch", "--engine", self.engine, "--out", str(folder / "checkpoint"), *common]
        return ["train", "--out", str(folder / "checkpoint"), *common]

    def decoder_weights(self, out: Path) -> np.ndarray | None:
        """The trained decoder (classes, T, n_L) in float units, or None (``last``)."""
        if self.decoder != "fc":
            return None
        checkpoint = self.folder(out) / "checkpoint"
        if self.trainer == "integer":
            net = IntegerNetwork.load(checkpoint)
            values = net.decoder / 2.0**net.formats.df
        else:
            values = Network.load(checkpoint).decoder_weight
        return np.asarray(values, np.float64).reshape(len(values), self.timesteps, -1)


def run_all(runs: Sequence[Run], out: Path, progress: bool) -> dict[Run, dict[str, Any]]:
    """Run (or reuse) every run; returns each run's report."""
    reports: dict[Run, dict[str, Any]] = {}
    bar = tqdm(runs, disable=not progress, unit="run", desc="fc decoder", dynamic_ncols=True)
    for run in bar:
        bar.set_postfix_str(f"{run.trainer} {run.decoder} T={run.timesteps} s{run.seed}")
        report_path = run.folder(out) / REPORT
        if not report_path.is_file():
            code = cli(run.argv(out))
            if code:
                raise SystemExit(f"spikeforge {' '.join(run.argv(out))} failed with exit code {code}")
        reports[run] = json.loads(report_path.read_text())
        if run.trainer == "integer":
            estimate = run.folder(out) / ESTIMATE
            if not estimate.is_file():
                argv = ["estimate", "--checkpoint", str(run.folder(out) / "checkpoint"), "--lanes", str(LANES),
                        "--samples", str(ESTIMATE_SAMPLES), "--json", str(estimate)]
                if cli(argv):
                    raise SystemExit(f"spikeforge {' '.join(argv)} failed")
            reports[run]["estimate"] = json.loads(estimate.read_text())
    return reports


def _mean_std(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    mean = statistics.fmean(values) * scale
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def initial_mean_abs(trainer: str, inputs: int, report: dict[str, Any]) -> float:
    """Mean |D| of the untrained decoder (float units): ``U(-b, b)`` with
    ``b = sqrt(3 / (T n_L))`` has ``b / 2``; the integer init ``U{-a..a}``,
    ``a = rint(b 2^df)``, has ``a (a + 1) / (2a + 1)`` LSB."""
    bound = math.sqrt(3.0 / inputs)
    if trainer == "float":
        return bound / 2
    frac = report["formats"]["df"]
    a = max(round(bound * 2.0**frac), 1)
    return a * (a + 1) / (2 * a + 1) / 2.0**frac


def summarize(
    runs: Sequence[Run], reports: dict[Run, dict[str, Any]], out: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The table rows (one per trainer, decoder and T) and the Fig. 3 curves (one per
    trainer and T: mean |D| per step, mean over seeds)."""
    rows, curves = [], []
    for timesteps in sorted({run.timesteps for run in runs}):
        for trainer, decoder in KINDS:
            group = [run for run in runs if (run.trainer, run.decoder, run.timesteps) == (trainer, decoder, timesteps)]
            if not group:
                continue
            found = [reports[run] for run in group]
            output = [report["spikes_per_layer"][-1] for report in found]
            row = {
                "trainer": trainer, "decoder": decoder, "timesteps": timesteps,
                "seeds": [run.seed for run in group],
                "accuracy": [report["accuracy"] for report in found],
                "spikes_per_inference": [report["spikes_per_inference"] for report in found],
                "output_spikes_per_inference": output,
            }
            if trainer == "integer":
                row["cycles_per_inference"] = [report["estimate"]["cycles_per_inference"] for report in found]
                row["cycles_per_learning_step"] = [report["estimate"]["cycles_per_learning_step"] for report in found]
            if decoder == "fc":
                weights = [run.decoder_weights(out) for run in group]
                classes, _, n_out = weights[0].shape
                bits = found[0]["formats"]["w"] if trainer == "integer" else 32
                row["decoder_memory_bits"] = classes * timesteps * n_out * bits
                per_step = [np.abs(w).mean(axis=(0, 2)) for w in weights]
                curves.append({
                    "trainer": trainer, "timesteps": timesteps,
                    "mean_abs_weight": np.mean(per_step, axis=0).tolist(),
                    "std_abs_weight": np.std(per_step, axis=0).tolist(),
                    "initial_mean_abs_weight": initial_mean_abs(trainer, timesteps * n_out, found[0]),
                })
            rows.append(row)
    return rows, curves


def section(
    argv: Sequence[str], rows: list[dict[str, Any]], curves: list[dict[str, Any]], plot: str | None,
    epochs: int | None,
) -> str:
    """The Markdown section: the goal table, Fig. 3's table and the finding."""
    budget = "each command's default epochs (learn 60, train 250)" if epochs is None else f"{epochs} epochs"
    lines = [
        HEADING, "",
        f"Command: `python3 scripts/fc_decoder.py {' '.join(argv)}`", "",
        "Integer rows: on-line learning from scratch (B = 1) with `spikeforge learn --dataset digits "
        "--decoder D --timesteps T --seed S` and its defaults (128FC-100FC, population 10, w = 8, "
        "the fc decoder's D at df = fw + 2 = 9 fraction bits, the recipe's shifts with the fc "
        "decoder's offset). Float rows: `spikeforge train --dataset digits --decoder fc "
        f"--timesteps T --seed S` (the enhanced switches, the digits defaults). Runs: {budget}. Accuracy and spikes "
        "are mean ± std over the seeds on the 360 test images; the decoder reads one row of C = 10 "
        f"weights per output spike (as many row reads as output spikes). Cycles: the core model (`spikeforge estimate --lanes {LANES} "
        f"--samples {ESTIMATE_SAMPLES}`, Q = 16) on the trained network.", "",
        "| trainer | decoder | T | accuracy % | spikes / inference | output spikes / inference | decoder memory "
        "| cycles / inference | cycles / learning step |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        memory = "-" if "decoder_memory_bits" not in row else f"{row['decoder_memory_bits'] // 8:,} B"
        cycles = [
            "-" if key not in row else _mean_std(row[key], digits=0)
            for key in ("cycles_per_inference", "cycles_per_learning_step")
        ]
        lines.append(
            f"| {row['trainer']} | {row['decoder']} | {row['timesteps']} | "
            f"{_mean_std(row['accuracy'], 100)} | {_mean_std(row['spikes_per_inference'], digits=1)} | "
            f"{_mean_std(row['output_spikes_per_inference'], digits=1)} | {memory} | "
            f"{cycles[0]} | {cycles[1]} |"
        )
    by_key = {(row["trainer"], row["decoder"], row["timesteps"]): row for row in rows}
    lines += ["", "Integer fc against integer last at the same T (goal: within 0.5 points):", ""]
    for timesteps in sorted({row["timesteps"] for row in rows}):
        fc, last = by_key.get(("integer", "fc", timesteps)), by_key.get(("integer", "last", timesteps))
        if fc and last:
            gap = (statistics.fmean(fc["accuracy"]) - statistics.fmean(last["accuracy"])) * 100
            ratio = statistics.fmean(fc["spikes_per_inference"]) / statistics.fmean(last["spikes_per_inference"])
            lines.append(f"- T = {timesteps}: fc {gap:+.2f} points, {ratio:.2f}x the spikes of last.")
    lines += ["", "Fig. 3 (the paper: later spikes weigh more): mean |D| per time step, float units, "
              "mean over the seeds" + (f"; plot `{plot}`" if plot else "") + ".", ""]
    for curve in curves:
        values = curve["mean_abs_weight"]
        steps = " | ".join(f"{value:.4f}" for value in values)
        lines += [
            f"{curve['trainer']}, T = {curve['timesteps']}:", "",
            "| t | " + " | ".join(str(t) for t in range(1, len(values) + 1)) + " |",
            "|---" * (len(values) + 1) + "|",
            f"| mean abs D | {steps} |", "",
        ]
    ratios = [curve["mean_abs_weight"][-1] / curve["mean_abs_weight"][0] for curve in curves]
    lines.append("Last step over first step: " + "; ".join(
        f"{curve['trainer']} T = {curve['timesteps']}: {ratio:.2f}x (untrained "
        f"{curve['initial_mean_abs_weight']:.4f} at every step)"
        for curve, ratio in zip(curves, ratios)
    ) + ".")
    if ratios:
        verdict = (
            "does not hold here: in every curve the last step weighs less than the first"
            if max(ratios) < 1 else "holds here: in every curve the last step weighs more than the first"
            if min(ratios) > 1 else "holds in some curves and not in others"
        )
        below = all(max(curve["mean_abs_weight"]) < curve["initial_mean_abs_weight"] for curve in curves)
        shrink = (
            " Every step ends below its untrained mean |D| (learning shrinks the decoder)." if below else ""
        )
        lines += ["", f"The paper's finding (later spikes weigh more) {verdict}.{shrink}"]
    lines += ["", machine_note(), ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fc_decoder.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--timesteps", type=int, nargs="+", default=[8, 16], help="T values (default 8 16)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--epochs", type=int, help="epochs of every run (default: each command's recipe)")
    parser.add_argument("--out", type=Path, default=Path("runs/fc_decoder"), help="run folders")
    parser.add_argument("--engine", choices=("model", "csim"), default="model",
                        help="engine of the integer runs (bit-identical; csim needs g++)")
    parser.add_argument("--write", metavar="FILE", help="replace the section in FILE")
    parser.add_argument("--plot", metavar="PNG", help="write the Fig. 3 plot")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the rows and curves")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.seeds < 1 or min(args.timesteps) < 1 or (args.epochs is not None and args.epochs < 1):
        raise SystemExit("fc_decoder.py: --seeds, --timesteps and --epochs must be 1 or more")
    runs = [
        Run(trainer, decoder, timesteps, seed, args.epochs, args.engine)
        for seed in range(args.seeds) for timesteps in args.timesteps for trainer, decoder in KINDS
    ]
    reports = run_all(runs, args.out, not args.no_progress)
    rows, curves = summarize(runs, reports, args.out)
    if args.plot:
        plot_decoder_weights(curves, args.plot)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "curves": curves}, indent=1) + "\n")
    shown = [item for item in argv if item != "--no-progress"]
    publish(section(shown, rows, curves, args.plot, args.epochs), args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
