"""The integration of a stage's spikes into a conv layer (docs/architecture.md sections 9.2
and 9.3).

:class:`TapIntegrateEngine` takes an event (:func:`hw.core.grid.event_layout`: kernel row
base ``9 c c_out``, position base ``(y W + x) c_out``, position ``y``, ``x``) and reads,
for each tap ``(i, j)`` in row-major order whose target ``(y + 1 - i, x + 1 - j)`` lies in
the image (four compares), the ``c_out`` words of W row ``9 c + 3 i + j`` with the V words
of the target, one pair per cycle (:class:`TapAddress`: the bases plus one of 9 constant
offsets and the word). Each word's lanes add the weights (``V = sat_v(V + W)``) and write V
``INTEGRATE_LATENCY`` cycles after the read, as the FC engine's. A read waits while its V
word has a write in flight (the scoreboard: the reads of the last ``INTEGRATE_LATENCY - 1``
cycles; the V port is transparent, so the read may share its write's cycle). The event is
popped with its first read.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.controller import ControlSignature, Pass
from hw.core.grid import event_layout
from hw.core.lanes import integrate_datapath
from hw.core.memory import MemoryPortSignature
from hw.core.walk import counter_shape, lowest, scoreboard, select, wire
from hw.core_config import CoreConfig
from model.core import INTEGRATE_LATENCY

__all__ = ["TapAddress", "TapIntegrateEngine", "TapSequence", "TAPS"]

#: The kernel taps (i, j) in row-major order.
TAPS = tuple((i, j) for i in range(3) for j in range(3))


class TapAddress(wiring.Component):
    """The words of one tap of a conv event (combinational).

    Members
    -------
    event : ``In(event_layout)``
        The event.
    taps : ``In(9)``
        The taps still to read (bit ``3 i + j``).
    word : ``In(range(c_out))``
        The word of the tap's ``c_out``.
    inside : ``Out(9)``
        The event's in-image taps.
    tap : ``Out(range(9))``, ``one_hot`` : ``Out(9)``
        The lowest tap of ``taps``.
    w_addr, v_addr : ``Out``
        ``w_base + tap c_out + word`` and ``v_base + ((1 - i) W + (1 - j)) c_out + word``.
    """

    def __init__(self, config: CoreConfig, layer: int) -> None:
        self.config, self.layer = config, layer
        super().__init__({
            "event": In(event_layout(config, layer)),
            "taps": In(9),
            "word": In(counter_shape(config.row_words(layer))),
            "inside": Out(9),
            "tap": Out(range(9)),
            "one_hot": Out(9),
            "w_addr": Out(counter_shape(config.memory("W", layer).depth)),
            "v_addr": Out(counter_shape(config.words[layer])),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, event = self.config, self.event
        _, height, width = cfg.shape(self.layer)
        cw = cfg.row_words(self.layer)
        rows = {0: event.y != height - 1, 1: 1, 2: event.y != 0}
        cols = {0: event.x != width - 1, 1: 1, 2: event.x != 0}
        m.d.comb += self.inside.eq(Cat(rows[i] & cols[j] for i, j in TAPS))
        tap, one_hot = lowest(self.taps, 9)
        bits = len(self.v_addr)
        offsets = [(((1 - i) * width + 1 - j) * cw) % (1 << bits) for i, j in TAPS]
        m.d.comb += [
            self.tap.eq(tap), self.one_hot.eq(one_hot),
            self.w_addr.eq(event.w_base + select([t * cw for t in range(9)], tap, (8 * cw).bit_length()) + self.word),
            self.v_addr.eq((event.v_base + select(offsets, tap, bits) + self.word)[:bits]),
        ]
        return m


class TapSequence:
    """The reads of one conv event into layer ``layer``, one (W word, target word) pair per
    read: the in-image taps row-major, each tap's ``c_out`` words ascending
    (:class:`TapAddress` with the taps and the word still to read as registers).

    ``event`` is the running event, held while it runs; ``fresh``: no read of it yet (its
    in-image taps from ``event``); ``step``: a read this cycle. ``w_addr``, ``v_addr`` and
    ``word`` are the read's; ``last``: it is the event's last.
    """

    def __init__(self, m: Module, config: CoreConfig, layer: int, *, name: str, event: Value, fresh: Value, step: Value) -> None:
        cw = config.row_words(layer)
        m.submodules[f"{name}_address"] = address = TapAddress(config, layer)
        left = Signal(9, name=f"{name}_taps")
        word = Signal(counter_shape(cw), name=f"{name}_word")
        m.d.comb += [
            address.event.eq(event),
            address.word.eq(Mux(fresh, 0, word)),
            address.taps.eq(Mux(fresh, address.inside, left)),
        ]
        tap_done = address.word == cw - 1
        remaining = address.taps & ~address.one_hot
        self.last = wire(m, tap_done & ~remaining.any(), f"{name}_last")
        with m.If(step):
            m.d.sync += [
                word.eq(Mux(tap_done, 0, address.word + 1)),
                left.eq(Mux(tap_done, remaining, address.taps)),
            ]
        self.w_addr, self.v_addr, self.word = address.w_addr, address.v_addr, address.word


class TapIntegrateEngine(wiring.Component):
    """The integration of a stage's spikes into conv layer ``layer`` (1..L).

    Members
    -------
    control : ``In(ControlSignature)``
        ``control.done`` (out): no event in progress and no write pending after this cycle.
    events : ``In(stream.Signature(event_layout(layer)))``
        Events from the spike queue.
    w, v : ``Out(MemoryPortSignature)``
        W read, V read and written.
    operations : ``Out(range(C_out + 1))``
        Synaptic operations this cycle (``C_out`` with a tap's first read).
    """

    def __init__(self, config: CoreConfig, layer: int) -> None:
        self.config, self.layer = config, layer
        super().__init__({
            "control": In(ControlSignature(layers=config.layers, timesteps=config.timesteps)),
            "events": In(stream.Signature(event_layout(config, layer))),
            "w": Out(MemoryPortSignature(config.memory("W", layer), write=False)),
            "v": Out(MemoryPortSignature(config.memory("V", layer))),
            "operations": Out(range(config.shape(layer)[0] + 1)),
        })

    def port(self, name: str, layer: int) -> wiring.PureInterface:
        """The memory port of ``name`` (``W`` or ``V``) on ``layer``, the engine's own."""
        if layer != self.layer:
            raise ValueError(f"layer: the engine integrates into layer {self.layer}, got {layer}")
        return getattr(self, name.lower())

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, index = self.config, self.layer
        control = self.control
        name = f"integrate{index}"
        active = wire(m, (control.kind == Pass.FORWARD) & (control.layer == index - 1), f"{name}_active")

        # The event in hand (registered) or, when none, the queue's head.
        busy = Signal(name=f"{name}_busy")
        held = Signal(event_layout(cfg, index), name=f"{name}_event")
        starting = ~busy & active & self.events.valid
        reading = Signal(name=f"{name}_read")
        taps = TapSequence(
            m, cfg, index, name=name, event=Mux(busy, held.as_value(), self.events.payload), fresh=~busy, step=reading,
        )

        # Scoreboard: the V words read in the last INTEGRATE_LATENCY - 1 cycles.
        hazard = scoreboard(m, name, read=reading, address=taps.v_addr, cycles=INTEGRATE_LATENCY - 1)
        m.d.comb += reading.eq((busy | starting) & ~hazard)
        m.d.comb += [
            self.events.ready.eq(~busy & active & ~hazard),
            self.w.read_en.eq(reading), self.w.read_addr.eq(taps.w_addr),
            self.v.read_en.eq(reading), self.v.read_addr.eq(taps.v_addr),
            self.operations.eq(Mux(reading & (taps.word == 0), cfg.shape(index)[0], 0)),
        ]
        with m.If(reading):
            with m.If(starting):
                m.d.sync += held.eq(self.events.payload)
            m.d.sync += busy.eq(~taps.last)

        # Pipeline: data (x + 1), registers (x + 2), lane stages, write (x + 4).
        drained = integrate_datapath(
            m, cfg, {index - 1: index}, control.layer, name, self.w, self.v, reading=reading, target=taps.v_addr,
            row_word=taps.word,
        )
        m.d.comb += control.done.eq(~busy & drained)
        return m
