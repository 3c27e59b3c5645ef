"""Training throughput of the float STBP trainer against snnTorch on the CPU.

Both trainers learn the same network from the same initial weights on the same data in
one process, with the same thread count, and the script reports training samples per
second for each and their ratio.

The network (default ``128FC-100FC`` on the 8x8 digits, T = 8, batch 50; ``--arch`` also
takes conv networks such as ``16C3-AP2-32C3-AP2-256FC-100FC``, fed the (C, H, W) images):

* layer 0, the encoder: integrate-and-fire neurons driven by the pixel value every step,
  one trainable threshold per input (FC) or per image channel (conv);
* FC layers and 3x3 same-padded conv layers without bias, each followed by IF neurons with
  one trainable threshold per neuron (FC) or per output channel (conv), reset by
  subtraction, initial threshold 0.5; AP2 layers average 2x2 spikes (not spiking);
* last-spike decoding: the output spikes at t = T averaged over each class's population
  of 10, MSE against the one-hot label;
* SGD with Nesterov momentum 0.9, constant learning rate times each parameter's
  :func:`model.stbp.learning_rate_scales` factor, thresholds kept at or above
  :data:`model.stbp.THRESHOLD_FLOOR` after each update, no augmentation. The weights of a
  conv network are scaled by :meth:`model.stbp.Network.calibrate` on the first
  :data:`model.stbp.CALIBRATION_SAMPLES` training images, as ``spikeforge train`` does,
  before they are copied to snnTorch.

spikeforge runs :func:`model.stbp.train` (float32, eq. 15 ``scaled`` surrogate).
snnTorch runs ``snntorch.Leaky(beta=1, reset_mechanism="subtract",
learn_threshold=True)`` layers (thresholds shaped (C, 1, 1) for per-channel ones) after
``torch.nn.Linear(bias=False)``, ``torch.nn.Conv2d(padding=1, bias=False)`` and
``torch.nn.AvgPool2d(2)`` in the usual step-by-step loop with autograd and
``torch.optim.SGD(momentum=0.9, nesterov=True)``, float32, with the paper's rectangular
surrogate of eq. 3 (``dS/dV = 1`` where ``|V - Vth| < 0.5``) made with
``snntorch.surrogate.custom_surrogate``. Each epoch also predicts the class of every
training sample on both sides, as :func:`model.stbp.train` does.

Timing: ``--warmup`` untimed epochs per trainer, then ``--repeats`` rounds that each time
``--epochs`` epochs of snnTorch and then of spikeforge (interleaved so a change in machine
load hits both). Thread pools (OpenMP, OpenBLAS, MKL, torch intra-op) are all set to
``--threads``.

Needs the ``peers`` extra (``pip install -e .[peers]``); not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sim.options import bounded_int

PEERS_HINT = "install the peers extra: pip install -e .[peers]"


class BenchError(Exception):
    """A missing peer package or an unusable option; reported as one stderr line."""

#: Thread-count environment variables set before the numerical libraries load.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

#: Default architecture per dataset (population 10, so the last layer has 100 neurons).
DEFAULT_ARCH = {"digits": "128FC-100FC", "mnist10k": "800FC-100FC"}

POPULATION = 10
MOMENTUM = 0.9
#: Half-width of the rectangular surrogate window of eq. 3 (``|V - Vth| < 0.5``).
RECT_HALF_WIDTH = 0.5


@dataclass
class Throughput:
    """Timed training of one trainer.

    Attributes
    ----------
    name : str
        Trainer name.
    samples_per_s : list of float
        Training samples per second of each repeat.
    last_loss : float
        Mean training loss of the last timed epoch (a check that it learns).
    last_accuracy : float
        Training accuracy (0..1) of the last timed epoch.
    """

    name: str
    samples_per_s: list[float]
    last_loss: float = math.nan
    last_accuracy: float = math.nan

    def add(self, samples: int, seconds: float, loss: float, accuracy: float) -> None:
        """Record one timed run of ``samples`` training samples."""
        self.samples_per_s.append(samples / seconds)
        self.last_loss, self.last_accuracy = loss, accuracy

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples_per_s)

    @property
    def stdev(self) -> float:
        return statistics.stdev(self.samples_per_s) if len(self.samples_per_s) > 1 else 0.0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"{value} is out of range (allowed a finite number > 0)"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench_snntorch",
        description="Training throughput (samples/s) of spikeforge's float STBP trainer "
        "against snnTorch on the CPU: same network, T, batch and thread count.",
    )
    parser.add_argument("--dataset", choices=sorted(DEFAULT_ARCH), default="digits")
    parser.add_argument(
        "--arch",
        help="architecture (default 128FC-100FC for digits, 800FC-100FC for mnist10k; "
        "conv networks such as 16C3-AP2-32C3-AP2-256FC-100FC take the images); the last "
        "layer needs 10 classes x 10 neurons",
    )
    options = (
        ("--threads", 1, 1, "threads of every thread pool"),
        ("--epochs", 1, 5, "timed epochs per round"),
        ("--warmup", 0, 1, "untimed epochs per trainer first"),
        ("--repeats", 1, 5, "timed rounds"),
        ("--timesteps", 1, 8, "time steps T"),
        ("--batch", 1, 50, "samples per update"),
    )
    for flag, minimum, default, text in options:
        parser.add_argument(
            flag, type=bounded_int(minimum), default=default, help=f"{text} (default {default})"
        )
    parser.add_argument(
        "--lr", type=_positive_float, default=0.5, help="learning rate (default 0.5)"
    )
    parser.add_argument("--seed", type=bounded_int(0), default=0, help="weights and shuffling seed")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    return parser


def _import_peers() -> tuple[Any, Any, Any]:
    """``torch``, ``snntorch`` and ``snntorch.surrogate``, or BenchError with the install hint."""
    try:
        import snntorch
        import torch
        from snntorch import surrogate
    except ImportError as error:
        raise BenchError(f"{error}; {PEERS_HINT}") from None
    return torch, snntorch, surrogate


# snnTorch side -------------------------------------------------------------------------


def _rect_surrogate(input_: Any, grad_input: Any, spikes: Any) -> Any:
    """Eq. 3 for ``snntorch.surrogate.custom_surrogate``: the gradient where ``|V - Vth| < 0.5``.

    ``input_`` is ``V - Vth`` (snnTorch's argument), ``spikes`` the forward output (unused).
    """
    return grad_input * (input_.abs() < RECT_HALF_WIDTH)


class SnnTorchTrainer:
    """The network of a float :class:`model.stbp.Network` in snnTorch, with its SGD.

    Parameters
    ----------
    net : model.stbp.Network
        Source of the architecture and the initial weights/thresholds.
    lr : float
        Learning rate, times each parameter's :func:`model.stbp.learning_rate_scales` factor.
    torch, snntorch, surrogate : module
        The peer modules (imported lazily so the script can report their absence).
    """

    def __init__(self, net: Any, lr: float, torch: Any, snntorch: Any, surrogate: Any) -> None:
        from model.stbp import learning_rate_scales

        self.torch = torch
        self.spec = spec = net.spec
        spike_grad = surrogate.custom_surrogate(_rect_surrogate)

        def neurons(index: int) -> Any:
            threshold = net.thresholds[index]
            if len(spec.layer_shape(index)) == 3:  # one per channel of (C, H, W)
                threshold = threshold.reshape(-1, 1, 1)
            return snntorch.Leaky(
                beta=1.0,
                threshold=torch.tensor(threshold, dtype=torch.float32),
                learn_threshold=True,
                reset_mechanism="subtract",
                spike_grad=spike_grad,
            )

        self.encoder = neurons(0)
        self.named = {"threshold_0": self.encoder.threshold}  # net.parameters() names
        self.layers: list[tuple[Any, Any]] = []  # (synapses, neurons or None after AP2)
        for index, (layer, weight) in enumerate(zip(spec.layers, net.weights), start=1):
            if layer.kind == "pool":
                self.layers.append((torch.nn.AvgPool2d(2), None))
                continue
            n_out, n_in = weight.shape[:2]
            if layer.kind == "fc":
                linear = torch.nn.Linear(n_in, n_out, bias=False)
                synapse, parameter = torch.nn.Sequential(torch.nn.Flatten(), linear), linear.weight
            else:
                synapse = torch.nn.Conv2d(n_in, n_out, 3, padding=1, bias=False)
                parameter = synapse.weight
            with torch.no_grad():
                parameter.copy_(torch.tensor(weight, dtype=torch.float32))
            lif = neurons(index)
            self.layers.append((synapse, lif))
            self.named[f"weight_{index}"] = parameter
            self.named[f"threshold_{index}"] = lif.threshold
        self.thresholds = [p for name, p in self.named.items() if name.startswith("threshold_")]
        groups: dict[float, list[Any]] = {}  # one parameter group per learning-rate factor
        scales = learning_rate_scales(net)
        for name, parameter in self.named.items():
            groups.setdefault(scales[name], []).append(parameter)
        self.optimizer = torch.optim.SGD(
            [{"params": params, "lr": lr * scale} for scale, params in groups.items()],
            lr=lr,
            momentum=MOMENTUM,
            nesterov=True,
        )

    def decoded(self, x: Any) -> Any:
        """Class values (B, classes): last-step output spikes averaged per population."""
        encoder_mem = self.encoder.reset_mem()
        mems = [None if lif is None else lif.reset_mem() for _, lif in self.layers]
        for _ in range(self.spec.timesteps):
            spikes, encoder_mem = self.encoder(x, encoder_mem)
            for index, (synapse, lif) in enumerate(self.layers):
                spikes = synapse(spikes)
                if lif is not None:
                    spikes, mems[index] = lif(spikes, mems[index])
        return spikes.reshape(len(x), self.spec.classes, self.spec.population).mean(dim=2)

    def epoch(self, x: Any, y: Any, order: Any, batch: int, floor: float) -> tuple[float, float]:
        """One pass over ``(x, y)`` in ``order``; returns the mean loss and the accuracy."""
        torch = self.torch
        loss_sum = correct = 0.0
        for start in range(0, len(order), batch):
            pick = order[start : start + batch]
            inputs, labels = x[pick], y[pick]
            decoded = self.decoded(inputs)
            target = torch.nn.functional.one_hot(labels, self.spec.classes).to(decoded.dtype)
            loss = torch.nn.functional.mse_loss(decoded, target)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            with torch.no_grad():
                for threshold in self.thresholds:
                    threshold.clamp_(min=floor)
            loss_sum += loss.item() * len(pick)
            correct += (decoded.argmax(dim=1) == labels).sum().item()
        return loss_sum / len(order), correct / len(order)


# Benchmark -----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-ready record (see :func:`main`)."""
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(args.threads)
    torch, snntorch, surrogate = _import_peers()
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    from model.data import load_dataset
    from model.spec import NetworkSpec, parse_arch
    from model.stbp import CALIBRATION_SAMPLES, THRESHOLD_FLOOR, Network, train

    torch.set_num_threads(args.threads)
    arch = args.arch or DEFAULT_ARCH[args.dataset]
    try:
        dataset = load_dataset(args.dataset, flatten=parse_arch(arch)[0].kind == "fc")
        spec = NetworkSpec.parse(
            arch,
            input_shape=dataset.input_shape,
            timesteps=args.timesteps,
            reset="subtract",
            threshold="trainable",
            surrogate="scaled",
            decoder="last",
            population=POPULATION,
            classes=dataset.classes,
        )
    except (ValueError, FileNotFoundError) as error:
        raise BenchError(str(error)) from None
    ours = Network(spec, seed=args.seed, dtype=np.float32)
    if not spec.is_fc_only:
        ours.calibrate(dataset.train_x[:CALIBRATION_SAMPLES])
    peer = SnnTorchTrainer(ours, args.lr, torch, snntorch, surrogate)
    x_torch = torch.from_numpy(dataset.train_x)
    y_torch = torch.from_numpy(dataset.train_y)
    samples = len(dataset.train_y)
    rng = np.random.default_rng(args.seed)

    def time_peer(epochs: int) -> tuple[float, float, float]:
        started = time.perf_counter()
        for _ in range(epochs):
            loss, accuracy = peer.epoch(
                x_torch, y_torch, torch.from_numpy(rng.permutation(samples)), args.batch,
                THRESHOLD_FLOOR,
            )
        return time.perf_counter() - started, loss, accuracy

    def time_ours(epochs: int, seed: int) -> tuple[float, float, float]:
        started = time.perf_counter()
        history = train(
            ours, dataset, epochs=epochs, lr=args.lr, batch=args.batch, momentum=MOMENTUM,
            seed=seed, augmentation=None, progress=False, lr_schedule="constant",
        )
        return time.perf_counter() - started, history.loss[-1], history.train_accuracy[-1]

    peer_result = Throughput(f"snnTorch {snntorch.__version__}", [])
    our_result = Throughput("spikeforge", [])
    load_before = os.getloadavg()
    with threadpool_limits(limits=args.threads):
        pools = [
            {key: pool[key] for key in ("internal_api", "num_threads", "version")}
            for pool in threadpool_info()
        ]
        if args.warmup:
            time_peer(args.warmup)
            time_ours(args.warmup, args.seed)
        for repeat in range(args.repeats):
            peer_result.add(args.epochs * samples, *time_peer(args.epochs))
            our_result.add(args.epochs * samples, *time_ours(args.epochs, args.seed + 1 + repeat))
    ratios = [a / b for a, b in zip(our_result.samples_per_s, peer_result.samples_per_s)]
    return {
        "config": {
            "dataset": args.dataset,
            "train_samples": samples,
            "arch": spec.arch,
            "input_shape": list(spec.input_shape),
            "timesteps": spec.timesteps,
            "population": POPULATION,
            "batch": args.batch,
            "lr": args.lr,
            "momentum": MOMENTUM,
            "dtype": "float32",
            "snntorch_surrogate": f"rectangular |V - Vth| < {RECT_HALF_WIDTH} (eq. 3)",
            "spikeforge_surrogate": spec.surrogate,
            "threads": args.threads,
            "warmup_epochs": args.warmup,
            "epochs": args.epochs,
            "repeats": args.repeats,
            "seed": args.seed,
        },
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "snntorch": snntorch.__version__,
            "machine": platform.machine(),
            "processor": _cpu_model(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "thread_pools": pools,
            "loadavg_before": list(load_before),
            "loadavg_after": list(os.getloadavg()),
        },
        "results": [
            {**asdict(result), "mean": result.mean, "stdev": result.stdev}
            for result in (peer_result, our_result)
        ],
        "ratio": {
            "mean_of_means": our_result.mean / peer_result.mean,
            "per_repeat": ratios,
            "min": min(ratios),
            "max": max(ratios),
        },
    }


def _cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or ``platform.processor()`` elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def format_table(record: dict[str, Any]) -> str:
    """The results of :func:`run` as a plain-text table."""
    config, env = record["config"], record["environment"]
    lines = [
        f"{config['dataset']} {config['arch']} T={config['timesteps']} batch={config['batch']} "
        f"threads={config['threads']} epochs={config['epochs']}x{config['repeats']} "
        f"(torch {env['torch']}, numpy {env['numpy']}, {env['cpus']} CPUs, "
        f"load {env['loadavg_before'][0]:.2f} -> {env['loadavg_after'][0]:.2f})",
        f"{'trainer':<16} {'samples/s':>10} {'sd':>8} {'min':>10} {'max':>10} "
        f"{'loss':>8} {'train acc':>9}",
    ]
    for result in record["results"]:
        lines.append(
            f"{result['name']:<16} {result['mean']:>10.0f} {result['stdev']:>8.0f} "
            f"{min(result['samples_per_s']):>10.0f} {max(result['samples_per_s']):>10.0f} "
            f"{result['last_loss']:>8.4f} {result['last_accuracy']:>9.3f}"
        )
    ratio = record["ratio"]
    lines.append(
        f"ratio spikeforge / snnTorch: {ratio['mean_of_means']:.2f}x "
        f"(per repeat {ratio['min']:.2f}x .. {ratio['max']:.2f}x)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the benchmark, print the table and optionally write ``--json``.

    Returns
    -------
    int
        0, or 2 with one stderr line when torch or snntorch is missing, the data is
        missing or the architecture does not fit (argparse exits with 2 for a bad option).
    """
    args = build_parser().parse_args(argv)
    try:
        record = run(args)
    except BenchError as error:
        print(f"bench_snntorch: {error}", file=sys.stderr)
        return 2
    print(format_table(record))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
