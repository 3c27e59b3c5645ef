"""Energy tables and estimates (model/energy.py) and the ``spikeforge estimate`` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.core import CoreModel, read_trace, run_samples
from model.energy import (
    EVENTS,
    TABLES,
    estimate_energy,
    event_counts,
    get_table,
    horowitz_add,
    horowitz_multiply,
    neurobench_metrics,
)
from model.integer import Formats, IntegerNetwork, LearningRule
from model.spec import NetworkSpec
from sim.cli import main


@pytest.fixture(scope="module")
def runs():
    """Inference and learning counters of a small network on random pixels."""
    spec = NetworkSpec.parse("9FC-6FC", input_shape=(8,), timesteps=4, population=3)
    net = IntegerNetwork.scratch(spec, Formats(fw=6), seed=11, rule=LearningRule(batch=2))
    pixels = np.random.default_rng(12).integers(0, 256, (4, 8), dtype=np.uint8)
    core = CoreModel(net, lanes=4, queue_depth=3)
    inference, results = run_samples(core, pixels)
    learning, _ = run_samples(CoreModel(net, lanes=4, queue_depth=3), pixels, np.array([0, 1, 0, 1]))
    return core, inference, results, learning


def _total(counters, name: str) -> int:
    return sum(getattr(layer, name) for phase in counters.phases.values() for layer in phase.layers)


def test_tables_carry_a_source_and_known_events() -> None:
    for name, table in TABLES.items():
        assert table.name == name and table.unit in ("pJ", "spike") and table.source
        assert set(table.costs) <= set(EVENTS)
    assert TABLES["odin"].costs == {"synaptic_ops": 12.7}
    assert TABLES["reckon"].costs == {"synaptic_ops": 5.3}
    assert TABLES["loihi"].costs["synaptic_ops"] == 23.6
    assert (TABLES["loihi"].costs["idle_neuron_updates"], TABLES["loihi"].costs["active_neuron_updates"]) == (52.0, 81.0)
    with pytest.raises(ValueError, match="table: 'tpu' is not one of"):
        get_table("tpu")


def test_horowitz_primitives() -> None:
    assert [horowitz_add(b) for b in (4, 8, 12, 16, 24, 32, 64)] == [0.03, 0.03, 0.05, 0.05, 0.1, 0.1, 0.2]
    assert horowitz_multiply(8, 8) == pytest.approx(0.2)
    assert horowitz_multiply(32, 32) == pytest.approx(3.2)  # listed: 3.1 pJ
    costs = TABLES["horowitz45"].event_costs(Formats(), fan_out=100, index_bits=7)
    assert set(costs) == set(EVENTS)
    # 16x8 dot-product multiply (2 x 8x8) + add of 16 + 8 + 7 = 31 bits
    assert costs["dot_macs"] == pytest.approx(0.4 + 0.1)
    assert costs["sram_read_bits"] == pytest.approx(10 / 64)
    assert costs["synaptic_ops"] == 0.05


def test_spike_and_sop_tables_reproduce_the_counts(runs) -> None:
    core, inference, _, _ = runs
    spikes = estimate_energy(inference, core, TABLES["spikes"])
    assert spikes.total() == _total(inference, "spikes")
    odin = estimate_energy(inference, core, TABLES["odin"])
    assert odin.total() == pytest.approx(12.7 * _total(inference, "synaptic_ops"))
    assert odin.per_sample() == pytest.approx(odin.total() / 4)
    assert "active_neuron_updates" in odin.unpriced and "synaptic_ops" not in odin.unpriced


def test_loihi_prices_neuron_updates_by_activity(runs) -> None:
    core, inference, _, _ = runs
    report = estimate_energy(inference, core, TABLES["loihi"])
    expected = (
        23.6 * _total(inference, "synaptic_ops")
        + 81.0 * _total(inference, "active_neuron_updates")
        + 52.0 * _total(inference, "idle_neuron_updates")
        + 1.7 * _total(inference, "spikes")
    )
    assert report.total() == pytest.approx(expected)


def test_learning_energy_splits_by_phase_and_layer(runs) -> None:
    core, _, _, learning = runs
    report = estimate_energy(learning, core, TABLES["horowitz45"])
    assert set(report.by_phase) == {"clear", "forward", "readout", "backward", "update"}
    assert report.unpriced == []
    assert sum(report.per_layer()) == pytest.approx(report.per_sample())
    assert report.per_sample(("backward",)) > 0 and report.per_sample(("update",)) > 0
    odin = estimate_energy(learning, core, TABLES["odin"])
    assert {"dot_macs", "dw_adds", "weight_updates"} <= set(odin.unpriced)


@settings(max_examples=20, deadline=None)
@given(lanes=st.integers(1, 9))
def test_sram_bits_follow_the_word_widths(runs, lanes: int) -> None:
    core, _, _, _ = runs
    wide = CoreModel(core.to_network(), lanes=lanes, queue_depth=3)
    counters, _ = run_samples(wide, np.full((1, 8), 200))
    forward = counters.phases["forward"].layers[1]
    counts = event_counts(forward, wide)
    f = wide.formats
    bits = {"W": f.w, "V": f.v, "VTH": f.v - 1}
    assert counts["sram_read_bits"] == lanes * sum(forward.words_read[m] * b for m, b in bits.items())
    assert counts["sram_write_bits"] == lanes * (
        forward.words_written["V"] * f.v + forward.words_written["S"] + forward.words_written["H"]
    )


def test_neurobench_names(runs) -> None:
    core, inference, results, _ = runs
    counts = [sum(r.spikes[i].sum(axis=0) for r in results) for i in range(3)]
    bench = neurobench_metrics(core, counts, 4)
    sops = inference.phases["forward"].total().synaptic_ops
    assert bench["Effective_ACs"] == pytest.approx(sops / 4)
    assert bench["Effective_MACs"] == 0
    assert bench["Dense"] == 4 * (8 * 9 + 9 * 6)
    spikes = inference.phases["forward"].total().spikes
    assert bench["ActivationSparsity"] == pytest.approx(1 - spikes / 4 / (4 * (8 + 9 + 6)))
    # weights 8 bits, thresholds 15 bits + reciprocals 17 bits
    assert bench["Footprint"] == math.ceil(((8 * 9 + 9 * 6) * 8 + (8 + 9 + 6) * 32) / 8)


# The estimate command ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small integer checkpoint on the digits data (64 inputs)."""
    spec = NetworkSpec.parse("12FC-10FC", input_shape=(64,), timesteps=3)
    folder = tmp_path_factory.mktemp("ck")
    IntegerNetwork.scratch(spec, seed=3).save(folder, training={"dataset": "digits"})
    return folder


