"""Neuron lane: saturating integrate, fire compare, window flag h, reset (one neuron per cycle)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data

from hw.datapath import Pipeline, StreamUnit, saturate
from model.units import NEURON_LANE_LATENCY, NeuronLaneParams, NeuronOp, neuron_lane_params

__all__ = ["NeuronLane", "layouts"]


def layouts(params: NeuronLaneParams) -> tuple[data.StructLayout, data.StructLayout]:
    """Payload layouts ``(operand, result)`` of a neuron lane with checked ``params``.

    Field names are those of :class:`model.units.NeuronLaneInputs` / ``NeuronLaneResult``.
    """
    operand = data.StructLayout({
        "op": NeuronOp,
        "reset_zero": 1,
        "v": signed(params.v),
        "x": signed(params.operand_bits),
        "vth": unsigned(params.threshold_bits),
    })
    result = data.StructLayout({
        "v": signed(params.v),
        "integrated": signed(params.v),
        "spike": 1,
        "window": 1,
    })
    return operand, result


class NeuronLane(StreamUnit):
    """One neuron per cycle: integrate, fire compare, window flag, reset (eqs. 2, 8, 14).

    The SCAN and INTEGRATE engines of the core (docs/architecture.md section 3) instantiate
    ``P`` lanes side by side. Per operand (docs/numerics.md section 2):

    * ``op`` bit 0 (:attr:`~model.units.NeuronOp.INTEGRATE`): ``V = sat_v(V + x)``, ``x`` a
      weight or, for the encoder, a pixel;
    * ``op`` bit 1 (:attr:`~model.units.NeuronOp.FIRE`): on that V, ``S = V >= Vth``,
      ``h = 2|V - Vth| < Vth`` and the reset ``V - S * Vth`` (``V = 0`` if S with
      ``reset_zero``); otherwise ``S = h = 0`` and V is kept.

    Two pipeline stages (:data:`model.units.NEURON_LANE_LATENCY`): the integrate add and
    saturation, then the compare, window and reset; stall-as-a-whole handshake
    (:class:`hw.datapath.StreamUnit`). The cycle-accurate reference is
    :func:`model.units.neuron_lane_step`.

    Parameters
    ----------
    w : int
        Weight bits, 2..16 (signed).
    v : int
        Membrane bits, w..32 (signed); thresholds are unsigned ``v - 1`` bits.

    Members
    -------
    operand : ``In(stream.Signature(layouts(params)[0]))``
        ``op`` (:class:`~model.units.NeuronOp`, 2 bits), ``reset_zero``, ``v`` (signed v),
        ``x`` (signed ``max(w, 9)``: a weight, or a pixel 0..255), ``vth`` (unsigned
        ``v - 1``, 1 or more when firing).
    result : ``Out(stream.Signature(layouts(params)[1]))``
        ``v`` (the membrane to store), ``integrated`` (V before the reset), ``spike``,
        ``window``.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If ``w`` is outside 2..16 or ``v`` outside w..32 (the message names the parameter).
    """

    LATENCY = NEURON_LANE_LATENCY

    def __init__(self, *, w: int, v: int) -> None:
        params = neuron_lane_params(w=w, v=v)
        super().__init__(params, layouts(params))

    def elaborate_datapath(
        self, m: Module, control: Pipeline, operand: data.View, result: data.View
    ) -> None:
        bits = self.params.v

        # Datapath, stage 1: integrate (saturating add) or pass V through.
        integrated = Signal(signed(bits))
        fire = Signal()
        reset_zero = Signal()
        vth = Signal(self.params.threshold_bits)
        integrate = operand.op[0]
        summed = saturate(operand.v + operand.x, bits)
        with m.If(control.advance):
            m.d.sync += [
                integrated.eq(Mux(integrate, summed, operand.v)),
                fire.eq(operand.op[1]),
                reset_zero.eq(operand.reset_zero),
                vth.eq(operand.vth),
            ]

        # Datapath, stage 2: compare, window (2|V - Vth| < Vth, exact) and reset.
        above = integrated - vth  # v + 1 bits; fits v bits whenever V >= Vth
        spike = fire & (above >= 0)
        distance = Mux(above < 0, -above, above)
        window = fire & ((distance << 1) < vth)
        reset_value = Mux(reset_zero, 0, above)
        with m.If(control.advance):
            m.d.sync += [
                result.v.eq(Mux(spike, reset_value, integrated)),
                result.integrated.eq(integrated),
                result.spike.eq(spike),
                result.window.eq(window),
            ]
