"""cocotb bench of the whole core (:class:`sim.core_harness.CoreHarness`) against
:class:`model.core.CoreModel`.

Configuration (:func:`sim.tb.common.load_config`):

``checkpoint``
    Integer checkpoint the harness was built from (its W, VTH, R are the memory images).
``load``
    Optional integer checkpoint of the same geometry, loaded through the host port before
    the first sample (run-time loading); the model then starts from it.
``faults``
    Optional JSON file ``{"mode": "flip", "faults": [Faults.to_dict(), ...]}``
    (:mod:`model.faults`): bit errors applied to the network (after ``load``) and written
    into the core's memories through the host port before the first sample; the model
    starts from the same faulty words.
``samples``
    ``.npz`` with ``pixels`` (N, n_0) u8 and ``labels`` (N,).
``learn``
    Learn every sample (else infer).
``lanes``, ``queue_depth``, ``target``, ``counters``
    P, Q, target and counter set of the build (:meth:`CoreConfig.from_network`).
``input_pattern``, ``output_pattern``
    Valid / ready patterns of :data:`sim.tb.common.PATTERNS` for the input and result
    streams (stalls).
``corrupt``
    ``null`` or ``"model"``: flip the LSB of the model's first weight; the bench must fail.
``progress``
    Optional file where the number of finished samples is written after each sample.
``seed``
    Seeds the stall patterns.

Per sample the bench runs the model (trace on), streams the pixels in, sleeps until the
result is offered (waking only when a trace buffer fills another half, to read it), takes
the result, reads every performance counter, and compares: every memory write, memory by
memory in order (cycle, phase, step, address, lane mask and the enabled lanes' data: the
trace of docs/architecture.md section 6; both sides start from the same contents, so equal
writes mean equal memories and the trace's full words follow), the prediction and class
counts, and every counter. After the last sample it reads W, VTH,
R, DW, DVTH, the LFSR and the pending counter through the host port and compares them with
the model's state. Statistics of the run (test ``cosim``) give mismatches, cycles and speed.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer, ValueChange

from hw.core import HOST_READ_LATENCY, input_layout, output_layout
from hw.core_config import CoreConfig, MemorySpec
from model.core import PHASES, CoreModel, CoreResult, TraceRecord
from model.faults import Faults, inject
from model.integer import IntegerNetwork
from sim.core_harness import buffer_name, entry_layout
from sim.tb.common import CLOCK_PERIOD_NS, load_config, pattern, record_stats, seeded

#: Mismatch reports logged in full (the rest are only counted).
MAX_REPORTS = 10
#: Cycles after the last host write by which its trace entry is in a trace buffer (the
#: memory write, the trace bus register and the buffer's write: three, plus one spare).
HOST_WRITE_TRACE_CYCLES = 4
#: Spare cycles allowed beyond the model's count before a sample is declared hung.
HANG_MARGIN = 1000


def _fields(layout: Any) -> dict[str, tuple[int, int]]:
    """``{name: (offset, width)}`` of a StructLayout."""
    return {name: (field.offset, field.width) for name, field in layout}


#: Fields of a trace entry compared besides the data lanes, in report order.
HEADER = ("cycle", "phase", "t", "addr", "mask")


class _Stream(NamedTuple):
    """The writes of one memory in one sample, as arrays (one row per write)."""

    cycle: np.ndarray
    phase: np.ndarray
    t: np.ndarray
    addr: np.ndarray
    mask: np.ndarray
    lanes: np.ndarray  # (writes, P) lane values (signed memories sign-extended)

    @classmethod
    def of_model(cls, records: Sequence[TraceRecord], lanes: int) -> _Stream:
        """The model's records of one memory (in their order)."""
        def column(name: str) -> np.ndarray:
            return np.fromiter((getattr(r, name) for r in records), np.int64, len(records))

        return cls(
            column("cycle"), np.fromiter((PHASES.index(r.phase) for r in records), np.int64, len(records)),
            column("t"), column("address"), column("mask"),
            np.array([r.data for r in records], np.int64).reshape(len(records), lanes),
        )


