"""The gradient accumulation engine: the DW and DVTH passes (docs/architecture.md section 5.3).

One :class:`hw.accumulator.GradientAccumulator` (P saturating adders / subtractors, one
pipeline stage) serves the DW and DVTH passes of every layer. A word read in cycle ``x``
arrives in ``x + 1``, is registered in ``x + 2``, where the running layer's word enters the
accumulator, and is written in ``x + 3``.

* DW(l, t): the bit-plane walker (:class:`hw.core.walk.Walker`) over ``S^{l-1}[t]``; for
  each spike i, the words of dW row i, one per cycle: ``dW = sat_dw(dW + dV^l[t])``,
  written ``DW_LATENCY`` = 3 cycles after their read. A word without spikes takes two
  cycles, so every pass keeps the parity of address and cycle: with even rows (single-port
  banks, docs/architecture.md section 2.1) a bank's read and write never meet.
* DVTH(l, t), t >= 2: every word of layer l, one per cycle: ``dVth = sat_dth(dVth - dV)``
  on the lanes with ``S^l[t-1] = 1``, written ``DVTH_LATENCY`` = 2 cycles after its data.
* DD(t) (the fc decoder): a DW pass over the output layer's ``S^L[t]`` whose rows are the
  dD rows ``(t-1) n_L + j`` (``c_D`` words) and whose dV are the class errors ``e_c``:
  ``dD = sat_dw(dD + e)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib.wiring import In

from hw.accumulator import GradientAccumulator
from hw.controller import Pass
from hw.core.backward import error_layout, error_word, grad_bits
from hw.core.memory import MemoryEngine
from hw.core.grid import GridCursor
from hw.core.grid_walk import GridWalks, event_reads
from hw.core.walk import (
    Walker, by_layer, counter_shape, decoder_lanes, decoder_row_base, delay, row_lanes, scoreboard, step_base,
    valid_lanes, wire,
)
from hw.core_config import CoreConfig
from model.core import DVTH_LATENCY, DW_LATENCY
from model.units import AccumulateOp

__all__ = ["AccumulateEngine"]


class AccumulateEngine(MemoryEngine):
    """The DW and DVTH passes of every layer.

    Parameters
    ----------
    config : CoreConfig
        The core's configuration (learnable).

    Members
    -------
    control : ``In(ControlSignature)``
        The controller's pass, layer, step and ``first``; ``control.done`` (out) ends the pass.
    dw<l> (l = 1..L), dvth<l> (trainable), dv<l>, s<l>, dd<L> (fc decoder) : ``Out(MemoryPortSignature)``
        The memories the passes read and write (dV and S read-only).
    errors : ``In(error_layout(config))`` (fc decoder only)
        The class errors ``e_c``.
    """

    def __init__(self, config: CoreConfig) -> None:
        members = {}
        if config.fc_decoder:
            members["errors"] = In(error_layout(config))
        super().__init__(config, members)

    def memories(self) -> list[tuple[str, int]]:
        cfg = self.config
        layers = cfg.layers
        ports = [("DW", layer) for layer in range(1, layers + 1)]
        if cfg.trainable:
            ports += [("DVTH", layer) for layer in range(layers + 1)]
        if cfg.fc_decoder:
            ports += [("DD", layers)]
        low = 0 if cfg.trainable else 1
        ports += [("DV", layer) for layer in range(low, layers + 1)]
        top = layers + (1 if cfg.trainable or cfg.fc_decoder else 0)
        ports += [("S", layer) for layer in range(top)]
        return ports

    def access(self, name: str, layer: int) -> tuple[bool, bool]:
        return True, name in ("DW", "DVTH", "DD")

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        f = cfg.formats
        control = self.control
        m.submodules.unit = unit = GradientAccumulator(lanes=cfg.lanes, g=grad_bits(cfg), dw=f.dw, dth=f.dth)
        m.d.comb += unit.result.ready.eq(1)
        result = unit.result
        accumulating = wire(m, control.kind == Pass.DW, "dw_active")
        decoding = wire(m, control.kind == Pass.DD, "dd_active") if cfg.fc_decoder else Const(0)
        subtracting = wire(m, control.kind == Pass.DVTH, "dvth_active")

        # The running block's words read, selected by a registered copy of the pass's block
        # (the pass's own value from its cycle 1 on, when the first word arrives) and
        # registered: one operand register per memory kind. Block L + 1 is the fc decoder's
        # DD(t), whose words are dD's.
        decoder_block = cfg.layers + 1
        block = Mux(decoding, decoder_block, control.layer)
        operand_block = Signal(range(cfg.layers + 2), name="acc_operand_block")
        m.d.sync += operand_block.eq(block)
        kinds = ("DW", "DV") + (("DVTH", "S") if cfg.trainable else ())  # S: the DVTH passes' (DW walks its own)
        ports = {name: {i: (name, i) for n, i in self.memories() if n == name} for name in kinds}
        if cfg.fc_decoder:
            ports["DW"][decoder_block] = ("DD", cfg.layers)
        read = {name: self.registered(m, f"acc_{name.lower()}", by, operand_block) for name, by in ports.items()}

        # Operand: the registered words, with the word's mask. The operand stage (x + 2)
        # selects the pass kind's by a registered copy of the pass.
        operand = unit.operand
        arrived = Signal(name="acc_arrived")  # a word's data arrived (x + 1)
        registered = Signal(name="acc_registered")  # its registers (x + 2)
        operand_dvth = Signal(name="acc_operand_dvth")
        m.d.sync += [registered.eq(arrived), operand_dvth.eq(subtracting)]
        m.d.comb += [operand.valid.eq(registered), operand.payload.op.eq(Mux(operand_dvth, AccumulateOp.DVTH, AccumulateOp.DW))]

        dw_step, dw_done, dw_operands = self._dw_passes(
            m, read, result, block=block, operand_block=operand_block, accumulating=accumulating, decoding=decoding,
            arrived=arrived, registered=registered,
        )
        if not cfg.trainable:
            m.d.sync += arrived.eq((accumulating | decoding) & dw_step)
            _drive(m, operand, dw_operands)
            m.d.comb += control.done.eq(dw_done)
            return m
        reading, dvth_done, dvth_operands = self._dvth_passes(
            m, read, result, subtracting=subtracting, operand_block=operand_block, operand_dvth=operand_dvth,
            registered=registered,
        )
        with m.If(operand_dvth):
            _drive(m, operand, dvth_operands)
        with m.Else():
            _drive(m, operand, dw_operands)
        m.d.sync += arrived.eq(((accumulating | decoding) & dw_step) | reading)
        m.d.comb += control.done.eq(Mux(subtracting, dvth_done, dw_done))
        return m

    def _dw_passes(
        self, m: Module, read: dict, result, *, block: Value, operand_block: Signal, accumulating: Value,
        decoding: Value, arrived: Signal, registered: Signal,
    ) -> tuple[Value, Value, _Operands]:
        """The DW(l, t) and DD(t) passes (``block``: l, or L + 1 for DD): the walker, the
        ports, the operands of the running block. Returns the walker's read step, the passes'
        done and their operands."""
        cfg = self.config
        f = cfg.formats
        lanes, layers, words = cfg.lanes, cfg.layers, cfg.words
        layer, first, t = self.control.layer, self.control.first, self.control.t
        # DW(l, t): walk S^{l-1}[t]; each spike's dW row, one word per cycle. DD(t), the
        # walker's block L + 1: walk S^L[t]; each spike's dD row at t. A spike of a grid
        # layer reaches layer l as an event (an FC row behind its pools, or a conv event's
        # in-image taps, up to 9 c reads); its words may repeat, so a read waits while its
        # word has a write in flight (the reads of the last DW_LATENCY cycles).
        dw_layers = range(1, layers + 1)
        grid = [i for i in dw_layers if cfg.grid(i - 1)]
        tapped = [i for i in grid if cfg.grid(i)]
        costs = {i: event_reads(cfg, i) for i in dw_layers}
        spikes = {i: i - 1 for i in dw_layers}  # the layer whose bit-plane each block walks
        depths = {i: cfg.memory("DW", i).depth for i in dw_layers}
        decoder_block = layers + 1
        if cfg.fc_decoder:
            costs[decoder_block], spikes[decoder_block] = cfg.decoder_words, layers
            depths[decoder_block] = cfg.memory("DD", layers).depth
        issue, end, stall = Signal(name="dw_issue"), Signal(name="dw_end"), Signal(name="dw_stall")
        walks = GridWalks(m, cfg, "dw", walked={i: i - 1 for i in grid}, block=block, issue=issue, first=first)
        walker = Walker(
            m, "dw", active=accumulating | decoding, first=first,
            words=by_layer(block, {i: words[j] for i, j in spikes.items()}, counter_shape(max(words) + 1)),
            cost=by_layer(block, costs, counter_shape(max(costs.values()) + 1)),
            max_words=max(words[j] for j in spikes.values()), max_cost=max(costs.values()), lanes=lanes,
            bits=by_layer(block, {i: self.port("S", j).read_data.as_value() for i, j in spikes.items()}, lanes),
            valid=lambda k: by_layer(block, {i: valid_lanes(cfg, j, k) for i, j in spikes.items()}, lanes), empty=2,
            rows={i: cost for i, cost in costs.items() if i not in grid}, layer=block,
            end=end if tapped else None, stall=stall if grid else None, tag=walks.tag,
        )
        m.d.comb += issue.eq(walker.issue)
        # The running event's DW word, dV^l word and row word (its lanes), by block.
        grid_reads, ends, _ = walks.reads(walker, walker.step)
        reads = {i: (walker.address, walker.sub, walker.sub) for i in costs if i not in grid} | grid_reads
        if tapped:
            m.d.comb += end.eq(by_layer(block, {i: ends.get(i, walker.sub == cost - 1) for i, cost in costs.items()}, 1))
        longest_row = max(depths.values())
        address = by_layer(block, {i: read[0] for i, read in reads.items()}, counter_shape(longest_row)) if grid else walker.address
        if cfg.fc_decoder:
            address = Mux(decoding, decoder_row_base(cfg, t) + walker.address, address)
        if grid:
            hazard = scoreboard(m, "dw", read=accumulating & walker.step, address=address, cycles=DW_LATENCY)
            m.d.comb += stall.eq(accumulating & hazard)
        # Address and row word of the words in flight: data (x + 1), registers (x + 2), write (x + 3).
        addresses = [Signal(counter_shape(longest_row), name=f"dw_address{n}") for n in range(DW_LATENCY)]
        row_words = [Signal(counter_shape(max(costs.values())), name=f"dw_row_word{n}") for n in range(2)]
        row_word = by_layer(block, {i: read[2] for i, read in reads.items()}, row_words[0].shape()) if tapped else walker.sub
        m.d.sync += [addresses[0].eq(address), row_words[0].eq(row_word)]
        m.d.sync += [addresses[n + 1].eq(addresses[n]) for n in range(DW_LATENCY - 1)] + [row_words[1].eq(row_words[0])]
        for index in dw_layers:
            on = accumulating & (layer == index)
            s_port, dw_port, dv_port = self.port("S", index - 1), self.port("DW", index), self.port("DV", index)
            m.d.comb += [
                s_port.read_en.eq(on & walker.issue),
                s_port.read_addr.eq(step_base(t, words[index - 1], cfg.timesteps) + walker.issue_word),
                dw_port.read_en.eq(on & walker.step),
                dw_port.read_addr.eq(reads[index][0]),
                dw_port.write_addr.eq(addresses[-1]),
                dw_port.write_mask.eq(Mux(on & result.valid, result.payload.mask, 0)),
                dw_port.write_data.eq(Cat(result.payload.acc[x][: f.dw] for x in range(lanes))),
                dv_port.read_en.eq(on & walker.step),
                dv_port.read_addr.eq(reads[index][1]),
            ]
        in_flight = arrived | registered
        dw_done = walker.finished & ~walker.event & ~in_flight

        dv = list(read["DV"])
        dw_mask = {i: row_lanes(cfg, i, row_words[1]) for i in dw_layers}
        if cfg.fc_decoder:
            dd_port = self.port("DD", layers)
            with m.If(decoding):
                m.d.comb += [
                    self.port("S", layers).read_en.eq(walker.issue),
                    self.port("S", layers).read_addr.eq(step_base(t, words[layers], cfg.timesteps) + walker.issue_word),
                ]
            m.d.comb += [
                dd_port.read_en.eq(decoding & walker.step),
                dd_port.read_addr.eq(address),
                dd_port.write_addr.eq(addresses[-1]),
                dd_port.write_mask.eq(Mux(decoding & result.valid, result.payload.mask, 0)),
                dd_port.write_data.eq(Cat(result.payload.acc[x][: f.dw] for x in range(lanes))),
            ]
            errors = error_word(cfg, self.errors, row_words[1])
            dv = [Mux(operand_block == decoder_block, error, value) for error, value in zip(errors, dv)]
            dw_mask[decoder_block] = decoder_lanes(cfg, row_words[1])
        operands = _Operands(mask=by_layer(operand_block, dw_mask, lanes), acc=list(read["DW"]), dv=dv)
        return walker.step, dw_done, operands

    def _dvth_passes(
        self, m: Module, read: dict, result, *, subtracting: Value, operand_block: Signal, operand_dvth: Signal,
        registered: Signal,
    ) -> tuple[Value, Value, _Operands]:
        """The DVTH(l, t) passes: the word sweep, the ports, the operands of the running
        layer. Returns the sweep's read, the passes' done and their operands."""
        cfg = self.config
        f = cfg.formats
        lanes, layers, words = cfg.lanes, cfg.layers, cfg.words
        layer, first, t = self.control.layer, self.control.first, self.control.t
        # DVTH(l, t), t >= 2: every word of layer l, one per cycle. A grid layer's words go
        # block-major (a channel block's positions in a row): its DVTH word is read with the
        # block's first word, each next word adds into the accumulator's last result, and
        # the block's last word writes it with the lanes that fired at any of its positions.
        every = range(layers + 1)
        at = Signal(range(max(words) + 4), name="dvth_word")
        at_now = Mux(first, 0, at)
        with m.If(subtracting):
            m.d.sync += at.eq(at_now + 1)
        layer_words = by_layer(layer, {i: words[i] for i in every}, range(max(words) + 1))
        reading = wire(m, subtracting & (at_now < layer_words), "dvth_read")
        word_in_flight = [Signal(counter_shape(max(words)), name=f"dvth_word{n}") for n in range(DVTH_LATENCY + 1)]
        sweep = channel = at_now
        grid_th = [i for i in every if cfg.grid(i)]
        if grid_th:
            scans = {i: GridCursor(m, cfg, i, name=f"dvth{i}", step=reading & (layer == i), first=first) for i in grid_th}
            sweep = by_layer(layer, {i: scans[i].address if i in scans else at_now for i in every}, word_in_flight[0].shape())
            channel = by_layer(layer, {i: scans[i].at.block if i in scans else at_now for i in every}, word_in_flight[0].shape())
            block_first = {i: (scan.at.y == 0) & (scan.at.x == 0) for i, scan in scans.items()}
            opens = by_layer(layer, {i: block_first.get(i, 1) for i in every}, 1)
            block_last = {i: (scan.at.y == cfg.shape(i)[1] - 1) & (scan.at.x == cfg.shape(i)[2] - 1) for i, scan in scans.items()}
            closes = by_layer(layer, {i: block_last.get(i, 1) for i in every}, 1)
            flags = delay(m, Cat(opens, closes), DVTH_LATENCY + 1, "dvth_block_ends")  # (opens, closes)
            channels = delay(m, channel, DVTH_LATENCY + 1, "dvth_channel")
        m.d.sync += [word_in_flight[0].eq(sweep)] + [word_in_flight[n + 1].eq(word_in_flight[n]) for n in range(DVTH_LATENCY)]
        fired = read["S"].as_value() & by_layer(operand_block, {i: valid_lanes(cfg, i, word_in_flight[1]) for i in every}, lanes)
        if grid_th:  # the lanes of the block that fired so far, this word's included (x + 3)
            fired_any = Signal(lanes, name="dvth_fired_any")
            with m.If(operand_dvth & registered):
                m.d.sync += fired_any.eq(Mux(flags[1][0], fired, fired_any | fired))
        for index in every:
            on = subtracting & (layer == index)
            th_port, dv_port, s_port = self.port("DVTH", index), self.port("DV", index), self.port("S", index)
            if index in grid_th:
                th_read = on & reading & opens
                th_write = Mux(on & result.valid & flags[-1][1], fired_any, 0)
                th_address = channels[-1]
            else:
                th_read, th_write = on & reading, Mux(on & result.valid, result.payload.mask, 0)
                th_address = word_in_flight[-1]
            m.d.comb += [
                th_port.read_en.eq(th_read),
                th_port.read_addr.eq(channel),
                th_port.write_addr.eq(th_address),
                th_port.write_mask.eq(th_write),
                th_port.write_data.eq(Cat(result.payload.acc[x][: f.dth] for x in range(lanes))),
            ]
            with m.If(on):
                m.d.comb += [
                    dv_port.read_en.eq(reading), dv_port.read_addr.eq(sweep),
                    s_port.read_en.eq(reading), s_port.read_addr.eq(step_base(t, words[index], cfg.timesteps, lag=2) + sweep),
                ]
        thresholds = list(read["DVTH"])
        if grid_th:  # within a block, the last result
            thresholds = [Mux(flags[1][0], value, result.payload.acc[x]) for x, value in enumerate(thresholds)]
        dvth_done = subtracting & (at_now == layer_words + DVTH_LATENCY)
        return reading, dvth_done, _Operands(mask=fired, acc=thresholds, dv=list(read["DV"]))


@dataclass(frozen=True)
class _Operands:
    """The accumulator's operands of one pass kind: the lane mask and P words each."""

    mask: Value
    acc: list[Value]
    dv: list[Value]


def _drive(m: Module, operand, operands: _Operands) -> None:
    """Drive the accumulator's operand payload with ``operands``."""
    m.d.comb += operand.payload.mask.eq(operands.mask)
    m.d.comb += [operand.payload.acc[x].eq(value) for x, value in enumerate(operands.acc)]
    m.d.comb += [operand.payload.dv[x].eq(value) for x, value in enumerate(operands.dv)]
