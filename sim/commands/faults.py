"""``spikeforge faults``: bit errors in the core's learned memories and what they cost.

Injects seeded bit errors (:mod:`model.faults`) into the stored words of the chosen
memories of an integer checkpoint at each bit-error rate, evaluates the test split, and
with ``--learn`` lets on-line learning continue on the faulty core (``--learn-epochs``
over the training split at the dataset's fine-tuning rates) to see whether it heals the
damage; every point is the mean over ``--repeats`` draws. ``--bit-ber`` adds the cost of
each bit position alone. JSON (``--json``): ``rows`` (``memory``, ``ber``, ``mode``,
``faults``, ``accuracy``, ``accuracy_std`` and with ``--learn`` ``accuracy_after_learning``),
``bit_rows``, ``accuracy_without_faults`` and, with ``--learn``, the accuracy after the
same learning without faults.
"""

from __future__ import annotations

import argparse
import copy
import sys
from typing import Any

import numpy as np
from tqdm import tqdm

from model import faults
from model.data import to_u8
from model.integer import STORED_MEMORIES, IntegerNetwork, fit, recipe
from sim import options
from sim.cli import write_json

#: Datasets of the integer model.
FAULT_DATASETS = ("digits", "mnist10k")
#: Bit-error rates without ``--ber``: 1e-6 .. 1e-2.
DEFAULT_BERS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


def rate(text: str) -> float:
    """An ``argparse`` type: a probability in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is out of range (allowed 0 < B <= 1)")
    return value


def memory_list(text: str) -> tuple[str, ...]:
    """An ``argparse`` type: a comma-separated list of :data:`STORED_MEMORIES`, no repeats."""
    names = tuple(name.strip().upper() for name in text.split(","))
    unknown = [name for name in names if name not in STORED_MEMORIES]
    if unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected distinct names from {', '.join(STORED_MEMORIES)}"
        )
    return names


class _Run:
    """The clean network, the data and the learning settings of one ``faults`` run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.net = IntegerNetwork.load(args.checkpoint)
        dataset = options.load_network_dataset(args.dataset, self.net.spec, args.data_root)
        self.test = to_u8(dataset.test_x), dataset.test_y
        count = args.learn_samples or len(dataset.train_y)
        if count > len(dataset.train_y):
            raise ValueError(
                f"--learn-samples: {count} is more than the {len(dataset.train_y)} training samples"
            )
        self.train = to_u8(dataset.train_x[:count]), dataset.train_y[:count]
        defaults = recipe(args.dataset, "finetune")
        self.schedule = defaults.schedule_for(self.net.formats, self.net.spec.decoder)
        self.epochs = args.learn_epochs
        self.seed = args.seed

    def accuracy(self, net: IntegerNetwork) -> float:
        return float(net.evaluate(*self.test)["accuracy"])

    def learned(self, net: IntegerNetwork, repeat: int) -> float:
        """Accuracy after on-line learning continues on ``net`` (in place)."""
        fit(net, *self.train, epochs=self.epochs, schedule=self.schedule, seed=self.seed + repeat,
            progress=False)
        return self.accuracy(net)


