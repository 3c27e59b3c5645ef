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

Every engine works on the data of a memory read in the cycle it arrives and writes the
result in that same cycle, so the cycle of every read and write is the one
:class:`model.core.CoreModel` computes (the recurrences of section 5, with the model's
latency constants); the model's trace (section 6) is the write-port activity of this
design, cycle for cycle. The core reuses the units whose timing the architecture builds
on (the queue, the dot-product lane: its sum one cycle after the last word, the divider:
K + 2 cycles); the neuron lane, dV unit, gradient accumulator and update unit add pipeline
registers that the recurrences leave no room for (a dW word is written in the cycle after
its read, ``DW_LATENCY = 1``), so the core forms those results combinationally with the
same arithmetic (:func:`hw.datapath.saturate`, :func:`~hw.datapath.clamp`,
:func:`hw.update.lfsr_next`). The control of every engine is per layer (SCAN, INTEGRATE,
the dV, DW and DVTH walkers, the update sweeps); the datapaths that only one pass uses at a
time are shared by the layers: the dV dot product and its (acc * R) multiplier, the
update's round-shift, LFSR draws and subtraction, the P reciprocal dividers. With
``single_port_weights`` W and dW of all layers live in two single-port banks each
(:func:`_weight_banks`), the iCE40 SPRAM layout.

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

from collections.abc import Callable, Mapping, Sequence

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.controller import PASS_PHASE, ControlSignature, Controller, Pass, Phase
from hw.core_config import COUNTER_BITS, HOST_REGISTERS, PIXEL_BITS, CoreConfig, MemorySpec
from hw.datapath import clamp, saturate
from hw.dot_product import DotProductLane
from hw.queue import SpikeQueue
from hw.reciprocal import ReciprocalDivider
from hw.update import lfsr_next
from model.fixed import LFSR_BITS
from model.integer import PIXEL_FRAC
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


class _Port:
    """The signals of a memory port that a bank arbiter drives (``addr``, ``en``, ``data``)."""

    def __init__(self, name: str, layout: data.ArrayLayout, address_bits: int, enable_bits: int) -> None:
        self.addr = Signal(address_bits, name=f"{name}_addr")
        self.en = Signal(enable_bits, name=f"{name}_en")
        self.data = Signal(layout, name=f"{name}_data")


def _lane_layout(spec: MemorySpec) -> data.ArrayLayout:
    """Word shape of ``spec``: P lanes of its (signed or unsigned) lane format."""
    lane = signed(spec.lane_bits) if spec.signed else unsigned(spec.lane_bits)
    return data.ArrayLayout(lane, spec.lanes)


class _MemoryPorts:
    """A memory with one read and one write port, each shared by prioritised requests.

    With ``banked`` the memory is logical: its ports are :class:`_Port` signals that
    :func:`_weight_banks` maps onto the shared single-port banks.
    """

    def __init__(
        self, spec: MemorySpec, init: Sequence[Sequence[int]] | None, *, transparent: bool, banked: bool = False
    ) -> None:
        self.spec = spec
        layout = _lane_layout(spec)
        if banked:
            self.memory = None
            self.write = _Port(f"{spec.key}_write", layout, spec.address_bits, spec.lanes)
            self.read = _Port(f"{spec.key}_read", layout, spec.address_bits, 1)
        else:
            # A memory of one word still gets a one-bit address (an unused second word).
            # Only V reads an address in the cycle it is written (transparent port); the
            # schedule never does for the others, which tells Yosys so (``no_rw_check``:
            # no collision logic around the block RAM).
            self.memory = Memory(
                shape=layout, depth=max(spec.depth, 2), init=init or [],
                attrs=None if transparent else {"no_rw_check": 1},
            )
            self.write = self.memory.write_port(granularity=1)
            self.read = self.memory.read_port(transparent_for=(self.write,) if transparent else ())
        self._reads: list[tuple[Value, Value]] = []
        self._writes: list[tuple[Value, Value, Value, Sequence[Value] | Value]] = []

    @property
    def data(self) -> data.View:
        """The read port's data (P lanes), held while no read is issued."""
        return self.read.data

    def request_read(self, condition: Value, address: Value) -> None:
        """Read ``address`` when ``condition`` (earlier requests win)."""
        self._reads.append((condition, address))

    def request_write(
        self, condition: Value, address: Value, mask: Value, lanes: Sequence[Value] | Value
    ) -> None:
        """Write the lanes of ``mask`` when ``condition``: ``lanes`` are P values or a whole word."""
        self._writes.append((condition, address, mask, lanes))

    def connect(self, m: Module) -> None:
        """Drive the ports from the requests."""
        read, write = self.read, self.write
        m.d.comb += read.en.eq(0)
        for index, (condition, address) in enumerate(self._reads):
            with m.If(condition) if index == 0 else m.Elif(condition):
                m.d.comb += [read.addr.eq(address), read.en.eq(1)]
        for index, (condition, address, mask, lanes) in enumerate(self._writes):
            with m.If(condition) if index == 0 else m.Elif(condition):
                m.d.comb += [write.addr.eq(address), write.en.eq(mask)]
                if isinstance(lanes, Value):
                    m.d.comb += write.data.as_value().eq(lanes)
                else:
                    m.d.comb += [write.data[x].eq(value) for x, value in enumerate(lanes)]


