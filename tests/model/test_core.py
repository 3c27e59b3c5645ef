"""The event-driven core model (model/core.py): bit-exact against the integer model, the
cycle recurrences against hand-computed cases and a cycle-by-cycle queue simulation, the
transaction trace against the core's state."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from model.core import (
    CONTROL_LATENCY,
    DECODE_LATENCY,
    DIVIDER_LATENCY,
    DV_LATENCY,
    DW_EMPTY_WORD_CYCLES,
    DW_LATENCY,
    INTEGRATE_LATENCY,
    READOUT_LATENCY,
    SCAN_LATENCY,
    WALK_LATENCY,
    UPDATE_LATENCY,
    MEMORIES,
    CoreModel,
    event_pass_timing,
    forward_stage_timing,
    read_trace,
    run_samples,
    sweep_timing,
    threshold_update_timing,
    walk_timing,
    write_trace,
)
from model.fixed import ROUNDINGS, fire_scan, signed_range
from model.data import load_dataset, to_u8
from model.integer import Formats, IntegerNetwork, LearningRule, recipe
from model.metrics import spikes_per_layer, synaptic_ops_per_layer
from model.spec import NetworkSpec
from model.synapses import weight_shape
from model.units import SpikeQueueInputs, spike_queue_reset, spike_queue_step

LANES = (1, 2, 3, 4, 8)  # 3 divides none of most drawn layer sizes; 8 often exceeds them


# Random networks -------------------------------------------------------------------------


def _draw_network(
    draw: st.DrawFn, spec: NetworkSpec, formats: Formats, rng: np.random.Generator, *, threshold_top: int,
    shift_top: int,
) -> IntegerNetwork:
    """Random weights (full w-bit range), thresholds, learning rule, fc decoder and LFSR."""
    low, high = signed_range(formats.w)
    weights = [rng.integers(low, high + 1, weight_shape(spec, i)) for i in range(1, spec.num_layers + 1)]
    top = min(formats.threshold_max, draw(st.integers(1, threshold_top)))
    thresholds = [rng.integers(1, top + 1, spec.channels(i)) for i in range(spec.num_layers + 1)]
    rule = LearningRule(
        shift_w=draw(st.integers(0, shift_top)), shift_th=draw(st.integers(0, shift_top)),
        rounding=draw(st.sampled_from(ROUNDINGS)), batch=draw(st.integers(1, 3)),
    )
    decoder = None
    if spec.decoder == "fc":
        decoder = rng.integers(low, high + 1, (spec.classes, spec.timesteps * spec.neurons(spec.num_layers)))
    return IntegerNetwork(
        spec, formats, weights, thresholds, decoder=decoder, rule=rule, lfsr_state=draw(st.integers(1, 2**32 - 1)),
    )


@st.composite
def networks(draw: st.DrawFn, *, learnable: bool = False) -> tuple[IntegerNetwork, np.ndarray, np.ndarray]:
    """A small random FC network (often saturating), u8 pixels and labels."""
    n_in = draw(st.integers(1, 9))
    hidden = draw(st.lists(st.integers(1, 11), min_size=0, max_size=2))
    population = draw(st.integers(1, 3))
    classes = draw(st.integers(1, 3))
    reset = "subtract" if learnable else draw(st.sampled_from(["subtract", "zero"]))
    threshold = draw(st.sampled_from(["trainable", "fixed"])) if reset == "subtract" else "fixed"
    arch = "-".join([f"{n}FC" for n in hidden] + [f"{classes * population}FC"])
    spec = NetworkSpec.parse(
        arch, input_shape=(n_in,), timesteps=draw(st.integers(1, 5)), population=population,
        classes=classes, decoder=draw(st.sampled_from(["last", "rate", "fc"])), reset=reset,
        threshold=threshold,
    )
    w = draw(st.integers(2, 9))
    v = draw(st.integers(w, w + 6))  # narrow membranes saturate often
    g = draw(st.integers(4, 12))
    formats = Formats(
        w=w, fw=draw(st.integers(0, w - 1)), v=v, g=g, gf=draw(st.integers(0, g - 1)),
        dw=draw(st.integers(g, g + 3)), dth=draw(st.integers(g, g + 3)), k=draw(st.integers(8, 14)),
        df=draw(st.integers(0, w + 2)),
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    net = _draw_network(draw, spec, formats, rng, threshold_top=300, shift_top=6)
    samples = draw(st.integers(1, 4))
    pixels = rng.integers(0, 256, (samples, n_in), dtype=np.uint8)
    if draw(st.booleans()):
        pixels[rng.random(pixels.shape) < 0.5] = 0
    return net, pixels, rng.integers(0, classes, samples)


def _clone(net: IntegerNetwork) -> IntegerNetwork:
    return IntegerNetwork(
        net.spec, net.formats, net.weights, net.thresholds, decoder=net.decoder, rule=net.rule,
        lfsr_state=net.lfsr.state,
    )


def _final_membranes(net: IntegerNetwork, pixels: np.ndarray) -> list[np.ndarray]:
    """Membranes of layers 1..L after the last fire scan, from the fast integer model.

    Layer l's are read from the network truncated after layer l (its last layer's
    membrane at t = T before the reset, then the reset).
    """
    spec = net.spec
    out = []
    for index in range(1, spec.num_layers + 1):
        arch = "-".join(layer.notation() for layer in spec.layers[:index])
        sub = NetworkSpec.parse(
            arch, input_shape=spec.input_shape, timesteps=spec.timesteps, reset=spec.reset,
            threshold=spec.threshold, decoder="last",
        )
        truncated = IntegerNetwork(sub, net.formats, net.weights[:index], net.thresholds[: index + 1])
        last = truncated.forward(pixels).last_membrane
        out.append(fire_scan(last, net.thresholds[index], reset=spec.reset)[0])
    return out


# Bit-exactness -----------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(case=networks(), lanes=st.sampled_from(LANES), depth=st.integers(1, 6))
def test_inference_equals_the_fast_integer_model(case, lanes: int, depth: int) -> None:
    _check_inference(case, lanes, depth)


@settings(max_examples=150, deadline=None)
@given(case=networks(learnable=True), lanes=st.sampled_from(LANES), depth=st.integers(1, 6))
def test_learning_equals_the_fast_integer_model(case, lanes: int, depth: int) -> None:
    _check_learning(case, lanes, depth)


@pytest.mark.parametrize("depth", [1, 2])
@settings(max_examples=60, deadline=None)
@given(inferring=networks(), learning=networks(learnable=True), lanes=st.sampled_from(LANES))
def test_smallest_queues_equal_the_fast_integer_model(inferring, learning, lanes: int, depth: int) -> None:
    """Q = 1 and 2 every time (the draws above reach them only by chance)."""
    _check_inference(inferring, lanes, depth)
    _check_learning(learning, lanes, depth)


def _check_inference(case, lanes: int, depth: int, reference: bool = False) -> None:
    net, pixels, _ = case
    core = CoreModel(net, lanes=lanes, queue_depth=depth)
    trace = net.forward(pixels, reference=reference)
    finals = _final_membranes(net, pixels) if net.spec.is_fc_only else []
    predictions = trace.predictions()
    for n, sample in enumerate(pixels):
        result = core.infer(sample)
        assert result.prediction == predictions[n]
        assert np.array_equal(result.counts, trace.counts[n])
        assert np.array_equal(result.last_membrane, trace.last_membrane[n])
        for index in net.spec.spiking_layers():
            assert np.array_equal(result.spikes[index], trace.spikes[index][:, n])
            assert np.array_equal(result.windows[index], trace.windows[index][:, n])
        for index, final in enumerate(finals, start=1):
            assert np.array_equal(result.membranes[index], final[n])


def _check_learning(case, lanes: int, depth: int, reference: bool = False) -> None:
    """Learning on the core and the integer model (fast, or its reference path): the same
    predictions and memories, before and after the flush of a partial batch."""
    net, pixels, labels = case
    core = CoreModel(net, lanes=lanes, queue_depth=depth)
    predictions = [core.learn(sample, int(label)).prediction for sample, label in zip(pixels, labels)]
    integer = _clone(net)
    correct = integer.learn(pixels, labels, reference=reference)
    assert sum(p == y for p, y in zip(predictions, labels)) == correct
    state = core.to_network()
    for mine, theirs in [
        (state.weights, integer.weights), (state.thresholds, integer.thresholds),
        (state.reciprocals, integer.reciprocals), (state.dw, integer.dw), (state.dth, integer.dth),
        ([state.decoder], [integer.decoder]), ([state.dd], [integer.dd]),
    ]:
        assert all(np.array_equal(a, b) for a, b in zip(mine, theirs))
    assert state.pending == integer.pending
    assert state.lfsr.state == integer.lfsr.state
    flushed = core.flush()
    assert (flushed is None) == (integer.pending == 0)
    assert flushed is None or flushed[0].phases["update"].cycles > 0
    integer.flush(reference=reference)
    assert np.array_equal(core.decoder, integer.decoder)
    assert all(np.array_equal(a, b) for a, b in zip(core.weights, integer.weights))
    assert all(np.array_equal(a, b) for a, b in zip(core.thresholds, integer.thresholds))
    assert all(np.array_equal(a, b) for a, b in zip(core.reciprocals, integer.reciprocals))


def test_saturating_integration_follows_event_order() -> None:
    # Events +100, +100, -100 into an 8-bit membrane: ascending order saturates at 127 on
    # the second event and ends at 27 (the reverse order would end at 100).
    spec = NetworkSpec.parse("1FC", input_shape=(3,), timesteps=1, threshold="fixed")
    formats = Formats(w=8, fw=0, v=8)
    weights = [np.array([[100, 100, -100]])]
    net = IntegerNetwork(spec, formats, weights, [np.array([1, 1, 1]), np.array([127])])
    result = CoreModel(net, lanes=1, queue_depth=3).infer(np.array([1, 1, 1]))
    assert result.last_membrane.tolist() == [27]
    assert net.forward(np.array([[1, 1, 1]])).last_membrane[0].tolist() == [27]


# A full queue loses no event ----------------------------------------------------------------


def _peek(state):
    """A queue's outputs this cycle (they depend on its registers only)."""
    return spike_queue_step(state, SpikeQueueInputs(False, 0, False))[0]


