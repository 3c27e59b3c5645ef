"""Whole-core co-simulation: the generated core against the core model, bit for bit.

Every run compares each memory write (cycle, phase, layer, step, memory, address, lane
mask, data), each sample's prediction and class counts, every performance counter and,
at the end, the weights, thresholds, accumulators, LFSR and pending counter read back
through the host port (sim/tb/tb_core.py). Networks are small so that four quick
Verilator builds (C++ without optimisation) fit CI; the long soak is
``scripts/core_soak.py`` (and the ``slow`` test at the end).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from model.data import load_dataset, to_u8
from model.fixed import signed_range
from model.integer import Formats, IntegerNetwork, LearningRule, ShiftSchedule, fit, recipe
from model.spec import NetworkSpec
from sim import toolchain
from sim.cli import main
from sim.core_cosim import CosimReport, cosimulate

SEED = 20_241_128


def _random_network(
    arch: str, inputs: int, *, seed: int, timesteps: int, population: int, formats: Formats,
    rule: LearningRule, decoder: str = "last", threshold: str = "trainable", max_threshold: int = 200,
) -> IntegerNetwork:
    """Uniform random weights over the whole w-bit range and random thresholds (saturates often)."""
    spec = NetworkSpec.parse(
        arch, input_shape=(inputs,), timesteps=timesteps, population=population, decoder=decoder,
        threshold=threshold,
    )
    rng = np.random.default_rng(seed)
    low, high = signed_range(formats.w)
    weights = [rng.integers(low, high + 1, (spec.neurons(i), spec.neurons(i - 1))) for i in range(1, spec.num_layers + 1)]
    top = min(formats.threshold_max, max_threshold)
    thresholds = [rng.integers(1, top + 1, spec.neurons(i)) for i in range(spec.num_layers + 1)]
    decoder_weights = None
    if decoder == "fc":
        decoder_weights = rng.integers(low, high + 1, (spec.classes, timesteps * spec.neurons(spec.num_layers)))
    return IntegerNetwork(
        spec, formats, weights, thresholds, rule=rule, lfsr_state=seed % (1 << 32) or 1, decoder=decoder_weights
    )


def _samples(inputs: int, classes: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, inputs)).astype(np.uint8)
    pixels[rng.random(pixels.shape) < 0.3] = 0
    return pixels, rng.integers(0, classes, count)


#: Network A: P = 4 divides none of 7, 5, 6; Q = 3 (Q = 1 in one test); B = 1; stochastic rounding.
def _network_a(seed: int = SEED) -> IntegerNetwork:
    return _random_network(
        "5FC-6FC", 7, seed=seed, timesteps=3, population=2, formats=Formats(w=6, v=10, g=10, dw=12, dth=12, k=10),
        rule=LearningRule(shift_w=3, shift_th=4, rounding="stochastic", batch=1),
    )


#: Network B: rate decoder, B = 3 (two updates and one pending sample), nearest rounding,
#: narrow accumulators that saturate, P = 2, Q = 2.
def _network_b() -> IntegerNetwork:
    return _random_network(
        "6FC-4FC", 5, seed=SEED + 1, timesteps=4, population=2, decoder="rate",
        formats=Formats(w=5, v=8, g=6, gf=3, dw=7, dth=7, k=9),
        rule=LearningRule(shift_w=1, shift_th=2, rounding="nearest", batch=3), max_threshold=60,
    )


#: Network C: a single layer with fixed thresholds, floor rounding, B = 2, P = 3, Q = 16.
def _network_c() -> IntegerNetwork:
    return _random_network(
        "8FC", 9, seed=SEED + 2, timesteps=2, population=2, threshold="fixed",
        formats=Formats(w=8, v=12, g=12, dw=16, dth=16, k=12),
        rule=LearningRule(shift_w=2, shift_th=2, rounding="floor", batch=2),
    )


def _save(net: IntegerNetwork, folder: Path) -> Path:
    return net.save(folder)


def _check(report: CosimReport, samples: int, *, learn: bool) -> dict:
    stats = report.stats
    assert report.passed, f"{stats.get('mismatches_by_kind')}; log {report.log}"
    assert stats["samples"] == samples and stats["mismatches"] == 0
    assert stats["cycles_per_inference"] == stats["model_cycles_per_inference"] > 0
    if learn:
        assert stats["cycles_per_learning_step"] == stats["model_cycles_per_learning_step"]
        assert stats["cycles_per_learning_step"] > stats["cycles_per_inference"]
    else:
        assert stats["cycles_per_learning_step"] is None
    return stats


@pytest.fixture(scope="module")
def checkpoint_a(tmp_path_factory) -> Path:
    return _save(_network_a(), tmp_path_factory.mktemp("core") / "a")


def test_learning_with_stalls_p_dividing_no_layer(checkpoint_a) -> None:
    net = IntegerNetwork.load(checkpoint_a)
    pixels, labels = _samples(7, 3, 6, 1)
    report = cosimulate(
        checkpoint_a, pixels, labels, lanes=4, queue_depth=3, learn=True, optimize=False,
        input_pattern="random", output_pattern="burst", seed=1, run_name="pytest-a-learn",
    )
    _check(report, 6, learn=True)
    # The learning did something: the model's weights moved (so the final memory check bites).
    from model.core import CoreModel

    model = CoreModel(net, lanes=4, queue_depth=3)
    for image, label in zip(pixels, labels):
        model.learn(image, int(label))
    assert any((a != b).any() for a, b in zip(model.weights, net.weights))


def test_inference_with_stalls(checkpoint_a) -> None:
    pixels, labels = _samples(7, 3, 5, 2)
    report = cosimulate(
        checkpoint_a, pixels, labels, lanes=4, queue_depth=3, optimize=False,
        input_pattern="sparse", output_pattern="alternate", seed=2, run_name="pytest-a-infer",
    )
    _check(report, 5, learn=False)


def test_run_time_load_through_host_port(checkpoint_a, tmp_path) -> None:
    """Load another network of the same geometry through the host port, then learn."""
    other = _network_a(seed=SEED + 7)
    other.rule = LearningRule(shift_w=5, shift_th=3, rounding="stochastic", batch=1)
    loaded = _save(other, tmp_path / "other")
    pixels, labels = _samples(7, 3, 3, 3)
    report = cosimulate(
        checkpoint_a, pixels, labels, lanes=4, queue_depth=3, learn=True, optimize=False,
        load=loaded, run_name="pytest-a-load",
    )
    _check(report, 3, learn=True)


def test_single_port_weight_banks(checkpoint_a, tmp_path) -> None:
    """The iCE40 build: W and dW in even/odd single-port banks shared by both layers (P = 4:
    two-word rows), the events counter set; a network loaded through the host port into the
    banks, learning with stalls, then every bank word read back through the host port."""
    other = _network_a(seed=SEED + 11)
    loaded = _save(other, tmp_path / "other")
    pixels, labels = _samples(7, 3, 4, 12)
    report = cosimulate(
        checkpoint_a, pixels, labels, lanes=4, queue_depth=3, target="ice40-up5k", counters="events",
        learn=True, optimize=False, load=loaded, input_pattern="random", output_pattern="burst", seed=12,
        run_name="pytest-a-banks",
    )
    _check(report, 4, learn=True)


def test_corrupted_model_fails(checkpoint_a) -> None:
    pixels, labels = _samples(7, 3, 1, 4)
    pixels[:] = 255  # every input spikes every step, so the corrupted weight is used
    report = cosimulate(
        checkpoint_a, pixels, labels, lanes=4, queue_depth=3, learn=True, optimize=False,
        corrupt="model", run_name="pytest-a-corrupt",
    )
    assert not report.passed
    assert report.stats["mismatches"] > 0 and report.stats["mismatches_by_kind"]["trace"] > 0


def _fault_file(net: IntegerNetwork, folder: Path) -> tuple[Path, IntegerNetwork]:
    """Bit flips in W, VTH and R of ``net`` (a threshold of layer 1 flipped to 0 among them),
    written as the bench's ``faults`` file; returns it and the faulty network."""
    from model import faults

    rng = np.random.default_rng(SEED + 21)
    drawn = [faults.draw(net, "W", 0.05, rng), faults.draw(net, "R", 0.1, rng)]
    vth = int(net.thresholds[1][0])
    ones = [bit for bit in range(net.formats.v - 1) if vth >> bit & 1]
    drawn.append(faults.Faults("VTH", np.ones(len(ones), np.int64), np.zeros(len(ones), np.int64),
                               np.array(ones, np.int64)))
    spread = faults.draw(net, "VTH", 0.1, rng)
    keep = (spread.layer != 1) | (spread.index != 0)
    drawn.append(faults.Faults("VTH", spread.layer[keep], spread.index[keep], spread.bit[keep]))
    path = folder / "faults.json"
    path.write_text(json.dumps({"mode": "flip", "faults": [group.to_dict() for group in drawn]}))
    return path, faults.inject(net, drawn, "flip")


