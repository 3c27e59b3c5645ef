"""The core model on conv and AP2 networks (model/core.py, model/core_layout.py): bit-exact
against the integer model's fast and reference paths, the trace against the core's state,
the cycle formula against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.core import DW_LATENCY, CoreModel, walk_timing
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


# Cycles by hand (docs/architecture.md section 5.6) -------------------------------------


def _tiny(arch: str, shape: tuple[int, int, int], pixels: list[int]) -> tuple[CoreModel, np.ndarray]:
    """``arch`` with every weight 40 and every threshold 64 (encoder 128), T = 1."""
    spec = NetworkSpec.parse(arch, input_shape=shape, timesteps=1, population=1, classes=1, threshold="fixed")
    weights = [np.full(weight_shape(spec, i), 40) for i in range(1, spec.num_layers + 1)]
    thresholds = [np.full(spec.channels(i), 128 if i == 0 else 64) for i in range(spec.num_layers + 1)]
    net = IntegerNetwork(spec, Formats(), weights, thresholds, rule=LearningRule(batch=1))
    return CoreModel(net, lanes=1 if shape[0] == 1 else 2, queue_depth=3), np.array(pixels, np.uint8).reshape(shape)


def test_conv_cycles_by_hand() -> None:
    """1C3-1FC on a 1x1x2 image, P = 1, both pixels 255 (section 5.6, first example).

    Stage 0: encoder words written in 4, 5; events offered in 6, 7, pushed then. Each event
    has two taps, V words [1, 0]: event 1 reads 8, 9 (writes 12, 13); event 2 could start
    in 10 but its word 1 is written in 12 (transparent read: 12), word 0 in 13: writes 16, 17;
    X = 17, D = 19. Stage 1: conv words written in 4, 5, both fire; FC events read word 0 in
    8 and (after the write) 12: X = 16, D = 18. Output stage 6, clear max(2, 2, 1) + 1 = 3,
    readout 3: 49 cycles.

    Learning (label 0; output and conv neurons at V = 80, Vth = 64: fire, h = 1): clear DV 3;
    DV(2) one event of cost 1 at 3, written 10: 12; DW(2) two rows at 3, 4, written by 7: 9;
    DV(1) two events of cost 1 (their FC row) at 3, 4, written by 11: 13; DW(1): event 1
    reads kernel rows 3, 4 in 3, 4 (written 6, 7); event 2 (word 1, from 5) reads rows 4, 5:
    row 4 waits for its write (7) and a cycle (no transparent DW port): 8, 9, the last write in
    12: 14. Backward 51; update 9 + 2 rows: 15 + 8 = 23: 123 cycles.
    """
    core, image = _tiny("1C3-1FC", (1, 1, 2), [255, 255])
    result = core.infer(image)
    forward = result.counters.phases["forward"].layers
    assert [layer.cycles for layer in forward] == [19, 18, 6]
    assert result.cycles == {"clear": 3, "forward": 43, "readout": 3}
    assert core.ideal_cycles(result.spikes) == 5 + 2 * 2 + 2 * 1
    learned = core.learn(image, 0)
    assert learned.cycles == {"clear": 3, "forward": 43, "readout": 3, "backward": 51, "update": 23}
    backward = learned.counters.phases["backward"].layers
    assert [layer.cycles for layer in backward] == [0, 13 + 14, 12 + 9]
    timing = walk_timing([1, 1], [np.array([3, 4]), np.array([4, 5])], DW_LATENCY, 2, DW_LATENCY + 1)
    assert timing.reads[1].tolist() == [8, 9] and timing.cycles == 14


def test_conv_pool_cycles_by_hand() -> None:
    """1C3-AP2-1FC on a 2x2x2 image, P = 2 (one word per position, both channels), pixels
    (c=1, pos 0) and (c=0, pos 3) at 255.

    Stage 0: encoder words written in 4..7. Events ascending neuron index: neuron 3 (lane 0,
    word 3) offered in 7 + 2 = 9; neuron 4 (lane 1, word 0) waits for its block's last word
    (7): offered 9, pushed 10. Event 1 (c 0, (1, 1)): taps (1,1), (1,2), (2,1), (2,2), V words
    3, 2, 1, 0 read in 11..14, written 15..18; event 2 (c 1, (0, 0)) reads words 3..0 from
    max(12, 15, written[3] = 15) = 15: 15..18, written 19..22: X = 22, D = 24. Stage 1: the
    four conv neurons fire (80 >= 64), all pooled into FC row 0: offered 6, 7, 8, 9, popped
    8, 12, 16, 20 (word 0 rewritten each time): X = 24, D = 26. Output 6, clear 4 + 1 = 5,
    readout 3: 64 cycles.
    """
    core, image = _tiny("1C3-AP2-1FC", (2, 2, 2), [0, 0, 0, 255, 255, 0, 0, 0])
    result = core.infer(image)
    forward = result.counters.phases["forward"].layers
    assert [layer.cycles for layer in forward] == [24, 26, 0, 6]
    assert result.cycles == {"clear": 5, "forward": 56, "readout": 3}
    assert result.spikes[1].sum() == 4