def _weight_banks(
    m: Module, config: CoreConfig, mems: Mapping[tuple[str, int], _MemoryPorts],
    init: Mapping[str, Sequence[Sequence[int]]],
) -> None:
    """Map the logical W and dW memories onto two single-port banks each (even, odd words).

    A bank is one ``Memory`` whose read and write ports share the address (a write wins
    the cycle; the schedule never asks for both, docs/architecture.md section 2.1), so
    Yosys maps it to one iCE40 SPRAM (``ram_style = "huge"``). Layer ``l``'s word ``a``
    sits in bank ``a mod 2`` at ``bank_base(l) + a div 2``. A logical read returns the
    bank its address chose, one cycle later.
    """
    for name, depth, _ in config.weight_banks()[::2]:
        kind = name.split("_")[0]
        logical = [(layer, ports) for (memory, layer), ports in mems.items() if memory == kind]
        layout = _lane_layout(logical[0][1].spec)
        banks = []
        for parity, suffix in enumerate(("even", "odd")):
            words = []
            for layer, ports in logical:
                contents = list(init.get(ports.spec.key, []))
                contents += [[0] * config.lanes] * (ports.spec.depth - len(contents))
                words += contents[parity::2]
            memory = Memory(shape=layout, depth=depth, init=words, attrs={"ram_style": "huge"})
            m.submodules[f"mem_{kind}_{suffix}"] = memory
            write, read = memory.write_port(granularity=1), memory.read_port()
            address = Signal(range(depth), name=f"{kind}_{suffix}_addr")
            writing = Signal(name=f"{kind}_{suffix}_writing")
            reading = Signal(name=f"{kind}_{suffix}_reading")
            for layer, ports in logical:  # reads first: a write's address wins
                with m.If(ports.read.en & (ports.read.addr[0] == parity)):
                    m.d.comb += [reading.eq(1), address.eq(config.bank_base(kind, layer) + (ports.read.addr >> 1))]
            for layer, ports in logical:
                with m.If(ports.write.en.any() & (ports.write.addr[0] == parity)):
                    m.d.comb += [writing.eq(1), write.en.eq(ports.write.en), write.data.eq(ports.write.data)]
                    m.d.comb += address.eq(config.bank_base(kind, layer) + (ports.write.addr >> 1))
            m.d.comb += [write.addr.eq(address), read.addr.eq(address), read.en.eq(reading & ~writing)]
            banks.append(read.data)
        for layer, ports in logical:
            odd = Signal(name=f"{ports.spec.key}_read_odd")
            with m.If(ports.read.en):
                m.d.sync += odd.eq(ports.read.addr[0])
            m.d.comb += ports.read.data.eq(Mux(odd, banks[1], banks[0]))


def _wire(m: Module, value: Value, name: str) -> Signal:
    """``value`` as a named combinational signal (emitted once, however often it is used)."""
    signal = Signal(Value.cast(value).shape(), name=name)
    m.d.comb += signal.eq(value)
    return signal


def _counter(count: int) -> range:
    """Shape of a counter or index over ``count`` values (at least one bit, never zero-width)."""
    return range(max(count, 2))


def _lowest(bits: Value, lanes: int) -> tuple[Value, Value]:
    """``(index, one_hot)`` of the lowest set bit of ``bits`` (index 0, one-hot 0 if none)."""
    index = Const(0, _counter(lanes))
    for lane in reversed(range(lanes)):
        index = Mux(bits[lane], lane, index)
    one_hot = Cat(*((index == lane) & bits[lane] for lane in range(lanes)))
    return index, one_hot


def _popcount(bits: Value) -> Value:
    """Number of set bits."""
    return sum((bits[x] for x in range(len(bits))), Const(0, 1))


def _select(values: Sequence[int], index: Value, bits: int) -> Value:
    """``values[index]`` of a constant table of ``bits``-wide entries (a ROM of Mux)."""
    return Array(Const(value, bits) for value in values)[index]


