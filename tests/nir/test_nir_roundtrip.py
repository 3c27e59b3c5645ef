"""export-nir then import-nir: identical weights, thresholds, spec and float forward spikes
(FC and conv networks, both pool kinds, float and integer checkpoints), and the discretisation
rules of the reader (dt, r, SumPool2d, LIF with tau = inf)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir", reason='needs the nir extra: pip install -e ".[nir]"')
from nir_cases import NETWORKS, make_network

from model.integer import IntegerNetwork
from model.spec import NetworkSpec
from model.stbp import Network
from sim import nir_io
from sim.cli import main


def _same_network(a: Network, b: Network) -> None:
    assert b.spec == a.spec and b.dtype == a.dtype
    for left, right in zip(a.weights + a.thresholds, b.weights + b.thresholds, strict=True):
        assert left.dtype == right.dtype and np.array_equal(left, right)
    if a.decoder_weight is None:
        assert b.decoder_weight is None
    else:
        assert np.array_equal(a.decoder_weight, b.decoder_weight)


def _same_spikes(a: Network, b: Network, seed: int) -> None:
    x = np.random.default_rng(seed).uniform(0, 1, (5, *a.spec.input_shape))
    left, right = a.forward(x), b.forward(x)
    assert sum(float(s.sum()) for s in left.spikes[1:]) > 0  # the check sees spikes
    for s, t in zip(left.spikes, right.spikes, strict=True):
        assert np.array_equal(s, t)
    assert np.array_equal(left.output, right.output)


@pytest.mark.parametrize(
    ("key", "pool", "dtype"),
    [(key, pool, np.float32) for key in sorted(NETWORKS) for pool in nir_io.POOLS]
    + [("fc", "avg", np.float64), ("conv", "sum", np.float64)],
)
def test_round_trip_through_the_cli(tmp_path: Path, key: str, pool: str, dtype, capsys) -> None:
    net = make_network(key, seed=3, dtype=dtype)
    net.save(tmp_path / "ck", training={"dataset": "digits"})
    assert main(["export-nir", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "n.nir"), "--pool", pool]) == 0
    assert main(["import-nir", str(tmp_path / "n.nir"), "--out", str(tmp_path / "back")]) == 0
    out = capsys.readouterr().out
    assert "note:" not in out  # a spikeforge file says everything
    back = Network.load(tmp_path / "back")
    _same_network(net, back)
    _same_spikes(net, back, seed=4)
    training = nir_io.read_checkpoint_json(tmp_path / "back")["training"]
    assert training["dataset"] == "digits"


def test_graph_layout_and_metadata() -> None:
    net = make_network("conv")
    graph = nir_io.network_to_graph(net)
    kinds = [type(node).__name__ for node in graph.nodes.values()]
    assert kinds == ["Input", "IF", "Conv2d", "IF", "AvgPool2d", "Conv2d", "IF", "Flatten", "Linear", "IF", "Output"]
    encoder = graph.nodes["encoder"]
    assert encoder.v_threshold.shape == (2, 8, 8)
    assert np.array_equal(encoder.v_threshold[:, 3, 5], net.thresholds[0])
    assert np.all(encoder.r == 1) and np.all(encoder.v_reset == 0)
    conv = graph.nodes["conv1"]
    assert conv.stride == (1, 1) and conv.padding == (1, 1) and not conv.bias.any()
    meta = graph.metadata
    assert (meta["reset"], meta["decoder"], meta["timesteps"], meta["dt"]) == ("subtract", "rate", 6, 1.0)
    assert NetworkSpec.from_json(meta["spikeforge_spec"]) == net.spec
    graph.infer_types()  # nir's own shape inference agrees with every edge
    graph.check_types()


def test_sum_pool_divides_the_next_weights_by_4() -> None:
    net = make_network("conv")
    graph = nir_io.network_to_graph(net, pool="sum")
    assert isinstance(graph.nodes["pool2"], nir.SumPool2d)
    assert np.array_equal(graph.nodes["conv3"].weight * 4, net.weights[2])
    assert np.array_equal(graph.nodes["conv1"].weight, net.weights[0])


def test_integer_checkpoint_exports_dequantized_values(tmp_path: Path) -> None:
    spec = NetworkSpec.parse("12FC-10FC", input_shape=(16,), timesteps=4)
    integer = IntegerNetwork.scratch(spec, seed=5)
    integer.save(tmp_path / "int")
    graph = nir_io.export_checkpoint(tmp_path / "int", tmp_path / "int.nir")
    assert graph.metadata["checkpoint_kind"] == "integer" and graph.metadata["dequantized"] == 1
    floats = integer.to_float()
    read = nir_io.read_graph(tmp_path / "int.nir")
    assert read.metadata["checkpoint_kind"] == "integer"
    back = nir_io.graph_to_network(read).network
    _same_network(floats, back)


def test_dt_and_r_fold_into_weights_and_encoder_threshold(fc_graph) -> None:
    base = nir_io.graph_to_network(fc_graph).network
    for name in ("encoder", "if1", "if2"):
        fc_graph.nodes[name].r = np.full_like(fc_graph.nodes[name].r, 4.0)
    scaled = nir_io.graph_to_network(fc_graph, dt=0.125).network  # gain r dt = 0.5
    assert np.allclose(scaled.thresholds[0], base.thresholds[0] / 0.5)
    assert np.allclose(scaled.weights[0], base.weights[0] * 0.5)
    assert np.array_equal(scaled.thresholds[1], base.thresholds[1])
    # the same spikes as a network whose currents are halved by hand
    x = np.random.default_rng(0).uniform(0, 1, (4, 16))
    halved = make_network("fc")
    halved.thresholds[0][...] = halved.thresholds[0] * 2
    for w in halved.weights:
        w[...] = w * 0.5
    for s, t in zip(scaled.forward(x).spikes, halved.forward(x).spikes, strict=True):
        assert np.array_equal(s, t)


def test_lif_with_infinite_tau_is_an_if(fc_graph) -> None:
    base = nir_io.graph_to_network(fc_graph).network
    node = fc_graph.nodes["if1"]
    inf = np.full_like(node.v_threshold, np.inf)
    fc_graph.nodes["if1"] = nir.LIF(
        tau=inf, r=inf, v_leak=np.zeros_like(inf), v_threshold=node.v_threshold, v_reset=np.zeros_like(inf)
    )
    _same_network(base, nir_io.graph_to_network(fc_graph).network)


def test_defaults_when_the_file_does_not_say(fc_graph) -> None:
    fc_graph.metadata = {}
    result = nir_io.graph_to_network(fc_graph)
    spec = result.network.spec
    assert (spec.reset, spec.threshold, spec.decoder, spec.population, spec.timesteps) == ("zero", "fixed", "rate", 1, 8)
    assert any(note.startswith("reset: the file does not say") for note in result.notes)
    spec = nir_io.graph_to_network(fc_graph, reset="subtract", timesteps=3).network.spec
    assert (spec.reset, spec.threshold, spec.timesteps) == ("subtract", "trainable", 3)
    result = nir_io.graph_to_network(fc_graph, decoder="last", population=5)
    spec = result.network.spec
    assert (spec.decoder, spec.population, spec.classes) == ("last", 5, 2)
    assert not any(note.startswith("decoder:") for note in result.notes)
    with pytest.raises(ValueError, match=r"^spec: population: the last layer has 10 neurons"):
        nir_io.graph_to_network(fc_graph, population=3)


def test_reset_option_overrides_the_metadata(fc_graph) -> None:
    spec = nir_io.graph_to_network(fc_graph, reset="zero").network.spec
    assert (spec.reset, spec.threshold) == ("zero", "fixed")


def _imported(tmp_path: Path) -> Path:
    spec = NetworkSpec.parse("20FC-100FC", input_shape=(64,), population=10, timesteps=4)
    Network(spec, seed=1, dtype=np.float32).save(tmp_path / "ck", training={"dataset": "digits"})
    nir_io.export_checkpoint(tmp_path / "ck", tmp_path / "n.nir")
    assert main(["import-nir", str(tmp_path / "n.nir"), "--out", str(tmp_path / "back")]) == 0
    return tmp_path / "back"


def test_imported_checkpoint_evaluates_and_quantizes(tmp_path: Path, capsys) -> None:
    back = _imported(tmp_path)
    assert main(["eval", "--checkpoint", str(back)]) == 0
    assert "digits 20FC-100FC T=4 (float)" in capsys.readouterr().out
    integer = IntegerNetwork.from_float(Network.load(back))  # what learn --init does
    assert integer.spec.arch == "20FC-100FC"


@pytest.mark.slow
def test_imported_checkpoint_learns_into_an_integer_one(tmp_path: Path) -> None:
    back = _imported(tmp_path)
    learn = ["learn", "--init", str(back), "--dataset", "digits", "--epochs", "1", "--no-progress"]
    assert main([*learn, "--out", str(tmp_path / "int")]) == 0
    assert IntegerNetwork.load(tmp_path / "int").spec.arch == "20FC-100FC"
