"""Throughput of the csim engine (the HLS C++ through ctypes) against the numpy integer model.

In one run, on the same network (128FC-100FC, T = 8, P = 10, seeded scratch init, the
dataset's learning recipe: B = 1, stochastic rounding): on-line learning samples per second
of :func:`model.integer.fit` with the numpy model and with the csim engine over the same
epochs of the shuffled training set (the two learned networks are checked to be bit-identical),
then inference images per second on the whole test split (best of ``--repeats``): the numpy
model's fast path (``IntegerNetwork.forward``, vectorized over the images) against one
engine call for all images.

Usage::

    python3 scripts/bench_hls.py --datasets digits mnist10k --epochs 2 --write docs/results.md

``--write FILE`` replaces the section ``## HLS target: csim engine throughput`` of FILE.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from results_md import machine_note, positive_int, publish  # noqa: E402

from model.data import load_dataset, to_u8  # noqa: E402
from model.integer import IntegerNetwork, LearningRule, fit, recipe  # noqa: E402
from model.spec import NetworkSpec  # noqa: E402
from sim.hls_engine import CsimNetwork  # noqa: E402

HEADING = "## HLS target: csim engine throughput"


def bench(name: str, epochs: int, repeats: int, seed: int) -> dict[str, Any]:
    """Learning and inference rates of both engines on ``name``."""
    dataset = load_dataset(name)
    defaults = recipe(name)
    spec = NetworkSpec.parse("128FC-100FC", input_shape=dataset.input_shape, timesteps=8, population=10)
    net = IntegerNetwork.scratch(spec, defaults.formats, seed=seed, rule=LearningRule(batch=1))
    pixels, labels = to_u8(dataset.train_x), dataset.train_y
    engine = CsimNetwork(copy.deepcopy(net))
    model = copy.deepcopy(net)
    rates = {}
    for key, learner in (("model", model), ("csim", engine)):
        history = fit(learner, pixels, labels, epochs=epochs, schedule=defaults.schedule, seed=seed, progress=False)
        rates[key] = history.samples_per_second
    learned = engine.network()
    identical = all(
        np.array_equal(a, b) for a, b in zip(learned.weights + learned.thresholds, model.weights + model.thresholds)
    ) and learned.lfsr.state == model.lfsr.state
    test = to_u8(dataset.test_x)

    def best(run: Any) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return len(test) / min(times)

    model_images = best(lambda: model.forward(test))
    csim_images = best(lambda: engine.run(test))
    return {
        "dataset": name,
        "samples": epochs * len(labels),
        "model_learn": rates["model"],
        "csim_learn": rates["csim"],
        "identical": identical,
        "images": len(test),
        "model_infer": model_images,
        "csim_infer": csim_images,
    }


def table(rows: list[dict[str, Any]], command: str) -> str:
    lines = [
        HEADING,
        "",
        f"Command: `{command}`",
        "",
        "128FC-100FC, P = 10, T = 8, seeded scratch init, the dataset's learning recipe (B = 1, "
        "stochastic rounding), both engines in the same run. Learning: `model.integer.fit` over the "
        "same shuffled epochs (forward, backward, accumulation and update per sample); the two "
        "learned networks are compared bit for bit. Inference: the whole test split, best of the "
        "repeats, the numpy model's vectorized fast path against one csim call.",
        "",
        "| dataset | learned samples | model samples/s | csim samples/s | csim / model | "
        "bit-identical | test images | model images/s | csim images/s | csim / model |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['samples']:,} | {r['model_learn']:,.0f} | {r['csim_learn']:,.0f} | "
            f"{r['csim_learn'] / r['model_learn']:.1f} | {'yes' if r['identical'] else 'NO'} | {r['images']:,} | "
            f"{r['model_infer']:,.0f} | {r['csim_infer']:,.0f} | {r['csim_infer'] / r['model_infer']:.2f} |"
        )
    return "\n".join([*lines, "", machine_note(), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["digits"], choices=["digits", "mnist10k"])
    parser.add_argument("--epochs", type=positive_int, default=2, help="learning epochs per engine (default 2)")
    parser.add_argument("--repeats", type=positive_int, default=20, help="inference repeats (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path, metavar="FILE", help="update this section of FILE")
    args = parser.parse_args(argv)
    rows = [bench(name, args.epochs, args.repeats, args.seed) for name in args.datasets]
    command = "python3 scripts/bench_hls.py " + " ".join(argv if argv is not None else sys.argv[1:])
    publish(table(rows, command.strip()), args.write)
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