class _WordSequence:
    """The word counter of a pass that takes words one after another: ``k``, whether a word
    is in hand (``have_now``) and, from :meth:`advance`, the pass's end.

    ``start`` (the pass's first cycle) loads word 0; each retire moves to the next word or,
    after the last, ends the pass.
    """

    def __init__(self, m: Module, name: str, *, start: Value, first: Value, words: int) -> None:
        self.m, self.start, self.first = m, start, first
        self.k = Signal(_counter(words), name=f"{name}_k")
        self.have = Signal(name=f"{name}_have")
        self.finished = Signal(name=f"{name}_finished")
        self.have_now = self.have & ~first

    def advance(self, retire: Value, last: Value) -> Value:
        """Step on ``retire`` (``last``: ``k`` is the last word); returns "every word has
        retired, this cycle included"."""
        m = self.m
        with m.If(self.start):
            m.d.sync += [self.k.eq(0), self.have.eq(1), self.finished.eq(0)]
        with m.Elif(retire):
            with m.If(last):
                m.d.sync += [self.have.eq(0), self.finished.eq(1)]
            with m.Else():
                m.d.sync += self.k.eq(self.k + 1)
        return (self.finished & ~self.first) | (retire & last)


class _Walker:
    """Walk the words of a bit-plane: one event per set (valid) lane, ``cost`` cycles each.

    The word-pass recurrence of docs/architecture.md section 5.3: cycle 0 issues the read of
    word 0; word k's data arrive in ``a_k``; its events start at ``a_k + e * cost``; it
    retires at ``f_k = a_k + max(1, m_k cost) - 1``, where the next word's read issues.

    Attributes (combinational)
    --------------------------
    issue, issue_word : the bit-plane read this cycle and its word index.
    event, event_start, lane, sub : an event runs (its ``sub``-th cycle, lane ``lane``).
    k : word of the running event.
    finished : every word has retired (this cycle included).
    """

    def __init__(
        self, m: Module, name: str, *, active: Value, first: Value, words: int | Value, cost: int | Value,
        lanes: int, bits: Value, valid: Callable[[Value], Value], max_words: int = 0, max_cost: int = 0,
    ) -> None:
        # ``words`` and ``cost`` may be Values (a walker shared by layers): then ``max_*`` size it.
        sequence = _WordSequence(
            m, name, start=active & first, first=first, words=words if isinstance(words, int) else max_words
        )
        self.k, have_now = sequence.k, sequence.have_now
        self.sub = Signal(_counter(cost if isinstance(cost, int) else max_cost), name=f"{name}_sub")
        self.cost = cost
        done_lanes = Signal(lanes, name=f"{name}_done_lanes")

        remaining = _wire(m, bits & valid(self.k) & ~done_lanes, f"{name}_remaining")
        lane, one_hot = _lowest(remaining, lanes)
        self.lane = _wire(m, lane, f"{name}_lane")
        one_hot = _wire(m, one_hot, f"{name}_one_hot")
        pending = remaining.any()
        self.event = _wire(m, active & have_now & pending, f"{name}_event")
        self.event_start = _wire(m, self.event & (self.sub == 0), f"{name}_event_start")
        event_end = self.event & (self.sub == cost - 1)
        alone = ~(remaining & ~one_hot).any()
        retire = _wire(m, active & have_now & (~pending | (event_end & alone)), f"{name}_retire")
        last = self.k == words - 1
        self.issue = _wire(m, active & (first | (retire & ~last)), f"{name}_issue")
        self.issue_word = Mux(first, 0, self.k + 1)
        self.finished = sequence.advance(retire, last)

        with m.If(self.event):
            m.d.sync += self.sub.eq(Mux(event_end, 0, self.sub + 1))
            with m.If(event_end):
                m.d.sync += done_lanes.eq(done_lanes | one_hot)
        with m.If((active & first) | retire):
            m.d.sync += [done_lanes.eq(0), self.sub.eq(0)]


