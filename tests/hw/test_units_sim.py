"""Quick amaranth.sim checks of the datapath units against their step functions, and
construction-time parameter errors."""

from __future__ import annotations

import functools
import gc
import itertools
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from hw.accumulator import GradientAccumulator
from hw.dot_product import DotProductLane
from hw.dv import DvUnit
from hw.neuron import NeuronLane
from hw.queue import SpikeQueue
from hw.reciprocal import ReciprocalDivider
from hw.update import UpdateUnit
from model import units
from model.units import (
    STREAM_MODELS,
    ReciprocalDividerInputs,
    SpikeQueueInputs,
    reciprocal_divider_reset,
    reciprocal_divider_step,
    spike_queue_reset,
    spike_queue_step,
)

Drive = Callable[[Any, Any], Any]  # (previous inputs, previous outputs) -> inputs
Trace = list[tuple[Any, dict[str, int]]]


def lockstep(
    dut: Any,
    step: Callable,
    state: NamedTuple,
    drive: Drive,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    qualifiers: Mapping[str, str],
    cycles: int,
) -> Trace:
    """Run DUT and model side by side; return every cycle's (inputs, DUT outputs).

    ``drive(previous_inputs, previous_outputs)`` chooses each cycle's inputs. Every output
    is compared every cycle (a qualified one only while its valid flag is set). A field
    mapped to a list of signals (lanes) is a tuple in the model.
    """
    trace: Trace = []

    def plain(value: Any) -> Any:
        return tuple(int(item) for item in value) if isinstance(value, tuple) else int(value)

    async def bench(ctx: Any) -> None:
        nonlocal state
        for cycle in range(cycles):
            applied = drive(*(trace[-1] if trace else (None, None)))
            for field, signal in inputs.items():
                value = getattr(applied, field)
                if isinstance(signal, list):
                    for lane, item in zip(signal, value, strict=True):
                        ctx.set(lane, int(item))
                else:
                    ctx.set(signal, int(value))
            actual = {
                field: tuple(ctx.get(lane) for lane in signal) if isinstance(signal, list)
                else ctx.get(signal)
                for field, signal in outputs.items()
            }
            expected, state = step(state, applied)
            for field, value in actual.items():
                qualifier = qualifiers.get(field)
                if qualifier is not None and not getattr(expected, qualifier):
                    continue
                assert value == plain(getattr(expected, field)), (
                    f"cycle {cycle}: {field}: DUT {value}, model {getattr(expected, field)} "
                    f"(inputs {applied})"
                )
            trace.append((applied, actual))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return trace


def queue_driver(rng: random.Random, bits: int, p_push: float, p_pop: float) -> Drive:
    """Random pushes held until accepted, random pop readiness, rare clears."""
    offered: list[int] = []

    def drive(previous: Any, out: Mapping[str, int] | None) -> SpikeQueueInputs:
        if previous is not None and previous.push_valid and out["push_ready"]:
            offered.clear()
        if not offered and rng.random() < p_push:
            offered.append(rng.randrange(1 << bits))
        return SpikeQueueInputs(
            push_valid=bool(offered),
            push_index=offered[0] if offered else 0,
            pop_ready=rng.random() < p_pop,
            clear_high_water=rng.random() < 0.02,
        )

    return drive


class Ports(NamedTuple):
    """Model field -> DUT port path (``push__valid`` is ``dut.push.valid``), both ways, and
    the qualifiers of :func:`lockstep`."""

    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    qualifiers: Mapping[str, str]


QUEUE_PORTS = Ports(
    {"push_valid": "push__valid", "push_index": "push__payload", "pop_ready": "pop__ready",
     "clear_high_water": "clear_high_water"},
    {"push_ready": "push__ready", "pop_valid": "pop__valid", "pop_index": "pop__payload",
     "level": "level", "high_water": "high_water", "full": "full"},
    {"pop_index": "pop_valid"},
)
DIVIDER_PORTS = Ports(
    {"vth_valid": "vth__valid", "vth": "vth__payload", "result_ready": "result__ready"},
    {"vth_ready": "vth__ready", "busy": "busy", "result_valid": "result__valid",
     "result": "result__payload"},
    {"result": "result_valid"},
)


