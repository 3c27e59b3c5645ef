"""dV unit: the eq. 15 mux (spatial sum times the reciprocal, shift, saturate; or the carry)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data

from hw.datapath import Pipeline, StreamUnit, saturate
from model.units import DV_UNIT_LATENCY, DvUnitParams, dv_unit_params

__all__ = ["PARTIAL_BITS", "DvUnit", "layouts"]

#: Bits of ``acc`` per partial product: an unsigned chunk fits a multiplier block's 18-bit
#: signed input.
PARTIAL_BITS = 17


def layouts(params: DvUnitParams) -> tuple[data.StructLayout, data.StructLayout]:
    """Payload layouts ``(operand, result)`` of a dV unit with checked ``params``.

    Field names are those of :class:`model.units.DvUnitInputs` / ``DvUnitResult``.
    """
    operand = data.StructLayout({
        "acc": signed(params.acc_bits),
        "r": unsigned(params.k + 1),
        "window": 1,
        "dv_next": signed(params.g),
    })
    return operand, data.StructLayout({"dv": signed(params.g)})


class DvUnit(StreamUnit):
    """The eq. 15 mux for one neuron per cycle (docs/numerics.md section 3.3).

    ``dv = sat_g((acc * r) >> shift)`` when ``window`` (h = 1), else ``dv = dv_next`` (the
    temporal carry ``dV[t+1]``). ``acc * r`` is formed at full width (signed
    ``acc_bits`` times unsigned ``k + 1`` bits), the shift is arithmetic (floor) and the
    saturation to g bits is the only one.

    Three pipeline stages (:data:`model.units.DV_UNIT_LATENCY`): the partial products of
    ``acc``'s :data:`PARTIAL_BITS`-bit chunks with ``r`` (one multiplier block each), their
    sum, then the shift, saturation and mux; stall-as-a-whole handshake (:class:`hw.datapath.StreamUnit`).
    The cycle-accurate reference is :func:`model.units.dv_unit_step`.

    Parameters
    ----------
    g : int
        dV bits, 4..32 (signed).
    w : int
        Weight bits, 2..16 (signed).
    fan_out : int
        Largest fan-out of the spatial sums: ``acc`` has ``g + w + ceil(log2 fan_out)``
        bits; 1..2^(60 - g - w).
    k : int
        Reciprocal exponent K, 8..30: ``r`` has ``k + 1`` bits.
    shift : int
        The mux shift K_l, 0..k: ``k`` for layers 1..L, ``k - 8 + fw`` for the encoder.

    Members
    -------
    operand : ``In(stream.Signature(layouts(params)[0]))``
        ``acc`` (the exact spatial sum), ``r`` (``floor(2^K / Vth)``), ``window`` (h),
        ``dv_next`` (signed g).
    result : ``Out(stream.Signature(layouts(params)[1]))``
        ``dv`` (signed g).

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        Naming the parameter, for a value out of its range, or ``k`` too large for the
        product width: ``g + w + ceil(log2 fan_out) + 1 + k - shift`` above 61 bits
        (:func:`model.units.dv_unit_params`).
    """

    LATENCY = DV_UNIT_LATENCY

    def __init__(self, *, g: int, w: int, fan_out: int, k: int, shift: int) -> None:
        params = dv_unit_params(g=g, w=w, fan_out=fan_out, k=k, shift=shift)
        super().__init__(params, layouts(params))

    def elaborate_datapath(
        self, m: Module, control: Pipeline, operand: data.View, result: data.View
    ) -> None:
        params = self.params

        # Stage 1: the partial products of acc's PARTIAL_BITS chunks with R (low chunks
        # unsigned, the top chunk signed), each registered: a multiplier block and its output
        # register (no reset, as the block's; the flags say when a product counts); the
        # flags follow.
        partials = []
        for low in range(0, params.acc_bits, PARTIAL_BITS):
            high = min(low + PARTIAL_BITS, params.acc_bits)
            top = high == params.acc_bits
            chunk = operand.acc[low:high]
            width = high - low + params.k + 1
            partial = Signal(signed(width) if top else unsigned(width), name=f"partial{low}", reset_less=True)
            partials.append((low, partial))
            with m.If(control.advance):
                m.d.sync += partial.eq((chunk.as_signed() if top else chunk) * operand.r)
        window = [Signal(name=f"window{n}") for n in range(2)]
        dv_next = [Signal(signed(params.g), name=f"dv_next{n}") for n in range(2)]
        with m.If(control.advance):
            m.d.sync += [window[0].eq(operand.window), dv_next[0].eq(operand.dv_next)]
            m.d.sync += [window[1].eq(window[0]), dv_next[1].eq(dv_next[0])]

        # Stage 2: the full-width product (|acc * r| < 2^(acc_bits + k)), registered.
        product = Signal(signed(params.acc_bits + params.k + 1))
        with m.If(control.advance):
            m.d.sync += product.eq(sum(partial << low for low, partial in partials))

        # Stage 3: floor shift, saturation to g bits, the eq. 15 mux.
        scaled = saturate(product >> params.shift, params.g)
        with m.If(control.advance):
            m.d.sync += result.dv.eq(Mux(window[1], scaled, dv_next[1]))
