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

from collections.abc import Sequence

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.controller import ControlSignature, Pass
from hw.core.grid import GridCursor, GridPusher, event_layout, row_bits
from hw.core.lanes import OPERAND_DELAY, integrate_datapath, neuron_lanes
from hw.core.memory import MemoryPortSignature, shared_port
from hw.core.walk import delay, lowest, one_hot_select, per_layer, step_base, valid_lanes, wire
from hw.core_config import CoreConfig
from hw.queue import SpikeQueue
from model.core import INTEGRATE_LATENCY, SCAN_LATENCY
from model.units import NeuronOp

__all__ = ["IntegrateEngine", "ScanEngine", "engine_name", "layer_engines", "row_bits"]


def layer_engines(config: CoreConfig, layers: Sequence[int]) -> list[tuple[int, ...]]:
    """The layers of ``layers`` grouped by the engine that serves them: one engine for all
    FC (flat) layers, one for each grid layer."""
    flat = tuple(layer for layer in layers if not config.grid(layer))
    return ([flat] if flat else []) + [(layer,) for layer in layers if config.grid(layer)]


def engine_name(kind: str, layers: Sequence[int]) -> str:
    """Name of the ``kind`` engine of ``layers`` (``scan0_1_2``, ``integrate3``)."""
    return kind + "_".join(str(layer) for layer in layers)


