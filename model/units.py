"""Cycle-accurate step functions of the RTL datapath units (the co-simulation reference).

Each unit has a ``*_reset`` function returning its state after reset and a pure
``*_step(state, inputs) -> (outputs, next_state)`` function: ``inputs`` are the values on the
unit's input ports during one clock cycle, ``outputs`` the values its output ports show in
that cycle (after combinational settling), ``next_state`` the registers after the clock edge
that ends the cycle. Pipeline latencies are therefore those of the RTL. States are immutable
named tuples that also carry the unit's parameters. Output fields named ``*_payload`` /
``result`` are meaningful only while the matching ``*_valid`` flag is set (stream semantics).

Numbers are plain Python integers (unbounded), checked against the port widths on input.
"""

from __future__ import annotations

from typing import NamedTuple

from model.checks import check_int
from model.fixed import reciprocal

__all__ = [
    "ReciprocalDividerInputs",
    "ReciprocalDividerOutputs",
    "ReciprocalDividerState",
    "SpikeQueueInputs",
    "SpikeQueueOutputs",
    "SpikeQueueState",
    "reciprocal_divider_reset",
    "reciprocal_divider_step",
    "spike_queue_reset",
    "spike_queue_step",
]


def _check_port(name: str, value: int, bits: int) -> int:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name}: {value} is out of range (allowed 0..{(1 << bits) - 1})")
    return value


# Spike queue (hw.queue.SpikeQueue: SyncFIFOBuffered of depth-1 RAM entries + output register)


class SpikeQueueState(NamedTuple):
    """Registers of the spike queue.

    Attributes
    ----------
    index_bits, depth : int
        Parameters (index width in bits, capacity in indices).
    stored : tuple of int
        Indices in the RAM part, oldest first, at most ``depth - 1`` of them.
    out_valid : bool
        The output register holds an index (``pop.valid``).
    out_index : int
        The output register, unsigned ``index_bits``.
    high_water : int
        Largest occupancy seen at a cycle end since reset or the last clear, 0..depth.
    """

    index_bits: int
    depth: int
    stored: tuple[int, ...]
    out_valid: bool
    out_index: int
    high_water: int


class SpikeQueueInputs(NamedTuple):
    """One cycle of spike queue inputs: ``push`` stream, ``pop.ready``, clear strobe."""

    push_valid: bool = False
    push_index: int = 0
    pop_ready: bool = False
    clear_high_water: bool = False


class SpikeQueueOutputs(NamedTuple):
    """One cycle of spike queue outputs (``pop_index`` only meaningful if ``pop_valid``)."""

    push_ready: bool
    pop_valid: bool
    pop_index: int
    level: int
    high_water: int
    full: bool


def spike_queue_reset(*, index_bits: int, depth: int) -> SpikeQueueState:
    """State of an empty spike queue after reset.

    Raises
    ------
    TypeError, ValueError
        As :class:`hw.queue.SpikeQueue` for bad ``index_bits`` (>= 2) / ``depth`` (>= 3).
    """
    return SpikeQueueState(
        index_bits=check_int("index_bits", index_bits, minimum=2),
        depth=check_int("depth", depth, minimum=3),
        stored=(),
        out_valid=False,
        out_index=0,
        high_water=0,
    )


def spike_queue_step(
    state: SpikeQueueState, inputs: SpikeQueueInputs
) -> tuple[SpikeQueueOutputs, SpikeQueueState]:
    """Advance the spike queue by one cycle.

    The RAM part holds ``depth - 1`` indices; the output register is refilled from it
    whenever it is empty or being popped, so a push into an empty queue reaches ``pop``
    two cycles later. ``push.ready`` is low while the RAM part is full.

    Raises
    ------
    ValueError
        If ``push_index`` does not fit ``index_bits`` while ``push_valid`` is set.
    """
    stored = state.stored
    push_ready = len(stored) != state.depth - 1
    level = len(stored) + state.out_valid
    outputs = SpikeQueueOutputs(
        push_ready=push_ready,
        pop_valid=state.out_valid,
        pop_index=state.out_index,
        level=level,
        high_water=state.high_water,
        full=level == state.depth,
    )

    refill = bool(stored) and (not state.out_valid or inputs.pop_ready)
    out_valid, out_index = state.out_valid, state.out_index
    if refill:
        out_valid, out_index, stored = True, stored[0], stored[1:]
    elif inputs.pop_ready:
        out_valid = False
    if inputs.push_valid and push_ready:
        stored = stored + (_check_port("push_index", inputs.push_index, state.index_bits),)
    high_water = level if inputs.clear_high_water else max(state.high_water, level)
    return outputs, state._replace(
        stored=stored, out_valid=out_valid, out_index=out_index, high_water=high_water
    )


