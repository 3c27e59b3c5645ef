"""The update engine: the weight and threshold update passes (docs/architecture.md section 5.3).

One :class:`hw.update.UpdateUnit` (learning-rate shift, floor / nearest / stochastic
rounding with the contract's LFSR, subtraction, saturation or clamp) serves every update
pass of every layer, one word per cycle, pipelined: a word read in cycle ``x`` arrives in
``x + 1``, is registered as read and again as the running layer's operand
(:data:`model.core.OPERAND_REGISTERS`), enters the unit in ``x + 3`` and is written in
``x + 5`` (:data:`model.core.UPDATE_LATENCY` cycles after its data). The read-to-write
distance is odd, so a single-port weight bank never sees a read and a write in one cycle.

* UPDATE_W, layer l: every word of W^l and dW^l in address order,
  ``W = sat_w(W - round_shift(dW, s_w))``, ``dW = 0`` (valid lanes).
* UPDATE_TH, layer l: one word at a time, ``Vth = clamp(Vth - round_shift(dVth, s), 1,
  max)``, ``dVth = 0``; the lanes whose threshold changed go to their
  :class:`hw.reciprocal.ReciprocalDivider`, whose R is written K + 2 cycles later, when the
  next word is read.
"""

from __future__ import annotations

from collections.abc import Mapping

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.controller import ControlSignature, Pass
from hw.core.memory import MemoryPortSignature
from hw.core.walk import WordSequence, counter_shape, wire
from hw.core_config import CoreConfig
from hw.reciprocal import ReciprocalDivider
from hw.update import UpdateUnit
from model.fixed import LFSR_BITS
from model.integer import PIXEL_FRAC
from model.units import SHIFT_BITS, Rounding, UpdateOp

__all__ = ["UpdateEngine"]


