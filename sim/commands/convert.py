"""``spikeforge convert``: the DNN-to-SNN conversion baseline (Rueckauer et al. 2017).

Trains a ReLU ANN of the architecture (:class:`model.convert.ANN`, the float trainer's
optimizer and augmentation), normalises it by the ``--percentile`` of its activations on
``--norm-samples`` training images and converts it to an SNN at each ``--timesteps`` value
(thresholds 1.0, the encoder's too, reset by subtraction, rate decoding;
:mod:`model.convert`). Writes, under ``--out``:

* ``ann/``: the ANN's weights (checkpoint kind ``ann``, :meth:`ANN.load`);
* ``T<T>/``: one float checkpoint per T (``spikeforge eval``, ``learn --init``);
* ``result.json`` (and a copy at ``--json``): ``ann_accuracy``, ``percentile``,
  ``scales``, ``rows`` (per T: ``timesteps``, ``accuracy``, ``spikes_per_inference``,
  ``spikes_per_layer``, ``synaptic_ops_per_inference``, ..., ``checkpoint``), ``config``
  and the ANN's training ``history``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from model import metrics
from model.convert import (
    ANN,
    ANN_OPTIMIZER,
    DEFAULT_NORMALISATION_SAMPLES,
    DEFAULT_PERCENTILE,
    SNN_SWITCHES,
    activation_scales,
    ann_defaults,
    check_percentile,
    converted_spec,
    evaluate_conversion,
    normalisation_sample,
    train_ann,
)
from model.data import DATASETS, load_dataset
from model.spec import DEFAULT_ARCH, NetworkSpec, parse_arch
from sim import options
from sim.cli import CLIError, write_json
from sim.commands.train import RESULT_JSON

#: Subfolder of ``--out`` holding the trained ANN.
ANN_FOLDER = "ann"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert`` subcommand."""
    parser = subparsers.add_parser(
        "convert",
        help="train a ReLU ANN and convert it to SNNs (Rueckauer et al. 2017) at several T",
        description="DNN-to-SNN conversion baseline: train a ReLU ANN, normalise it by a "
        "percentile of its activations, convert it to a rate-coded SNN (thresholds 1.0, "
        "reset by subtraction) at each T and report accuracy, spikes and synaptic operations.",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default="digits", help="default: digits")
    options.add_data_root(data)
    net = parser.add_argument_group("network")
    net.add_argument(
        "--arch", default=DEFAULT_ARCH, help=f"layers, e.g. {DEFAULT_ARCH} or 16C3-AP2-100FC"
    )
    net.add_argument(
        "--population", type=int, default=10, metavar="P", help="output neurons per class (10)"
    )
    net.add_argument(
        "--timesteps", type=int, nargs="+", required=True, metavar="T",
        help="time steps of the converted SNNs, each 1..1024, e.g. 8 16 32 64 128",
    )
    ann = parser.add_argument_group(
        "ANN training (defaults per dataset: model.convert.ANN_DEFAULTS)"
    )
    ann.add_argument("--epochs", type=options.positive, metavar="N")
    ann.add_argument("--lr", type=float, metavar="LR", help="base learning rate")
    ann.add_argument("--seed", type=int, default=0, help="weights, shuffling, augmentation, sample")
    conversion = parser.add_argument_group("conversion")
    conversion.add_argument(
        "--percentile", type=float, default=DEFAULT_PERCENTILE, metavar="PCT",
        help=f"percentile of a layer's positive activations that sets its scale, "
        f"0 < PCT <= 100 (100: the maximum); default {DEFAULT_PERCENTILE}",
    )
    conversion.add_argument(
        "--norm-samples", type=options.positive, default=DEFAULT_NORMALISATION_SAMPLES,
        metavar="N", help=f"training images the percentiles are taken over "
        f"(default {DEFAULT_NORMALISATION_SAMPLES})",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out", required=True, metavar="DIR",
        help="folder for ann/, T<T>/ (one float checkpoint per T) and result.json",
    )
    out.add_argument("--json", metavar="FILE", help="also write the result JSON here")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _check_timesteps(values: list[int], spec: NetworkSpec) -> None:
    """Each T a valid converted spec (1..1024), none given twice (their folders would clash)."""
    for index, value in enumerate(values):
        converted_spec(spec, value)
        if value in values[:index]:
            raise CLIError(f"--timesteps: {value} is given twice")