def test_estimate_writes_the_report(checkpoint, tmp_path, capsys) -> None:
    out = tmp_path / "est.json"
    trace = tmp_path / "trace.jsonl"
    plot = tmp_path / "est.png"
    code = main([
        "estimate", "--checkpoint", str(checkpoint), "--samples", "3", "--lanes", "4",
        "--queue-depth", "3", "--table", "odin", "--trace", str(trace), "--json", str(out),
        "--plot", str(plot),
    ])
    assert code == 0
    assert "cycles/inference" in capsys.readouterr().out
    report = json.loads(out.read_text())
    for key in (
        "cycles_per_inference", "cycles_per_learning_step", "spikes_per_inference",
        "synaptic_ops_per_inference", "energy_pj_per_inference", "energy_table", "per_layer",
    ):
        assert report[key] is not None
    layers = report["per_layer"]
    assert [item["name"] for item in layers] == ["encoder", "12FC", "10FC"]
    assert sum(item["spikes_per_inference"] for item in layers) == pytest.approx(report["spikes_per_inference"])
    sops = sum(item["synaptic_ops_per_inference"] for item in layers)
    assert sops == pytest.approx(report["synaptic_ops_per_inference"])
    assert layers[0]["synaptic_ops_per_inference"] == pytest.approx(12 * layers[0]["spikes_per_inference"])
    assert report["energy_pj_per_inference"] == pytest.approx(12.7 * sops)
    assert report["energy_table"]["name"] == "odin" and "ODIN" in report["energy_table"]["source"]
    phases = report["cycles_by_phase_per_inference"]
    assert report["cycles_per_inference"] == pytest.approx(sum(phases.values()))
    assert phases["forward"] == pytest.approx(sum(item["cycles"] for item in layers))
    assert report["cycles_per_learning_step"] > report["cycles_per_inference"]
    records = read_trace(trace)
    assert {r.sample for r in records} == set(range(6))  # 3 inferences, then 3 learning steps
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--lanes", "0"], "--lanes: 0 is out of range"),
        (["--queue-depth", "0"], "--queue-depth: 0 is out of range"),
        (["--table", "gpu"], "table: 'gpu' is not one of"),
        (["--samples", "0"], "--samples: 0 is out of range"),
    ],
)
def test_estimate_bad_options(checkpoint, tmp_path, capsys, option, message) -> None:
    code = main(["estimate", "--checkpoint", str(checkpoint), "--json", str(tmp_path / "x.json"), *option])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_estimate_runs_a_conv_checkpoint(tmp_path, capsys) -> None:
    spec = NetworkSpec.parse("4C3-AP2-10FC", input_shape=(1, 8, 8), timesteps=3)
    IntegerNetwork.scratch(spec, seed=0).save(tmp_path / "conv")
    argv = ["--dataset", "digits", "--samples", "2", "--lanes", "3", "--json", str(tmp_path / "x.json")]
    assert main(["estimate", "--checkpoint", str(tmp_path / "conv"), *argv]) == 0
    report = json.loads((tmp_path / "x.json").read_text())
    assert [item["name"] for item in report["per_layer"]] == ["encoder", "4C3", "10FC"]
    assert report["cycles_over_ideal"] > 0 and report["cycles_per_learning_step"] > report["cycles_per_inference"]
    capsys.readouterr()
    code = main(["estimate", "--checkpoint", str(tmp_path / "missing"), "--json", str(tmp_path / "x.json")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