def _simulate_stage(word_events: list[int], cost: int, depth: int):
    """Cycle-by-cycle: the scan's words entering the word FIFO (hw.queue.SpikeQueue) when
    written, the pusher taking them in order into the stage's SpikeQueue, a consumer popping
    every ``max(cost, INTEGRATE_LATENCY)`` cycles."""
    words = len(word_events)
    fifo = spike_queue_reset(index_bits=8, depth=max(words, 1))
    queue = spike_queue_reset(index_bits=8, depth=depth)
    retire = [k + 1 + SCAN_LATENCY for k in range(words)]
    pushes, pops, popped_indices = [], [], []
    stalls = high = 0
    pushed_of_word, ready_cycle, free_at = 0, None, 0
    spacing = max(cost, INTEGRATE_LATENCY)
    total = sum(word_events)
    cycle = 0
    while len(pops) < total or cycle <= retire[-1]:
        head, spikes = _peek(fifo), _peek(queue)
        written = [k for k in range(words) if retire[k] == cycle]
        entering = bool(written) and word_events[written[0]] > 0
        if head.pop_valid and ready_cycle is None:
            ready_cycle = cycle  # the head word's first spike is offered
        accept = head.pop_valid and spikes.push_ready
        last = accept and pushed_of_word + 1 == word_events[head.pop_index]
        _, fifo = spike_queue_step(fifo, SpikeQueueInputs(entering, written[0] if entering else 0, last))
        popping = spikes.pop_valid and cycle >= free_at
        out, queue = spike_queue_step(queue, SpikeQueueInputs(accept, len(pushes), popping))
        high = max(high, out.level)
        if popping:
            pops.append(cycle)
            popped_indices.append(out.pop_index)
            free_at = cycle + spacing
        if accept:
            stalls += cycle - ready_cycle
            pushes.append(cycle)
            pushed_of_word, ready_cycle = (0, None) if last else (pushed_of_word + 1, cycle + 1)
        cycle += 1
        assert cycle < 10_000
    return pushes, pops, retire, stalls, high, popped_indices


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.integers(0, 8), min_size=1, max_size=8),
    cost=st.integers(1, 5),
    depth=st.integers(1, 6),
)
@example(words=[8, 0, 3], cost=1, depth=1)
@example(words=[8, 0, 3], cost=1, depth=2)
@example(words=[5, 5], cost=2, depth=1)
@example(words=[5, 5], cost=4, depth=2)
def test_stage_recurrence_matches_the_queue_cycle_by_cycle(words: list[int], cost: int, depth: int) -> None:
    timing = forward_stage_timing(words, cost, depth)
    pushes, pops, retire, stalls, high, indices = _simulate_stage(words, cost, depth)
    assert indices == list(range(sum(words)))  # every event popped once, in order
    assert list(timing.push) == pushes
    assert list(timing.pop) == pops
    assert list(timing.retire) == retire
    assert timing.stall_cycles == stalls
    assert timing.high_water == high
    last = max([retire[-1]] + [s + cost - 1 + INTEGRATE_LATENCY for s in pops])
    assert timing.cycles == last + 1 + CONTROL_LATENCY


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 64])
def test_full_queue_stalls_but_loses_no_event(depth: int) -> None:
    # 40 inputs all firing at every step into 50 neurons: 40 events per step, cost 7 each.
    rng = np.random.default_rng(3)
    spec = NetworkSpec.parse("50FC", input_shape=(40,), timesteps=3, threshold="fixed", population=5)
    net = IntegerNetwork(spec, Formats(), [rng.integers(-3, 4, (50, 40))], [np.full(40, 1), np.full(50, 20)])
    core = CoreModel(net, lanes=8, queue_depth=depth)
    result = core.infer(np.full(40, 255))
    encoder = result.counters.phases["forward"].layers[0]
    assert encoder.spikes == 120
    assert encoder.synaptic_ops == 120 * 50
    assert encoder.words_read["W"] == 120 * 7  # every event integrated exactly once
    if depth < 40:  # the queue fills up and the scan waits
        assert encoder.queue_high_water == depth and encoder.stall_cycles > 0
    else:  # 40 pushes in 40 cycles, 6 popped meanwhile (3, 10, ..., 38)
        assert encoder.queue_high_water == 34 and encoder.stall_cycles == 0
    assert np.array_equal(result.last_membrane, net.forward(np.full((1, 40), 255)).last_membrane[0])


