"""The whole on-line learning core: memories, engines, counters and ports.

:class:`Core` builds the core of docs/architecture.md for a :class:`~hw.core_config.CoreConfig`:
one memory per (layer, kind) (``amaranth.lib.memory.Memory``, P lanes a word, one
synchronous read port that holds its data while its enable is low and one write port with
a lane-enable bit per lane), the SCAN and INTEGRATE engines of every layer joined by
:class:`hw.queue.SpikeQueue` spike queues, the backward engines (dV by the eq. 15 mux with
:class:`hw.dot_product.DotProductLane` dot products, dW and dVth accumulation), the update
(learning-rate shifts, floor / nearest / stochastic rounding with the contract's LFSR,
:class:`hw.reciprocal.ReciprocalDivider` per lane) and the readout, sequenced by
:class:`hw.controller.Controller`.

The cycle of every read and write is the one :class:`model.core.CoreModel` computes (the
recurrences of section 5, with the model's latency constants); the model's trace (section
6) is the write-port activity of this design, cycle for cycle. The controller registers each
pass's ``done`` (``CONTROL_LATENCY``). The engines of the learning passes are components
of their own, built from the units the cocotb benches verify cycle by cycle, each reaching
its memories through :class:`hw.core.memory.MemoryPortSignature` ports:
:class:`hw.core.accumulate.AccumulateEngine` (DW and DVTH passes, one
:class:`hw.accumulator.GradientAccumulator`) and :class:`hw.core.update.UpdateEngine`
(weight and threshold updates, one :class:`hw.update.UpdateUnit` and the dividers). The
forward stages, the dV passes and the readout are still formed here, on the data of a
memory read in the cycle it arrives, with the shared arithmetic of :mod:`hw.datapath`. The
control of the forward engines is per layer (SCAN, INTEGRATE); the datapaths that only one
pass uses at a time are shared by the layers (the dV dot product and its (acc * R)
multiplier, the accumulator, the update unit). With ``single_port_weights`` W and dW of
all layers live in two single-port banks each (:func:`hw.core.memory.weight_banks`), the
iCE40 SPRAM layout.

Ports (Verilog names join paths with ``__``):

* ``pixels`` (in stream): ``w_0`` words per sample, payload ``pixels`` (P x u8),
  ``label``, ``learn``; the label and learn flag of the last word apply.
* ``result`` (out stream): ``prediction`` and ``counts`` (class spike counts), offered
  after the sample's last pass; ``done`` pulses in the first cycle it is offered.
* ``host``: run-time access to the learned memories (W, VTH, R, DW, DVTH) and the
  registers while the core is idle
  (:attr:`CoreConfig.host_address <hw.core_config.CoreConfig.host_address>` gives the map):
  ``addr``, ``wdata``, ``we``, ``re``, registered: an access is performed in the cycle
  after it is presented (``we`` wins over ``re`` in one cycle), ``rdata`` follows ``re``
  by :data:`HOST_READ_LATENCY` cycles.
* ``counter_select`` / ``counter_value``: performance counter ``counter_select``
  (:attr:`CoreConfig.counters <hw.core_config.CoreConfig.counters>` order)
  :data:`HOST_READ_LATENCY` cycles later; every counter restarts at 0 with each sample.
* ``busy``: a sample's passes run.
* ``trace_bus`` (only with ``trace=True``; Verilator reserves the name ``trace``): the
  sample's cycle, phase and step and every memory's write port (``en`` lane mask, ``addr``,
  ``data``), for co-simulation monitors (:mod:`sim.core_harness`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.core.memory import MemoryPorts, weight_banks
from hw.core.accumulate import AccumulateEngine
from hw.core.update import UpdateEngine
from hw.core.walk import Walker, WordSequence, counter_shape, lowest, popcount, select, wire
from hw.controller import PASS_PHASE, ControlSignature, Controller, Pass, Phase
from hw.core_config import COUNTER_BITS, HOST_REGISTERS, PIXEL_BITS, CoreConfig
from hw.datapath import saturate
from hw.dot_product import DotProductLane
from hw.queue import SpikeQueue
from model.fixed import LFSR_BITS
from model.units import SHIFT_BITS

__all__ = ["HOST_READ_LATENCY", "Core", "HostSignature", "input_layout", "output_layout", "trace_layout"]

#: Cycles from ``host.re`` (or a new ``counter_select``) to the value on ``host.rdata``
#: (``counter_value``): the request register, then the memory (or counter mux) register.
HOST_READ_LATENCY = 2


def input_layout(config: CoreConfig) -> data.StructLayout:
    """Payload of the ``pixels`` stream: ``pixels`` (P x u8), ``label``, ``learn``."""
    return data.StructLayout({
        "pixels": data.ArrayLayout(unsigned(PIXEL_BITS), config.lanes),
        "label": unsigned(config.class_bits),
        "learn": 1,
    })


def output_layout(config: CoreConfig) -> data.StructLayout:
    """Payload of the ``result`` stream: ``prediction`` and ``counts`` (C class counts)."""
    return data.StructLayout({
        "prediction": unsigned(config.class_bits),
        "counts": data.ArrayLayout(unsigned(config.count_bits), config.classes),
    })


def trace_layout(config: CoreConfig) -> data.StructLayout:
    """The ``trace_bus`` port: ``cycle``, ``phase``, ``t`` and per memory ``en``/``addr``/``data``."""
    fields: dict[str, object] = {
        "cycle": unsigned(COUNTER_BITS),
        "phase": Phase,
        "t": range(config.timesteps + 1),
    }
    for spec in config.memories:
        fields[spec.key] = data.StructLayout({
            "en": unsigned(spec.lanes),
            "addr": unsigned(spec.address_bits),
            "data": unsigned(spec.word_bits),
        })
    return data.StructLayout(fields)


class HostSignature(wiring.Signature):
    """Run-time memory and register access (members as the host drives them).

    Members
    -------
    addr : ``Out(region_bits + word_bits)``
        Region (0 = registers, then the host memories) above the word address.
    wdata : ``Out(data_bits)``
        Word to write (lane 0 in the low bits).
    we, re : ``Out(1)``
        Write / read strobes, registered; honoured when the core is idle in the cycle after
        (a memory write and a read in one cycle: the write is performed, the read is not).
    rdata : ``In(data_bits)``
        The word or register read, :data:`HOST_READ_LATENCY` cycles after ``re``.
    """

    def __init__(self, config: CoreConfig) -> None:
        super().__init__({
            "addr": Out(config.host_region_bits + config.host_word_bits),
            "wdata": Out(config.host_data_bits),
            "we": Out(1),
            "re": Out(1),
            "rdata": In(config.host_data_bits),
        })


class _Builder:
    """Elaboration state shared by the engines: module, configuration, control, memories,
    counter increments and the LFSR's update requests."""

    def __init__(self, m: Module, config: CoreConfig, control: object) -> None:
        self.m = m
        self.cfg = config
        self.control = control
        self.mems: dict[tuple[str, int], MemoryPorts] = {}
        self.increments: dict[str, list[Value]] = {spec.name: [] for spec in config.counters}

    def running(self, which: Pass, index: int | None = None) -> Signal:
        """High while pass ``which`` (of layer ``index``) runs."""
        condition = self.control.kind == which
        name = which.name.lower() if index is None else f"{which.name.lower()}{index}"
        if index is not None:
            condition &= self.control.layer == index
        return wire(self.m, condition, f"{name}_active")

    def by_layer(self, values: Mapping[int, Value | int], shape) -> Value:
        """``values[layer]`` for the controller's layer (0 on layers absent from ``values``):
        the operand of a datapath that the layers share."""
        chosen = Const(0, shape)
        for index, value in values.items():
            chosen = Mux(self.control.layer == index, value, chosen)
        return chosen

    def valid(self, index: int, word: Value) -> Value:
        """Lane mask of the neurons in ``word`` of layer ``index``."""
        cfg = self.cfg
        full = (1 << cfg.lanes) - 1
        last = cfg.valid_lanes(index, cfg.words[index] - 1)
        return Mux(word == cfg.words[index] - 1, last, full) if last != full else Const(full, cfg.lanes)

    def sweep(self, name: str, active: Value, limit: int) -> Value:
        """A counter 0, 1, ... from the pass's first cycle (0..limit + 1: the pass's
        hand-over cycle after ``limit`` sees ``limit + 1``, never a wrapped 0)."""
        counter = Signal(range(limit + 2), name=name)
        now = Mux(self.control.first, 0, counter)
        with self.m.If(active):
            self.m.d.sync += counter.eq(now + 1)
        return now

    def follow(self, control: wiring.PureInterface) -> None:
        """Drive an engine's ``In(ControlSignature)`` from the controller (its ``done`` is
        the engine's own)."""
        own = self.control
        self.m.d.comb += [
            control.kind.eq(own.kind), control.layer.eq(own.layer), control.t.eq(own.t),
            control.first.eq(own.first), control.start.eq(own.start),
        ]

    def attach(self, memory: str, index: int, port: wiring.PureInterface) -> None:
        """Serve an engine's port to ``memory`` of layer ``index`` and count its words."""
        self.mems[(memory, index)].attach(self.m, port)
        if "read_en" in port.signature.members:
            self.reads(memory, index, port.read_en)
        if "write_mask" in port.signature.members:
            self.writes(memory, index, port.write_mask.any())

    def count(self, name: str, amount: Value) -> None:
        """Add ``amount`` to performance counter ``name`` this cycle (if the core has it)."""
        if name in self.increments:
            self.increments[name].append(amount)

    def reads(self, memory: str, index: int, condition: Value) -> None:
        """Count a word read of ``memory`` on layer ``index`` (the model's attribution)."""
        self.count(f"reads.{memory}.{index}", condition)

    def writes(self, memory: str, index: int, condition: Value) -> None:
        """Count a word write of ``memory`` on layer ``index``."""
        self.count(f"writes.{memory}.{index}", condition)