# Reciprocal divider (hw.reciprocal.ReciprocalDivider: restoring, one quotient bit per cycle)

_IDLE, _DIVIDE, _DONE = "idle", "divide", "done"


class ReciprocalDividerState(NamedTuple):
    """Registers of the reciprocal divider.

    Attributes
    ----------
    threshold_bits, k : int
        Parameters (threshold width, scale exponent K).
    phase : str
        ``"idle"``, ``"divide"`` or ``"done"``.
    cycles_left : int
        Division cycles still to run after the current one, 0..k (``"divide"`` only).
    result : int
        The quotient being produced, unsigned ``k + 1`` bits.
    """

    threshold_bits: int
    k: int
    phase: str
    cycles_left: int
    result: int


class ReciprocalDividerInputs(NamedTuple):
    """One cycle of divider inputs: ``vth`` stream and ``result.ready``."""

    vth_valid: bool = False
    vth: int = 0
    result_ready: bool = False


class ReciprocalDividerOutputs(NamedTuple):
    """One cycle of divider outputs (``result`` only meaningful if ``result_valid``)."""

    vth_ready: bool
    busy: bool
    result_valid: bool
    result: int


def reciprocal_divider_reset(*, threshold_bits: int, k: int) -> ReciprocalDividerState:
    """State of an idle divider after reset.

    Raises
    ------
    TypeError, ValueError
        As :class:`hw.reciprocal.ReciprocalDivider` for bad ``threshold_bits`` (>= 2) or
        ``k`` (1..30).
    """
    return ReciprocalDividerState(
        threshold_bits=check_int("threshold_bits", threshold_bits, minimum=2),
        k=check_int("k", k, minimum=1, maximum=30),
        phase=_IDLE,
        cycles_left=0,
        result=0,
    )


def reciprocal_divider_result(vth: int, k: int) -> int:
    """The divider's result for operand ``vth``: ``floor(2^k / vth)``, all ones for 0.

    ``vth = 0`` lies outside the numerics contract (``vth >= 1``); the restoring divider
    then sets every quotient bit, giving ``2^(k+1) - 1``.
    """
    return (1 << (k + 1)) - 1 if vth == 0 else reciprocal(vth, k)


def reciprocal_divider_step(
    state: ReciprocalDividerState, inputs: ReciprocalDividerInputs
) -> tuple[ReciprocalDividerOutputs, ReciprocalDividerState]:
    """Advance the divider by one cycle.

    An operand accepted in cycle ``c`` (idle, ``vth_valid``) is divided during cycles
    ``c + 1 .. c + k + 1`` and offered from cycle ``c + k + 2`` until ``result_ready``.

    Raises
    ------
    ValueError
        If ``vth`` does not fit ``threshold_bits`` while it is being accepted.
    """
    phase = state.phase
    outputs = ReciprocalDividerOutputs(
        vth_ready=phase == _IDLE,
        busy=phase == _DIVIDE,
        result_valid=phase == _DONE,
        result=state.result,
    )
    if phase == _IDLE:
        if not inputs.vth_valid:
            return outputs, state
        vth = _check_port("vth", inputs.vth, state.threshold_bits)
        return outputs, state._replace(
            phase=_DIVIDE, cycles_left=state.k, result=reciprocal_divider_result(vth, state.k)
        )
    if phase == _DIVIDE:
        if state.cycles_left == 0:
            return outputs, state._replace(phase=_DONE)
        return outputs, state._replace(cycles_left=state.cycles_left - 1)
    return outputs, state._replace(phase=_IDLE) if inputs.result_ready else state
