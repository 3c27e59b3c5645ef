"""``spikeforge learn``: on-line learning in the bit-accurate integer model.

Builds an :class:`~model.integer.IntegerNetwork` from scratch (seeded integer init), by
quantizing a float checkpoint, or from an integer checkpoint, learns on-line (an update
every ``--batch`` samples, learning rates as shifts; the training images of an image
network from scratch rotated per the recipe, ``--augment``), evaluates on the test split and
writes an integer checkpoint (``--out``) and, with ``--json``, a JSON report (``accuracy``,
``spikes_per_inference``, ``spikes_per_layer``, ``synaptic_ops_per_inference``,
``formats``, ``float_accuracy`` for a float init, the learning history and rate).

The learner state (weights, thresholds, accumulators, pending samples, LFSR, epoch and
sample position, shuffling generator, history) is saved atomically in ``OUT/resume`` before
the first sample, after every epoch and every ``--checkpoint-every`` samples (default
1000); the same command line with ``--resume`` continues from it and ends bit-identical to
an uninterrupted run (:mod:`sim.resume`). The two engines learn bit-identically, so a run
may be resumed on the other ``--engine``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from model.checkpoint import CHECKPOINT_JSON, load_checkpoint_kind, read_checkpoint_json
from model.data import default_augmentation, load_dataset, to_u8
from model.fixed import ROUNDINGS
from model.integer import (
    FitState,
    Formats,
    IntegerNetwork,
    LearningRule,
    ShiftSchedule,
    fit,
    load_learner,
    recipe,
    save_learner,
)
from model.spec import DEFAULT_ARCH, NetworkSpec, parse_arch
from sim import options, resume
from sim.cli import CLIError, write_json
from sim.hls_engine import CsimNetwork, engine_network

#: Datasets of the integer model (flat inputs for FC networks, images for conv ones).
LEARN_DATASETS = ("digits", "mnist10k")
#: Samples between saves of the learner state (besides every epoch's end).
DEFAULT_CHECKPOINT_EVERY = 1000
#: Options that decide a run's result: recorded with its state, compared by ``--resume``.
RUN_OPTIONS = (
    "dataset", "arch", "timesteps", "population", "decoder", "batch", "init", "bits",
    "epochs", "rounding", "schedule", "threshold_offset", "augment", "seed",
)


def build_network(args: argparse.Namespace, dataset: Any) -> tuple[IntegerNetwork, dict[str, Any]]:
    """The network to learn and the report's init fields."""
    rule = LearningRule(rounding=args.rounding or LearningRule.rounding, batch=args.batch)
    if args.init == "scratch":
        spec = NetworkSpec.parse(
            args.arch or DEFAULT_ARCH,
            input_shape=dataset.input_shape,
            timesteps=args.timesteps if args.timesteps is not None else 8,
            population=args.population if args.population is not None else 10,
            decoder=args.decoder,
            classes=dataset.classes,
        )
        formats = Formats.parse(args.bits or "", recipe(args.dataset, "scratch").formats)
        net = IntegerNetwork.scratch(spec, formats, seed=args.seed, rule=rule)
        return net, {"init": "scratch"}
    kind = load_checkpoint_kind(args.init)
    if kind == "float":
        from model.stbp import Network, evaluate

        floats = Network.load(args.init)
        _check_overrides(args, floats.spec)
        formats = Formats.parse(args.bits or "", recipe(args.dataset, "finetune").formats)
        net = IntegerNetwork.from_float(floats, formats, seed=args.seed, rule=rule)
        options.check_dataset(net.spec, dataset)
        float_accuracy = evaluate(floats, dataset.test_x, dataset.test_y)["accuracy"]
        return net, {"init": "float", "float_accuracy": float_accuracy}
    if kind == "integer":
        net = IntegerNetwork.load(args.init)
        _check_overrides(args, net.spec)
        if args.bits:
            raise ValueError("--bits: an integer checkpoint keeps its formats; omit --bits")
        options.check_dataset(net.spec, dataset)
        net.rule = replace(net.rule, rounding=args.rounding or net.rule.rounding, batch=args.batch)
        return net, {"init": "integer"}
    raise ValueError(f"--init: checkpoint kind {kind!r} is neither 'float' nor 'integer'")