class ScanEngine(wiring.Component):
    """The fire scan of ``layers`` and, below the output layer, the pusher of their spikes:
    one engine for every FC layer (the forward stages run one at a time; the running pass's
    layer picks the memories and the per-layer constants), or for one grid layer.

    Parameters
    ----------
    config : CoreConfig
    layers : sequence of int
        The scanned layers, 0..L: FC layers, or a single grid layer.

    Members
    -------
    control : ``In(ControlSignature)``
        ``control.done`` (out): every word written and every spike pushed.
    v<l>, vth<l>, s<l>, h<l> (and pix0 for the encoder) : ``Out(MemoryPortSignature)``
        Per layer ``l``: V read and written, VTH and PIX read, S and H written.
    spikes : ``Out(stream.Signature(...))`` (layers below L among ``layers``)
        The spikes' events in order: row addresses ``i c_{l+1}`` (FC), or
        :func:`hw.core.grid.event_layout` (conv).
    result_valid, result_word, result_spikes, result_integrated : ``Out`` (output layer)
        A word of layer L written this cycle: its index, spikes and pre-reset membranes (the
        readout's).
    written, written_spikes : ``Out(1)``, ``Out(P)``
        A word is written this cycle, and its spikes (counters).
    stalled : ``Out(1)``
        A spike waits for room in the queue this cycle.
    """

    def __init__(self, config: CoreConfig, layers: Sequence[int]) -> None:
        self.config, self.layers = config, tuple(layers)
        if len(self.layers) > 1 and any(config.grid(layer) for layer in self.layers):
            raise ValueError(f"layers: a grid layer's scan engine serves it alone, got {self.layers}")
        lanes = config.lanes
        members = {
            "control": In(ControlSignature(layers=config.layers, timesteps=config.timesteps)),
            "written": Out(1),
            "written_spikes": Out(lanes),
        }
        for layer in self.layers:
            members.update({
                f"v{layer}": Out(MemoryPortSignature(config.memory("V", layer))),
                f"vth{layer}": Out(MemoryPortSignature(config.memory("VTH", layer), write=False)),
                f"s{layer}": Out(MemoryPortSignature(config.memory("S", layer), read=False)),
                f"h{layer}": Out(MemoryPortSignature(config.memory("H", layer), read=False)),
            })
        if 0 in self.layers:
            members["pix0"] = Out(MemoryPortSignature(config.memory("PIX", 0), write=False))
        below = [layer for layer in self.layers if layer < config.layers]
        if below:
            event = (event_layout(config, below[0] + 1) if len(below) == 1
                     else unsigned(max(row_bits(config, layer + 1) for layer in below)))
            members["spikes"] = Out(stream.Signature(event))
            members["stalled"] = Out(1)
        if config.layers in self.layers:
            layer = config.layers
            members.update({
                "result_valid": Out(1),
                "result_word": Out(range(max(config.words[layer], 2))),
                "result_spikes": Out(lanes),
                "result_integrated": Out(data.ArrayLayout(signed(config.formats.v), lanes)),
            })
        super().__init__(members)

    def port(self, name: str, layer: int) -> wiring.PureInterface:
        """The memory port of ``name`` on ``layer``."""
        return getattr(self, f"{name.lower()}{layer}")

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, layers = self.config, self.layers
        lanes = cfg.lanes
        control = self.control
        name = engine_name("scan", layers)
        running, first = control.layer, control.first
        alone = len(layers) == 1

        def each(value, bits: int) -> Value:
            """``value(l)`` of the running layer ``l``."""
            return per_layer(running, {layer: value(layer) for layer in layers}, bits)

        active = wire(m, (control.kind == Pass.FORWARD) & Cat(running == layer for layer in layers).any(), f"{name}_active")
        most = max(cfg.words[layer] for layer in layers)
        word_bits = Shape.cast(range(most + 1)).width
        words = each(lambda layer: cfg.words[layer], word_bits)
        last_word = each(lambda layer: cfg.words[layer] - 1, word_bits)

        # Reads: word k in cycle k.
        at = Signal(range(most + 1), name=f"{name}_at")
        at_now = Mux(first, 0, at)
        reading = wire(m, active & (at_now < words), f"{name}_read")
        with m.If(reading):
            m.d.sync += at.eq(at_now + 1)
        address = channel = at_now
        grid = cfg.grid(layers[0])
        if grid:  # block-major: word pos cw + w, its block and position along
            cursor = GridCursor(m, cfg, layers[0], name=name, step=reading, first=first)
            address, channel = cursor.address, cursor.at.block
            place = delay(m, cursor.at, 1 + SCAN_LATENCY, f"{name}_place")
        ports = {
            memory: shared_port(m, cfg, f"{name}_{memory.lower()}", memory, running,
                                {layer: (layer, self.port(memory, layer)) for layer in layers})
            for memory in ("V", "VTH", "S", "H")
        }
        m.d.comb += [
            ports["V"].read_en.eq(reading), ports["V"].read_addr.eq(address),
            ports["VTH"].read_en.eq(reading), ports["VTH"].read_addr.eq(channel),
        ]
        # The encoder (layer 0) integrates its pixels as it fires.
        op = NeuronOp.FIRE
        if 0 in layers:
            encoding = Const(1) if alone else running == 0
            m.d.comb += [self.pix0.read_en.eq(reading & encoding), self.pix0.read_addr.eq(address)]
            op = NeuronOp.INTEGRATE_FIRE if alone else Mux(encoding, NeuronOp.INTEGRATE_FIRE, NeuronOp.FIRE)

        # Pipeline: data (x + 1), registers (x + 2), lane stages, write (x + 4).
        valid = delay(m, reading, OPERAND_DELAY, f"{name}_valid")
        v_read = Signal.like(ports["V"].read_data, name=f"{name}_v_read")
        vth_read = Signal.like(ports["VTH"].read_data, name=f"{name}_vth_read")
        m.d.sync += [v_read.eq(ports["V"].read_data), vth_read.eq(ports["VTH"].read_data)]
        if 0 in layers:
            pix_read = Signal.like(self.pix0.read_data, name=f"{name}_pix_read")
            m.d.sync += pix_read.eq(self.pix0.read_data)
        units = neuron_lanes(m, cfg, f"{name}_lane")
        for x, unit in enumerate(units):
            operand = unit.operand.payload
            m.d.comb += [
                unit.operand.valid.eq(valid[1]),
                operand.op.eq(op),
                operand.reset_zero.eq(cfg.reset == "zero"),
                operand.v.eq(v_read[x]),
                operand.vth.eq(vth_read[x]),
            ]
            if 0 in layers:
                m.d.comb += operand.x.eq(pix_read[x])
        writing = units[0].result.valid
        # Words are written in the order they were read: word k of an FC layer is the
        # pass's k-th write (the count of writes, a register: no write in a pass's first
        # cycle); a grid layer's, block-major, is its read address delayed to the write.
        written = Signal(range(most + 1), name=f"{name}_written")
        written_now = Mux(first, 0, written)
        with m.If(active):
            m.d.sync += written.eq(written_now + writing)
        k = delay(m, address, 1 + SCAN_LATENCY, f"{name}_word")[-1] if grid else written
        mask = each(lambda layer: valid_lanes(cfg, layer, k), lanes)
        spikes = wire(m, Cat(unit.result.payload.spike for unit in units) & mask, f"{name}_spikes")
        windows = Cat(unit.result.payload.window for unit in units) & mask
        plane_bits = max(cfg.memory("S", layer).address_bits for layer in layers)
        plane = each(lambda layer: step_base(control.t, cfg.words[layer], cfg.timesteps), plane_bits) + k
        m.d.comb += [
            ports["V"].write_addr.eq(k), ports["V"].write_mask.eq(Mux(writing, mask, 0)),
            ports["V"].write_data.eq(Cat(unit.result.payload.v for unit in units)),
            ports["S"].write_addr.eq(plane), ports["S"].write_mask.eq(Mux(writing, mask, 0)),
            ports["S"].write_data.eq(spikes),
            ports["H"].write_addr.eq(plane), ports["H"].write_mask.eq(Mux(writing, mask, 0)),
            ports["H"].write_data.eq(windows),
            self.written.eq(writing),
            self.written_spikes.eq(spikes),
        ]
        # Every word written after this cycle: (written_now + writing) == words, by compares.
        scanned = Mux(writing, written_now == last_word, written_now == words)

        output = cfg.layers in layers
        at_output = Const(1) if alone else running == cfg.layers
        if output:
            m.d.comb += [
                self.result_valid.eq(writing & at_output), self.result_word.eq(k), self.result_spikes.eq(spikes),
                self.result_integrated.eq(Cat(unit.result.payload.integrated for unit in units)),
            ]
            if alone:
                m.d.comb += control.done.eq(active & scanned)
                return m
        if grid:
            m.submodules[f"push{layers[0]}"] = pusher = GridPusher(cfg, layers[0])
            wiring.connect(m, pusher.events, wiring.flipped(self.spikes))
            m.d.comb += [
                pusher.start.eq(first), pusher.written.eq(writing), pusher.spikes.eq(spikes),
                pusher.at.eq(place[3]), self.stalled.eq(pusher.stalled),
                control.done.eq(active & scanned & pusher.drained),
            ]
            return m

        # Word FIFO: the written words with spikes and their row base k P c (counted by the
        # writes), in order; none from the output layer.
        below = [layer for layer in layers if layer < cfg.layers]

        def below_each(value, bits: int) -> Value:
            """``value(l)`` of the running layer ``l`` below the output layer."""
            return per_layer(running, {layer: value(layer) for layer in below}, bits)

        base_bits = max(row_bits(cfg, layer + 1) for layer in below)
        base = Signal(base_bits, name=f"{name}_base")  # no write in a pass's first cycle
        with m.If(first):
            m.d.sync += base.eq(0)
        with m.Elif(writing):
            m.d.sync += base.eq(base + below_each(lambda layer: lanes * cfg.row_words(layer + 1), base_bits))
        fifo = SpikeQueue(index_bits=lanes + base_bits, depth=max(cfg.words[layer] for layer in below))
        m.submodules[f"{name}_fifo"] = fifo
        m.d.comb += [
            fifo.push.valid.eq(writing & spikes.any() & (~at_output if output else 1)),
            fifo.push.payload.eq(Cat(spikes, base)),
            fifo.clear_high_water.eq(control.start),
        ]

        # Pusher: one spike of the FIFO's word per cycle, lowest lane first.
        held = fifo.pop.payload
        pushed = Signal(lanes, name=f"{name}_pushed")
        remaining = wire(m, held[:lanes] & ~pushed, f"{name}_remaining")
        _, one_hot = lowest(remaining, lanes)
        lane_base = below_each(
            lambda layer: one_hot_select([x * cfg.row_words(layer + 1) for x in range(lanes)], one_hot, base_bits),
            base_bits,
        )
        single = ~(remaining & ~one_hot).any()
        out = self.spikes
        accepted = wire(m, fifo.pop.valid & out.ready, f"{name}_push")
        m.d.comb += [
            out.valid.eq(fifo.pop.valid),
            out.payload.eq(held[lanes:] + lane_base),
            fifo.pop.ready.eq(accepted & single),
            self.stalled.eq(fifo.pop.valid & ~out.ready),
        ]
        with m.If(accepted):
            m.d.sync += pushed.eq(Mux(single, 0, pushed | one_hot))
        # The output layer's words never enter the FIFO: it is drained while L runs.
        drained = (fifo.level == 0) & ~fifo.push.valid
        m.d.comb += control.done.eq(active & scanned & drained)
        return m


