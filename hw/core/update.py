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
* UPDATE_D (the fc decoder): the same over D and dD (the classes' lanes) with the shift
  ``clamp(s_w + fw - gf - G, 0, 31)``.
* UPDATE_TH, layer l: one word at a time, ``Vth = clamp(Vth - round_shift(dVth, s), 1,
  max)``, ``dVth = 0``; the lanes whose threshold changed go to their
  :class:`hw.reciprocal.ReciprocalDivider`, whose R is written K + 2 cycles later, when the
  next word is read.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib.wiring import In, Out

from hw.controller import Pass
from hw.core.memory import MemoryEngine
from hw.core.walk import WordSequence, by_layer, counter_shape, decoder_lanes, row_lanes, wire
from hw.core_config import CoreConfig
from hw.datapath import clamp
from hw.reciprocal import ReciprocalDivider
from hw.update import UpdateUnit
from model.fixed import LFSR_BITS
from model.integer import PIXEL_FRAC
from model.units import SHIFT_BITS, Rounding, UpdateOp

__all__ = ["UpdateEngine"]


class UpdateEngine(MemoryEngine):
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
    w<l>, dw<l> (l = 1..L), vth<l>, dvth<l>, r<l> (l = 0..L, trainable thresholds), d<L>,
    dd<L> (fc decoder) : ``Out(MemoryPortSignature)``, the memories the passes read and
        write (R write-only).
    """

    def __init__(self, config: CoreConfig) -> None:
        super().__init__(config, {
            "shift_w": In(SHIFT_BITS),
            "shift_th": In(SHIFT_BITS),
            "lfsr_load": In(1),
            "lfsr_seed": In(LFSR_BITS),
            "lfsr_state": Out(LFSR_BITS),
        })

    def memories(self) -> list[tuple[str, int]]:
        cfg = self.config
        ports = [(name, layer) for layer in range(1, cfg.layers + 1) for name in ("W", "DW")]
        if cfg.trainable:
            ports += [(name, layer) for layer in range(cfg.layers + 1) for name in ("VTH", "DVTH", "R")]
        if cfg.fc_decoder:
            ports += [("D", cfg.layers), ("DD", cfg.layers)]
        return ports

    def access(self, name: str, layer: int) -> tuple[bool, bool]:
        return name != "R", True

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        f = cfg.formats
        control = self.control
        m.submodules.unit = unit = UpdateUnit(
            lanes=cfg.lanes, w=f.w, v=f.v, dw=f.dw, dth=f.dth, lfsr_init=cfg.lfsr_state
        )
        m.d.comb += [
            unit.result.ready.eq(1),
            unit.lfsr_load.eq(self.lfsr_load),
            unit.lfsr_seed.eq(self.lfsr_seed),
            self.lfsr_state.eq(unit.lfsr_state),
        ]
        weights = wire(m, control.kind == Pass.UPDATE_W, "update_w_active")
        decoder = wire(m, control.kind == Pass.UPDATE_D, "update_d_active") if cfg.fc_decoder else Const(0)
        thresholds = wire(m, control.kind == Pass.UPDATE_TH, "update_th_active")
        m.d.comb += [
            unit.operand.payload.op.eq(Mux(thresholds, UpdateOp.THRESHOLD, UpdateOp.WEIGHT)),
            unit.operand.payload.rounding.eq(Rounding[cfg.rounding.upper()]),
        ]
        operands = _Operands(m, unit, cfg.lanes)
        rows = weights | decoder
        done = self._rows(m, unit, operands, weights, decoder)
        if cfg.trainable:
            done = Mux(rows, done, thresholds & self._thresholds(m, unit, operands, thresholds))
        with m.If(~rows & ~thresholds):
            m.d.sync += operands.read_valid.eq(0)
        m.d.comb += control.done.eq(done)
        return m

    def _rows(self, m: Module, unit: UpdateUnit, operands: _Operands, weights: Value, decoder: Value) -> Value:
        """UPDATE_W (``weights``): every word of the layer's rows, in address order; UPDATE_D
        (``decoder``, block L + 1): every word of D. Returns the pass's done."""
        cfg = self.config
        f, lanes = cfg.formats, cfg.lanes
        layer, first = self.control.layer, self.control.first
        result = unit.result
        active = weights | decoder
        # Block i: (value memory, accumulator memory, its layer, words a row, rows).
        blocks = {i: ("W", "DW", i, cfg.row_words(i), cfg.weight_rows(i)) for i in range(1, cfg.layers + 1)}
        decoder_block = cfg.layers + 1
        if cfg.fc_decoder:
            blocks[decoder_block] = ("D", "DD", cfg.layers, cfg.decoder_words, cfg.timesteps * cfg.sizes[-1])
        block = Mux(decoder, decoder_block, layer)
        totals = {i: rows * cost for i, (_, _, _, cost, rows) in blocks.items()}
        longest = max(totals.values())
        at = Signal(range(longest + 1), name="update_w_word")
        at_now = Mux(first, 0, at)
        total = by_layer(block, totals, range(longest + 1))
        reading = wire(m, active & (at_now < total), "update_w_read")
        with m.If(reading):
            m.d.sync += at.eq(at_now + 1)
        row_word = Signal(counter_shape(max(cost for _, _, _, cost, _ in blocks.values())), name="update_w_row_word")
        row_word_now = Mux(first, 0, row_word)
        cost = by_layer(block, {i: cost for i, (_, _, _, cost, _) in blocks.items()}, row_word.shape())
        with m.If(reading):
            m.d.sync += row_word.eq(Mux(row_word_now == cost - 1, 0, row_word_now + 1))
        written = Signal(range(longest + 1), name="update_w_written")
        written_now = Mux(first, 0, written)
        writing = wire(m, active & result.valid, "update_w_write")
        with m.If(active):
            m.d.sync += written.eq(written_now + writing)
        masks = {}
        for i, (value_name, grad_name, index, _, _) in blocks.items():
            on = (decoder if i == decoder_block else weights & (layer == i))
            for name in (value_name, grad_name):
                port = self.port(name, index)
                m.d.comb += [port.read_en.eq(reading & on), port.read_addr.eq(at_now)]
                m.d.comb += [port.write_addr.eq(written_now), port.write_mask.eq(Mux(writing & on, result.payload.mask, 0))]
            m.d.comb += self.port(value_name, index).write_data.eq(Cat(result.payload.value[x][: f.w] for x in range(lanes)))
            if i == decoder_block:
                masks[i] = decoder_lanes(cfg, row_word_now)
            else:
                masks[i] = row_lanes(cfg, i, row_word_now)
        shift = offset_shift(m, "update_w", layer, self.shift_w, {i: cfg.shift_offsets(i)[0] for i in blocks if i <= cfg.layers})
        if cfg.fc_decoder:  # clamp(s_w + fw - gf - G, 0, 31)
            moved = self.shift_w + f.decoder_shift_delta
            shift = Mux(decoder, clamp(moved, 0, (1 << SHIFT_BITS) - 1, SHIFT_BITS, is_signed=False), shift)
        values = self.registered(m, "update_value", {i: (value, index) for i, (value, _, index, _, _) in blocks.items()}, block)
        grads = self.registered(m, "update_grad", {i: (grad, index) for i, (_, grad, index, _, _) in blocks.items()}, block)
        operands.feed(m, active, reading, by_layer(block, masks, lanes), shift, list(values), list(grads))
        return writing & (written_now == total - 1)

    def _thresholds(self, m: Module, unit: UpdateUnit, operands: _Operands, active: Value) -> Value:
        """UPDATE_TH: one word at a time, a word with a changed threshold waiting for its R;
        returns "every word has retired"."""
        cfg = self.config
        f, lanes = cfg.formats, cfg.lanes
        layer, first = self.control.layer, self.control.first
        result = unit.result
        every = range(cfg.layers + 1)
        sequence = WordSequence(m, "update_th", start=active & first, first=first, words=max(cfg.channel_words(i) for i in every))
        k = sequence.k
        waiting = Signal(name="update_th_waiting")
        changed_lanes = Signal(lanes, name="update_th_changed")
        dividers = []
        for x in range(lanes):
            divider = ReciprocalDivider(threshold_bits=f.v - 1, k=f.k)
            m.submodules[f"divider{x}"] = divider
            m.d.comb += [
                divider.result.ready.eq(1),
                divider.vth.valid.eq(active & result.valid & result.payload.changed[x]),
                divider.vth.payload.eq(result.payload.value[x][: f.v - 1]),
            ]
            dividers.append(divider)
        arrived = wire(m, active & result.valid, "update_th_arrived")
        results = Cat(divider.result.valid for divider in dividers).any()
        delivered = wire(m, active & waiting & results, "update_th_delivered")
        changed = result.payload.changed
        retire = wire(m, (arrived & ~changed.any()) | delivered, "update_th_retire")
        channel_words = [cfg.channel_words(i) for i in every]
        last = k == by_layer(layer, {i: channel_words[i] - 1 for i in every}, counter_shape(max(channel_words)))
        issue = wire(m, active & (first | (retire & ~last)), "update_th_issue")
        issue_word = Mux(first, 0, sequence.following)
        with m.If(arrived & changed.any()):
            m.d.sync += [waiting.eq(1), changed_lanes.eq(changed)]
        with m.If((active & first) | retire):
            m.d.sync += waiting.eq(0)
        th_read = self.registered(m, "update_vth", {i: ("VTH", i) for i in every}, layer)
        dth_read = self.registered(m, "update_dvth", {i: ("DVTH", i) for i in every}, layer)
        for index in every:
            on = active & (layer == index)
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
        operands.feed(
            m, active, issue, by_layer(layer, {i: row_lanes(cfg, i, issue_word) for i in every}, lanes),
            offset_shift(
                m, "update_th", layer, Mux(layer == 0, encoder_shift, self.shift_th),
                {i: cfg.shift_offsets(i)[1] for i in every},
            ),
            list(th_read), list(dth_read),
        )
        return sequence.advance(retire, last)


def offset_shift(m: Module, name: str, layer: Value, shift: Value, offsets: dict[int, int]) -> Value:
    """``min(shift + offsets[layer], 31)``: a layer's learning-rate shift with its offset
    (:func:`model.integer.shift_offsets`; ``shift`` itself when every offset is 0)."""
    if not any(offsets.values()):
        return shift
    top = (1 << SHIFT_BITS) - 1
    moved = wire(m, shift + by_layer(layer, offsets, range(max(offsets.values()) + 1)), f"{name}_moved_shift")
    return Mux(moved > top, top, moved)[:SHIFT_BITS]


class _Operands:
    """The update unit's operand stage: a word read in cycle x arrives in x + 1, the running
    layer's words are registered (x + 2), then with their mask and shift (x + 3), when the
    unit takes them."""

    def __init__(self, m: Module, unit: UpdateUnit, lanes: int) -> None:
        payload = unit.operand.payload
        self.read_valid = Signal(name="update_read_valid")  # a word's data arrived (x + 1)
        self.read_mask = Signal(lanes, name="update_read_mask")
        self.registered_valid = Signal(name="update_registered_valid")  # its registers (x + 2)
        self.registered_mask = Signal(lanes, name="update_registered_mask")
        self.value = Signal(payload.value.shape(), name="update_operand_value")
        self.grad = Signal(payload.grad.shape(), name="update_operand_grad")
        self.mask = Signal(lanes, name="update_operand_mask")
        self.shift = Signal(SHIFT_BITS, name="update_operand_shift")
        valid = Signal(name="update_operand_valid")
        m.d.sync += [
            self.registered_valid.eq(self.read_valid), self.registered_mask.eq(self.read_mask),
            valid.eq(self.registered_valid),
        ]
        m.d.comb += [
            unit.operand.valid.eq(valid), payload.shift.eq(self.shift), payload.mask.eq(self.mask),
            payload.value.eq(self.value), payload.grad.eq(self.grad),
        ]

    def feed(
        self, m: Module, active: Value, issue: Value, mask: Value, shift: Value, values: list, grads: list
    ) -> None:
        """While ``active``: a read issued this cycle (``issue``) with its lane ``mask``; the
        ``shift`` and the running layer's registered ``values`` and ``grads`` (per lane)."""
        with m.If(active):
            m.d.sync += [self.read_valid.eq(issue), self.read_mask.eq(mask), self.shift.eq(shift)]
            m.d.sync += [self.value[x].eq(value) for x, value in enumerate(values)]
            m.d.sync += [self.grad[x].eq(grad) for x, grad in enumerate(grads)]
            m.d.sync += self.mask.eq(self.registered_mask)