class Core(wiring.Component):
    """The on-line learning core of docs/architecture.md for one configuration.

    Parameters
    ----------
    config : CoreConfig
        Geometry, formats, learning rule, lanes and queue depth.
    init : mapping of str to words, optional
        Initial contents by memory key (``W1``, ``VTH0``, ``R2``, ...), e.g.
        :meth:`CoreConfig.initial_contents`; absent memories start at 0.
    trace : bool
        Add the ``trace`` output (co-simulation monitors).

    Members
    -------
    pixels : ``In(stream.Signature(input_layout(config)))``
    result : ``Out(stream.Signature(output_layout(config)))``
    done : ``Out(1)``
    busy : ``Out(1)``
    host : ``In(HostSignature(config))``
    counter_select : ``In(range(len(config.counters)))``
    counter_value : ``Out(32)``
    trace_bus : ``Out(trace_layout(config))`` (only with ``trace``)

    Raises
    ------
    ValueError
        When ``init`` names a memory the core does not have or has the wrong shape.
    """

    def __init__(
        self, config: CoreConfig, *, init: Mapping[str, Sequence[Sequence[int]]] | None = None,
        trace: bool = False,
    ) -> None:
        if not isinstance(config, CoreConfig):
            raise ValueError(f"config: expected a CoreConfig, got {type(config).__name__}")
        self.config = config
        self.init = dict(init or {})
        keys = {spec.key: spec for spec in config.memories}
        for key, words in self.init.items():
            if key not in keys:
                raise ValueError(f"init: the core has no memory {key!r}")
            if len(words) > keys[key].depth or any(len(word) != config.lanes for word in words):
                raise ValueError(f"init: {key} needs at most {keys[key].depth} words of {config.lanes} lanes")
        self.traced = bool(trace)
        members = {
            "pixels": In(stream.Signature(input_layout(config))),
            "result": Out(stream.Signature(output_layout(config))),
            "done": Out(1),
            "busy": Out(1),
            "host": In(HostSignature(config)),
            "counter_select": In(range(len(config.counters))),
            "counter_value": Out(COUNTER_BITS),
        }
        if self.traced:
            members["trace_bus"] = Out(trace_layout(config))
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        f = cfg.formats
        lanes, layers, steps = cfg.lanes, cfg.layers, cfg.timesteps
        sizes, words = cfg.sizes, cfg.words
        full = (1 << lanes) - 1

        # Control: the FSM and its interface
        m.submodules.controller = controller = Controller(
            layers=layers, timesteps=steps, input_words=words[0], batch=cfg.batch,
            learnable=cfg.learnable, trainable=cfg.trainable, pending=cfg.pending,
        )
        control = ControlSignature(layers=layers, timesteps=steps).flip().create()
        wiring.connect(m, controller.control, control)
        kind, layer, t, first = control.kind, control.layer, control.t, control.first
        idle = controller.input_ready
        m.d.comb += self.busy.eq(controller.busy)
        b = _Builder(m, cfg, control)
        running, valid, sweep = b.running, b.valid, b.sweep
        count, reads, writes, mems = b.count, b.reads, b.writes, b.mems
        increments = b.increments

        # Memories
        for spec in cfg.memories:
            banked = cfg.in_weight_banks(spec)
            ports = MemoryPorts(spec, self.init.get(spec.key), transparent=spec.name == "V", banked=banked)
            mems[(spec.name, spec.layer)] = ports
            if not banked:
                m.submodules[f"mem_{spec.key}"] = ports.memory

        # Registers: learning-rate shifts, label; the LFSR is the update engine's (learning
        # cores), else a plain register the host reads and writes.
        shift_w = Signal(SHIFT_BITS, init=cfg.shift_w)
        shift_th = Signal(SHIFT_BITS, init=cfg.shift_th)
        label = Signal(cfg.class_bits)
        if cfg.learnable:
            m.submodules.update = updater = UpdateEngine(cfg)
            m.d.comb += [updater.shift_w.eq(shift_w), updater.shift_th.eq(shift_th)]
            lfsr = updater.lfsr_state
        else:
            lfsr = Signal(LFSR_BITS, init=cfg.lfsr_state)

        # Input stream -> PIX (only while loading)
        pixels = self.pixels
        accept = pixels.valid & idle
        m.d.comb += [controller.input_valid.eq(pixels.valid), pixels.ready.eq(idle)]
        m.d.comb += controller.input_learn.eq(pixels.payload.learn)
        with m.If(accept):
            m.d.sync += label.eq(pixels.payload.label)
        mems[("PIX", 0)].request_write(
            accept, controller.word, valid(0, controller.word),
            [pixels.payload.pixels[x] for x in range(lanes)],
        )

        # Sample cycle counter (trace) and phase cycle counters
        cycle = Signal(COUNTER_BITS)
        with m.If(control.start):
            m.d.sync += cycle.eq(0)
        with m.Elif(controller.busy):
            m.d.sync += cycle.eq(cycle + 1)
        for which, phase in PASS_PHASE.items():
            if f"cycles.{phase.name.lower()}" in increments:
                count(f"cycles.{phase.name.lower()}", kind == which)

        # CLEAR: V of every layer, one word per cycle, all layers in parallel
        clearing = running(Pass.CLEAR)
        at = sweep("clear_word", clearing, max(words))
        for index in range(layers + 1):
            inside = clearing & (at < words[index])
            mems[("V", index)].request_write(inside, at, valid(index, at), Const(0))
            writes("V", index, inside)
        clear_done = clearing & (at == max(words) - 1)

        # FORWARD: per stage l, the scan of layer l || the integration of its spikes into l + 1
        queues = []
        forward_done = []
        class_counts = [Signal(cfg.count_bits, name=f"count{c}") for c in range(cfg.classes)]
        membrane_bits = f.v + max(cfg.population - 1, 1).bit_length()
        class_membranes = [Signal(signed(membrane_bits), name=f"membrane{c}") for c in range(cfg.classes)]
        with m.If(control.start):
            m.d.sync += [n.eq(0) for n in class_counts] + [v.eq(0) for v in class_membranes]
        for index in range(layers + 1):
            active = running(Pass.FORWARD, index)
            v_mem, th_mem = mems[("V", index)], mems[("VTH", index)]
            sequence = WordSequence(m, f"scan{index}", start=active & first, first=first, words=words[index])
            k, have_now = sequence.k, sequence.have_now
            pushed = Signal(lanes, name=f"scan{index}_pushed")
            last = k == words[index] - 1
            lanes_valid = valid(index, k)

            # Datapath: encoder add, fire compare, window and reset, per lane.
            integrated, after, spike_bits, window_bits = [], [], [], []
            for x in range(lanes):
                v = v_mem.data[x]
                if index == 0:
                    summed = wire(m, v + mems[("PIX", 0)].data[x], f"scan0_sum{x}")
                    v = wire(m, saturate(summed, f.v), f"scan0_v{x}")
                vth = th_mem.data[x]
                above = wire(m, v - vth, f"scan{index}_above{x}")
                distance = Mux(above < 0, -above, above)
                fire = wire(m, v >= vth, f"scan{index}_fire{x}")
                integrated.append(v)
                spike_bits.append(fire)
                window_bits.append((distance << 1) < vth)
                reset = Const(0, signed(f.v)) if cfg.reset == "zero" else above
                after.append(Mux(fire, reset, v))
            spikes = Signal(lanes, name=f"scan{index}_spikes")
            windows = Signal(lanes, name=f"scan{index}_windows")
            m.d.comb += [spikes.eq(Cat(*spike_bits) & lanes_valid), windows.eq(Cat(*window_bits) & lanes_valid)]

            # Control: push the spikes of the word one per cycle, retire after the last.
            if index < layers:
                queue = SpikeQueue(index_bits=cfg.index_bits[index], depth=cfg.queue_depth)
                m.submodules[f"queue{index}"] = queue
                queues.append(queue)
                remaining = wire(m, spikes & ~pushed, f"scan{index}_remaining")
                lane, one_hot = lowest(remaining, lanes)
                lane = wire(m, lane, f"scan{index}_lane")
                one_hot = wire(m, one_hot, f"scan{index}_one_hot")
                want = wire(m, active & have_now & remaining.any(), f"scan{index}_want")
                pushing = wire(m, want & queue.push.ready, f"scan{index}_push")
                m.d.comb += [queue.push.valid.eq(want), queue.push.payload.eq(k * lanes + lane)]
                m.d.comb += queue.clear_high_water.eq(control.start)
                alone = ~(remaining & ~one_hot).any()
                retire = wire(m, active & have_now & (~remaining.any() | (pushing & alone)), f"scan{index}_retire")
                with m.If(pushing):
                    m.d.sync += pushed.eq(pushed | one_hot)
                count(f"stall_cycles.{index}", want & ~queue.push.ready)
                count(f"synaptic_ops.{index}", Mux(pushing, sizes[index + 1], 0))
            else:
                pushing = Const(0)
                retire = wire(m, active & have_now, f"scan{index}_retire")
            issue = wire(m, active & (first | (retire & ~last)), f"scan{index}_issue")
            issue_word = Mux(first, 0, k + 1)
            for memory in ("V", "VTH") + (("PIX",) if index == 0 else ()):
                mems[(memory, index)].request_read(issue, issue_word)
                reads(memory, index, issue)
            plane = (t - 1) * words[index] + k
            v_mem.request_write(retire, k, lanes_valid, after)
            mems[("S", index)].request_write(retire, plane, lanes_valid, spikes)
            mems[("H", index)].request_write(retire, plane, lanes_valid, windows)
            for memory in ("V", "S", "H"):
                writes(memory, index, retire)
            count(f"spikes.{index}", Mux(retire, popcount(spikes), 0))
            with m.If((active & first) | retire):
                m.d.sync += pushed.eq(0)
            scanned = sequence.advance(retire, last)

            if index == layers:
                # Readout registers: class counts (last: t = T only) and class membranes at T.
                counting = retire if cfg.decoder == "rate" else retire & (t == steps)
                for c in range(cfg.classes):
                    masks = [
                        sum(1 << x for x in range(lanes) if cfg.class_of(w, x) == c and w * lanes + x < sizes[index])
                        for w in range(words[index])
                    ]
                    in_class = select(masks, k, lanes)
                    with m.If(counting):
                        m.d.sync += class_counts[c].eq(class_counts[c] + popcount(spikes & in_class))
                    with m.If(retire & (t == steps)):
                        total = sum(Mux(in_class[x], integrated[x], 0) for x in range(lanes))
                        m.d.sync += class_membranes[c].eq(class_membranes[c] + total)
                forward_done.append(scanned)
                continue

            # INTEGRATE into layer index + 1: pop an event, add its weight row word by word.
            target = index + 1
            row_words = cfg.row_words(target)
            w_mem, t_mem = mems[("W", target)], mems[("V", target)]
            busy = Signal(name=f"integrate{target}_busy")
            word = Signal(counter_shape(row_words), name=f"integrate{target}_word")
            row = Signal(counter_shape(sizes[index] * row_words), name=f"integrate{target}_row")
            m.d.comb += queue.pop.ready.eq(active & ~busy)
            popping = wire(m, active & ~busy & queue.pop.valid, f"integrate{target}_pop")
            reading = wire(m, popping | busy, f"integrate{target}_read")
            word_now = Mux(busy, word, 0)
            row_now = Mux(busy, row, queue.pop.payload * row_words)
            w_mem.request_read(reading, row_now + word_now)
            t_mem.request_read(reading, word_now)
            reads("W", index, reading)
            reads("V", index, reading)
            with m.If(popping):
                m.d.sync += row.eq(row_now)
                if row_words > 1:
                    m.d.sync += [busy.eq(1), word.eq(1)]
            with m.Elif(busy):
                m.d.sync += word.eq(word + 1)
                with m.If(word == row_words - 1):
                    m.d.sync += busy.eq(0)
            written = Signal(name=f"integrate{target}_write")
            written_word = Signal(counter_shape(row_words), name=f"integrate{target}_write_word")
            m.d.sync += [written.eq(reading), written_word.eq(word_now)]
            sums = [
                saturate(wire(m, t_mem.data[x] + w_mem.data[x], f"integrate{target}_sum{x}"), f.v)
                for x in range(lanes)
            ]
            t_mem.request_write(written, written_word, valid(target, written_word), sums)
            writes("V", index, written)
            drained = ~pushing & (queue.level == 0) & ~busy & ~popping
            forward_done.append(scanned & drained)
        stage_done = Array(forward_done)[layer]

        # READOUT: one class per cycle, larger count, then larger class membrane, then lower index
        reading_out = running(Pass.READOUT)
        at_class = sweep("readout_class", reading_out, cfg.classes)
        best = Signal(cfg.class_bits)
        best_count = Signal(cfg.count_bits)
        best_membrane = Signal(signed(membrane_bits))
        count_now = wire(m, Array(class_counts)[at_class], "readout_count")
        membrane_now = wire(m, Array(class_membranes)[at_class], "readout_membrane")
        better = first | (count_now > best_count) | ((count_now == best_count) & (membrane_now > best_membrane))
        with m.If(reading_out & (at_class < cfg.classes) & better):
            m.d.sync += [best.eq(at_class), best_count.eq(count_now), best_membrane.eq(membrane_now)]
        readout_done = reading_out & (at_class == cfg.classes - 1)

        done_by_pass = {
            Pass.CLEAR: clear_done,
            Pass.FORWARD: stage_done,
            Pass.READOUT: readout_done,
        }
        if cfg.learnable:
            done_by_pass.update(self._learning(b, class_counts, label, updater))
        m.d.comb += control.done.eq(0)
        for which, done in done_by_pass.items():
            with m.If(kind == which):
                m.d.comb += control.done.eq(done)

        # Host requests are registered: performed in the cycle after they are presented
        # (no combinational path from the host port into the datapath).
        host = self.host
        host_addr = Signal.like(host.addr)
        host_wdata = Signal.like(host.wdata)
        host_we = Signal()
        host_re = Signal()
        m.d.sync += [host_addr.eq(host.addr), host_wdata.eq(host.wdata), host_we.eq(host.we), host_re.eq(host.re)]
        region = host_addr[cfg.host_word_bits:]
        address = host_addr[:cfg.host_word_bits]
        registers_hit = idle & (region == 0)

        # Host port: registers (region 0) and memories (regions 1..), only while idle.
        with m.If(registers_hit & host_we):
            with m.Switch(address):
                with m.Case(HOST_REGISTERS.index("shift_w")):
                    m.d.sync += shift_w.eq(host_wdata)
                with m.Case(HOST_REGISTERS.index("shift_th")):
                    m.d.sync += shift_th.eq(host_wdata)
                if not cfg.learnable:
                    with m.Case(HOST_REGISTERS.index("lfsr_state")):
                        m.d.sync += lfsr.eq(Mux(host_wdata[:LFSR_BITS].any(), host_wdata, 1))
        if cfg.learnable:
            m.d.comb += [
                updater.lfsr_load.eq(registers_hit & host_we & (address == HOST_REGISTERS.index("lfsr_state"))),
                updater.lfsr_seed.eq(host_wdata),
            ]
        m.d.comb += [
            controller.pending_load.eq(registers_hit & host_we & (address == HOST_REGISTERS.index("pending"))),
            controller.pending_value.eq(host_wdata),
        ]
        read_region = Signal.like(region)
        read_address = Signal.like(address)
        with m.If(host_re):
            m.d.sync += [read_region.eq(region), read_address.eq(address)]
        register_values = Array([shift_w, shift_th, lfsr, controller.pending])
        m.d.comb += host.rdata.eq(register_values[read_address])
        for number, spec in enumerate(cfg.host_memories, start=1):
            ports = mems[(spec.name, spec.layer)]
            hit = idle & (region == number)
            ports.request_read(hit & host_re & ~host_we, address)  # a write wins the cycle
            ports.request_write(hit & host_we, address, Const(full, lanes), host_wdata[:spec.word_bits])
            with m.If(read_region == number):
                m.d.comb += host.rdata.eq(ports.data.as_value())

        for ports in mems.values():
            ports.connect(m)
        weight_banks(m, cfg, mems, self.init)

        # Result stream and done strobe
        m.d.comb += [
            self.result.valid.eq(controller.output_valid),
            self.result.payload.prediction.eq(best),
            controller.output_ready.eq(self.result.ready),
        ]
        m.d.comb += [self.result.payload.counts[c].eq(class_counts[c]) for c in range(cfg.classes)]
        offered = Signal()
        m.d.sync += offered.eq(controller.output_valid & ~self.result.ready)
        m.d.comb += self.done.eq(controller.output_valid & ~offered)

        # Performance counters: restart with each sample; read through the counter port.
        values = []
        for spec in cfg.counters:
            if spec.item == "queue_high_water":
                values.append(queues[spec.layer].high_water)
                continue
            register = Signal(COUNTER_BITS, name=spec.name.replace(".", "_"))
            with m.If(control.start):
                m.d.sync += register.eq(0)
            with m.Else():
                m.d.sync += register.eq(register + sum(increments[spec.name], Const(0, 1)))
            values.append(register)
        selected = Signal.like(self.counter_select)
        m.d.sync += [selected.eq(self.counter_select), self.counter_value.eq(Array(values)[selected])]

        # Trace port: the sample cycle, phase, step and every write port
        if self.traced:
            trace = self.trace_bus
            phase = Phase.CLEAR
            for which, owner in PASS_PHASE.items():
                phase = Mux(kind == which, owner, phase)
            stepped = (kind == Pass.FORWARD) | (kind == Pass.DV) | (kind == Pass.DW) | (kind == Pass.DVTH)
            m.d.comb += [trace.cycle.eq(cycle), trace.phase.as_value().eq(phase), trace.t.eq(Mux(stepped, t, 0))]
            for spec in cfg.memories:
                ports = mems[(spec.name, spec.layer)]
                field = trace[spec.key]
                m.d.comb += [
                    field.en.eq(ports.write.en),
                    field.addr.eq(ports.write.addr),
                    field.data.eq(ports.write.data.as_value()),
                ]
        return m

    def _learning(
        self, b: _Builder, class_counts: list[Signal], label: Signal, updater: UpdateEngine,
    ) -> dict[Pass, Value]:
        """Backward passes (dV, dW, dVth) and the update; returns each pass's done."""
        m, control, mems = b.m, b.control, b.mems
        count, reads, writes, valid, sweep, running = b.count, b.reads, b.writes, b.valid, b.sweep, b.running
        cfg = self.config
        f = cfg.formats
        lanes, layers, steps = cfg.lanes, cfg.layers, cfg.timesteps
        sizes, words = cfg.sizes, cfg.words
        lowest = cfg.first_backward_layer
        first, t = control.first, control.t

        # CLEAR_DV: dV of the layers taking part, one word per cycle, in parallel
        clearing = running(Pass.CLEAR_DV)
        longest = max(words[lowest:])
        at = sweep("clear_dv_word", clearing, longest)
        for index in range(lowest, layers + 1):
            inside = clearing & (at < words[index])
            mems[("DV", index)].request_write(inside, at, valid(index, at), Const(0))
            writes("DV", index, inside)
        done = {Pass.CLEAR_DV: clearing & (at == longest - 1)}

        # Output errors e_c = n_c - population (x T for rate) x [c == label]
        target = cfg.population * (steps if cfg.decoder == "rate" else 1)
        errors = Array(n - Mux(label == c, target, 0) for c, n in enumerate(class_counts))
        injected = Const(1) if cfg.decoder == "rate" else (t == steps)

        # DV(l, t): the eq. 15 mux for the neurons with h = 1. One DV pass runs at a time, so
        # the layers share one walker (their word counts and event costs selected by the
        # layer), the dot product (sized for the longest row: the sum is exact) and the
        # multiplier of (acc * R) >> K.
        dv_layers = range(lowest, layers + 1)
        hidden = range(lowest, layers)
        costs = {index: 1 if index == layers else cfg.row_words(index + 1) for index in dv_layers}
        actives = {index: running(Pass.DV, index) for index in dv_layers}
        walker = Walker(
            m, "dv", active=control.kind == Pass.DV, first=first,
            words=b.by_layer({i: words[i] for i in dv_layers}, counter_shape(max(words) + 1)),
            cost=b.by_layer(costs, counter_shape(max(costs.values()) + 1)),
            max_words=max(words[i] for i in dv_layers), max_cost=max(costs.values()), lanes=lanes,
            bits=b.by_layer({i: mems[("H", i)].data.as_value() for i in dv_layers}, lanes),
            valid=lambda k: b.by_layer({i: valid(i, k) for i in dv_layers}, lanes),
        )
        lane_a = Signal(counter_shape(lanes), name="dv_lane")
        word_a = Signal(counter_shape(max(words)), name="dv_word")
        with m.If(walker.event_start):
            m.d.sync += [lane_a.eq(walker.lane), word_a.eq(walker.k)]
        acc_bits = len(Value.cast(errors[0] << f.error_shift))
        if hidden:
            dot = DotProductLane(lanes=lanes, g=f.g, w=f.w, fan_out=max(sizes[index + 1] for index in hidden))
            m.submodules["dot"] = dot
            m.d.comb += dot.result.ready.eq(1)
            acc_bits = max(acc_bits, len(dot.result.payload.sum))
            arrived = Signal(name="dv_arrived")
            closing = Signal(name="dv_closing")
            started = Signal(name="dv_started")
            m.d.sync += [
                arrived.eq(walker.event),
                closing.eq(walker.event & (walker.sub == walker.cost - 1)),
                started.eq(walker.event_start),
            ]
            lane_b = Signal(counter_shape(lanes), name="dv_lane_b")
            word_b = Signal(counter_shape(max(words)), name="dv_word_b")
            r_b = Signal(f.k + 1, name="dv_r_b")
            with m.If(started):
                m.d.sync += [
                    lane_b.eq(lane_a), word_b.eq(word_a),
                    r_b.eq(b.by_layer({i: mems[("R", i)].data[lane_a] for i in hidden}, f.k + 1)),
                ]
        dv_acc = Signal(signed(acc_bits), name="dv_acc")
        dv_r = Signal(f.k + 1, name="dv_r")
        product = wire(m, dv_acc * dv_r, "dv_product")
        writes_now = []
        for index in dv_layers:
            active = actives[index]
            h_mem, r_mem, dv_mem = mems[("H", index)], mems[("R", index)], mems[("DV", index)]
            cost = costs[index]
            issue = active & walker.issue
            h_mem.request_read(issue, (t - 1) * words[index] + walker.issue_word)
            reads("H", index, issue)
            start = active & walker.event_start
            r_mem.request_read(start, walker.k)
            reads("R", index, start)
            count(f"window_events.{index}", start)
            shift = f.encoder_k if index == 0 else f.k
            if index == layers:
                # Output layer: acc = e_c << E (where injected), written one cycle after the R read.
                classes = Signal(cfg.class_bits, name="dv_class")
                lane_class = Array(
                    select([cfg.class_of(w, x) for w in range(words[index])], walker.k, cfg.class_bits)
                    for x in range(lanes)
                )[walker.lane]
                with m.If(walker.event_start):
                    m.d.sync += classes.eq(lane_class)
                stage = Signal(name=f"dv{index}_stage")
                m.d.sync += stage.eq(start)
                acc = Mux(injected, errors[classes] << f.error_shift, 0)
                r = r_mem.data[lane_a]
                writing, write_word, write_lane = stage, word_a, lane_a
            else:
                # Hidden/encoder: dot product over row i of W^{l+1} with dV^{l+1}, then the mux.
                upper = index + 1
                w_mem, up_mem = mems[("W", upper)], mems[("DV", upper)]
                neuron = walker.k * lanes + walker.lane
                event = active & walker.event
                w_mem.request_read(event, neuron * cost + walker.sub)
                up_mem.request_read(event, walker.sub)
                reads("W", index, event)
                reads("DV", index, event)
                with m.If(active):
                    m.d.comb += [
                        dot.operand.valid.eq(arrived),
                        dot.operand.payload.weights.eq(w_mem.data),
                        dot.operand.payload.grads.eq(up_mem.data),
                        dot.operand.payload.last.eq(closing),
                    ]
                acc = dot.result.payload.sum
                r = r_b
                writing, write_word, write_lane = active & dot.result.valid, word_b, lane_b
            with m.If(active):
                m.d.comb += [dv_acc.eq(acc), dv_r.eq(r)]
            value = saturate(wire(m, product >> shift, f"dv{index}_scaled"), f.g)
            one_hot = Cat(*(write_lane == x for x in range(lanes)))
            dv_mem.request_write(writing, write_word, one_hot, [value] * lanes)
            writes("DV", index, writing)
            writes_now.append(writing)
        in_flight = Signal(range(4), name="dv_in_flight")
        after = in_flight + walker.event_start - Cat(*writes_now).any()
        m.d.sync += in_flight.eq(after)
        done[Pass.DV] = walker.finished & (after == 0)

        # DW(l, t) and DVTH(l, t): the accumulation engine. Its S reads count with the
        # pass's layer (DW(l) reads S^{l-1}).
        m.submodules.accumulate = accumulator = AccumulateEngine(cfg)
        b.follow(accumulator.control)
        for name, index in accumulator.memories():
            port = accumulator.port(name, index)
            if name == "S":
                mems[(name, index)].attach(m, port)
                reads("S", index + 1, port.read_en & (control.kind == Pass.DW))
                reads("S", index, port.read_en & (control.kind == Pass.DVTH))
            else:
                b.attach(name, index, port)
        done[Pass.DW] = done[Pass.DVTH] = accumulator.control.done

        # UPDATE: weights of layers 1..L, thresholds of layers 0..L (trainable)
        b.follow(updater.control)
        for name, index in updater.memories():
            b.attach(name, index, updater.port(name, index))
        done[Pass.UPDATE_W] = done[Pass.UPDATE_TH] = updater.control.done
        return done
