"""The host port: run-time access to the learned memories and the registers while the core
is idle (docs/architecture.md section 2; the map is :attr:`CoreConfig.host_address
<hw.core_config.CoreConfig.host_address>`)."""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Array, Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.core.memory import MemoryPortSignature
from hw.core_config import HOST_REGISTERS, CoreConfig
from model.fixed import LFSR_BITS
from model.units import SHIFT_BITS

__all__ = ["HOST_READ_LATENCY", "HostPort", "HostSignature"]

#: Cycles from ``host.re`` (or a new ``counter_select``) to the value on ``host.rdata``
#: (``counter_value``): the request register (with the one-hot region of a read), the
#: memory's read register, then the register of the selected value.
HOST_READ_LATENCY = 3


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


class HostPort(wiring.Component):
    """The host port's requests, registered (no path from the host into the datapath), the
    learning-rate shift registers and the register map.

    Members
    -------
    host : ``In(HostSignature(config))``
    idle : ``In(1)``
        The core waits for a sample: the only time a request is performed.
    shift_w, shift_th : ``Out(5)``
        The learning-rate shift registers (reset: the configuration's).
    lfsr_load : ``Out(1)``, lfsr_seed : ``Out(32)``, lfsr_state : ``In(32)``
        A host write of the LFSR, and its state (read back).
    pending_load : ``Out(1)``, pending_value, pending
        A host write of the pending-sample counter, and its value (read back).
    <key> (every host memory, e.g. ``w1``, ``vth0``) : ``Out(MemoryPortSignature)``
    """

    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        pending = range(max(config.batch, 2))
        members = {
            "host": In(HostSignature(config)),
            "idle": In(1),
            "shift_w": Out(SHIFT_BITS, init=config.shift_w),
            "shift_th": Out(SHIFT_BITS, init=config.shift_th),
            "lfsr_load": Out(1),
            "lfsr_seed": Out(LFSR_BITS),
            "lfsr_state": In(LFSR_BITS),
            "pending_load": Out(1),
            "pending_value": Out(pending),
            "pending": In(pending),
        }
        for spec in config.host_memories:
            members[spec.key.lower()] = Out(MemoryPortSignature(spec))
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        host = self.host
        address_reg = Signal.like(host.addr, name="host_address")
        wdata = Signal.like(host.wdata, name="host_wdata")
        we = Signal(name="host_we")
        re = Signal(name="host_re")
        m.d.sync += [address_reg.eq(host.addr), wdata.eq(host.wdata), we.eq(host.we), re.eq(host.re)]
        region = address_reg[cfg.host_word_bits:]
        address = address_reg[:cfg.host_word_bits]
        registers = self.idle & (region == 0) & we

        # Registers (region 0).
        def writing(name: str) -> Signal:
            return registers & (address == HOST_REGISTERS.index(name))

        with m.If(writing("shift_w")):
            m.d.sync += self.shift_w.eq(wdata)
        with m.If(writing("shift_th")):
            m.d.sync += self.shift_th.eq(wdata)
        m.d.comb += [
            self.lfsr_load.eq(writing("lfsr_state")), self.lfsr_seed.eq(wdata),
            self.pending_load.eq(writing("pending")), self.pending_value.eq(wdata),
        ]
        # The read's region, one-hot (bit 0: the registers), registered with the request: the
        # selected word is an AND-OR over the regions, a balanced tree of a few LUT levels.
        # A register is picked by the low bits of its address (the map has no others).
        regions = len(cfg.host_memories) + 1
        read_regions = Signal(regions, name="host_read_regions")
        read_register = Signal(range(len(HOST_REGISTERS)), name="host_read_register")
        with m.If(re):
            m.d.sync += [read_regions.eq(Cat(region == number for number in range(regions))),
                         read_register.eq(address)]
        values = Array([self.shift_w, self.shift_th, self.lfsr_state, self.pending])
        candidates = [values[read_register]]

        # Memories (regions 1, 2, ...): a write wins the cycle over a read.
        full = (1 << cfg.lanes) - 1
        for number, spec in enumerate(cfg.host_memories, start=1):
            port = getattr(self, spec.key.lower())
            hit = self.idle & (region == number)
            m.d.comb += [
                port.read_en.eq(hit & re & ~we), port.read_addr.eq(address),
                port.write_mask.eq(Const(full, cfg.lanes) & (hit & we).replicate(cfg.lanes)),
                port.write_addr.eq(address), port.write_data.eq(wdata[: spec.word_bits]),
            ]
            candidates.append(port.read_data.as_value())
        m.d.sync += host.rdata.eq(functools.reduce(operator.or_, (
            candidate & read_regions[number].replicate(len(candidate))
            for number, candidate in enumerate(candidates)
        )))
        return m
