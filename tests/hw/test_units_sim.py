"""Quick amaranth.sim checks of the datapath units against their step functions, and
construction-time parameter errors."""

from __future__ import annotations

import gc
import random
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import pytest
from amaranth.sim import Simulator

from hw.queue import SpikeQueue
from hw.reciprocal import ReciprocalDivider
from model.units import (
    ReciprocalDividerInputs,
    SpikeQueueInputs,
    reciprocal_divider_reset,
    reciprocal_divider_step,
    spike_queue_reset,
    spike_queue_step,
)

Drive = Callable[[Any, Any], Any]  # (previous inputs, previous outputs) -> inputs


def lockstep(
    dut: Any,
    step: Callable,
    state: NamedTuple,
    drive: Drive,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    qualifiers: Mapping[str, str],
    cycles: int,
) -> list[tuple[Any, dict[str, int]]]:
    """Run DUT and model side by side; return every cycle's (inputs, DUT outputs).

    ``drive(previous_inputs, previous_outputs)`` chooses each cycle's inputs. Every output
    is compared every cycle (a qualified one only while its valid flag is set).
    """
    trace: list[tuple[Any, dict[str, int]]] = []

    async def bench(ctx: Any) -> None:
        nonlocal state
        for cycle in range(cycles):
            applied = drive(*(trace[-1] if trace else (None, None)))
            for field, signal in inputs.items():
                ctx.set(signal, int(getattr(applied, field)))
            actual = {field: ctx.get(signal) for field, signal in outputs.items()}
            expected, state = step(state, applied)
            for field, value in actual.items():
                qualifier = qualifiers.get(field)
                if qualifier is not None and not getattr(expected, qualifier):
                    continue
                assert value == int(getattr(expected, field)), (
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


def run_queue(
    index_bits: int, depth: int, drive: Drive, cycles: int
) -> list[tuple[Any, dict[str, int]]]:
    dut = SpikeQueue(index_bits=index_bits, depth=depth)
    return lockstep(
        dut,
        spike_queue_step,
        spike_queue_reset(index_bits=index_bits, depth=depth),
        drive,
        {
            "push_valid": dut.push.valid,
            "push_index": dut.push.payload,
            "pop_ready": dut.pop.ready,
            "clear_high_water": dut.clear_high_water,
        },
        {
            "push_ready": dut.push.ready,
            "pop_valid": dut.pop.valid,
            "pop_index": dut.pop.payload,
            "level": dut.level,
            "high_water": dut.high_water,
            "full": dut.full,
        },
        {"pop_index": "pop_valid"},
        cycles,
    )


@pytest.mark.parametrize("index_bits, depth", [(2, 3), (5, 4), (6, 7)])
@pytest.mark.parametrize("p_push, p_pop", [(0.9, 0.3), (0.3, 0.9), (0.6, 0.6)])
def test_spike_queue_matches_model(
    index_bits: int, depth: int, p_push: float, p_pop: float
) -> None:
    rng = random.Random(f"{index_bits}-{depth}-{p_push}")
    trace = run_queue(index_bits, depth, queue_driver(rng, index_bits, p_push, p_pop), 600)
    levels = [out["level"] for _, out in trace]
    assert max(levels) == depth if p_push > p_pop else min(levels) == 0


def test_spike_queue_fills_and_keeps_order() -> None:
    """Push 0..depth-1 with the consumer stalled, then pop them all: same order, no loss."""
    depth, stall = 5, 8
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


def run_divider(
    threshold_bits: int, k: int, drive: Drive, cycles: int
) -> list[tuple[Any, dict[str, int]]]:
    dut = ReciprocalDivider(threshold_bits=threshold_bits, k=k)
    return lockstep(
        dut,
        reciprocal_divider_step,
        reciprocal_divider_reset(threshold_bits=threshold_bits, k=k),
        drive,
        {"vth_valid": dut.vth.valid, "vth": dut.vth.payload, "result_ready": dut.result.ready},
        {
            "vth_ready": dut.vth.ready,
            "busy": dut.busy,
            "result_valid": dut.result.valid,
            "result": dut.result.payload,
        },
        {"result": "result_valid"},
        cycles,
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


@pytest.mark.parametrize("threshold_bits, k", [(6, 5), (3, 1), (15, 30)])
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


BAD_PARAMETERS = [
    (SpikeQueue, {"index_bits": 1, "depth": 4}, ValueError,
     "index_bits: 1 is out of range (allowed 2 or more)"),
    (SpikeQueue, {"index_bits": 8, "depth": 2}, ValueError,
     "depth: 2 is out of range (allowed 3 or more)"),
    (SpikeQueue, {"index_bits": 8.0, "depth": 4}, TypeError,
     "index_bits: must be an integer, not 8.0"),
    (SpikeQueue, {"index_bits": 8, "depth": True}, TypeError,
     "depth: must be an integer, not True"),
    (ReciprocalDivider, {"threshold_bits": 1, "k": 16}, ValueError,
     "threshold_bits: 1 is out of range (allowed 2 or more)"),
    (ReciprocalDivider, {"threshold_bits": 15, "k": 0}, ValueError,
     "k: 0 is out of range (allowed 1..30)"),
    (ReciprocalDivider, {"threshold_bits": 15, "k": 31}, ValueError,
     "k: 31 is out of range (allowed 1..30)"),
    (ReciprocalDivider, {"threshold_bits": "15", "k": 16}, TypeError,
     "threshold_bits: must be an integer, not '15'"),
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
    gc.collect()
