"""``spikeforge demo``: the whole flow on the embedded digits data, one summary table.

Runs the subcommands in turn, each writing into the report folder ``--out``:

1. ``learn``: on-line learning (B = 1) in the integer model, from scratch or by fine-tuning a
   float checkpoint (``--init DIR``, e.g. the folder ``spikeforge train`` wrote), with
   16-bit gradient accumulators by default (:data:`DEFAULT_BITS`);
2. ``estimate``: the core model on the test split: cycles, spikes, synaptic ops and energy
   per inference and per learning step;
3. ``gen``: the core's Verilog, memory images and manifest;
4. ``cosim``: test images inferred and training images learned on the generated core under
   cocotb, every memory write, output and counter compared with the model;
5. ``synth``: utilisation and Fmax when the ``fpga`` extra is installed (default: the
   ECP5-25k, which the default core, P = 2, fits).

Then it draws the plots (spike raster of one inference, accuracy against spikes across the
paper's ablation, energy breakdown), prints the summary table and writes ``report.json``
last: a report folder without ``report.json`` is incomplete (interrupted or failed).
Exit code 1 when the co-simulation found a mismatch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


from hw.core_config import DEFAULT_QUEUE_DEPTH, MAX_QUEUE_DEPTH
from model.checkpoint import load_checkpoint_kind
from model.checks import check_field
from model.data import load_dataset, to_u8
from model.energy import TABLES
from model.integer import Formats, IntegerNetwork
from sim.cli import CLIError, write_json
from sim.core_cosim import WAVE_FORMATS
from sim.plots import plot_ablation, plot_raster
from sim.synth import TARGETS, get_target, require_tools
from sim.toolchain import SIMULATORS, ToolchainError

#: The demo's dataset (embedded, no download).
DATASET = "digits"
#: Passes over the training set of the default on-line learning (about 40 s).
DEFAULT_EPOCHS = 20
#: Formats of the demo's network: 16-bit dW / dVth accumulators, enough for on-line
#: learning (B = 1; no loss in the width sweep of docs/results.md) and what lets the core
#: fit the ECP5-25k (docs/architecture.md section 8).
DEFAULT_BITS = "dw=16,dth=16"
#: Lanes of the demo's core: P = 2 fits the ECP5-25k with those formats.
DEFAULT_LANES = 2
#: FPGA of ``--target auto`` when the fpga extra is installed.
DEFAULT_TARGET = "ecp5-25k"
#: Measured float ablation (written by ``scripts/ablation.py``), drawn when present.
ABLATION_JSON = Path(__file__).resolve().parents[2] / "docs" / "ablation.json"
#: The report's files, relative to ``--out``.
FILES = {
    "checkpoint": "checkpoint",
    "learn": "learn.json",
    "estimate": "estimate.json",
    "verilog": "verilog",
    "cosim_inference": "cosim_inference.json",
    "cosim_learning": "cosim_learning.json",
    "synth": "synth.json",
    "raster": "plots/raster.png",
    "ablation": "plots/ablation.png",
    "energy": "plots/energy.png",
    "summary": "summary.txt",
    "report": "report.json",
}


def _say(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)


def plan(args: argparse.Namespace, out: Path, target: str | None) -> list[tuple[str, list[str]]]:
    """The subcommands the demo runs, as ``(step, argv)``."""
    path = {key: str(out / name) for key, name in FILES.items()}
    quiet = ["--no-progress"] if args.no_progress else []
    core = ["--lanes", str(args.lanes), "--queue-depth", str(args.queue_depth)]
    cosim = ["cosim", "--checkpoint", path["checkpoint"], "--dataset", DATASET, *core, "--sim", args.sim, *quiet]
    waves = WAVE_FORMATS[args.sim]
    steps = [
        ("learn", [
            "learn", "--dataset", DATASET, "--init", args.init, "--seed", str(args.seed),
            *(["--bits", args.bits] if args.bits else []),
            "--out", path["checkpoint"], "--json", path["learn"], *quiet,
            *(["--epochs", str(args.epochs)] if args.epochs is not None else []),
        ]),
        ("estimate", [
            "estimate", "--checkpoint", path["checkpoint"], "--dataset", DATASET, *core,
            "--samples", str(args.estimate_samples), "--table", args.table,
            "--json", path["estimate"], "--plot", path["energy"],
        ]),
        ("gen", ["gen", "--checkpoint", path["checkpoint"], *core, "--out", path["verilog"]]),
        ("cosim inference", [
            *cosim, "--samples", str(args.samples), "--json", path["cosim_inference"],
            *(["--waves", str(out / f"waves/inference{waves}")] if args.waves else []),
        ]),
        ("cosim learning", [
            *cosim, "--learn", "--samples", str(args.learn_samples), "--json", path["cosim_learning"],
            *(["--waves", str(out / f"waves/learning{waves}")] if args.waves else []),
        ]),
    ]
    if target is not None:
        steps.append(("synth", [
            "synth", "--gen-dir", path["verilog"], "--target", target, "--json", path["synth"],
            "--work", str(out / "synth"),
        ]))
    return steps


def run_step(argv: Sequence[str]) -> int:
    """Run one ``spikeforge`` subcommand in this process; its errors propagate."""
    from sim.cli import build_parser

    args = build_parser().parse_args(list(argv))
    return int(args.func(args) or 0)


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def summarize(out: Path) -> dict[str, Any]:
    """The summary of the report folder's JSON files (see :func:`summary_table`)."""
    learn = _read(out / FILES["learn"]) or {}
    estimate = _read(out / FILES["estimate"]) or {}
    inference = _read(out / FILES["cosim_inference"]) or {}
    learning = _read(out / FILES["cosim_learning"]) or {}
    synth = _read(out / FILES["synth"])
    fmax = synth["fmax_mhz"] if synth and synth["fits"] else None

    def at_fmax(cycles: float | None) -> float | None:
        return None if cycles is None or not fmax else cycles / fmax

    return {
        "model_accuracy": learn.get("accuracy"),
        "test_samples": learn.get("samples"),
        "arch": learn.get("arch"),
        "estimate_samples": estimate.get("dataset_samples"),
        "rtl_accuracy": inference.get("accuracy"),
        "rtl_inferences": inference.get("samples"),
        "rtl_learning_steps": learning.get("samples"),
        "mismatches": inference.get("mismatches", 0) + learning.get("mismatches", 0),
        "spikes_per_inference": estimate.get("spikes_per_inference"),
        "synaptic_ops_per_inference": estimate.get("synaptic_ops_per_inference"),
        "model_cycles_per_inference": estimate.get("cycles_per_inference"),
        "model_cycles_per_learning_step": estimate.get("cycles_per_learning_step"),
        "cosim_model_cycles_per_inference": inference.get("model_cycles_per_inference"),
        "rtl_cycles_per_inference": inference.get("cycles_per_inference"),
        "cosim_model_cycles_per_learning_step": learning.get("model_cycles_per_learning_step"),
        "rtl_cycles_per_learning_step": learning.get("cycles_per_learning_step"),
        "energy_pj_per_inference": estimate.get("energy_pj_per_inference"),
        "energy_pj_per_learning_step": estimate.get("energy_pj_per_learning_step"),
        "energy_table": (estimate.get("energy_table") or {}).get("name"),
        "target": synth["target"] if synth else None,
        "fits": synth["fits"] if synth else None,
        "fpga_overflow": synth.get("overflow") if synth else None,
        "fmax_mhz": fmax,
        "latency_us_per_inference": at_fmax(inference.get("cycles_per_inference")),
        "latency_us_per_learning_step": at_fmax(learning.get("cycles_per_learning_step")),
    }


