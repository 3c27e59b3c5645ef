"""Soak of the HLS target's C simulation against the integer model.

Draws seeded random networks (FC: 0 to 2 hidden layers of 1..20 neurons, 1..24 inputs; or,
3 in 10, conv: ``nC3`` [``AP2``] [``nC3``] on a 1..2 x 2x2 or 4x4 image; population 1..3,
1..4 classes, T 1..6, last, rate or fc decoder, reset by subtraction or to zero, trainable
or fixed thresholds, the scaled or the rectangular surrogate, every rounding mode, B 1..3,
widths from very narrow (saturating everywhere) to the defaults, shifts 0..8), random
lanes P (1, 2, 3, 4, 5, 8: most do not divide the layer sizes) and random pixels (all
zero, all 255, sparse or dense). Each network learns from its samples when it can (the
learned state is checked after them, after a flush and after inference), then infers them;
every check of the testbench must pass (``tb_spikeforge``: ``N passed, M failed``).
With ``--trained`` it also learns a digits network on-line (and mnist10k when its files are
found) with the csim engine and C-simulates its project for inference and learning.

Usage::

    python3 scripts/hls_soak.py --networks 1000 --samples 4 --seed 1 --trained

Prints a summary line and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from hw.hls import check_target, learnable, write_project  # noqa: E402
from model.data import load_dataset, to_u8  # noqa: E402
from model.integer import IntegerNetwork, fit, recipe  # noqa: E402
from model.spec import DECODERS, NetworkSpec  # noqa: E402
from sim.hls_csim import make_vectors, run_csim  # noqa: E402
from sim.hls_engine import CsimNetwork  # noqa: E402

from core_soak import random_integer_network  # noqa: E402

#: Lanes drawn for the random networks.
LANES = (1, 2, 3, 4, 5, 8)
#: Pixel patterns of the random samples.
PATTERNS = ("zero", "full", "sparse", "dense")


#: Share of conv networks among this soak's random networks.
CONV_SHARE = 0.3


def random_layers(rng: np.random.Generator, conv_share: float) -> tuple[list[str], tuple[int, ...]]:
    """Hidden layers and input shape: FC (1..24 inputs, 0 to 2 layers of 1..20), or, with
    probability ``conv_share`` (no draw when 0), a conv stack on a 1..2 x S x S image (S 2
    or 4): ``nC3`` (n 1..4), an optional ``AP2``, an optional second ``nC3``."""
    if conv_share == 0 or rng.random() >= conv_share:
        hidden = [f"{int(n)}FC" for n in rng.integers(1, 21, int(rng.integers(0, 3)))]
        return hidden, (int(rng.integers(1, 25)),)
    side = int(rng.choice([2, 4]))
    hidden = [f"{int(rng.integers(1, 5))}C3"]
    if rng.random() < 0.5:
        hidden.append("AP2")
    if rng.random() < 0.5:
        hidden.append(f"{int(rng.integers(1, 4))}C3")
    return hidden, (int(rng.integers(1, 3)), side, side)


def random_network(
    rng: np.random.Generator, decoders: Sequence[str] = ("last", "rate"), conv_share: float = 0.0
) -> IntegerNetwork:
    """A random FC network, or with probability ``conv_share`` a conv one (see the module
    docstring for the ranges), with one of ``decoders``."""
    hidden, input_shape = random_layers(rng, conv_share)
    population = int(rng.integers(1, 4))
    classes = int(rng.integers(1, 5))
    reset = str(rng.choice(["subtract", "zero"], p=[0.8, 0.2]))
    threshold = str(rng.choice(["trainable", "fixed"])) if reset == "subtract" else "fixed"
    arch = "-".join(hidden + [f"{classes * population}FC"])
    spec = NetworkSpec.parse(
        arch, input_shape=input_shape, timesteps=int(rng.integers(1, 7)), population=population,
        decoder=str(rng.choice(list(decoders))), reset=reset, threshold=threshold,
        surrogate=str(rng.choice(["scaled", "rect"], p=[0.9, 0.1])),
    )
    return random_integer_network(rng, spec)


def random_pixels(rng: np.random.Generator, count: int, inputs: int) -> np.ndarray:
    """u8 samples, each all zero, all 255, sparse or dense."""
    out = np.zeros((count, inputs), np.uint8)
    for row in out:
        pattern = rng.choice(PATTERNS)
        if pattern == "full":
            row[:] = 255
        elif pattern != "zero":
            lit = rng.random(inputs) < (0.2 if pattern == "sparse" else 0.9)
            row[lit] = rng.integers(1, 256, int(lit.sum()))
    return out


def check(net: IntegerNetwork, lanes: int, pixels: np.ndarray, labels: np.ndarray,
          learn: tuple[np.ndarray, np.ndarray] | None, folder: Path) -> tuple[int, int]:
    """Write the project of ``net`` into ``folder``, run its C simulation: (passed, failed)."""
    layout = check_target(net, lanes)
    vectors = make_vectors(net, layout, pixels, labels, learn=learn)
    write_project(net, folder, vectors, lanes=lanes)
    result = run_csim(folder)
    return result.passed, result.failed


def soak_random(networks: int, samples: int, seed: int, progress: bool) -> tuple[int, int, list[int]]:
    """``networks`` random networks: (checks passed, checks failed, indices that failed)."""
    rng = np.random.default_rng(seed)
    passed = failed = 0
    bad: list[int] = []
    with tempfile.TemporaryDirectory() as scratch:
        for index in tqdm(range(networks), desc="hls soak", unit="net", disable=not progress):
            net = random_network(rng, DECODERS, CONV_SHARE)
            lanes = int(rng.choice(LANES))
            pixels = random_pixels(rng, samples, net.spec.neurons(0))
            labels = rng.integers(0, net.spec.classes, samples)
            learn = (pixels, labels) if learnable(net.spec) else None
            ok, ko = check(net, lanes, pixels, labels, learn, Path(scratch) / "project")
            passed, failed = passed + ok, failed + ko
            if ko:
                bad.append(index)
    return passed, failed, bad


def soak_trained(dataset_name: str, samples: int, seed: int, progress: bool) -> tuple[int, int]:
    """Learn ``dataset_name`` on-line with the csim engine (the recipe's schedule, 128FC-100FC,
    T = 8, P = 10, B = 1), then C-simulate its project at P = 4 and 16 (learning and inference)."""
    dataset = load_dataset(dataset_name)
    defaults = recipe(dataset_name)
    spec = NetworkSpec.parse("128FC-100FC", input_shape=dataset.input_shape, timesteps=8, population=10)
    engine = CsimNetwork(IntegerNetwork.scratch(spec, defaults.formats, seed=seed))
    fit(engine, to_u8(dataset.train_x), dataset.train_y, epochs=defaults.epochs,
        schedule=defaults.schedule, seed=seed, progress=progress)
    net = engine.network()
    test = to_u8(dataset.test_x[:samples]), dataset.test_y[:samples]
    learn = to_u8(dataset.train_x[:samples]), dataset.train_y[:samples]
    passed = failed = 0
    with tempfile.TemporaryDirectory() as scratch:
        for lanes in (4, 16):
            ok, ko = check(net, lanes, *test, learn, Path(scratch) / "project")
            passed, failed = passed + ok, failed + ko
            print(f"{dataset_name} (accuracy {engine.evaluate(to_u8(dataset.test_x), dataset.test_y)['accuracy']:.4f}) "
                  f"P = {lanes}: {ok} passed, {ko} failed", file=sys.stderr)
    return passed, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", type=int, default=1000, help="random networks (default 1000)")
    parser.add_argument("--samples", type=int, default=4, help="samples per random network (default 4)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trained", action="store_true", help="also the on-line learned digits and mnist10k networks")
    parser.add_argument("--trained-samples", type=int, default=50, help="samples of the trained networks' testbenches")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    passed, failed, bad = soak_random(args.networks, args.samples, args.seed, not args.no_progress)
    print(f"random networks: {args.networks}, checks {passed} passed, {failed} failed"
          + (f" (networks {bad[:20]})" if bad else ""))
    if args.trained:
        for name in ("digits", "mnist10k"):
            try:
                ok, ko = soak_trained(name, args.trained_samples, args.seed, not args.no_progress)
            except FileNotFoundError as error:
                print(f"{name}: skipped ({error})")
                continue
            print(f"{name}: checks {ok} passed, {ko} failed")
            passed, failed = passed + ok, failed + ko
    print(f"total: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