class _Buffer:
    """Reader of one memory's trace buffer."""

    def __init__(self, dut: Any, config: CoreConfig, spec: MemorySpec) -> None:
        handle = getattr(dut, buffer_name(spec))
        self.spec = spec
        self.count = handle.count
        self.entries = handle.entries
        self.size = 1 << (len(self.entries) - 1).bit_length()
        self.slots: list[Callable[[], int] | None] = [None] * self.size
        self.read = 0
        self.fields = _fields(entry_layout(config, spec))

    def _reader(self, index: int) -> Callable[[], int]:
        """A fast reader of entry ``index`` (built once per slot)."""
        element = self.entries[index]
        simulator_object = getattr(element, "_handle", None)
        if simulator_object is None or not hasattr(simulator_object, "get_signal_val_binstr"):
            return lambda: int(element.value)
        # The GPI object's bit string skips cocotb's LogicArray construction, which costs
        # several times the read itself; X/Z bits make int() fail loudly, as they should.
        read = simulator_object.get_signal_val_binstr
        return lambda: int(read(), 2)

    def drain(self) -> list[int]:
        """The raw entries written since the last drain."""
        written = int(self.count.value)
        if written - self.read > self.size:
            raise AssertionError(f"trace buffer of {self.spec.key} overflowed")
        raw = []
        for n in range(self.read, written):
            slot = n % self.size
            reader = self.slots[slot]
            if reader is None:
                reader = self.slots[slot] = self._reader(slot)
            raw.append(reader())
        self.read = written
        return raw

    def stream(self, raw: Sequence[int]) -> _Stream:
        """Decode raw entries (vectorised over the entries)."""
        spec = self.spec

        def field(name: str) -> list[int]:
            offset, width = self.fields[name]
            mask = (1 << width) - 1
            return [(entry >> offset) & mask for entry in raw]

        header = {name: np.array(field(name), np.int64) for name in HEADER}
        count, bits, lanes = len(raw), spec.lane_bits, spec.lanes
        nbytes = (spec.word_bits + 7) // 8
        packed = b"".join(word.to_bytes(nbytes, "little") for word in field("data"))
        planes = np.unpackbits(np.frombuffer(packed, np.uint8).reshape(count, nbytes), axis=1, bitorder="little")
        planes = planes[:, : spec.word_bits].reshape(count, lanes, bits).astype(np.int64)
        values = planes @ (np.int64(1) << np.arange(bits, dtype=np.int64))
        if spec.signed:
            values -= planes[:, :, -1] << bits
        return _Stream(header["cycle"], header["phase"], header["t"], header["addr"], header["mask"], values)


def _expected_memories(config: CoreConfig, model: CoreModel) -> dict[str, list[list[int]]]:
    """The model's W, VTH, R, DW, DVTH (and the fc decoder's D, dD) as memory words."""
    words = config.initial_contents(model.to_network())
    for layer in range(config.layers + 1):
        number = config.number(layer)
        if config.learnable and config.trainable:
            words[f"DVTH{layer}"] = config.as_words(model.dth[number])
        if config.learnable and layer:
            words[f"DW{layer}"] = config.rows_as_words(model.dw[number - 1])
    if config.learnable and config.fc_decoder:
        words[f"DD{config.layers}"] = config.rows_as_words(model.dd)
    return words


