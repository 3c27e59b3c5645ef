"""Gradient accumulator: saturating dW row and dVth word read-modify-write, P lanes."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, signed, unsigned
from amaranth.lib import data

from hw.datapath import Pipeline, StreamUnit, saturate
from model.units import (
    GRADIENT_ACCUMULATOR_LATENCY,
    AccumulateOp,
    GradientAccumulatorParams,
    gradient_accumulator_params,
)

__all__ = ["GradientAccumulator", "layouts"]


def layouts(params: GradientAccumulatorParams) -> tuple[data.StructLayout, data.StructLayout]:
    """Payload layouts ``(operand, result)`` of a gradient accumulator with checked ``params``.

    Field names are those of :class:`model.units.GradientAccumulatorInputs` / ``...Result``.
    """
    lanes = params.lanes
    accumulators = data.ArrayLayout(signed(params.acc_bits), lanes)
    operand = data.StructLayout({
        "op": AccumulateOp,
        "mask": unsigned(lanes),
        "acc": accumulators,
        "dv": data.ArrayLayout(signed(params.g), lanes),
    })
    return operand, data.StructLayout({"acc": accumulators, "mask": unsigned(lanes)})


class GradientAccumulator(StreamUnit):
    """The modify step of the DW and DVTH read-modify-writes (docs/numerics.md section 3.4).

    Each operand is one memory word as read, ``P`` accumulators, with the ``P`` dV of the
    word's neurons and a lane-enable ``mask``:

    * :attr:`~model.units.AccumulateOp.DW` (eq. 10, a word of the dW row of a presynaptic
      spike): ``acc = sat_dw(acc + dV)`` on the enabled (valid) lanes;
    * :attr:`~model.units.AccumulateOp.DVTH` (eq. 11): ``acc = sat_dth(acc - dV)`` on the
      enabled lanes (those with ``S[t-1] = 1``).

    Disabled lanes come back unchanged; ``mask`` comes back with the word as its write
    enables. One pipeline stage (:data:`model.units.GRADIENT_ACCUMULATOR_LATENCY`),
    stall-as-a-whole handshake (:class:`hw.datapath.StreamUnit`). The cycle-accurate reference
    is :func:`model.units.gradient_accumulator_step`.

    Parameters
    ----------
    lanes : int
        P, accumulators per word, 1 or more.
    g : int
        dV bits, 4..32 (signed).
    dw, dth : int
        dW and dVth accumulator bits, 2..48 (signed; the sums are exact, then saturated); the ``acc`` lanes are
        ``max(dw, dth)`` bits wide.

    Members
    -------
    operand : ``In(stream.Signature(layouts(params)[0]))``
        ``op`` (:class:`~model.units.AccumulateOp`, 1 bit), ``mask`` (P bits), ``acc``
        (P x signed ``max(dw, dth)``), ``dv`` (P x signed g).
    result : ``Out(stream.Signature(layouts(params)[1]))``
        ``acc`` (the word to write back), ``mask``.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        Naming the parameter (:func:`model.units.gradient_accumulator_params`).
    """

    LATENCY = GRADIENT_ACCUMULATOR_LATENCY

    def __init__(self, *, lanes: int, g: int, dw: int, dth: int) -> None:
        params = gradient_accumulator_params(lanes=lanes, g=g, dw=dw, dth=dth)
        super().__init__(params, layouts(params))

    def elaborate_datapath(
        self, m: Module, control: Pipeline, operand: data.View, result: data.View
    ) -> None:
        params = self.params

        # Datapath: one adder per lane, ``acc + dV`` or ``acc - dV`` (``~dV`` and a carry in),
        # saturated to the op's width.
        threshold = operand.op == AccumulateOp.DVTH
        with m.If(control.advance):
            for j in range(params.lanes):
                acc, dv = operand.acc[j], operand.dv[j]
                total = acc + Mux(threshold, ~dv, dv) + threshold
                updated = Mux(threshold, saturate(total, params.dth), saturate(total, params.dw))
                m.d.sync += result.acc[j].eq(Mux(operand.mask[j], updated, acc))
            m.d.sync += result.mask.eq(operand.mask)
