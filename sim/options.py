"""Command-line options that several subcommands share: one name, range, metavar and help
wording each, checked by ``argparse`` while parsing (a bad value exits 2 with one line
``spikeforge CMD: error: argument --NAME: ...`` before any work starts)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hw.core_config import DEFAULT_QUEUE_DEPTH, MAX_LANES, MAX_QUEUE_DEPTH
from model.checks import allowed_range
from model.data import Dataset, load_dataset
from model.integer import Formats
from model.spec import NetworkSpec
from sim.cli import CLIError
from sim.hls_engine import ENGINES
from sim.toolchain import SIMULATORS


def bounded_int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An ``argparse`` type: an integer in ``minimum..maximum`` (no upper bound for ``None``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(
                f"{value} is out of range (allowed {allowed_range(minimum, maximum)})"
            )
        return value

    return parse


def bits(text: str) -> str:
    """An ``argparse`` type: formats ``KEY=N,...`` (:meth:`Formats.parse`), kept as text."""
    try:
        Formats.parse(text)
    except ValueError as error:  # the model names the field "bits"; argparse names the option
        raise argparse.ArgumentTypeError(str(error).removeprefix("bits: ")) from None
    return text


#: Lanes P of a core.
lanes = bounded_int(1, MAX_LANES)
#: Spike-queue depth Q of a core.
queue_depth = bounded_int(1, MAX_QUEUE_DEPTH)
#: A count of samples, epochs or the like.
positive = bounded_int(1)


def add_lanes(
    parser: argparse.ArgumentParser, *, default: int | None = None, required: bool = False, prefix: str = ""
) -> None:
    """``--lanes P``: 1..:data:`MAX_LANES` values per memory word."""
    shown = f", default {default}" if default is not None else ""
    parser.add_argument(
        "--lanes", type=lanes, default=default, required=required, metavar="P",
        help=f"{prefix}lanes P, values per memory word, 1..{MAX_LANES}{shown}",
    )


def add_queue_depth(
    parser: argparse.ArgumentParser, *, default: int | None = DEFAULT_QUEUE_DEPTH, prefix: str = ""
) -> None:
    """``--queue-depth Q``: 1..:data:`MAX_QUEUE_DEPTH` events per spike queue (``default=None``:
    the command applies :data:`DEFAULT_QUEUE_DEPTH` itself)."""
    parser.add_argument(
        "--queue-depth", type=queue_depth, default=default, metavar="Q",
        help=f"{prefix}spike-queue capacity Q, 1..{MAX_QUEUE_DEPTH}, default {DEFAULT_QUEUE_DEPTH}",
    )


def add_data_root(parser: argparse.ArgumentParser) -> None:
    """``--data-root DIR``: the folder of the mnist10k or cifar10 files (README "Data")."""
    parser.add_argument(
        "--data-root", metavar="DIR",
        help="folder of the mnist10k IDX or cifar10 batch files (default: $SPIKEFORGE_MNIST / "
        "$SPIKEFORGE_CIFAR10, else data/mnist or data/cifar10 in the repository)",
    )


def add_sim(parser: argparse.ArgumentParser) -> None:
    """``--sim``: the Verilog simulator."""
    parser.add_argument(
        "--sim", choices=SIMULATORS, default="verilator",
        help="Verilog simulator (default verilator; icarus needs iverilog on PATH)",
    )


def add_bits(parser: argparse.ArgumentParser, *, default: str | None = None, extra: str = "") -> None:
    """``--bits KEY=N,...``: the integer formats (docs/numerics.md)."""
    shown = f"; default {default}" if default else ""
    parser.add_argument(
        "--bits", type=bits, default=default, metavar="KEY=N,...",
        help=f"formats, keys {', '.join(Formats.KEYS)} (docs/numerics.md){shown}{extra}",
    )


def add_engine(parser: argparse.ArgumentParser) -> None:
    """``--engine``: the numpy integer model or the HLS target's C++ (bit-identical results)."""
    parser.add_argument(
        "--engine", choices=ENGINES, default="model",
        help="integer engine: model (numpy, default) or csim (the HLS C++ compiled with g++; "
        "the same results, faster)",
    )


def check_dataset(spec: NetworkSpec, dataset: Dataset) -> None:
    """Refuse ``--dataset`` when its input shape or class count differs from the network's.

    Raises
    ------
    ValueError
        Naming ``--dataset``, both shapes and both class counts.
    """
    if tuple(dataset.input_shape) != spec.input_shape or dataset.classes != spec.classes:
        raise ValueError(
            f"--dataset: {dataset.name} has input shape {tuple(dataset.input_shape)} and "
            f"{dataset.classes} classes, the checkpoint expects {spec.input_shape} and {spec.classes}"
        )


def load_network_dataset(name: str, spec: NetworkSpec, root: str | None) -> Dataset:
    """``--dataset`` ``name`` in the layout the network reads (flat rows, or (C, H, W)
    images for a network with an image input), refused by :func:`check_dataset` when its
    shape or classes differ from the network's."""
    dataset = load_dataset(name, root=root, flatten=len(spec.input_shape) == 1)
    check_dataset(spec, dataset)
    return dataset


def json_target(value: str | None) -> Path | None:
    """A ``--json`` path, checked before any work (its folder is created when written).

    Raises
    ------
    CLIError
        When the path is a folder.
    """
    if value is None:
        return None
    path = Path(value)
    if path.is_dir():
        raise CLIError(f"--json: {value!r} is a folder, not a file")
    return path


def metrics_summary(result: Mapping[str, Any]) -> str:
    """One line of test metrics (:func:`model.metrics.summarize`'s accuracy, spikes, synaptic
    operations and activation sparsity)."""
    return (
        f"accuracy {100 * result['accuracy']:.2f}%  "
        f"spikes/inference {result['spikes_per_inference']:.1f}  "
        f"synaptic ops/inference {result['synaptic_ops_per_inference']:.0f}  "
        f"activation sparsity {result['activation_sparsity']:.3f}"
    )