def _faulty(network: IntegerNetwork, path: str, config: CoreConfig) -> tuple[IntegerNetwork, list[str]]:
    """``network`` with the bit flips of the ``faults`` file, and the core's memory keys they
    touch (the file numbers layers as the network's spec does)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("mode") != "flip" or not isinstance(data.get("faults"), list):
        raise ValueError("faults: expected {'mode': 'flip', 'faults': [...]} (stuck-at cells need the core's help)")
    drawn = [Faults.from_dict(item, network) for item in data["faults"]]
    keys = sorted({f"{group.memory}{config.layer_of(layer)}" for group in drawn for layer in group.layer.tolist()})
    return inject(network, drawn, "flip"), keys


class CoreTB:
    """Drivers, monitors, model and scoreboards of the core harness."""

    def __init__(self, dut: Any, config: dict[str, Any]) -> None:
        self.dut = dut
        self.log = dut._log
        self.options = config
        built = IntegerNetwork.load(config["checkpoint"])
        self.network = IntegerNetwork.load(config["load"]) if config.get("load") else built
        built_as = {
            "lanes": int(config["lanes"]), "queue_depth": int(config["queue_depth"]),
            "target": config.get("target", "sim"), "counters": config.get("counters", "all"),
        }
        self.config = CoreConfig.from_network(built, **built_as)
        loaded = CoreConfig.from_network(self.network, **built_as)
        structural = ("sizes", "timesteps", "classes", "population", "decoder", "reset",
                      "trainable", "learnable", "rounding", "batch", "formats")
        for name in structural:
            if getattr(loaded, name) != getattr(self.config, name):
                raise ValueError(f"load: the loaded network's {name} differs from the built core's")
        self.faulted: list[str] = []
        if config.get("faults"):
            self.network, self.faulted = _faulty(self.network, config["faults"], self.config)
        self.model = CoreModel(self.network, lanes=self.config.lanes, queue_depth=self.config.queue_depth)
        if config.get("corrupt") == "model":
            self.model.weights[0][0, 0] ^= 1
        elif config.get("corrupt") is not None:
            raise ValueError(f"corrupt: {config['corrupt']!r} is not null or 'model'")
        rng = seeded(config, "core")
        self.input_pattern = pattern(config.get("input_pattern", "always"), rng)
        self.output_pattern = pattern(config.get("output_pattern", "always"), rng)
        self.buffers = [_Buffer(dut, self.config, spec) for spec in self.config.memories if spec.name != "PIX"]
        self.input_fields = _fields(input_layout(self.config))
        self.output_fields = _fields(output_layout(self.config))
        self.mismatches = {"trace": 0, "outputs": 0, "counters": 0, "memories": 0}
        self.reports = 0
        self.clock = dut.clk

    # Infrastructure -------------------------------------------------------------------------

    def error(self, kind: str, message: str) -> None:
        """Count a mismatch of ``kind``; log the first :data:`MAX_REPORTS`."""
        self.mismatches[kind] += 1
        self.reports += 1
        if self.reports <= MAX_REPORTS:
            self.log.error("mismatch (%s): %s", kind, message)

    async def start(self) -> None:
        """Clock, reset, idle inputs."""
        Clock(self.clock, CLOCK_PERIOD_NS, unit="ns").start()
        dut = self.dut
        for name in ("pixels__valid", "result__ready", "host__we", "host__re", "host__addr",
                     "host__wdata", "counter_select", "pixels__payload"):
            getattr(dut, name).value = 0
        dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(self.clock)
        dut.rst.value = 0
        for _ in range(2):  # the harness registers the reset
            await RisingEdge(self.clock)

    def cycles_now(self) -> int:
        """Simulated clock cycles so far."""
        return int(get_sim_time("ns") // CLOCK_PERIOD_NS)

    # Host port -------------------------------------------------------------------------------

    async def host_write(self, address: int, value: int) -> None:
        dut = self.dut
        dut.host__addr.value = address
        dut.host__wdata.value = value
        dut.host__we.value = 1
        await RisingEdge(self.clock)
        dut.host__we.value = 0

    async def host_read(self, addresses: Sequence[int]) -> list[int]:
        """Read ``addresses`` back to back (``rdata`` follows ``re`` by HOST_READ_LATENCY)."""
        dut = self.dut
        values = []
        for n in range(len(addresses) + HOST_READ_LATENCY):
            if n < len(addresses):
                dut.host__addr.value = addresses[n]
                dut.host__re.value = 1
            else:
                dut.host__re.value = 0
            await ReadOnly()
            if n >= HOST_READ_LATENCY:
                values.append(int(dut.host__rdata.value))
            await RisingEdge(self.clock)
        return values

    async def load(self, network: IntegerNetwork) -> None:
        """Write W, VTH, R and the registers of ``network`` through the host port."""
        config = self.config
        for key, words in config.initial_contents(network).items():
            spec = next(s for s in config.memories if s.key == key)
            for address, word in enumerate(words):
                await self.host_write(config.host_address(key, address), spec.pack(word))
        rule = network.rule
        registers = {"shift_w": rule.shift_w, "shift_th": rule.shift_th,
                     "lfsr_state": network.lfsr.state, "pending": network.pending}
        for name, value in registers.items():
            await self.host_write(config.host_address(name), value)
        await self.end_host_writes()

    async def end_host_writes(self) -> None:
        """Let the last host writes reach the trace buffers, then drop them (host writes are
        not part of any sample's trace)."""
        for _ in range(HOST_WRITE_TRACE_CYCLES):
            await RisingEdge(self.clock)
        for buffer in self.buffers:
            buffer.drain()

    async def write_faults(self) -> None:
        """Write the faulty memories (:attr:`faulted`) through the host port, word by word."""
        config = self.config
        words = _expected_memories(config, self.model)
        for key in self.faulted:
            if key not in words:
                raise ValueError(f"faults: memory {key} is not in this core")
            spec = next(s for s in config.memories if s.key == key)
            for address, word in enumerate(words[key]):
                await self.host_write(config.host_address(key, address), spec.pack(word))
        await self.end_host_writes()

    # Streams ----------------------------------------------------------------------------------

    async def send(self, pixels: np.ndarray, label: int, learn: bool) -> None:
        """Stream the sample's input words, honouring the input stall pattern."""
        dut, config = self.dut, self.config
        (p_off, _), (l_off, _), (n_off, _) = (self.input_fields[k] for k in ("pixels", "label", "learn"))
        spec = MemorySpec("PIX", 0, config.words[0], 8, False, config.lanes)
        words = [
            spec.pack(lanes) << p_off | label << l_off | int(learn) << n_off
            for lanes in config.input_words(pixels)
        ]
        sent = 0
        while sent < len(words):
            valid = next(self.input_pattern)
            dut.pixels__valid.value = int(valid)
            dut.pixels__payload.value = words[sent]
            await ReadOnly()
            ready = int(dut.pixels__ready.value)
            await RisingEdge(self.clock)
            sent += int(valid and ready)
        dut.pixels__valid.value = 0

    async def wait_result(self, limit: int) -> list[list[int]]:
        """Sleep until the result is offered, draining the trace buffers on the way."""
        dut = self.dut
        raw: list[list[int]] = [[] for _ in self.buffers]
        deadline = Timer(limit * CLOCK_PERIOD_NS, unit="ns")
        while True:
            for store, buffer in zip(raw, self.buffers):
                store.extend(buffer.drain())
            if int(dut.result__valid.value):
                return raw
            fired = await First(RisingEdge(dut.result__valid), ValueChange(dut.trace_crossings), deadline)
            if fired is deadline:
                raise AssertionError(f"no result within {limit} cycles of the input (the core hung)")

    async def take_result(self) -> tuple[int, list[int]]:
        """Accept the result under the output stall pattern: (prediction, class counts)."""
        dut, config = self.dut, self.config
        while True:
            ready = next(self.output_pattern)
            dut.result__ready.value = int(ready)
            await ReadOnly()
            valid = int(dut.result__valid.value)
            payload = int(dut.result__payload.value)
            await RisingEdge(self.clock)
            if ready and valid:
                break
        dut.result__ready.value = 0
        p_off, p_w = self.output_fields["prediction"]
        c_off, _ = self.output_fields["counts"]
        bits = config.count_bits
        counts = [(payload >> (c_off + c * bits)) & ((1 << bits) - 1) for c in range(config.classes)]
        if config.fc_decoder:  # the decoder's sums are signed
            counts = [value - (1 << bits) if value >> (bits - 1) else value for value in counts]
        return (payload >> p_off) & ((1 << p_w) - 1), counts

    async def read_counters(self) -> list[int]:
        """Every performance counter through the counter port (one per cycle, pipelined)."""
        dut = self.dut
        values = []
        count = len(self.config.counters)
        for n in range(count + HOST_READ_LATENCY):
            dut.counter_select.value = min(n, count - 1)
            await ReadOnly()
            if n >= HOST_READ_LATENCY:
                values.append(int(dut.counter_value.value))
            await RisingEdge(self.clock)
        return values

    # Scoreboards ------------------------------------------------------------------------------

    def check_trace(self, sample: int, raw: list[list[int]], expected: list[TraceRecord]) -> None:
        """Every memory's writes in order: cycle, phase, step, address, lane mask and the
        enabled lanes' data. Both sides start from the same contents, so equal writes give
        equal memories (the model's full words follow)."""
        by_memory: dict[tuple[int, str], list[TraceRecord]] = {}
        for record in expected:
            by_memory.setdefault((record.layer, record.memory), []).append(record)
        lanes = self.config.lanes
        for store, buffer in zip(raw, self.buffers):
            spec = buffer.spec
            records = by_memory.pop((self.config.number(spec.layer), spec.name), [])
            got, wanted = buffer.stream(store), _Stream.of_model(records, lanes)
            common = min(len(store), len(records))
            enabled = ((got.mask[:common, None] >> np.arange(lanes)) & 1).astype(bool)
            same = ((got.lanes[:common] == wanted.lanes[:common]) | ~enabled).all(axis=1)
            for name in HEADER:
                same &= getattr(got, name)[:common] == getattr(wanted, name)[:common]
            for n in np.flatnonzero(~same):
                rtl = self._describe(got, n, spec)
                self.error("trace", f"sample {sample} {spec.key} write {n}: RTL {rtl}, model {records[n]}")
            if len(store) != len(records):
                self.error("trace", f"sample {sample} {spec.key}: RTL wrote {len(store)} words, model {len(records)}")
        for (layer, memory), records in by_memory.items():
            self.error("trace", f"sample {sample}: the model writes {memory}{layer} ({records[0]}), not in the core")

    @staticmethod
    def _describe(stream: _Stream, n: int, spec: MemorySpec) -> str:
        mask = int(stream.mask[n])
        data = tuple(int(v) if mask >> lane & 1 else None for lane, v in enumerate(stream.lanes[n]))
        phase = int(stream.phase[n])
        return (
            f"(cycle={int(stream.cycle[n])}, phase={PHASES[phase] if phase < len(PHASES) else phase}, "
            f"t={int(stream.t[n])}, address={int(stream.addr[n])}, mask={mask}, data={data})"
        )

    def check_outputs(self, sample: int, prediction: int, counts: list[int], result: CoreResult) -> None:
        if prediction != result.prediction or counts != [int(c) for c in result.counts]:
            self.error(
                "outputs",
                f"sample {sample}: RTL class {prediction} counts {counts}, "
                f"model class {result.prediction} counts {result.counts.tolist()}",
            )

    def expected_counters(self, result: CoreResult) -> dict[str, int]:
        """The model's value of every RTL counter; raises nothing, flags unmapped counts."""
        counters = result.counters
        config = self.config
        phases = counters.phases
        layers = config.layers + 1
        values: dict[str, int] = {}
        for spec in config.counters:
            if spec.kind == "cycles":
                values[spec.name] = phases[spec.item].cycles if spec.item in phases else 0
            elif spec.kind == "event":
                phase = "backward" if spec.item == "window_events" else "forward"
                layer = phases[phase].layers[config.number(spec.layer)] if phase in phases else None
                values[spec.name] = getattr(layer, spec.item) if layer is not None else 0
        totals: dict[str, int] = {}
        for phase in phases.values():
            for index in range(layers):
                layer = phase.layers[config.number(index)]
                for kind, counts in (("reads", layer.words_read), ("writes", layer.words_written)):
                    for memory, amount in counts.items():
                        name = f"{kind}.{memory}.{index}"
                        totals[name] = totals.get(name, 0) + amount
        listed = {spec.name for spec in config.counters}
        for name, amount in totals.items():
            if config.counter_set == "all" and name not in listed and amount:
                self.error("counters", f"the model counts {name} = {amount}, the core has no such counter")
        for spec in config.counters:
            if spec.kind in ("reads", "writes"):
                values[spec.name] = totals.get(spec.name, 0)
        return values

    def check_counters(self, sample: int, rtl: list[int], result: CoreResult) -> dict[str, int]:
        expected = self.expected_counters(result)
        actual = {}
        for spec, value in zip(self.config.counters, rtl):
            actual[spec.name] = value
            wanted = expected[spec.name] % (1 << 32)
            if value != wanted:
                self.error("counters", f"sample {sample} {spec.name}: RTL {value}, model {wanted}")
        return actual

    async def check_memories(self) -> None:
        """W, VTH, R, DW, DVTH, LFSR and pending through the host port against the model."""
        config = self.config
        for key, words in _expected_memories(config, self.model).items():
            spec = next(s for s in config.memories if s.key == key)
            got = await self.host_read([config.host_address(key, a) for a in range(len(words))])
            for address, (word, value) in enumerate(zip(words, got)):
                if spec.unpack(value) != tuple(word):
                    self.error("memories", f"{key}[{address}]: RTL {spec.unpack(value)}, model {tuple(word)}")
        registers = await self.host_read([config.host_address(name) for name in ("lfsr_state", "pending")])
        wanted = [self.model.lfsr.state, self.model.pending]
        for name, value, expected in zip(("lfsr_state", "pending"), registers, wanted):
            if value != expected:
                self.error("memories", f"register {name}: RTL {value}, model {expected}")


@cocotb.test()
async def cosim(dut: Any) -> None:
    """Every sample of the configuration against the core model; statistics in ``cosim``."""
    options = load_config()
    tb = CoreTB(dut, options)
    data = np.load(options["samples"])
    pixels, labels = data["pixels"], data["labels"]
    learn = bool(options.get("learn"))
    progress = Path(options["progress"]) if options.get("progress") else None
    await tb.start()
    if options.get("load"):
        await tb.load(tb.network)
    if tb.faulted:
        await tb.write_faults()
    inference, model_inference, steps, model_steps, ideal = [], [], [], [], []
    correct = 0
    model_seconds = 0.0
    # The model and the scoreboard allocate many short-lived objects and no reference
    # cycles; the cyclic collector's passes would only slow the loop down.
    gc.disable()
    started = time.perf_counter()
    first_cycle = tb.cycles_now()
    for sample, (image, label) in enumerate(zip(pixels, labels)):
        clock = time.perf_counter()
        if learn:
            result = tb.model.learn(image, int(label), trace=True)
        else:
            result = tb.model.infer(image, trace=True)
        model_seconds += time.perf_counter() - clock
        await tb.send(image, int(label), learn)
        raw = await tb.wait_result(result.counters.cycles + HANG_MARGIN)
        prediction, counts = await tb.take_result()
        rtl = await tb.read_counters()
        tb.check_trace(sample, raw, result.trace)
        tb.check_outputs(sample, prediction, counts, result)
        actual = tb.check_counters(sample, rtl, result)
        correct += int(prediction == int(label))
        cycles = {phase: actual.get(f"cycles.{phase}", 0) for phase in PHASES}
        model_cycles = result.cycles
        inference.append(sum(cycles[p] for p in PHASES[:3]))
        model_inference.append(sum(model_cycles.get(p, 0) for p in PHASES[:3]))
        ideal.append(tb.model.ideal_cycles(result.spikes))
        if learn:
            steps.append(sum(cycles.values()))
            model_steps.append(sum(model_cycles.values()))
        if progress is not None:
            progress.write_text(f"{sample + 1}\n")
    elapsed = time.perf_counter() - started
    gc.enable()
    simulated = tb.cycles_now() - first_cycle
    await tb.check_memories()
    mismatches = sum(tb.mismatches.values())
    mean = (lambda values: float(np.mean(values)) if values else None)
    record_stats(
        options,
        "cosim",
        samples=len(pixels),
        mismatches=mismatches,
        mismatches_by_kind=tb.mismatches,
        accuracy=correct / len(pixels) if len(pixels) else None,
        cycles_per_inference=mean(inference),
        model_cycles_per_inference=mean(model_inference),
        ideal_cycles_per_inference=mean(ideal),
        cycles_per_learning_step=mean(steps),
        model_cycles_per_learning_step=mean(model_steps),
        simulated_cycles=simulated,
        seconds=elapsed,
        model_seconds=model_seconds,
        sim_cycles_per_second=simulated / (elapsed - model_seconds) if elapsed > model_seconds else None,
        wall_cycles_per_second=simulated / elapsed if elapsed else None,
    )
    assert mismatches == 0, f"{mismatches} mismatches against the core model {tb.mismatches}"

