"""Properties of the unit step functions (model/units.py), independent of the RTL."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model import units
from model.fixed import LFSR, ROUNDINGS, reciprocal, round_shift, saturate
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
@given(depth=st.integers(1, 6), cycles=queue_cycles)
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


@pytest.mark.parametrize("depth", [1, 2])
def test_small_spike_queues_keep_latency_two(depth: int) -> None:
    """Q = 1, 2: latency 2 and push.ready = ~full as at every depth; a full queue takes a
    push again in the cycle after a pop, never in the pop's own cycle."""
    state = spike_queue_reset(index_bits=4, depth=depth)
    seen = []
    for cycle in range(5):  # push 0, 1, 2, ... with the consumer stalled
        out, state = spike_queue_step(state, SpikeQueueInputs(push_valid=True, push_index=cycle))
        seen.append((out.pop_valid, out.level, out.push_ready))
    filled = [(False, 0, True), (False, 1, depth > 1)] + [(True, depth, False)] * 3
    assert seen == filled
    out, state = spike_queue_step(state, SpikeQueueInputs(push_valid=True, push_index=9, pop_ready=True))
    assert out.pop_valid and out.pop_index == 0 and not out.push_ready  # full: the push waits
    popped = [out.pop_index]
    out, state = spike_queue_step(state, SpikeQueueInputs(push_valid=True, push_index=9))
    assert out.push_ready and out.level == depth - 1
    while state.stored or state.out_valid:
        out, state = spike_queue_step(state, SpikeQueueInputs(pop_ready=True))
        if out.pop_valid:
            popped.append(out.pop_index)
    assert popped == [0, *range(1, depth), 9]


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
    bits_k=st.tuples(st.integers(1, 16), st.integers(1, 30)),
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


# Learning-datapath units ----------------------------------------------------------------------


def _clamp(value: int, bits: int) -> int:
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, value))


def signed_values(bits: int) -> st.SearchStrategy[int]:
    return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def test_rounding_codes_follow_the_contract_order() -> None:
    assert [mode.name.lower() for mode in units.Rounding] == list(ROUNDINGS)
    assert [op.value for op in units.NeuronOp] == [0, 1, 2, 3]


@settings(max_examples=80, deadline=None)
@given(data=st.data(), w=st.integers(2, 16), extra=st.integers(0, 16), zero=st.booleans())
def test_neuron_lane_result_follows_the_contract(data: st.DataObject, w: int, extra: int, zero: bool) -> None:
    params = units.neuron_lane_params(w=w, v=min(w + extra, 32))
    v = data.draw(signed_values(params.v))
    x = data.draw(signed_values(params.operand_bits))
    vth = data.draw(st.integers(1, (1 << params.threshold_bits) - 1))
    op = data.draw(st.sampled_from(units.NeuronOp))
    result = units.neuron_lane_result(params, op, v, x, vth, zero)
    integrated = _clamp(v + x, params.v) if op & units.NeuronOp.INTEGRATE else v
    fire = bool(op & units.NeuronOp.FIRE)
    spike = fire and integrated >= vth
    assert result.integrated == integrated
    assert result.spike == spike
    assert result.window == (fire and 2 * abs(integrated - vth) < vth)
    assert result.v == ((0 if zero else integrated - vth) if spike else integrated)


@pytest.mark.parametrize("vth", [2, 3, 8, 9, 100, 101])
def test_neuron_window_edges(vth: int) -> None:
    """|V - Vth| = Vth/2 is outside the window (even Vth); (Vth - 1)/2 inside (odd Vth)."""
    params = units.neuron_lane_params(w=8, v=16)
    window = {
        d: units.neuron_lane_result(params, units.NeuronOp.FIRE, vth + d, 0, vth).window
        for d in range(-vth, vth + 1)
    }
    inside = {d for d, h in window.items() if h}
    half = (vth - 1) // 2
    assert inside == set(range(-half, half + 1))


@settings(max_examples=80, deadline=None)
@given(data=st.data(), g=st.integers(4, 32), w=st.integers(2, 16), fan_log=st.integers(0, 10),
       k=st.integers(8, 30))
def test_dv_unit_result_is_the_eq15_mux(data: st.DataObject, g: int, w: int, fan_log: int, k: int) -> None:
    shift = data.draw(st.integers(max(0, k + g + w + fan_log - 60), k))
    params = units.dv_unit_params(g=g, w=w, fan_out=1 << fan_log, k=k, shift=shift)
    acc = data.draw(signed_values(params.acc_bits))
    r = data.draw(st.integers(0, (1 << (k + 1)) - 1))
    dv_next = data.draw(signed_values(g))
    window = data.draw(st.booleans())
    result = units.dv_unit_result(params, acc, r, window, dv_next)
    assert result.dv == (_clamp((acc * r) >> shift, g) if window else dv_next)