class _UpdateLanes:
    """Operands and result of the update's shared datapath (P lanes).

    Attributes
    ----------
    value : accumulator lanes (dW or dVth), signed ``value_bits``.
    base : the stored lanes the step is subtracted from (W or Vth), signed ``base_bits + 1``.
    shift : learning-rate shift; mask : valid lanes (one LFSR draw each).
    difference : ``base - round_shift(value, shift)``, exact; state : the LFSR after the draws.
    """

    def __init__(self, lanes: int, *, value_bits: int, base_bits: int) -> None:
        self.value = [Signal(signed(value_bits), name=f"update_value{x}") for x in range(lanes)]
        self.base = [Signal(signed(base_bits + 1), name=f"update_base{x}") for x in range(lanes)]
        self.shift = Signal(SHIFT_BITS, name="update_shift")
        self.mask = Signal(lanes, name="update_mask")
        self.difference = [Signal(signed(max(base_bits, value_bits) + 2), name=f"update_difference{x}") for x in range(lanes)]
        self.state: Value | None = None

    def load(self, shift: Value, mask: Value, values: Sequence[Value], bases: Sequence[Value]) -> list:
        """Statements presenting one word's operands."""
        statements = [self.shift.eq(shift), self.mask.eq(mask)]
        for x, (value, base) in enumerate(zip(self.value, self.base)):
            statements += [value.eq(values[x]), base.eq(bases[x])]
        return statements


