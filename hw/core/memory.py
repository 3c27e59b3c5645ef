"""The core's memories: one ``amaranth.lib.memory.Memory`` per (layer, kind), shared by
the engines through prioritised requests, and the single-port weight banks.

An engine reaches a memory through a :class:`MemoryPortSignature` interface (its read
request and data, its write request); :meth:`MemoryPorts.attach` adds it to the memory's
requests. Passes never overlap on a memory port and the host is honoured only while the
core is idle, so the requests never meet; the enables are ORed and the address and data
chosen by the requests' claims with :func:`priority` (docs/architecture.md section 2.2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.controller import ControlSignature
from hw.core.walk import per_layer
from hw.core_config import CoreConfig, MemorySpec

__all__ = ["LayerPorts", "MemoryEngine", "MemoryPortSignature", "MemoryPorts", "Port", "lane_layout", "priority", "shared_port", "weight_banks"]


class MemoryPortSignature(wiring.Signature):
    """An engine's access to one memory (members as the engine drives them): the read
    members unless ``read`` is false, the write members unless ``write`` is false.

    Members
    -------
    read_en : ``Out(1)``, read_addr : ``Out(address_bits)``
        Read request; the word arrives on ``read_data`` in the next cycle and is held
        while no read is issued.
    read_data : ``In(P x lane)``
        The word read.
    write_mask : ``Out(P)``, write_addr : ``Out(address_bits)``, write_data : ``Out(P x lane)``
        Write the lanes of ``write_mask`` (no write when 0).
    """

    def __init__(self, spec: MemorySpec, *, read: bool = True, write: bool = True) -> None:
        layout = lane_layout(spec)
        members = {}
        if read:
            members.update({"read_en": Out(1), "read_addr": Out(spec.address_bits), "read_data": In(layout)})
        if write:
            members.update({
                "write_mask": Out(spec.lanes), "write_addr": Out(spec.address_bits), "write_data": Out(layout),
            })
        super().__init__(members)


class Port:
    """The signals of a memory port that a bank arbiter drives (``addr``, ``en``, ``data``)."""

    def __init__(self, name: str, layout: data.ArrayLayout, address_bits: int, enable_bits: int) -> None:
        self.addr = Signal(address_bits, name=f"{name}_addr")
        self.en = Signal(enable_bits, name=f"{name}_en")
        self.data = Signal(layout, name=f"{name}_data")


def lane_layout(spec: MemorySpec) -> data.ArrayLayout:
    """Word shape of ``spec``: P lanes of its (signed or unsigned) lane format."""
    lane = signed(spec.lane_bits) if spec.signed else unsigned(spec.lane_bits)
    return data.ArrayLayout(lane, spec.lanes)


class LayerPorts:
    """The memory-port lookup of an engine whose ports are members ``<memory><layer>`` in
    lower case (``w1``, ``dvth0``)."""

    def port(self, name: str, layer: int) -> wiring.PureInterface:
        """The memory port of ``name`` on ``layer``."""
        return getattr(self, f"{name.lower()}{layer}")


class MemoryEngine(LayerPorts, wiring.Component):
    """An engine that serves every layer's passes of its kind: the controller's pass in
    (``control``, ``control.done`` out) and one :class:`MemoryPortSignature` port per memory
    it uses, named ``<memory><layer>`` in lower case (``w1``, ``dvth0``).

    A subclass lists its memories (:meth:`memories`) and how it uses each (:meth:`access`)
    and passes its other members to this constructor.
    """

    def __init__(self, config: CoreConfig, members: Mapping[str, wiring.Member] | None = None) -> None:
        self.config = config
        ports = {"control": In(ControlSignature(layers=config.layers, timesteps=config.timesteps))}
        ports.update(members or {})
        for name, layer in self.memories():
            read, write = self.access(name, layer)
            ports[f"{name.lower()}{layer}"] = Out(MemoryPortSignature(config.memory(name, layer), read=read, write=write))
        super().__init__(ports)

    def memories(self) -> list[tuple[str, int]]:
        """``(memory, layer)`` of every memory port, in member order."""
        raise NotImplementedError

    def access(self, name: str, layer: int) -> tuple[bool, bool]:
        """``(read, write)``: whether the engine reads and writes memory ``name`` of ``layer``."""
        return True, True

    def registered(self, m: Module, name: str, ports: Mapping[int, tuple[str, int]], select: Value) -> data.View:
        """The word read from memory ``ports[select]`` (its ``(memory, layer)`` for each value
        of ``select``), selected from the read data and registered: the operand register
        behind the read data, one for the memories the pass's layers share. ``select`` must
        hold the pass's value from the cycle after its first read."""
        specs = [self.config.memory(memory, layer) for memory, layer in ports.values()]
        layout = lane_layout(specs[0])
        if any(lane_layout(spec) != layout for spec in specs):
            raise ValueError(f"{name}: the words of {', '.join(spec.key for spec in specs)} differ in shape")
        words = {key: self.port(memory, layer).read_data.as_value() for key, (memory, layer) in ports.items()}
        out = Signal(layout, name=f"{name}_read")
        m.d.sync += out.eq(per_layer(select, words, layout.size))
        return out


