"""``spikeforge estimate``: cycles, events and energy of an integer checkpoint on the core.

Runs the event-driven core model (:mod:`model.core`) on test samples of a dataset
(inference) and on training samples (learning steps, on a copy of the network), then
prices the counters with an energy table (:mod:`model.energy`). Writes a JSON report,
optionally the memory-write trace (JSON lines) and a bar chart.

JSON keys (means over the samples): ``cycles_per_inference`` (clear + forward + readout),
``cycles_per_learning_step`` (inference + backward + update; ``null`` when the core cannot
learn the network), ``spikes_per_inference``, ``synaptic_ops_per_inference`` (each spike
times its fan-out), ``energy_pj_per_inference`` (``null`` for the unit-free ``spikes``
table; ``energy_per_inference`` and ``energy_unit`` always), ``energy_table`` (name, unit,
source, resolved costs, unpriced events), ``ideal_cycles_per_inference`` and
``cycles_over_ideal``, ``neurobench`` (``Effective_ACs``, ``Effective_MACs``, ``Dense``,
``ActivationSparsity``, ``Footprint`` in bytes), ``per_layer`` (encoder first: spikes,
synaptic ops, forward cycles, stalls, queue high-water, energy; ``learning`` per phase) and
``counters`` (every counter summed over the samples, per phase and layer).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from model.checkpoint import read_checkpoint_json
from model.core import CoreCounters, CoreModel, TraceRecord, check_core_spec, run_samples
from model.data import DATASETS, to_u8
from model.energy import TABLES, EnergyReport, estimate_energy, get_table, neurobench_metrics
from model.integer import IntegerNetwork
from model.metrics import spikes_per_layer, synaptic_ops_per_layer
from model.spec import NetworkSpec
from sim import options
from sim.cli import write_json
from sim.plots import plot_report

#: Phases of an inference (a learning step adds ``backward`` and ``update``).
INFERENCE_PHASES = ("clear", "forward", "readout")
LEARNING_PHASES = ("backward", "update")


def _dataset_name(args: argparse.Namespace, meta: dict[str, Any]) -> str:
    if args.dataset is not None:
        return args.dataset
    recorded = (meta.get("training") or {}).get("dataset")
    if recorded in DATASETS:
        return recorded
    raise ValueError("--dataset: the checkpoint records no dataset; give one of " + ", ".join(DATASETS))


def _layer_name(core: CoreModel, index: int) -> str:
    return "encoder" if index == 0 else core.spec.layers[index - 1].notation()


def build_report(
    core: CoreModel,
    inference: CoreCounters,
    unit_counts: list[np.ndarray],
    accuracy: float,
    ideal: float,
    learning: CoreCounters | None,
    table_name: str,
) -> dict[str, Any]:
    """The JSON report of ``spikeforge estimate`` (see the command's help for the keys)."""
    spec = core.spec
    samples = inference.samples
    table = get_table(table_name)
    energy = estimate_energy(inference, core, table)
    spikes = spikes_per_layer(spec, unit_counts, samples)
    sops = synaptic_ops_per_layer(spec, unit_counts, samples)
    forward = inference.phases["forward"]
    pj = table.unit == "pJ"
    per_layer = []
    learn_energy: EnergyReport | None = None
    if learning is not None:
        learn_energy = estimate_energy(learning, core, table)
    for position, index in enumerate(core.spiking()):
        layer = forward.layers[index]
        item: dict[str, Any] = {
            "layer": index,
            "name": _layer_name(core, index),
            "neurons": core.sizes[index],
            "spikes_per_inference": spikes[position],
            "synaptic_ops_per_inference": sops[position],
            "cycles": layer.cycles / samples,
            "stall_cycles": layer.stall_cycles / samples,
            "queue_high_water": layer.queue_high_water,
            "energy_per_inference": energy.per_layer(INFERENCE_PHASES)[index],
        }
        if learning is not None and learn_energy is not None:
            steps = learning.samples
            item["learning"] = {
                phase: {
                    "cycles": learning.phases[phase].layers[index].cycles / steps,
                    "energy": learn_energy.per_layer((phase,))[index],
                }
                for phase in LEARNING_PHASES
                if phase in learning.phases
            }
        per_layer.append(item)
    cycles = inference.cycles / samples
    report: dict[str, Any] = {
        "dataset_samples": samples,
        "lanes": core.lanes,
        "queue_depth": core.queue_depth,
        "accuracy": accuracy,
        "cycles_per_inference": cycles,
        "ideal_cycles_per_inference": ideal,
        "cycles_over_ideal": cycles / ideal if ideal else None,
        "cycles_by_phase_per_inference": {
            name: value / samples for name, value in inference.cycles_by_phase().items()
        },
        "spikes_per_inference": float(sum(spikes)),
        "synaptic_ops_per_inference": float(sum(sops)),
        "stall_cycles_per_inference": forward.total().stall_cycles / samples,
        "energy_per_inference": energy.per_sample(),
        "energy_unit": table.unit,
        "energy_pj_per_inference": energy.per_sample() if pj else None,
        "energy_table": {**table.to_dict(energy.costs), "unpriced_events": energy.unpriced},
        "neurobench": neurobench_metrics(core, unit_counts, samples),
        "per_layer": per_layer,
        "cycles_per_learning_step": None,
        "energy_pj_per_learning_step": None,
        "counters": {"inference": inference.to_dict()},
    }
    if learning is not None and learn_energy is not None:
        steps = learning.samples
        report["learning_steps"] = steps
        report["cycles_per_learning_step"] = learning.cycles / steps
        report["cycles_by_phase_per_learning_step"] = {
            name: value / steps for name, value in learning.cycles_by_phase().items()
        }
        report["energy_per_learning_step"] = learn_energy.per_sample()
        report["energy_pj_per_learning_step"] = learn_energy.per_sample() if pj else None
        report["energy_by_phase_per_learning_step"] = {
            name: learn_energy.per_sample((name,)) for name in learning.phases
        }
        report["counters"]["learning"] = learning.to_dict()
        report["energy_table"]["unpriced_events"] = sorted(
            set(energy.unpriced) | set(learn_energy.unpriced)
        )
    return report


def measure(
    net: IntegerNetwork,
    pixels: np.ndarray,
    labels: np.ndarray,
    train: tuple[np.ndarray, np.ndarray] | None,
    *,
    lanes: int,
    depth: int,
    table: str,
    trace: Callable[[list[TraceRecord]], None] | None = None,
) -> tuple[dict[str, Any], CoreModel, CoreCounters]:
    """Infer ``pixels`` and learn ``train`` (when given and learnable) on fresh core models.

    Returns
    -------
    (report, core, inference)
        :func:`build_report`'s dict, the inference model and its counters.
    """
    core = CoreModel(net, lanes=lanes, queue_depth=depth)
    inference, results = run_samples(core, pixels, trace=trace)
    learning = None
    if train is not None and core.can_learn:
        learner = CoreModel(net, lanes=lanes, queue_depth=depth)
        learner.samples = core.samples  # trace sample numbers continue after the inferences
        learning, _ = run_samples(learner, *train, trace=trace)
    counts = [
        sum(r.spikes[index].sum(axis=0) for r in results).reshape(core.spec.layer_shape(index))
        for index in core.spiking()
    ]
    accuracy = float(np.mean(np.array([r.prediction for r in results]) == labels))
    ideal = float(np.mean([core.ideal_cycles(r.spikes) for r in results]))
    return build_report(core, inference, counts, accuracy, ideal, learning, table), core, inference


def run(args: argparse.Namespace) -> int:
    """Estimate, write the JSON (and trace, plot), print a one-line summary."""
    lanes, depth, samples = args.lanes, args.queue_depth, args.samples
    table = get_table(args.table).name
    meta = read_checkpoint_json(args.checkpoint)
    if meta["kind"] == "integer":
        check_core_spec(NetworkSpec.from_dict(meta.get("spec")))
    net = IntegerNetwork.load(args.checkpoint)
    name = _dataset_name(args, meta)
    data = options.load_network_dataset(name, net.spec, args.data_root)
    count = min(samples, len(data.train_y))
    train = (to_u8(data.train_x[:count]), data.train_y[:count])
    trace_file = None if args.trace is None else Path(args.trace).open("w", encoding="utf-8")
    try:
        def emit(records: list[TraceRecord]) -> None:
            trace_file.writelines(record.to_json() + "\n" for record in records)

        report, _, _ = measure(
            net, to_u8(data.test_x[:samples]), data.test_y[:samples], train, lanes=lanes, depth=depth,
            table=table, trace=emit if trace_file is not None else None,
        )
    finally:
        if trace_file is not None:
            trace_file.close()
    report = {"checkpoint": str(args.checkpoint), "dataset": name, "arch": net.spec.arch, **report}
    write_json(args.json, report, sort_keys=False)
    if args.plot is not None:
        plot_report(report, args.plot)
    learn = report["cycles_per_learning_step"]
    print(
        f"{net.spec.arch} P={lanes} Q={depth}: {report['cycles_per_inference']:.0f} cycles/inference "
        f"({report['cycles_over_ideal']:.3f} x ideal), {report['spikes_per_inference']:.1f} spikes, "
        f"{report['synaptic_ops_per_inference']:.0f} SOPs, "
        f"{report['energy_per_inference']:.4g} {report['energy_unit']}/inference ({table})"
        + ("" if learn is None else f", {learn:.0f} cycles/learning step")
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "estimate",
        help="cycles, spikes, synaptic ops and energy of a checkpoint on the core",
        description=(
            "Run an integer checkpoint on the event-driven core model (docs/architecture.md) "
            "and report cycles per inference and per learning step, spikes, synaptic "
            "operations and energy per inference, per layer (encoder first)."
        ),
    )
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help="integer checkpoint folder")
    parser.add_argument(
        "--dataset", choices=DATASETS, default=None,
        help="samples to run (default: the dataset recorded in the checkpoint)",
    )
    options.add_data_root(parser)
    parser.add_argument(
        "--samples", type=options.positive, default=100, metavar="N",
        help="test samples to infer and training samples to learn (default 100)",
    )
    options.add_lanes(parser, default=8)
    options.add_queue_depth(parser)
    parser.add_argument(
        "--table", default="horowitz45", metavar="NAME",
        help=f"energy table: {', '.join(TABLES)} (default horowitz45)",
    )
    parser.add_argument(
        "--trace", metavar="FILE",
        help="write every memory write as JSON lines (docs/architecture.md section 6; "
        "about 2 MB per sample for the digits network at P = 8)",
    )
    parser.add_argument("--json", required=True, metavar="FILE", help="write the report here")
    parser.add_argument("--plot", metavar="FILE.png", help="bar chart of the per-layer breakdown")
    parser.set_defaults(func=run)
