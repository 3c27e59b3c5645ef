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

from amaranth.hdl import Array, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.core.memory import MemoryPorts, weight_banks
from hw.core.accumulate import AccumulateEngine
from hw.core.backward import DvEngine
from hw.core.forward import IntegrateEngine, ScanEngine, row_bits
from hw.core.update import UpdateEngine
from hw.core.walk import popcount, select, wire
from hw.controller import PASS_PHASE, ControlSignature, Controller, Pass, Phase
from hw.core_config import COUNTER_BITS, HOST_REGISTERS, PIXEL_BITS, CoreConfig
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

    def attach(
        self, memory: str, index: int, port: wiring.PureInterface, *, reads_as: int | None = None,
        writes_as: int | None = None,
    ) -> None:
        """Serve an engine's port to ``memory`` of layer ``index`` and count its words read
        and written with layers ``reads_as`` and ``writes_as`` (default ``index``: a pass
        counts the words of the layer above it that it reads or writes with its own layer)."""
        self.mems[(memory, index)].attach(self.m, port)
        if "read_en" in port.signature.members:
            self.reads(memory, index if reads_as is None else reads_as, port.read_en)
        if "write_mask" in port.signature.members:
            self.writes(memory, index if writes_as is None else writes_as, port.write_mask.any())

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

        # FORWARD: per stage l, the scan of layer l || the integration of its spikes into
        # l + 1, joined by the stage's spike queue. Forward counters of layer l cover both.
        queues = []
        forward_done = []
        class_counts = [Signal(cfg.count_bits, name=f"count{c}") for c in range(cfg.classes)]
        membrane_bits = f.v + max(cfg.population - 1, 1).bit_length()
        class_membranes = [Signal(signed(membrane_bits), name=f"membrane{c}") for c in range(cfg.classes)]
        with m.If(control.start):
            m.d.sync += [n.eq(0) for n in class_counts] + [v.eq(0) for v in class_membranes]
        for index in range(layers + 1):
            scan = ScanEngine(cfg, index)
            m.submodules[f"scan{index}"] = scan
            b.follow(scan.control)
            for name in ("V", "VTH", "S", "H") + (("PIX",) if index == 0 else ()):
                b.attach(name, index, getattr(scan, name.lower()))
            count(f"spikes.{index}", Mux(scan.written, popcount(scan.written_spikes), 0))
            if index == layers:
                # Readout registers: class counts (last: t = T only) and class membranes at T.
                result = scan.result_valid
                counting = result if cfg.decoder == "rate" else result & (t == steps)
                for c in range(cfg.classes):
                    masks = [
                        sum(1 << x for x in range(lanes) if cfg.class_of(w, x) == c and w * lanes + x < sizes[index])
                        for w in range(words[index])
                    ]
                    in_class = select(masks, scan.result_word, lanes)
                    with m.If(counting):
                        m.d.sync += class_counts[c].eq(class_counts[c] + popcount(scan.result_spikes & in_class))
                    with m.If(result & (t == steps)):
                        total = sum(Mux(in_class[x], scan.result_integrated[x], 0) for x in range(lanes))
                        m.d.sync += class_membranes[c].eq(class_membranes[c] + total)
                forward_done.append(scan.control.done)
                continue
            queue = SpikeQueue(index_bits=row_bits(cfg, index + 1), depth=cfg.queue_depth)
            m.submodules[f"queue{index}"] = queue
            queues.append(queue)
            integrate = IntegrateEngine(cfg, index + 1)
            m.submodules[f"integrate{index + 1}"] = integrate
            b.follow(integrate.control)
            wiring.connect(m, scan.spikes, queue.push)
            wiring.connect(m, queue.pop, integrate.events)
            m.d.comb += queue.clear_high_water.eq(control.start)
            b.attach("W", index + 1, integrate.w, reads_as=index)
            b.attach("V", index + 1, integrate.v, reads_as=index, writes_as=index)
            count(f"stall_cycles.{index}", scan.stalled)
            count(f"synaptic_ops.{index}", Mux(queue.push.valid & queue.push.ready, sizes[index + 1], 0))
            drained = (queue.level == 0) & ~queue.push.valid
            forward_done.append(scan.control.done & integrate.control.done & drained)
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
            # The increments are registered before they are added (the sum lands one cycle
            # later, before the result can be read).
            register = Signal(COUNTER_BITS, name=spec.name.replace(".", "_"))
            increment = Signal(COUNTER_BITS, name=spec.name.replace(".", "_") + "_increment")
            m.d.sync += increment.eq(sum(increments[spec.name], Const(0, 1)))
            with m.If(control.start):
                m.d.sync += register.eq(0)
            with m.Else():
                m.d.sync += register.eq(register + increment)
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

        # DV(l, t): the dV engine, fed the output errors e_c = n_c - population (x T for
        # rate) x [c == label].
        target = cfg.population * (steps if cfg.decoder == "rate" else 1)
        m.submodules.dv = dv = DvEngine(cfg)
        b.follow(dv.control)
        m.d.comb += [dv.errors[c].eq(n - Mux(label == c, target, 0)) for c, n in enumerate(class_counts)]
        for name, index in dv.memories():
            # DV(l) reads W^{l+1} and dV^{l+1}
            b.attach(name, index, dv.port(name, index), reads_as=index - 1 if name in ("W", "DV") else index)
        for index in range(lowest, layers + 1):
            count(f"window_events.{index}", dv.events & (control.layer == index))
        done[Pass.DV] = dv.control.done

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