def reads_images(args: argparse.Namespace) -> bool:
    """Whether the network of this run reads (C, H, W) images (a conv or AP2 layer first)
    rather than flat rows: from ``--arch`` for ``--init scratch``, else from the spec of the
    ``--init`` checkpoint (or of the saved state with ``--resume``)."""
    if args.resume:
        folder = resume.state_folder(args.out)
        if not (folder / CHECKPOINT_JSON).is_file():
            return False  # resume.load_state says what is missing
    elif args.init == "scratch":
        return parse_arch(args.arch or DEFAULT_ARCH)[0].kind != "fc"
    else:
        folder = args.init
    spec = read_checkpoint_json(folder).get("spec")
    shape = spec.get("input_shape") if isinstance(spec, dict) else None
    return isinstance(shape, (list, tuple)) and len(shape) == 3  # else the loader names the field


def _check_overrides(args: argparse.Namespace, spec: NetworkSpec) -> None:
    given = {"arch": args.arch, "timesteps": args.timesteps, "population": args.population}
    actual = {"arch": spec.arch, "timesteps": spec.timesteps, "population": spec.population}
    for name, value in given.items():
        if value is not None and value != actual[name]:
            raise ValueError(f"--{name}: {value!r} differs from the checkpoint's {actual[name]!r}")


