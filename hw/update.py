"""Update unit: learning-rate shift with floor / nearest / stochastic rounding, P lanes."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from hw.datapath import Pipeline, StreamUnit, clamp, saturate
from model.fixed import LFSR_BITS, LFSR_TAPS
from model.units import (
    SHIFT_BITS,
    UPDATE_UNIT_LATENCY,
    Rounding,
    UpdateOp,
    UpdateUnitParams,
    update_unit_params,
)

__all__ = ["UpdateUnit", "layouts", "lfsr_next", "lfsr_seeded"]


def layouts(params: UpdateUnitParams) -> tuple[data.StructLayout, data.StructLayout]:
    """Payload layouts ``(operand, result)`` of an update unit with checked ``params``.

    Field names are those of :class:`model.units.UpdateUnitInputs` / ``UpdateUnitResult``.
    """
    lanes = params.lanes
    values = data.ArrayLayout(signed(params.v), lanes)
    operand = data.StructLayout({
        "op": UpdateOp,
        "rounding": Rounding,
        "shift": unsigned(SHIFT_BITS),
        "mask": unsigned(lanes),
        "value": values,
        "grad": data.ArrayLayout(signed(params.grad_bits), lanes),
    })
    result = data.StructLayout({
        "value": values,
        "mask": unsigned(lanes),
        "changed": unsigned(lanes),
    })
    return operand, result


def lfsr_seeded(seed: Value) -> Value:
    """The LFSR state a load of ``seed`` gives: ``seed``, or 1 for 0 (never the all-zero state)."""
    return Mux(seed.any(), seed, 1)


def lfsr_next(state: Value) -> Value:
    """One step of the contract's 32-bit Galois LFSR (:func:`model.fixed.lfsr_step`)."""
    shifted = state >> 1
    return Mux(state[0], shifted ^ LFSR_TAPS, shifted)


