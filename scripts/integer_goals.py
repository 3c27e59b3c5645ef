"""Goal runs and benchmark of the integer model (on-line learning, B = 1).

1. digits, 128FC-100FC, P = 10, T = 8, w = 8, on-line from scratch with the CLI defaults
   (``spikeforge learn``), one run per seed, and the float trainer (model/stbp.py, batch 1,
   plain SGD) with the same schedule: per epoch the learning rate equivalent to the
   integer weight shift (:func:`model.integer.equivalent_float_lr`).
2. Fine-tuning: a float network trained with the float trainer's digits defaults
   (``spikeforge train --dataset digits``: batch 50, Nesterov momentum, cosine schedule), or
   the checkpoint given with ``--float DIR``, is quantized and fine-tuned on-line with the
   CLI defaults (``spikeforge learn --init DIR``).
3. mnist10k, 128FC-100FC, on-line from scratch with the CLI defaults.
4. Benchmark, in this run: inference throughput (images/s) of the integer model and of
   the float forward of the same (quantized) network on the digits and mnist10k test sets,
   and the on-line learning rate (samples/s) of the runs above.

``--write FILE`` replaces the sections ``## Integer model: on-line learning goals`` and
``## Integer model: throughput`` of a Markdown file. ``--reuse`` reads the reports and
checkpoints of integer runs (and the float checkpoint) already in ``--workdir`` instead of
running them again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from model.data import load_dataset, to_u8  # noqa: E402
from model.integer import IntegerNetwork, ShiftSchedule, equivalent_float_lr, recipe  # noqa: E402
from model.spec import NetworkSpec  # noqa: E402
from model.stbp import Network, evaluate, train  # noqa: E402
from results_md import machine_note, write_section  # noqa: E402
from sim.cli import main as cli  # noqa: E402

ARCH = "128FC-100FC"
GOALS_HEADING = "## Integer model: on-line learning goals"
BENCH_HEADING = "## Integer model: throughput"


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seeds") from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError("needs one or more seeds >= 0")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="digits seeds (default 0,1,2)")
    parser.add_argument("--mnist-seeds", type=_seeds, default=[0], help="mnist10k seeds (default 0)")
    parser.add_argument("--float", type=Path, metavar="DIR", help="float checkpoint to fine-tune")
    parser.add_argument("--epochs", type=int, help="override every run's epochs (quick checks)")
    parser.add_argument("--reuse", action="store_true", help="reuse finished runs in --workdir")
    parser.add_argument("--workdir", type=Path, default=Path("runs/integer_goals"))
    parser.add_argument("--write", type=Path, metavar="FILE", help="update these sections of FILE")
    return parser


def learn(args: list[str], json_path: Path, reuse: bool) -> dict[str, Any]:
    """Run ``spikeforge learn`` and return its report; with ``reuse``, an earlier report from
    the same ``--init`` is read instead."""
    if reuse and json_path.is_file():
        report = json.loads(json_path.read_text())
        if report["training"]["init"] == args[args.index("--init") + 1]:
            return report
    code = cli(["learn", *args, "--json", str(json_path), "--no-progress"])
    if code:
        raise SystemExit(f"spikeforge learn {' '.join(args)} failed with exit code {code}")
    return json.loads(json_path.read_text())


def float_same_schedule(
    dataset: Any, spec: NetworkSpec, seed: int, epochs: int, schedule: ShiftSchedule | None = None
) -> tuple[Network, float, float]:
    """The float trainer from the integer run's initial network, with its B = 1 schedule.

    The float network starts from the integer scratch init of ``seed`` (dequantized,
    :meth:`IntegerNetwork.to_float`) and learns with batch 1, plain SGD, per epoch the
    learning rate equivalent to the integer weight shift of ``schedule`` (default: the
    dataset's from-scratch schedule), thresholds floored at 1 LSB (``2^-fw``) like the
    integer ones. Returns the network, its test accuracy and the training time in seconds.
    """
    defaults = recipe(dataset.name, "scratch")
    schedule = defaults.schedule if schedule is None else schedule
    net = IntegerNetwork.scratch(spec, defaults.formats, seed=seed).to_float(np.float32)
    floor = 2.0**-defaults.formats.fw
    started = time.perf_counter()
    for epoch in range(epochs):
        shift_w, _ = schedule.shifts(epoch, epochs)
        lr = equivalent_float_lr(spec, defaults.formats, shift_w)
        train(
            net, dataset, epochs=1, lr=lr, batch=1, momentum=0.0, lr_schedule="constant",
            seed=seed * 1000 + epoch, progress=False, threshold_floor=floor,
        )
    seconds = time.perf_counter() - started
    return net, evaluate(net, dataset.test_x, dataset.test_y)["accuracy"], seconds


def throughput(dataset: Any, net: IntegerNetwork, repeats: int = 20) -> dict[str, float]:
    """Images/s of the integer forward and of the float forward of the same network
    (:meth:`IntegerNetwork.to_float`, so both emit the same spikes): the three forwards
    run in turn ``repeats`` times (so they see the same machine load), best time each."""
    pixels = to_u8(dataset.test_x)
    runs = {"integer": lambda: net.forward(pixels)}
    for dtype in (np.float32, np.float64):
        floats, x = net.to_float(dtype), (pixels / 255.0).astype(dtype)
        runs[np.dtype(dtype).name] = lambda floats=floats, x=x: floats.forward(x)
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: len(pixels) / seconds for name, seconds in best.items()}


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)


def _command(argv: Sequence[str]) -> str:
    return " ".join(["python3 scripts/integer_goals.py", *argv])


def goals_section(argv: Sequence[str], rows: dict[str, Any]) -> str:
    digits = rows["digits"]
    finetune = rows["finetune"]
    lines = [
        GOALS_HEADING,
        "",
        f"Command: `{_command(argv)}`",
        "",
        f"{ARCH}, population 10, T = 8, last-spike decoding, trainable thresholds, B = 1 "
        "(an update after every sample), stochastic rounding, every integer run with the "
        "`spikeforge learn` defaults (w = 8 with fw = 7, v = 16, g = 16 with gf = 8, "
        "dW/dVth accumulators 24 bits, K = 16; schedule in docs/numerics.md section 4.3). "
        "The float comparison starts from the same initial network (the integer scratch "
        "init of the seed, dequantized) and runs `model.stbp.train` with batch 1, plain SGD "
        "(no momentum), per epoch the learning rate equivalent to the integer weight shift "
        "(`model.integer.equivalent_float_lr`, thresholds at the same rate as in the integer "
        "runs) and thresholds floored at 1 LSB (2^-7). Test accuracy after the last epoch.",
        "",
        "| run | seed | integer accuracy | float accuracy (same schedule) | spikes / inference | learning samples/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for item in digits:
        lines.append(
            f"| digits from scratch | {item['seed']} | {item['accuracy']:.4f} | {item['float_accuracy']:.4f} "
            f"| {item['spikes']:.1f} | {item['samples_per_second']:.0f} |"
        )
    int_mean = _mean([item["accuracy"] for item in digits])
    float_mean = _mean([item["float_accuracy"] for item in digits])
    lines.append(
        f"| **digits, mean of {len(digits)} seed{'s' if len(digits) > 1 else ''}** | | **{int_mean:.4f}** | **{float_mean:.4f}** "
        f"| | |"
    )
    for item in rows["mnist"]:
        lines.append(
            f"| mnist10k from scratch | {item['seed']} | {item['accuracy']:.4f} | | "
            f"{item['spikes']:.1f} | {item['samples_per_second']:.0f} |"
        )
    lines += [
        "",
        f"Integer minus float (digits, mean): {100 * (int_mean - float_mean):+.2f} points.",
        "",
        f"Fine-tuning (digits): {finetune['source']} (float test accuracy "
        f"{finetune['float_accuracy']:.4f}) quantized to w = 8 gives "
        f"{finetune['quantized_accuracy']:.4f}; on-line fine-tuning with the defaults "
        f"({finetune['epochs']} epochs, weight shifts {finetune['schedule']}, shift:fraction "
        f"where the next starts) ends at **{finetune['accuracy']:.4f}**.",
        "",
        machine_note(),
    ]
    return "\n".join(lines) + "\n"


def bench_section(argv: Sequence[str], bench: dict[str, dict[str, float]], learning: dict[str, float]) -> str:
    lines = [
        BENCH_HEADING,
        "",
        f"Command: `{_command(argv)}`",
        "",
        f"Inference on the whole test set in one call, {ARCH}, P = 10, T = 8, the three "
        "forwards in turn 20 times, best time of each: "
        "the integer model's fast path (`IntegerNetwork.forward`, exact integers) against "
        "the float forward (`Network.forward`) of the same network, measured in the same "
        "run. Learning: on-line (B = 1) samples per second of the goal runs above "
        "(forward, backward, accumulation and update per sample).",
        "",
        "| dataset | integer images/s | float32 images/s | float64 images/s | integer / float32 | integer / float64 | on-line learning samples/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in bench.items():
        lines.append(
            f"| {name} | {row['integer']:,.0f} | {row['float32']:,.0f} | {row['float64']:,.0f} | "
            f"{row['integer'] / row['float32']:.2f} | {row['integer'] / row['float64']:.2f} | "
            f"{learning[name]:,.0f} |"
        )
    lines += ["", machine_note()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    epochs_flag = ["--epochs", str(args.epochs)] if args.epochs else []
    common = ["--arch", ARCH, "--timesteps", "8", "--population", "10", "--batch", "1"]
    digits = load_dataset("digits")
    spec = NetworkSpec.parse(ARCH, input_shape=digits.input_shape, timesteps=8, population=10)
    rows: dict[str, Any] = {"digits": [], "mnist": []}
    for seed in args.seeds:
        report = learn(
            ["--dataset", "digits", *common, "--init", "scratch", "--seed", str(seed),
             "--out", str(work / f"digits_scratch_{seed}"), *epochs_flag],
            work / f"digits_scratch_{seed}.json",
            args.reuse,
        )
        epochs = report["training"]["epochs"]
        _, accuracy, _ = float_same_schedule(digits, spec, seed, epochs)
        rows["digits"].append({
            "seed": seed,
            "accuracy": report["accuracy"],
            "float_accuracy": accuracy,
            "spikes": report["spikes_per_inference"],
            "samples_per_second": report["learn_samples_per_second"],
        })
        print(f"digits seed {seed}: integer {report['accuracy']:.4f}, float {accuracy:.4f}", file=sys.stderr)
    if args.float is not None:
        float_dir, source = args.float, f"the float checkpoint `{args.float}`"
    else:
        float_dir = work / "digits_float"
        command = ["train", "--dataset", "digits", "--arch", ARCH, "--timesteps", "8", "--population", "10",
                   "--seed", "0", "--out", str(float_dir), "--no-progress", *epochs_flag]
        if not (args.reuse and (float_dir / "checkpoint.json").is_file()) and cli(command):
            raise SystemExit(f"spikeforge {' '.join(command)} failed")
        source = f"the float trainer's digits defaults (`spikeforge {' '.join(command)}`)"
    tuned = learn(
        ["--dataset", "digits", "--init", str(float_dir), "--batch", "1", "--seed", "0",
         "--out", str(work / "digits_finetune"), *epochs_flag],
        work / "digits_finetune.json",
        args.reuse,
    )
    rows["finetune"] = {
        "source": source,
        "float_accuracy": tuned["float_accuracy"],
        "quantized_accuracy": tuned["quantized_accuracy"],
        "accuracy": tuned["accuracy"],
        "epochs": tuned["training"]["epochs"],
        "schedule": tuned["training"]["schedule"],
    }
    learning = {"digits": _mean([item["samples_per_second"] for item in rows["digits"]])}
    mnist = load_dataset("mnist10k")
    for seed in args.mnist_seeds:
        report = learn(
            ["--dataset", "mnist10k", *common, "--init", "scratch", "--seed", str(seed),
             "--out", str(work / f"mnist10k_scratch_{seed}"), *epochs_flag],
            work / f"mnist10k_scratch_{seed}.json",
            args.reuse,
        )
        rows["mnist"].append({
            "seed": seed,
            "accuracy": report["accuracy"],
            "spikes": report["spikes_per_inference"],
            "samples_per_second": report["learn_samples_per_second"],
        })
        print(f"mnist10k seed {seed}: integer {report['accuracy']:.4f}", file=sys.stderr)
    learning["mnist10k"] = _mean([item["samples_per_second"] for item in rows["mnist"]])
    bench = {
        "digits": throughput(digits, IntegerNetwork.load(work / f"digits_scratch_{args.seeds[0]}")),
        "mnist10k": throughput(mnist, IntegerNetwork.load(work / f"mnist10k_scratch_{args.mnist_seeds[0]}")),
    }
    goals = goals_section(argv, rows)
    speed = bench_section(argv, bench, learning)
    print(goals + "\n" + speed)
    (work / "summary.json").write_text(json.dumps({"rows": rows, "bench": bench, "learning": learning}, indent=2))
    if args.write:
        write_section(args.write, goals)
        write_section(args.write, speed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
