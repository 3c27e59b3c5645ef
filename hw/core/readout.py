"""The readout: class spike counts and class membranes from the output layer's scan, and the
READOUT pass that picks the prediction (docs/architecture.md sections 3 and 4).

The output layer's words, as the scan writes them, add their spikes into the class counts
``n_c`` (rate decoder: every step; last decoder: step T only) and, at step T, their
pre-reset membranes into the class membranes ``m_c``. With the fc decoder the class values
are the decoder's sums (:class:`hw.core.decode.DecodeEngine`) and there are no membranes.
The READOUT pass reads class c's value and membrane in cycle c into a register and
compares them in cycle c + 1 (:data:`model.core.READOUT_LATENCY` = 1) with the best so
far: the larger value wins, then the larger membrane, then the lower class.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.controller import ControlSignature, Pass
from hw.core.walk import popcount, select
from hw.core_config import CoreConfig

__all__ = ["Readout", "class_value_shape"]


def class_value_shape(config: CoreConfig) -> Shape:
    """Shape of a class value: a spike count (unsigned) or the fc decoder's sum (signed)."""
    return signed(config.count_bits) if config.fc_decoder else unsigned(config.count_bits)


class Readout(wiring.Component):
    """Class counts and membranes, and the READOUT pass.

    Members
    -------
    control : ``In(ControlSignature)``
        ``control.done`` (out) ends the READOUT pass; ``control.start`` clears the classes.
    result_valid, result_word, result_spikes, result_integrated : ``In``
        The output layer's scan: a word written this cycle (:class:`hw.core.forward.ScanEngine`).
    sums : ``In(ArrayLayout(signed(count_bits), C))`` (fc decoder only)
        The decoder's class sums.
    counts : ``Out(ArrayLayout(count_bits, C))``
        The class values: spike counts ``n_c`` (unsigned), or the decoder's sums (signed).
    prediction : ``Out(class_bits)``
        The class the READOUT pass picked.
    """

    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        layer = config.layers
        value = class_value_shape(config)
        members = {
            "control": In(ControlSignature(layers=config.layers, timesteps=config.timesteps)),
            "result_valid": In(1),
            "result_word": In(range(max(config.words[layer], 2))),
            "result_spikes": In(config.lanes),
            "result_integrated": In(data.ArrayLayout(signed(config.formats.v), config.lanes)),
            "counts": Out(data.ArrayLayout(value, config.classes)),
            "prediction": Out(config.class_bits),
        }
        if config.fc_decoder:
            members["sums"] = In(data.ArrayLayout(value, config.classes))
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        lanes, classes, layer = cfg.lanes, cfg.classes, cfg.layers
        control = self.control
        last_step = control.t == cfg.timesteps

        # Class counts (last: t = T only) and class membranes at T, from the written words;
        # the fc decoder's sums.
        membrane_bits = cfg.formats.v + max(cfg.population - 1, 1).bit_length()
        membranes = [Signal(signed(membrane_bits), name=f"membrane{c}") for c in range(classes)]
        counting = self.result_valid if cfg.decoder == "rate" else self.result_valid & last_step
        if cfg.fc_decoder:
            m.d.comb += self.counts.eq(self.sums)
        else:
            with m.If(control.start):
                m.d.sync += [n.eq(0) for n in self.counts] + [v.eq(0) for v in membranes]
            for c in range(classes):
                masks = [
                    sum(1 << x for x in range(lanes) if cfg.class_of(w, x) == c and w * lanes + x < cfg.sizes[layer])
                    for w in range(cfg.words[layer])
                ]
                in_class = select(masks, self.result_word, lanes)
                # The class's lanes of the word enable the adds; where one lane ever holds the
                # class, its values are added as they are (no lane select in front of the adder).
                places = [x for x in range(lanes) if any(mask >> x & 1 for mask in masks)]
                if len(places) == 1:
                    spikes, total = self.result_spikes[places[0]], self.result_integrated[places[0]]
                else:
                    spikes = popcount(self.result_spikes & in_class)
                    total = sum(Mux(in_class[x], self.result_integrated[x], 0) for x in range(lanes))
                with m.If(counting & in_class.any()):
                    m.d.sync += self.counts[c].eq(self.counts[c] + spikes)
                with m.If(self.result_valid & last_step & in_class.any()):
                    m.d.sync += membranes[c].eq(membranes[c] + total)

        # READOUT: class c read in cycle c, compared in c + READOUT_LATENCY.
        active = control.kind == Pass.READOUT
        at = Signal(range(classes + 1), name="readout_class")
        at_now = Mux(control.first, 0, at)
        reading = active & (at_now < classes)
        with m.If(reading):
            m.d.sync += at.eq(at_now + 1)
        held = Signal(name="readout_held")
        held_class = Signal(cfg.class_bits, name="readout_held_class")
        held_count = Signal(class_value_shape(cfg), name="readout_held_count")
        held_membrane = Signal(signed(membrane_bits), name="readout_held_membrane")
        m.d.sync += [
            held.eq(reading), held_class.eq(at_now),
            held_count.eq(Array(self.counts)[at_now]), held_membrane.eq(Array(membranes)[at_now]),
        ]
        best_count = Signal(class_value_shape(cfg), name="readout_best_count")
        best_membrane = Signal(signed(membrane_bits), name="readout_best_membrane")
        better = (held_class == 0) | (held_count > best_count) | (
            (held_count == best_count) & (held_membrane > best_membrane)
        )
        with m.If(active & held & better):
            m.d.sync += [self.prediction.eq(held_class), best_count.eq(held_count), best_membrane.eq(held_membrane)]
        m.d.comb += control.done.eq(active & held & (held_class == classes - 1))
        return m
