"""Shared pieces of the learning-datapath units: stall-as-a-whole pipeline control and
saturating arithmetic.

Every learning-datapath unit (:mod:`hw.neuron`, :mod:`hw.dv`, :mod:`hw.dot_product`,
:mod:`hw.accumulator`, :mod:`hw.update`) has an ``operand`` stream in and a ``result``
stream out (:class:`amaranth.lib.stream.Signature` with a :class:`~amaranth.lib.data.StructLayout`
payload) and a fixed number of pipeline stages, advanced together:
``operand.ready = ~result.valid | result.ready``. So one operation per cycle is sustained,
an operand accepted in cycle ``c`` reaches ``result`` in cycle ``c + depth`` when the consumer
never stalls, and a refused result freezes every stage (bubbles included) until accepted.
:class:`StreamUnit` is their common base (ports and pipeline control); the matching cycle
models are in :mod:`model.units`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from amaranth.hdl import Const, Module, Mux, Signal, Value, ValueLike, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Pipeline", "StreamUnit", "clamp", "pipeline", "saturate"]


class Pipeline(NamedTuple):
    """Control signals of a stall-as-a-whole pipeline (see :func:`pipeline`).

    Attributes
    ----------
    advance : Signal
        Every stage register loads this cycle (``~result.valid | result.ready``).
    accept : Signal
        An operand is transferred this cycle (``operand.valid & advance``).
    """

    advance: Signal
    accept: Signal


def pipeline(
    m: Module, operand: object, result: object, depth: int, *, emit: ValueLike | None = None
) -> Pipeline:
    """Add the handshake and per-stage valid registers of a ``depth``-stage pipeline.

    Parameters
    ----------
    m : Module
        Where the logic goes.
    operand, result : stream interfaces
        The unit's ``operand`` (in) and ``result`` (out) streams; drives ``operand.ready``
        and ``result.valid``.
    depth : int
        Stages, 1 or more: the valid flag of stage ``n`` is a register loaded (when
        advancing) from stage ``n - 1``, stage 1's from ``accept & emit``.
    emit : value-like, optional
        Whether an accepted operand produces a result (default: always), e.g. only the
        last word of a dot product.

    Returns
    -------
    Pipeline
        The ``advance`` and ``accept`` signals; the caller loads its payload registers
        under ``m.If(advance)`` (stage 1 from the operand) and its state under
        ``m.If(accept)``.
    """
    advance = Signal()
    accept = Signal()
    valids = [Signal(name=f"stage{n + 1}_valid") for n in range(depth)]
    m.d.comb += [
        advance.eq(~result.valid | result.ready),
        accept.eq(operand.valid & advance),
        operand.ready.eq(advance),
        result.valid.eq(valids[-1]),
    ]
    with m.If(advance):
        m.d.sync += valids[0].eq(accept if emit is None else accept & emit)
        m.d.sync += [later.eq(earlier) for earlier, later in zip(valids, valids[1:])]
    return Pipeline(advance, accept)


class StreamUnit(wiring.Component):
    """Base of the learning-datapath units: ``operand`` and ``result`` streams around a
    stall-as-a-whole pipeline of :attr:`LATENCY` stages (:func:`pipeline`).

    A subclass sets :attr:`LATENCY`, checks its parameters and passes them with its payload
    layouts to this constructor, and implements :meth:`elaborate_datapath` (and
    :meth:`emit` if not every operand produces a result).

    Parameters
    ----------
    params : named tuple
        The unit's checked parameters, kept as ``self.params``.
    layouts : (StructLayout, StructLayout)
        Payload layouts of the ``operand`` and ``result`` streams.
    ports : mapping of str to Member, optional
        Further ports (e.g. ``In(1)`` strobes) besides the two streams.

    Members
    -------
    operand : ``In(stream.Signature(layouts[0]))``
    result : ``Out(stream.Signature(layouts[1]))``
    """

    #: Pipeline stages: an operand accepted in cycle ``c`` is offered in cycle ``c + LATENCY``.
    LATENCY = 1

    def __init__(
        self,
        params: Any,
        layouts: tuple[data.StructLayout, data.StructLayout],
        ports: Mapping[str, wiring.Member] | None = None,
    ) -> None:
        self.params = params
        operand, result = layouts
        super().__init__({
            "operand": In(stream.Signature(operand)),
            "result": Out(stream.Signature(result)),
            **(ports or {}),
        })

    def emit(self, operand: data.View) -> ValueLike | None:
        """Whether an accepted ``operand`` payload produces a result (``None``: always)."""
        return None

    def elaborate_datapath(
        self, m: Module, control: Pipeline, operand: data.View, result: data.View
    ) -> None:
        """Add the stage registers: loaded under ``m.If(control.advance)``, stage 1 from the
        ``operand`` payload, the last stage into the ``result`` payload."""
        raise NotImplementedError

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        operand, result = self.operand.payload, self.result.payload
        control = pipeline(m, self.operand, self.result, self.LATENCY, emit=self.emit(operand))
        self.elaborate_datapath(m, control, operand, result)
        return m


def clamp(value: ValueLike, low: int, high: int, bits: int, *, is_signed: bool = True) -> Value:
    """``value`` clamped to ``low..high``, as a ``bits``-wide value (signed by default).

    ``low..high`` must fit the result's shape; ``value`` may be wider (it is compared at
    full width, so nothing wraps).
    """
    value = Value.cast(value)
    shape = signed(bits) if is_signed else bits
    kept = value[:bits].as_signed() if is_signed else value[:bits]
    # No compare whose result is constant (an unsigned value is never below 0).
    if low > 0 or value.shape().signed:
        kept = Mux(value < low, Const(low, shape), kept)
    return Mux(value > high, Const(high, shape), kept)


def saturate(value: ValueLike, bits: int) -> Value:
    """``sat_bits(value)``: clamp to the signed ``bits``-bit range (docs/numerics.md)."""
    return clamp(value, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, bits)
