"""Accuracy of the integer model versus its widths and rounding (digits, on-line, B = 1).

Sweeps, each for on-line learning from scratch and for on-line fine-tuning of a
quantized float network (every other width at its default, docs/numerics.md):

* weight bits ``w`` in 4, 6, 8, 10, 12, 16 (``fw = w - 1``, ``v = max(16, w + 8)``);
* weight fraction bits ``fw`` at w = 8;
* membrane bits ``v``; gradient bits ``g`` (with ``gf = g - 8``: dV range fixed, LSB
  varies) and gradient fraction bits ``gf`` at g = 16; accumulator bits ``dw = dth``;
* rounding: floor, nearest, stochastic.

From-scratch runs use the default schedule compressed to ``--epochs`` (the goal runs of
scripts/integer_goals.py use the full default); fine-tuning uses its defaults on the float
checkpoint ``--float DIR`` (scripts/integer_goals.py writes one, trained with the float
trainer's digits defaults, to ``runs/integer_goals/digits_float``). ``--write FILE``
replaces the section ``## Integer model: width and rounding sweeps``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from integer_goals import ARCH  # noqa: E402
from model.data import load_dataset, to_u8  # noqa: E402
from model.integer import Formats, IntegerNetwork, LearningRule, fit, recipe  # noqa: E402
from model.spec import NetworkSpec  # noqa: E402
from model.stbp import Network, evaluate  # noqa: E402
from results_md import machine_note, publish  # noqa: E402

HEADING = "## Integer model: width and rounding sweeps"

#: (sweep name, label, --bits text, rounding) of every configuration.
CONFIGS: list[tuple[str, str, str, str]] = (
    [("weight bits w (fw = w - 1)", f"w={w}", f"w={w},v={max(16, w + 8)}", "stochastic") for w in (4, 6, 8, 10, 12, 16)]
    + [("weight fraction bits fw (w = 8)", f"fw={fw}", f"fw={fw}", "stochastic") for fw in (5, 6, 7)]
    + [("membrane bits v", f"v={v}", f"v={v}", "stochastic") for v in (8, 9, 10, 12, 16)]
    + [
        ("gradient bits g (gf = g - 8)", f"g={g}", f"g={g},gf={g - 8},dw=24,dth=24", "stochastic")
        for g in (8, 10, 12, 16, 24)
    ]
    + [("gradient fraction bits gf (g = 16)", f"gf={gf}", f"gf={gf}", "stochastic") for gf in (4, 6, 8, 10)]
    + [("accumulator bits dw = dth", f"dw={a}", f"dw={a},dth={a}", "stochastic") for a in (16, 20, 24)]
    + [("rounding", rounding, "", rounding) for rounding in ("floor", "nearest", "stochastic")]
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="from-scratch epochs (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--float", type=Path, metavar="DIR", default=Path("runs/integer_goals/digits_float"),
        help="float checkpoint to fine-tune (default: the one scripts/integer_goals.py trains)",
    )
    parser.add_argument("--only", metavar="TEXT", help="run the sweeps whose name contains TEXT")
    parser.add_argument("--workdir", type=Path, default=Path("runs/sweep_bits"))
    parser.add_argument("--write", type=Path, metavar="FILE", help="update the section in FILE")
    return parser


def run_one(
    dataset: Any, spec: NetworkSpec, bits: str, rounding: str, init: str, epochs: int, seed: int,
    floats: Network | None,
) -> dict[str, float]:
    """One on-line run; returns test accuracies (and the quantized start for fine-tuning)."""
    defaults = recipe(dataset.name, init)
    formats = Formats.parse(bits, defaults.formats)
    rule = LearningRule(rounding=rounding)
    schedule = defaults.schedule_for(formats, spec.decoder)  # same float rates at any fw, gf
    if init == "scratch":
        net = IntegerNetwork.scratch(spec, formats, seed=seed, rule=rule)
        runs = epochs
        start = None
    else:
        net = IntegerNetwork.from_float(floats, formats, seed=seed, rule=rule)
        runs = defaults.epochs
        start = net.evaluate(to_u8(dataset.test_x), dataset.test_y)["accuracy"]
    fit(net, to_u8(dataset.train_x), dataset.train_y, epochs=runs, schedule=schedule, seed=seed, progress=False)
    result = {"accuracy": net.evaluate(to_u8(dataset.test_x), dataset.test_y)["accuracy"]}
    if start is not None:
        result["quantized"] = start
    return result


def section(
    argv: Sequence[str], results: list[dict[str, Any]], epochs: int, float_path: Path, float_accuracy: float
) -> str:
    command = " ".join(["python3 scripts/sweep_bits.py", *argv])
    shown = float_path.resolve()
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    scratch, tune = recipe("digits", "scratch"), recipe("digits", "finetune")
    lines = [
        HEADING,
        "",
        f"Command: `{command}`",
        "",
        f"digits, {ARCH}, P = 10, T = 8, B = 1, one seed, test accuracy after the last epoch. "
        f"From scratch: the default weight shifts ({scratch.schedule.to_text()}, shift:fraction "
        f"where the next starts; s_th = s_w) compressed to {epochs} epochs. Fine-tuning: the "
        f"float network `{shown}` (float test accuracy {float_accuracy:.4f}) quantized to each format, then the fine-tuning "
        f"defaults ({tune.schedule.to_text()}, {tune.epochs} epochs). Widths not named are at "
        "their defaults (w = 8, fw = 7, v = 16, g = 16, gf = 8, dw = dth = 24, K = 16, "
        "stochastic rounding). Shifts are given for fw = 7, gf = 8; other formats move every "
        "shift by (gf - 8) - (fw - 7), which keeps the float-equivalent learning rates "
        "(`Recipe.schedule_for`), so a row differs from the default only in its numerics.",
        "",
        "| sweep | setting | from scratch | quantized float | fine-tuned |",
        "|---|---|---:|---:|---:|",
    ]
    for row in results:
        lines.append(
            f"| {row['sweep']} | {row['label']} | {row['scratch']:.4f} | {row['quantized']:.4f} | {row['finetune']:.4f} |"
        )
    lines += ["", machine_note()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset("digits")
    spec = NetworkSpec.parse(ARCH, input_shape=dataset.input_shape, timesteps=8, population=10)
    floats = Network.load(args.float)
    float_accuracy = evaluate(floats, dataset.test_x, dataset.test_y)["accuracy"]
    results = []
    done: dict[tuple[Formats, str], dict[str, float]] = {}  # the default appears in every sweep
    for sweep, label, bits, rounding in CONFIGS:
        if args.only and args.only not in sweep:
            continue
        key = (Formats.parse(bits, recipe("digits", "scratch").formats), rounding)
        if key not in done:
            scratch = run_one(dataset, spec, bits, rounding, "scratch", args.epochs, args.seed, None)
            tuned = run_one(dataset, spec, bits, rounding, "finetune", args.epochs, args.seed, floats)
            done[key] = {"scratch": scratch["accuracy"], "quantized": tuned["quantized"], "finetune": tuned["accuracy"]}
        row = {"sweep": sweep, "label": label, "bits": bits, "rounding": rounding, **done[key]}
        results.append(row)
        print(json.dumps(row), file=sys.stderr)
    text = section(argv, results, args.epochs, args.float, float_accuracy)
    (args.workdir / "sweep.json").write_text(json.dumps(results, indent=2))
    publish(text, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
