"""``spikeforge demo``: the whole flow on the embedded digits data, one summary table.

Runs the subcommands in turn, each writing into the report folder ``--out``:

1. ``learn``: on-line learning (B = 1) in the integer model, from scratch or by fine-tuning a
   float checkpoint (``--init DIR``, e.g. the folder ``spikeforge train`` wrote), with
   16-bit gradient accumulators by default (:data:`DEFAULT_BITS`);
2. ``estimate``: the core model on the test split: cycles, spikes, synaptic ops and energy
   per inference and per learning step;
3. ``gen``: the core's Verilog, memory images and manifest; then ``hls --csim``: the HLS C++
   of the same core, its testbench learning training images and inferring test images,
   compared with the integer model;
4. ``cosim``: test images inferred and training images learned on the generated core under
   cocotb, every memory write, output and counter compared with the model;
5. ``synth``: utilisation and Fmax when the ``fpga`` extra is installed (default: the
   ECP5-25k, which the default core, P = 2, fits).

Then it draws the plots (spike raster of one inference, accuracy against spikes across the
paper's ablation of every network in ``docs/ablation*.json``, one panel per dataset, energy
breakdown), prints the summary table and writes ``report.json``
last: a report folder without ``report.json`` is incomplete (interrupted or failed).
Exit code 1 when the co-simulation found a mismatch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hw.core_config import DEFAULT_QUEUE_DEPTH, CoreConfig, learning_refusal
from model.checkpoint import load_checkpoint_kind
from model.checks import check_field
from model.data import load_dataset, to_u8
from model.energy import TABLES
from model.integer import IntegerNetwork
from model.spec import DEFAULT_ARCH
from sim import options
from sim.cli import CLIError, write_json
from sim.core_cosim import WAVE_BYTES_PER_CYCLE, WAVE_FORMATS
from sim.plots import plot_ablation, plot_raster
from sim.synth import TARGETS, get_target, require_tools
from sim.toolchain import ToolchainError, require

#: The demo's dataset (embedded, no download).
DATASET = "digits"
#: Passes over the training set of the default on-line learning (about 40 s).
DEFAULT_EPOCHS = 20


@dataclass(frozen=True)
class CoreDefaults:
    """The demo's core for one synthesis target: lanes P, queue depth Q and ``learn --bits``."""

    lanes: int
    queue_depth: int
    bits: str


#: The demo's core without synthesis and on each FPGA (what fits, docs/results.md): 16-bit
#: dW / dVth accumulators are enough for on-line learning (B = 1; no loss in the width sweep)
#: and let P = 2 fit the ECP5-25k; the iCE40 UP5K fits P = 1 with 12-bit membranes and Q = 4.
TARGET_DEFAULTS = {
    None: CoreDefaults(2, DEFAULT_QUEUE_DEPTH, "dw=16,dth=16"),
    "ecp5-25k": CoreDefaults(2, DEFAULT_QUEUE_DEPTH, "dw=16,dth=16"),
    "ecp5-45k": CoreDefaults(2, DEFAULT_QUEUE_DEPTH, "dw=16,dth=16"),
    "ecp5-85k": CoreDefaults(2, DEFAULT_QUEUE_DEPTH, "dw=16,dth=16"),
    "ice40-up5k": CoreDefaults(1, 4, "v=12,dw=16,dth=16"),
}
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
    "hls": "hls.json",
    "waves": "waves",
    "raster": "plots/raster.png",
    "ablation": "plots/ablation.png",
    "energy": "plots/energy.png",
    "summary": "summary.txt",
    "report": "report.json",
}


#: Steps whose exit code 1 means a mismatch against the model (the demo then exits 1).
CHECKING_STEPS = ("hls csim", "cosim inference", "cosim learning")