def run(args: argparse.Namespace) -> int:
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CLIError(f"--out: {args.out!r} exists and is not a folder")
    dataset = load_dataset(args.dataset, root=args.data_root, flatten=not reads_images(args))
    test_pixels, train_pixels = to_u8(dataset.test_x), to_u8(dataset.train_x)
    recorded = resume.run_options(args, RUN_OPTIONS, train_pixels, dataset.train_y)
    state: FitState | None = None
    if args.resume:
        learner, state, fields = resume.load_state(args.out, "integer", recorded, load_learner)
        report = dict(fields.get("report") or {})
        if report.get("init") not in ("scratch", "float", "integer"):
            raise ValueError("--resume: the saved run records no 'init' in its report")
        print(
            f"spikeforge learn: resuming at epoch {state.epoch}, sample {state.sample}",
            file=sys.stderr,
        )
    else:
        learner, report = build_network(args, dataset)
    net = engine_network(learner, args.engine)
    defaults = recipe(
        args.dataset, "scratch" if report["init"] == "scratch" else "finetune", net.spec
    )
    augmentation = {
        "auto": defaults.augmentation,
        "on": default_augmentation(args.dataset),
        "off": None,
    }[args.augment]
    epochs = args.epochs if args.epochs is not None else defaults.epochs
    if args.schedule:
        schedule = ShiftSchedule.parse(args.schedule)
    else:  # the default float-equivalent rates at this run's fw and gf
        schedule = defaults.schedule_for(net.formats, net.spec.decoder)
    if args.threshold_offset is not None:
        schedule = ShiftSchedule(schedule.weight, schedule.milestones, args.threshold_offset)
    if report["init"] != "scratch" and state is None:
        report["quantized_accuracy"] = net.evaluate(test_pixels, dataset.test_y)["accuracy"]

    def save_state(position: FitState) -> None:
        integer = net.network() if isinstance(net, CsimNetwork) else net
        fields = {"options": recorded, "report": report}
        try:
            save_learner(resume.state_folder(args.out), integer, position, fields=fields)
        except OSError as error:
            raise CLIError(f"cannot write the learner state: {error.strerror or error}") from None

    history = fit(
        net,
        train_pixels,
        dataset.train_y,
        epochs=epochs,
        schedule=schedule,
        seed=args.seed,
        augmentation=augmentation,
        image_shape=dataset.image_shape,
        progress=not args.no_progress,
        state=state,
        checkpoint_every=args.checkpoint_every,
        on_checkpoint=save_state,
    )
    results = net.evaluate(test_pixels, dataset.test_y)
    training = {
        "dataset": args.dataset,
        "init": args.init,
        "epochs": epochs,
        "schedule": schedule.to_text(),
        "threshold_offset": schedule.threshold_offset,
        "augmentation": augmentation,
        "augment": args.augment,
        "batch": learner.rule.batch,
        "rounding": learner.rule.rounding,
        "bits": args.bits,
        "seed": args.seed,
    }
    out = net.save(args.out, training=training)
    report = {
        **results,
        "formats": net.formats_dict(),
        **report,
        "arch": net.spec.arch,
        "dataset": args.dataset,
        "training": training,
        "history": history.to_dict(),
        "learn_samples_per_second": history.samples_per_second,
        "engine": args.engine,
        "checkpoint": str(out),
    }
    if args.json is not None:
        write_json(args.json, report)
    line = (
        f"accuracy {results['accuracy']:.4f}, "
        f"spikes/inference {results['spikes_per_inference']:.1f}"
    )
    if "float_accuracy" in report:
        line += (
            f" (float {report['float_accuracy']:.4f}, "
            f"quantized {report['quantized_accuracy']:.4f})"
        )
    print(line, file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "learn",
        help="on-line learning in the bit-accurate integer model",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--dataset", required=True, choices=LEARN_DATASETS)
    options.add_data_root(parser)
    parser.add_argument(
        "--arch", metavar="A",
        help=f"architecture of nFC, nC3 and AP2 layers (scratch; default {DEFAULT_ARCH})",
    )
    parser.add_argument("--timesteps", type=int, metavar="T", help="time steps (scratch default 8)")
    parser.add_argument(
        "--population", type=int, metavar="P", help="output neurons per class (default 10)"
    )
    parser.add_argument(
        "--decoder", choices=("last", "rate", "fc"), default="last", help="readout (scratch)"
    )
    parser.add_argument(
        "--batch", type=options.positive, default=1, metavar="B", help="samples per update (1 = on-line)"
    )
    parser.add_argument(
        "--init", required=True, metavar="scratch|DIR",
        help="'scratch' (seeded integer init) or a float / integer checkpoint folder",
    )
    options.add_bits(parser)
    parser.add_argument("--epochs", type=options.positive, metavar="N", help="passes over the training set")
    parser.add_argument(
        "--rounding", choices=ROUNDINGS, help="update rounding (default stochastic)"
    )
    parser.add_argument(
        "--schedule", metavar="S[:F],...",
        help="weight learning-rate shifts per phase, e.g. 14,15,16 or 14:0.5,15:0.75,16 "
        "(default: the dataset's schedule, moved by the change of fw and gf from their defaults)",
    )
    parser.add_argument(
        "--threshold-offset", type=int, metavar="D", help="threshold shift minus weight shift"
    )
    parser.add_argument(
        "--augment", choices=("auto", "on", "off"), default="auto",
        help="host-side augmentation of the training images: auto, the recipe's (rotations up "
        "to 10 degrees for image networks on digits from scratch, else none); on: "
        "model.data.default_augmentation; off: none",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="S",
        help="init, shuffling, augmentation and LFSR seed",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="integer checkpoint folder (created)"
    )
    options.add_engine(parser)
    parser.add_argument(
        "--checkpoint-every", type=options.bounded_int(0), default=DEFAULT_CHECKPOINT_EVERY,
        metavar="N", help="samples between saves of the learner state in OUT/resume, besides "
        f"every epoch's end (0: epoch ends only; default {DEFAULT_CHECKPOINT_EVERY})",
    )
    resume.add_resume(parser)
    parser.add_argument("--json", metavar="FILE", help="also write the JSON report here")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)