# Cycle formula: hand-computed cases ----------------------------------------------------------


def test_stage_timing_by_hand() -> None:
    # The scan writes word k in k + 4 (SCAN_LATENCY = 3); a word with spikes is offered to
    # the pusher 2 cycles later; events start max(c, INTEGRATE_LATENCY = 4) cycles apart and
    # write their last word c - 1 + 4 cycles after they start; D = X + 1 + CONTROL_LATENCY.
    assert (SCAN_LATENCY, INTEGRATE_LATENCY) == (3, 4)
    # Spikes 2, 0, 1 in three words, c = 3, Q = 4: f = 4, 5, 6; word 0 offered at 6: p = 6, 7,
    # s = 8, 12; word 2 offered at max(8, 7 + 1) = 8: p = 8, s = 16; X = 16 + 2 + 4 = 22.
    timing = forward_stage_timing([2, 0, 1], 3, 4)
    assert timing.retire == (4, 5, 6) and timing.push == (6, 7, 8) and timing.pop == (8, 12, 16)
    assert timing.cycles == 24 and timing.stall_cycles == 0 and timing.high_water == 2
    # Q = 3, 5 spikes, c = 3: s = 8, 12, 16, 20; the 4th push waits for s_1 + 1 = 9 (ready 9),
    # the 5th for s_2 + 1 = 13 (ready 10: 3 stall cycles); s_5 = 24, X = 24 + 2 + 4 = 30.
    timing = forward_stage_timing([5], 3, 3)
    assert timing.push == (6, 7, 8, 9, 13) and timing.pop == (8, 12, 16, 20, 24)
    assert timing.stall_cycles == 3 and timing.high_water == 3 and timing.cycles == 32
    # Q = 1, 3 spikes, c = 1: each push waits for the previous pop: p = 6, max(7, 8+1) = 9,
    # max(10, 12+1) = 13; s = 8, 12, 16; X = 16 + 4 = 20; stalls 2 + 3.
    timing = forward_stage_timing([3], 1, 1)
    assert timing.push == (6, 9, 13) and timing.pop == (8, 12, 16) and timing.retire == (4,)
    assert timing.stall_cycles == 5 and timing.high_water == 1 and timing.cycles == 22
    # Q = 2, same spikes: p = 6, 7, max(8, 8+1) = 9; s = 8, 12, 16; one stall.
    timing = forward_stage_timing([3], 1, 2)
    assert timing.push == (6, 7, 9) and timing.pop == (8, 12, 16)
    assert timing.stall_cycles == 1 and timing.high_water == 2 and timing.cycles == 22
    # Output layer: the scan alone, words written in 4, 5.
    assert forward_stage_timing([3, 0], None, 3).cycles == 7