def test_dv_unit_rejects_values_outside_the_ports() -> None:
    params = units.dv_unit_params(g=8, w=4, fan_out=4, k=10, shift=10)
    with pytest.raises(ValueError, match=r"acc: 8192 is out of range \(allowed -8192..8191\)"):
        units.dv_unit_result(params, 1 << 13, 1, True, 0)
    with pytest.raises(ValueError, match=r"r: 2048 is out of range \(allowed 0..2047\)"):
        units.dv_unit_result(params, 0, 2048, True, 0)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), lanes=st.integers(1, 5), g=st.integers(4, 12), w=st.integers(2, 8),
       fan_out=st.integers(1, 20))
def test_dot_product_lane_sums_groups_exactly(
    data: st.DataObject, lanes: int, g: int, w: int, fan_out: int
) -> None:
    """Sums of up to ceil(fan_out / P) words (padding lanes zero) at any extreme, in order,
    each offered DOT_PRODUCT_LANE_LATENCY cycles after its last word."""
    params = units.dot_product_lane_params(lanes=lanes, g=g, w=w, fan_out=fan_out)
    state = units.dot_product_lane_reset(lanes=lanes, g=g, w=w, fan_out=fan_out)
    extreme = st.sampled_from([-(1 << (w - 1)), (1 << (w - 1)) - 1])
    sums, delivered = [], []
    for _ in range(data.draw(st.integers(1, 4))):
        words = data.draw(st.integers(1, params.words))
        total = 0
        for n in range(words):
            weights = tuple(
                data.draw(st.one_of(extreme, signed_values(w))) if n * lanes + j < fan_out else 0
                for j in range(lanes)
            )
            grads = tuple(data.draw(signed_values(g)) for _ in range(lanes))
            total += sum(a * b for a, b in zip(weights, grads))
            inputs = units.DotProductLaneInputs(True, weights, grads, n == words - 1, True)
            out, state = units.dot_product_lane_step(state, inputs)
            assert out.operand_ready
            if out.result_valid:
                delivered.append(out.sum)
        sums.append(total)
    for _ in range(units.DOT_PRODUCT_LANE_LATENCY):  # drain the pipeline
        out, state = units.dot_product_lane_step(state, units.DotProductLaneInputs(result_ready=True))
        if out.result_valid:
            delivered.append(out.sum)
    assert delivered == sums
    assert all(-(1 << (params.acc_bits - 1)) <= s < 1 << (params.acc_bits - 1) for s in sums)


def test_dot_product_lane_rejects_a_sum_beyond_its_fan_out() -> None:
    state = units.dot_product_lane_reset(lanes=2, g=4, w=2, fan_out=2)  # acc: 7 bits
    word = units.DotProductLaneInputs(True, (-2, -2), (-8, -8), False, True)
    out, state = units.dot_product_lane_step(state, word)  # fan_out products of 16: 32
    assert state.acc == 32
    with pytest.raises(ValueError, match=r"sum: 64 is out of range \(allowed -64..63\)"):
        units.dot_product_lane_step(state, word)  # a second word exceeds the fan-out


@settings(max_examples=80, deadline=None)
@given(data=st.data(), lanes=st.integers(1, 6), g=st.integers(4, 16), extra=st.tuples(
    st.integers(0, 16), st.integers(0, 16)))
def test_gradient_accumulator_saturates_enabled_lanes(
    data: st.DataObject, lanes: int, g: int, extra: tuple[int, int]
) -> None:
    dw, dth = g + extra[0], g + extra[1]
    params = units.gradient_accumulator_params(lanes=lanes, g=g, dw=dw, dth=dth)
    op = data.draw(st.sampled_from(units.AccumulateOp))
    mask = data.draw(st.integers(0, (1 << lanes) - 1))
    acc = tuple(data.draw(signed_values(max(dw, dth))) for _ in range(lanes))
    dv = tuple(data.draw(signed_values(g)) for _ in range(lanes))
    result = units.gradient_accumulator_result(params, op, mask, acc, dv)
    for j in range(lanes):
        if not mask >> j & 1:
            expected = acc[j]
        elif op == units.AccumulateOp.DW:
            expected = _clamp(acc[j] + dv[j], dw)
        else:
            expected = _clamp(acc[j] - dv[j], dth)
        assert result.acc[j] == expected
    assert result.mask == mask


@settings(max_examples=80, deadline=None)
@given(data=st.data(), lanes=st.integers(1, 6), w=st.integers(2, 16), v_extra=st.integers(0, 8),
       dw=st.integers(4, 48), seed=st.integers(1, (1 << 32) - 1))
