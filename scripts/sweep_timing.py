"""Wall clock of ``spikeforge sweep`` on a local Ray against the sequential loop of
``scripts/core_fpga.py`` over the same points, in one run.

1. learns the spec's networks (the spec with ``stages = ["learn"]``; timed apart, since
   ``core_fpga.py`` starts from checkpoints);
2. times ``spikeforge sweep SPEC --out OUT`` (the learned networks reused: its Ray start-up,
   and the estimate, gen and synth stages of every point);
3. times core_fpga.py's per-point work over the same points, one after another in this
   process: ``write_core`` for the point's target (with gen), the core model's cycles (``_cycles``:
   ``[estimate] samples`` test and training samples) and ``synthesize`` when the spec's
   stages include synth;
4. checks that both give the same cycles per inference and per learning step, and prints
   the Markdown lines of docs/results.md.

Usage::

    nice python3 scripts/sweep_timing.py SPEC --out runs/sweep_timing [--workers N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from core_fpga import _cycles
from results_md import machine_note

from hw.core_export import write_core
from model.integer import IntegerNetwork
from sim.sweep import NO_TARGET, expand, load_spec
from sim.synth import synthesize


def _sweep(spec: Path, out: Path, workers: int | None) -> float:
    """Run ``spikeforge sweep`` in a subprocess; its wall clock in seconds."""
    command = [sys.executable, "-m", "sim.cli", "sweep", str(spec), "--out", str(out), "--no-progress"]
    start = time.monotonic()
    subprocess.run(command + (["--workers", str(workers)] if workers else []), check=True, cwd=ROOT)
    return time.monotonic() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs/sweep_timing"))
    parser.add_argument("--workers", type=int, help="CPUs of the local Ray (default: all cores)")
    args = parser.parse_args(argv)
    args.spec, args.out = args.spec.resolve(), args.out.resolve()  # the sweeps run in the repository
    spec = load_spec(args.spec)
    sweep = expand(spec, source=args.spec.name)
    args.out.mkdir(parents=True, exist_ok=True)
    learn_spec = args.out / "learn.json"
    learn_spec.write_text(json.dumps({**spec, "stages": ["learn"]}))
    learn_seconds = _sweep(learn_spec, args.out / "sweep", args.workers)
    sweep_seconds = _sweep(args.spec, args.out / "sweep", args.workers)
    rows = {row["id"]: row for row in json.loads((args.out / "sweep" / "results.json").read_text())}

    samples = sweep.settings["estimate"]["samples"]
    start = time.monotonic()
    for number, point in enumerate(sweep.points):
        p = point.params
        net = IntegerNetwork.load(args.out / "sweep" / "learn" / point.learn_id / "checkpoint")
        folder = args.out / "sequential" / f"{number:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        if "gen" in sweep.stages:
            write_core(net, lanes=p["lanes"], queue_depth=p["queue_depth"], out_dir=folder / "verilog",
                       target=point.build_target)
        cycles = _cycles(net, p["dataset"], p["lanes"], p["queue_depth"], samples, samples)
        if "synth" in sweep.stages and p["target"] != NO_TARGET:
            synthesize(folder / "verilog", p["target"])
        row = rows[point.id]
        if cycles != (row["cycles_per_inference"], row["cycles_per_learning_step"]):
            raise SystemExit(f"point {point.id}: sequential cycles {cycles} differ from the sweep's")
    sequential_seconds = time.monotonic() - start

    stages = " + ".join(stage for stage in sweep.stages if stage != "learn")
    print(
        f"{len(sweep.points)} points ({stages}; networks learned beforehand in {learn_seconds:.0f} s): "
        f"`spikeforge sweep` {sweep_seconds:.0f} s (Ray start-up included), the sequential loop of "
        f"scripts/core_fpga.py {sequential_seconds:.0f} s, {sequential_seconds / sweep_seconds:.2f}x; "
        f"cycles equal at every point. {machine_note()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