def test_pass_timing_by_hand() -> None:
    # Words with 0, 2, 0 events of 3 cycles, last write 2 cycles after the retire; word 0
    # in hand at WALK_LATENCY = 3: durations 1, 6, 1 -> f = 3, 9, 10; X = max(10, 9 + 2) = 11;
    # D = X + 2.
    assert WALK_LATENCY == 3
    timing = event_pass_timing([0, 2, 0], 3, 2)
    assert timing.data == (3, 4, 10) and timing.retire == (3, 9, 10) and timing.cycles == 13
    assert list(timing.event_starts(1, 2, 3)) == [4, 7]
    assert event_pass_timing([0] * 5, 1, 0).cycles == 9
    # DW passes: a word without events takes DW_EMPTY_WORD_CYCLES = 2 (durations 2, 6, 2).
    timing = event_pass_timing([0, 2, 0], 3, 2, DW_EMPTY_WORD_CYCLES)
    assert timing.data == (3, 5, 11) and timing.retire == (4, 10, 12) and timing.cycles == 14


def test_update_timing_by_hand() -> None:
    # Weight update of 5 words: data in 1..5, the last write in 5 + UPDATE_LATENCY = 9.
    timing = sweep_timing(5, UPDATE_LATENCY)
    assert UPDATE_LATENCY == 4 and timing.data == (1, 2, 3, 4, 5) and timing.cycles == 11
    # Thresholds, K = 10, words unchanged, changed, unchanged: durations 5, 17, 5;
    # f = 5, 22, 27 (R of word 1 written in 6 + 4 + 10 + 2 = 22); D = 27 + 2.
    timing = threshold_update_timing([False, True, False], 10)
    assert DIVIDER_LATENCY == 2 and timing.data == (1, 6, 23) and timing.retire == (5, 22, 27)
    assert timing.cycles == 29


