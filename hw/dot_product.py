"""Dot-product lane: the exact spatial sum of eq. 15, P products per word."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Module, Mux, Signal, Value, signed
from amaranth.lib import data

from hw.datapath import Pipeline, StreamUnit
from model.units import DOT_PRODUCT_LANE_LATENCY, DotProductLaneParams, dot_product_lane_params

__all__ = ["DotProductLane", "layouts"]


def layouts(params: DotProductLaneParams) -> tuple[data.StructLayout, data.StructLayout]:
    """Payload layouts ``(operand, result)`` of a dot-product lane with checked ``params``.

    Field names are those of :class:`model.units.DotProductLaneInputs` / ``DotProductLaneResult``.
    """
    operand = data.StructLayout({
        "weights": data.ArrayLayout(signed(params.w), params.lanes),
        "grads": data.ArrayLayout(signed(params.g), params.lanes),
        "last": 1,
    })
    return operand, data.StructLayout({"sum": signed(params.acc_bits)})


def _tree_sum(values: Sequence[Value]) -> Value:
    """Balanced adder tree (each level one bit wider, nothing wraps)."""
    values = list(values)
    while len(values) > 1:
        pairs = [values[n] + values[n + 1] for n in range(0, len(values) - 1, 2)]
        values = pairs + values[len(values) - len(values) % 2:]
    return values[0]


class DotProductLane(StreamUnit):
    """``acc = sum_j dV_j W_ji`` over the words of one weight row, exact (docs/numerics.md 3.2).

    Each operand is one word: ``P`` weights of row ``i`` and the ``P`` matching dV of the
    layer above. The ``P`` products go through an adder tree into a running sum of
    ``acc_bits = g + w + ceil(log2 fan_out)`` bits, which cannot overflow while a sum has
    at most ``fan_out`` nonzero products (the core's padding lanes carry zero weights).
    Two stages: a word's products are registered, then their adder tree is added to the
    running sum. The word flagged ``last`` completes the sum: accepted in cycle ``c``, the sum is
    offered from cycle ``c + 2`` (:data:`model.units.DOT_PRODUCT_LANE_LATENCY`) and the
    running sum restarts at 0, so the next sum's first word may follow in cycle ``c + 1``.
    Stall-as-a-whole handshake (:class:`hw.datapath.StreamUnit`): no word is accepted while
    a completed sum is refused. The cycle-accurate reference is
    :func:`model.units.dot_product_lane_step`.

    Parameters
    ----------
    lanes : int
        P, products per word, 1 or more.
    g : int
        dV bits, 4..32 (signed).
    w : int
        Weight bits, 2..16 (signed).
    fan_out : int
        Most nonzero products per sum, 1..2^(62 - g - w) (the sum fits 62 bits).

    Members
    -------
    operand : ``In(stream.Signature(layouts(params)[0]))``
        ``weights`` (P x signed w), ``grads`` (P x signed g), ``last``.
    result : ``Out(stream.Signature(layouts(params)[1]))``
        ``sum`` (signed ``acc_bits``).

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        Naming the parameter, e.g. ``lanes`` below 1 (:func:`model.units.dot_product_lane_params`).
    """

    LATENCY = DOT_PRODUCT_LANE_LATENCY

    def __init__(self, *, lanes: int, g: int, w: int, fan_out: int) -> None:
        params = dot_product_lane_params(lanes=lanes, g=g, w=w, fan_out=fan_out)
        super().__init__(params, layouts(params))

    def emit(self, operand: data.View) -> Value:
        """Only the word flagged ``last`` completes a sum."""
        return operand.last

    def elaborate_datapath(
        self, m: Module, control: Pipeline, operand: data.View, result: data.View
    ) -> None:
        params = self.params

        # Stage 1: the word's P products (exact, signed w + g bits), registered with the
        # word's flags (every accepted word, not only the emitting last words); a product
        # register is the multiplier block's own output register (no reset: the block's
        # register has no synchronous one; the flags, which have, say when a product counts).
        products = [Signal(signed(params.w + params.g), reset_less=True) for _ in range(params.lanes)]
        word_valid = Signal()
        word_last = Signal()
        with m.If(control.advance):
            m.d.sync += [p.eq(operand.weights[j] * operand.grads[j]) for j, p in enumerate(products)]
            m.d.sync += [word_valid.eq(control.accept), word_last.eq(operand.last)]
        word_sum = _tree_sum(products)

        # Stage 2: the adder tree and the running sum (exact in acc_bits by the contract); the
        # last word moves the total to the result register and restarts the sum.
        running = Signal(signed(params.acc_bits))
        total = Signal(signed(params.acc_bits))
        m.d.comb += total.eq(running + word_sum)
        with m.If(control.advance & word_valid):
            m.d.sync += [running.eq(Mux(word_last, 0, total)), result.sum.eq(total)]
