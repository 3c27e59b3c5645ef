"""The fire scan of the forward stages (docs/architecture.md sections 3 and 5.2), and how
the forward engines are grouped (:func:`layer_engines`): one engine for every FC layer,
one per grid layer; the integration of the spikes is :mod:`hw.core.integrate` (FC) and
:mod:`hw.core.taps` (conv).

:class:`ScanEngine` reads word k of V, VTH (and PIX for the encoder) in cycle k, one word
per cycle without a stall; behind one operand register its :class:`hw.neuron.NeuronLane`
units (P lanes, two pipeline stages) integrate the pixel (encoder), fire, flag the window
and reset, and V, S, H of the word are written in ``k + 1 + SCAN_LATENCY``. A word with
spikes enters the word FIFO (a :class:`hw.queue.SpikeQueue` as deep as the layer has
words, so it never fills) with its row base ``k P c``; the pusher takes the FIFO's words in
order and pushes one spike per cycle into the stage's spike queue, as the row address
``i c`` of the next layer's weights (stalled while the queue is full, never dropped). The
output layer's words go to the readout (``result_*`` ports) instead. A grid layer (conv,
an image encoder) is read block-major and its spikes leave through
:class:`hw.core.grid.GridPusher` (docs/architecture.md section 9.2).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.controller import ControlSignature, Pass
from hw.core.grid import GridCursor, GridPusher, event_layout, row_bits
from hw.core.lanes import OPERAND_DELAY, neuron_lanes
from hw.core.memory import LayerPorts, MemoryPortSignature, shared_port
from hw.core.walk import delay, lowest, one_hot_select, per_layer, runs, step_base, valid_lanes, wire
from hw.core_config import CoreConfig
from hw.queue import SpikeQueue
from model.core import SCAN_LATENCY
from model.units import NeuronOp

__all__ = ["ScanEngine", "engine_name", "layer_engines", "row_bits"]


def layer_engines(config: CoreConfig, layers: Sequence[int]) -> list[tuple[int, ...]]:
    """The layers of ``layers`` grouped by the engine that serves them: one engine for all
    FC (flat) layers, one for each grid layer."""
    flat = tuple(layer for layer in layers if not config.grid(layer))
    return ([flat] if flat else []) + [(layer,) for layer in layers if config.grid(layer)]


def engine_name(kind: str, layers: Sequence[int]) -> str:
    """Name of the ``kind`` engine of ``layers`` (``scan0_1_2``, ``integrate3``)."""
    return kind + "_".join(str(layer) for layer in layers)


class ScanEngine(LayerPorts, wiring.Component):
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
            encoding = runs(running, 0, layers)
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
        at_output = runs(running, cfg.layers, layers)
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

        # The output layer's words never enter the FIFO: it is drained while L runs.
        entering = writing & spikes.any() & (~at_output if output else 1)
        drained = self._pusher(m, name, writing=writing, entering=entering, spikes=spikes)
        m.d.comb += control.done.eq(active & scanned & drained)
        return m

    def _pusher(self, m: Module, name: str, *, writing: Value, entering: Value, spikes: Value) -> Value:
        """The word FIFO (the written words, ``entering`` those with ``spikes``, and their row
        base ``k P c``, counted by the writes, in order) and the pusher (one spike of the
        FIFO's head word per cycle, lowest lane first, into ``spikes``). Returns "the FIFO is
        empty and nothing enters it"."""
        cfg, control = self.config, self.control
        lanes, running = cfg.lanes, control.layer
        below = [layer for layer in self.layers if layer < cfg.layers]

        def below_each(value, bits: int) -> Value:
            """``value(l)`` of the running layer ``l`` below the output layer."""
            return per_layer(running, {layer: value(layer) for layer in below}, bits)

        base_bits = max(row_bits(cfg, layer + 1) for layer in below)
        base = Signal(base_bits, name=f"{name}_base")  # no write in a pass's first cycle
        with m.If(control.first):
            m.d.sync += base.eq(0)
        with m.Elif(writing):
            m.d.sync += base.eq(base + below_each(lambda layer: lanes * cfg.row_words(layer + 1), base_bits))
        fifo = SpikeQueue(index_bits=lanes + base_bits, depth=max(cfg.words[layer] for layer in below))
        m.submodules[f"{name}_fifo"] = fifo
        m.d.comb += [
            fifo.push.valid.eq(entering),
            fifo.push.payload.eq(Cat(spikes, base)),
            fifo.clear_high_water.eq(control.start),
        ]

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
        return (fifo.level == 0) & ~fifo.push.valid