def _value(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def summary_table(summary: dict[str, Any], fpga_note: str = "") -> str:
    """The printed summary: a row per quantity; the model on the estimate's test images,
    then the model and the RTL on the co-simulated images."""
    s = summary
    table = s["energy_table"] or "-"
    if s["target"] is None:
        fpga = fpga_note or "not run"
    elif s["fits"]:
        fpga = f"{s['target']}: fits, Fmax {_value(s['fmax_mhz'], '.1f')} MHz"
    else:
        fpga = f"{s['target']}: does not fit ({s['fpga_overflow']})"
    rows = [
        ("accuracy", "", "", _value(s["rtl_accuracy"], ".4f")),
        ("mismatches RTL vs model", "", "", str(s["mismatches"])),
        ("spikes / inference", _value(s["spikes_per_inference"], ",.1f"), "", ""),
        ("synaptic ops / inference", _value(s["synaptic_ops_per_inference"], ",.0f"), "", ""),
        ("cycles / inference", _value(s["model_cycles_per_inference"], ",.0f"),
         _value(s["cosim_model_cycles_per_inference"], ",.1f"), _value(s["rtl_cycles_per_inference"], ",.1f")),
        ("cycles / learning step", _value(s["model_cycles_per_learning_step"], ",.0f"),
         _value(s["cosim_model_cycles_per_learning_step"], ",.1f"),
         _value(s["rtl_cycles_per_learning_step"], ",.1f")),
        (f"energy / inference (pJ, {table})", _value(s["energy_pj_per_inference"], ",.0f"), "", ""),
        (f"energy / learning step (pJ, {table})", _value(s["energy_pj_per_learning_step"], ",.0f"), "", ""),
        ("latency / inference at Fmax (us)", "", "", _value(s["latency_us_per_inference"], ",.1f")),
        ("latency / learning step at Fmax (us)", "", "", _value(s["latency_us_per_learning_step"], ",.1f")),
    ]
    heads = (
        "",
        f"model ({s['estimate_samples'] or '-'} img)",
        f"model ({s['rtl_inferences'] or '-'}+{s['rtl_learning_steps'] or '-'} img)",
        "RTL (same img)",
    )
    widths = [max(len(row[i]) for row in (*rows, heads)) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        for row in (heads, tuple("-" * w for w in widths), *rows)
    ]
    title = (
        f"{s['arch']} on digits, on-line learning in integers: test accuracy "
        f"{_value(s['model_accuracy'], '.4f')} on {s['test_samples']} test images"
    )
    return "\n".join([title, "", *lines, f"FPGA: {fpga}"])


def ablation_rows(timesteps: int, path: Path = ABLATION_JSON) -> list[dict[str, Any]]:
    """The float ablation's rows on digits at ``timesteps`` (``[]`` without the file)."""
    data = _read(path) or {}
    return [row for row in data.get(DATASET, []) if row.get("timesteps") == timesteps]


def run(args: argparse.Namespace, runner: Callable[[Sequence[str]], int] = run_step) -> int:
    """Run every step, draw the plots, print the summary and write ``report.json`` last."""
    for name in ("lanes", "samples", "learn_samples", "estimate_samples"):
        check_field(f"--{name.replace('_', '-')}", getattr(args, name), minimum=1)
    check_field("--queue-depth", args.queue_depth, minimum=1, maximum=MAX_QUEUE_DEPTH)
    if args.epochs is not None:
        check_field("--epochs", args.epochs, minimum=1)
    if args.bits:
        try:
            Formats.parse(args.bits)
        except ValueError as error:
            raise ValueError(f"--bits: {error}") from None
    if args.init != "scratch":
        if not Path(args.init).is_dir():
            raise FileNotFoundError(f"--init: {args.init!r} is not a checkpoint folder")
        if load_checkpoint_kind(args.init) == "integer":
            args.bits = ""  # an integer checkpoint keeps its formats
    target, fpga_note = (None, "not run (--target none)") if args.target == "none" else (args.target, "")
    if args.target == "auto":  # synthesize when the fpga extra is installed
        try:
            require_tools(get_target(DEFAULT_TARGET))
            target = DEFAULT_TARGET
        except ToolchainError as error:
            target, fpga_note = None, f"not run ({error})"
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CLIError(f"--out: cannot create {str(out)!r}: {error.strerror or error}") from None
    for name in FILES.values():  # stale results of an earlier run must not mix with this one's
        if name.endswith((".json", ".txt", ".png")):
            (out / name).unlink(missing_ok=True)
    if args.epochs is None and args.init == "scratch":
        args.epochs = DEFAULT_EPOCHS
    steps = plan(args, out, target)
    status: dict[str, Any] = {}
    for number, (step, argv) in enumerate(steps, 1):
        _say(f"[{number}/{len(steps)}] {step}: spikeforge {' '.join(argv[:1])} ...")
        if step == "synth":
            try:
                status[step] = runner(argv)
            except CLIError as error:  # a design that does not fit is a result, not a failure
                if not (out / FILES["synth"]).is_file():
                    raise
                _say(str(error))
                status[step] = 2
        else:
            status[step] = runner(argv)
            if status[step] not in (0, 1):
                raise CLIError(f"step {step} failed with exit code {status[step]}")
    _say("plots")
    network = IntegerNetwork.load(out / FILES["checkpoint"])
    data = load_dataset(DATASET)
    plot_raster(network, to_u8(data.test_x[:1])[0], int(data.test_y[0]), out / FILES["raster"])
    summary = summarize(out)
    plots = [FILES["raster"], FILES["energy"]]
    rows = ablation_rows(network.spec.timesteps)
    if rows:
        plot_ablation(rows, (summary["model_accuracy"], summary["spikes_per_inference"]), out / FILES["ablation"])
        plots.append(FILES["ablation"])
    else:
        _say(f"no ablation results at {ABLATION_JSON} (scripts/ablation.py writes them): plot skipped")
    table = summary_table(summary, fpga_note)
    (out / FILES["summary"]).write_text(table + "\n")
    print(table)
    report = {
        "complete": True,
        "summary": summary,
        "steps": [{"step": step, "command": ["spikeforge", *argv], "exit": status[step]} for step, argv in steps],
        "files": {key: name for key, name in FILES.items() if (out / name).exists()},
        "plots": plots,
    }
    temporary = out / (FILES["report"] + ".part")
    write_json(temporary, report, sort_keys=False)
    os.replace(temporary, out / FILES["report"])
    _say(f"report: {out / FILES['report']}")
    return 1 if summary["mismatches"] or status.get("cosim inference") or status.get("cosim learning") else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="the whole flow on the embedded digits data: learn, estimate, Verilog, co-simulation, FPGA",
        description=__doc__.split("\n\n")[0].split(": ", 1)[1],
    )
    parser.add_argument("--out", default="runs/demo", metavar="DIR", help="report folder (default runs/demo)")
    parser.add_argument(
        "--init", default="scratch", metavar="scratch|DIR",
        help="on-line learning from scratch (default) or fine-tuning this float checkpoint",
    )
    parser.add_argument(
        "--epochs", type=int, metavar="N",
        help=f"passes over the training set (default {DEFAULT_EPOCHS} from scratch, the recipe's when fine-tuning)",
    )
    parser.add_argument(
        "--lanes", type=int, default=DEFAULT_LANES, metavar="P", help=f"lanes P (default {DEFAULT_LANES})"
    )
    parser.add_argument(
        "--bits", default=DEFAULT_BITS, metavar="KEY=N,...",
        help=f"formats of the learned network (learn --bits; default {DEFAULT_BITS}; '' for "
        "learn's defaults; an integer --init checkpoint keeps its own)",
    )
    parser.add_argument(
        "--queue-depth", type=int, default=DEFAULT_QUEUE_DEPTH, metavar="Q",
        help=f"spike-queue capacity, 1..{MAX_QUEUE_DEPTH} (default {DEFAULT_QUEUE_DEPTH})",
    )
    parser.add_argument("--samples", type=int, default=8, metavar="N", help="test images co-simulated (default 8)")
    parser.add_argument(
        "--learn-samples", type=int, default=2, metavar="M",
        help="training images learned on the RTL, one learning step each (default 2)",
    )
    parser.add_argument(
        "--estimate-samples", type=int, default=200, metavar="N",
        help="test and training samples of the cycle and energy estimate (default 200)",
    )
    parser.add_argument(
        "--table", default="horowitz45", choices=list(TABLES), help="energy table (default horowitz45)"
    )
    parser.add_argument("--sim", choices=SIMULATORS, default="verilator", help="simulator (default verilator)")
    parser.add_argument(
        "--target", default="auto", choices=["auto", "none", *TARGETS],
        help=f"FPGA for synthesis: auto = {DEFAULT_TARGET} when the fpga extra is installed, else none",
    )
    parser.add_argument("--waves", action="store_true", help="write waveforms under OUT/waves")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="init, shuffling and LFSR seed")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.set_defaults(func=run)
