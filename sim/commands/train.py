"""``spikeforge train`` and ``spikeforge eval``: the float STBP trainer and checkpoint evaluation.

``train`` builds a :class:`model.stbp.Network` from the paper's switches, trains it on a
dataset of :mod:`model.data`, writes a checkpoint folder (``weights.npz``,
``checkpoint.json``) and the test metrics (``result.json``), and prints a summary.
``eval`` reads a checkpoint folder and reports the same metrics on a dataset's test split.

``train`` saves its state (parameters, momentum buffers, epoch, the shuffling and
augmentation generator, history) atomically in ``OUT/resume`` before the first epoch and
after every epoch; the same command line with ``--resume`` continues from there and ends
bit-identical to an uninterrupted run (:mod:`sim.resume`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from model.checkpoint import read_checkpoint_json
from model.data import DATASETS, Dataset, default_augmentation, load_dataset, to_u8
from model.integer import IntegerNetwork
from model.spec import DECODERS, DEFAULT_ARCH, RESETS, SURROGATES, THRESHOLDS, NetworkSpec, parse_arch
from model.stbp import (
    CALIBRATION_SAMPLES,
    LR_SCHEDULES,
    Network,
    TrainState,
    evaluate,
    load_trainer,
    save_trainer,
    train,
    training_defaults,
)
from sim import options, resume
from sim.cli import CLIError, write_json
from sim.hls_engine import engine_network

#: File written next to the checkpoint with the test metrics.
RESULT_JSON = "result.json"
#: Options that decide a training run's result: recorded with its state, compared by
#: ``--resume``.
RUN_OPTIONS = (
    "dataset", "arch", "timesteps", "population", "reset", "threshold", "surrogate",
    "decoder", "epochs", "lr", "batch", "momentum", "lr_schedule", "augment", "seed",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``eval`` subcommands."""
    train_parser = subparsers.add_parser(
        "train",
        help="train a float SNN with (enhanced) STBP and report its test metrics",
        description="Train a float SNN with STBP, save a checkpoint and report test accuracy, "
        "spikes and synaptic operations per inference.",
    )
    data = train_parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default="digits", help="default: digits")
    options.add_data_root(data)
    net = train_parser.add_argument_group("network (the paper's switches)")
    net.add_argument(
        "--arch", default=DEFAULT_ARCH, help=f"layers, e.g. {DEFAULT_ARCH} or 16C3-AP2-100FC"
    )
    net.add_argument("--timesteps", type=int, default=8, metavar="T", help="1..1024, default 8")
    net.add_argument(
        "--population", type=int, default=10, metavar="P", help="output neurons per class (10)"
    )
    net.add_argument("--reset", choices=RESETS, default="subtract")
    net.add_argument("--threshold", choices=THRESHOLDS, default="trainable")
    net.add_argument("--surrogate", choices=SURROGATES, default="scaled")
    net.add_argument("--decoder", choices=DECODERS, default="last")
    opt = train_parser.add_argument_group(
        "training (defaults per dataset: model.stbp.TRAINING_DEFAULTS)"
    )
    opt.add_argument("--epochs", type=options.positive, metavar="N")
    opt.add_argument(
        "--lr",
        type=float,
        metavar="LR",
        help="base learning rate (default: the dataset's times min(1, 8/T), model.stbp.default_lr)",
    )
    opt.add_argument("--batch", type=options.positive, default=50, metavar="B", help="default 50")
    opt.add_argument("--momentum", type=float, default=0.9, help="Nesterov momentum, default 0.9")
    opt.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="cosine")
    opt.add_argument(
        "--augment",
        choices=("auto", "on", "off"),
        default="auto",
        help="auto: the dataset's training default; on: model.data.default_augmentation "
        "(flip/shift/rotate as the dataset allows); off: none",
    )
    opt.add_argument("--seed", type=int, default=0, help="weights, shuffling, augmentation")
    out = train_parser.add_argument_group("output")
    out.add_argument(
        "--out", required=True, metavar="DIR", help="checkpoint folder (also gets result.json)"
    )
    out.add_argument("--json", metavar="FILE", help="also write the result JSON here")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    resume.add_resume(out)
    train_parser.set_defaults(func=run_train)

    eval_parser = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint on a dataset's test split",
        description="Report test accuracy, spikes and synaptic operations per inference of a "
        "checkpoint.",
    )
    eval_parser.add_argument("--checkpoint", required=True, metavar="DIR")
    eval_parser.add_argument(
        "--dataset", choices=DATASETS, help="default: the dataset the checkpoint was trained on"
    )
    options.add_data_root(eval_parser)
    options.add_engine(eval_parser)
    eval_parser.add_argument("--json", metavar="FILE", help="write the result JSON here")
    eval_parser.set_defaults(func=run_eval)


# train -------------------------------------------------------------------------------