def test_update_unit_result_follows_the_contract(
    data: st.DataObject, lanes: int, w: int, v_extra: int, dw: int, seed: int
) -> None:
    params = units.update_unit_params(lanes=lanes, w=w, v=min(w + v_extra, 32), dw=dw, dth=dw)
    op = data.draw(st.sampled_from(units.UpdateOp))
    mode = data.draw(st.sampled_from(units.Rounding))
    shift = data.draw(st.integers(0, 31))
    mask = data.draw(st.integers(0, (1 << lanes) - 1))
    value = tuple(data.draw(signed_values(params.v)) for _ in range(lanes))
    grad = tuple(data.draw(signed_values(dw)) for _ in range(lanes))
    draws, after = units.update_unit_draws(params, seed, mode, mask)
    result = units.update_unit_result(params, op, mode, shift, mask, value, grad, draws)
    lfsr = LFSR(seed)
    for j in range(lanes):
        if not mask >> j & 1:
            assert result.value[j] == value[j] and not result.changed >> j & 1
            continue
        if mode == units.Rounding.FLOOR:
            add = 0
        elif mode == units.Rounding.NEAREST:
            add = (1 << shift) >> 1
        else:
            add = lfsr.step() & ((1 << shift) - 1)
        updated = value[j] - ((grad[j] + add) >> shift)
        if op == units.UpdateOp.WEIGHT:
            updated = _clamp(updated, w)
        else:
            updated = max(1, min(params.threshold_max, updated))
        assert result.value[j] == updated
        assert bool(result.changed >> j & 1) == (updated != value[j])
    assert after == lfsr.state  # one step per enabled lane, stochastic mode only


def test_update_unit_draws_follow_the_core_order() -> None:
    """Words of P lanes over the rows of W^T (padding lanes disabled) consume the LFSR exactly
    like the integer model's update: one draw per weight, rows ascending, columns ascending."""
    rng = np.random.default_rng(5)
    n_in, n_out, lanes, shift, seed = 5, 7, 3, 4, 12345
    params = units.update_unit_params(lanes=lanes, w=8, v=16, dw=24, dth=24)
    weights = rng.integers(-128, 128, size=(n_out, n_in))
    grads = rng.integers(-(1 << 12), 1 << 12, size=(n_out, n_in))
    draws = LFSR(seed).states(n_in * n_out).reshape(n_in, n_out)
    expected = saturate(weights.T - round_shift(grads.T, shift, "stochastic", draws), 8)
    state = units.update_unit_reset(lanes=lanes, w=8, v=16, dw=24, dth=24)
    state = units.update_unit_step(state, units.UpdateUnitInputs(lfsr_load=True, lfsr_seed=seed))[1]
    rows = []
    for i in range(n_in):  # memory row i, words of P lanes
        row: list[int] = []
        for start in range(0, n_out, lanes):
            live = min(lanes, n_out - start)
            pad = [0] * (lanes - live)
            inputs = units.UpdateUnitInputs(
                True, units.UpdateOp.WEIGHT, units.Rounding.STOCHASTIC, shift, (1 << live) - 1,
                tuple(int(x) for x in weights[start:start + live, i]) + tuple(pad),
                tuple(int(x) for x in grads[start:start + live, i]) + tuple(pad), True,
            )
            out, state = units.update_unit_step(state, inputs)
            for _ in range(units.UPDATE_UNIT_LATENCY):
                out, state = units.update_unit_step(state, units.UpdateUnitInputs(result_ready=True))
            row += out.value[:live]
        rows.append(row)
    assert rows == expected.tolist()
    assert state.lfsr == LFSR(seed).states(n_in * n_out)[-1]
    assert units.update_unit_reset(lanes=1, w=2, v=2, dw=4, dth=4).lfsr == 1
    assert units.update_unit_reset(lanes=1, w=2, v=2, dw=4, dth=4, lfsr_init=0xDEADBEEF).lfsr == 0xDEADBEEF
    with pytest.raises(ValueError, match="lfsr_init"):
        units.update_unit_params(lanes=1, w=2, v=2, dw=4, dth=4, lfsr_init=0)


def test_update_unit_load_follows_the_draws_of_its_cycle() -> None:
    state = units.update_unit_reset(lanes=2, w=8, v=16, dw=24, dth=24)
    word = units.UpdateUnitInputs(
        True, units.UpdateOp.WEIGHT, units.Rounding.STOCHASTIC, 3, 0b11, (0, 0), (1, 1), True,
        lfsr_load=True, lfsr_seed=0,
    )
    out, state = units.update_unit_step(state, word)
    assert out.lfsr_state == 1 and state.lfsr == 1  # drew from 1, then loaded seed 0 -> 1
    out, state = units.update_unit_step(state, units.UpdateUnitInputs(lfsr_load=True, lfsr_seed=7))
    assert state.lfsr == 7


