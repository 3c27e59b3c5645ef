"""Cycle-accurate step functions of the RTL datapath units (the co-simulation reference).

Each unit has a ``*_reset`` function returning its state after reset and a pure
``*_step(state, inputs) -> (outputs, next_state)`` function: ``inputs`` are the values on the
unit's input ports during one clock cycle, ``outputs`` the values its output ports show in
that cycle (after combinational settling), ``next_state`` the registers after the clock edge
that ends the cycle. Pipeline latencies are therefore those of the RTL. States are immutable
named tuples that also carry the unit's parameters. Output fields named ``*_payload`` /
``result`` are meaningful only while the matching ``*_valid`` flag is set (stream semantics).

Numbers are plain Python integers (unbounded), checked against the port widths on input.

The learning-datapath units (neuron lane, dV unit, dot-product lane, gradient accumulator,
update unit) share one shape: an ``operand`` stream in, a ``result`` stream out, and a
pipeline of fixed latency ``LATENCY`` that stalls as a whole on backpressure
(``operand_ready = ~result_valid | result_ready``): an operand accepted in cycle ``c`` is
offered as a result from cycle ``c + LATENCY`` when the result stream never stalls, one
operation per cycle. Their inputs are ``operand_valid``, the operand's payload fields and
``result_ready``; their outputs ``operand_ready``, ``result_valid`` and the result's payload
fields (meaningful only while ``result_valid``). Parameters are checked by ``*_params``
functions shared with the hardware components (one clear ``TypeError``/``ValueError``
naming the parameter); the arithmetic is that of :mod:`model.fixed`, applied by the pure
``*_result`` functions, which the benches also use as their transaction-level reference.
:data:`STREAM_MODELS` names each unit's functions and types for benches and tests.
Payload values are checked against the port widths when an operand is accepted; values
outside the numerics contract but inside the port (e.g. a weight outside ``w`` bits on a
port that also carries pixels) are computed as the RTL computes them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from model.checks import check_int
from model.fixed import (
    LFSR,
    LFSR_BITS,
    MAX_BITS,
    ROUNDINGS,
    ceil_log2,
    fire_scan,
    lfsr_step,
    mux_dv,
    reciprocal,
    round_shift,
    saturate,
)

__all__ = [
    "DOT_PRODUCT_LANE_LATENCY",
    "DV_UNIT_LATENCY",
    "GRADIENT_ACCUMULATOR_LATENCY",
    "NEURON_LANE_LATENCY",
    "PIXEL_BITS",
    "SHIFT_BITS",
    "STREAM_MODELS",
    "UPDATE_UNIT_LATENCY",
    "AccumulateOp",
    "DotProductLaneInputs",
    "DotProductLaneOutputs",
    "DotProductLaneParams",
    "DotProductLaneResult",
    "DotProductLaneState",
    "DvUnitInputs",
    "DvUnitOutputs",
    "DvUnitParams",
    "DvUnitResult",
    "DvUnitState",
    "GradientAccumulatorInputs",
    "GradientAccumulatorOutputs",
    "GradientAccumulatorParams",
    "GradientAccumulatorResult",
    "GradientAccumulatorState",
    "NeuronLaneInputs",
    "NeuronLaneOutputs",
    "NeuronLaneParams",
    "NeuronLaneResult",
    "NeuronLaneState",
    "NeuronOp",
    "Rounding",
    "StreamModel",
    "UpdateOp",
    "UpdateUnitInputs",
    "UpdateUnitOutputs",
    "UpdateUnitParams",
    "UpdateUnitResult",
    "UpdateUnitState",
    "dot_product_lane_params",
    "dot_product_lane_reset",
    "dot_product_lane_step",
    "dot_product_lane_word",
    "dv_unit_params",
    "dv_unit_reset",
    "dv_unit_result",
    "dv_unit_step",
    "gradient_accumulator_params",
    "gradient_accumulator_reset",
    "gradient_accumulator_result",
    "gradient_accumulator_step",
    "neuron_lane_params",
    "neuron_lane_reset",
    "neuron_lane_result",
    "neuron_lane_step",
    "update_unit_draws",
    "update_unit_params",
    "update_unit_reset",
    "update_unit_result",
    "update_unit_step",
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


# Spike queue (hw.queue.SpikeQueue: SyncFIFOBuffered, a RAM part + output register)


class SpikeQueueState(NamedTuple):
    """Registers of the spike queue.

    Attributes
    ----------
    index_bits, depth : int
        Parameters (index width in bits, capacity in indices).
    stored : tuple of int
        Indices in the RAM part, oldest first, at most ``max(depth - 1, 1)`` of them (at
        depth 1 the index waits there one cycle before the output register takes it).
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
        As :class:`hw.queue.SpikeQueue` for bad ``index_bits`` (>= 2) / ``depth`` (>= 1).
    """
    return SpikeQueueState(
        index_bits=check_int("index_bits", index_bits, minimum=2),
        depth=check_int("depth", depth, minimum=1),
        stored=(),
        out_valid=False,
        out_index=0,
        high_water=0,
    )


def spike_queue_step(
    state: SpikeQueueState, inputs: SpikeQueueInputs
) -> tuple[SpikeQueueOutputs, SpikeQueueState]:
    """Advance the spike queue by one cycle.

    A push is written to the RAM part; the output register is refilled from it whenever it
    is empty or being popped, so a push into an empty queue reaches ``pop`` two cycles
    later, at every depth. ``push.ready`` is ``level != depth`` (not full), independent of
    ``pop.ready``: a full queue accepts again in the cycle after a pop.

    Raises
    ------
    ValueError
        If ``push_index`` does not fit ``index_bits`` while ``push_valid`` is set.
    """
    stored = state.stored
    level = len(stored) + state.out_valid
    push_ready = level != state.depth
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
        As :class:`hw.reciprocal.ReciprocalDivider` for bad ``threshold_bits`` (>= 1) or
        ``k`` (1..30).
    """
    return ReciprocalDividerState(
        threshold_bits=check_int("threshold_bits", threshold_bits, minimum=1),
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


# Learning-datapath units: shared pieces ------------------------------------------------------

#: Width of an unsigned input pixel (docs/numerics.md section 1: u8, 0..255).
PIXEL_BITS = 8


#: Contract ranges (minimum, maximum or ``None``) of the parameters several units share
#: (docs/numerics.md section 1): lanes per word, dV bits, weight bits.
_SHARED_PARAMS = {"lanes": (1, None), "g": (4, 32), "w": (2, 16)}


def _check_shared(**params: int) -> tuple[int, ...]:
    """Check parameters of :data:`_SHARED_PARAMS` (in the order given) with
    :func:`model.checks.check_int`; returns their values in that order."""
    return tuple(
        check_int(name, value, minimum=_SHARED_PARAMS[name][0], maximum=_SHARED_PARAMS[name][1])
        for name, value in params.items()
    )


def _sum_bits(g: int, w: int, fan_out: int) -> int:
    """Width of an exact spatial sum of ``fan_out`` products of g- and w-bit values,
    ``g + w + ceil(log2 fan_out)`` (signed)."""
    return g + w + ceil_log2(fan_out)


def _check_signed(name: str, value: int, bits: int) -> int:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not low <= value <= high:
        raise ValueError(f"{name}: {value} is out of range (allowed {low}..{high})")
    return int(value)


def _check_lanes(
    name: str, values: Sequence[int], lanes: int, bits: int, *, signed: bool
) -> tuple[int, ...]:
    values = tuple(values)
    if len(values) != lanes:
        raise ValueError(f"{name}: {len(values)} values given (allowed exactly {lanes}, one per lane)")
    check = _check_signed if signed else _check_port
    return tuple(int(check(f"{name}[{j}]", int(value), bits)) for j, value in enumerate(values))


def _check_code(name: str, code: int, codes: type[enum.IntEnum]) -> Any:
    try:
        return codes(code)
    except ValueError:
        allowed = ", ".join(f"{member.value} ({member.name})" for member in codes)
        raise ValueError(f"{name}: {code!r} is not a {codes.__name__} code (allowed {allowed})") from None


def _lane_enables(mask: int, lanes: int) -> np.ndarray:
    """Bit j of ``mask`` as element j of a bool array (any number of lanes)."""
    return np.array([mask >> j & 1 for j in range(lanes)], dtype=bool)


#: Inputs of a learning-datapath unit that are the stream handshake, not operand payload.
_HANDSHAKE = ("operand_valid", "result_ready")


def _payload(inputs: Any, *side: str) -> dict[str, Any]:
    """The operand payload fields of one cycle's ``inputs`` (field -> value), without the
    handshake and the ``side`` inputs; the names are those of the unit's ``*_result``."""
    skipped = {*_HANDSHAKE, *side}
    return {name: value for name, value in inputs._asdict().items() if name not in skipped}


def _pipeline_step(
    state: Any, inputs: Any, outputs: type, compute: Callable[[], Any], **extra: Any
) -> tuple[Any, Any, bool]:
    """One cycle of a stall-as-a-whole pipeline with ``len(state.slots)`` stages.

    ``state.slots`` holds the results in flight (``None`` for a bubble), the last one on the
    ``result`` port. Everything advances unless a valid result is refused; an operand is
    accepted while advancing and ``compute()`` (called only then) gives the stage-1 entry.
    Returns ``(outputs, next_state, accepted)``.
    """
    slots = state.slots
    head = slots[-1]
    advance = head is None or bool(inputs.result_ready)
    accepted = bool(inputs.operand_valid) and advance
    entry = compute() if accepted else None
    shown = outputs(advance, head is not None, *(head or ()), **extra)
    moved = (entry, *slots[:-1]) if advance else slots
    return shown, state._replace(slots=moved), accepted


def _result_step(
    state: Any, inputs: Any, outputs: type, result: Callable[..., Any]
) -> tuple[Any, Any]:
    """One cycle of a pipeline whose stage-1 entry is ``result(state.params, **payload)``
    (:func:`_pipeline_step`, :func:`_payload`). Returns ``(outputs, next_state)``."""
    shown, next_state, _ = _pipeline_step(
        state, inputs, outputs, lambda: result(state.params, **_payload(inputs))
    )
    return shown, next_state


# Neuron lane (hw.neuron.NeuronLane) -----------------------------------------------------------

#: Cycles from an accepted operand to its result (integrate stage, fire stage).
NEURON_LANE_LATENCY = 2


class NeuronOp(enum.IntEnum):
    """Operation code of the neuron lane (2 bits): bit 0 integrates, bit 1 fires."""

    NOP = 0  #: pass V through (``spike = window = 0``)
    INTEGRATE = 1  #: ``V = sat_v(V + x)`` (one event's weight)
    FIRE = 2  #: the fire scan on V (layers 1..L)
    INTEGRATE_FIRE = 3  #: ``V = sat_v(V + x)`` with a pixel x, then the fire scan (encoder)


class NeuronLaneParams(NamedTuple):
    """Checked parameters of the neuron lane (:func:`neuron_lane_params`).

    Attributes
    ----------
    w, v : int
        Weight and membrane widths (signed); thresholds are unsigned ``v - 1`` bits.
    """

    w: int
    v: int

    @property
    def threshold_bits(self) -> int:
        """Width of the unsigned threshold port, ``v - 1``."""
        return self.v - 1

    @property
    def operand_bits(self) -> int:
        """Width of the signed addend ``x``: a weight (signed w) or a pixel (u8), ``max(w, 9)``."""
        return max(self.w, PIXEL_BITS + 1)


def neuron_lane_params(*, w: int, v: int) -> NeuronLaneParams:
    """Check the neuron lane's parameters: ``w`` 2..16, ``v`` w..32 (docs/numerics.md).

    Raises
    ------
    TypeError, ValueError
        Naming the parameter (:func:`model.checks.check_int`).
    """
    (w,) = _check_shared(w=w)
    return NeuronLaneParams(w, check_int("v", v, minimum=w, maximum=32))


class NeuronLaneInputs(NamedTuple):
    """One cycle of neuron lane inputs: the ``operand`` stream and ``result.ready``.

    ``op`` is a :class:`NeuronOp` code; ``v`` the membrane read (signed v bits); ``x`` the
    addend (signed ``operand_bits``: a weight, or a pixel 0..255 for the encoder);
    ``vth`` the threshold (unsigned v - 1 bits, 1 or more when firing); ``reset_zero``
    selects reset-to-zero instead of reset-by-subtraction.
    """

    operand_valid: bool = False
    op: int = NeuronOp.NOP
    reset_zero: bool = False
    v: int = 0
    x: int = 0
    vth: int = 0
    result_ready: bool = False


class NeuronLaneResult(NamedTuple):
    """One neuron lane result.

    Attributes
    ----------
    v : int
        The membrane to store: after the integrate step and the reset (signed v bits).
    integrated : int
        V after the integrate step and before the reset, the value the fire compare saw
        (the readout's class membrane uses it at t = T).
    spike, window : bool
        ``S = V >= Vth`` and ``h = 2|V - Vth| < Vth`` on ``integrated`` (0 unless firing).
    """

    v: int
    integrated: int
    spike: bool
    window: bool


class NeuronLaneOutputs(NamedTuple):
    """One cycle of neuron lane outputs (payload fields only meaningful if ``result_valid``)."""

    operand_ready: bool
    result_valid: bool
    v: int = 0
    integrated: int = 0
    spike: bool = False
    window: bool = False


class NeuronLaneState(NamedTuple):
    """Registers of the neuron lane: parameters and the results in flight (stage 1 first)."""

    params: NeuronLaneParams
    slots: tuple[NeuronLaneResult | None, ...]


def neuron_lane_reset(*, w: int, v: int) -> NeuronLaneState:
    """State of an empty neuron lane after reset (parameters as :func:`neuron_lane_params`)."""
    return NeuronLaneState(neuron_lane_params(w=w, v=v), (None,) * NEURON_LANE_LATENCY)


def neuron_lane_result(
    params: NeuronLaneParams, op: int, v: int, x: int, vth: int, reset_zero: bool = False
) -> NeuronLaneResult:
    """The neuron lane's result for one operand (docs/numerics.md section 2).

    Integrate (``op`` bit 0): ``V = sat_v(V + x)``; fire (bit 1): :func:`model.fixed.fire_scan`
    on that V with reset-by-subtraction (or to zero with ``reset_zero``).

    Raises
    ------
    ValueError
        For an unknown ``op``, a value outside its port, or ``vth = 0`` when firing.
    """
    op = _check_code("op", op, NeuronOp)
    v = _check_signed("v", v, params.v)
    x = _check_signed("x", x, params.operand_bits)
    vth = int(_check_port("vth", vth, params.threshold_bits))
    integrated = saturate(v + x, params.v) if op & NeuronOp.INTEGRATE else v
    if not op & NeuronOp.FIRE:
        return NeuronLaneResult(integrated, integrated, False, False)
    after, spike, window = fire_scan(integrated, vth, reset="zero" if reset_zero else "subtract")
    return NeuronLaneResult(int(after), integrated, bool(spike), bool(window))


def neuron_lane_step(
    state: NeuronLaneState, inputs: NeuronLaneInputs
) -> tuple[NeuronLaneOutputs, NeuronLaneState]:
    """Advance the neuron lane by one cycle (latency :data:`NEURON_LANE_LATENCY`).

    Raises
    ------
    ValueError
        As :func:`neuron_lane_result`, for an operand being accepted.
    """
    return _result_step(state, inputs, NeuronLaneOutputs, neuron_lane_result)


# dV unit: the eq. 15 mux (hw.dv.DvUnit) -------------------------------------------------------

#: Cycles from an accepted operand to its result (partial products, their sum, then the
#: shift, saturation and mux).
DV_UNIT_LATENCY = 3


class DvUnitParams(NamedTuple):
    """Checked parameters of the dV unit (:func:`dv_unit_params`).

    Attributes
    ----------
    g, w : int
        dV and weight widths (signed).
    fan_out : int
        Largest fan-out whose spatial sum the unit takes (sets ``acc_bits``).
    k : int
        Reciprocal exponent K: ``R`` is unsigned ``k + 1`` bits.
    shift : int
        The mux shift ``K_l``: ``k`` for layers 1..L, ``k - 8 + fw`` for the encoder.
    """

    g: int
    w: int
    fan_out: int
    k: int
    shift: int

    @property
    def acc_bits(self) -> int:
        """Width of the exact spatial sum, ``g + w + ceil(log2 fan_out)`` (signed)."""
        return _sum_bits(self.g, self.w, self.fan_out)

    @property
    def scaled_bits(self) -> int:
        """Width of ``(acc * R) >> shift`` before saturation, ``acc_bits + 1 + k - shift``."""
        return self.acc_bits + 1 + self.k - self.shift


def dv_unit_params(*, g: int, w: int, fan_out: int, k: int, shift: int) -> DvUnitParams:
    """Check the dV unit's parameters.

    ``g`` 4..32, ``w`` 2..16, ``fan_out`` 1..2^(60 - g - w) (the spatial sum and one bit for
    the scaled product fit 61 bits), ``k`` 8..30, ``shift`` 0..k, and the scaled product
    ``(acc * R) >> shift`` at most 61 bits (:data:`model.fixed.MAX_BITS` - 1, the contract's
    bound, docs/numerics.md section 1): ``k`` too large for the product width is an error.

    Raises
    ------
    TypeError, ValueError
        Naming the parameter.
    """
    g, w = _check_shared(g=g, w=w)
    fan_out = check_int("fan_out", fan_out, minimum=1, maximum=1 << (MAX_BITS - 2 - g - w))
    k = check_int("k", k, minimum=8, maximum=30)
    params = DvUnitParams(g, w, fan_out, k, check_int("shift", shift, minimum=0, maximum=k))
    if params.scaled_bits > MAX_BITS - 1:
        raise ValueError(
            f"k: {k} is too large for the product width: (acc * R) >> shift needs "
            f"g + w + ceil(log2 fan_out) + 1 + k - shift = {params.scaled_bits} bits "
            f"(allowed up to {MAX_BITS - 1})"
        )
    return params


class DvUnitInputs(NamedTuple):
    """One cycle of dV unit inputs: the ``operand`` stream and ``result.ready``.

    ``acc``: the exact spatial sum (signed ``acc_bits``); ``r``: the neuron's reciprocal
    (unsigned k + 1 bits); ``window``: its h at this step; ``dv_next``: ``dV[t+1]``
    (signed g bits).
    """

    operand_valid: bool = False
    acc: int = 0
    r: int = 0
    window: bool = False
    dv_next: int = 0
    result_ready: bool = False


class DvUnitResult(NamedTuple):
    """One dV unit result: ``dv``, signed g bits."""

    dv: int


class DvUnitOutputs(NamedTuple):
    """One cycle of dV unit outputs (``dv`` only meaningful if ``result_valid``)."""

    operand_ready: bool
    result_valid: bool
    dv: int = 0


class DvUnitState(NamedTuple):
    """Registers of the dV unit: parameters and the results in flight (stage 1 first)."""

    params: DvUnitParams
    slots: tuple[DvUnitResult | None, ...]


def dv_unit_reset(*, g: int, w: int, fan_out: int, k: int, shift: int) -> DvUnitState:
    """State of an empty dV unit after reset (parameters as :func:`dv_unit_params`)."""
    params = dv_unit_params(g=g, w=w, fan_out=fan_out, k=k, shift=shift)
    return DvUnitState(params, (None,) * DV_UNIT_LATENCY)


def dv_unit_result(
    params: DvUnitParams, acc: int, r: int, window: bool, dv_next: int
) -> DvUnitResult:
    """Eq. 15 (:func:`model.fixed.mux_dv`): ``sat_g((acc * r) >> shift)`` if ``window``, else ``dv_next``.

    Raises
    ------
    ValueError
        For a value outside its port.
    """
    acc = _check_signed("acc", acc, params.acc_bits)
    r = int(_check_port("r", r, params.k + 1))
    dv_next = _check_signed("dv_next", dv_next, params.g)
    return DvUnitResult(int(mux_dv(acc, r, params.shift, bool(window), dv_next, params.g)))


def dv_unit_step(state: DvUnitState, inputs: DvUnitInputs) -> tuple[DvUnitOutputs, DvUnitState]:
    """Advance the dV unit by one cycle (latency :data:`DV_UNIT_LATENCY`).

    Raises
    ------
    ValueError
        As :func:`dv_unit_result`, for an operand being accepted.
    """
    return _result_step(state, inputs, DvUnitOutputs, dv_unit_result)


# Dot-product lane: the exact spatial sum (hw.dot_product.DotProductLane) ----------------------

#: Cycles from the accepted last word of a sum to the sum on the result port (the word's
#: products registered, then their adder tree into the running sum).
DOT_PRODUCT_LANE_LATENCY = 2


class DotProductLaneParams(NamedTuple):
    """Checked parameters of the dot-product lane (:func:`dot_product_lane_params`).

    Attributes
    ----------
    lanes : int
        P, products per word.
    g, w : int
        dV and weight widths (signed).
    fan_out : int
        Most nonzero products one sum may have (the layer's fan-out; the core's padding
        lanes carry zero weights).
    """

    lanes: int
    g: int
    w: int
    fan_out: int

    @property
    def acc_bits(self) -> int:
        """Width of the exact sum, ``g + w + ceil(log2 fan_out)`` (signed, cannot overflow)."""
        return _sum_bits(self.g, self.w, self.fan_out)

    @property
    def words(self) -> int:
        """Words of one full sum in the core, ``ceil(fan_out / lanes)``."""
        return -(-self.fan_out // self.lanes)


def dot_product_lane_params(*, lanes: int, g: int, w: int, fan_out: int) -> DotProductLaneParams:
    """Check the dot-product lane's parameters.

    ``lanes`` 1 or more, ``g`` 4..32, ``w`` 2..16, ``fan_out`` 1..2^(62 - g - w) (the exact
    sum fits 62 bits, docs/numerics.md section 1).

    Raises
    ------
    TypeError, ValueError
        Naming the parameter.
    """
    lanes, g, w = _check_shared(lanes=lanes, g=g, w=w)
    fan_out = check_int("fan_out", fan_out, minimum=1, maximum=1 << (MAX_BITS - g - w))
    return DotProductLaneParams(lanes, g, w, fan_out)


class DotProductLaneInputs(NamedTuple):
    """One cycle of dot-product lane inputs: the ``operand`` stream and ``result.ready``.

    One word of a sum: ``weights`` (P values, signed w bits), ``grads`` (P values of dV,
    signed g bits); ``last`` ends the sum.
    """

    operand_valid: bool = False
    weights: tuple[int, ...] = ()
    grads: tuple[int, ...] = ()
    last: bool = False
    result_ready: bool = False


class DotProductLaneResult(NamedTuple):
    """One completed sum: ``sum``, signed ``acc_bits``."""

    sum: int


class DotProductLaneOutputs(NamedTuple):
    """One cycle of dot-product lane outputs (``sum`` only meaningful if ``result_valid``)."""

    operand_ready: bool
    result_valid: bool
    sum: int = 0


class DotProductLaneState(NamedTuple):
    """Registers of the dot-product lane.

    Attributes
    ----------
    params : DotProductLaneParams
    slots : tuple
        The result register (``None`` when empty).
    acc : int
        The running sum of the words accepted since the last ``last`` (signed ``acc_bits``).
    """

    params: DotProductLaneParams
    slots: tuple[DotProductLaneResult | None, ...]
    acc: int


def dot_product_lane_reset(*, lanes: int, g: int, w: int, fan_out: int) -> DotProductLaneState:
    """State of an idle dot-product lane (parameters as :func:`dot_product_lane_params`)."""
    params = dot_product_lane_params(lanes=lanes, g=g, w=w, fan_out=fan_out)
    return DotProductLaneState(params, (None,) * DOT_PRODUCT_LANE_LATENCY, 0)


def dot_product_lane_word(
    params: DotProductLaneParams, weights: Sequence[int], grads: Sequence[int]
) -> int:
    """The exact partial sum of one word, ``sum_j weights[j] * grads[j]``.

    Raises
    ------
    ValueError
        For a lane count other than P or a value outside its port.
    """
    weights = _check_lanes("weights", weights, params.lanes, params.w, signed=True)
    grads = _check_lanes("grads", grads, params.lanes, params.g, signed=True)
    return sum(a * b for a, b in zip(weights, grads))


def dot_product_lane_step(
    state: DotProductLaneState, inputs: DotProductLaneInputs
) -> tuple[DotProductLaneOutputs, DotProductLaneState]:
    """Advance the dot-product lane by one cycle.

    A word accepted in cycle ``c`` is added to the running sum; with ``last`` the total is
    offered from cycle ``c + DOT_PRODUCT_LANE_LATENCY`` (until accepted) and the running
    sum restarts at 0.

    Raises
    ------
    ValueError
        As :func:`dot_product_lane_word`, or when the running sum leaves ``acc_bits`` (more
        nonzero products than ``fan_out`` in one sum: outside the unit's contract).
    """
    total = state.acc

    def compute() -> DotProductLaneResult | None:
        nonlocal total
        total += dot_product_lane_word(state.params, inputs.weights, inputs.grads)
        _check_signed("sum", total, state.params.acc_bits)
        return DotProductLaneResult(total) if inputs.last else None

    outputs, next_state, accepted = _pipeline_step(state, inputs, DotProductLaneOutputs, compute)
    if accepted:
        next_state = next_state._replace(acc=0 if inputs.last else total)
    return outputs, next_state


# Gradient accumulator: dW rows and dVth words (hw.accumulator.GradientAccumulator) -----------

#: Cycles from an accepted word to its result.
GRADIENT_ACCUMULATOR_LATENCY = 1


class AccumulateOp(enum.IntEnum):
    """Operation code of the gradient accumulator (1 bit)."""

    DW = 0  #: ``acc = sat_dw(acc + dV)`` (eq. 10, one word of a dW row)
    DVTH = 1  #: ``acc = sat_dth(acc - dV)`` (eq. 11, one dVth word)


class GradientAccumulatorParams(NamedTuple):
    """Checked parameters of the gradient accumulator (:func:`gradient_accumulator_params`).

    Attributes
    ----------
    lanes : int
        P, accumulators per word.
    g, dw, dth : int
        dV, dW and dVth widths (signed).
    """

    lanes: int
    g: int
    dw: int
    dth: int

    @property
    def acc_bits(self) -> int:
        """Width of the accumulator port, ``max(dw, dth)`` (signed)."""
        return max(self.dw, self.dth)


def gradient_accumulator_params(
    *, lanes: int, g: int, dw: int, dth: int
) -> GradientAccumulatorParams:
    """Check the parameters: ``lanes`` 1 or more, ``g`` 4..32, ``dw`` and ``dth`` 2..48 (the
    sum is formed exactly, then saturated, whichever operand is wider).

    Raises
    ------
    TypeError, ValueError
        Naming the parameter.
    """
    lanes, g = _check_shared(lanes=lanes, g=g)
    dw = check_int("dw", dw, minimum=2, maximum=48)
    return GradientAccumulatorParams(lanes, g, dw, check_int("dth", dth, minimum=2, maximum=48))


class GradientAccumulatorInputs(NamedTuple):
    """One cycle of gradient accumulator inputs: the ``operand`` stream and ``result.ready``.

    ``op``: an :class:`AccumulateOp` code; ``mask``: lane enables (bit j = lane j: the
    valid lanes of a dW row word, the lanes with ``S[t-1] = 1`` of a dVth word); ``acc``:
    the word read (P values, signed ``max(dw, dth)`` bits); ``dv``: P values of dV
    (signed g bits).
    """

    operand_valid: bool = False
    op: int = AccumulateOp.DW
    mask: int = 0
    acc: tuple[int, ...] = ()
    dv: tuple[int, ...] = ()
    result_ready: bool = False


class GradientAccumulatorResult(NamedTuple):
    """One word to write back: ``acc`` (P values; disabled lanes unchanged) and ``mask``."""

    acc: tuple[int, ...]
    mask: int


class GradientAccumulatorOutputs(NamedTuple):
    """One cycle of gradient accumulator outputs (payload only meaningful if ``result_valid``)."""

    operand_ready: bool
    result_valid: bool
    acc: tuple[int, ...] = ()
    mask: int = 0


class GradientAccumulatorState(NamedTuple):
    """Registers of the gradient accumulator: parameters and the result register."""

    params: GradientAccumulatorParams
    slots: tuple[GradientAccumulatorResult | None, ...]


def gradient_accumulator_reset(
    *, lanes: int, g: int, dw: int, dth: int
) -> GradientAccumulatorState:
    """State after reset (parameters as :func:`gradient_accumulator_params`)."""
    params = gradient_accumulator_params(lanes=lanes, g=g, dw=dw, dth=dth)
    return GradientAccumulatorState(params, (None,) * GRADIENT_ACCUMULATOR_LATENCY)


def gradient_accumulator_result(
    params: GradientAccumulatorParams,
    op: int,
    mask: int,
    acc: Sequence[int],
    dv: Sequence[int],
) -> GradientAccumulatorResult:
    """One word of eqs. 10/11 (docs/numerics.md section 3.4), saturating per enabled lane.

    Raises
    ------
    ValueError
        For an unknown ``op``, a lane count other than P or a value outside its port.
    """
    op = _check_code("op", op, AccumulateOp)
    mask = int(_check_port("mask", mask, params.lanes))
    current = np.array(_check_lanes("acc", acc, params.lanes, params.acc_bits, signed=True))
    grads = np.array(_check_lanes("dv", dv, params.lanes, params.g, signed=True))
    if op == AccumulateOp.DW:
        summed = saturate(current + grads, params.dw)
    else:
        summed = saturate(current - grads, params.dth)
    merged = np.where(_lane_enables(mask, params.lanes), summed, current)
    return GradientAccumulatorResult(tuple(int(value) for value in merged), mask)


def gradient_accumulator_step(
    state: GradientAccumulatorState, inputs: GradientAccumulatorInputs
) -> tuple[GradientAccumulatorOutputs, GradientAccumulatorState]:
    """Advance the gradient accumulator by one cycle (latency :data:`GRADIENT_ACCUMULATOR_LATENCY`).

    Raises
    ------
    ValueError
        As :func:`gradient_accumulator_result`, for an operand being accepted.
    """
    return _result_step(state, inputs, GradientAccumulatorOutputs, gradient_accumulator_result)


# Update unit: learning-rate shifts with rounding (hw.update.UpdateUnit) -----------------------

#: Cycles from an accepted word to its result (round-shift stage, subtract/clamp stage).
UPDATE_UNIT_LATENCY = 2
#: Width of the learning-rate shift (docs/numerics.md section 1: u5, 0..31).
SHIFT_BITS = 5


class UpdateOp(enum.IntEnum):
    """Operation code of the update unit (1 bit)."""

    WEIGHT = 0  #: ``W = sat_w(W - round_shift(dW, shift))``
    THRESHOLD = 1  #: ``Vth = clamp(Vth - round_shift(dVth, shift), 1, 2^(v-1) - 1)``


class Rounding(enum.IntEnum):
    """Rounding code (2 bits) of :func:`model.fixed.round_shift`, in the order of ``ROUNDINGS``."""

    FLOOR = 0
    NEAREST = 1
    STOCHASTIC = 2


class UpdateUnitParams(NamedTuple):
    """Checked parameters of the update unit (:func:`update_unit_params`).

    Attributes
    ----------
    lanes : int
        P, values per word.
    w, v : int
        Weight and membrane widths (thresholds are unsigned ``v - 1`` bits, 1..2^(v-1)-1).
    dw, dth : int
        Weight- and threshold-gradient accumulator widths (signed).
    lfsr_init : int
        The LFSR's state after reset, 1..2^32 - 1.
    """

    lanes: int
    w: int
    v: int
    dw: int
    dth: int
    lfsr_init: int = 1

    @property
    def grad_bits(self) -> int:
        """Width of the accumulator port, ``max(dw, dth)`` (signed)."""
        return max(self.dw, self.dth)

    @property
    def threshold_max(self) -> int:
        """Largest threshold, ``2^(v-1) - 1``."""
        return (1 << (self.v - 1)) - 1


def update_unit_params(
    *, lanes: int, w: int, v: int, dw: int, dth: int, lfsr_init: int = 1
) -> UpdateUnitParams:
    """Check the parameters: ``lanes`` 1 or more, ``w`` 2..16, ``v`` w..32, ``dw``/``dth`` 4..48,
    ``lfsr_init`` 1..2^32 - 1.

    Raises
    ------
    TypeError, ValueError
        Naming the parameter.
    """
    lanes, w = _check_shared(lanes=lanes, w=w)
    v = check_int("v", v, minimum=w, maximum=32)
    dw = check_int("dw", dw, minimum=4, maximum=48)
    dth = check_int("dth", dth, minimum=4, maximum=48)
    lfsr_init = check_int("lfsr_init", lfsr_init, minimum=1, maximum=(1 << LFSR_BITS) - 1)
    return UpdateUnitParams(lanes, w, v, dw, dth, lfsr_init)


class UpdateUnitInputs(NamedTuple):
    """One cycle of update unit inputs.

    The ``operand`` stream carries one word: ``op`` (:class:`UpdateOp`), ``rounding``
    (:class:`Rounding`), ``shift`` (0..31, the learning-rate shift), ``mask`` (lane enables:
    the valid lanes; each draws from the LFSR in stochastic mode), ``value`` (P weights or
    thresholds, signed v bits) and ``grad`` (P accumulators, signed ``max(dw, dth)`` bits).
    ``lfsr_load`` loads the LFSR from ``lfsr_seed`` (``seed mod 2^32``, 0 mapped to 1) at the
    end of the cycle, after the draws of a word accepted in the same cycle.
    """

    operand_valid: bool = False
    op: int = UpdateOp.WEIGHT
    rounding: int = Rounding.FLOOR
    shift: int = 0
    mask: int = 0
    value: tuple[int, ...] = ()
    grad: tuple[int, ...] = ()
    result_ready: bool = False
    lfsr_load: bool = False
    lfsr_seed: int = 0


class UpdateUnitResult(NamedTuple):
    """One updated word: ``value`` (P values; disabled lanes unchanged), ``mask``, and
    ``changed`` (bit j: lane j is enabled and its value changed, e.g. a threshold whose
    reciprocal must be recomputed)."""

    value: tuple[int, ...]
    mask: int
    changed: int


class UpdateUnitOutputs(NamedTuple):
    """One cycle of update unit outputs (payload only meaningful if ``result_valid``);
    ``lfsr_state`` is the LFSR register (the checkpoint's ``lfsr_state``)."""

    operand_ready: bool
    result_valid: bool
    value: tuple[int, ...] = ()
    mask: int = 0
    changed: int = 0
    lfsr_state: int = 1


class UpdateUnitState(NamedTuple):
    """Registers of the update unit: parameters, results in flight, the LFSR (never 0)."""

    params: UpdateUnitParams
    slots: tuple[UpdateUnitResult | None, ...]
    lfsr: int


def update_unit_reset(
    *, lanes: int, w: int, v: int, dw: int, dth: int, lfsr_init: int = 1
) -> UpdateUnitState:
    """State after reset: empty pipeline, LFSR state ``lfsr_init`` (parameters as
    :func:`update_unit_params`)."""
    params = update_unit_params(lanes=lanes, w=w, v=v, dw=dw, dth=dth, lfsr_init=lfsr_init)
    return UpdateUnitState(params, (None,) * UPDATE_UNIT_LATENCY, params.lfsr_init)


def update_unit_draws(
    params: UpdateUnitParams, lfsr: int, rounding: int, mask: int
) -> tuple[tuple[int, ...], int]:
    """The LFSR words of one word and the LFSR state after it (docs/numerics.md 4.2).

    In stochastic mode every enabled lane, ascending, takes one step and draws the new
    state (:func:`model.fixed.lfsr_step`); disabled lanes draw 0, and the other modes
    leave the LFSR alone. Returns ``(draws, next_state)``, P draws.
    """
    draws = []
    stochastic = _check_code("rounding", rounding, Rounding) == Rounding.STOCHASTIC
    for enabled in _lane_enables(mask, params.lanes):
        if stochastic and enabled:
            lfsr = lfsr_step(lfsr)
            draws.append(lfsr)
        else:
            draws.append(0)
    return tuple(draws), lfsr


def update_unit_result(
    params: UpdateUnitParams,
    op: int,
    rounding: int,
    shift: int,
    mask: int,
    value: Sequence[int],
    grad: Sequence[int],
    draws: Sequence[int],
) -> UpdateUnitResult:
    """One word of the update (docs/numerics.md section 4) with :func:`model.fixed.round_shift`.

    Weights: ``sat_w(W - round_shift(dW, shift))``; thresholds:
    ``clamp(Vth - round_shift(dVth, shift), 1, 2^(v-1) - 1)``; ``draws`` from
    :func:`update_unit_draws` (used in stochastic mode).

    Raises
    ------
    ValueError
        For an unknown code, a lane count other than P or a value outside its port.
    """
    op = _check_code("op", op, UpdateOp)
    mode = ROUNDINGS[_check_code("rounding", rounding, Rounding)]
    shift = int(_check_port("shift", shift, SHIFT_BITS))
    mask = int(_check_port("mask", mask, params.lanes))
    current = np.array(_check_lanes("value", value, params.lanes, params.v, signed=True))
    grads = np.array(_check_lanes("grad", grad, params.lanes, params.grad_bits, signed=True))
    steps = round_shift(grads, shift, mode, np.array(draws, dtype=np.int64))
    if op == UpdateOp.WEIGHT:
        updated = saturate(current - steps, params.w)
    else:
        updated = np.maximum(saturate(current - steps, params.v - 1, signed=False), 1)
    enables = _lane_enables(mask, params.lanes)
    merged = np.where(enables, updated, current)
    changed = sum(1 << int(j) for j in np.flatnonzero(enables & (merged != current)))
    return UpdateUnitResult(tuple(int(x) for x in merged), mask, int(changed))


def update_unit_step(
    state: UpdateUnitState, inputs: UpdateUnitInputs
) -> tuple[UpdateUnitOutputs, UpdateUnitState]:
    """Advance the update unit by one cycle (latency :data:`UPDATE_UNIT_LATENCY`).

    The draws of a word accepted in cycle ``c`` come from the LFSR state of cycle ``c``
    (``lfsr_state`` output); the LFSR then holds the state after them, or the loaded seed.

    Raises
    ------
    ValueError
        As :func:`update_unit_result`, for an operand being accepted, or for a seed that
        does not fit 32 bits while ``lfsr_load`` is set.
    """
    lfsr = state.lfsr

    def compute() -> UpdateUnitResult:
        nonlocal lfsr
        draws, lfsr = update_unit_draws(state.params, lfsr, inputs.rounding, inputs.mask)
        return update_unit_result(
            state.params, draws=draws, **_payload(inputs, "lfsr_load", "lfsr_seed")
        )

    outputs, next_state, _ = _pipeline_step(
        state, inputs, UpdateUnitOutputs, compute, lfsr_state=state.lfsr
    )
    if inputs.lfsr_load:
        lfsr = LFSR.from_seed(int(_check_port("lfsr_seed", inputs.lfsr_seed, 32))).state
    return outputs, next_state._replace(lfsr=lfsr)


# Registry of the learning-datapath models ----------------------------------------------------


class StreamModel(NamedTuple):
    """The cycle model of one learning-datapath unit, as benches and tests look it up.

    Attributes
    ----------
    params, reset, step : callable
        The unit's ``*_params``, ``*_reset`` and ``*_step`` functions.
    inputs, outputs : type
        Its inputs and outputs named tuple classes.
    latency : int
        Cycles from an accepted operand to its result.
    result : callable or None
        ``result(params, **payload)``: the result of one operand, or ``None`` where it
        depends on more than the operand (the dot-product lane's running sum, the update
        unit's LFSR draws).
    side_inputs, side_outputs : tuple of str
        Ports outside the two streams (the same names in model and hardware).
    """

    params: Callable[..., Any]
    reset: Callable[..., Any]
    step: Callable[[Any, Any], tuple[Any, Any]]
    inputs: type
    outputs: type
    latency: int
    result: Callable[..., Any] | None = None
    side_inputs: tuple[str, ...] = ()
    side_outputs: tuple[str, ...] = ()


#: Unit name (as in :data:`hw.export.UNITS`) -> its :class:`StreamModel`.
STREAM_MODELS: Mapping[str, StreamModel] = MappingProxyType({
    "neuron_lane": StreamModel(
        neuron_lane_params, neuron_lane_reset, neuron_lane_step, NeuronLaneInputs,
        NeuronLaneOutputs, NEURON_LANE_LATENCY, neuron_lane_result,
    ),
    "dv_unit": StreamModel(
        dv_unit_params, dv_unit_reset, dv_unit_step, DvUnitInputs, DvUnitOutputs,
        DV_UNIT_LATENCY, dv_unit_result,
    ),
    "dot_product_lane": StreamModel(
        dot_product_lane_params, dot_product_lane_reset, dot_product_lane_step,
        DotProductLaneInputs, DotProductLaneOutputs, DOT_PRODUCT_LANE_LATENCY,
    ),
    "gradient_accumulator": StreamModel(
        gradient_accumulator_params, gradient_accumulator_reset, gradient_accumulator_step,
        GradientAccumulatorInputs, GradientAccumulatorOutputs, GRADIENT_ACCUMULATOR_LATENCY,
        gradient_accumulator_result,
    ),
    "update_unit": StreamModel(
        update_unit_params, update_unit_reset, update_unit_step, UpdateUnitInputs,
        UpdateUnitOutputs, UPDATE_UNIT_LATENCY, None, ("lfsr_load", "lfsr_seed"),
        ("lfsr_state",),
    ),
})
