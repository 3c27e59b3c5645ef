"""Spike queue: an AER FIFO of neuron indices between layers."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from model.checks import check_int

__all__ = ["SpikeQueue"]


class SpikeQueue(wiring.Component):
    """Address-event queue of neuron indices with backpressure and occupancy outputs.

    A :class:`amaranth.lib.fifo.SyncFIFOBuffered` (block-RAM friendly, registered output)
    with stream ports. A full queue deasserts ``push.ready``: the producer stalls and no
    event is ever dropped. Timing (cycles of the ``sync`` domain):

    * an index pushed in cycle ``c`` into an empty queue is offered on ``pop`` from cycle
      ``c + 2``;
    * ``push.ready`` is ``~full`` (the RAM part of ``depth - 1 >= 2`` entries fills only
      while the output register is occupied); below full one push and one pop per cycle
      are sustained, and a full queue accepts again in the cycle after a pop;
    * ``level`` counts the indices held (pushed and not yet popped);
    * ``high_water`` is a register: the largest ``level`` seen at the end of any cycle since
      reset or since the last ``clear_high_water`` (a clear restarts it from the ``level``
      of the clearing cycle), so it lags ``level`` by one cycle.

    The cycle-accurate reference is :func:`model.units.spike_queue_step`.

    Parameters
    ----------
    index_bits : int
        Width of a neuron index (the AER address), 2 or more.
    depth : int
        Capacity in indices, 3 or more (a RAM of ``depth - 1`` entries, at least 2, plus
        the output register).

    Members
    -------
    push : ``In(stream.Signature(unsigned(index_bits)))``
        Indices in (producer side).
    pop : ``Out(stream.Signature(unsigned(index_bits)))``
        Indices out, in push order (consumer side).
    level : ``Out(range(depth + 1))``
        Occupancy, 0..depth.
    high_water : ``Out(range(depth + 1))``
        Largest occupancy since reset or the last clear (registered).
    full : ``Out(1)``
        ``level == depth``.
    clear_high_water : ``In(1)``
        Strobe: restart ``high_water`` from the current ``level``.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If ``index_bits`` is below 2 or ``depth`` below 3 (the message names the parameter).
    """

    def __init__(self, *, index_bits: int, depth: int) -> None:
        self.index_bits = check_int("index_bits", index_bits, minimum=2)
        self.depth = check_int("depth", depth, minimum=3)
        super().__init__({
            "push": In(stream.Signature(unsigned(self.index_bits))),
            "pop": Out(stream.Signature(unsigned(self.index_bits))),
            "level": Out(range(self.depth + 1)),
            "high_water": Out(range(self.depth + 1)),
            "full": Out(1),
            "clear_high_water": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()

        # Datapath
        m.submodules.fifo = queue = fifo.SyncFIFOBuffered(width=self.index_bits, depth=self.depth)
        wiring.connect(m, wiring.flipped(self.push), queue.w_stream)
        wiring.connect(m, wiring.flipped(self.pop), queue.r_stream)

        # Occupancy
        high_water = Signal(range(self.depth + 1))
        new_maximum = queue.level > high_water
        m.d.comb += [
            self.level.eq(queue.level),
            self.full.eq(queue.level == self.depth),
            self.high_water.eq(high_water),
        ]
        with m.If(self.clear_high_water | new_maximum):
            m.d.sync += high_water.eq(queue.level)

        return m