def _say(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Choices:
    """The demo's resolved options, all checked before any step runs."""

    synth_target: str | None
    build_target: str
    lanes: int
    queue_depth: int
    bits: str
    epochs: int | None
    fpga_note: str


def plan(args: argparse.Namespace, out: Path, choices: Choices) -> list[tuple[str, list[str]]]:
    """The subcommands the demo runs, as ``(step, argv)``; gen, cosim and synth get one build."""
    path = {key: str(out / name) for key, name in FILES.items()}
    quiet = ["--no-progress"] if args.no_progress else []
    core = ["--lanes", str(choices.lanes), "--queue-depth", str(choices.queue_depth)]
    built = [*core, "--target", choices.build_target]
    cosim = ["cosim", "--checkpoint", path["checkpoint"], "--dataset", DATASET, *built, "--sim", args.sim, *quiet]
    steps = [
        ("learn", [
            "learn", "--dataset", DATASET, "--init", args.init, "--seed", str(args.seed),
            *(["--decoder", args.decoder] if args.decoder else []),
            *(["--bits", choices.bits] if choices.bits else []),
            "--out", path["checkpoint"], "--json", path["learn"], *quiet,
            *(["--epochs", str(choices.epochs)] if choices.epochs is not None else []),
        ]),
        ("estimate", [
            "estimate", "--checkpoint", path["checkpoint"], "--dataset", DATASET, *core,
            "--samples", str(args.estimate_samples), "--table", args.table,
            "--json", path["estimate"], "--plot", path["energy"],
        ]),
        ("gen", ["gen", "--checkpoint", path["checkpoint"], *built, "--out", path["verilog"]]),
        ("hls csim", [
            "hls", "--checkpoint", path["checkpoint"], "--dataset", DATASET, "--lanes", str(choices.lanes),
            "--out", str(out / "hls"), "--csim", "--learn", "--samples", str(args.learn_samples),
            "--json", path["hls"],
        ]),
        ("cosim inference", [*cosim, "--samples", str(args.samples), "--json", path["cosim_inference"]]),
        ("cosim learning", [
            *cosim, "--learn", "--samples", str(args.learn_samples), "--json", path["cosim_learning"],
        ]),
    ]
    if args.waves:
        suffix = WAVE_FORMATS[args.sim]
        for phase, learn in (("inference", []), ("learning", ["--learn"])):
            steps.append((f"waves {phase}", [
                *cosim, *learn, "--samples", str(args.waves_samples),
                "--json", f"{path['waves']}/{phase}.json", "--waves", f"{path['waves']}/{phase}{suffix}",
            ]))
    if choices.synth_target is not None:
        steps.append(("synth", [
            "synth", "--gen-dir", path["verilog"], "--target", choices.synth_target, "--json", path["synth"],
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


def summarize(out: Path, cosim_model_accuracy: float | None = None) -> dict[str, Any]:
    """The summary of the report folder's JSON files (see :func:`summary_table`), with the
    model's accuracy on the co-simulated test images."""
    learn = _read(out / FILES["learn"]) or {}
    estimate = _read(out / FILES["estimate"]) or {}
    inference = _read(out / FILES["cosim_inference"]) or {}
    learning = _read(out / FILES["cosim_learning"]) or {}
    synth = _read(out / FILES["synth"])
    hls = _read(out / FILES["hls"]) or {}
    fmax = synth["fmax_mhz"] if synth and synth["fits"] else None

    def at_fmax(cycles: float | None) -> float | None:
        return None if cycles is None or not fmax else cycles / fmax

    return {
        "model_accuracy": learn.get("accuracy"),
        "test_samples": learn.get("samples"),
        "arch": learn.get("arch"),
        "estimate_samples": estimate.get("dataset_samples"),
        "estimate_accuracy": estimate.get("accuracy"),
        "cosim_model_accuracy": cosim_model_accuracy,
        "rtl_accuracy": inference.get("accuracy"),
        "rtl_inferences": inference.get("samples"),
        "rtl_learning_steps": learning.get("samples"),
        "mismatches": inference.get("mismatches", 0) + learning.get("mismatches", 0),
        "hls_mismatches": hls.get("mismatches"),
        "hls_checks": hls.get("passed"),
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
        ("accuracy", _value(s["estimate_accuracy"], ".4f"), _value(s["cosim_model_accuracy"], ".4f"),
         _value(s["rtl_accuracy"], ".4f")),
        ("mismatches RTL vs model", "", "", str(s["mismatches"])),
        ("mismatches HLS C++ vs model", "", _value(s["hls_mismatches"], "d"), ""),
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
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
        for row in (heads, tuple("-" * w for w in widths), *rows)
    ]
    title = (
        f"{s['arch']} on digits, on-line learning in integers: test accuracy "
        f"{_value(s['model_accuracy'], '.4f')} on {s['test_samples']} test images"
    )
    return "\n".join([title, "", *lines, f"FPGA: {fpga}"])


def ablations(timesteps: int, folder: Path = ABLATION_JSON.parent) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The float ablations' rows at ``timesteps`` by dataset (digits first), then network:
    ``ablation.json`` (the train command's default network) and the ``ablation_<arch>.json``
    files ``scripts/ablation.py --arch`` writes next to it; without rows at ``timesteps`` a
    dataset or network is left out (``{}`` without the files)."""
    found: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for path in (folder / ABLATION_JSON.name, *sorted(folder.glob("ablation_*.json"))):
        arch = DEFAULT_ARCH if path.name == ABLATION_JSON.name else path.stem.removeprefix("ablation_")
        for dataset, rows in (_read(path) or {}).items():
            rows = [row for row in rows if row.get("timesteps") == timesteps]
            if rows:
                found.setdefault(dataset, {})[arch] = rows
    return dict(sorted(found.items(), key=lambda item: item[0] != DATASET))


def _waves_note(out: Path, step: str, samples: int) -> str:
    """The expected size of a waveform step, from the estimate's cycles."""
    estimate = _read(out / FILES["estimate"]) or {}
    key = "cycles_per_learning_step" if step.endswith("learning") else "cycles_per_inference"
    cycles = estimate.get(key)
    if not cycles:
        return f"{step}: the first {samples} sample(s)"
    megabytes = cycles * samples * WAVE_BYTES_PER_CYCLE / 1e6
    return (
        f"{step}: the first {samples} sample(s), about {cycles * samples:,.0f} cycles: expect about "
        f"{megabytes:,.0f} MB ({WAVE_BYTES_PER_CYCLE:,} bytes per cycle at P = 2, more with more lanes)"
    )


def _synth_target(args: argparse.Namespace) -> tuple[str | None, str]:
    """The FPGA to synthesize for (``None``: no synthesis) and the summary's note."""
    if args.target == "none":
        return None, "not run (--target none)"
    name = DEFAULT_TARGET if args.target == "auto" else args.target
    try:
        require_tools(get_target(name))
    except ToolchainError as error:
        if args.target == "auto":  # synthesize only when the fpga extra is installed
            return None, f"not run ({error})"
        raise CLIError(f"--target {name}: {error}") from None
    return name, ""


def choose(args: argparse.Namespace, out: Path) -> Choices:
    """Check every option and resolve the defaults before any step runs.

    The target's tools, the simulator, the sample counts against the digits splits, the
    ``--init`` folder and the core the demo will build (P, Q and the formats against the
    target's memories, :meth:`CoreConfig.for_target`) are checked here, so a bad choice
    fails in seconds with one line and no file written.

    Raises
    ------
    ValueError, FileNotFoundError, CLIError
        Naming the option and the allowed values.
    """
    from sim.commands.learn import build_network

    if out.exists() and not out.is_dir():
        raise CLIError(f"--out: {str(out)!r} is a file, not a folder")
    synth_target, fpga_note = _synth_target(args)
    defaults = TARGET_DEFAULTS[synth_target]
    try:
        require(args.sim)
    except ToolchainError as error:
        raise CLIError(f"--sim {args.sim}: {error}") from None
    data = load_dataset(DATASET)
    for option, value, split in (
        ("--samples", args.samples, data.test_y), ("--estimate-samples", args.estimate_samples, data.test_y),
        ("--learn-samples", args.learn_samples, data.train_y), ("--waves-samples", args.waves_samples, data.test_y),
    ):
        check_field(option, value, minimum=1, maximum=len(split))
    bits = defaults.bits if args.bits is None else args.bits
    if args.init != "scratch":
        folder = Path(args.init)
        if not folder.is_dir():
            what = "a file" if folder.exists() else "missing"
            raise FileNotFoundError(f"--init: {args.init!r} is {what}, not a checkpoint folder (or 'scratch')")
        if load_checkpoint_kind(folder) == "integer":
            if args.bits:
                raise ValueError("--bits: an integer --init checkpoint keeps its formats; omit --bits")
            bits = ""
    choices = Choices(
        synth_target=synth_target,
        build_target=synth_target or "sim",
        lanes=defaults.lanes if args.lanes is None else args.lanes,
        queue_depth=defaults.queue_depth if args.queue_depth is None else args.queue_depth,
        bits=bits,
        epochs=DEFAULT_EPOCHS if args.epochs is None and args.init == "scratch" else args.epochs,
        fpga_note=fpga_note,
    )
    from sim.cli import build_parser

    learn_args = build_parser().parse_args(plan(args, out, choices)[0][1])
    network, _ = build_network(learn_args, data)  # the network the learn step starts from
    try:
        config = CoreConfig.for_target(
            network, lanes=choices.lanes, queue_depth=choices.queue_depth, target=choices.build_target
        )
    except ValueError as error:
        raise ValueError(
            f"--lanes {choices.lanes}, --queue-depth {choices.queue_depth}, --bits {choices.bits or '-'} "
            f"on {choices.build_target}: {error}"
        ) from None
    if not config.learnable:
        raise ValueError(f"--init: {learning_refusal(network.spec, config)}")
    return choices


def run(args: argparse.Namespace, runner: Callable[[Sequence[str]], int] = run_step) -> int:
    """Check the options, run every step, draw the plots, print the summary and write
    ``report.json`` last."""
    out = Path(args.out)
    choices = choose(args, out)
    _say(
        f"core: P = {choices.lanes}, Q = {choices.queue_depth}, formats {choices.bits or 'of the checkpoint'}, "
        f"built for {choices.build_target}; synthesis: {choices.synth_target or choices.fpga_note}"
    )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CLIError(f"--out: cannot create {str(out)!r}: {error.strerror or error}") from None
    for name in FILES.values():  # stale results of an earlier run must not mix with this one's
        if name.endswith((".json", ".txt", ".png")):
            (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / FILES["waves"], ignore_errors=True)
    steps = plan(args, out, choices)
    status: dict[str, Any] = {}
    for number, (step, argv) in enumerate(steps, 1):
        _say(f"[{number}/{len(steps)}] {step}: spikeforge {' '.join(argv[:1])} ...")
        if step.startswith("waves"):
            _say(_waves_note(out, step, args.waves_samples))
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
    cosimulated = network.evaluate(to_u8(data.test_x[: args.samples]), data.test_y[: args.samples])["accuracy"]
    summary = summarize(out, cosimulated)
    plots = [FILES["raster"], FILES["energy"]]
    panels = ablations(network.spec.timesteps)
    others = panels.pop(DATASET, {})
    rows = others.pop(DEFAULT_ARCH, [])
    if rows:
        ours = (summary["model_accuracy"], summary["spikes_per_inference"])
        name = DEFAULT_ARCH if others or panels else None
        plot_ablation(rows, ours, out / FILES["ablation"], name=name, others=others, panels=panels)
        plots.append(FILES["ablation"])
    else:
        _say(f"no ablation results at {ABLATION_JSON} (scripts/ablation.py writes them): plot skipped")
    table = summary_table(summary, choices.fpga_note)
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
    failed = summary["mismatches"] or summary["hls_mismatches"] or any(status.get(step) for step in CHECKING_STEPS)
    return 1 if failed else 0


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
        "--epochs", type=options.positive, metavar="N",
        help=f"passes over the training set (default {DEFAULT_EPOCHS} from scratch, the recipe's when fine-tuning)",
    )
    parser.add_argument(
        "--decoder", choices=("last", "rate", "fc"),
        help="readout when learning from scratch (default learn's: last); every target builds each",
    )
    choices = "; ".join(
        f"{name or 'no synthesis'}: P = {d.lanes}, Q = {d.queue_depth}, --bits {d.bits}" for name, d in TARGET_DEFAULTS.items()
    )
    options.add_lanes(parser, prefix="core: ")
    options.add_queue_depth(parser, default=None, prefix="core: ")
    options.add_bits(parser, extra="; '' for learn's; an integer --init checkpoint keeps its own")
    parser.add_argument("--samples", type=options.positive, default=8, metavar="N", help="test images co-simulated (default 8)")
    parser.add_argument(
        "--learn-samples", type=options.positive, default=2, metavar="M",
        help="training images learned on the RTL, one learning step each (default 2)",
    )
    parser.add_argument(
        "--estimate-samples", type=options.positive, default=360, metavar="N",
        help="test and training samples of the cycle and energy estimate (default 360: the whole test split, "
        "so its spikes per inference are the learn step's)",
    )
    parser.add_argument(
        "--table", default="horowitz45", choices=list(TABLES), help="energy table (default horowitz45)"
    )
    options.add_sim(parser)
    parser.add_argument(
        "--target", default="auto", choices=["auto", "none", *TARGETS],
        help=f"FPGA for synthesis: auto = {DEFAULT_TARGET} when the fpga extra is installed, else none. "
        f"Defaults of P, Q and --bits per target: {choices}",
    )
    parser.add_argument(
        "--waves", action="store_true",
        help="also write waveforms of the first --waves-samples test and training samples under OUT/waves "
        f"(about {WAVE_BYTES_PER_CYCLE / 1000:.1f} kB per simulated cycle at P = 2: ~100 MB per inference, "
        "~320 MB per learning step)",
    )
    parser.add_argument(
        "--waves-samples", type=options.positive, default=1, metavar="N",
        help="samples of each waveform (default 1)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="init, shuffling and LFSR seed")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.set_defaults(func=run)