def _tiny(threshold: str = "trainable") -> IntegerNetwork:
    """1 input -> 1 output neuron, T = 1: the encoder fires (255 >= 128), V1 = 40 >= 32."""
    spec = NetworkSpec.parse("1FC", input_shape=(1,), timesteps=1, threshold=threshold)
    return IntegerNetwork(spec, Formats(), [np.array([[40]])], [np.array([128]), np.array([32])])


def test_inference_cycles_by_hand() -> None:
    result = CoreModel(_tiny(), lanes=1, queue_depth=3).infer(np.array([255]))
    # clear 1; stage 0: word written in 4, offered at 6, pushed 6, popped 8, written 12 -> 13;
    # stage 1: one word written in 4 -> 5; readout 1 class read in 0, compared in 1; each
    # pass one cycle more for the controller's registered done.
    assert result.cycles == {"clear": 2, "forward": 14 + 6, "readout": 3}
    assert result.counters.cycles == 25


def test_learning_cycles_by_hand() -> None:
    result = CoreModel(_tiny(), lanes=1, queue_depth=3).learn(np.array([255]), 0)
    # backward: dV clear 1, output dV 3 + 7 + 1 = 11, dW row 3 + 3 + 1 = 7 (no dVth at T = 1,
    # no encoder dV at t = 1); update: weights 1 word + 4 + 1, thresholds 2 x (5 + 1); every
    # pass one cycle more for the controller's registered done.
    assert DV_LATENCY == 7
    assert result.cycles == {"clear": 2, "forward": 20, "readout": 3, "backward": 22, "update": 21}


