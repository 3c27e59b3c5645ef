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
6) is the write-port activity of this design, cycle for cycle. Every engine is a component
of its own, built from the units the cocotb benches verify cycle by cycle, and reaches its
memories through :class:`hw.core.memory.MemoryPortSignature` ports; each is a pipeline
(registered read data, the unit's stages, the write at the end):
:class:`hw.core.forward.ScanEngine` and :class:`hw.core.integrate.IntegrateEngine` for
every FC layer at once, one of each per grid layer (:class:`hw.neuron.NeuronLane`,
:class:`hw.core.taps.TapIntegrateEngine` for conv), joined by :class:`hw.queue.SpikeQueue`
spike queues (one per pair of engines); for every layer at once :class:`hw.core.backward.DvEngine`
(:class:`hw.dot_product.DotProductLane`, :class:`hw.dv.DvUnit`),
:class:`hw.core.accumulate.AccumulateEngine` (:class:`hw.accumulator.GradientAccumulator`),
:class:`hw.core.decode.DecodeEngine` (the fc decoder's class sums)
and :class:`hw.core.update.UpdateEngine` (:class:`hw.update.UpdateUnit`, the
:class:`hw.reciprocal.ReciprocalDivider` lanes). Each engine's ``done`` is registered
here and selected by the running pass for the controller (``CONTROL_LATENCY``); the
counters add registered increments. This top keeps the
clears, the readout, the host port and the counters. With ``single_port_weights`` W and dW
of all layers live in two single-port banks each (:func:`hw.core.memory.weight_banks`),
the iCE40 SPRAM layout.

Ports (Verilog names join paths with ``__``):

* ``pixels`` (in stream): ``w_0`` words per sample, payload ``pixels`` (P x u8),
  ``label``, ``learn``; the label and learn flag of the last word apply.
* ``result`` (out stream): ``prediction`` and ``counts`` (class spike counts, or the fc
  decoder's signed class sums), offered
  after the sample's last pass; ``done`` pulses in the first cycle it is offered.
* ``host``: run-time access to the learned memories (W, VTH, R, DW, DVTH; D, DD) and the
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

from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.controller import PASS_PHASE, ControlSignature, Controller, Pass, Phase
from hw.core.accumulate import AccumulateEngine
from hw.core.backward import DvEngine, error_layout, output_error
from hw.core.counters import PerformanceCounters
from hw.core.forward import ScanEngine, engine_name, layer_engines
from hw.core.integrate import IntegrateEngine
from hw.core.grid import event_layout
from hw.core.taps import TapIntegrateEngine
from hw.core.host import HostPort, HostSignature
from hw.core.memory import MemoryPorts, weight_banks
from hw.core.decode import DecodeEngine
from hw.core.readout import Readout, class_value_shape
from hw.core.update import UpdateEngine
from hw.core.walk import per_layer, popcount, runs, valid_lanes, wire
from hw.core_config import COUNTER_BITS, PIXEL_BITS, CoreConfig
from hw.queue import SpikeQueue
from hw.update import lfsr_seeded
from model.fixed import LFSR_BITS

__all__ = ["Core", "input_layout", "output_layout", "trace_layout"]

def input_layout(config: CoreConfig) -> data.StructLayout:
    """Payload of the ``pixels`` stream: ``pixels`` (P x u8), ``label``, ``learn``."""
    return data.StructLayout({
        "pixels": data.ArrayLayout(unsigned(PIXEL_BITS), config.lanes),
        "label": unsigned(config.class_bits),
        "learn": 1,
    })


def output_layout(config: CoreConfig) -> data.StructLayout:
    """Payload of the ``result`` stream: ``prediction`` and ``counts`` (C class values: spike
    counts, or the fc decoder's signed sums)."""
    return data.StructLayout({
        "prediction": unsigned(config.class_bits),
        "counts": data.ArrayLayout(class_value_shape(config), config.classes),
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


class _Builder:
    """Elaboration state shared by the engines: module, configuration, control, memories,
    counter increments and the LFSR's update requests."""

    def __init__(self, m: Module, config: CoreConfig, control: object, upcoming: data.View) -> None:
        self.m = m
        self.cfg = config
        self.control = control
        self.upcoming = upcoming
        self.mems: dict[tuple[str, int], MemoryPorts] = {}
        self.increments: dict[str, list[Value]] = {spec.name: [] for spec in config.counters}

    def running(self, which: Pass, index: int | None = None) -> Signal:
        """High while pass ``which`` (of layer ``index``) runs."""
        condition = self.control.kind == which
        name = which.name.lower() if index is None else f"{which.name.lower()}{index}"
        if index is not None:
            condition &= self.control.layer == index
        return wire(self.m, condition, f"{name}_active")

    def valid(self, index: int, word: Value) -> Value:
        """Lane mask of the neurons in ``word`` of layer ``index``."""
        return valid_lanes(self.cfg, index, word)

    def sweep(self, name: str, active: Value, limit: int) -> Value:
        """A counter 0, 1, ... from the pass's first cycle (0..limit + 1: the pass's
        hand-over cycle after ``limit`` sees ``limit + 1``, never a wrapped 0)."""
        counter = Signal(range(limit + 2), name=name)
        now = Mux(self.control.first, 0, counter)
        with self.m.If(active):
            self.m.d.sync += counter.eq(now + 1)
        return now

    def follow(self, control: wiring.PureInterface, *passes: Pass) -> None:
        """Drive an engine's ``In(ControlSignature)`` (its ``done`` is the engine's own) for
        the engine of ``passes``: its own registers of the pass ``kind``, ``layer`` and
        ``first``, loaded from the controller's upcoming values, equal to the controller's
        in those passes and ``IDLE``, 0 and low in the others (registers near the engine,
        no decode or fan-out from the controller in front of its reads); ``t`` and
        ``start`` are the controller's."""
        own, upcoming = self.control, self.upcoming
        mine = Cat(upcoming.kind == which for which in passes).any()
        self.m.d.sync += [
            control.kind.eq(Mux(mine, upcoming.kind, Pass.IDLE)),
            control.layer.eq(Mux(mine, upcoming.layer, 0)),
            control.first.eq(upcoming.first & mine),
        ]
        self.m.d.comb += [control.t.eq(own.t), control.start.eq(own.start)]

    @staticmethod
    def claim(control: wiring.PureInterface, stage: int | None = None) -> Value:
        """An engine's claim on the memories it uses (:meth:`MemoryPorts.attach
        <hw.core.memory.MemoryPorts.attach>`): one of its passes runs, by its own pass
        registers (:meth:`follow`), and for a forward engine its stage is ``stage``."""
        running = control.kind != Pass.IDLE
        return running if stage is None else running & (control.layer == stage)

    def attach(
        self, memory: str, index: int, port: wiring.PureInterface, claim: Value, *, reads_as: int | None = None,
        writes_as: int | None = None,
    ) -> None:
        """Serve an engine's port to ``memory`` of layer ``index`` under its ``claim`` and
        count its words read and written with layers ``reads_as`` and ``writes_as`` (default
        ``index``: a pass counts the words of the layer above it that it reads or writes
        with its own layer)."""
        self.mems[(memory, index)].attach(self.m, port, claim=claim)
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
        lanes, layers, steps = cfg.lanes, cfg.layers, cfg.timesteps
        words = cfg.words

        # Control: the FSM and its interface
        m.submodules.controller = controller = Controller(
            layers=layers, timesteps=steps, input_words=words[0], batch=cfg.batch,
            learnable=cfg.learnable, trainable=cfg.trainable, fc_decoder=cfg.fc_decoder, pending=cfg.pending,
        )
        control = ControlSignature(layers=layers, timesteps=steps).flip().create()
        wiring.connect(m, controller.control, control)
        kind, layer = control.kind, control.layer
        idle = controller.input_ready
        m.d.comb += self.busy.eq(controller.busy)
        b = _Builder(m, cfg, control, controller.upcoming)
        running, valid, sweep = b.running, b.valid, b.sweep
        count, writes, mems = b.count, b.writes, b.mems
        increments = b.increments

        # Memories
        for spec in cfg.memories:
            banked = cfg.in_weight_banks(spec)
            ports = MemoryPorts(spec, self.init.get(spec.key), transparent=cfg.v_read_transparent(spec), banked=banked)
            mems[(spec.name, spec.layer)] = ports
            if not banked:
                m.submodules[f"mem_{spec.key}"] = ports.memory

        # Registers: label; the shifts are the host port's; the LFSR is the update engine's
        # (learning cores), else a plain register the host reads and writes.
        label = Signal(cfg.class_bits)
        updater = None
        if cfg.learnable:
            m.submodules.update = updater = UpdateEngine(cfg)
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
            accept, controller.word, valid(0, controller.word), pixels.payload.pixels.as_value(),
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
        # l + 1, joined by the stage's spike queue; the output layer's words go to the readout.
        m.submodules.readout = readout = Readout(cfg)
        b.follow(readout.control, Pass.READOUT)
        class_counts = list(readout.counts)
        high_water, forward_done = self._forward(b, readout)
        done_by_pass = {Pass.CLEAR: clear_done, Pass.READOUT: readout.control.done}

        # DECODE(t): the fc decoder's class sums, the readout's class values.
        if cfg.fc_decoder:
            m.submodules.decode = decoder = DecodeEngine(cfg)
            b.follow(decoder.control, Pass.DECODE)
            for name, index in decoder.memories():
                b.attach(name, index, decoder.port(name, index), b.claim(decoder.control))
            m.d.comb += readout.sums.eq(decoder.sums)
            done_by_pass[Pass.DECODE] = decoder.control.done
        if cfg.learnable:
            done_by_pass.update(self._learning(b, class_counts, label, updater))

        # The controller's done (CONTROL_LATENCY): each engine's done registered (one register
        # per signal), selected by the pass and stage that run in the cycle after, unchanged
        # until the controller acts on it.
        registers: dict[int, Signal] = {}

        def registered(done: Value) -> Signal:
            if id(done) not in registers:
                registers[id(done)] = copy = Signal(name=f"ended{len(registers)}")
                m.d.sync += copy.eq(done)
            return registers[id(done)]

        ended = {which: registered(done) for which, done in done_by_pass.items()}
        ended[Pass.FORWARD] = Array(registered(done) for done in forward_done)[layer]
        m.d.comb += control.done.eq(Cat((kind == which) & end for which, end in ended.items()).any())

        # Host port: the learned memories and the registers while idle (its requests first).
        m.submodules.host = host = HostPort(cfg)
        wiring.connect(m, wiring.flipped(self.host), host.host)
        m.d.comb += [
            host.idle.eq(idle), host.lfsr_state.eq(lfsr), host.pending.eq(controller.pending),
            controller.pending_load.eq(host.pending_load), controller.pending_value.eq(host.pending_value),
        ]
        if cfg.learnable:
            m.d.comb += [
                updater.shift_w.eq(host.shift_w), updater.shift_th.eq(host.shift_th),
                updater.lfsr_load.eq(host.lfsr_load), updater.lfsr_seed.eq(host.lfsr_seed),
            ]
        else:
            with m.If(host.lfsr_load):
                m.d.sync += lfsr.eq(lfsr_seeded(host.lfsr_seed))
        for spec in cfg.host_memories:
            mems[(spec.name, spec.layer)].attach(m, getattr(host, spec.key.lower()), ahead=True)

        for ports in mems.values():
            ports.connect(m)
        weight_banks(m, cfg, mems, self.init)

        # Result stream and done strobe
        m.d.comb += [
            self.result.valid.eq(controller.output_valid),
            self.result.payload.prediction.eq(readout.prediction),
            controller.output_ready.eq(self.result.ready),
        ]
        m.d.comb += [self.result.payload.counts[c].eq(class_counts[c]) for c in range(cfg.classes)]
        offered = Signal()
        m.d.sync += offered.eq(controller.output_valid & ~self.result.ready)
        m.d.comb += self.done.eq(controller.output_valid & ~offered)

        # Performance counters: restart with each sample; read through the counter port.
        m.submodules.counters = counters = PerformanceCounters(cfg)
        m.d.comb += [counters.start.eq(control.start), counters.select.eq(self.counter_select)]
        m.d.comb += self.counter_value.eq(counters.value)
        for number, spec in enumerate(cfg.counters):
            if spec.item == "queue_high_water":
                m.d.comb += counters.high_water[number].eq(high_water[spec.layer])
            else:
                m.d.comb += counters.increments[number].eq(sum(increments[spec.name], Const(0, 1)))
        if self.traced:
            self._trace(m, control, cycle, mems)
        return m

    def _forward(self, b: _Builder, readout: Readout) -> tuple[dict[int, Value], list[Value]]:
        """The forward stages' engines (one scan and one integrate engine for every FC layer,
        one of each per grid layer) and the spike queues; returns each stage's queue
        high-water mark and done."""
        m, cfg, control = b.m, self.config, b.control
        layers, sizes = cfg.layers, cfg.sizes
        count, stage = b.count, control.layer
        scans: dict[int, ScanEngine] = {}
        for group in layer_engines(cfg, range(layers + 1)):
            scan = ScanEngine(cfg, group)
            m.submodules[engine_name("scan", group)] = scan
            b.follow(scan.control, Pass.FORWARD)
            for index in group:
                scans[index] = scan
                for name in ("V", "VTH", "S", "H") + (("PIX",) if index == 0 else ()):
                    b.attach(name, index, scan.port(name, index), b.claim(scan.control, index))
                here = runs(stage, index, group)
                count(f"spikes.{index}", Mux(scan.written & here, popcount(scan.written_spikes), 0))
                if index < layers:
                    count(f"stall_cycles.{index}", scan.stalled & here)
        integrates: dict[int, IntegrateEngine | TapIntegrateEngine] = {}
        for group in layer_engines(cfg, range(1, layers + 1)):
            grid = cfg.grid(group[0])
            integrate = TapIntegrateEngine(cfg, group[0]) if grid else IntegrateEngine(cfg, group)
            m.submodules[engine_name("integrate", group)] = integrate
            b.follow(integrate.control, Pass.FORWARD)
            for index in group:
                integrates[index] = integrate
                claim = b.claim(integrate.control, index - 1)  # stage l integrates into l + 1
                b.attach("W", index, integrate.port("W", index), claim, reads_as=index - 1)
                b.attach("V", index, integrate.port("V", index), claim, reads_as=index - 1, writes_as=index - 1)

        # The spike queues: one per pair of a stage's scan and integration engines, shared by
        # the stages of the pair (which run one after another; a scan engine is in one pair).
        pairs: dict[tuple, list[int]] = {}
        for index in range(layers):
            pairs.setdefault((scans[index], integrates[index + 1]), []).append(index)
        queue_of: dict[int, SpikeQueue] = {}
        high_water: dict[int, Value] = {}
        for (scan, integrate), stages in pairs.items():
            width = max(Shape.cast(event_layout(cfg, index + 1)).width for index in stages)
            queue = SpikeQueue(index_bits=width, depth=cfg.queue_depth, stages=len(stages))
            m.submodules[engine_name("queue", stages)] = queue
            m.d.comb += [
                queue.clear_high_water.eq(control.start),
                queue.push.valid.eq(scan.spikes.valid), queue.push.payload.eq(scan.spikes.payload),
                scan.spikes.ready.eq(queue.push.ready),
            ]
            if len(stages) > 1:
                m.d.comb += queue.stage.eq(per_layer(stage, {index: n for n, index in enumerate(stages)}, len(queue.stage)))
            for number, index in enumerate(stages):
                queue_of[index] = queue
                high_water[index] = queue.high_water if len(stages) == 1 else queue.high_water[number]
                pushed = Mux(queue.push.valid & queue.push.ready & runs(stage, index, stages), sizes[index + 1], 0)
                count(f"synaptic_ops.{index}", integrate.operations if cfg.grid(index + 1) else pushed)
        for integrate in dict.fromkeys(integrates.values()):
            stages = [index - 1 for index in integrates if integrates[index] is integrate]
            sources = list(dict.fromkeys(queue_of[index] for index in stages))
            events = integrate.events
            for queue in sources:
                served = [index for index in stages if queue_of[index] is queue]
                here = Const(1) if len(sources) == 1 else Cat(stage == index for index in served).any()
                m.d.comb += queue.pop.ready.eq(events.ready & here)
            width = Shape.cast(events.payload.shape()).width
            if len(sources) == 1:
                m.d.comb += [events.valid.eq(sources[0].pop.valid), events.payload.eq(sources[0].pop.payload)]
            else:
                m.d.comb += [
                    events.valid.eq(per_layer(stage, {index: queue_of[index].pop.valid for index in stages}, 1)),
                    events.payload.eq(per_layer(stage, {index: queue_of[index].pop.payload for index in stages}, width)),
                ]

        output = scans[layers]
        m.d.comb += [
            readout.result_valid.eq(output.result_valid), readout.result_word.eq(output.result_word),
            readout.result_spikes.eq(output.result_spikes), readout.result_integrated.eq(output.result_integrated),
        ]
        forward_done = []
        for index in range(layers):
            queue = queue_of[index]
            drained = (queue.level == 0) & ~queue.push.valid
            forward_done.append(scans[index].control.done & integrates[index + 1].control.done & drained)
        forward_done.append(output.control.done)
        return high_water, forward_done

    def _trace(self, m: Module, control: wiring.PureInterface, cycle: Signal, mems: Mapping) -> None:
        """The trace port: the sample cycle, phase, step and every memory's write port."""
        trace = self.trace_bus
        kind = control.kind
        phase = Phase.CLEAR
        for which, owner in PASS_PHASE.items():
            phase = Mux(kind == which, owner, phase)
        stepped = (kind == Pass.FORWARD) | (kind == Pass.DV) | (kind == Pass.DW) | (kind == Pass.DVTH) | (kind == Pass.DD)
        m.d.comb += [trace.cycle.eq(cycle), trace.phase.as_value().eq(phase), trace.t.eq(Mux(stepped, control.t, 0))]
        for spec in self.config.memories:
            ports = mems[(spec.name, spec.layer)]
            field = trace[spec.key]
            m.d.comb += [
                field.en.eq(ports.write.en),
                field.addr.eq(ports.write.addr),
                field.data.eq(ports.write.data.as_value()),
            ]

    def _learning(
        self, b: _Builder, class_counts: list[Signal], label: Signal, updater: UpdateEngine,
    ) -> dict[Pass, Value]:
        """Backward passes (dV, dW, dVth) and the update; returns each pass's done."""
        m, control, mems = b.m, b.control, b.mems
        count, reads, writes, valid, sweep, running = b.count, b.reads, b.writes, b.valid, b.sweep, b.running
        cfg = self.config
        layers, words = cfg.layers, cfg.words
        lowest = cfg.first_backward_layer

        # CLEAR_DV: dV of the layers taking part, one word per cycle, in parallel
        clearing = running(Pass.CLEAR_DV)
        longest = max(words[lowest:])
        at = sweep("clear_dv_word", clearing, longest)
        for index in range(lowest, layers + 1):
            inside = clearing & (at < words[index])
            mems[("DV", index)].request_write(inside, at, valid(index, at), Const(0))
            writes("DV", index, inside)
        done = {Pass.CLEAR_DV: clearing & (at == longest - 1)}

        # DV(l, t): the dV engine, fed the output errors e_c = n_c - target x [c == label]
        # (hw.core.backward.output_error): with the fc decoder all C of them (the dD and
        # the decoder's dV rows use them), else the class counts and the label (it needs the
        # error of one class at a time).
        m.submodules.dv = dv = DvEngine(cfg)
        b.follow(dv.control, Pass.DV)
        if cfg.fc_decoder:
            errors = Signal(error_layout(cfg), name="output_errors")
            m.d.comb += [errors[c].eq(output_error(cfg, n, label == c)) for c, n in enumerate(class_counts)]
            m.d.comb += dv.errors.eq(errors)
        else:
            m.d.comb += [dv.counts.eq(Cat(class_counts)), dv.label.eq(label)]
        for name, index in dv.memories():
            # DV(l) reads W^{l+1} and dV^{l+1}
            b.attach(name, index, dv.port(name, index), b.claim(dv.control), reads_as=index - 1 if name in ("W", "DV") else index)
        for index in range(lowest, layers + 1):
            count(f"window_events.{index}", dv.events & (control.layer == index))
        done[Pass.DV] = dv.control.done

        # DW(l, t), DVTH(l, t) and DD(t): the accumulation engine. Its S reads count with
        # the pass's layer (DW(l) reads S^{l-1}; DD reads S^L).
        m.submodules.accumulate = accumulator = AccumulateEngine(cfg)
        b.follow(accumulator.control, Pass.DW, Pass.DVTH, Pass.DD)
        if cfg.fc_decoder:
            m.d.comb += accumulator.errors.eq(errors)
        for name, index in accumulator.memories():
            port = accumulator.port(name, index)
            if name == "S":
                mems[(name, index)].attach(m, port, claim=b.claim(accumulator.control))
                reads("S", index + 1, port.read_en & (control.kind == Pass.DW))
                reads("S", index, port.read_en & ((control.kind == Pass.DVTH) | (control.kind == Pass.DD)))
            else:
                b.attach(name, index, port, b.claim(accumulator.control))
        done[Pass.DW] = done[Pass.DVTH] = done[Pass.DD] = accumulator.control.done

        # UPDATE: weights of layers 1..L, thresholds of layers 0..L (trainable)
        b.follow(updater.control, Pass.UPDATE_W, Pass.UPDATE_TH, Pass.UPDATE_D)
        for name, index in updater.memories():
            b.attach(name, index, updater.port(name, index), b.claim(updater.control))
        done[Pass.UPDATE_W] = done[Pass.UPDATE_TH] = done[Pass.UPDATE_D] = updater.control.done
        return done