#: Units whose result depends on the operand alone: (parameters, operand drawer).
STREAM_UNITS = {
    "neuron_lane": (
        {"w": 5, "v": 7},
        lambda d, p: {"op": d.draw(st.integers(0, 3)), "reset_zero": d.draw(st.booleans()),
                      "v": d.draw(signed_values(p.v)), "x": d.draw(signed_values(p.operand_bits)),
                      "vth": d.draw(st.integers(1, 63))},
    ),
    "dv_unit": (
        {"g": 5, "w": 4, "fan_out": 7, "k": 10, "shift": 5},
        lambda d, p: {"acc": d.draw(signed_values(p.acc_bits)), "r": d.draw(st.integers(0, 2047)),
                      "window": d.draw(st.booleans()), "dv_next": d.draw(signed_values(p.g))},
    ),
    "gradient_accumulator": (
        {"lanes": 2, "g": 5, "dw": 7, "dth": 6},
        lambda d, p: {"op": d.draw(st.integers(0, 1)), "mask": d.draw(st.integers(0, 3)),
                      "acc": (d.draw(signed_values(6)), d.draw(signed_values(6))),
                      "dv": (d.draw(signed_values(5)), d.draw(signed_values(5)))},
    ),
}


def test_stream_models_cover_the_units() -> None:
    """Every learning-datapath unit is registered, with its own functions and types."""
    assert set(units.STREAM_MODELS) == set(STREAM_UNITS) | {"dot_product_lane", "update_unit"}
    for name, model in units.STREAM_MODELS.items():
        assert model.step is getattr(units, f"{name}_step")
        assert model.reset is getattr(units, f"{name}_reset")
        assert model.params is getattr(units, f"{name}_params")
        assert model.latency == getattr(units, f"{name.upper()}_LATENCY")
        assert model.result is (getattr(units, f"{name}_result") if name in STREAM_UNITS else None)
        assert model.inputs._fields[0] == "operand_valid"
        assert model.outputs._fields[:2] == ("operand_ready", "result_valid")


@pytest.mark.parametrize("name", list(STREAM_UNITS))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_stream_units_deliver_every_result_in_order(name: str, data: st.DataObject) -> None:
    """Under any valid/ready pattern: operand.ready = ~result.valid | result.ready, results
    come out in acceptance order, none lost or repeated, and with the consumer always ready
    each arrives exactly LATENCY cycles after its operand."""
    params, draw_operand = STREAM_UNITS[name]
    model = units.STREAM_MODELS[name]
    latency, result = model.latency, model.result
    state = model.reset(**params)
    checked = model.params(**params)
    always_ready = data.draw(st.booleans())
    accepted: list[tuple[int, Any]] = []
    delivered: list[tuple[int, Any]] = []
    busy = data.draw(st.integers(1, 30))  # cycles with random valid/ready, then a drain
    for cycle in range(busy + latency + 2):
        operand = draw_operand(data, checked)
        valid = cycle < busy and data.draw(st.booleans())
        ready = always_ready or cycle >= busy or data.draw(st.booleans())
        inputs = model.inputs(operand_valid=valid, result_ready=ready, **operand)
        out, state = model.step(state, inputs)
        assert out.operand_ready == (not out.result_valid or ready)
        if valid and out.operand_ready:
            accepted.append((cycle, result(checked, **operand)))
        if out.result_valid and ready:
            payload = out._asdict()
            delivered.append((cycle, tuple(payload[f] for f in accepted[len(delivered)][1]._fields)))
    assert [r for _, r in delivered] == [tuple(r) for _, r in accepted[: len(delivered)]]
    if always_ready:
        assert len(delivered) == len(accepted)
        assert all(end - start == latency for (start, _), (end, _) in zip(accepted, delivered))


def test_words_wider_than_64_lanes() -> None:
    """Lane masks are plain integers: P = 70 lanes work like any other P."""
    lanes, top = 70, (1 << 70) - 1
    params = units.update_unit_params(lanes=lanes, w=8, v=16, dw=24, dth=24)
    draws, after = units.update_unit_draws(params, 1, units.Rounding.STOCHASTIC, top)
    assert after == LFSR(1).states(lanes)[-1] and draws == tuple(LFSR(1).states(lanes))
    result = units.update_unit_result(
        params, units.UpdateOp.WEIGHT, units.Rounding.FLOOR, 3, top ^ 1, (5,) * lanes,
        (100,) * lanes, draws,
    )
    assert result.value == (5,) + (-7,) * (lanes - 1) and result.changed == top ^ 1
    accumulator = units.gradient_accumulator_params(lanes=lanes, g=8, dw=24, dth=24)
    summed = units.gradient_accumulator_result(
        accumulator, units.AccumulateOp.DVTH, 1 << 69, (5,) * lanes, (100,) * lanes
    )
    assert summed.acc == (5,) * 69 + (-95,)
