"""Long co-simulation soak of the whole core against the core model.

Draws seeded random FC networks (1 to 3 layers after the encoder, layer sizes 1..16,
population 1..3, T 1..5, last, rate or fc decoder, reset by subtraction or to zero, trainable
or fixed thresholds, every rounding mode, B 1..3, widths from very narrow (saturating
everywhere) to the defaults), random lanes P (1, 2, 3, 4, 8) and queue depths Q (1..16),
random pixels (often sparse) and random input/output stall patterns; learns on each sample
when the network can learn (else infers). Then conv networks (:data:`CONV_SHARE` of the FC
count, drawn from a generator of their own so that the FC draws of a seed stay the same):
``nC3`` [``AP2``] [``nC3``] [``AP2``] on a 1..3 x S x S image (S 2, 4 or 8), n 1..5,
learning as the FC networks do (``--conv-networks`` sets their count). Then trains a digits network (integer model) and
co-simulates it for inference and learning at several P. Every run must report zero
mismatches (sim/tb/tb_core.py compares every memory write, output, counter and the final
memories).

Usage::

    python3 scripts/core_soak.py --networks 20 --samples 8 --seed 1

Prints one line per run and exits 1 if any run failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model.data import load_dataset, to_u8  # noqa: E402
from model.fixed import ROUNDINGS, signed_range  # noqa: E402
from model.integer import Formats, IntegerNetwork, LearningRule, ShiftSchedule, fit  # noqa: E402
from model.spec import NetworkSpec  # noqa: E402
from model.synapses import weight_shape  # noqa: E402
from sim.core_cosim import cosimulate  # noqa: E402

#: Stall patterns drawn for the input and result streams.
STALLS = ("always", "alternate", "burst", "sparse", "random", "dense")
#: Lanes the soak draws from (3 divides few layer sizes).
LANES = (1, 2, 3, 4, 8)
#: Conv networks drawn per FC network.
CONV_SHARE = 0.3
#: Lanes of the trained digits network's runs.
DIGITS_LANES = (4, 8, 16)


def random_integer_network(rng: np.random.Generator, spec: NetworkSpec) -> IntegerNetwork:
    """``spec`` with drawn formats (narrow, saturating), weights, thresholds, learning rule
    (shifts 0..7, every rounding, B 1..3), LFSR state and, for the fc decoder, its fraction
    bits (0..w+2) and weights (drawn last: the other draws are those of last and rate)."""
    w = int(rng.integers(2, 11))
    v = int(rng.integers(w, w + 9))
    g = int(rng.integers(4, 17))
    formats = Formats(
        w=w, fw=int(rng.integers(0, w)), v=v, g=g, gf=int(rng.integers(0, g)),
        dw=int(rng.integers(g, g + 9)), dth=int(rng.integers(g, g + 9)), k=int(rng.integers(8, 17)),
    )
    low, high = signed_range(w)
    weights = [rng.integers(low, high + 1, weight_shape(spec, i)) for i in range(1, spec.num_layers + 1)]
    top = min(formats.threshold_max, int(rng.integers(1, 400)))
    thresholds = [rng.integers(1, top + 1, spec.channels(i)) for i in range(spec.num_layers + 1)]
    rule = LearningRule(
        shift_w=int(rng.integers(0, 8)), shift_th=int(rng.integers(0, 8)),
        rounding=str(rng.choice(ROUNDINGS)), batch=int(rng.integers(1, 4)),
    )
    lfsr_state = int(rng.integers(1, 1 << 32))
    decoder = None
    if spec.decoder == "fc":
        formats = replace(formats, df=int(rng.integers(0, w + 3)))
        decoder = rng.integers(low, high + 1, (spec.classes, spec.timesteps * spec.neurons(spec.num_layers)))
    return IntegerNetwork(spec, formats, weights, thresholds, decoder=decoder, rule=rule, lfsr_state=lfsr_state)


def random_network(rng: np.random.Generator) -> tuple[IntegerNetwork, bool]:
    """A random FC network and whether the core can learn it."""
    inputs = int(rng.integers(1, 17))
    hidden = [int(n) for n in rng.integers(1, 17, int(rng.integers(0, 3)))]
    population = int(rng.integers(1, 4))
    classes = int(rng.integers(1, 4))
    learnable = bool(rng.random() < 0.8)
    reset = "subtract" if learnable else str(rng.choice(["subtract", "zero"]))
    threshold = str(rng.choice(["trainable", "fixed"])) if reset == "subtract" else "fixed"
    arch = "-".join([f"{n}FC" for n in hidden] + [f"{classes * population}FC"])
    spec = NetworkSpec.parse(
        arch, input_shape=(inputs,), timesteps=int(rng.integers(1, 6)), population=population,
        decoder=str(rng.choice(["last", "rate", "fc"])), reset=reset, threshold=threshold,
    )
    net = random_integer_network(rng, spec)
    return net, spec.reset == "subtract" and spec.surrogate == "scaled"


def random_conv_network(rng: np.random.Generator) -> tuple[IntegerNetwork, bool]:
    """A random conv network (see the module docstring), any decoder, reset and thresholds,
    and whether the core can learn it."""
    side = int(rng.choice([2, 4, 8]))
    hidden = [f"{int(rng.integers(1, 6))}C3"]
    if rng.random() < 0.5:
        hidden.append("AP2")
    if rng.random() < 0.5:
        hidden.append(f"{int(rng.integers(1, 6))}C3")
        if side // (1 << hidden.count("AP2")) >= 2 and rng.random() < 0.5:
            hidden.append("AP2")
    population, classes = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    reset = "subtract" if rng.random() < 0.8 else str(rng.choice(["subtract", "zero"]))
    spec = NetworkSpec.parse(
        "-".join(hidden + [f"{classes * population}FC"]), input_shape=(int(rng.integers(1, 4)), side, side),
        timesteps=int(rng.integers(1, 4)), population=population, decoder=str(rng.choice(["last", "rate", "fc"])),
        reset=reset, threshold=str(rng.choice(["trainable", "fixed"])) if reset == "subtract" else "fixed",
    )
    return random_integer_network(rng, spec), spec.reset == "subtract" and spec.surrogate == "scaled"


def _describe(net: IntegerNetwork) -> str:
    spec, rule = net.spec, net.rule
    return (
        f"{'x'.join(map(str, spec.input_shape))}-{spec.arch} T{spec.timesteps} pop{spec.population} {spec.decoder} "
        f"{spec.reset} {spec.threshold} {net.formats.to_dict()} {rule.rounding} s{rule.shift_w}/{rule.shift_th} B{rule.batch}"
    )


def _random_run(
    rng: np.random.Generator, net: IntegerNetwork, learnable: bool, folder: Path, samples: int
) -> tuple[str, Path, np.ndarray, np.ndarray, dict]:
    """The run of a drawn network: its checkpoint, pixels, labels and options."""
    folder = net.save(folder)
    pixels = rng.integers(0, 256, (samples, net.spec.neurons(0))).astype(np.uint8)
    if rng.random() < 0.5:
        pixels[rng.random(pixels.shape) < 0.6] = 0
    labels = rng.integers(0, net.spec.classes, samples)
    options = {
        "lanes": int(rng.choice(LANES)), "queue_depth": int(rng.choice([1, 2, 3, 4, 5, 8, 16])),
        "learn": learnable and bool(rng.random() < 0.85), "optimize": False,
        "input_pattern": str(rng.choice(STALLS)), "output_pattern": str(rng.choice(STALLS)),
        "seed": int(rng.integers(0, 1 << 31)),
    }
    return _describe(net), folder, pixels, labels, options


def soak(
    *, networks: int, samples: int, seed: int, conv_networks: int | None = None, digits: bool = True, log=print
) -> list[str]:
    """Run the soak (``conv_networks``: default :data:`CONV_SHARE` of ``networks``); returns
    the descriptions of the failed runs (empty when all passed)."""
    rng = np.random.default_rng(seed)
    failures = []
    with tempfile.TemporaryDirectory(prefix="core-soak-") as scratch:
        runs: list[tuple[str, Path, np.ndarray, np.ndarray, dict]] = []
        conv_rng = np.random.default_rng([seed, 1])
        draws = [(rng, random_network)] * networks
        conv = round(CONV_SHARE * networks) if conv_networks is None else conv_networks
        draws += [(conv_rng, random_conv_network)] * conv
        for index, (source, draw) in enumerate(draws):
            net, learnable = draw(source)
            runs.append(_random_run(source, net, learnable, Path(scratch) / f"net{index}", samples))
        if digits:
            data = load_dataset("digits")
            spec = NetworkSpec.parse("64FC-10FC", input_shape=data.input_shape, timesteps=6, population=1)
            net = IntegerNetwork.scratch(spec, seed=seed, rule=LearningRule(shift_w=13, shift_th=15))
            fit(net, to_u8(data.train_x), data.train_y, epochs=2, schedule=ShiftSchedule.parse("11", 2), seed=seed, progress=False)
            folder = net.save(Path(scratch) / "digits")
            for lanes in DIGITS_LANES:
                for learn in (False, True):
                    x, y = (data.train_x, data.train_y) if learn else (data.test_x, data.test_y)
                    options = {"lanes": lanes, "queue_depth": 8, "learn": learn, "optimize": True,
                               "input_pattern": "random", "output_pattern": "burst", "seed": seed}
                    runs.append((f"digits {_describe(net)}", folder, to_u8(x[:samples]), y[:samples], options))
        for description, folder, pixels, labels, options in runs:
            started = time.perf_counter()
            try:
                report = cosimulate(folder, pixels, labels, run_name="soak", **options)
                passed = report.passed
                detail = f"{report.stats.get('mismatches_by_kind')} log {report.log}"
            except Exception as error:  # a crash is a failure too
                passed, detail = False, repr(error)
            line = f"{'ok  ' if passed else 'FAIL'} {description} {options} {time.perf_counter() - started:.0f} s"
            log(line if passed else f"{line}: {detail}")
            if not passed:
                failures.append(f"{description} {options}: {detail}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", type=int, default=20, help="random networks (default 20)")
    parser.add_argument("--samples", type=int, default=8, help="samples per run (default 8)")
    parser.add_argument("--seed", type=int, default=1, help="seed (default 1)")
    parser.add_argument(
        "--conv-networks", type=int, default=None, help=f"random conv networks (default {CONV_SHARE} x --networks)"
    )
    parser.add_argument("--no-digits", action="store_true", help="skip the trained digits network")
    args = parser.parse_args(argv)
    failures = soak(
        networks=args.networks, samples=args.samples, seed=args.seed, conv_networks=args.conv_networks,
        digits=not args.no_digits,
    )
    print(f"{len(failures)} failed runs", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
