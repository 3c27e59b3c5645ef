"""The integration of a stage's spikes into the FC layers (docs/architecture.md sections 3
and 5.2): :class:`IntegrateEngine` pops a row address when free and reads the row's c words
of W with the c words of V, one per cycle; each word's lanes add the weights
(``V = sat_v(V + W)``) and write V ``INTEGRATE_LATENCY`` = 4 cycles after its read. Events
start ``max(c, INTEGRATE_LATENCY)`` cycles apart, so a read comes no earlier than the cycle
of its word's pending write (a transparent V port where that can happen,
:meth:`CoreConfig.v_read_transparent <hw.core_config.CoreConfig.v_read_transparent>`).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.controller import ControlSignature, Pass
from hw.core.forward import engine_name
from hw.core.grid import row_bits
from hw.core.lanes import integrate_datapath
from hw.core.memory import LayerPorts, MemoryPortSignature, shared_port
from hw.core.walk import per_layer, wire
from hw.core_config import CoreConfig
from model.core import INTEGRATE_LATENCY

__all__ = ["IntegrateEngine"]


class IntegrateEngine(LayerPorts, wiring.Component):
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