def run(args: argparse.Namespace) -> int:
    """Train the ANN, convert it at each T, save the checkpoints and the report."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out: {args.out!r} exists and is not a folder")
    json_path = options.json_target(args.json)
    percentile = check_percentile(args.percentile)
    defaults = ann_defaults(args.dataset)
    epochs = defaults["epochs"] if args.epochs is None else args.epochs
    lr = defaults["lr"] if args.lr is None else args.lr
    flatten = parse_arch(args.arch)[0].kind == "fc"
    dataset = load_dataset(args.dataset, root=args.data_root, flatten=flatten)
    spec = NetworkSpec.parse(
        args.arch, input_shape=dataset.input_shape, population=args.population,
        classes=dataset.classes, **SNN_SWITCHES,
    )
    _check_timesteps(args.timesteps, spec)
    ann = ANN(spec, seed=args.seed)

    started = time.perf_counter()
    history = train_ann(
        ann, dataset, epochs=epochs, lr=lr, augmentation=defaults["augmentation"],
        seed=args.seed, progress=not args.no_progress,
    )
    ann_accuracy = metrics.accuracy(ann.predict(dataset.test_x), dataset.test_y)
    config = {
        "dataset": args.dataset,
        "arch": spec.arch,
        "population": spec.population,
        "input_shape": list(spec.input_shape),
        "epochs": epochs,
        "lr": lr,
        **ANN_OPTIMIZER,
        "augmentation": defaults["augmentation"],
        "seed": args.seed,
        "percentile": percentile,
        "norm_samples": args.norm_samples,
        "encoder_threshold": SNN_SWITCHES["initial_threshold"],
    }
    ann_folder = out / ANN_FOLDER
    try:
        ann.save(ann_folder, training={**config, "history": history.to_dict()})
    except OSError as error:
        raise CLIError(f"cannot write {str(ann_folder)!r}: {error.strerror or error}") from None

    sample = normalisation_sample(dataset.train_x, args.norm_samples, seed=args.seed)
    scales = activation_scales(ann, sample, percentile=percentile)
    conversion = {
        **config,
        "method": "conversion (Rueckauer et al. 2017)",
        "scales": scales.tolist(),
        "ann_accuracy": ann_accuracy,
        "ann_checkpoint": str(ann_folder),
    }
    results = evaluate_conversion(
        ann, scales, dataset.test_x, dataset.test_y, args.timesteps,
        progress=not args.no_progress,
    )
    rows = []
    for net, result in results:
        folder = out / f"T{net.spec.timesteps}"
        try:
            net.save(folder, training=conversion)
        except OSError as error:
            raise CLIError(f"cannot write {str(folder)!r}: {error.strerror or error}") from None
        rows.append({"timesteps": net.spec.timesteps, **result, "checkpoint": str(folder)})
    report: dict[str, Any] = {
        "ann_accuracy": ann_accuracy,
        "percentile": percentile,
        "scales": scales.tolist(),
        "rows": rows,
        "config": config,
        "history": history.to_dict(),
        "ann_checkpoint": str(ann_folder),
        "seconds": time.perf_counter() - started,
    }
    write_json(out / RESULT_JSON, report)
    if json_path is not None:
        write_json(json_path, report)
    print(
        f"{args.dataset} {spec.arch}: ANN accuracy {100 * ann_accuracy:.2f}% ({epochs} epochs), "
        f"percentile {percentile:g}, scales {', '.join(f'{s:.3g}' for s in scales)}"
    )
    for row in rows:
        print(f"  T={row['timesteps']}: {options.metrics_summary(row)}")
    return 0
