"""The fc decoder's DECODE passes: the class sums of the output spikes (docs/architecture.md
sections 4 and 5.3).

DECODE(t), t = 1..T: the bit-plane walker (:class:`hw.core.walk.Walker`) over the output
layer's ``S^L[t]``; for each spike j it reads D row ``(t-1) n_L + j``, the ``c_D`` words
of its C class weights, one per cycle, and the word read in cycle x is added into the
class sums ``a_c`` (lane x of word s is class ``s P + x``) in ``x + 1``
(``model.core.DECODE_LATENCY``). The sums restart at 0 with each sample; they are
exact (``count_bits`` wide, signed).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Signal, signed
from amaranth.lib import data
from amaranth.lib.wiring import Out

from hw.controller import Pass
from hw.core.memory import MemoryEngine
from hw.core.walk import Walker, decoder_row_base, step_base, valid_lanes, wire
from hw.core_config import CoreConfig

__all__ = ["DecodeEngine"]


class DecodeEngine(MemoryEngine):
    """The DECODE passes of the fc decoder.

    Members
    -------
    control : ``In(ControlSignature)``
        ``control.start`` clears the sums; ``control.done`` (out) ends the pass.
    s<L>, d<L> : ``Out(MemoryPortSignature)`` (read)
        The output spikes and the decoder's weights.
    sums : ``Out(ArrayLayout(signed(count_bits), C))``
        The class sums ``a_c = sum_(t, j) D_c,((t-1) n_L + j) S_j[t]`` (LSB ``2^-df``).
    """

    def __init__(self, config: CoreConfig) -> None:
        super().__init__(config, {
            "sums": Out(data.ArrayLayout(signed(config.count_bits), config.classes)),
        })

    def memories(self) -> list[tuple[str, int]]:
        return [("S", self.config.layers), ("D", self.config.layers)]

    def access(self, name: str, layer: int) -> tuple[bool, bool]:
        return True, False

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        lanes, layer, cost = cfg.lanes, cfg.layers, cfg.decoder_words
        out_words = cfg.words[layer]
        control = self.control
        t = control.t
        s_port, d_port = self.port("S", layer), self.port("D", layer)

        decoding = wire(m, control.kind == Pass.DECODE, "decode_active")
        walker = Walker(
            m, "decode", active=decoding, first=control.first, words=out_words, cost=cost, lanes=lanes,
            bits=s_port.read_data.as_value(), valid=lambda k: valid_lanes(cfg, layer, k),
            rows={layer: cost}, layer=Const(layer),
        )
        m.d.comb += [
            s_port.read_en.eq(walker.issue),
            s_port.read_addr.eq(step_base(t, out_words, cfg.timesteps) + walker.issue_word),
            d_port.read_en.eq(walker.event),
            d_port.read_addr.eq(decoder_row_base(cfg, t) + walker.address),
        ]

        # The word read in x arrives in x + 1 (DECODE_LATENCY) and is added into its classes' sums.
        arrived = Signal(name="decode_arrived")
        arrived_word = Signal.like(walker.sub, name="decode_arrived_word")
        m.d.sync += [arrived.eq(walker.event), arrived_word.eq(walker.sub)]
        with m.If(control.start):
            m.d.sync += [total.eq(0) for total in self.sums]
        for c, total in enumerate(self.sums):
            word, lane = divmod(c, lanes)
            adding = arrived & (arrived_word == word)
            with m.If(adding):
                m.d.sync += total.eq(total + d_port.read_data[lane])
        m.d.comb += control.done.eq(walker.finished & ~walker.event)
        return m
