"""The HLS target's C simulation against the integer model (directed networks, the testbench's
own failure detection, the writer's layout and limits, other compilers)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import hw.hls
from hw.core_config import check_rtl_spec
from hw.hls import Layout, check_target, learnable, write_project
from model.fixed import signed_range
from model.integer import Formats, IntegerNetwork, LearningRule
from model.spec import NetworkSpec
from sim.hls_csim import CompileError, ap_types_include, make_vectors, run_csim
from sim.toolchain import ToolchainError

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


def network(
    arch: str,
    inputs: int | tuple[int, ...],
    *,
    formats: Formats | None = None,
    rounding: str = "stochastic",
    batch: int = 1,
    seed: int = 0,
    shifts: tuple[int, int] = (4, 4),
    full_range: bool = False,
    gain: int = 1,
    **switches: object,
) -> IntegerNetwork:
    """A seeded network; ``full_range`` draws weights over the whole w-bit range and small
    thresholds (saturation everywhere); ``gain`` scales the scratch weights."""
    spec = NetworkSpec.parse(arch, input_shape=inputs if isinstance(inputs, tuple) else (inputs,), **switches)
    formats = formats or Formats()
    rule = LearningRule(*shifts, rounding, batch)
    net = IntegerNetwork.scratch(spec, formats, seed=seed, rule=rule)
    if gain != 1:  # scratch weights times gain (saturated): activity through small conv networks
        low, high = signed_range(formats.w)
        weights = [np.clip(w * gain, low, high) for w in net.weights]
        net = IntegerNetwork(spec, formats, weights, net.thresholds, rule=rule, lfsr_state=seed + 1)
    if full_range:
        rng = np.random.default_rng(seed)
        low, high = signed_range(formats.w)
        weights = [rng.integers(low, high + 1, w.shape) for w in net.weights]
        thresholds = [rng.integers(2, 10, v.shape) for v in net.thresholds]
        decoder = None if net.decoder is None else rng.integers(low, high + 1, net.decoder.shape)
        net = IntegerNetwork(spec, formats, weights, thresholds, decoder=decoder, rule=rule, lfsr_state=seed + 1)
    return net


def samples(net: IntegerNetwork, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """u8 pixels with an all-zero and an all-255 sample first, then random ones."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, net.spec.neurons(0)))
    pixels[0] = 0
    pixels[1] = 255
    pixels[2:] *= rng.random(pixels[2:].shape) < 0.6
    return pixels, rng.integers(0, net.spec.classes, count)


def project(net: IntegerNetwork, folder: Path, lanes: int, count: int = 6, seed: int = 0) -> hw.hls.Vectors:
    pixels, labels = samples(net, count, seed)
    learn = (pixels, labels) if learnable(net.spec) else None
    vectors = make_vectors(net, check_target(net, lanes), pixels, labels, learn=learn)
    write_project(net, folder, vectors, lanes=lanes)
    return vectors


NARROW = Formats(w=3, fw=1, v=5, g=5, gf=2, dw=5, dth=5, k=8)

CASES = {
    "narrow-floor-last-trainable-B3-P3": (
        network("9FC-6FC", 5, formats=NARROW, rounding="floor", batch=3, shifts=(0, 1), full_range=True,
                timesteps=5, population=2, seed=5), 3),
    "narrow-nearest-rate-fixed-B2-P4": (
        network("6FC-3FC", 9, formats=Formats(w=4, v=6, g=6, gf=2, dw=7, dth=7, k=9), rounding="nearest",
                batch=2, full_range=True, timesteps=4, decoder="rate", threshold="fixed", seed=1), 4),
    "stochastic-last-trainable-B3-P5": (
        network("13FC-9FC-6FC", 11, rounding="stochastic", batch=3, shifts=(2, 3), timesteps=5,
                population=3, seed=2), 5),
    "stochastic-rate-zero-reset-P2": (
        network("5FC-4FC", 7, rounding="stochastic", full_range=True, timesteps=3, decoder="rate",
                reset="zero", threshold="fixed", population=2, seed=3), 2),
    "rect-surrogate-P1": (network("6FC", 4, surrogate="rect", timesteps=2, population=3, seed=4), 1),
    "defaults-P8": (network("20FC-10FC", 16, timesteps=8, population=5, shifts=(6, 6), seed=5), 8),
    # The fc decoder: C = 3 classes over P = 2 lanes (a padded decoder word), saturating.
    "narrow-fc-nearest-B2-P2": (
        network("7FC-4FC", 6, formats=replace(NARROW, df=2), rounding="nearest", batch=2, shifts=(1, 1),
                full_range=True, timesteps=3, population=2, classes=3, decoder="fc", seed=6), 2),
    "fc-stochastic-trainable-P4": (
        network("12FC-10FC", 9, timesteps=4, population=2, classes=5, decoder="fc", shifts=(3, 3), seed=7), 4),
    # Conv 3x3 and AP2 layers on image inputs (docs/numerics.md section 2.2).
    "conv-pool-fc-stochastic-trainable-B2-P3": (
        network("3C3-AP2-6FC", (2, 4, 4), batch=2, shifts=(2, 2), gain=2, timesteps=4, population=2,
                classes=3, seed=8), 3),
    "conv-pool-fc-floor-trainable-B3-P2": (
        network("3C3-AP2-6FC", (2, 4, 4), rounding="floor", batch=3, shifts=(2, 2), gain=4, timesteps=4,
                population=2, classes=3, seed=8), 2),
    "conv-conv-pool-nearest-fixed-P1": (
        network("2C3-3C3-AP2-4FC", (2, 4, 4), rounding="nearest", shifts=(1, 1), gain=3, timesteps=3,
                population=2, classes=2, threshold="fixed", seed=10), 1),
    "conv-two-pools-rate-stochastic-B2-P2": (
        network("2C3-AP2-AP2-6FC", (1, 8, 8), batch=2, shifts=(1, 2), timesteps=3, population=3, classes=2,
                decoder="rate", seed=11), 2),
    "conv-pool-fc-decoder-nearest-P4": (
        network("4C3-AP2-5FC", (1, 4, 4), formats=replace(NARROW, df=2), rounding="nearest", batch=2,
                shifts=(1, 1), full_range=True, timesteps=3, population=1, classes=3, decoder="fc", seed=12), 4),
}