class IntegrateEngine(wiring.Component):
    """The integration of a stage's spikes into the FC layers ``layers`` (1..L): one engine
    for all of them, the running stage's layer picked as by :class:`ScanEngine`.

    Members
    -------
    control : ``In(ControlSignature)``
        ``control.done`` (out): no event in progress and no write pending after this cycle.
    events : ``In(stream.Signature(unsigned(...)))``
        Row addresses ``i c`` from the running stage's spike queue (the widest of the layers').
    w<l>, v<l> : ``Out(MemoryPortSignature)``
        Per layer ``l``: W read, V read and written.
    """

    def __init__(self, config: CoreConfig, layers: Sequence[int]) -> None:
        self.config, self.layers = config, tuple(layers)
        members = {
            "control": In(ControlSignature(layers=config.layers, timesteps=config.timesteps)),
            "events": In(stream.Signature(unsigned(max(row_bits(config, layer) for layer in self.layers)))),
        }
        for layer in self.layers:
            members[f"w{layer}"] = Out(MemoryPortSignature(config.memory("W", layer), write=False))
            members[f"v{layer}"] = Out(MemoryPortSignature(config.memory("V", layer)))
        super().__init__(members)

    def port(self, name: str, layer: int) -> wiring.PureInterface:
        """The memory port of ``name`` on ``layer``."""
        return getattr(self, f"{name.lower()}{layer}")

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, layers = self.config, self.layers
        control = self.control
        name = engine_name("integrate", layers)
        stage = control.layer  # stage l integrates into layer l + 1
        stages = {layer - 1: layer for layer in layers}
        spacings = {key: max(cfg.row_words(layer), INTEGRATE_LATENCY) for key, layer in stages.items()}
        widest = max(spacings.values())
        active = wire(m, (control.kind == Pass.FORWARD) & Cat(stage == key for key in stages).any(), f"{name}_active")
        spacing_bits = Shape.cast(range(widest + 1)).width

        # Events: popped when the last one started ``spacing`` cycles ago (or none runs).
        # ``since`` counts the cycles from the pop (the word read); whether the event has
        # words left (``more``: since < cost) and whether the next may pop (``free``: since
        # >= spacing) are registers, set as ``since`` steps past the layer's values (the
        # layer does not change while an event runs): no compare in front of the pop.
        since = Signal(range(widest + 1), name=f"{name}_since")
        free = Signal(init=1, name=f"{name}_free")
        more = Signal(name=f"{name}_more")
        popping = wire(m, active & free & self.events.valid, f"{name}_pop")
        m.d.comb += self.events.ready.eq(active & free)
        last_wait = per_layer(stage, {key: value - 1 for key, value in spacings.items()}, spacing_bits)
        last_word = per_layer(stage, {key: cfg.row_words(layer) - 1 for key, layer in stages.items()}, spacing_bits)
        longer = per_layer(stage, {key: cfg.row_words(layer) > 1 for key, layer in stages.items()}, 1)
        m.d.sync += [
            since.eq(Mux(popping, 1, since + 1)),
            free.eq(~popping & (free | (since == last_wait))),
            more.eq(Mux(popping, longer, more & (since != last_word))),
        ]
        row = Signal(self.events.payload.shape(), name=f"{name}_row")
        with m.If(popping):
            m.d.sync += row.eq(self.events.payload)
        word_now = Mux(popping, 0, since)
        reading = wire(m, popping | (~free & more), f"{name}_read")
        w = shared_port(m, cfg, f"{name}_w", "W", stage, {key: (layer, self.port("W", layer)) for key, layer in stages.items()})
        v = shared_port(m, cfg, f"{name}_v", "V", stage, {key: (layer, self.port("V", layer)) for key, layer in stages.items()})
        m.d.comb += [
            w.read_en.eq(reading), w.read_addr.eq(Mux(popping, self.events.payload, row) + word_now),
            v.read_en.eq(reading), v.read_addr.eq(word_now),
        ]

        # Pipeline: data (x + 1), registers (x + 2), lane stages, write (x + 4).
        drained = integrate_datapath(m, cfg, stages, stage, name, w, v, reading=reading)
        m.d.comb += control.done.eq(free & drained)
        return m
