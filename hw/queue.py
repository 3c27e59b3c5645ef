"""Spike queue: an AER FIFO of neuron indices between layers."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from model.checks import check_int

__all__ = ["SpikeQueue"]


class SpikeQueue(wiring.Component):
    """Address-event queue of neuron indices with backpressure and occupancy outputs.

    A :class:`amaranth.lib.fifo.SyncFIFOBuffered` (block-RAM friendly, registered output)
    with stream ports. A full queue deasserts ``push.ready``: the producer stalls and no
    event is ever dropped. Timing (cycles of the ``sync`` domain), the same for every
    depth:

    * an index pushed in cycle ``c`` into an empty queue is offered on ``pop`` from cycle
      ``c + 2`` (RAM write, then the output register);
    * ``push.ready`` is ``~full``, whatever ``pop.ready`` does: a full queue accepts again
      in the cycle after a pop. A slot is free again 3 cycles after its push at the
      earliest (offered at ``c + 2``, popped, free the next cycle), so against an
      always-ready consumer the queue sustains ``min(1, depth / 3)`` pushes per cycle;
    * ``level`` counts the indices held (pushed and not yet popped), the one in flight
      between the RAM and the output register included;
    * ``high_water`` is a register: the largest ``level`` seen at the end of any cycle since
      reset or since the last ``clear_high_water`` (a clear restarts it from the ``level``
      of the clearing cycle), so it lags ``level`` by one cycle. A queue that serves
      ``stages`` stages one after another keeps one per stage, raised only in the cycles
      ``stage`` names it.

    From depth 3 the buffer is ``SyncFIFOBuffered(depth)`` itself: its RAM part of
    ``depth - 1 >= 2`` entries fills only while the output register is occupied, so its
    ``w_rdy`` already is ``~full``. Below 3 a ``SyncFIFOBuffered`` of the same depth would
    differ (depth 1 is a bare register offering an index one cycle after its push; at
    depth 2 the one-entry RAM refuses a push in the cycle an index moves to the output
    register, though the queue holds only one). So depths 1 and 2 use the depth-3 buffer
    (same latency; a RAM of two entries keeps its address one bit wide) and limit
    ``push.ready`` to ``~full``: capacity ``depth``, at most two index registers more
    than strictly needed.

    The cycle-accurate reference is :func:`model.units.spike_queue_step`.

    Parameters
    ----------
    index_bits : int
        Width of a neuron index (the AER address), 2 or more.
    depth : int
        Capacity in indices, 1 or more.
    stages : int
        Stages sharing the queue (one high-water register each), 1 or more.

    Members
    -------
    push : ``In(stream.Signature(unsigned(index_bits)))``
        Indices in (producer side).
    pop : ``Out(stream.Signature(unsigned(index_bits)))``
        Indices out, in push order (consumer side).
    level : ``Out(range(depth + 1))``
        Occupancy, 0..depth.
    high_water : ``Out(range(depth + 1))``, with ``stages > 1`` ``Out(ArrayLayout(range(depth + 1), stages))``
        Largest occupancy since reset or the last clear (registered), per stage.
    stage : ``In(range(stages))`` (``stages > 1``)
        The stage that runs.
    full : ``Out(1)``
        ``level == depth``.
    clear_high_water : ``In(1)``
        Strobe: restart ``high_water`` from the current ``level``.

    Raises
    ------
    TypeError
        If a parameter is not an integer.
    ValueError
        If ``index_bits`` is below 2 or ``depth`` below 1 (the message names the parameter).
    """

    def __init__(self, *, index_bits: int, depth: int, stages: int = 1) -> None:
        self.index_bits = check_int("index_bits", index_bits, minimum=2)
        self.depth = check_int("depth", depth, minimum=1)
        self.stages = check_int("stages", stages, minimum=1)
        occupancy = range(self.depth + 1)
        members = {
            "push": In(stream.Signature(unsigned(self.index_bits))),
            "pop": Out(stream.Signature(unsigned(self.index_bits))),
            "level": Out(occupancy),
            "high_water": Out(occupancy if self.stages == 1 else data.ArrayLayout(occupancy, self.stages)),
            "full": Out(1),
            "clear_high_water": In(1),
        }
        if self.stages > 1:
            members["stage"] = In(range(self.stages))
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()

        # Datapath
        buffered = max(self.depth, 3)
        m.submodules.fifo = queue = fifo.SyncFIFOBuffered(width=self.index_bits, depth=buffered)
        full = queue.level == self.depth
        if buffered == self.depth:  # w_rdy is ~full
            wiring.connect(m, wiring.flipped(self.push), queue.w_stream)
        else:  # the buffer never holds more than depth: refuse a push when full
            m.d.comb += [
                queue.w_stream.payload.eq(self.push.payload),
                queue.w_stream.valid.eq(self.push.valid & ~full),
                self.push.ready.eq(queue.w_stream.ready & ~full),
            ]
        wiring.connect(m, wiring.flipped(self.pop), queue.r_stream)

        # Occupancy
        m.d.comb += [self.level.eq(queue.level), self.full.eq(full)]
        for number in range(self.stages):
            high_water = Signal(range(self.depth + 1), name=f"high_water{number}")
            running = Const(1) if self.stages == 1 else self.stage == number
            new_maximum = running & (queue.level > high_water)
            m.d.comb += (self.high_water if self.stages == 1 else self.high_water[number]).eq(high_water)
            with m.If(self.clear_high_water | new_maximum):
                m.d.sync += high_water.eq(queue.level)

        return m