def priority(conditions: Sequence[Value], values: Sequence[Value]) -> Value:
    """``values[i]`` of the first ``conditions[i]`` that holds, else the last value (whose
    condition is not tested): a request chain's choice where no request leaves it free, as
    a balanced tree of selects (``log2`` of the requests deep, not a chain)."""
    if len(values) == 1:
        return Value.cast(values[0])
    half = len(values) // 2
    return Mux(
        Cat(conditions[:half]).any(), priority(conditions[:half], values[:half]), priority(conditions[half:], values[half:])
    )


def shared_port(
    m: Module, config: CoreConfig, name: str, memory: str, select: Value,
    ports: Mapping[int, tuple[int, wiring.PureInterface]],
) -> wiring.PureInterface:
    """One :class:`MemoryPortSignature` port of an engine that serves several layers, onto
    their memories ``memory``: ``ports`` holds each layer's ``(layer, port)`` by the value of
    ``select`` (the running pass's layer) that picks it. Reads and writes reach the selected
    layer's memory only, whose word is the read data; the address is the deepest memory's.
    The port itself for a single layer."""
    if len(ports) == 1:
        return next(iter(ports.values()))[1]
    members = next(iter(ports.values()))[1].signature.members
    read, write = "read_en" in members, "write_mask" in members
    deepest = max((config.memory(memory, layer) for layer, _ in ports.values()), key=lambda spec: spec.depth)
    shared = MemoryPortSignature(deepest, read=read, write=write).create(path=(name,))
    words = {}
    for key, (_, port) in ports.items():
        chosen = select == key
        if read:
            m.d.comb += [port.read_en.eq(shared.read_en & chosen), port.read_addr.eq(shared.read_addr)]
            words[key] = port.read_data.as_value()
        if write:
            m.d.comb += [
                port.write_mask.eq(Mux(chosen, shared.write_mask, 0)), port.write_addr.eq(shared.write_addr),
                port.write_data.eq(shared.write_data),
            ]
    if read:
        m.d.comb += shared.read_data.eq(per_layer(select, words, len(shared.read_data.as_value())))
    return shared


class MemoryPorts:
    """A memory with one read and one write port, each shared by prioritised requests.

    With ``banked`` the memory is logical: its ports are :class:`Port` signals that
    :func:`weight_banks` maps onto the shared single-port banks.
    """

    def __init__(
        self, spec: MemorySpec, init: Sequence[Sequence[int]] | None, *, transparent: bool, banked: bool = False
    ) -> None:
        self.spec = spec
        layout = lane_layout(spec)
        if banked:
            self.memory = None
            self.write = Port(f"{spec.key}_write", layout, spec.address_bits, spec.lanes)
            self.read = Port(f"{spec.key}_read", layout, spec.address_bits, 1)
        else:
            # A memory of one word still gets a one-bit address (an unused second word).
            # Only a V that CoreConfig.v_read_transparent names is read at an address in the
            # cycle it is written (transparent port); the schedule never does for the others,
            # which tells Yosys so (``no_rw_check``:
            # no collision logic around the block RAM).
            self.memory = Memory(
                shape=layout, depth=max(spec.depth, 2), init=init or [],
                attrs=None if transparent else {"no_rw_check": 1},
            )
            self.write = self.memory.write_port(granularity=1)
            self.read = self.memory.read_port(transparent_for=(self.write,) if transparent else ())
        self._reads: list[tuple[Value, Value, Value]] = []  # enable, claim, address
        self._writes: list[tuple[Value, Value, Value, Value, Value]] = []  # enable, claim, address, mask, word

    @property
    def data(self) -> data.View:
        """The read port's data (P lanes), held while no read is issued."""
        return self.read.data

    def request_write(self, condition: Value, address: Value, mask: Value, word: Value) -> None:
        """Write the lanes of ``mask`` of ``word`` when ``condition``."""
        self._writes.append((condition, condition, address, mask, word))

    def attach(
        self, m: Module, port: wiring.PureInterface, *, claim: Value | None = None, ahead: bool = False
    ) -> None:
        """Serve an engine's :class:`MemoryPortSignature` port (its requests, the read data).

        ``claim``: the engine may use the port in this cycle (a decode of its own pass
        registers, early in the cycle); while it holds, the port's address and data are the
        engine's, whether it reads or writes or not, so the engine's enables (late: a
        walker's decisions) reach only the port's enables. Without it, the enables choose.
        ``ahead``: before the requests so far (the host's, registered and honoured while
        the core is idle, when no engine claims)."""
        if "read_en" in port.signature.members:
            request = (port.read_en, port.read_en if claim is None else claim, port.read_addr)
            self._reads.insert(0 if ahead else len(self._reads), request)
            m.d.comb += port.read_data.eq(self.data)
        if "write_mask" in port.signature.members:
            enable = port.write_mask.any()
            request = (enable, enable if claim is None else claim, port.write_addr, port.write_mask, port.write_data.as_value())
            self._writes.insert(0 if ahead else len(self._writes), request)

    def connect(self, m: Module) -> None:
        """Drive the ports from the requests: the enables from the first request whose enable
        holds, the address and data from the first whose claim (else enable) holds, else
        (the port unused, its address and data free) from the last request, which so needs
        no test."""
        read, write = self.read, self.write
        if self._reads:
            enables, claims, addresses = zip(*self._reads)
            m.d.comb += [read.en.eq(Cat(enables).any()), read.addr.eq(priority(claims, addresses))]
        if self._writes:
            enables, claims, addresses, masks, words = zip(*self._writes)
            m.d.comb += [
                write.en.eq(priority(enables, [Mux(enable, mask, 0) for enable, mask in zip(enables, masks)])),
                write.addr.eq(priority(claims, addresses)),
                write.data.as_value().eq(priority(claims, words)),
            ]