class _Builder:
    """Elaboration state shared by the engines: module, configuration, control, memories,
    counter increments and the LFSR's update requests."""

    def __init__(self, m: Module, config: CoreConfig, control: object) -> None:
        self.m = m
        self.cfg = config
        self.control = control
        self.mems: dict[tuple[str, int], _MemoryPorts] = {}
        self.increments: dict[str, list[Value]] = {spec.name: [] for spec in config.counters}
        self.lfsr_updates: list[tuple[Value, Value]] = []

    def running(self, which: Pass, index: int | None = None) -> Signal:
        """High while pass ``which`` (of layer ``index``) runs."""
        condition = self.control.kind == which
        name = which.name.lower() if index is None else f"{which.name.lower()}{index}"
        if index is not None:
            condition &= self.control.layer == index
        return _wire(self.m, condition, f"{name}_active")

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
        """A counter 0, 1, ... from the pass's first cycle (0..limit)."""
        counter = Signal(range(limit + 1), name=name)
        now = Mux(self.control.first, 0, counter)
        with self.m.If(active):
            self.m.d.sync += counter.eq(now + 1)
        return now

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
        increments, lfsr_updates = b.increments, b.lfsr_updates

        # Memories
        for spec in cfg.memories:
            banked = cfg.in_weight_banks(spec)
            ports = _MemoryPorts(spec, self.init.get(spec.key), transparent=spec.name == "V", banked=banked)
            mems[(spec.name, spec.layer)] = ports
            if not banked:
                m.submodules[f"mem_{spec.key}"] = ports.memory

        # Registers: learning-rate shifts, LFSR, label
        shift_w = Signal(SHIFT_BITS, init=cfg.shift_w)
        shift_th = Signal(SHIFT_BITS, init=cfg.shift_th)
        lfsr = Signal(LFSR_BITS, init=cfg.lfsr_state)
        label = Signal(cfg.class_bits)

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
            sequence = _WordSequence(m, f"scan{index}", start=active & first, first=first, words=words[index])
            k, have_now = sequence.k, sequence.have_now
            pushed = Signal(lanes, name=f"scan{index}_pushed")
            last = k == words[index] - 1
            lanes_valid = valid(index, k)

            # Datapath: encoder add, fire compare, window and reset, per lane.
            integrated, after, spike_bits, window_bits = [], [], [], []
            for x in range(lanes):
                v = v_mem.data[x]
                if index == 0:
                    summed = _wire(m, v + mems[("PIX", 0)].data[x], f"scan0_sum{x}")
                    v = _wire(m, saturate(summed, f.v), f"scan0_v{x}")
                vth = th_mem.data[x]
                above = _wire(m, v - vth, f"scan{index}_above{x}")
                distance = Mux(above < 0, -above, above)
                fire = _wire(m, v >= vth, f"scan{index}_fire{x}")
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
                remaining = _wire(m, spikes & ~pushed, f"scan{index}_remaining")
                lane, one_hot = _lowest(remaining, lanes)
                lane = _wire(m, lane, f"scan{index}_lane")
                one_hot = _wire(m, one_hot, f"scan{index}_one_hot")
                want = _wire(m, active & have_now & remaining.any(), f"scan{index}_want")
                pushing = _wire(m, want & queue.push.ready, f"scan{index}_push")
                m.d.comb += [queue.push.valid.eq(want), queue.push.payload.eq(k * lanes + lane)]
                m.d.comb += queue.clear_high_water.eq(control.start)
                alone = ~(remaining & ~one_hot).any()
                retire = _wire(m, active & have_now & (~remaining.any() | (pushing & alone)), f"scan{index}_retire")
                with m.If(pushing):
                    m.d.sync += pushed.eq(pushed | one_hot)
                count(f"stall_cycles.{index}", want & ~queue.push.ready)
                count(f"synaptic_ops.{index}", Mux(pushing, sizes[index + 1], 0))
            else:
                pushing = Const(0)
                retire = _wire(m, active & have_now, f"scan{index}_retire")
            issue = _wire(m, active & (first | (retire & ~last)), f"scan{index}_issue")
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
            count(f"spikes.{index}", Mux(retire, _popcount(spikes), 0))
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
                    in_class = _select(masks, k, lanes)
                    with m.If(counting):
                        m.d.sync += class_counts[c].eq(class_counts[c] + _popcount(spikes & in_class))
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
            word = Signal(_counter(row_words), name=f"integrate{target}_word")
            row = Signal(_counter(sizes[index] * row_words), name=f"integrate{target}_row")
            m.d.comb += queue.pop.ready.eq(active & ~busy)
            popping = _wire(m, active & ~busy & queue.pop.valid, f"integrate{target}_pop")
            reading = _wire(m, popping | busy, f"integrate{target}_read")
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
            written_word = Signal(_counter(row_words), name=f"integrate{target}_write_word")
            m.d.sync += [written.eq(reading), written_word.eq(word_now)]
            sums = [
                saturate(_wire(m, t_mem.data[x] + w_mem.data[x], f"integrate{target}_sum{x}"), f.v)
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
        count_now = _wire(m, Array(class_counts)[at_class], "readout_count")
        membrane_now = _wire(m, Array(class_membranes)[at_class], "readout_membrane")
        better = first | (count_now > best_count) | ((count_now == best_count) & (membrane_now > best_membrane))
        with m.If(reading_out & better):
            m.d.sync += [best.eq(at_class), best_count.eq(count_now), best_membrane.eq(membrane_now)]
        readout_done = reading_out & (at_class == cfg.classes - 1)

        done_by_pass = {
            Pass.CLEAR: clear_done,
            Pass.FORWARD: stage_done,
            Pass.READOUT: readout_done,
        }
        if cfg.learnable:
            done_by_pass.update(self._learning(b, class_counts, label, shift_w, shift_th, lfsr))
        m.d.comb += control.done.eq(0)
        for which, done in done_by_pass.items():
            with m.If(kind == which):
                m.d.comb += control.done.eq(done)

        # LFSR register: update draws, or a host write
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
        for condition, state in lfsr_updates:
            with m.If(condition):
                m.d.sync += lfsr.eq(state)

        # Host port: registers (region 0) and memories (regions 1..), only while idle.
        with m.If(registers_hit & host_we):
            with m.Switch(address):
                with m.Case(HOST_REGISTERS.index("shift_w")):
                    m.d.sync += shift_w.eq(host_wdata)
                with m.Case(HOST_REGISTERS.index("shift_th")):
                    m.d.sync += shift_th.eq(host_wdata)
                with m.Case(HOST_REGISTERS.index("lfsr_state")):
                    m.d.sync += lfsr.eq(Mux(host_wdata[:LFSR_BITS].any(), host_wdata, 1))
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
        _weight_banks(m, cfg, mems, self.init)

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
        self, b: _Builder, class_counts: list[Signal], label: Signal, shift_w: Signal,
        shift_th: Signal, lfsr: Signal,
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
        walker = _Walker(
            m, "dv", active=control.kind == Pass.DV, first=first,
            words=b.by_layer({i: words[i] for i in dv_layers}, _counter(max(words) + 1)),
            cost=b.by_layer(costs, _counter(max(costs.values()) + 1)),
            max_words=max(words[i] for i in dv_layers), max_cost=max(costs.values()), lanes=lanes,
            bits=b.by_layer({i: mems[("H", i)].data.as_value() for i in dv_layers}, lanes),
            valid=lambda k: b.by_layer({i: valid(i, k) for i in dv_layers}, lanes),
        )
        lane_a = Signal(_counter(lanes), name="dv_lane")
        word_a = Signal(_counter(max(words)), name="dv_word")
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
            lane_b = Signal(_counter(lanes), name="dv_lane_b")
            word_b = Signal(_counter(max(words)), name="dv_word_b")
            r_b = Signal(f.k + 1, name="dv_r_b")
            with m.If(started):
                m.d.sync += [
                    lane_b.eq(lane_a), word_b.eq(word_a),
                    r_b.eq(b.by_layer({i: mems[("R", i)].data[lane_a] for i in hidden}, f.k + 1)),
                ]
        dv_acc = Signal(signed(acc_bits), name="dv_acc")
        dv_r = Signal(f.k + 1, name="dv_r")
        product = _wire(m, dv_acc * dv_r, "dv_product")
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
                    _select([cfg.class_of(w, x) for w in range(words[index])], walker.k, cfg.class_bits)
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
            value = saturate(_wire(m, product >> shift, f"dv{index}_scaled"), f.g)
            one_hot = Cat(*(write_lane == x for x in range(lanes)))
            dv_mem.request_write(writing, write_word, one_hot, [value] * lanes)
            writes("DV", index, writing)
            writes_now.append(writing)
        in_flight = Signal(range(4), name="dv_in_flight")
        after = in_flight + walker.event_start - Cat(*writes_now).any()
        m.d.sync += in_flight.eq(after)
        done[Pass.DV] = walker.finished & (after == 0)

        # DW(l, t): row i of dW^l += dV^l[t] for each spike i of layer l - 1; one walker and
        # one adder per lane for every layer (one DW pass runs at a time).
        dw_layers = range(1, layers + 1)
        dw_costs = {index: cfg.row_words(index) for index in dw_layers}
        walker = _Walker(
            m, "dw", active=control.kind == Pass.DW, first=first,
            words=b.by_layer({i: words[i - 1] for i in dw_layers}, _counter(max(words) + 1)),
            cost=b.by_layer(dw_costs, _counter(max(dw_costs.values()) + 1)),
            max_words=max(words[i - 1] for i in dw_layers), max_cost=max(dw_costs.values()), lanes=lanes,
            bits=b.by_layer({i: mems[("S", i - 1)].data.as_value() for i in dw_layers}, lanes),
            valid=lambda k: b.by_layer({i: valid(i - 1, k) for i in dw_layers}, lanes),
        )
        longest_row = max(sizes[i - 1] * dw_costs[i] for i in dw_layers)
        address = _wire(
            m, b.by_layer({i: (walker.k * lanes + walker.lane) * dw_costs[i] + walker.sub for i in dw_layers},
                     _counter(longest_row)),
            "dw_address_now",
        )
        written = Signal(name="dw_write")
        written_address = Signal(_counter(longest_row), name="dw_address")
        written_word = Signal(_counter(max(dw_costs.values())), name="dw_word")
        m.d.sync += [written.eq(walker.event), written_address.eq(address), written_word.eq(walker.sub)]
        sums = [
            saturate(_wire(
                m,
                b.by_layer({i: mems[("DW", i)].data[x] for i in dw_layers}, signed(f.dw))
                + b.by_layer({i: mems[("DV", i)].data[x] for i in dw_layers}, signed(f.g)),
                f"dw_sum{x}",
            ), f.dw)
            for x in range(lanes)
        ]
        for index in dw_layers:
            active = running(Pass.DW, index)
            s_mem = mems[("S", index - 1)]
            dw_mem, dv_mem = mems[("DW", index)], mems[("DV", index)]
            issue, event = active & walker.issue, active & walker.event
            s_mem.request_read(issue, (t - 1) * words[index - 1] + walker.issue_word)
            reads("S", index, issue)
            dw_mem.request_read(event, address)
            dv_mem.request_read(event, walker.sub)
            reads("DW", index, event)
            reads("DV", index, event)
            dw_mem.request_write(active & written, written_address, valid(index, written_word), sums)
            writes("DW", index, active & written)
        done[Pass.DW] = walker.finished & ~walker.event

        # DVTH(l, t), t >= 2: dVth -= dV[t] for the neurons that fired at t - 1 (one sweep and
        # one subtractor per lane for every layer)
        if cfg.trainable:
            every = range(layers + 1)
            sweeping = control.kind == Pass.DVTH
            layer_words = b.by_layer({i: words[i] for i in every}, _counter(max(words) + 1))
            at = sweep("dvth_word", sweeping, max(words))
            reading = sweeping & (at < layer_words)
            loaded = Signal(name="dvth_loaded")
            loaded_word = Signal(_counter(max(words)), name="dvth_loaded_word")
            m.d.sync += [loaded.eq(reading), loaded_word.eq(at)]
            fired = _wire(
                m, b.by_layer({i: mems[("S", i)].data.as_value() & valid(i, loaded_word) for i in every}, lanes),
                "dvth_fired",
            )
            writing = loaded & fired.any()
            differences = [
                saturate(_wire(
                    m,
                    b.by_layer({i: mems[("DVTH", i)].data[x] for i in every}, signed(f.dth))
                    - b.by_layer({i: mems[("DV", i)].data[x] for i in every}, signed(f.g)),
                    f"dvth_sum{x}",
                ), f.dth)
                for x in range(lanes)
            ]
            for index in every:
                active = running(Pass.DVTH, index)
                th_mem, dv_mem, s_mem = mems[("DVTH", index)], mems[("DV", index)], mems[("S", index)]
                th_mem.request_read(active & reading, at)
                dv_mem.request_read(active & reading, at)
                s_mem.request_read(active & reading, (t - 2) * words[index] + at)
                for memory in ("DVTH", "DV", "S"):
                    reads(memory, index, active & reading)
                th_mem.request_write(active & writing, loaded_word, fired, differences)
                writes("DVTH", index, active & writing)
            done[Pass.DVTH] = sweeping & (at == layer_words)

        # UPDATE: weights of layers 1..L, thresholds of layers 0..L (trainable)
        lane = self._update_lanes(m, lfsr)
        done[Pass.UPDATE_W] = self._update_weights(b, shift_w, lane)
        if cfg.trainable:
            done[Pass.UPDATE_TH] = self._update_thresholds(b, shift_th, lane)
        return done

    def _update_lanes(self, m: Module, lfsr: Signal) -> _UpdateLanes:
        """The update's shared datapath: ``base - round_shift(value, shift)`` per lane, with
        one LFSR draw per lane of ``mask`` (one update pass runs at a time)."""
        cfg = self.config
        f = cfg.formats
        accumulator = max(f.dw, f.dth if cfg.trainable else 0)
        lane = _UpdateLanes(cfg.lanes, value_bits=accumulator, base_bits=max(f.w, f.v))
        draws, lane.state = self._draws(m, "update", lfsr, lane.mask)
        for x in range(cfg.lanes):
            step = self._round_shift(lane.value[x], lane.shift, draws[x])
            m.d.comb += lane.difference[x].eq(lane.base[x] - step)
        return lane

    def _draws(self, m: Module, name: str, lfsr: Value, mask: Value) -> tuple[list[Value], Value]:
        """One LFSR step per set lane of ``mask`` (lanes ascending): each lane's state, the last."""
        states = []
        state = lfsr
        for x in range(self.config.lanes):
            stepped = _wire(m, lfsr_next(state), f"{name}_draw{x}")
            state = _wire(m, Mux(mask[x], stepped, state), f"{name}_state{x}")
            states.append(stepped)
        return states, state

    def _round_shift(self, value: Value, shift: Value, draw: Value) -> Value:
        """``round_shift(value, shift)`` with the configured rounding (docs/numerics.md 4.1)."""
        rounding = self.config.rounding
        if rounding == "floor":
            return value >> shift
        # Both addends are below 2^31 (shift <= 31): 32-bit terms keep the sums narrow.
        if rounding == "nearest":
            half = (Const(1, LFSR_BITS) << shift)[1 : LFSR_BITS + 1]  # 2^(s-1), 0 for s = 0
            return (value + half) >> shift
        low_bits = draw & ~(Const((1 << LFSR_BITS) - 1, LFSR_BITS) << shift)[:LFSR_BITS]
        return (value + low_bits) >> shift

    def _update_weights(self, b: _Builder, shift_w: Signal, lane: _UpdateLanes) -> Value:
        """W = sat_w(W - round_shift(dW, s_w)), dW = 0, every word of layer l in address order."""
        m, control, mems = b.m, b.control, b.mems
        reads, writes, valid, sweep, running = b.reads, b.writes, b.valid, b.sweep, b.running
        lfsr_updates = b.lfsr_updates
        cfg = self.config
        f = cfg.formats
        stochastic = cfg.rounding == "stochastic"
        finished = [Const(0)]
        for index in range(1, cfg.layers + 1):
            active = running(Pass.UPDATE_W, index)
            w_mem, dw_mem = mems[("W", index)], mems[("DW", index)]
            cost = cfg.row_words(index)
            total = cfg.sizes[index - 1] * cost
            at = sweep(f"update_w{index}_word", active, total)
            reading = active & (at < total)
            word = Signal(_counter(cost), name=f"update_w{index}_row_word")
            word_now = Mux(control.first, 0, word)
            with m.If(reading):
                m.d.sync += word.eq(Mux(word_now == cost - 1, 0, word_now + 1))
            w_mem.request_read(reading, at)
            dw_mem.request_read(reading, at)
            for memory in ("W", "DW"):
                reads(memory, index, reading)
            loaded = Signal(name=f"update_w{index}_loaded")
            loaded_address = Signal(_counter(total), name=f"update_w{index}_address")
            loaded_word = Signal(_counter(cost), name=f"update_w{index}_word")
            m.d.sync += [loaded.eq(reading), loaded_address.eq(at), loaded_word.eq(word_now)]
            mask = valid(index, loaded_word)
            with m.If(active):
                m.d.comb += lane.load(shift_w, mask, dw_mem.data, w_mem.data)
            if stochastic:
                lfsr_updates.append((loaded, lane.state))
            updated = [saturate(lane.difference[x], f.w) for x in range(cfg.lanes)]
            w_mem.request_write(loaded, loaded_address, mask, updated)
            dw_mem.request_write(loaded, loaded_address, mask, Const(0))
            for memory in ("W", "DW"):
                writes(memory, index, loaded)
            finished.append(active & (at == total))
        return Array(finished)[control.layer]

    def _update_thresholds(self, b: _Builder, shift_th: Signal, lane: _UpdateLanes) -> Value:
        """Vth = clamp(Vth - round_shift(dVth, s), 1, max), dVth = 0; R of changed lanes."""
        m, control, mems = b.m, b.control, b.mems
        reads, writes, valid, running = b.reads, b.writes, b.valid, b.running
        lfsr_updates = b.lfsr_updates
        cfg = self.config
        f = cfg.formats
        lanes = cfg.lanes
        stochastic = cfg.rounding == "stochastic"
        first = control.first
        dividers = []
        for x in range(lanes):
            divider = ReciprocalDivider(threshold_bits=f.v - 1, k=f.k)
            m.submodules[f"divider{x}"] = divider
            m.d.comb += divider.result.ready.eq(1)
            dividers.append(divider)
        results_ready = Cat(*(divider.result.valid for divider in dividers)).any()
        encoder_shift = Signal(SHIFT_BITS)  # s_th0 = max(s_th - 8 + fw, 0)
        m.d.comb += encoder_shift.eq(Mux(shift_th + f.fw >= PIXEL_FRAC, shift_th + f.fw - PIXEL_FRAC, 0))
        # One engine for every layer (one threshold update runs at a time).
        every = range(cfg.layers + 1)
        active = control.kind == Pass.UPDATE_TH
        sequence = _WordSequence(m, "update_th", start=active & first, first=first, words=max(cfg.words))
        k, have_now = sequence.k, sequence.have_now
        waiting = Signal(name="update_th_waiting")
        changed_lanes = Signal(lanes, name="update_th_changed")
        arrived = _wire(m, active & have_now & ~waiting, "update_th_arrived")
        last = k == b.by_layer({i: cfg.words[i] - 1 for i in every}, _counter(max(cfg.words)))
        mask = _wire(m, b.by_layer({i: valid(i, k) for i in every}, lanes), "update_th_mask")
        thresholds = [
            b.by_layer({i: mems[("VTH", i)].data[x] for i in every}, unsigned(f.v - 1)) for x in range(lanes)
        ]
        accumulators = [
            b.by_layer({i: mems[("DVTH", i)].data[x] for i in every}, signed(f.dth)) for x in range(lanes)
        ]
        with m.If(active):
            m.d.comb += lane.load(Mux(control.layer == 0, encoder_shift, shift_th), mask, accumulators, thresholds)
        if stochastic:
            lfsr_updates.append((arrived, lane.state))
        new = [_wire(m, clamp(lane.difference[x], 1, f.threshold_max, f.v), f"update_th_new{x}") for x in range(lanes)]
        differs = Cat(*(new[x] != thresholds[x] for x in range(lanes)))
        changed = _wire(m, differs & mask, "update_th_changes")
        delivered = _wire(m, active & waiting & results_ready, "update_th_delivered")
        retire = _wire(m, (arrived & ~changed.any()) | delivered, "update_th_retire")
        issue = _wire(m, active & (first | (retire & ~last)), "update_th_issue")
        issue_word = Mux(first, 0, k + 1)
        for index in every:
            on = running(Pass.UPDATE_TH, index)
            th_mem, dth_mem, r_mem = mems[("VTH", index)], mems[("DVTH", index)], mems[("R", index)]
            th_mem.request_write(on & arrived, k, mask, new)
            dth_mem.request_write(on & arrived, k, mask, Const(0))
            for memory in ("VTH", "DVTH"):
                writes(memory, index, on & arrived)
            r_mem.request_write(on & delivered, k, changed_lanes, [divider.result.payload for divider in dividers])
            writes("R", index, on & delivered)
            for memory in (th_mem, dth_mem):
                memory.request_read(on & issue, issue_word)
            reads("VTH", index, on & issue)
            reads("DVTH", index, on & issue)
        with m.If(arrived & changed.any()):
            m.d.sync += [waiting.eq(1), changed_lanes.eq(changed)]
        with m.If((active & first) | retire):
            m.d.sync += waiting.eq(0)
        for x, divider in enumerate(dividers):
            m.d.comb += [divider.vth.valid.eq(arrived & changed[x]), divider.vth.payload.eq(new[x])]
        return sequence.advance(retire, last)