def test_injected_faults_reach_core_and_model_alike(checkpoint_a, tmp_path) -> None:
    """Bit flips written through the host port: the core and the faulty model agree on every
    write, output, counter and final memory while learning, and the faults change the
    results (so the agreement is not the clean network's)."""
    from model.core import CoreModel

    net = IntegerNetwork.load(checkpoint_a)
    path, faulty = _fault_file(net, tmp_path)
    assert faulty.thresholds[1][0] == 0 and any((a != b).any() for a, b in zip(faulty.reciprocals, net.reciprocals))
    pixels, labels = _samples(7, 3, 5, 21)
    report = cosimulate(
        checkpoint_a, pixels, labels, lanes=4, queue_depth=3, learn=True, optimize=False,
        faults=path, input_pattern="random", seed=21, run_name="pytest-a-faults",
    )
    _check(report, 5, learn=True)
    clean, broken = (CoreModel(n, lanes=4, queue_depth=3) for n in (net, faulty))
    outputs = [[m.learn(image, int(label)).counts.tolist() for image, label in zip(pixels, labels)] for m in (clean, broken)]
    assert outputs[0] != outputs[1]


def test_queue_depth_1_learning(checkpoint_a) -> None:
    """Q = 1: every push waits for the previous index's pop (P = 4, two-word rows, so the
    queue, not the integration, sets the pace); stalls, counters and cycles match."""
    from model.core import CoreModel

    pixels, labels = _samples(7, 3, 3, 9)
    model = CoreModel(IntegerNetwork.load(checkpoint_a), lanes=4, queue_depth=1)
    forward = [model.learn(image, int(label)).counters.phases["forward"] for image, label in zip(pixels, labels)]
    assert sum(layer.stall_cycles for phase in forward for layer in phase.layers) > 0
    assert max(layer.queue_high_water for phase in forward for layer in phase.layers) == 1
    report = cosimulate(
        checkpoint_a, pixels, labels, lanes=4, queue_depth=1, learn=True, optimize=False,
        input_pattern="random", output_pattern="random", seed=9, run_name="pytest-a-q1",
    )
    _check(report, 3, learn=True)