@pytest.mark.parametrize("case", CASES)
def test_csim_equals_the_integer_model(tmp_path: Path, case: str) -> None:
    net, lanes = CASES[case]
    vectors = project(net, tmp_path, lanes)
    result = run_csim(tmp_path)
    assert (result.failed, result.returncode) == (0, 0), result.output
    samples_checked = 3 * (vectors.count("infer") + vectors.count("learn"))
    assert result.passed == samples_checked + 7 * vectors.count("check")
    if learnable(net.spec):  # the learning actually moved the state checked after it
        layout = Layout.of(net, lanes)
        before = layout.pack(net)
        learned = vectors.expected[vectors.ops.index(hw.hls.OPS["check"])]
        assert not np.array_equal(learned[: layout.weight_total], before["weights"])


def test_saturation_is_exercised(tmp_path: Path) -> None:
    """The narrow case saturates membranes and accumulators (else it tests nothing extra)."""
    net, _ = CASES["narrow-floor-last-trainable-B3-P3"]
    pixels, labels = samples(net, 6, 0)
    copy = IntegerNetwork(net.spec, net.formats, net.weights, net.thresholds, rule=net.rule)
    copy.accumulate(pixels[:3], labels[:3])  # the first batch
    low, high = signed_range(net.formats.dw)
    assert any(np.isin(dw, (low, high)).any() for dw in copy.dw)


def test_conv_saturation_is_exercised() -> None:
    """The narrow conv case saturates the accumulators of its conv layer."""
    net, _ = CASES["conv-pool-fc-decoder-nearest-P4"]
    pixels, labels = samples(net, 6, 0)
    copy = IntegerNetwork(net.spec, net.formats, net.weights, net.thresholds, decoder=net.decoder, rule=net.rule)
    copy.accumulate(pixels[:2], labels[:2])  # the first batch
    assert np.isin(copy.dw[0], signed_range(net.formats.dw)).any()


def test_hls_and_the_rtl_accept_conv() -> None:
    net, _ = CASES["conv-pool-fc-stochastic-trainable-B2-P3"]
    layout = check_target(net, 3)
    assert layout.neurons == (32, 48, 0, 6) and layout.channels == (2, 3, 0, 6)
    assert layout.rows == (0, 18, 0, 12) and layout.outs == (0, 3, 0, 6)
    check_rtl_spec(net.spec)  # the RTL builds it too (an inference core)
    arrays = layout.unpack(layout.pack(net))
    for a, b in zip(arrays["weights"] + arrays["thresholds"], net.weights + net.thresholds):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("where", ["prediction", "dw"])
def test_testbench_fails_on_a_corrupted_expected_value(tmp_path: Path, where: str) -> None:
    net, lanes = CASES["stochastic-last-trainable-B3-P5"]
    vectors = project(net, tmp_path, lanes)
    expected = tmp_path / "tb" / "tb_expected.dat"
    lines = expected.read_text().splitlines()
    if where == "prediction":  # the first learning sample's predicted class
        row = 0
        column = 0
        values = lines[row].split()
        values[column] = str((int(values[column]) + 1) % net.spec.classes)
    else:  # one dW entry of the first state check
        row = vectors.count("learn")
        layout = Layout.of(net, lanes)
        column = layout.weight_total + 2 * layout.neuron_total + 5
        values = lines[row].split()
        values[column] = str(int(values[column]) + 1)
    lines[row] = " ".join(values)
    expected.write_text("\n".join(lines) + "\n")
    result = run_csim(tmp_path)
    assert result.returncode != 0 and result.failed == 1
    assert f"{result.passed} passed, 1 failed" in result.output