def test_changed_threshold_waits_for_the_divider() -> None:
    # Output neuron 0 fires at t = 1, 2 inside the window; label 1 gives it e = +1, so
    # dVth_0 = -dV[2] S[1] = -(2^14 * 32 >> 10) = -512 and Vth_0 becomes 544.
    spec = NetworkSpec.parse("2FC", input_shape=(1,), timesteps=2)
    net = IntegerNetwork(
        spec, Formats(fw=6, k=10), [np.array([[36], [0]])], [np.array([128]), np.array([32, 32])],
        rule=LearningRule(shift_w=0, shift_th=0, rounding="floor"),
    )
    core = CoreModel(net, lanes=1, queue_depth=3)
    update = core.learn(np.array([255]), 1).counters.phases["update"]
    assert core.thresholds[1].tolist() == [544, 32]
    assert core.reciprocals[1].tolist() == [1024 // 544, 32]
    # weights: 2 words + 4 + 1; thresholds: word 0 changed (5 + K + 2 = 17), word 1 not (5),
    # + 1; each pass + 1 (registered done)
    assert update.layers[1].reciprocals == 1
    assert update.layers[1].cycles == 8 + 17 + 5 + 2
    assert update.layers[0].cycles == 7 and update.layers[0].reciprocals == 0


def test_digits_network_within_ten_percent_of_the_ideal_bound_at_every_lane_count() -> None:
    # The 128FC-100FC digits network (population 10, T = 8): the pipelined schedule against
    # the ideal bound (every spike's row and every scan, nothing overlapped) at P = 1..16.
    data = load_dataset("digits")
    spec = NetworkSpec.parse("128FC-100FC", input_shape=data.input_shape, timesteps=8, population=10)
    net = IntegerNetwork.scratch(spec, recipe("digits", "scratch").formats, seed=0)
    pixels = to_u8(data.test_x[:8])
    for lanes in range(1, 17):
        core = CoreModel(net, lanes=lanes, queue_depth=4)
        results = [core.infer(sample) for sample in pixels]
        cycles = sum(result.counters.cycles for result in results)
        ideal = sum(core.ideal_cycles(result.spikes) for result in results)
        assert sum(int(s.sum()) for s in results[0].spikes) > 100  # the network is active
        assert cycles <= 1.10 * ideal, (lanes, cycles / ideal)


# Counters -----------------------------------------------------------------------------------


def test_counters_agree_with_the_shared_metrics() -> None:
    spec = NetworkSpec.parse("12FC-6FC", input_shape=(10,), timesteps=4, population=2)
    net = IntegerNetwork.scratch(spec, Formats(fw=6), seed=4)
    pixels = np.random.default_rng(5).integers(0, 256, (6, 10), dtype=np.uint8)
    core = CoreModel(net, lanes=4, queue_depth=3)
    totals, results = run_samples(core, pixels)
    counts = [sum(r.spikes[i].sum(axis=0) for r in results) for i in range(3)]
    forward = totals.phases["forward"].layers
    assert [layer.spikes / 6 for layer in forward] == spikes_per_layer(spec, counts, 6)
    assert [layer.synaptic_ops / 6 for layer in forward] == synaptic_ops_per_layer(spec, counts, 6)
    assert [layer.neuron_updates for layer in forward] == [6 * 4 * n for n in (10, 12, 6)]
    assert totals.cycles == sum(r.counters.cycles for r in results)
    assert totals.phases["forward"].cycles == sum(layer.cycles for layer in forward)
    ideal = core.ideal_cycles(results[0].spikes)
    assert ideal == 4 * (3 + 3 + 2) + int(results[0].spikes[0].sum()) * 3 + int(results[0].spikes[1].sum()) * 2


# Trace --------------------------------------------------------------------------------------


def _replay(records, memories: dict) -> None:
    """Apply each record's enabled lanes to shadow memories ``{(layer, memory): words}``."""
    for record in records:
        words = memories.setdefault((record.layer, record.memory), {})
        word = list(words.get(record.address, [0] * len(record.data)))
        for lane, value in enumerate(record.data):
            if record.mask >> lane & 1:
                word[lane] = value
        words[record.address] = word


def _lanes(memories: dict, layer: int, memory: str, address: int, count: int, lanes: int) -> list[int]:
    words = memories[(layer, memory)]
    flat = [x for a in range(address, address + -(-count // lanes)) for x in words[a]]
    return flat[:count]


def test_trace_replays_to_the_core_state(tmp_path) -> None:
    spec = NetworkSpec.parse("7FC-6FC", input_shape=(5,), timesteps=3, population=2)
    net = IntegerNetwork.scratch(spec, Formats(fw=6), seed=8, rule=LearningRule(shift_w=2, shift_th=2, batch=2))
    lanes = 3
    core = CoreModel(net, lanes=lanes, queue_depth=3)
    rng = np.random.default_rng(9)
    records = []
    for label in (1, 2):
        result = core.learn(rng.integers(0, 256, 5), label, trace=True)
        records += result.trace
        # one write port per memory: never two writes of one memory in one cycle
        ports = [(r.cycle, r.layer, r.memory) for r in result.trace]
        assert len(ports) == len(set(ports))
        assert [r.sort_key() for r in result.trace] == sorted(r.sort_key() for r in result.trace)
        spans, start = {}, 0
        for phase, cycles in result.cycles.items():
            spans[phase] = (start, start + cycles)
            start += cycles
        assert all(spans[r.phase][0] <= r.cycle < spans[r.phase][1] for r in result.trace)
        assert all(r.mask & ~((1 << lanes) - 1) == 0 and r.memory in MEMORIES for r in result.trace)
    memories: dict = {}
    _replay(records, memories)
    sizes = core.sizes
    for index in range(3):
        assert _lanes(memories, index, "V", 0, sizes[index], lanes) == result.membranes[index].tolist()
        assert _lanes(memories, index, "VTH", 0, sizes[index], lanes) == core.thresholds[index].tolist()
        words = core.words[index]
        for t in range(1, 4):
            got = _lanes(memories, index, "S", (t - 1) * words, sizes[index], lanes)
            assert got == result.spikes[index][t - 1].astype(int).tolist()
            got = _lanes(memories, index, "H", (t - 1) * words, sizes[index], lanes)
            assert got == result.windows[index][t - 1].astype(int).tolist()
    for index in (1, 2):
        fanout = core.words[index]
        for i in range(sizes[index - 1]):
            row = _lanes(memories, index, "W", i * fanout, sizes[index], lanes)
            assert row == core.weights[index - 1][:, i].tolist()
    path = tmp_path / "trace.jsonl"
    assert write_trace(records, path) == len(records)
    assert read_trace(path) == records


def test_fc_decoder_trace_and_readout_cycles() -> None:
    # C = 3 classes over P = 2 lanes: decoder rows of 2 words, the second with one class.
    spec = NetworkSpec.parse("7FC-6FC", input_shape=(5,), timesteps=3, population=2, classes=3, decoder="fc")
    net = IntegerNetwork.scratch(spec, Formats(fw=6), seed=4, rule=LearningRule(shift_w=9, shift_th=9, batch=2))
    lanes = 2
    core = CoreModel(net, lanes=lanes, queue_depth=3)
    pixels = np.random.default_rng(5).integers(0, 256, (2, 5))
    memories: dict = {}
    for n, label in enumerate((1, 2)):
        result = core.learn(pixels[n], label, trace=True)
        _replay(result.trace, memories)
        ports = [(r.cycle, r.layer, r.memory) for r in result.trace]
        assert len(ports) == len(set(ports))
        out = result.spikes[-1]
        expected = sum(event_pass_timing(core.layout.layers[-1].word_counts(out[t]), 2, DECODE_LATENCY).cycles for t in range(3))
        assert result.cycles["readout"] == expected + 3 + READOUT_LATENCY + CONTROL_LATENCY
        assert result.counts.tolist() == _decoded(net, out).tolist()  # D changes after sample 2
        if n == 0:  # pending: the DD rows written so far hold the accumulators
            rows = memories[(2, "DD")]
            for row in range(3 * 6):
                got = _lanes(memories, 2, "DD", row * 2, 3, lanes) if row * 2 in rows else [0, 0, 0]
                assert got == core.dd[:, row].tolist()
    assert not core.dd.any() and not np.array_equal(core.decoder, net.decoder)
    for row in range(3 * 6):
        assert _lanes(memories, 2, "D", row * 2, 3, lanes) == core.decoder[:, row].tolist()
        assert _lanes(memories, 2, "DD", row * 2, 3, lanes) == [0, 0, 0]
    assert all(r.mask in (1, 3) for r in result.trace if r.memory in ("D", "DD") and r.address % 2 == 0)
    assert all(r.mask == 1 for r in result.trace if r.memory in ("D", "DD") and r.address % 2 == 1)


def _decoded(net: IntegerNetwork, spikes: np.ndarray) -> np.ndarray:
    """The fc decoder's sums of one sample's output spikes (T, n_L), by its definition."""
    return (net.decoder * spikes.reshape(-1)[None, :]).sum(axis=1)


def test_trace_dw_rows_hold_the_pending_gradients() -> None:
    spec = NetworkSpec.parse("4FC-3FC", input_shape=(6,), timesteps=4, population=1)
    rng = np.random.default_rng(9)
    weights = [rng.integers(-40, 41, (4, 6)), rng.integers(-40, 41, (3, 4))]
    thresholds = [np.full(6, 128), np.full(4, 32), np.full(3, 32)]
    net = IntegerNetwork(spec, Formats(fw=6), weights, thresholds, rule=LearningRule(batch=5))
    core = CoreModel(net, lanes=2, queue_depth=3)
    memories: dict = {}
    pixels = np.random.default_rng(1).integers(0, 256, (3, 6))
    for label, sample in enumerate(pixels):
        _replay(core.learn(sample, label, trace=True).trace, memories)
    assert core.pending == 3 and all(a.any() for a in core.dw) and all(a.any() for a in core.dth)
    for index in (1, 2):
        fanout = core.words[index]
        for i in range(core.sizes[index - 1]):
            if (index, "DW") in memories and i * fanout in memories[(index, "DW")]:
                row = _lanes(memories, index, "DW", i * fanout, core.sizes[index], 2)
            else:
                row = [0] * core.sizes[index]  # never written: no spike of neuron i yet
            assert row == core.dw[index - 1][:, i].tolist()
        dth = memories.get((index, "DVTH"), {})
        got = [x for k in range(core.words[index]) for x in dth.get(k, [0, 0])][: core.sizes[index]]
        assert got == core.dth[index].tolist()


# Bad input ----------------------------------------------------------------------------------


def test_bad_parameters_are_rejected() -> None:
    net = _tiny()
    with pytest.raises(ValueError, match="lanes"):
        CoreModel(net, lanes=0, queue_depth=4)
    with pytest.raises(ValueError, match=r"queue_depth: 0 is out of range \(allowed 1 or more\)"):
        CoreModel(net, lanes=1, queue_depth=0)
    with pytest.raises(ValueError, match=r"depth: 0 is out of range \(allowed 1 or more\)"):
        forward_stage_timing([1], 1, 0)
    assert CoreModel(net, lanes=1, queue_depth=1).queue_depth == 1
    with pytest.raises(ValueError, match="network"):
        CoreModel(object(), lanes=1, queue_depth=4)
    core = CoreModel(net, lanes=1, queue_depth=4)
    with pytest.raises(ValueError, match="pixels"):
        core.infer(np.array([256]))
    with pytest.raises(ValueError, match="label"):
        core.learn(np.array([1]), 3)
    spec = NetworkSpec.parse("1FC", input_shape=(1,), timesteps=1, reset="zero", threshold="fixed")
    baseline = IntegerNetwork(spec, Formats(), [np.array([[40]])], [np.array([128]), np.array([32])])
    with pytest.raises(ValueError, match="reset 'subtract'"):
        CoreModel(baseline, lanes=1, queue_depth=4).learn(np.array([1]), 0)


# Conv and AP2 layers -------------------------------------------------------------------


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
    net = _draw_network(draw, spec, formats, rng, threshold_top=200, shift_top=5)
    samples = draw(st.integers(1, 3))
    pixels = rng.integers(0, 256, (samples, *shape), dtype=np.uint8)
    zeros = draw(st.sampled_from(["none", "some", "all"]))
    if zeros != "none":
        pixels[rng.random(pixels.shape) < (0.5 if zeros == "some" else 1.0)] = 0
    return net, pixels, rng.integers(0, classes, samples)


@settings(max_examples=120, deadline=None)
@given(case=conv_networks(), lanes=st.sampled_from(LANES), depth=st.integers(1, 5), reference=st.booleans())
def test_conv_inference_equals_the_integer_model(case, lanes: int, depth: int, reference: bool) -> None:
    _check_inference(case, lanes, depth, reference)


@settings(max_examples=120, deadline=None)
@given(case=conv_networks(learnable=True), lanes=st.sampled_from(LANES), depth=st.integers(1, 5), reference=st.booleans())
def test_conv_learning_equals_the_integer_model(case, lanes: int, depth: int, reference: bool) -> None:
    _check_learning(case, lanes, depth, reference)


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
    memories: dict = {}
    _replay(records, memories)
    for index in core.spiking():
        layout = core.layout.layers[index]
        for k in range(layout.words):
            assert tuple(memories[(index, "V")][k]) == layout.word_values(result.membranes[index], k)
            for t in range(1, 4):
                base = (t - 1) * layout.words
                assert tuple(memories[(index, "S")][base + k]) == layout.word_values(result.spikes[index][t - 1], k)
    for index in core.synapses:
        weights, dw = core.weights[index - 1], core.dw[index - 1]
        rows = core.layout.row_words(index)
        for address in range(weights.shape[1] * rows):
            row, word = divmod(address, rows)
            lanes_w = weights[word * lanes : (word + 1) * lanes, row].tolist()
            assert memories[(index, "W")][address][: len(lanes_w)] == lanes_w
            if core.pending:
                lanes_dw = dw[word * lanes : (word + 1) * lanes, row].tolist()
                assert memories[(index, "DW")][address][: len(lanes_dw)] == lanes_dw


# Cycles by hand (docs/architecture.md section 5.6) -------------------------------------


def _tiny_conv(arch: str, shape: tuple[int, int, int], pixels: list[int]) -> tuple[CoreModel, np.ndarray]:
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
    core, image = _tiny_conv("1C3-1FC", (1, 1, 2), [255, 255])
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
    core, image = _tiny_conv("1C3-AP2-1FC", (2, 2, 2), [0, 0, 0, 255, 255, 0, 0, 0])
    result = core.infer(image)
    forward = result.counters.phases["forward"].layers
    assert [layer.cycles for layer in forward] == [24, 26, 0, 6]
    assert result.cycles == {"clear": 5, "forward": 56, "readout": 3}
    assert result.spikes[1].sum() == 4