def test_rate_decoder_batch_updates_saturation(tmp_path) -> None:
    checkpoint = _save(_network_b(), tmp_path / "b")
    pixels, labels = _samples(5, 2, 7, 5)
    report = cosimulate(
        checkpoint, pixels, labels, lanes=2, queue_depth=2, learn=True, optimize=False,
        output_pattern="random", seed=5, run_name="pytest-b",
    )
    _check(report, 7, learn=True)


def test_single_layer_fixed_thresholds(tmp_path) -> None:
    checkpoint = _save(_network_c(), tmp_path / "c")
    pixels, labels = _samples(9, 4, 5, 6)
    report = cosimulate(
        checkpoint, pixels, labels, lanes=3, queue_depth=16, learn=True, optimize=False,
        input_pattern="dense", run_name="pytest-c",
    )
    _check(report, 5, learn=True)


#: fc-decoder networks: (arch, inputs, T, population, formats, rule, thresholds, P, Q). Every
#: rounding; B = 1, 3 (two updates and a pending sample) and 2; P dividing neither the layers
#: nor C; a wide df whose error sum shifts right, a narrow one that shifts left; dD narrower
#: than the class errors (saturating); a target 2^df beyond the decoder sums' range (the class
#: error then needs the target's bits, not only the sums').
FC_NETWORKS = {
    "stochastic": ("5FC-6FC", 7, 3, 2, Formats(w=6, v=10, g=10, dw=12, dth=12, k=10, df=7),
                   LearningRule(shift_w=3, shift_th=4, rounding="stochastic", batch=1), "trainable", 4, 3),
    "nearest": ("6FC-4FC", 5, 4, 2, Formats(w=5, v=8, g=6, gf=3, dw=7, dth=7, k=9, df=1),
                LearningRule(shift_w=1, shift_th=2, rounding="nearest", batch=3), "trainable", 3, 2),
    "floor": ("9FC", 9, 2, 3, Formats(w=8, v=12, g=12, dw=16, dth=16, k=12),
              LearningRule(shift_w=2, shift_th=2, rounding="floor", batch=2), "fixed", 2, 16),
    "target": ("6FC-4FC", 5, 4, 2, Formats(w=5, v=8, g=6, gf=3, dw=10, dth=10, k=9, df=9),
               LearningRule(shift_w=1, shift_th=2, rounding="stochastic", batch=1), "fixed", 3, 2),
}