def test_layout_packs_and_unpacks_the_learned_state() -> None:
    net = network("13FC-9FC-6FC", 11, timesteps=2, population=3)
    net.dw = [np.arange(dw.size).reshape(dw.shape) for dw in net.dw]
    layout = Layout.of(net, 4)
    assert layout.words == (3, 4, 3, 2) and layout.neuron_base == (0, 12, 28, 40)
    assert layout.weight_base == (0, 0, 11 * 16, 11 * 16 + 13 * 12)
    state = layout.pack(net)
    arrays = layout.unpack(state)
    for a, b in zip(arrays["weights"] + arrays["dw"], net.weights + net.dw):
        assert np.array_equal(a, b)
    for a, b in zip(arrays["thresholds"], net.thresholds):
        assert np.array_equal(a, b)
    assert state["weights"][layout.weight_base[1] + 13 : layout.weight_base[1] + 16].tolist() == [0] * 3  # padding


def test_check_target_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    net = network("8FC-4FC", 6, timesteps=4)
    monkeypatch.setattr(hw.hls, "MAX_SPIKE_BITS", 64)
    with pytest.raises(ValueError, match=r"^timesteps: T x neurons = 72 spike bits"):
        check_target(net, 1)
    with pytest.raises(ValueError, match=r"^lanes: 0 is out of range"):
        check_target(net, 0)
    with pytest.raises(ValueError, match=r"^net: expected an IntegerNetwork"):
        check_target(object(), 1)  # type: ignore[arg-type]


def test_write_project_rejects_bad_tcl_values(tmp_path: Path) -> None:
    net = network("4FC", 3, population=2)
    vectors = make_vectors(net, check_target(net, 1), *samples(net, 2, 0))
    with pytest.raises(ValueError, match="^part: "):
        write_project(net, tmp_path, vectors, part="x; exit")
    with pytest.raises(ValueError, match="^clock_ns: "):
        write_project(net, tmp_path, vectors, clock_ns=0)


def test_project_files_and_tcl(tmp_path: Path) -> None:
    net, lanes = CASES["defaults-P8"]
    project(net, tmp_path, lanes)
    names = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert names == [
        "README.md", "build_prj.tcl", "firmware/parameters.h", "firmware/spikeforge.cpp", "firmware/spikeforge.h",
        "firmware/spikeforge_core.h", "firmware/spikeforge_fixed.h", "firmware/weights.h",
        "tb/tb_expected.dat", "tb/tb_input.dat", "tb/tb_spikeforge.cpp",
    ]
    tcl = (tmp_path / "build_prj.tcl").read_text()
    for command in ("open_project", "set_top spikeforge_top", "set_part {xc7z020clg400-1}",
                    "create_clock -period 10", "csim_design", "csynth_design", "cosim_design", "export_design"):
        assert command in tcl
    assert "@" not in tcl and "cannot be run in this environment" in (tmp_path / "README.md").read_text()
    parameters = (tmp_path / "firmware" / "parameters.h").read_text()
    assert "constexpr int LANES = 8;" in parameters and "constexpr int NEURONS[3] = {16, 20, 10};" in parameters


def test_csim_compiles_as_cxx14(tmp_path: Path) -> None:
    """Vitis HLS compiles C++14 (build_prj.tcl's -std=c++14): the sources must too."""
    net, lanes = CASES["stochastic-last-trainable-B3-P5"]
    project(net, tmp_path, lanes)
    result = run_csim(tmp_path, extra=("-std=c++14",))
    assert (result.failed, result.returncode) == (0, 0)


@pytest.mark.skipif(shutil.which("clang++") is None, reason="clang++ is not installed")
def test_csim_with_clang(tmp_path: Path) -> None:
    net, lanes = CASES["narrow-nearest-rate-fixed-B2-P4"]
    project(net, tmp_path, lanes)
    result = run_csim(tmp_path, cxx="clang++")
    assert (result.failed, result.returncode) == (0, 0), result.output


def _has_ap_types() -> bool:
    try:
        ap_types_include()
    except ToolchainError:
        return False
    return True


@pytest.mark.slow  # the vendor headers take about 6 s of CPU per build
@pytest.mark.skipif(not _has_ap_types(), reason="hls4ml (the ap_types headers) is not installed")
def test_csim_on_the_vendor_types(tmp_path: Path) -> None:
    net, lanes = CASES["narrow-floor-last-trainable-B3-P3"]
    project(net, tmp_path, lanes)
    result = run_csim(tmp_path, ap_types=True)
    assert (result.failed, result.returncode) == (0, 0), result.output


def test_compile_error_is_one_line(tmp_path: Path) -> None:
    net, lanes = CASES["rect-surrogate-P1"]
    project(net, tmp_path, lanes)
    core = tmp_path / "firmware" / "spikeforge_core.h"
    core.write_text(core.read_text().replace("int best = 0;", "int best = 0; int unused = 1;"))
    with pytest.raises(CompileError, match=r"^g\+\+: compile failed: .*unused") as error:
        run_csim(tmp_path)
    assert "\n" not in str(error.value)
