"""The core model on conv and AP2 networks (model/core.py, model/core_layout.py): bit-exact
against the integer model's fast and reference paths, the trace against the core's state,
the cycle formula against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.core import (
    CONTROL_LATENCY,
    DV_LATENCY,
    DW_LATENCY,
    INTEGRATE_LATENCY,
    QUEUE_LATENCY,
    READOUT_LATENCY,
    SCAN_LATENCY,
    UPDATE_LATENCY,
    WALK_LATENCY,
    CoreModel,
    integrate_stage_timing,
    walk_timing,
)
from model.fixed import ROUNDINGS, signed_range
from model.integer import Formats, IntegerNetwork, LearningRule
from model.spec import NetworkSpec
from model.synapses import weight_shape

LANES = (1, 2, 3, 4, 8)
ARCHS = ("{a}C3-{o}FC", "{a}C3-AP2-{o}FC", "AP2-{o}FC", "{a}C3-{b}C3-AP2-{o}FC", "{a}C3-AP2-{b}C3-{h}FC-{o}FC")


@st.composite
def conv_networks(draw: st.DrawFn, *, learnable: bool = False) -> tuple[IntegerNetwork, np.ndarray, np.ndarray]:
    """A small random conv/pool network (narrow formats saturate often), u8 images, labels."""
    population, classes = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    template = draw(st.sampled_from(ARCHS))
    pooled = "AP2" in template
    side = st.sampled_from([2, 4]) if pooled else st.integers(1, 4)
    shape = (draw(st.integers(1, 3)), draw(side), draw(side))
    arch = template.format(
        a=draw(st.integers(1, 5)), b=draw(st.integers(1, 4)), h=draw(st.integers(1, 5)), o=classes * population
    )
    reset = "subtract" if learnable else draw(st.sampled_from(["subtract", "zero"]))
    threshold = draw(st.sampled_from(["trainable", "fixed"])) if reset == "subtract" else "fixed"
    spec = NetworkSpec.parse(
        arch, input_shape=shape, timesteps=draw(st.integers(1, 4)), population=population, classes=classes,
        decoder=draw(st.sampled_from(["last", "rate", "fc"])), reset=reset, threshold=threshold,
    )
    w = draw(st.integers(2, 8))
    g = draw(st.integers(4, 10))
    formats = Formats(
        w=w, fw=draw(st.integers(0, w - 1)), v=draw(st.integers(w, w + 5)), g=g, gf=draw(st.integers(0, g - 1)),
        dw=draw(st.integers(g, g + 3)), dth=draw(st.integers(g, g + 3)), k=draw(st.integers(8, 12)),
        df=draw(st.integers(0, w + 2)),
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    low, high = signed_range(w)
    weights = [rng.integers(low, high + 1, weight_shape(spec, i)) for i in range(1, spec.num_layers + 1)]
    top = min(formats.threshold_max, draw(st.integers(1, 200)))
    thresholds = [rng.integers(1, top + 1, spec.channels(i)) for i in range(spec.num_layers + 1)]
    rule = LearningRule(
        shift_w=draw(st.integers(0, 5)), shift_th=draw(st.integers(0, 5)),
        rounding=draw(st.sampled_from(ROUNDINGS)), batch=draw(st.integers(1, 3)),
    )
    decoder = None
    if spec.decoder == "fc":
        decoder = rng.integers(low, high + 1, (classes, spec.timesteps * spec.neurons(spec.num_layers)))
    net = IntegerNetwork(
        spec, formats, weights, thresholds, decoder=decoder, rule=rule, lfsr_state=draw(st.integers(1, 2**32 - 1)),
    )
    samples = draw(st.integers(1, 3))
    pixels = rng.integers(0, 256, (samples, *shape), dtype=np.uint8)
    zeros = draw(st.sampled_from(["none", "some", "all"]))
    if zeros != "none":
        pixels[rng.random(pixels.shape) < (0.5 if zeros == "some" else 1.0)] = 0
    return net, pixels, rng.integers(0, classes, samples)


def _clone(net: IntegerNetwork) -> IntegerNetwork:
    return IntegerNetwork(
        net.spec, net.formats, net.weights, net.thresholds, decoder=net.decoder, rule=net.rule,
        lfsr_state=net.lfsr.state,
    )


@settings(max_examples=120, deadline=None)
@given(case=conv_networks(), lanes=st.sampled_from(LANES), depth=st.integers(1, 5), reference=st.booleans())
def test_conv_inference_equals_the_integer_model(case, lanes: int, depth: int, reference: bool) -> None:
    net, pixels, _ = case
    core = CoreModel(net, lanes=lanes, queue_depth=depth)
    trace = net.forward(pixels, reference=reference)
    predictions = trace.predictions()
    for n, sample in enumerate(pixels):
        result = core.infer(sample)
        assert result.prediction == predictions[n]
        assert np.array_equal(result.counts, trace.counts[n])
        assert np.array_equal(result.last_membrane, trace.last_membrane[n])
        for index in net.spec.spiking_layers():
            assert np.array_equal(result.spikes[index], trace.spikes[index][:, n])
            assert np.array_equal(result.windows[index], trace.windows[index][:, n])


@settings(max_examples=120, deadline=None)
@given(case=conv_networks(learnable=True), lanes=st.sampled_from(LANES), depth=st.integers(1, 5), reference=st.booleans())
def test_conv_learning_equals_the_integer_model(case, lanes: int, depth: int, reference: bool) -> None:
    net, pixels, labels = case
    core = CoreModel(net, lanes=lanes, queue_depth=depth)
    predictions = [core.learn(sample, int(label)).prediction for sample, label in zip(pixels, labels)]
    integer = _clone(net)
    correct = integer.learn(pixels, labels, reference=reference)
    assert sum(p == y for p, y in zip(predictions, labels)) == correct
    for _ in range(2):
        state = core.to_network()
        for mine, theirs in [
            (state.weights, integer.weights), (state.thresholds, integer.thresholds),
            (state.reciprocals, integer.reciprocals), (state.dw, integer.dw), (state.dth, integer.dth),
            ([state.decoder], [integer.decoder]), ([state.dd], [integer.dd]),
        ]:
            assert all(np.array_equal(a, b) for a, b in zip(mine, theirs))
        assert state.pending == integer.pending and state.lfsr.state == integer.lfsr.state
        core.flush()
        integer.flush(reference=reference)


def _replay(records) -> dict:
    memories: dict = {}
    for record in records:
        memories[(record.layer, record.memory, record.address)] = record.data
    return memories


@pytest.mark.parametrize("lanes", [1, 3, 4])
def test_conv_trace_replays_to_the_core_state(lanes: int) -> None:
    """Every write of a conv/pool network, in cycle order, one per memory and cycle; replayed,
    the memories hold the core's membranes, spikes, weights and accumulators."""
    spec = NetworkSpec.parse("5C3-AP2-3C3-4FC", input_shape=(2, 4, 4), timesteps=3, population=2, classes=2)
    rule = LearningRule(shift_w=2, shift_th=2, batch=2)
    net = IntegerNetwork.scratch(spec, Formats(fw=6), seed=3, gain=1.5, rule=rule)
    core = CoreModel(net, lanes=lanes, queue_depth=2)
    rng = np.random.default_rng(5)
    records = []
    for label in (1, 0, 1):
        result = core.learn(rng.integers(0, 256, (2, 4, 4)), label, trace=True)
        records += result.trace
        ports = [(r.cycle, r.layer, r.memory) for r in result.trace]
        assert len(ports) == len(set(ports))
        assert result.spikes[1].any() and result.spikes[3].any()
    memories = _replay(records)
    for index in core.spiking():
        layout = core.layout.layers[index]
        for k in range(layout.words):
            word = memories[(index, "V", k)]
            assert word == layout.word_values(result.membranes[index], k)
            for t in range(1, 4):
                base = (t - 1) * layout.words
                assert memories[(index, "S", base + k)] == layout.word_values(result.spikes[index][t - 1], k)
    for index in core.synapses:
        weights, dw = core.weights[index - 1], core.dw[index - 1]
        rows = core.layout.row_words(index)
        for address in range(weights.shape[1] * rows):
            row, word = divmod(address, rows)
            lanes_w = weights[word * lanes : (word + 1) * lanes, row].tolist()
            assert list(memories[(index, "W", address)][: len(lanes_w)]) == lanes_w
            if (index, "DW", address) in memories and core.pending:
                lanes_dw = dw[word * lanes : (word + 1) * lanes, row].tolist()
                assert list(memories[(index, "DW", address)][: len(lanes_dw)]) == lanes_dw