@pytest.mark.parametrize("name", list(FC_NETWORKS))
def test_fc_decoder_learning(name: str, tmp_path: Path) -> None:
    """The fc decoder's passes (DECODE, DD, its dV dot products, UPDATE_D) against the model:
    learning with stalls, then inference on the learned network; D and dD read back."""
    arch, inputs, steps, population, formats, rule, threshold, lanes, depth = FC_NETWORKS[name]
    net = _random_network(
        arch, inputs, seed=SEED + 31, timesteps=steps, population=population, formats=formats, rule=rule,
        decoder="fc", threshold=threshold, max_threshold=60,
    )
    checkpoint = _save(net, tmp_path / "fc")
    classes = net.spec.classes
    pixels, labels = _samples(inputs, classes, 5, 31)
    report = cosimulate(
        checkpoint, pixels, labels, lanes=lanes, queue_depth=depth, learn=True, optimize=False,
        input_pattern="random", output_pattern="burst", seed=31, run_name=f"pytest-fc-{name}",
    )
    _check(report, 5, learn=True)
    report = cosimulate(
        checkpoint, pixels[:2], labels[:2], lanes=lanes, queue_depth=depth, optimize=False,
        input_pattern="sparse", output_pattern="alternate", seed=32, run_name=f"pytest-fc-{name}-infer",
    )
    _check(report, 2, learn=False)
    # The decoder learned: the model's D moved (so the final D and dD reads bite).
    from model.core import CoreModel

    model = CoreModel(net, lanes=lanes, queue_depth=depth)
    for image, label in zip(pixels, labels):
        model.learn(image, int(label))
    assert (model.decoder != net.decoder).any()


def test_encoder_mux_shift_above_k(tmp_path) -> None:
    # fw = 9 makes the encoder's shift K_0 = K - 8 + fw larger than K: the dV unit shifts by
    # K_0 and the other layers' sums enter it shifted left by K_0 - K.
    net = _random_network(
        "5FC-13FC-6FC", 16, seed=7, timesteps=2, population=2,
        formats=Formats(w=10, fw=9, v=18, g=4, gf=0, dw=8, dth=6, k=10, df=11),
        rule=LearningRule(shift_w=4, shift_th=3, rounding="nearest", batch=2),
    )
    assert net.formats.encoder_k > net.formats.k
    pixels, labels = _samples(16, 3, 4, 5)
    report = cosimulate(
        _save(net, tmp_path / "fw9"), pixels, labels, lanes=2, queue_depth=2, learn=True, optimize=False,
        run_name="pytest-fw9",
    )
    _check(report, 4, learn=True)


# The trained digits network --------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory) -> Path:
    """A small integer digits network trained on-line for one epoch (integer model, 68 %)."""
    data = load_dataset("digits")
    spec = NetworkSpec.parse("32FC-50FC", input_shape=data.input_shape, timesteps=4, population=5)
    net = IntegerNetwork.scratch(
        spec, recipe("digits", "scratch").formats, seed=3, rule=LearningRule(shift_w=13, shift_th=15)
    )
    fit(net, to_u8(data.train_x), data.train_y, epochs=1, schedule=ShiftSchedule.parse("12", 2), seed=3, progress=False)
    accuracy = net.evaluate(to_u8(data.test_x), data.test_y)["accuracy"]
    assert accuracy > 0.5, accuracy  # trained well above chance (0.1)
    return net.save(tmp_path_factory.mktemp("core") / "digits")


def test_trained_digits_network(digits_checkpoint) -> None:
    data = load_dataset("digits")
    pixels, labels = to_u8(data.test_x[:4]), data.test_y[:4]
    report = cosimulate(
        digits_checkpoint, pixels, labels, lanes=8, queue_depth=4, optimize=False, run_name="pytest-digits-infer",
    )
    stats = _check(report, 4, learn=False)
    assert stats["accuracy"] >= 0.5
    # (The cycles against the ideal bound: tests/model/test_core.py, on the 128FC-100FC
    # digits network; this small one pays its stages' fixed pipeline latencies.)
    learning = cosimulate(
        digits_checkpoint, to_u8(data.train_x[:2]), data.train_y[:2], lanes=8, queue_depth=4, learn=True,
        optimize=False, run_name="pytest-digits-learn",
    )
    _check(learning, 2, learn=True)