def run_train(args: argparse.Namespace) -> int:
    """Train, save the checkpoint and result.json, print the summary."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out: {args.out!r} exists and is not a folder")
    json_path = options.json_target(args.json)
    defaults = training_defaults(args.dataset)
    epochs = defaults["epochs"] if args.epochs is None else args.epochs
    flatten = parse_arch(args.arch)[0].kind == "fc"
    dataset = load_dataset(args.dataset, root=args.data_root, flatten=flatten)
    spec = NetworkSpec.parse(
        args.arch,
        input_shape=dataset.input_shape,
        timesteps=args.timesteps,
        population=args.population,
        reset=args.reset,
        threshold=args.threshold,
        surrogate=args.surrogate,
        decoder=args.decoder,
        classes=dataset.classes,
    )
    # The recipe's learning rate is tuned at T = 8; above, it shrinks as 8 / T (default_lr).
    lr = training_defaults(args.dataset, spec.timesteps)["lr"] if args.lr is None else args.lr
    augmentation = {
        "auto": defaults["augmentation"],
        "on": default_augmentation(args.dataset),
        "off": None,
    }[args.augment]
    recorded = resume.run_options(args, RUN_OPTIONS, dataset.train_x, dataset.train_y)
    state: TrainState | None = None
    if args.resume:
        net, state, _ = resume.load_state(args.out, "float", recorded, load_trainer)
        print(f"spikeforge train: resuming at epoch {state.epoch}", file=sys.stderr)
    else:
        net = Network(spec, seed=args.seed, dtype=np.float32)
        if not spec.is_fc_only:
            net.calibrate(dataset.train_x[:CALIBRATION_SAMPLES])

    def save_state(position: TrainState) -> None:
        try:
            save_trainer(resume.state_folder(out), net, position, fields={"options": recorded})
        except OSError as error:
            raise CLIError(f"cannot write the trainer state: {error.strerror or error}") from None

    history = train(
        net,
        dataset,
        epochs=epochs,
        lr=lr,
        batch=args.batch,
        momentum=args.momentum,
        seed=args.seed,
        augmentation=augmentation,
        progress=not args.no_progress,
        lr_schedule=args.lr_schedule,
        state=state,
        on_checkpoint=save_state,
    )
    config = {
        **spec.to_dict(),
        "dataset": args.dataset,
        "epochs": epochs,
        "lr": lr,
        "batch": args.batch,
        "momentum": args.momentum,
        "lr_schedule": args.lr_schedule,
        "augmentation": augmentation,
        "seed": args.seed,
    }
    try:
        net.save(out, training={**config, "history": history.to_dict()})
    except OSError as error:
        raise CLIError(f"cannot write checkpoint {str(out)!r}: {error.strerror or error}") from None
    result = {
        **evaluate(net, dataset.test_x, dataset.test_y),
        "config": config,
        "history": history.to_dict(),
        "checkpoint": str(out),
    }
    write_json(out / RESULT_JSON, result)
    if json_path is not None:
        write_json(json_path, result)
    print(f"{args.dataset} {spec.arch} T={spec.timesteps}: {options.metrics_summary(result)}")
    return 0


# eval --------------------------------------------------------------------------------


def _evaluate_float(directory: Path, dataset: Dataset, engine: str) -> dict[str, Any]:
    if engine != "model":
        raise CLIError(f"--engine: {engine} runs integer checkpoints; this one is float")
    net = Network.load(directory)
    return evaluate(net, dataset.test_x, dataset.test_y)


def _evaluate_integer(directory: Path, dataset: Dataset, engine: str) -> dict[str, Any]:
    net = engine_network(IntegerNetwork.load(directory), engine)
    return {**net.evaluate(to_u8(dataset.test_x), dataset.test_y), "formats": net.formats_dict()}


#: Checkpoint kinds ``eval`` can run (the ``kind`` field of checkpoint.json) and their
#: evaluators ``(checkpoint folder, dataset, engine) -> metrics dict``.
EVALUATORS: dict[str, Callable[[Path, Dataset, str], dict[str, Any]]] = {
    "float": _evaluate_float,
    "integer": _evaluate_integer,
}


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint on a test split, print the summary, optionally write JSON."""
    directory = Path(args.checkpoint)
    json_path = options.json_target(args.json)
    meta = read_checkpoint_json(directory)
    kind = meta["kind"]
    if kind not in EVALUATORS:
        raise CLIError(
            f"checkpoint kind {kind!r} is not supported yet (supported: {', '.join(EVALUATORS)})"
        )
    try:
        spec = NetworkSpec.from_dict(meta.get("spec"))
    except ValueError as error:
        raise CLIError(f"checkpoint spec: {error}") from None
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    name = args.dataset or training.get("dataset")
    if name not in DATASETS:
        raise CLIError("--dataset: the checkpoint does not name its dataset; pass --dataset")
    dataset = options.load_network_dataset(name, spec, args.data_root)
    result = {
        **EVALUATORS[kind](directory, dataset, args.engine),
        "config": {**spec.to_dict(), "dataset": name, "kind": kind},
        "checkpoint": str(directory),
    }
    if json_path is not None:
        write_json(json_path, result)
    print(f"{name} {spec.arch} T={spec.timesteps} ({kind}): {options.metrics_summary(result)}")
    return 0
