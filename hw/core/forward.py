"""The forward engines of one stage: the fire scan of a layer and the integration of its
spikes into the next (docs/architecture.md sections 3 and 5.2).

Both run on :class:`hw.neuron.NeuronLane` units (P lanes, two pipeline stages), behind one
operand register (the words read):

* :class:`ScanEngine` reads word k of V, VTH (and PIX for the encoder) in cycle k, one word
  per cycle without a stall; the lanes integrate the pixel (encoder), fire, flag the window
  and reset, and V, S, H of the word are written in ``k + 1 + SCAN_LATENCY``. A word with
  spikes enters the word FIFO (a :class:`hw.queue.SpikeQueue` as deep as the layer has
  words, so it never fills) with its row base ``k P c``; the pusher takes the FIFO's words
  in order and pushes one spike per cycle into the stage's spike queue, as the row address
  ``i c`` of the next layer's weights (stalled while the queue is full, never dropped).
  The output layer has no FIFO: its words go to the readout (``result_*`` ports). A grid
  layer (conv, an image encoder) is read block-major and its spikes leave through
  :class:`hw.core.grid.GridPusher` instead (docs/architecture.md section 9.2).
* :class:`IntegrateEngine` pops a row address when free and reads the row's c words of W
  with the c words of V, one per cycle; each word's lanes add the weights
  (``V = sat_v(V + W)``) and write V ``INTEGRATE_LATENCY`` = 4 cycles after its read. The
  V read port is transparent to its write port, so the next event may read a word in the
  cycle it is written: events start ``max(c, INTEGRATE_LATENCY)`` cycles apart.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.controller import ControlSignature, Pass
from hw.core.grid import GridCursor, GridPusher, event_layout, row_bits
from hw.core.lanes import OPERAND_DELAY, integrate_datapath, neuron_lanes
from hw.core.memory import MemoryPortSignature
from hw.core.walk import delay, lowest, one_hot_select, step_base, valid_lanes, wire
from hw.core_config import CoreConfig
from hw.queue import SpikeQueue
from model.core import INTEGRATE_LATENCY, SCAN_LATENCY
from model.units import NeuronOp

__all__ = ["IntegrateEngine", "ScanEngine", "row_bits"]


class ScanEngine(wiring.Component):
    """The fire scan of one layer and, below the output layer, the pusher of its spikes.

    Parameters
    ----------
    config : CoreConfig
    layer : int
        The scanned layer, 0..L.

    Members
    -------
    control : ``In(ControlSignature)``
        ``control.done`` (out): every word written and every spike pushed.
    v, vth, s, h (and pix for the encoder) : ``Out(MemoryPortSignature)``
        V read and written, VTH and PIX read, S and H written.
    spikes : ``Out(stream.Signature(event_layout(layer + 1)))`` (layers below L)
        The spikes' events in order: row addresses ``i c_{l+1}`` (FC), or
        :func:`hw.core.grid.event_layout` (conv).
    result_valid, result_word, result_spikes, result_integrated : ``Out`` (output layer)
        A word written this cycle: its index, spikes and pre-reset membranes (the readout's).
    written, written_spikes : ``Out(1)``, ``Out(P)``
        A word is written this cycle, and its spikes (counters).
    stalled : ``Out(1)``
        A spike waits for room in the queue this cycle.
    """

    def __init__(self, config: CoreConfig, layer: int) -> None:
        self.config, self.layer = config, layer
        lanes = config.lanes
        members = {
            "control": In(ControlSignature(layers=config.layers, timesteps=config.timesteps)),
            "v": Out(MemoryPortSignature(config.memory("V", layer))),
            "vth": Out(MemoryPortSignature(config.memory("VTH", layer), write=False)),
            "s": Out(MemoryPortSignature(config.memory("S", layer), read=False)),
            "h": Out(MemoryPortSignature(config.memory("H", layer), read=False)),
            "written": Out(1),
            "written_spikes": Out(lanes),
        }
        if layer == 0:
            members["pix"] = Out(MemoryPortSignature(config.memory("PIX", 0), write=False))
        if layer < config.layers:
            members["spikes"] = Out(stream.Signature(event_layout(config, layer + 1)))
            members["stalled"] = Out(1)
        else:
            members.update({
                "result_valid": Out(1),
                "result_word": Out(range(max(config.words[layer], 2))),
                "result_spikes": Out(lanes),
                "result_integrated": Out(data.ArrayLayout(signed(config.formats.v), lanes)),
            })
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, index = self.config, self.layer
        lanes, words = cfg.lanes, cfg.words[index]
        control = self.control
        active = wire(m, (control.kind == Pass.FORWARD) & (control.layer == index), f"scan{index}_active")
        first = control.first

        # Reads: word k in cycle k.
        at = Signal(range(words + 1), name=f"scan{index}_at")
        at_now = Mux(first, 0, at)
        reading = wire(m, active & (at_now < words), f"scan{index}_read")
        with m.If(reading):
            m.d.sync += at.eq(at_now + 1)
        address = channel = at_now
        if cfg.grid(index):  # block-major: word pos cw + w, its block and position along
            cursor = GridCursor(m, cfg, index, name=f"scan{index}", step=reading, first=first)
            address, channel = cursor.address, cursor.at.block
            place = delay(m, cursor.at, 1 + SCAN_LATENCY, f"scan{index}_place")
        ports = [self.v, self.vth] + ([self.pix] if index == 0 else [])
        for port in ports:
            m.d.comb += [port.read_en.eq(reading), port.read_addr.eq(channel if port is self.vth else address)]

        # Pipeline: data (x + 1), registers (x + 2), lane stages, write (x + 4).
        valid = delay(m, reading, OPERAND_DELAY, f"scan{index}_valid")
        v_read = Signal.like(self.v.read_data, name=f"scan{index}_v_read")
        vth_read = Signal.like(self.vth.read_data, name=f"scan{index}_vth_read")
        m.d.sync += [v_read.eq(self.v.read_data), vth_read.eq(self.vth.read_data)]
        if index == 0:
            pix_read = Signal.like(self.pix.read_data, name="scan0_pix_read")
            m.d.sync += pix_read.eq(self.pix.read_data)
        units = neuron_lanes(m, cfg, f"scan{index}_lane")
        for x, unit in enumerate(units):
            operand = unit.operand.payload
            m.d.comb += [
                unit.operand.valid.eq(valid[1]),
                operand.op.eq(NeuronOp.INTEGRATE_FIRE if index == 0 else NeuronOp.FIRE),
                operand.reset_zero.eq(cfg.reset == "zero"),
                operand.v.eq(v_read[x]),
                operand.vth.eq(vth_read[x]),
            ]
            if index == 0:
                m.d.comb += operand.x.eq(pix_read[x])
        writing = units[0].result.valid
        # Words are written in the order they were read: word k of an FC layer is the
        # pass's k-th write (the count of writes, a register: no write in a pass's first
        # cycle); a grid layer's, block-major, is its read address delayed to the write.
        written = Signal(range(words + 1), name=f"scan{index}_written")
        written_now = Mux(first, 0, written)
        with m.If(active):
            m.d.sync += written.eq(written_now + writing)
        k = delay(m, address, 1 + SCAN_LATENCY, f"scan{index}_word")[-1] if cfg.grid(index) else written
        mask = valid_lanes(cfg, index, k)
        spikes = wire(m, Cat(unit.result.payload.spike for unit in units) & mask, f"scan{index}_spikes")
        windows = Cat(unit.result.payload.window for unit in units) & mask
        plane = step_base(control.t, words, cfg.timesteps) + k
        m.d.comb += [
            self.v.write_addr.eq(k), self.v.write_mask.eq(Mux(writing, mask, 0)),
            self.v.write_data.eq(Cat(unit.result.payload.v for unit in units)),
            self.s.write_addr.eq(plane), self.s.write_mask.eq(Mux(writing, mask, 0)),
            self.s.write_data.eq(spikes),
            self.h.write_addr.eq(plane), self.h.write_mask.eq(Mux(writing, mask, 0)),
            self.h.write_data.eq(windows),
            self.written.eq(writing),
            self.written_spikes.eq(spikes),
        ]
        # Every word written after this cycle: (written_now + writing) == words, by compares.
        scanned = Mux(writing, written_now == words - 1, written_now == words)

        if index == cfg.layers:
            m.d.comb += [
                self.result_valid.eq(writing), self.result_word.eq(k), self.result_spikes.eq(spikes),
                self.result_integrated.eq(Cat(unit.result.payload.integrated for unit in units)),
                control.done.eq(active & scanned),
            ]
            return m
        if cfg.grid(index):
            m.submodules[f"push{index}"] = pusher = GridPusher(cfg, index)
            wiring.connect(m, pusher.events, wiring.flipped(self.spikes))
            m.d.comb += [
                pusher.start.eq(first), pusher.written.eq(writing), pusher.spikes.eq(spikes),
                pusher.at.eq(place[3]), self.stalled.eq(pusher.stalled),
                control.done.eq(active & scanned & pusher.drained),
            ]
            return m

        # Word FIFO: the written words with spikes and their row base k P c (counted by the
        # writes), in order.
        cost = cfg.row_words(index + 1)
        base_bits = row_bits(cfg, index + 1)
        base = Signal(base_bits, name=f"scan{index}_base")  # no write in a pass's first cycle
        with m.If(first):
            m.d.sync += base.eq(0)
        with m.Elif(writing):
            m.d.sync += base.eq(base + lanes * cost)
        fifo = SpikeQueue(index_bits=lanes + base_bits, depth=words)
        m.submodules[f"scan{index}_fifo"] = fifo
        m.d.comb += [
            fifo.push.valid.eq(writing & spikes.any()),
            fifo.push.payload.eq(Cat(spikes, base)),
            fifo.clear_high_water.eq(control.start),
        ]

        # Pusher: one spike of the FIFO's word per cycle, lowest lane first.
        held = fifo.pop.payload
        pushed = Signal(lanes, name=f"scan{index}_pushed")
        remaining = wire(m, held[:lanes] & ~pushed, f"scan{index}_remaining")
        _, one_hot = lowest(remaining, lanes)
        lane_base = one_hot_select([x * cost for x in range(lanes)], one_hot, base_bits)
        alone = ~(remaining & ~one_hot).any()
        out = self.spikes
        accepted = wire(m, fifo.pop.valid & out.ready, f"scan{index}_push")
        m.d.comb += [
            out.valid.eq(fifo.pop.valid),
            out.payload.eq(held[lanes:] + lane_base),
            fifo.pop.ready.eq(accepted & alone),
            self.stalled.eq(fifo.pop.valid & ~out.ready),
        ]
        with m.If(accepted):
            m.d.sync += pushed.eq(Mux(alone, 0, pushed | one_hot))
        drained = (fifo.level == 0) & ~fifo.push.valid
        m.d.comb += control.done.eq(active & scanned & drained)
        return m


class IntegrateEngine(wiring.Component):
    """The integration of a stage's spikes into layer ``layer`` (1..L).

    Members
    -------
    control : ``In(ControlSignature)``
        ``control.done`` (out): no event in progress and no write pending after this cycle.
    events : ``In(stream.Signature(row_bits(layer)))``
        Row addresses ``i c`` from the spike queue.
    w, v : ``Out(MemoryPortSignature)``
        W read, V read and written.
    """

    def __init__(self, config: CoreConfig, layer: int) -> None:
        self.config, self.layer = config, layer
        super().__init__({
            "control": In(ControlSignature(layers=config.layers, timesteps=config.timesteps)),
            "events": In(stream.Signature(unsigned(row_bits(config, layer)))),
            "w": Out(MemoryPortSignature(config.memory("W", layer), write=False)),
            "v": Out(MemoryPortSignature(config.memory("V", layer))),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, index = self.config, self.layer
        cost = cfg.row_words(index)
        spacing = max(cost, INTEGRATE_LATENCY)
        control = self.control
        name = f"integrate{index}"
        active = wire(m, (control.kind == Pass.FORWARD) & (control.layer == index - 1), f"{name}_active")

        # Events: popped when the last one started ``spacing`` cycles ago (or none runs).
        since = Signal(range(spacing + 1), init=spacing, name=f"{name}_since")
        free = since == spacing
        popping = wire(m, active & free & self.events.valid, f"{name}_pop")
        m.d.comb += self.events.ready.eq(active & free)
        with m.If(popping):
            m.d.sync += since.eq(1)
        with m.Elif(~free):
            m.d.sync += since.eq(since + 1)
        row = Signal(row_bits(cfg, index), name=f"{name}_row")
        with m.If(popping):
            m.d.sync += row.eq(self.events.payload)
        word_now = Mux(popping, 0, since)
        reading = wire(m, popping | (~free & (since < cost)), f"{name}_read")
        m.d.comb += [
            self.w.read_en.eq(reading), self.w.read_addr.eq(Mux(popping, self.events.payload, row) + word_now),
            self.v.read_en.eq(reading), self.v.read_addr.eq(word_now),
        ]

        # Pipeline: data (x + 1), registers (x + 2), lane stages, write (x + 4).
        drained = integrate_datapath(m, cfg, index, name, self.w, self.v, reading=reading)
        m.d.comb += control.done.eq(free & drained)
        return m