class UpdateUnit(StreamUnit):
    """Weight and threshold update with a shifted learning rate (docs/numerics.md section 4).

    Each operand is one memory word: ``P`` values with the ``P`` gradient accumulators of
    the same neurons or synapses, a lane-enable ``mask`` (the valid lanes), the ``op``, the
    learning-rate ``shift`` (0..31) and the ``rounding`` of ``round_shift(x, shift)``
    (section 4.1): floor ``x >> s``; nearest ``(x + 2^(s-1)) >> s``; stochastic
    ``(x + r) >> s`` with ``r`` the low ``s`` bits of the LFSR after one step. Per enabled
    lane:

    * :attr:`~model.units.UpdateOp.WEIGHT`: ``W = sat_w(W - round_shift(dW, s))``;
    * :attr:`~model.units.UpdateOp.THRESHOLD`:
      ``Vth = clamp(Vth - round_shift(dVth, s), 1, 2^(v-1) - 1)``.

    Disabled lanes come back unchanged; ``changed`` flags the enabled lanes whose value
    changed (the thresholds whose reciprocal must be recomputed).

    LFSR (section 4.2, the 32-bit Galois LFSR, state 1 after reset): in stochastic mode an
    accepted word steps it once per enabled lane, lanes ascending, all within the cycle
    (lane ``j`` draws the state after its own step); the other modes leave it alone.
    ``lfsr_load`` loads ``lfsr_seed`` (0 becomes 1) at the end of the cycle, after the
    draws of a word accepted in that cycle; ``lfsr_state`` shows the register.

    Two pipeline stages (:data:`model.units.UPDATE_UNIT_LATENCY`): draws and the rounded
    shift, then the subtraction and saturation/clamp; stall-as-a-whole handshake
    (:class:`hw.datapath.StreamUnit`). The cycle-accurate reference is
    :func:`model.units.update_unit_step`.

    Parameters
    ----------
    lanes : int
        P, values per word, 1 or more.
    w : int
        Weight bits, 2..16 (signed).
    v : int
        Membrane bits, w..32: thresholds are ``1..2^(v-1) - 1``; the ``value`` lanes are
        signed v bits (weights sign-extended).
    dw, dth : int
        Gradient accumulator bits, 4..48 (signed); ``grad`` lanes are ``max(dw, dth)`` bits.
    lfsr_init : int
        The LFSR's state after reset, 1..2^32 - 1 (default 1).

    Members
    -------
    operand : ``In(stream.Signature(layouts(params)[0]))``
        ``op`` (:class:`~model.units.UpdateOp`), ``rounding``
        (:class:`~model.units.Rounding`), ``shift`` (u5), ``mask`` (P bits), ``value``
        (P x signed v), ``grad`` (P x signed ``max(dw, dth)``).
    result : ``Out(stream.Signature(layouts(params)[1]))``
        ``value`` (the word to write back), ``mask``, ``changed`` (P bits).
    lfsr_load : ``In(1)``
        Strobe: load the LFSR from ``lfsr_seed``.
    lfsr_seed : ``In(32)``
        Seed (``seed mod 2^32``; 0 loads 1).
    lfsr_state : ``Out(32)``
        The LFSR register (never 0).

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        Naming the parameter (:func:`model.units.update_unit_params`).
    """

    LATENCY = UPDATE_UNIT_LATENCY

    def __init__(self, *, lanes: int, w: int, v: int, dw: int, dth: int, lfsr_init: int = 1) -> None:
        params = update_unit_params(lanes=lanes, w=w, v=v, dw=dw, dth=dth, lfsr_init=lfsr_init)
        super().__init__(params, layouts(params), {
            "lfsr_load": In(1),
            "lfsr_seed": In(LFSR_BITS),
            "lfsr_state": Out(LFSR_BITS, init=params.lfsr_init),
        })

    def elaborate_datapath(
        self, m: Module, control: Pipeline, operand: data.View, result: data.View
    ) -> None:
        params = self.params
        lanes = params.lanes

        # Datapath, stage 1: LFSR draws (one step per enabled lane) and the rounded shift.
        shift = operand.shift
        nearest = operand.rounding == Rounding.NEAREST
        stochastic = operand.rounding == Rounding.STOCHASTIC
        half = (Const(1, LFSR_BITS) << shift)[1:LFSR_BITS + 1]  # 2^(s-1), 0 for s = 0
        lfsr = self.lfsr_state
        steps = Signal(data.ArrayLayout(signed(params.grad_bits + 1), lanes))
        value = Signal(data.ArrayLayout(signed(params.v), lanes))
        op = Signal(UpdateOp)
        mask = Signal(lanes)
        low_mask = Signal(LFSR_BITS - 1)  # r = draw & low_mask, the low s bits (s <= 31)
        m.d.comb += low_mask.eq(Cat(shift > b for b in range(LFSR_BITS - 1)))
        rounded = []
        for j in range(lanes):
            draw = Signal(LFSR_BITS, name=f"draw{j}")
            stepped = Signal(LFSR_BITS, name=f"lfsr{j + 1}")
            m.d.comb += [
                draw.eq(lfsr_next(lfsr)),
                stepped.eq(Mux(stochastic & operand.mask[j], draw, lfsr)),
            ]
            lfsr = stepped
            addend = Mux(nearest, half, Mux(stochastic, draw & low_mask, 0))
            rounded.append((operand.grad[j] + addend) >> shift)
        with m.If(control.advance):
            m.d.sync += [steps[j].eq(rounded[j]) for j in range(lanes)]
            m.d.sync += [value.eq(operand.value), op.eq(operand.op), mask.eq(operand.mask)]

        # LFSR register: the draws of an accepted stochastic word, or a load.
        seed = self.lfsr_seed
        with m.If(self.lfsr_load):
            m.d.sync += self.lfsr_state.eq(lfsr_seeded(seed))
        with m.Elif(control.accept):
            m.d.sync += self.lfsr_state.eq(lfsr)

        # Datapath, stage 2: subtract, saturate (weights) or clamp (thresholds), merge.
        threshold = op == UpdateOp.THRESHOLD
        merged, changed = [], []
        for j in range(lanes):
            difference = value[j] - steps[j]
            updated = Signal(signed(params.v), name=f"updated{j}")
            m.d.comb += updated.eq(Mux(
                threshold,
                clamp(difference, 1, params.threshold_max, params.v),
                saturate(difference, params.w),
            ))
            merged.append(Mux(mask[j], updated, value[j]))
            changed.append(mask[j] & (updated != value[j]))
        with m.If(control.advance):
            m.d.sync += [result.value[j].eq(merged[j]) for j in range(lanes)]
            m.d.sync += [result.mask.eq(mask), result.changed.eq(Cat(changed))]
