"""The whole core's configuration, memory map, images, manifest and `spikeforge gen`
(no simulator: the co-simulation is in tests/cosim/test_core.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from amaranth.hdl import Fragment

from hw.core import Core
from hw.core_config import HOST_REGISTERS, CoreConfig, MemorySpec
from model.core import CoreModel
from model.integer import Formats, IntegerNetwork, LearningRule
from model.spec import NetworkSpec
from sim.cli import main


def _network(arch: str = "5FC-6FC", inputs: int = 7, **switches: object) -> IntegerNetwork:
    spec = NetworkSpec.parse(arch, input_shape=(inputs,), timesteps=3, population=2, **switches)
    return IntegerNetwork.scratch(spec, seed=4, rule=LearningRule(shift_w=5, shift_th=6, batch=2))


def test_geometry_matches_the_core_model() -> None:
    net = _network()
    config = CoreConfig.from_network(net, lanes=4, queue_depth=5)
    model = CoreModel(net, lanes=4, queue_depth=5)
    assert config.sizes == tuple(model.sizes) == (7, 5, 6)
    assert config.words == tuple(model.words) == (2, 2, 2)
    assert [config.valid_lanes(layer, 1) for layer in range(3)] == [
        model.valid_mask(layer, 1) for layer in range(3)
    ] == [0b0111, 0b0001, 0b0011]
    for memory in ("V", "VTH", "R", "S", "W", "DV", "DW", "DVTH", "PIX"):
        for layer in range(3):
            if (memory, layer) in {("PIX", 1), ("PIX", 2), ("W", 0), ("DW", 0)}:
                continue
            assert config.memory(memory, layer).word_bits == model.word_bits(memory)


def test_memories_follow_learning_switches() -> None:
    learning = {spec.key for spec in CoreConfig.from_network(_network(), lanes=2, queue_depth=3).memories}
    fixed = {spec.key for spec in CoreConfig.from_network(_network(threshold="fixed"), lanes=2, queue_depth=3).memories}
    inference = {
        spec.key
        for spec in CoreConfig.from_network(_network(reset="zero", threshold="fixed"), lanes=2, queue_depth=3).memories
    }
    assert {"DVTH0", "DV0", "DW1", "DV2"} <= learning
    assert "DVTH0" not in fixed and "DV0" not in fixed and {"DV1", "DW2"} <= fixed
    assert not {key for key in inference if key.startswith("D")}
    assert {"V0", "W1", "W2", "S2", "H2", "PIX0"} <= inference


def test_weight_rows_and_lane_packing() -> None:
    net = _network()
    config = CoreConfig.from_network(net, lanes=4, queue_depth=3)
    contents = config.initial_contents(net)
    weights = net.weights[0]  # (n_1 = 5, n_0 = 7)
    rows = contents["W1"]
    assert len(rows) == 7 * 2
    for i in range(7):
        lanes = rows[2 * i] + rows[2 * i + 1]
        assert lanes[:5] == weights[:, i].tolist() and lanes[5:] == [0, 0, 0]
    spec = MemorySpec("W", 1, 14, 8, True, 4)
    word = spec.pack([-1, 2, -128, 127])
    assert word == 0x7F_80_02_FF
    assert spec.unpack(word) == (-1, 2, -128, 127)


def test_host_map_regions() -> None:
    config = CoreConfig.from_network(_network(), lanes=4, queue_depth=3)
    shift = config.host_word_bits
    assert [config.host_address(name) for name in HOST_REGISTERS] == [0, 1, 2, 3]
    regions = {config.host_address(spec.key) >> shift for spec in config.host_memories}
    assert regions == set(range(1, len(config.host_memories) + 1))
    assert config.host_address("W1", 13) & ((1 << shift) - 1) == 13
    with pytest.raises(ValueError, match="word"):
        config.host_address("W1", 14)
    with pytest.raises(ValueError, match="key: 'PIX0'"):
        config.host_address("PIX0")


def test_counters_cover_every_model_count() -> None:
    net = _network()
    config = CoreConfig.from_network(net, lanes=3, queue_depth=3)
    model = CoreModel(net, lanes=3, queue_depth=3)
    rng = np.random.default_rng(0)
    listed = {spec.name for spec in config.counters}
    for sample in range(4):
        result = model.learn(rng.integers(0, 256, 7), int(rng.integers(0, 3)))
        for phase in result.counters.phases.values():
            for layer, counts in enumerate(phase.layers):
                for kind, memories in (("reads", counts.words_read), ("writes", counts.words_written)):
                    for memory, amount in memories.items():
                        assert amount == 0 or f"{kind}.{memory}.{layer}" in listed
    assert "cycles.update" in listed and "window_events.0" in listed and "queue_high_water.1" in listed


def test_bad_networks_and_parameters() -> None:
    with pytest.raises(ValueError, match="lanes"):
        CoreConfig.from_network(_network(), lanes=0, queue_depth=3)
    with pytest.raises(ValueError, match=r"queue_depth: 0 is out of range \(allowed 1\.\.65536\)"):
        CoreConfig.from_network(_network(), lanes=2, queue_depth=0)
    assert CoreConfig.from_network(_network(), lanes=2, queue_depth=1).queue_depth == 1
    with pytest.raises(TypeError, match="lanes"):
        CoreConfig.from_network(_network(), lanes=2.5, queue_depth=3)
    config = CoreConfig.from_network(_network(), lanes=2, queue_depth=3)
    with pytest.raises(ValueError, match="target: 'nope'"):
        config.check_target("nope")
    wide = _network("500FC-500FC", inputs=784)
    big = CoreConfig.from_network(wide, lanes=8, queue_depth=3)
    with pytest.raises(ValueError, match="target: memory DW1 needs"):
        big.check_target("ice40-up5k")
    assert big.check_target("sim").name == "sim"


def test_images_are_readmemh_words(tmp_path) -> None:
    net = _network()
    config = CoreConfig.from_network(net, lanes=4, queue_depth=3)
    files = config.write_images(net, tmp_path)
    assert set(files) == {f"{m}{l}" for m in ("VTH", "R") for l in range(3)} | {"W1", "W2"}
    lines = (tmp_path / files["W1"]).read_text().split()
    spec = config.memory("W", 1)
    assert len(lines) == spec.depth and all(len(line) == math.ceil(spec.word_bits / 4) for line in lines)
    assert spec.unpack(int(lines[3], 16)) == tuple(config.initial_contents(net)["W1"][3])
    recip = (tmp_path / files["R0"]).read_text().split()
    assert spec.lanes == 4 and int(recip[0], 16) & 0x1FFFF == (1 << 16) // int(net.thresholds[0][0])


def test_gen_checkpoint_writes_verilog_images_manifest(tmp_path, capsys) -> None:
    net = _network()
    checkpoint = net.save(tmp_path / "ckpt")
    out = tmp_path / "core"
    assert main(["gen", "--checkpoint", str(checkpoint), "--lanes", "4", "--queue-depth", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    manifest = json.loads((out / "manifest.json").read_text())
    assert str(out / "spikeforge_core.v") in printed
    text = (out / "spikeforge_core.v").read_text()
    assert "module spikeforge_core(" in text and "lint_off WIDTHTRUNC" in text
    assert manifest["parameters"]["lanes"] == 4 and manifest["parameters"]["sizes"] == [7, 5, 6]
    assert manifest["widths"]["w"] == 8 and manifest["widths"]["encoder_k"] == Formats().encoder_k
    keys = [memory["key"] for memory in manifest["memories"]]
    assert keys[0] == "PIX0" and "DVTH2" in keys
    w1 = next(memory for memory in manifest["memories"] if memory["key"] == "W1")
    assert w1["image"] == "W1.hex" and (out / "W1.hex").is_file() and w1["depth"] == 14
    names = {port["name"]: port for port in manifest["ports"]}
    assert names["pixels__payload"]["direction"] == "input"
    assert names["result__payload"]["width"] == manifest["streams"]["result"]["payload"]["counts"]["offset"] + 3 * manifest["widths"]["count_bits"]
    assert names["host__rdata"]["width"] == manifest["host"]["data_bits"]
    assert manifest["counters"][0] == "cycles.clear"


def test_gen_units_still_work(tmp_path) -> None:
    assert main(["gen", "--unit", "spike_queue", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "spike_queue.v").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--unit", "spike_queue", "--lanes", "4"], "--lanes: only allowed with --checkpoint"),
        (["--checkpoint", "CKPT"], "--lanes: required with --checkpoint"),
        (["--checkpoint", "CKPT", "--lanes", "0"], "lanes: 0 is out of range"),
        (["--checkpoint", "CKPT", "--lanes", "4", "--queue-depth", "0"],
         "--queue-depth: 0 is out of range (allowed 1..65536)"),
        (["--checkpoint", "CKPT", "--lanes", "1", "--target", "ice40-up5k"], "target: W and dW need 84 single-port blocks"),
        (["--checkpoint", "CKPT", "--lanes", "9", "--target", "ice40-up5k"], "lanes: single-port weight memories"),
        (["--checkpoint", "MISSING", "--lanes", "4"], "does not exist"),
    ],
)
def test_gen_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message) -> None:
    big = IntegerNetwork.scratch(NetworkSpec.parse("400FC-400FC", input_shape=(700,), timesteps=2, population=40))
    paths = {"CKPT": str(big.save(tmp_path / "big")), "MISSING": str(tmp_path / "missing")}
    argv = [paths.get(arg, arg) for arg in argv]
    assert main(["gen", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_grid_layers_follow_the_core_model_layout(tmp_path, capsys) -> None:
    """A conv/AP2 network: the core numbers its spiking layers (the AP2 has none), lays out
    V, S, H position-major and VTH, R, W per channel as the core model, its learning
    memories as deep as the learned ones, the layers' shift offsets, and gen writes it; on
    the single-port weight banks of the UP5K it builds no learning."""
    from model.core_layout import CoreLayout

    spec = NetworkSpec.parse("5C3-AP2-3C3-10FC", input_shape=(2, 4, 4), timesteps=2)
    net = IntegerNetwork.scratch(spec, seed=3)
    config = CoreConfig.from_network(net, lanes=4, queue_depth=3)
    layout = CoreLayout(spec, 4, net.synapses)
    assert config.numbers == (0, 1, 3, 4) and config.pools == (0, 0, 1, 0) and config.learnable
    assert config.offsets == ((0, 4), (0, 4), (4, 2), (0, 0))  # 4 behind one pool; log2(H W)
    assert config.words == tuple(layout.layers[n].words for n in config.numbers) == (16, 32, 4, 3)
    assert [config.valid_lanes(2, k) for k in range(4)] == [layout.layers[3].word_mask(k) for k in range(4)]
    assert [config.memory(name, 1).depth for name in ("VTH", "W")] == [2, 18 * 2]
    assert config.memory("W", 3).depth == 12 * 3
    assert [config.memory("DW", i).depth for i in (1, 2, 3)] == [config.memory("W", i).depth for i in (1, 2, 3)]
    assert [config.memory("DVTH", i).depth for i in range(4)] == [1, 2, 1, 3]  # per channel
    even = IntegerNetwork.scratch(NetworkSpec.parse("4C3-4FC", input_shape=(1, 4, 4), timesteps=2), seed=3)
    up5k = CoreConfig.from_network(even, lanes=2, queue_depth=3, target="ice40-up5k")  # even rows
    assert up5k.single_port_weights and not up5k.learnable
    assert not any(m.name.startswith("D") for m in up5k.memories)
    contents = config.initial_contents(net)
    assert contents["W2"][0][:3] == net.weights[2][:, 0].tolist() and contents["VTH1"][1][:1] == [net.thresholds[1][4]]
    pixels = np.arange(32)
    assert config.input_words(pixels)[1] == [1, 17, 0, 0]  # position 1, channels 0 and 1
    checkpoint = net.save(tmp_path / "conv")
    assert main(["gen", "--checkpoint", str(checkpoint), "--lanes", "4", "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["parameters"]["numbers"] == [0, 1, 3, 4] and manifest["parameters"]["learnable"] is True
    assert manifest["parameters"]["offsets"] == [[0, 4], [0, 4], [4, 2], [0, 0]]


def test_single_port_weight_banks_layout_and_export(tmp_path) -> None:
    """ice40-up5k: W and dW in even/odd banks, layers in aligned regions, no power-up contents in the
    Verilog (the host loads them), the other memories keep their images."""
    from hw.core_export import drop_initial_block, write_core

    spec = NetworkSpec.parse("8FC-4FC", input_shape=(5,), timesteps=3, population=2)
    net = IntegerNetwork.scratch(spec, Formats(w=8, v=16, g=16, dw=16, dth=16, k=16), seed=4)
    config = CoreConfig.from_network(net, lanes=1, queue_depth=3, target="ice40-up5k", counters="events")
    assert config.single_port_weights and config.counter_set == "events"
    # Halves of 20 and 16 words in regions of 32 and 16, aligned: 48 words, no deeper power
    # of two than the 36 stacked.
    assert [(name, depth) for name, depth, _ in config.weight_banks()] == [
        ("W_even", 32 + 16), ("W_odd", 48), ("DW_even", 48), ("DW_odd", 48),
    ]
    assert config.bank_base("W", 1) == 0 and config.bank_base("W", 2) == 32
    assert config.check_target("sim").name == "sim"  # the co-simulated build: banks count as memory bits
    default = CoreConfig.from_network(net, lanes=1, queue_depth=3, target="ice40-up5k")
    assert default.counter_set == "cycles" and [spec.kind for spec in default.counters] == ["cycles"] * 5
    assert CoreConfig.from_network(net, lanes=1, queue_depth=3).counter_set == "all"
    assert [spec.name for spec in config.counters][:5] == [f"cycles.{p}" for p in ("clear", "forward", "readout", "backward", "update")]
    assert not any(spec.kind in ("reads", "writes") for spec in config.counters)
    data = write_core(net, lanes=1, queue_depth=3, out_dir=tmp_path, target="ice40-up5k", counters="events")
    verilog = (tmp_path / data["files"]["verilog"]).read_text()
    for bank in ("W_even", "W_odd", "DW_even", "DW_odd"):
        assert f" mem_{bank} [" in verilog
        assert f"mem_{bank}[0] =" not in verilog
    assert verilog.count('ram_style = "huge"') == 4
    assert "mem_VTH1[0] =" in verilog
    assert data["host_load"]["memories"] == ["W1", "DW1", "W2", "DW2"]
    assert data["parameters"]["single_port_weights"] is True
    with pytest.raises(ValueError, match="no initialised Verilog memory 'mem_W_even'"):
        drop_initial_block(verilog, "mem_W_even")


def test_single_port_weight_banks_refused_with_odd_rows() -> None:
    with pytest.raises(ValueError, match=r"lanes: single-port weight memories \(ice40-up5k\) .* c_1 = 3"):
        CoreConfig.from_network(_network("6FC-4FC", inputs=5), lanes=2, queue_depth=3, target="ice40-up5k")
    cycles = CoreConfig.from_network(_network(), lanes=2, queue_depth=3, counters="cycles")
    assert [spec.kind for spec in cycles.counters] == ["cycles"] * len(cycles.phases)
    with pytest.raises(ValueError, match="counters: 'some' is not one of all, events, cycles"):
        CoreConfig.from_network(_network(), lanes=2, queue_depth=3, counters="some")


def test_a_core_that_does_not_fit_names_the_lanes_that_do(tmp_path, capsys) -> None:
    spec = NetworkSpec.parse("128FC-100FC", input_shape=(64,), timesteps=8, population=10)
    network = IntegerNetwork.scratch(spec, Formats.parse("v=12,dw=16,dth=16"), seed=0)
    assert CoreConfig.lanes_that_fit(network, queue_depth=4, target="ice40-up5k") == [1]
    assert CoreConfig.lanes_that_fit(network, queue_depth=4, target="sim")[:3] == [1, 2, 3]
    with pytest.raises(ValueError, match=r"need 6 single-port blocks.*; lanes that fit ice40-up5k at Q = 4: 1$"):
        CoreConfig.for_target(network, lanes=2, queue_depth=4, target="ice40-up5k")
    assert CoreConfig.for_target(network, lanes=1, queue_depth=4, target="ice40-up5k").single_port_weights
    network.save(tmp_path / "up5k")
    argv = ["gen", "--checkpoint", str(tmp_path / "up5k"), "--lanes", "8", "--target", "ice40-up5k",
            "--queue-depth", "4", "--out", str(tmp_path / "core")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spikeforge gen: error: lanes: ")
    assert err[0].endswith("lanes that fit ice40-up5k at Q = 4: 1")
    assert not (tmp_path / "core").exists()


def test_fc_decoder_error_sum_keeps_the_dv_unit_in_range() -> None:
    """The fc decoder's error sum is narrowed to its own width before its shift: with g = 16
    and gf = 11 the dot-product lane's width plus the shift was beyond the dV unit's range
    (soak seed 1304), though the sums fit the contract's 61 bits."""
    spec = NetworkSpec.parse("9FC", input_shape=(16,), timesteps=1, population=3, decoder="fc")
    formats = Formats(w=9, fw=5, v=15, g=16, gf=11, dw=19, dth=24, k=9, df=3)
    config = CoreConfig.from_network(IntegerNetwork.scratch(spec, formats, seed=0), lanes=3, queue_depth=4)
    assert config.learnable
    Fragment.get(Core(config), None)


def test_fc_decoder_error_sum_sized_by_the_contracts_bound() -> None:
    """The fc decoder's error sum is as wide as the contract's bound on it (``|e_c| <= T n_L
    2^(w-1) + 2^df``, times C weights): one to two bits wider, this network's scaled sum was
    beyond the dV unit's range (soak seed 1501), though the model accepts its formats."""
    spec = NetworkSpec.parse("11FC-9FC", input_shape=(9,), timesteps=5, population=3, decoder="fc")
    formats = Formats(w=9, fw=7, v=11, g=16, gf=8, dw=18, dth=23, k=8, df=3)
    config = CoreConfig.from_network(IntegerNetwork.scratch(spec, formats, seed=0), lanes=1, queue_depth=1)
    assert config.learnable
    Fragment.get(Core(config), None)
