"""Fault injection (model/faults.py) and ``spikeforge faults``: draws, bit semantics, the
engines' agreement on faulty memories, stuck cells through learning, the command's report
and its errors."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from model import faults
from model.core import CoreModel
from model.data import load_dataset, to_u8
from model.integer import Formats, IntegerNetwork, LearningRule, fit, recipe
from model.spec import NetworkSpec
from sim.cli import main

SEED = 20_261_202


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _network(digits, *, seed: int = SEED, decoder: str = "last", rule: LearningRule | None = None) -> IntegerNetwork:
    spec = NetworkSpec.parse("24FC-20FC", input_shape=digits.input_shape, timesteps=4, population=2,
                             decoder=decoder)
    return IntegerNetwork.scratch(spec, recipe("digits").formats, seed=seed, rule=rule)


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """A digits network learned briefly, saved as an integer checkpoint."""
    spec = NetworkSpec.parse("32FC-100FC", input_shape=digits.input_shape, timesteps=4, population=10)
    defaults = recipe("digits")
    net = IntegerNetwork.scratch(spec, defaults.formats, seed=SEED)
    fit(net, to_u8(digits.train_x), digits.train_y, epochs=1, seed=0, progress=False,
        schedule=defaults.schedule_for(net.formats))
    return net.save(tmp_path_factory.mktemp("faults") / "net")


def test_draw_counts_positions_and_reproducibility(digits) -> None:
    net = _network(digits)
    bits = faults.memory_bits(net, "W")
    assert bits == (24 * 64 + 20 * 24) * net.formats.w
    assert len(faults.draw(net, "W", 0.0, np.random.default_rng(0))) == 0
    every = faults.draw(net, "W", 1.0, np.random.default_rng(0))
    assert len(every) == bits
    triples = set(zip(every.layer.tolist(), every.index.tolist(), every.bit.tolist()))
    assert len(triples) == bits and every.layer.min() == 1 and every.layer.max() == 2
    assert every.bit.max() == net.formats.w - 1 and every.index.max() == 24 * 64 - 1
    a, b = (faults.draw(net, "VTH", 0.05, np.random.default_rng(7)) for _ in range(2))
    assert a.to_dict() == b.to_dict() and len(a) > 0
    one = faults.draw(net, "R", 1.0, np.random.default_rng(1), bit=3)
    assert set(one.bit.tolist()) == {3} and len(one) == sum(net.memory("R", l).size for l in range(3))
    for bad, message in (({"ber": 1.5}, "ber: 1.5 is out of range"), ({"bit": 17}, r"bit: 17 is out of range \(allowed 0..16\)"),
                         ({"memory": "V"}, "memory: 'V' is not one of")):
        args = {"memory": "R", "ber": 0.1, **bad}
        memory = args.pop("memory")
        with pytest.raises(ValueError, match=message):
            faults.draw(net, memory, args.pop("ber"), np.random.default_rng(0), **args)


def test_flip_and_stuck_semantics_on_signed_and_unsigned_words(digits) -> None:
    net = _network(digits)
    net.store("W", 1, np.zeros_like(net.weights[0]))
    sign = net.formats.w - 1
    group = faults.Faults("W", np.array([1, 1]), np.array([0, 5]), np.array([sign, 0]))
    flipped = faults.inject(net, [group], "flip")
    assert flipped.weights[0].ravel()[[0, 5]].tolist() == [-(1 << sign), 1]
    assert (faults.inject(flipped, [group], "flip").weights[0] == 0).all()  # a flip undoes itself
    assert (faults.inject(net, [group], "stuck0").weights[0] == 0).all()
    stuck = faults.inject(net, [group], "stuck1")
    assert stuck.weights[0].ravel()[[0, 5]].tolist() == [-(1 << sign), 1]
    assert (net.weights[0] == 0).all()  # the original is not modified
    vth = faults.Faults("VTH", np.array([2]), np.array([3]), np.array([net.formats.v - 2]))
    high = faults.inject(net, [vth], "stuck1")
    assert high.thresholds[2][3] == net.thresholds[2][3] | (1 << (net.formats.v - 2))
    assert np.array_equal(high.reciprocals[2], net.reciprocals[2])  # R is its own memory
    with pytest.raises(ValueError, match="mode: 'melt' is not one of flip, stuck0, stuck1"):
        faults.inject(net, [group], "melt")


@pytest.mark.parametrize("case", range(6))
def test_fast_reference_and_core_agree_on_faulty_memories(digits, case: int) -> None:
    """Flips in every stored memory (zero thresholds, odd reciprocals, saturating weights):
    the fast path, the event-order path and the core model stay bit-identical while learning."""
    rule = LearningRule(rounding=("stochastic", "nearest", "floor")[case % 3], batch=1 + case % 3)
    net = _network(digits, seed=SEED + case, decoder=("last", "rate")[case % 2], rule=rule)
    rng = np.random.default_rng(SEED + case)
    drawn = [faults.draw(net, memory, ber, rng) for memory, ber in
             (("W", 0.02), ("VTH", 0.15), ("R", 0.1), ("DW", 0.001), ("DVTH", 0.01))]
    faulty = faults.inject(net, drawn, "flip")
    assert sum(int((v == 0).sum()) for v in faulty.thresholds) > 0 or case % 2
    pixels, labels = to_u8(digits.train_x[:6]), digits.train_y[:6]
    if case == 0:
        pixels[0] = 0  # an empty input: a zero threshold still fires
        pixels[1] = 255
    fast, reference = faulty, copy.deepcopy(faulty)
    core = CoreModel(faulty, lanes=1 + case % 4, queue_depth=3)
    for image, label in zip(pixels, labels):
        core_result = core.learn(image, int(label))
        trace = fast.forward(image[None])
        assert np.array_equal(trace.predictions(), [core_result.prediction])
        fast.learn(image[None], np.array([label]))
        reference.learn(image[None], np.array([label]), reference=True)
    for name in ("weights", "thresholds", "reciprocals", "dw", "dth"):
        for mine, theirs, cores in zip(getattr(fast, name), getattr(reference, name), getattr(core, name)):
            assert np.array_equal(mine, theirs) and np.array_equal(mine, cores), name


def test_stuck_cells_stay_stuck_through_learning(digits) -> None:
    net = _network(digits, rule=LearningRule(batch=1))
    group = faults.draw(net, "W", 0.01, np.random.default_rng(3))
    stuck = faults.inject(net, [group], "stuck1")
    assert isinstance(stuck, faults.StuckAtNetwork)
    fit(stuck, to_u8(digits.train_x[:30]), digits.train_y[:30], epochs=1, seed=0, progress=False)
    codes = {layer: faults.stored_codes(stuck, "W", layer).ravel() for layer in (1, 2)}
    for layer, index, bit in zip(group.layer, group.index, group.bit):
        assert codes[int(layer)][index] >> bit & 1
    assert any((a != b).any() for a, b in zip(stuck.weights, net.weights))


def test_faults_round_trip_and_hostile_dicts(digits) -> None:
    net = _network(digits)
    group = faults.draw(net, "VTH", 0.1, np.random.default_rng(0))
    again = faults.Faults.from_dict(json.loads(json.dumps(group.to_dict())), net)
    assert again.to_dict() == group.to_dict()
    for bad, message in (
        ({"memory": "W", "layer": [0], "index": [0], "bit": [0]}, r"faults.layer: 0 is out of range \(allowed 1..2\)"),
        ({"memory": "W", "layer": [1], "index": [10**9], "bit": [0]}, "faults.index: 1000000000 is out of range"),
        ({"memory": "W", "layer": [1], "index": [0], "bit": [8]}, r"faults.bit: 8 is out of range \(allowed 0..7\)"),
        ({"memory": "W", "layer": [1, 1], "index": [0], "bit": [0]}, "differ in length"),
        ({"memory": "W", "layer": ["1"], "index": [0], "bit": [0]}, "faults.layer: expected a list of integers"),
        ({"memory": "W"}, "expected an object"),
    ):
        with pytest.raises(ValueError, match=message):
            faults.Faults.from_dict(bad, net)


def test_faults_command_report_and_plot(trained, tmp_path, capsys) -> None:
    out = tmp_path / "faults.json"
    code = main([
        "faults", "--checkpoint", str(trained), "--dataset", "digits", "--ber", "1e-3", "3e-2",
        "--memories", "W,VTH", "--repeats", "2", "--learn", "--learn-samples", "60",
        "--json", str(out), "--plot", str(tmp_path / "faults.png"), "--no-progress",
    ])
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    digits = load_dataset("digits")
    clean = IntegerNetwork.load(trained)
    assert report["accuracy_without_faults"] == clean.evaluate(to_u8(digits.test_x), digits.test_y)["accuracy"]
    rows = report["rows"]
    assert [(r["memory"], r["ber"]) for r in rows] == [("W", 1e-3), ("W", 3e-2), ("VTH", 1e-3), ("VTH", 3e-2)]
    assert all(r["mode"] == "flip" and "accuracy_after_learning" in r for r in rows)
    assert rows[1]["faults"] > rows[0]["faults"] > 0
    assert rows[1]["accuracy"] < report["accuracy_without_faults"]  # 3 % of the weight bits hurt
    assert report["bit_rows"] == [] and "accuracy_after_learning_without_faults" in report
    assert (tmp_path / "faults.png").stat().st_size > 10_000


def test_faults_command_on_a_conv_checkpoint(tmp_path, capsys) -> None:
    """The command hands a conv network (1, 8, 8) digits images, not flat rows."""
    spec = NetworkSpec.parse("2C3-AP2-20FC", input_shape=(1, 8, 8), timesteps=4, population=2)
    folder = IntegerNetwork.scratch(spec, seed=3).save(tmp_path / "conv", training={"dataset": "digits"})
    out = tmp_path / "faults.json"
    code = main(["faults", "--checkpoint", str(folder), "--dataset", "digits", "--ber", "1e-2",
                 "--memories", "W", "--json", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    digits = load_dataset("digits", flatten=False)
    clean = IntegerNetwork.load(folder)
    assert report["accuracy_without_faults"] == clean.evaluate(to_u8(digits.test_x), digits.test_y)["accuracy"]
    assert [(r["memory"], r["ber"]) for r in report["rows"]] == [("W", 1e-2)]


def test_faults_command_bit_positions_reproducible(trained, tmp_path) -> None:
    """Per-bit rows for every bit of W; the same seed gives the same report; the sign bit
    costs more than the LSB."""
    reports = []
    for name in ("a.json", "b.json"):
        assert main(["faults", "--checkpoint", str(trained), "--dataset", "digits", "--ber", "1e-2",
                     "--memories", "W", "--repeats", "1", "--bit-ber", "0.3", "--json",
                     str(tmp_path / name), "--no-progress"]) == 0
        reports.append(json.loads((tmp_path / name).read_text()))
    assert reports[0] == reports[1]
    bits = reports[0]["bit_rows"]
    width = IntegerNetwork.load(trained).formats.w
    assert [row["bit"] for row in bits] == list(range(width))
    assert bits[-1]["accuracy"] < bits[0]["accuracy"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ber", "0"], "argument --ber: 0 is out of range (allowed 0 < B <= 1)"),
        (["--ber", "x"], "argument --ber: 'x' is not a number"),
        (["--memories", "W,W"], "argument --memories: 'W,W': expected distinct names from W, VTH, R, DW, DVTH"),
        (["--mode", "melt"], "argument --mode: invalid choice: 'melt'"),
        (["--learn-samples", "5000"], "--learn-samples: 5000 is more than the 1437 training samples"),
        (["--dataset", "mnist10k", "--data-root", "/nonexistent"], "mnist10k"),
    ],
)
def test_faults_command_errors(trained, tmp_path, capsys, extra, message) -> None:
    argv = ["faults", "--checkpoint", str(trained), "--dataset", "digits", "--json", str(tmp_path / "r.json"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()


def test_formats_stored_widths() -> None:
    f = Formats()
    assert [f.stored(m).bits for m in ("W", "VTH", "R", "DW", "DVTH")] == [f.w, f.v - 1, f.k + 1, f.dw, f.dth]
    assert f.stored("W").signed and not f.stored("VTH").signed
