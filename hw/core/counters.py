"""The performance counters (docs/architecture.md section 7): one 32-bit register per counter
of :attr:`CoreConfig.counters <hw.core_config.CoreConfig.counters>`, read through the
counter port."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.core.host import HOST_READ_LATENCY
from hw.core_config import COUNTER_BITS, CoreConfig

__all__ = ["PerformanceCounters"]


class PerformanceCounters(wiring.Component):
    """Counters that restart with each sample; each adds its increment of a cycle one cycle
    later (the increment is registered), before the sample's result can be read.

    Members
    -------
    start : ``In(1)``
        The cycle before a sample's first: every counter restarts at 0.
    increments : ``In(ArrayLayout(32, len(counters)))``
        This cycle's increment of every counter (queue high-water counters: ignored).
    high_water : ``In(ArrayLayout(32, len(counters)))``
        The value of every queue high-water counter (the queue's own register).
    select : ``In(range(len(counters)))``, value : ``Out(32)``
        Counter ``select``, ``HOST_READ_LATENCY`` cycles later.
    """

    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        count = len(config.counters)
        super().__init__({
            "start": In(1),
            "increments": In(data.ArrayLayout(COUNTER_BITS, count)),
            "high_water": In(data.ArrayLayout(COUNTER_BITS, count)),
            "select": In(range(count)),
            "value": Out(COUNTER_BITS),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        values = []
        for number, spec in enumerate(self.config.counters):
            if spec.item == "queue_high_water":
                values.append(self.high_water[number])
                continue
            name = spec.name.replace(".", "_")
            register = Signal(COUNTER_BITS, name=name)
            increment = Signal(COUNTER_BITS, name=f"{name}_increment")
            m.d.sync += increment.eq(self.increments[number])
            with m.If(self.start):
                m.d.sync += register.eq(0)
            with m.Else():
                m.d.sync += register.eq(register + increment)
            values.append(register)
        # HOST_READ_LATENCY: the select registered in every cycle but the last, then the
        # selected counter.
        selected = self.select
        for n in range(HOST_READ_LATENCY - 1):
            delayed = Signal.like(self.select, name=f"selected{n}")
            m.d.sync += delayed.eq(selected)
            selected = delayed
        m.d.sync += self.value.eq(Array(values)[selected])
        return m
