"""Whole-core co-simulation of conv 3x3 and AP2 layers (docs/architecture.md section 9):
the generated core against the core model, every memory write, result and counter.

Two small networks, one quick Verilator build each: P not dividing the channel counts,
an AP2 in front of a conv and of an FC layer, the fc decoder, Q = 1 (the pusher stalls),
stalled input and output streams, a sample that fires nothing; every 3x3 conv touches the
border positions (4 or 6 taps); bit flips behind AP2 layers; on-line learning of the same
networks and of one whose dW rows repeat within the DW write latency.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model import faults
from model.core import CoreModel
from model.fixed import signed_range
from model.integer import Formats, IntegerNetwork, LearningRule
from model.spec import NetworkSpec
from model.synapses import weight_shape
from sim.cli import main
from sim.core_cosim import cosimulate

SEED = 20_261_206


def _network(arch: str, shape: tuple[int, ...], *, decoder: str, seed: int) -> IntegerNetwork:
    """Uniform random weights over the w-bit range, thresholds 1..59 per channel."""
    formats = Formats(w=6, v=10, g=10, dw=12, dth=12, k=10)
    spec = NetworkSpec.parse(arch, input_shape=shape, timesteps=2, population=1, decoder=decoder)
    rng = np.random.default_rng(seed)
    low, high = signed_range(formats.w)
    weights = [rng.integers(low, high + 1, weight_shape(spec, i)) for i in range(1, spec.num_layers + 1)]
    spiking = set(spec.spiking_layers())
    thresholds = [rng.integers(1, 60, spec.layer_shape(i)[0] if i in spiking else 0) for i in range(spec.num_layers + 1)]
    top = None
    if decoder == "fc":
        top = rng.integers(low, high + 1, (spec.classes, spec.timesteps * spec.neurons(spec.num_layers)))
    return IntegerNetwork(spec, formats, weights, thresholds, rule=LearningRule(), lfsr_state=seed, decoder=top)


def _samples(count: int, inputs: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, inputs)).astype(np.uint8)
    pixels[rng.random(pixels.shape) < 0.3] = 0
    return pixels, rng.integers(0, classes, count)


#: (arch, input shape, decoder, P, Q, input pattern, output pattern)
CASES = {
    "pools-before-conv-and-fc-fc-decoder": ("5C3-AP2-3C3-AP2-6FC", (2, 8, 8), "fc", 2, 1, "random", "burst"),
    "conv-fc-wide-lanes": ("2C3-5FC", (3, 4, 4), "last", 4, 3, "sparse", "alternate"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_conv_inference(name: str, tmp_path: Path) -> None:
    arch, shape, decoder, lanes, depth, inputs, outputs = CASES[name]
    net = _network(arch, shape, decoder=decoder, seed=SEED)
    pixels, labels = _samples(3, int(np.prod(shape)), net.spec.classes, SEED)
    pixels[0] = 0  # nothing fires: every stage ends with its scan's last write
    forward = [CoreModel(net, lanes=lanes, queue_depth=depth).infer(p).counters.phases["forward"] for p in pixels]
    assert sum(layer.spikes for phase in forward for layer in phase.layers[1:]) > 0  # the hidden layers fire
    if depth == 1:
        assert sum(layer.stall_cycles for phase in forward for layer in phase.layers) > 0
    report = cosimulate(
        net.save(tmp_path / "net"), pixels, labels, lanes=lanes, queue_depth=depth, optimize=False,
        input_pattern=inputs, output_pattern=outputs, seed=1, run_name=f"pytest-conv-{name}",
    )
    stats = report.stats
    assert report.passed, f"{stats.get('mismatches_by_kind')}; log {report.log}"
    assert stats["samples"] == 3 and stats["mismatches"] == 0
    assert stats["cycles_per_inference"] == stats["model_cycles_per_inference"] > 0


#: Learning adds a case whose dW rows repeat within a few cycles: a 1-word FC row behind an
#: AP2, the four pre-pool spikes of a pool window one or two walk words apart (the DW
#: scoreboard's stalls).
LEARNING_CASES = {
    **CASES,
    "dw-rows-repeat-behind-a-pool": ("2C3-AP2-4FC", (1, 6, 6), "last", 4, 2, "random", "burst"),
}


@pytest.mark.parametrize("name", list(LEARNING_CASES))
def test_conv_learning(name: str, tmp_path: Path) -> None:
    """On-line learning (B = 1, trainable thresholds): every DV, DW, DVTH and update write."""
    arch, shape, decoder, lanes, depth, inputs, outputs = LEARNING_CASES[name]
    net = _network(arch, shape, decoder=decoder, seed=SEED)
    assert net.spec.threshold == "trainable"
    pixels, labels = _samples(3, int(np.prod(shape)), net.spec.classes, SEED + 2)
    report = cosimulate(
        net.save(tmp_path / "net"), pixels, labels, lanes=lanes, queue_depth=depth, learn=True, optimize=False,
        input_pattern=inputs, output_pattern=outputs, seed=2, run_name=f"pytest-conv-learn-{name}",
    )
    stats = report.stats
    assert report.passed, f"{stats.get('mismatches_by_kind')}; log {report.log}"
    assert stats["samples"] == 3 and stats["mismatches"] == 0
    assert stats["cycles_per_learning_step"] == stats["model_cycles_per_learning_step"] > 0


def test_conv_learning_needs_dual_port_weights(tmp_path: Path) -> None:
    net = _network("4C3-4FC", (1, 4, 4), decoder="last", seed=SEED)  # even rows at P = 2
    pixels, labels = _samples(1, 16, 4, SEED)
    with pytest.raises(ValueError, match=r"^learn: 4C3-4FC has grid layers, whose dW passes need dual-port"):
        cosimulate(net.save(tmp_path / "net"), pixels, labels, lanes=2, queue_depth=3, target="ice40-up5k", learn=True)


def test_faults_behind_pools(tmp_path: Path) -> None:
    """Bit flips in W, VTH and R of layers behind AP2 layers (the file numbers layers as
    the spec does; the core has no AP2 layers): core and faulty model agree (the pools
    case's build again)."""
    arch, shape, decoder, lanes, depth, _, _ = CASES["pools-before-conv-and-fc-fc-decoder"]
    net = _network(arch, shape, decoder=decoder, seed=SEED)
    rng = np.random.default_rng(SEED)
    drawn = [faults.draw(net, name, share, rng) for name, share in (("W", 0.05), ("VTH", 0.3), ("R", 0.2))]
    assert {3, 5} <= set(np.concatenate([group.layer for group in drawn]).tolist())
    path = tmp_path / "faults.json"
    path.write_text(json.dumps({"mode": "flip", "faults": [group.to_dict() for group in drawn]}))
    pixels, labels = _samples(2, int(np.prod(shape)), net.spec.classes, SEED + 1)
    report = cosimulate(
        net.save(tmp_path / "net"), pixels, labels, lanes=lanes, queue_depth=depth, optimize=False,
        faults=path, run_name="pytest-conv-faults",
    )
    assert report.passed and report.stats["mismatches"] == 0, f"{report.stats.get('mismatches_by_kind')}; log {report.log}"


def test_cli_cosim_streams_images_to_a_conv_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``spikeforge cosim --dataset digits`` hands a conv network (1, 8, 8) images, not flat rows."""
    net = _network("2C3-AP2-10FC", (1, 8, 8), decoder="last", seed=SEED)
    out = tmp_path / "cosim.json"
    code = main([
        "cosim", "--checkpoint", str(net.save(tmp_path / "net")), "--dataset", "digits", "--samples", "2",
        "--learn", "--lanes", "2", "--queue-depth", "4", "--quick-build", "--no-progress", "--json", str(out),
    ])
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["samples"] == 2 and report["mismatches"] == 0
    assert report["cycles_per_learning_step"] == report["model_cycles_per_learning_step"] > 0