def test_cli_cosim_json(digits_checkpoint, tmp_path, capsys) -> None:
    out = tmp_path / "cosim.json"
    code = main([
        "cosim", "--checkpoint", str(digits_checkpoint), "--dataset", "digits", "--samples", "2",
        "--lanes", "8", "--queue-depth", "4", "--quick-build", "--no-progress", "--json", str(out),
    ])
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    for key in ("samples", "mismatches", "cycles_per_inference", "model_cycles_per_inference",
                "cycles_per_learning_step", "sim_cycles_per_second", "accuracy"):
        assert key in report
    assert report["samples"] == 2 and report["mismatches"] == 0
    assert report["cycles_per_inference"] == report["model_cycles_per_inference"]


# Bad input ----------------------------------------------------------------------------------


def _bad_checkpoints(tmp_path: Path) -> dict[str, str]:
    wide = _network_a()
    folder = wide.save(tmp_path / "wide")
    meta = json.loads((folder / "checkpoint.json").read_text())
    meta["formats"]["w"] = 17  # beyond the contract (2..16)
    (folder / "checkpoint.json").write_text(json.dumps(meta))
    # A conv network with reset to zero: no learning hardware.
    conv = IntegerNetwork.scratch(
        NetworkSpec.parse("4C3-10FC", input_shape=(1, 4, 4), reset="zero", threshold="fixed")
    ).save(tmp_path / "conv")
    spec = NetworkSpec.parse("3000FC-10FC", input_shape=(1000,), timesteps=1, population=1)
    huge = IntegerNetwork(
        spec, Formats(), [np.zeros((3000, 1000), np.int64), np.zeros((10, 3000), np.int64)],
        [np.ones(n, np.int64) for n in (1000, 3000, 10)],
    ).save(tmp_path / "huge")
    return {"WIDE": str(folder), "CONV": str(conv), "HUGE": str(huge)}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--checkpoint", "WIDE"], "w: 17 is out of range"),
        (["--checkpoint", "CONV", "--learn"], "--learn: the core learns only networks with reset 'subtract' and surrogate 'scaled'"),
        (["--checkpoint", "HUGE"], "target: memory DW1 needs"),
        (["--checkpoint", "DIGITS", "--sim", "modelsim"], "invalid choice: 'modelsim'"),
        (["--checkpoint", "DIGITS", "--sim", "icarus", "--path", ""], "icarus: 'iverilog' not found"),
        (["--checkpoint", "DIGITS", "--waves", "x.fst"], "verilator writes .vcd waveforms"),
        (["--checkpoint", "DIGITS", "--queue-depth", "0"], "--queue-depth: 0 is out of range (allowed 1..65536)"),
    ],
)
def test_cli_bad_input_one_line_exit_2(argv, message, digits_checkpoint, tmp_path, capsys, monkeypatch) -> None:
    paths = {**_bad_checkpoints(tmp_path), "DIGITS": str(digits_checkpoint)}
    if "--path" in argv:
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        argv = argv[:-2]
    argv = [paths.get(arg, arg) for arg in argv]
    args = ["cosim", *argv, "--dataset", "digits", "--samples", "1", "--lanes", "8", "--json", str(tmp_path / "r.json")]
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse rejects unknown choices itself
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


# Icarus -------------------------------------------------------------------------------------

_ICARUS = toolchain.available("icarus")


@pytest.mark.skipif(_ICARUS is not None, reason=f"Icarus Verilog not available: {_ICARUS}")
def test_icarus_and_waves(checkpoint_a, tmp_path) -> None:
    pixels, labels = _samples(7, 3, 1, 8)
    waves = tmp_path / "core.fst"
    report = cosimulate(
        checkpoint_a, pixels, labels, lanes=4, queue_depth=3, learn=True, simulator="icarus",
        waves=waves, run_name="pytest-icarus",
    )
    _check(report, 1, learn=True)
    assert waves.is_file() and waves.stat().st_size > 0


# Soak ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_soak() -> None:
    """Random networks of many shapes and the trained digits network (scripts/core_soak.py)."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "core_soak.py"
    spec = importlib.util.spec_from_file_location("core_soak", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    failures = module.soak(networks=12, samples=6, seed=SEED)
    assert not failures, failures