def run_unit(
    component: type, reset: Callable, step: Callable, ports: Ports, params: dict[str, int],
    drive: Drive, cycles: int,
) -> Trace:
    """Build ``component(**params)`` and run it in :func:`lockstep` with its model."""
    dut = component(**params)

    def signals(paths: Mapping[str, str]) -> dict[str, Any]:
        return {
            field: functools.reduce(getattr, path.split("__"), dut) for field, path in paths.items()
        }

    return lockstep(
        dut, step, reset(**params), drive, signals(ports.inputs), signals(ports.outputs),
        ports.qualifiers, cycles,
    )


def run_queue(index_bits: int, depth: int, drive: Drive, cycles: int) -> Trace:
    params = {"index_bits": index_bits, "depth": depth}
    return run_unit(
        SpikeQueue, spike_queue_reset, spike_queue_step, QUEUE_PORTS, params, drive, cycles
    )


@pytest.mark.parametrize("index_bits, depth", [(3, 1), (2, 2), (2, 3), (5, 4), (6, 7)])
@pytest.mark.parametrize("p_push, p_pop", [(0.9, 0.3), (0.3, 0.9), (0.6, 0.6)])
def test_spike_queue_matches_model(
    index_bits: int, depth: int, p_push: float, p_pop: float
) -> None:
    rng = random.Random(f"{index_bits}-{depth}-{p_push}")
    trace = run_queue(index_bits, depth, queue_driver(rng, index_bits, p_push, p_pop), 600)
    levels = [out["level"] for _, out in trace]
    assert max(levels) == depth if p_push > p_pop else min(levels) == 0


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_spike_queue_fills_and_keeps_order(depth: int) -> None:
    """Push 0..depth-1 with the consumer stalled, then pop them all: same order, no loss."""
    stall = 8
    pending = list(range(depth))

    def drive(previous: Any, out: Mapping[str, int] | None) -> SpikeQueueInputs:
        if previous is not None and previous.push_valid and out["push_ready"]:
            pending.pop(0)
        cycle = len(trace_cycles)
        trace_cycles.append(cycle)
        return SpikeQueueInputs(
            push_valid=bool(pending),
            push_index=pending[0] if pending else 0,
            pop_ready=cycle >= stall,
        )

    trace_cycles: list[int] = []
    trace = run_queue(3, depth, drive, stall + depth + 4)
    popped = [out["pop_index"] for inputs, out in trace if inputs.pop_ready and out["pop_valid"]]
    assert [out["full"] for _, out in trace[:stall]] == [False] * depth + [True] * (stall - depth)
    assert popped == list(range(depth))
    assert trace[-1][1]["level"] == 0 and trace[-1][1]["high_water"] == depth


def run_divider(threshold_bits: int, k: int, drive: Drive, cycles: int) -> Trace:
    params = {"threshold_bits": threshold_bits, "k": k}
    return run_unit(
        ReciprocalDivider, reciprocal_divider_reset, reciprocal_divider_step, DIVIDER_PORTS,
        params, drive, cycles,
    )


def divider_driver(operands: list[int], rng: random.Random, p_ready: float) -> Drive:
    queue = list(operands)

    def drive(previous: Any, out: Mapping[str, int] | None) -> ReciprocalDividerInputs:
        if previous is not None and previous.vth_valid and out["vth_ready"]:
            queue.pop(0)
        return ReciprocalDividerInputs(
            vth_valid=bool(queue), vth=queue[0] if queue else 0, result_ready=rng.random() < p_ready
        )

    return drive