class UpdateEngine(wiring.Component):
    """The UPDATE_W and UPDATE_TH passes of every layer.

    Parameters
    ----------
    config : CoreConfig
        The core's configuration (learnable).

    Members
    -------
    control : ``In(ControlSignature)``
        The controller's pass, layer and ``first``; ``control.done`` (out) ends the pass.
    shift_w, shift_th : ``In(5)``
        Learning-rate shifts (the encoder's threshold shift is ``max(s_th - 8 + fw, 0)``).
    lfsr_load : ``In(1)``, lfsr_seed : ``In(32)``, lfsr_state : ``Out(32)``
        The update unit's LFSR: host load and state.
    w<l>, dw<l> (l = 1..L), vth<l>, dvth<l>, r<l> (l = 0..L, trainable thresholds) :
        ``Out(MemoryPortSignature)``, the memories the passes read and write (R write-only).
    """

    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        members = {
            "control": In(ControlSignature(layers=config.layers, timesteps=config.timesteps)),
            "shift_w": In(SHIFT_BITS),
            "shift_th": In(SHIFT_BITS),
            "lfsr_load": In(1),
            "lfsr_seed": In(LFSR_BITS),
            "lfsr_state": Out(LFSR_BITS),
        }
        for name, layer in self.memories():
            signature = MemoryPortSignature(config.memory(name, layer), read=name != "R")
            members[f"{name.lower()}{layer}"] = Out(signature)
        super().__init__(members)

    def memories(self) -> list[tuple[str, int]]:
        """``(memory, layer)`` of every memory port, in member order."""
        cfg = self.config
        ports = [(name, layer) for layer in range(1, cfg.layers + 1) for name in ("W", "DW")]
        if cfg.trainable:
            ports += [(name, layer) for layer in range(cfg.layers + 1) for name in ("VTH", "DVTH", "R")]
        return ports

    def port(self, name: str, layer: int) -> wiring.PureInterface:
        """The memory port of ``name`` on ``layer``."""
        return getattr(self, f"{name.lower()}{layer}")

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        f = cfg.formats
        lanes = cfg.lanes
        control = self.control
        layer, first = control.layer, control.first

        def by_layer(values: Mapping[int, Value | int], shape) -> Value:
            chosen = Const(0, shape)
            for index, value in values.items():
                chosen = Mux(layer == index, value, chosen)
            return chosen

        m.submodules.unit = unit = UpdateUnit(lanes=lanes, w=f.w, v=f.v, dw=f.dw, dth=f.dth, lfsr_init=cfg.lfsr_state)
        m.d.comb += [
            unit.result.ready.eq(1),
            unit.lfsr_load.eq(self.lfsr_load),
            unit.lfsr_seed.eq(self.lfsr_seed),
            self.lfsr_state.eq(unit.lfsr_state),
        ]
        weights = wire(m, control.kind == Pass.UPDATE_W, "update_w_active")
        thresholds = wire(m, control.kind == Pass.UPDATE_TH, "update_th_active")
        result = unit.result

        # Operand registers: the words read (every port), then the running layer's.
        def registered(name: str, layers: range) -> dict[int, Signal]:
            out = {}
            for index in layers:
                data = self.port(name, index).read_data
                out[index] = Signal.like(data, name=f"update_{name.lower()}{index}_read")
                m.d.sync += out[index].eq(data)
            return out

        def valid_lanes(index: int, word: Value) -> Value:
            full = (1 << lanes) - 1
            last = cfg.valid_lanes(index, cfg.words[index] - 1)
            return Mux(word == cfg.words[index] - 1, last, full) if last != full else Const(full, lanes)

        value_shape, grad_shape = unit.operand.payload.value.shape(), unit.operand.payload.grad.shape()
        operand_value = Signal(value_shape, name="update_operand_value")
        operand_grad = Signal(grad_shape, name="update_operand_grad")
        operand_mask = Signal(lanes, name="update_operand_mask")
        operand_shift = Signal(SHIFT_BITS, name="update_operand_shift")
        operand_valid = Signal(name="update_operand_valid")
        m.d.comb += [
            unit.operand.valid.eq(operand_valid),
            unit.operand.payload.op.eq(Mux(thresholds, UpdateOp.THRESHOLD, UpdateOp.WEIGHT)),
            unit.operand.payload.rounding.eq(Rounding[cfg.rounding.upper()]),
            unit.operand.payload.shift.eq(operand_shift),
            unit.operand.payload.mask.eq(operand_mask),
            unit.operand.payload.value.eq(operand_value),
            unit.operand.payload.grad.eq(operand_grad),
        ]
        read_valid = Signal(name="update_read_valid")  # a word's data arrived (cycle x + 1)
        read_mask = Signal(lanes, name="update_read_mask")
        registered_valid = Signal(name="update_registered_valid")  # its registers (x + 2)
        registered_mask = Signal(lanes, name="update_registered_mask")
        m.d.sync += [registered_valid.eq(read_valid), registered_mask.eq(read_mask), operand_valid.eq(registered_valid)]

        # UPDATE_W: every word of the layer's rows, in address order.
        weight_layers = range(1, cfg.layers + 1)
        totals = {i: cfg.sizes[i - 1] * cfg.row_words(i) for i in weight_layers}
        longest = max(totals.values())
        at = Signal(range(longest + 1), name="update_w_word")
        at_now = Mux(first, 0, at)
        total = by_layer(totals, range(longest + 1))
        reading = wire(m, weights & (at_now < total), "update_w_read")
        with m.If(reading):
            m.d.sync += at.eq(at_now + 1)
        row_word = Signal(counter_shape(max(cfg.row_words(i) for i in weight_layers)), name="update_w_row_word")
        row_word_now = Mux(first, 0, row_word)
        cost = by_layer({i: cfg.row_words(i) for i in weight_layers}, row_word.shape())
        with m.If(reading):
            m.d.sync += row_word.eq(Mux(row_word_now == cost - 1, 0, row_word_now + 1))
        written = Signal(range(longest + 1), name="update_w_written")
        written_now = Mux(first, 0, written)
        writing = wire(m, weights & result.valid, "update_w_write")
        with m.If(weights):
            m.d.sync += written.eq(written_now + writing)
        w_read, dw_read = registered("W", weight_layers), registered("DW", weight_layers)
        for index in weight_layers:
            on = weights & (layer == index)
            for name in ("W", "DW"):
                port = self.port(name, index)
                m.d.comb += [port.read_en.eq(reading & on), port.read_addr.eq(at_now)]
                m.d.comb += [port.write_addr.eq(written_now), port.write_mask.eq(Mux(writing & on, result.payload.mask, 0))]
            m.d.comb += self.port("W", index).write_data.eq(Cat(result.payload.value[x][: f.w] for x in range(lanes)))
        with m.If(weights):
            m.d.sync += [
                read_valid.eq(reading),
                read_mask.eq(by_layer({i: valid_lanes(i, row_word_now) for i in weight_layers}, lanes)),
                operand_shift.eq(self.shift_w),
            ]
            m.d.sync += [operand_value[x].eq(by_layer({i: w_read[i][x] for i in weight_layers}, signed(f.w))) for x in range(lanes)]
            m.d.sync += [operand_grad[x].eq(by_layer({i: dw_read[i][x] for i in weight_layers}, signed(f.dw))) for x in range(lanes)]
            m.d.sync += operand_mask.eq(registered_mask)
        weights_done = writing & (written_now == total - 1)

        if not cfg.trainable:
            m.d.comb += control.done.eq(weights_done)
            with m.If(~weights):
                m.d.sync += read_valid.eq(0)
            return m

        # UPDATE_TH: one word at a time; a word with a changed threshold waits for R.
        every = range(cfg.layers + 1)
        sequence = WordSequence(m, "update_th", start=thresholds & first, first=first, words=max(cfg.words))
        k = sequence.k
        waiting = Signal(name="update_th_waiting")
        changed_lanes = Signal(lanes, name="update_th_changed")
        dividers = []
        for x in range(lanes):
            divider = ReciprocalDivider(threshold_bits=f.v - 1, k=f.k)
            m.submodules[f"divider{x}"] = divider
            m.d.comb += [
                divider.result.ready.eq(1),
                divider.vth.valid.eq(thresholds & result.valid & result.payload.changed[x]),
                divider.vth.payload.eq(result.payload.value[x][: f.v - 1]),
            ]
            dividers.append(divider)
        arrived = wire(m, thresholds & result.valid, "update_th_arrived")
        results = Cat(divider.result.valid for divider in dividers).any()
        delivered = wire(m, thresholds & waiting & results, "update_th_delivered")
        changed = result.payload.changed
        retire = wire(m, (arrived & ~changed.any()) | delivered, "update_th_retire")
        last = k == by_layer({i: cfg.words[i] - 1 for i in every}, counter_shape(max(cfg.words)))
        issue = wire(m, thresholds & (first | (retire & ~last)), "update_th_issue")
        issue_word = Mux(first, 0, k + 1)
        with m.If(arrived & changed.any()):
            m.d.sync += [waiting.eq(1), changed_lanes.eq(changed)]
        with m.If((thresholds & first) | retire):
            m.d.sync += waiting.eq(0)
        th_read, dth_read = registered("VTH", every), registered("DVTH", every)
        for index in every:
            on = thresholds & (layer == index)
            for name in ("VTH", "DVTH"):
                port = self.port(name, index)
                m.d.comb += [port.read_en.eq(issue & on), port.read_addr.eq(issue_word)]
                m.d.comb += [port.write_addr.eq(k), port.write_mask.eq(Mux(arrived & on, result.payload.mask, 0))]
            m.d.comb += self.port("VTH", index).write_data.eq(
                Cat(result.payload.value[x][: f.v - 1] for x in range(lanes))
            )
            r_port = self.port("R", index)
            m.d.comb += [
                r_port.write_addr.eq(k),
                r_port.write_mask.eq(Mux(delivered & on, changed_lanes, 0)),
                r_port.write_data.eq(Cat(divider.result.payload for divider in dividers)),
            ]
        encoder_shift = Signal(SHIFT_BITS, name="update_th_encoder_shift")  # max(s_th - 8 + fw, 0)
        m.d.comb += encoder_shift.eq(
            Mux(self.shift_th + f.fw >= PIXEL_FRAC, self.shift_th + f.fw - PIXEL_FRAC, 0)
        )
        with m.If(thresholds):
            m.d.sync += [
                read_valid.eq(issue),
                read_mask.eq(by_layer({i: valid_lanes(i, issue_word) for i in every}, lanes)),
                operand_shift.eq(Mux(layer == 0, encoder_shift, self.shift_th)),
            ]
            m.d.sync += [
                operand_value[x].eq(by_layer({i: th_read[i][x] for i in every}, range(f.threshold_max + 1)))
                for x in range(lanes)
            ]
            m.d.sync += [
                operand_grad[x].eq(by_layer({i: dth_read[i][x] for i in every}, signed(f.dth))) for x in range(lanes)
            ]
            m.d.sync += operand_mask.eq(registered_mask)
        with m.If(~weights & ~thresholds):
            m.d.sync += read_valid.eq(0)
        thresholds_done = sequence.advance(retire, last)
        m.d.comb += control.done.eq(Mux(weights, weights_done, thresholds & thresholds_done))
        return m
