"""Sequential restoring divider for the per-channel reciprocal R = floor(2^K / Vth)."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from model.checks import check_int

__all__ = ["ReciprocalDivider"]


class ReciprocalDivider(wiring.Component):
    """Compute ``R = floor(2^k / vth)`` one quotient bit per cycle.

    A restoring long division of the constant dividend ``2^k`` by the unsigned threshold
    ``vth`` (``threshold_bits`` wide), most significant quotient bit first, ``k + 1``
    iterations. The result is unsigned, ``k + 1`` bits (``vth = 1`` gives ``2^k``).

    Handshake and fixed latency (cycles of the ``sync`` domain): ``vth.ready`` is high only
    while the divider is idle; an operand accepted in cycle ``c`` yields ``result.valid`` in
    cycle ``c + k + 2`` (``busy`` is high in cycles ``c + 1 .. c + k + 1``), and the result
    is held until ``result.ready``; the divider is idle again in the cycle after that
    handshake. The numerics contract guarantees ``vth >= 1``; ``vth = 0`` gives all ones
    (``2^(k+1) - 1``), which the restoring algorithm produces naturally.

    The cycle-accurate reference is :func:`model.units.reciprocal_divider_step`.

    Parameters
    ----------
    threshold_bits : int
        Width of the unsigned threshold ``vth``, 1 or more (the membrane width ``v`` less 1).
    k : int
        Reciprocal scale exponent ``K``, 1..30 (the range of :func:`model.fixed.reciprocal`;
        the numerics contract uses 8..30); the result has ``k + 1`` bits.

    Members
    -------
    vth : ``In(stream.Signature(unsigned(threshold_bits)))``
        Threshold operand, ``1 .. 2^threshold_bits - 1``.
    result : ``Out(stream.Signature(unsigned(k + 1)))``
        ``floor(2^k / vth)``, valid until accepted.
    busy : ``Out(1)``
        High while dividing.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If ``threshold_bits`` is below 1 or ``k`` is outside 1..30 (the message names the
        parameter).
    """

    def __init__(self, *, threshold_bits: int, k: int) -> None:
        self.threshold_bits = check_int("threshold_bits", threshold_bits, minimum=1)
        self.k = check_int("k", k, minimum=1, maximum=30)
        super().__init__({
            "vth": In(stream.Signature(unsigned(self.threshold_bits))),
            "result": Out(stream.Signature(unsigned(self.k + 1))),
            "busy": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()

        # Datapath: remainder < 2 * divisor always fits threshold_bits + 1 bits.
        divisor = Signal(self.threshold_bits)
        remainder = Signal(self.threshold_bits + 1)
        quotient = Signal(self.k + 1)
        bits_left = Signal(range(self.k + 1))

        fits = remainder >= divisor
        kept = Mux(fits, remainder - divisor, remainder)[:self.threshold_bits]
        m.d.comb += self.result.payload.eq(quotient)

        # Control: idle (neither busy nor holding a result) -> busy for k + 1 cycles -> valid
        idle = ~self.busy & ~self.result.valid
        accept = self.vth.valid & idle
        last_bit = ~bits_left.any()
        delivered = self.result.valid & self.result.ready
        m.d.comb += self.vth.ready.eq(idle)

        with m.If(accept):
            m.d.sync += [
                divisor.eq(self.vth.payload),
                remainder.eq(1),  # the dividend's single one bit, 2^k
                quotient.eq(0),
                bits_left.eq(self.k),
                self.busy.eq(1),
            ]
        with m.If(self.busy):
            m.d.sync += [
                remainder.eq(Cat(0, kept)),  # the dividend's remaining bits are zero
                quotient.eq(Cat(fits, quotient[:-1])),
                bits_left.eq(bits_left - 1),
            ]
            with m.If(last_bit):
                m.d.sync += [self.busy.eq(0), self.result.valid.eq(1)]
        with m.If(delivered):
            m.d.sync += self.result.valid.eq(0)

        return m