@pytest.mark.parametrize("threshold_bits, k", [(6, 5), (4, 8), (15, 16)])
def test_reciprocal_divider_matches_model(threshold_bits: int, k: int) -> None:
    rng = random.Random(threshold_bits * 100 + k)
    top = (1 << threshold_bits) - 1
    operands = [1, top, 0, 2, 3] + [rng.randint(1, top) for _ in range(12)]
    trace = run_divider(threshold_bits, k, divider_driver(operands, rng, 0.6), 30 * (k + 4))
    delivered = [
        out["result"] for inputs, out in trace if out["result_valid"] and inputs.result_ready
    ]
    assert len(delivered) >= len(operands) // 2


@pytest.mark.parametrize("threshold_bits, k", [(6, 5), (3, 1), (1, 4), (15, 30)])
def test_reciprocal_divider_values_and_latency(threshold_bits: int, k: int) -> None:
    """Every operand of a small width (or the edges of a wide one): exact result, latency k + 2."""
    top = (1 << threshold_bits) - 1
    operands = list(range(top + 1)) if threshold_bits <= 6 else [1, 2, 3, top, 1 << 14]
    trace = run_divider(
        threshold_bits, k, divider_driver(operands, random.Random(0), 1.0), len(operands) * (k + 4)
    )
    accepted = [
        cycle for cycle, (inputs, out) in enumerate(trace) if inputs.vth_valid and out["vth_ready"]
    ]
    delivered = [
        (cycle, out["result"]) for cycle, (_, out) in enumerate(trace) if out["result_valid"]
    ]
    assert len(accepted) == len(delivered) == len(operands)
    for operand, start, (cycle, result) in zip(operands, accepted, delivered):
        assert cycle - start == k + 2
        assert result == ((1 << (k + 1)) - 1 if operand == 0 else (1 << k) // operand)


def test_spike_queue_keeps_a_high_water_mark_per_stage() -> None:
    """A queue shared by two stages: each stage's mark rises only while it runs, and a
    clear restarts both from the level."""
    dut = SpikeQueue(index_bits=3, depth=4, stages=2)
    marks: list[tuple[int, int, int]] = []  # (level, mark of stage 0, mark of stage 1) after each phase

    async def bench(ctx: Any) -> None:
        async def push(count: int) -> None:
            ctx.set(dut.push.valid, 1)
            for index in range(count):
                ctx.set(dut.push.payload, index)
                await ctx.tick()
            ctx.set(dut.push.valid, 0)
            await ctx.tick().repeat(3)

        async def drain() -> None:
            ctx.set(dut.pop.ready, 1)
            await ctx.tick().repeat(6)
            ctx.set(dut.pop.ready, 0)
            await ctx.tick()

        def record() -> None:
            marks.append((ctx.get(dut.level), ctx.get(dut.high_water[0]), ctx.get(dut.high_water[1])))

        ctx.set(dut.stage, 0)
        await push(3)
        record()
        await drain()
        ctx.set(dut.stage, 1)
        await push(2)
        record()
        ctx.set(dut.clear_high_water, 1)
        await ctx.tick()
        ctx.set(dut.clear_high_water, 0)
        record()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert marks == [(3, 3, 0), (2, 3, 2), (2, 2, 2)]


def test_lockstep_detects_a_corrupted_model() -> None:
    """The harness itself must be able to fail: a model off by one in ``level``."""

    def corrupt(state: Any, inputs: Any) -> tuple[Any, Any]:
        outputs, next_state = spike_queue_step(state, inputs)
        return outputs._replace(level=outputs.level ^ 1), next_state

    dut = SpikeQueue(index_bits=3, depth=4)
    with pytest.raises(AssertionError, match="level: DUT 0, model 1"):
        lockstep(
            dut, corrupt, spike_queue_reset(index_bits=3, depth=4),
            lambda previous, out: SpikeQueueInputs(),
            {"pop_ready": dut.pop.ready}, {"level": dut.level}, {}, 4,
        )


# Learning-datapath units: operand/result streams -------------------------------------------


def _payload_signals(port: Any) -> dict[str, Any]:
    """Model field -> signal (or list of lane signals) of a stream's struct payload."""
    view = port.payload
    fields = {}
    for name, member in view.shape():
        value = getattr(view, name)
        if isinstance(member.shape, data.ArrayLayout):
            fields[name] = [value[j] for j in range(member.shape.length)]
        else:
            fields[name] = value
    return fields


def _signed(rng: random.Random, bits: int) -> int:
    return rng.randint(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _lanes(rng: random.Random, count: int, bits: int) -> tuple[int, ...]:
    return tuple(_signed(rng, bits) for _ in range(count))


class StreamCase(NamedTuple):
    """A learning-datapath unit under test: its component, random operands (given the
    checked parameters) and its model (:data:`model.units.STREAM_MODELS`)."""

    component: type
    operands: Callable[[random.Random, Any], Iterator[dict[str, Any]]]
    model: units.StreamModel


def _neuron_operands(rng: random.Random, p: units.NeuronLaneParams) -> Iterator[dict[str, Any]]:
    while True:
        vth = rng.randint(1, (1 << p.threshold_bits) - 1)
        near = min(vth + rng.randint(-vth, vth) // 2, (1 << (p.v - 1)) - 1)  # around the window
        yield {"op": rng.randrange(4), "reset_zero": rng.random() < 0.3,
               "v": rng.choice((_signed(rng, p.v), near)),
               "x": _signed(rng, p.operand_bits), "vth": vth}


def _dv_operands(rng: random.Random, p: units.DvUnitParams) -> Iterator[dict[str, Any]]:
    while True:
        yield {"acc": _signed(rng, p.acc_bits), "r": rng.randrange(1 << (p.k + 1)),
               "window": rng.random() < 0.6, "dv_next": _signed(rng, p.g)}


def _dot_operands(rng: random.Random, p: units.DotProductLaneParams) -> Iterator[dict[str, Any]]:
    while True:
        words = rng.randint(1, p.words)
        for n in range(words):
            live = [n * p.lanes + j < p.fan_out for j in range(p.lanes)]
            weights = tuple(_signed(rng, p.w) if on else 0 for on in live)
            yield {"weights": weights, "grads": _lanes(rng, p.lanes, p.g), "last": n == words - 1}


def _accumulator_operands(
    rng: random.Random, p: units.GradientAccumulatorParams
) -> Iterator[dict[str, Any]]:
    while True:
        op = rng.randrange(2)
        yield {"op": op, "mask": rng.randrange(1 << p.lanes),
               "acc": _lanes(rng, p.lanes, p.dth if op else p.dw), "dv": _lanes(rng, p.lanes, p.g)}


def _update_operands(rng: random.Random, p: units.UpdateUnitParams) -> Iterator[dict[str, Any]]:
    while True:
        op, shift = rng.randrange(2), rng.choice((0, 31, rng.randint(0, 8)))
        values = tuple(
            rng.randint(1, p.threshold_max) if op else _signed(rng, p.w) for _ in range(p.lanes)
        )
        grads = tuple(rng.randint(-(8 << shift), 8 << shift) for _ in range(p.lanes))
        yield {"op": op, "rounding": rng.randrange(3), "shift": shift,
               "mask": rng.randrange(1 << p.lanes), "value": values,
               "grad": tuple(max(-(1 << (p.grad_bits - 1)), min((1 << (p.grad_bits - 1)) - 1, g))
                             for g in grads)}


STREAM_CASES = {
    name: StreamCase(component, operands, STREAM_MODELS[name])
    for name, component, operands in (
        ("neuron_lane", NeuronLane, _neuron_operands),
        ("dv_unit", DvUnit, _dv_operands),
        ("dot_product_lane", DotProductLane, _dot_operands),
        ("gradient_accumulator", GradientAccumulator, _accumulator_operands),
        ("update_unit", UpdateUnit, _update_operands),
    )
}

#: Two small parameter sets per unit (odd lane counts and widths included).
STREAM_PARAMS = [
    ("neuron_lane", {"w": 4, "v": 6}), ("neuron_lane", {"w": 11, "v": 13}),
    ("dv_unit", {"g": 6, "w": 3, "fan_out": 5, "k": 9, "shift": 9}),
    ("dv_unit", {"g": 9, "w": 5, "fan_out": 40, "k": 12, "shift": 6}),
    ("dot_product_lane", {"lanes": 1, "g": 4, "w": 2, "fan_out": 3}),
    ("dot_product_lane", {"lanes": 3, "g": 7, "w": 5, "fan_out": 8}),
    ("gradient_accumulator", {"lanes": 1, "g": 7, "dw": 5, "dth": 4}),  # dV wider (fc errors)
    ("gradient_accumulator", {"lanes": 3, "g": 6, "dw": 8, "dth": 11}),
    ("update_unit", {"lanes": 1, "w": 3, "v": 5, "dw": 6, "dth": 5}),
    ("update_unit", {"lanes": 3, "w": 5, "v": 8, "dw": 10, "dth": 12}),
]


def run_stream(name: str, params: dict[str, int], drive: Drive, cycles: int) -> Trace:
    case = STREAM_CASES[name]
    model = case.model
    dut = case.component(**params)
    inputs = {
        "operand_valid": dut.operand.valid, **_payload_signals(dut.operand),
        "result_ready": dut.result.ready, **{n: getattr(dut, n) for n in model.side_inputs},
    }
    results = _payload_signals(dut.result)
    outputs = {
        "operand_ready": dut.operand.ready, "result_valid": dut.result.valid, **results,
        **{n: getattr(dut, n) for n in model.side_outputs},
    }
    qualifiers = {field: "result_valid" for field in results}
    return lockstep(
        dut, model.step, model.reset(**params), drive, inputs, outputs, qualifiers, cycles
    )


def stream_driver(
    name: str, params: dict[str, int], rng: random.Random, p_valid: float, p_ready: float
) -> Drive:
    """Random operands held until accepted, junk payloads while idle, random readiness;
    rare LFSR loads for the update unit."""
    case = STREAM_CASES[name]
    operands = case.operands(rng, case.model.params(**params))
    held: list[dict[str, Any]] = []

    def drive(previous: Any, out: Mapping[str, int] | None) -> Any:
        if previous is not None and previous.operand_valid and out["operand_ready"]:
            held.clear()
        if not held and rng.random() < p_valid:
            held.append(next(operands))
        side = {}
        if case.model.side_inputs:
            side = {"lfsr_load": rng.random() < 0.03, "lfsr_seed": rng.choice((0, rng.getrandbits(32)))}
        return case.model.inputs(
            operand_valid=bool(held), result_ready=rng.random() < p_ready,
            **(held[0] if held else next(operands)), **side,
        )

    return drive


@pytest.mark.parametrize("name, params", STREAM_PARAMS)
def test_learning_unit_matches_model(name: str, params: dict[str, int]) -> None:
    rng = random.Random(f"{name}-{sorted(params.items())}")
    trace = run_stream(name, params, stream_driver(name, params, rng, 0.8, 0.6), 300)
    delivered = sum(1 for inputs, out in trace if out["result_valid"] and inputs.result_ready)
    stalled = sum(1 for inputs, out in trace if out["result_valid"] and not inputs.result_ready)
    assert delivered >= 30 and stalled >= 10


@pytest.mark.parametrize("name", list(STREAM_CASES))
def test_learning_unit_latency_and_stall(name: str) -> None:
    """One operand per cycle from cycle 0: the first result appears at cycle LATENCY; a
    refused result is held, blocks new operands and freezes the pipeline."""
    params = next(p for unit, p in STREAM_PARAMS if unit == name)
    case = STREAM_CASES[name]
    latency = case.model.latency
    rng = random.Random(name)
    operands = itertools.chain.from_iterable(
        # single-word dot products: every operand completes a sum
        ({**op, "last": True} if name == "dot_product_lane" else op for op in [op])
        for op in case.operands(rng, case.model.params(**params))
    )
    stall = range(latency + 2, latency + 6)

    def drive(previous: Any, out: Mapping[str, int] | None) -> Any:
        cycle = len(seen)
        seen.append(cycle)
        return case.model.inputs(
            operand_valid=True, result_ready=cycle not in stall, **next(operands),
            **({"lfsr_load": False, "lfsr_seed": 0} if case.model.side_inputs else {}),
        )

    seen: list[int] = []
    trace = run_stream(name, params, drive, latency + 10)
    valid = [out["result_valid"] for _, out in trace]
    ready = [out["operand_ready"] for _, out in trace]
    assert valid[: latency + 1] == [0] * latency + [1]
    assert all(valid[latency:])
    assert [ready[c] for c in stall] == [0] * len(stall) and ready[stall[-1] + 1] == 1
    held = [tuple(out.items()) for c, (_, out) in enumerate(trace) if c in stall]
    assert len(set(held)) == 1


BAD_PARAMETERS = [
    (SpikeQueue, {"index_bits": 1, "depth": 4}, ValueError,
     "index_bits: 1 is out of range (allowed 2 or more)"),
    (SpikeQueue, {"index_bits": 8, "depth": 0}, ValueError,
     "depth: 0 is out of range (allowed 1 or more)"),
    (SpikeQueue, {"index_bits": 8.0, "depth": 4}, TypeError,
     "index_bits: must be an integer, not 8.0"),
    (SpikeQueue, {"index_bits": 8, "depth": True}, TypeError,
     "depth: must be an integer, not True"),
    (ReciprocalDivider, {"threshold_bits": 0, "k": 16}, ValueError,
     "threshold_bits: 0 is out of range (allowed 1 or more)"),
    (ReciprocalDivider, {"threshold_bits": 15, "k": 0}, ValueError,
     "k: 0 is out of range (allowed 1..30)"),
    (ReciprocalDivider, {"threshold_bits": 15, "k": 31}, ValueError,
     "k: 31 is out of range (allowed 1..30)"),
    (ReciprocalDivider, {"threshold_bits": "15", "k": 16}, TypeError,
     "threshold_bits: must be an integer, not '15'"),
    (NeuronLane, {"w": 1, "v": 16}, ValueError, "w: 1 is out of range (allowed 2..16)"),
    (NeuronLane, {"w": 8, "v": 7}, ValueError, "v: 7 is out of range (allowed 8..32)"),
    (NeuronLane, {"w": 8, "v": 16.5}, TypeError, "v: must be an integer, not 16.5"),
    (DvUnit, {"g": 3, "w": 8, "fan_out": 4, "k": 16, "shift": 16}, ValueError,
     "g: 3 is out of range (allowed 4..32)"),
    (DvUnit, {"g": 16, "w": 8, "fan_out": 1 << 37, "k": 16, "shift": 16}, ValueError,
     f"fan_out: {1 << 37} is out of range (allowed 1..{1 << 36})"),
    (DvUnit, {"g": 16, "w": 8, "fan_out": 1024, "k": 31, "shift": 16}, ValueError,
     "k: 31 is out of range (allowed 8..30)"),
    (DvUnit, {"g": 16, "w": 8, "fan_out": 1024, "k": 16, "shift": 17}, ValueError,
     "shift: 17 is out of range (allowed 0..16)"),
    (DvUnit, {"g": 32, "w": 16, "fan_out": 1024, "k": 16, "shift": 0}, ValueError,
     "k: 16 is too large for the product width: (acc * R) >> shift needs "
     "g + w + ceil(log2 fan_out) + 1 + k - shift = 75 bits (allowed up to 61)"),
    (DotProductLane, {"lanes": 0, "g": 16, "w": 8, "fan_out": 64}, ValueError,
     "lanes: 0 is out of range (allowed 1 or more)"),
    (DotProductLane, {"lanes": 4, "g": 16, "w": 1, "fan_out": 64}, ValueError,
     "w: 1 is out of range (allowed 2..16)"),
    (DotProductLane, {"lanes": 4, "g": 16, "w": 8, "fan_out": 0}, ValueError,
     f"fan_out: 0 is out of range (allowed 1..{1 << 38})"),
    (GradientAccumulator, {"lanes": 0, "g": 16, "dw": 24, "dth": 24}, ValueError,
     "lanes: 0 is out of range (allowed 1 or more)"),
    (GradientAccumulator, {"lanes": 8, "g": 16, "dw": 1, "dth": 24}, ValueError,
     "dw: 1 is out of range (allowed 2..48)"),
    (GradientAccumulator, {"lanes": 8, "g": 16, "dw": 24, "dth": 49}, ValueError,
     "dth: 49 is out of range (allowed 2..48)"),
    (UpdateUnit, {"lanes": -1, "w": 8, "v": 16, "dw": 24, "dth": 24}, ValueError,
     "lanes: -1 is out of range (allowed 1 or more)"),
    (UpdateUnit, {"lanes": 8, "w": 8, "v": 33, "dw": 24, "dth": 24}, ValueError,
     "v: 33 is out of range (allowed 8..32)"),
    (UpdateUnit, {"lanes": 8, "w": 8, "v": 16, "dw": 1, "dth": 24}, ValueError,
     "dw: 1 is out of range (allowed 4..48)"),
    (UpdateUnit, {"lanes": True, "w": 8, "v": 16, "dw": 24, "dth": 24}, TypeError,
     "lanes: must be an integer, not True"),
]


# A component whose constructor raises was never elaborated; Amaranth warns about that.
_UNUSED = "ignore::amaranth.hdl.UnusedElaboratable"


@pytest.mark.filterwarnings(_UNUSED)
@pytest.mark.parametrize("component, kwargs, error, message", BAD_PARAMETERS)
def test_bad_parameters_raise_at_construction(
    component: type, kwargs: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error) as info:
        component(**kwargs)
    raised = str(info.value)
    del info
    gc.collect()  # the half-built component warns when collected: inside the filter
    assert raised == message


@pytest.mark.parametrize(
    "reset, kwargs, message",
    [
        (spike_queue_reset, {"index_bits": 1, "depth": 4}, "index_bits: 1 is out of range"),
        (reciprocal_divider_reset, {"threshold_bits": 8, "k": 31}, "k: 31 is out of range"),
        (units.neuron_lane_reset, {"w": 1, "v": 8}, "w: 1 is out of range"),
        (units.dv_unit_reset, {"g": 32, "w": 16, "fan_out": 4, "k": 30, "shift": 0},
         "k: 30 is too large for the product width"),
        (units.dot_product_lane_reset, {"lanes": 0, "g": 8, "w": 4, "fan_out": 4},
         "lanes: 0 is out of range"),
        (units.gradient_accumulator_reset, {"lanes": 2, "g": 8, "dw": 49, "dth": 8},
         "dw: 49 is out of range"),
        (units.update_unit_reset, {"lanes": 2, "w": 4, "v": 3, "dw": 8, "dth": 8},
         "v: 3 is out of range"),
    ],
)
def test_models_share_the_parameter_checks(reset: Callable, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reset(**kwargs)


@pytest.mark.filterwarnings(_UNUSED)
def test_parameters_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        SpikeQueue(8, 4)  # type: ignore[misc]
    with pytest.raises(TypeError):
        ReciprocalDivider(15, 16)  # type: ignore[misc]
    for name, params in STREAM_PARAMS[::2]:
        with pytest.raises(TypeError):
            STREAM_CASES[name].component(*params.values())
    gc.collect()
