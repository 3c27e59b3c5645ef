"""Properties of the unit step functions (model/units.py), independent of the RTL."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.fixed import reciprocal
from model.units import (
    ReciprocalDividerInputs,
    SpikeQueueInputs,
    reciprocal_divider_reset,
    reciprocal_divider_result,
    reciprocal_divider_step,
    spike_queue_reset,
    spike_queue_step,
)

queue_cycles = st.lists(
    st.tuples(st.booleans(), st.integers(0, 15), st.booleans(), st.booleans()), max_size=120
)


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(3, 6), cycles=queue_cycles)
def test_spike_queue_is_a_lossless_fifo(depth: int, cycles: list) -> None:
    state = spike_queue_reset(index_bits=4, depth=depth)
    pushed: list[int] = []
    popped: list[int] = []
    peak = 0
    for push_valid, index, pop_ready, clear in cycles:
        inputs = SpikeQueueInputs(push_valid, index, pop_ready, clear)
        out, state = spike_queue_step(state, inputs)
        assert out.push_ready == (not out.full)
        assert out.level == len(pushed) - len(popped)
        assert 0 <= out.level <= depth
        assert out.high_water == peak
        peak = out.level if clear else max(peak, out.level)
        if push_valid and out.push_ready:
            pushed.append(index)
        if pop_ready and out.pop_valid:
            popped.append(out.pop_index)
    assert popped == pushed[: len(popped)]


def test_spike_queue_latency_and_capacity() -> None:
    state = spike_queue_reset(index_bits=4, depth=3)
    valid = []
    for cycle in range(6):  # push 7, 8, 9, 10 ... with the consumer stalled
        inputs = SpikeQueueInputs(push_valid=True, push_index=7 + cycle)
        out, state = spike_queue_step(state, inputs)
        valid.append((out.pop_valid, out.level, out.push_ready))
    assert valid == [
        (False, 0, True), (False, 1, True), (True, 2, True),
        (True, 3, False), (True, 3, False), (True, 3, False),
    ]
    out, state = spike_queue_step(state, SpikeQueueInputs(pop_ready=True))
    assert out.pop_index == 7


def test_spike_queue_rejects_an_index_wider_than_the_port() -> None:
    state = spike_queue_reset(index_bits=3, depth=4)
    with pytest.raises(ValueError, match=r"push_index: 8 is out of range \(allowed 0..7\)"):
        spike_queue_step(state, SpikeQueueInputs(push_valid=True, push_index=8))


@settings(max_examples=60, deadline=None)
@given(
    bits_k=st.tuples(st.integers(2, 16), st.integers(1, 30)),
    operands=st.lists(st.integers(0, 1 << 16), min_size=1, max_size=5),
    ready=st.lists(st.booleans(), min_size=1, max_size=7),
)
def test_divider_results_and_fixed_latency(bits_k: tuple, operands: list, ready: list) -> None:
    bits, k = bits_k
    operands = [value % (1 << bits) for value in operands]
    state = reciprocal_divider_reset(threshold_bits=bits, k=k)
    queue = list(operands)
    delivered: list[tuple[int, int]] = []
    accepted: list[int] = []
    first_valid: int | None = None
    for cycle in range(len(operands) * (k + 3 + len(ready)) + 4):
        inputs = ReciprocalDividerInputs(
            bool(queue), queue[0] if queue else 0, ready[cycle % len(ready)]
        )
        out, state = reciprocal_divider_step(state, inputs)
        assert out.vth_ready + out.busy + out.result_valid == 1  # idle, dividing or holding
        if inputs.vth_valid and out.vth_ready:
            accepted.append(cycle)
            queue.pop(0)
        if out.result_valid and first_valid is None:
            first_valid = cycle
            assert cycle - accepted[len(delivered)] == k + 2
        if out.result_valid and inputs.result_ready:
            delivered.append(out.result)
            first_valid = None
    expected = [(1 << (k + 1)) - 1 if v == 0 else reciprocal(v, k) for v in operands]
    assert delivered == (expected if any(ready) else [])
    assert all(reciprocal_divider_result(v, k) == e for v, e in zip(operands, expected))


def test_divider_rejects_a_threshold_wider_than_the_port() -> None:
    state = reciprocal_divider_reset(threshold_bits=4, k=8)
    with pytest.raises(ValueError, match=r"vth: 16 is out of range \(allowed 0..15\)"):
        reciprocal_divider_step(state, ReciprocalDividerInputs(vth_valid=True, vth=16))