def _summary(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def _point(
    run: _Run, memory: str, ber: float, mode: str, repeats: int, key: tuple[int, ...],
    learn: bool, bar: tqdm, bit: int | None = None,
) -> dict[str, Any]:
    """Mean accuracy (and after learning) over ``repeats`` draws seeded by ``key``."""
    counts, accuracy, after = [], [], []
    for repeat in range(repeats):
        rng = np.random.default_rng([run.seed, *key, repeat])
        drawn = faults.draw(run.net, memory, ber, rng, bit=bit)
        faulty = faults.inject(run.net, [drawn], mode)
        counts.append(len(drawn))
        accuracy.append(run.accuracy(faulty))
        if learn:
            after.append(run.learned(faulty, repeat))
        bar.update()
    row: dict[str, Any] = {"memory": memory, "ber": ber, "mode": mode}
    if bit is not None:
        row["bit"] = bit
    row["faults"] = float(np.mean(counts))
    row["accuracy"], row["accuracy_std"] = _summary(accuracy)
    if learn:
        row["accuracy_after_learning"], row["accuracy_after_learning_std"] = _summary(after)
    return row


def run(args: argparse.Namespace) -> int:
    runner = _Run(args)
    net, learn = runner.net, args.learn
    widths = {memory: net.formats.stored(memory).bits for memory in args.memories}
    total = len(args.memories) * len(args.ber) * args.repeats
    if args.bit_ber is not None:
        total += sum(widths.values()) * args.repeats
    report: dict[str, Any] = {
        "checkpoint": str(args.checkpoint), "dataset": args.dataset, "arch": net.spec.arch,
        "formats": net.formats.to_dict(), "mode": args.mode, "repeats": args.repeats,
        "seed": args.seed, "memory_bits": {m: faults.memory_bits(net, m) for m in args.memories},
        "accuracy_without_faults": runner.accuracy(net),
    }
    if learn:
        report["learning"] = {
            "epochs": runner.epochs, "samples": len(runner.train[1]),
            "schedule": runner.schedule.to_text(),
        }
        report["accuracy_after_learning_without_faults"] = runner.learned(copy.deepcopy(net), 0)
    with tqdm(total=total, disable=args.no_progress, unit="draw", leave=False) as bar:
        rows = [
            _point(runner, memory, ber, args.mode, args.repeats, (m, b), learn, bar)
            for m, memory in enumerate(args.memories)
            for b, ber in enumerate(args.ber)
        ]
        bit_rows = []
        if args.bit_ber is not None:
            bit_rows = [
                _point(runner, memory, args.bit_ber, args.mode, args.repeats, (m, 1000 + bit), False,
                       bar, bit=bit)
                for m, memory in enumerate(args.memories)
                for bit in range(widths[memory])
            ]
    report["rows"], report["bit_rows"] = rows, bit_rows
    if args.json is not None:
        write_json(args.json, report)
    if args.plot is not None:
        from sim.plots import plot_faults

        plot_faults(report, args.plot)
    worst = min(rows, key=lambda row: row["accuracy"])
    print(
        f"accuracy without faults {report['accuracy_without_faults']:.4f}; lowest "
        f"{worst['accuracy']:.4f} ({worst['memory']} at BER {worst['ber']:g}, {args.mode})",
        file=sys.stderr,
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "faults",
        help="bit errors in the learned memories: accuracy, and healing by on-line learning",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help="integer checkpoint")
    parser.add_argument("--dataset", required=True, choices=FAULT_DATASETS)
    options.add_data_root(parser)
    parser.add_argument(
        "--ber", type=rate, nargs="+", default=list(DEFAULT_BERS), metavar="B",
        help="bit-error rates, each 0 < B <= 1 (default 1e-6 1e-5 1e-4 1e-3 1e-2)",
    )
    parser.add_argument(
        "--memories", type=memory_list, default=("W", "VTH"), metavar="M,...",
        help=f"memories to fault, from {','.join(STORED_MEMORIES)} (default W,VTH)",
    )
    parser.add_argument("--mode", choices=faults.MODES, default="flip", help="fault kind (default flip)")
    parser.add_argument("--repeats", type=options.positive, default=3, metavar="N",
                        help="draws per point, averaged (default 3)")
    parser.add_argument("--learn", action="store_true",
                        help="also learn on-line on the faulty core, then evaluate again")
    parser.add_argument("--learn-epochs", type=options.positive, default=1, metavar="N",
                        help="passes over the training samples with --learn (default 1)")
    parser.add_argument("--learn-samples", type=options.positive, metavar="N",
                        help="training samples per pass (default all)")
    parser.add_argument("--bit-ber", type=rate, metavar="B",
                        help="also fault each bit position alone, at this rate per value")
    parser.add_argument("--seed", type=options.bounded_int(0), default=0, metavar="S",
                        help="fault draws and shuffling seed (default 0)")
    parser.add_argument("--json", metavar="FILE", help="write the JSON report here")
    parser.add_argument("--plot", metavar="FILE", help="write the accuracy-against-BER plot (PNG)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)