def weight_banks(
    m: Module, config: CoreConfig, mems: Mapping[tuple[str, int], MemoryPorts],
    init: Mapping[str, Sequence[Sequence[int]]],
) -> None:
    """Map the logical W and dW memories onto two single-port banks each (even, odd words).

    A bank is one ``Memory`` whose read and write ports share the address (a write wins
    the cycle; the schedule never asks for both, docs/architecture.md section 2.1), so
    Yosys maps it to one iCE40 SPRAM (``ram_style = "huge"``). Layer ``l``'s word ``a``
    sits in bank ``a mod 2`` at ``bank_base(l) + a div 2`` (:meth:`CoreConfig.bank_base
    <hw.core_config.CoreConfig.bank_base>`). A logical read returns the bank its address
    chose, one cycle later.
    """
    for name, depth, _ in config.weight_banks()[::2]:
        kind = name.split("_")[0]
        logical = [(layer, ports) for (memory, layer), ports in mems.items() if memory == kind]
        layout = lane_layout(logical[0][1].spec)
        banks = []
        for parity, suffix in enumerate(("even", "odd")):
            words = [[0] * config.lanes] * depth
            for layer, ports in logical:
                contents = list(init.get(ports.spec.key, []))
                contents += [[0] * config.lanes] * (ports.spec.depth - len(contents))
                base = config.bank_base(kind, layer)
                words[base:base + ports.spec.depth // 2] = contents[parity::2]
            memory = Memory(shape=layout, depth=depth, init=words, attrs={"ram_style": "huge"})
            m.submodules[f"mem_{kind}_{suffix}"] = memory
            write, read = memory.write_port(granularity=1), memory.read_port()
            address = Signal(range(depth), name=f"{kind}_{suffix}_addr")
            writing = Signal(name=f"{kind}_{suffix}_writing")
            reading = Signal(name=f"{kind}_{suffix}_reading")
            # A write's address wins over the reads (the later layer's over the earlier's; the
            # layers' requests never meet).
            writes = [(ports.write.en.any() & (ports.write.addr[0] == parity), layer, ports.write) for layer, ports in logical[::-1]]
            reads = [(ports.read.en & (ports.read.addr[0] == parity), layer, ports.read) for layer, ports in logical[::-1]]
            # Without a write the address is the reading layer's, its bank unasked: the other
            # bank's read leaves this one free.
            requests = writes + [(port.en, layer, port) for _, layer, port in reads]
            m.d.comb += [
                writing.eq(Cat(condition for condition, _, _ in writes).any()),
                reading.eq(Cat(condition for condition, _, _ in reads).any()),
                address.eq(priority(
                    [condition for condition, _, _ in requests],
                    [config.bank_base(kind, layer) + (port.addr >> 1) for _, layer, port in requests],
                )),
                write.en.eq(priority([c for c, _, _ in writes], [Mux(c, port.en, 0) for c, _, port in writes])),
                write.data.eq(priority([c for c, _, _ in writes], [port.data.as_value() for _, _, port in writes])),
                write.addr.eq(address), read.addr.eq(address), read.en.eq(reading & ~writing),
            ]
            banks.append((reading, read.data))
        # The bank of the last read: one pass reads one layer's words at a time, so its
        # layers share it (and an engine's select among them reduces to the same word).
        odd = Signal(name=f"{kind}_read_odd")
        with m.If(banks[0][0] | banks[1][0]):
            m.d.sync += odd.eq(banks[1][0])
        for layer, ports in logical:
            m.d.comb += ports.read.data.eq(Mux(odd, banks[1][1], banks[0][1]))
