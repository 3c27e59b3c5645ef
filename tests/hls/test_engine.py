"""The csim engine (the HLS C++ through ctypes) against the integer model."""

from __future__ import annotations

import copy
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from model.integer import Formats, IntegerNetwork, LearningRule
from model.spec import NetworkSpec
from sim.hls_engine import CsimNetwork, build_engine

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


def _net(
    arch: str, inputs: int | tuple[int, ...], formats: Formats, rule: LearningRule, seed: int, **switches: object
) -> IntegerNetwork:
    spec = NetworkSpec.parse(arch, input_shape=inputs if isinstance(inputs, tuple) else (inputs,), **switches)
    return IntegerNetwork.scratch(spec, formats, seed=seed, rule=rule)


CASES = {
    "stochastic-B3-trainable-last": _net(
        "17FC-12FC-6FC", 13, Formats(), LearningRule(3, 4, "stochastic", 3), 1, timesteps=5, population=2),
    "nearest-B1-fixed-rate-narrow": _net(
        "9FC-8FC", 7, Formats(w=4, v=7, g=6, gf=3, dw=8, dth=8, k=10), LearningRule(1, 2, "nearest", 1), 2,
        timesteps=4, population=4, decoder="rate", threshold="fixed"),
    "floor-B2-trainable-last": _net(
        "10FC", 6, Formats(w=6, v=9, g=8, gf=4, dw=10, dth=9, k=12), LearningRule(0, 0, "floor", 2), 3,
        timesteps=3, population=5),
    "stochastic-B1-fc": _net(
        "11FC-20FC", 8, Formats(), LearningRule(2, 3, "stochastic", 1), 4, timesteps=4, population=2, decoder="fc"),
    "stochastic-B2-trainable-conv-pool": _net(
        "3C3-AP2-4C3-6FC", (2, 4, 4), Formats(), LearningRule(1, 2, "stochastic", 2), 5, timesteps=4, population=2,
        classes=3),
}


def _samples(net: IntegerNetwork, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, net.spec.neurons(0))) * (rng.random((count, 1)) < 0.9)
    pixels[0] = 0
    return pixels, rng.integers(0, net.spec.classes, count)


def _assert_same_state(a: IntegerNetwork, b: IntegerNetwork) -> None:
    for name in ("weights", "thresholds", "reciprocals", "dw", "dth"):
        for x, y in zip(getattr(a, name), getattr(b, name)):
            assert np.array_equal(x, y), name
    for name in ("decoder", "dd"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or np.array_equal(x, y), name
    assert (a.lfsr.state, a.pending) == (b.lfsr.state, b.pending)


@pytest.mark.parametrize("case", CASES)
def test_engine_learns_and_infers_like_the_model(case: str) -> None:
    model = copy.deepcopy(CASES[case])
    engine = CsimNetwork(model)
    pixels, labels = _samples(model, 13, 0)
    model = copy.deepcopy(model)
    assert engine.learn(pixels[:7], labels[:7]) == model.learn(pixels[:7], labels[:7])
    _assert_same_state(engine.network(), model)  # mid-batch: accumulators and pending count
    engine.rule = replace(engine.rule, shift_w=2)
    model.rule = replace(model.rule, shift_w=2)
    assert engine.learn(pixels[7:], labels[7:]) == model.learn(pixels[7:], labels[7:])
    engine.flush()
    model.flush()
    _assert_same_state(engine.network(), model)
    predictions, counts, layer_spikes, _ = engine.run(pixels)
    trace = model.forward(pixels)
    assert np.array_equal(predictions, trace.predictions())
    assert np.array_equal(counts, trace.counts)
    assert np.array_equal(layer_spikes, np.stack([s.sum(axis=(0, 2)) for s in trace.spikes], axis=1))
    assert engine.evaluate(pixels, labels) == model.evaluate(pixels, labels)


def test_engine_keeps_rounding_and_batch() -> None:
    engine = CsimNetwork(CASES["floor-B2-trainable-last"])
    with pytest.raises(ValueError, match="^rule: the csim engine was built for rounding 'floor' and batch 2"):
        engine.rule = replace(engine.rule, rounding="nearest")


def test_engine_learning_needs_a_learnable_network() -> None:
    net = _net("6FC", 4, Formats(), LearningRule(), 0, timesteps=2, population=3, reset="zero", threshold="fixed")
    engine = CsimNetwork(net)
    pixels, labels = _samples(net, 3, 1)
    assert np.array_equal(engine.run(pixels)[0], net.forward(pixels).predictions())
    with pytest.raises(ValueError, match="^spec: integer learning implements the eq. 15 mux"):
        engine.learn(pixels, labels)


def test_build_is_cached_by_structure(engine_cache: Path) -> None:
    net = CASES["stochastic-B3-trainable-last"]
    library = build_engine(net)
    stamp = library.stat().st_mtime_ns
    other = copy.deepcopy(net)
    other.weights[0][...] = 0  # values are loaded at run time: the same build
    assert build_engine(other) == library and library.stat().st_mtime_ns == stamp
    wider = IntegerNetwork(net.spec, replace(net.formats, dw=30), net.weights, net.thresholds, rule=net.rule)
    assert build_engine(wider) != library and library.parent.parent == engine_cache / "hls"
