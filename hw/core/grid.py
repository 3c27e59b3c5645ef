"""The scan side of a grid layer (conv, an image encoder): its block-major address
sequence and the pusher that puts its spikes in the contract's order
(docs/architecture.md section 9.2).

* :class:`GridCursor` steps the scan of a ``(C, H, W)`` layer stored position-major with
  ``cw = ceil(C / P)`` words per position: word ``pos cw + w``, position inner, channel
  block ``w`` outer (an address register stepping by ``cw``, the block and the position's
  ``y``, ``x`` as counters).
* :class:`GridPusher` takes the written words' spikes into lane FIFOs (lane ``j``'s
  entries: block, y, x; as deep as the lane has neurons, none for lanes ``j >= C``) and pushes them channel-major: the lowest (block, lane) among
  the FIFO heads that may go, lane 0 as soon as it is offered, lanes ``1..P-1`` once their
  block's last word has been written ``QUEUE_LATENCY`` cycles ago (every spike of the
  block is then in its FIFO). Each event leaves as the consumer's event
  (:func:`event_layout`): behind ``k`` AP2 layers at ``(y >> k, x >> k)``; an FC consumer
  gets its weight row address ``(c H'W' + y' W' + x') c_out``, a conv consumer its kernel
  row base, its position's V base and the position itself.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.core.walk import counter_shape, select, wire
from hw.core_config import CoreConfig
from hw.queue import SpikeQueue
from model.core import QUEUE_LATENCY

__all__ = ["GridCursor", "GridPusher", "WalkCursor", "consumer_event", "coordinate_layout", "event_layout", "lane_event", "row_bits"]


def row_bits(config: CoreConfig, layer: int) -> int:
    """Width of a row address ``i c`` of layer ``layer``'s weights (an FC consumer's event)."""
    return max((config.weight_rows(layer) * config.row_words(layer)).bit_length(), 2)


def event_layout(config: CoreConfig, layer: int) -> Shape | data.StructLayout:
    """An event of layer ``layer``'s spike queue: the row address (FC), or (conv) ``w_base``
    = ``9 c c_out`` (its kernel rows), ``v_base`` = ``(y W + x) c_out`` (its position's V
    words), ``y``, ``x`` (its position, the in-image test)."""
    if not config.grid(layer):
        return unsigned(row_bits(config, layer))
    _, height, width = config.shape(layer)
    return data.StructLayout({
        "w_base": counter_shape(config.memory("W", layer).depth),
        "v_base": counter_shape(config.words[layer]),
        "y": counter_shape(height),
        "x": counter_shape(width),
    })


def coordinate_layout(config: CoreConfig, layer: int) -> data.StructLayout:
    """A word of grid layer ``layer``: its channel ``block``, ``y``, ``x``."""
    _, height, width = config.shape(layer)
    return data.StructLayout({
        "block": counter_shape(config.channel_words(layer)),
        "y": counter_shape(height),
        "x": counter_shape(width),
    })


class GridCursor:
    """The scan's word sequence of grid layer ``layer`` (elaborated into ``m``).

    ``address`` and ``at`` (its block, y, x) are the word read in a cycle; ``step`` moves to
    the next word, ``first`` (the pass's first cycle) restarts at word 0.
    """

    def __init__(self, m: Module, config: CoreConfig, layer: int, *, name: str, step: Value, first: Value) -> None:
        _, height, width = config.shape(layer)
        cw = config.channel_words(layer)
        address = Signal(range(config.words[layer] + cw), name=f"{name}_address")
        at = Signal(coordinate_layout(config, layer), name=f"{name}_at")
        self.address = wire(m, Mux(first, 0, address), f"{name}_address_now")
        self.at = now = Signal(coordinate_layout(config, layer), name=f"{name}_at_now")
        m.d.comb += now.eq(Mux(first, 0, at.as_value()))
        row_end = now.x == width - 1
        block_end = row_end & (now.y == height - 1)
        with m.If(step):
            with m.If(block_end):
                m.d.sync += [address.eq(now.block + 1), at.block.eq(now.block + 1), at.y.eq(0), at.x.eq(0)]
            with m.Else():
                m.d.sync += [address.eq(self.address + cw), at.block.eq(now.block)]
                m.d.sync += [at.y.eq(Mux(row_end, now.y + 1, now.y)), at.x.eq(Mux(row_end, 0, now.x + 1))]


class GridPusher(wiring.Component):
    """The lane FIFOs and the pusher of grid layer ``layer`` (below the output layer).

    Members
    -------
    start : ``In(1)``
        The stage's first cycle (no block written yet).
    written : ``In(1)``, ``spikes`` : ``In(P)``, ``at`` : ``In(coordinate_layout)``
        A word is written this cycle: its spikes and its block, y, x.
    events : ``Out(stream.Signature(event_layout(config, layer + 1)))``
        The spikes in ascending neuron index, as the consumer's events.
    stalled : ``Out(1)``
        An event waits for room in the spike queue this cycle.
    drained : ``Out(1)``
        No spike held or in flight.
    """

    def __init__(self, config: CoreConfig, layer: int) -> None:
        self.config, self.layer = config, layer
        super().__init__({
            "start": In(1),
            "written": In(1),
            "spikes": In(config.lanes),
            "at": In(coordinate_layout(config, layer)),
            "events": Out(stream.Signature(event_layout(config, layer + 1))),
            "stalled": Out(1),
            "drained": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, index = self.config, self.layer
        lanes = cfg.lanes
        channels, height, width = cfg.shape(index)
        entry = coordinate_layout(cfg, index)
        name = f"push{index}"

        # Lane FIFOs: lane j's spikes, in scan order, as deep as the lane has neurons (so
        # none fills); a lane without channels (j >= C) has none.
        fifos = []
        for x in range(min(lanes, channels)):
            depth = height * width * len(range(x, channels, lanes))
            fifo = SpikeQueue(index_bits=Shape.cast(entry).width, depth=depth)
            m.submodules[f"{name}_lane{x}"] = fifo
            m.d.comb += [
                fifo.push.valid.eq(self.written & self.spikes[x]),
                fifo.push.payload.eq(self.at.as_value()),
                fifo.clear_high_water.eq(self.start),
            ]
            fifos.append(fifo)

        # Blocks whose last word was written QUEUE_LATENCY or more cycles ago: all their
        # spikes are at their FIFOs' outputs.
        blocks = counter_shape(cfg.channel_words(index) + 1)
        closing = self.written & (self.at.y == height - 1) & (self.at.x == width - 1)
        closed = [Signal(blocks, name=f"{name}_closed{n}") for n in range(QUEUE_LATENCY)]
        m.d.sync += closed[0].eq(Mux(self.start, 0, closed[0] + closing))
        m.d.sync += [closed[n + 1].eq(Mux(self.start, 0, closed[n])) for n in range(QUEUE_LATENCY - 1)]

        # The next spike: the lowest (block, lane) among the heads that may go.
        found = block = lane = head = None
        for x, fifo in enumerate(fifos):
            held = data.View(entry, fifo.pop.payload)
            may = fifo.pop.valid & ((held.block < closed[-1]) if x else 1)
            if not x:
                found, block, lane, head = may, held.block, Const(0, counter_shape(lanes)), held.as_value()
                continue
            better = wire(m, may & (~found | (held.block < block)), f"{name}_better{x}")
            found = wire(m, found | may, f"{name}_found{x}")
            block = wire(m, Mux(better, held.block, block), f"{name}_block{x}")
            lane = wire(m, Mux(better, x, lane), f"{name}_lane{x}")
            head = wire(m, Mux(better, held.as_value(), head), f"{name}_head{x}")
        head = data.View(entry, head)
        found = wire(m, found, f"{name}_found")
        out = self.events
        accepted = wire(m, found & out.ready, f"{name}_accept")
        for x, fifo in enumerate(fifos):
            m.d.comb += fifo.pop.ready.eq(accepted & (lane == x))
        idle = Cat(fifo.level == 0 for fifo in fifos).all()
        m.d.comb += [
            out.valid.eq(found),
            out.payload.eq(lane_event(m, cfg, index, consumer_event(m, cfg, index, block, head.y, head.x, name=name), lane, name=name)),
            self.stalled.eq(found & ~out.ready),
            self.drained.eq(~(self.written & self.spikes.any()) & idle),
        ]
        return m


def _pooled(config: CoreConfig, layer: int) -> tuple[int, int, int]:
    """``(k, H', W')``: the AP2 levels between grid layer ``layer`` and its consumer and the
    pooled height and width the consumer sees."""
    shift = config.pool_levels(layer + 1)
    _, height, width = (dimension >> shift for dimension in config.shape(layer))
    return shift, height, width


def consumer_event(m: Module, config: CoreConfig, layer: int, block: Value, y: Value, x: Value, *, name: str) -> Value:
    """The event in consumer ``layer + 1`` (:func:`event_layout`, behind its AP2 layers) of a
    spike at (``block P``, ``y``, ``x``) of grid layer ``layer``: the block's lane 0, which
    :func:`lane_event` moves to the spike's lane."""
    consumer = layer + 1
    shift, height, width = _pooled(config, layer)
    y, x = y >> shift, x >> shift
    cw = config.row_words(consumer)
    channel = block * config.lanes
    if not config.grid(consumer):
        row = channel * (height * width) + y * width + x
        return (row * cw)[: row_bits(config, consumer)]
    event = Signal(event_layout(config, consumer), name=f"{name}_event")
    m.d.comb += [
        event.w_base.eq(channel * (9 * cw)),
        event.v_base.eq((y * width + x) * cw),
        event.y.eq(y),
        event.x.eq(x),
    ]
    return event.as_value()


def lane_event(m: Module, config: CoreConfig, layer: int, event: Value, lane: Value, *, name: str) -> Value:
    """``event`` (:func:`consumer_event` of a block of grid layer ``layer``) for the block's
    lane ``lane``: its channel's rows, ``lane`` channel strides on (a table, no product)."""
    consumer = layer + 1
    _, height, width = _pooled(config, layer)
    grid = config.grid(consumer)
    stride = config.row_words(consumer) * (9 if grid else height * width)
    bits = Shape.cast(counter_shape(config.memory("W", consumer).depth)).width if grid else row_bits(config, consumer)
    offset = select([(x * stride) % (1 << bits) for x in range(config.lanes)], lane, bits)
    if not grid:
        return (event + offset)[:bits]
    held = data.View(event_layout(config, consumer), event)
    moved = Signal(event_layout(config, consumer), name=f"{name}_lane_event")
    m.d.comb += [
        moved.w_base.eq(held.w_base + offset),
        moved.v_base.eq(held.v_base),
        moved.y.eq(held.y),
        moved.x.eq(held.x),
    ]
    return moved.as_value()


class WalkCursor:
    """The word a bit-plane walker issues in grid layer ``layer`` (address order:
    position-major, the channel block inner), as its block, ``y``, ``x``: counters that
    step with ``step``; ``first`` (the pass's first cycle) restarts at word 0."""

    def __init__(self, m: Module, config: CoreConfig, layer: int, *, name: str, step: Value, first: Value) -> None:
        _, _, width = config.shape(layer)
        cw = config.channel_words(layer)
        at = Signal(coordinate_layout(config, layer), name=f"{name}_at")
        self.at = now = Signal(coordinate_layout(config, layer), name=f"{name}_at_now")
        m.d.comb += now.eq(Mux(first, 0, at.as_value()))
        block_end = now.block == cw - 1
        row_end = now.x == width - 1
        with m.If(step):
            m.d.sync += at.block.eq(Mux(block_end, 0, now.block + 1))
            with m.If(block_end):
                m.d.sync += [at.x.eq(Mux(row_end, 0, now.x + 1)), at.y.eq(Mux(row_end, now.y + 1, now.y))]
            with m.Else():
                m.d.sync += [at.x.eq(now.x), at.y.eq(now.y)]
