"""The memory requests' select and the controller's upcoming pass, against plain Python."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Const, Module, Signal
from amaranth.sim import Simulator

from hw.controller import Controller
from hw.core.memory import priority


@pytest.mark.parametrize("requests", [1, 2, 3, 4, 5, 7])
def test_priority_is_the_first_request_that_holds(requests: int) -> None:
    conditions = Signal(requests)
    values = [Const(11 * x + 3, 8) for x in range(requests)]
    chosen = Signal(8)
    m = Module()
    m.d.comb += chosen.eq(priority([conditions[x] for x in range(requests)], values))
    seen = []

    async def bench(ctx) -> None:
        for word in range(1 << requests):
            ctx.set(conditions, word)
            seen.append((word, ctx.get(chosen)))

    simulator = Simulator(m)
    simulator.add_testbench(bench)
    simulator.run()
    for word, got in seen:
        first = (word & -word).bit_length() - 1 if word else requests - 1  # none: the last, untested
        assert got == 11 * first + 3, f"conditions {word:0{requests}b}"


@pytest.mark.parametrize("fc_decoder", [False, True])
def test_controller_upcoming_is_the_next_cycle_of_its_registers(fc_decoder: bool) -> None:
    """Through learning samples with passes ending at random cycles (seeded), every cycle's
    ``upcoming`` equals the pass registers of the cycle after."""
    dut = Controller(
        layers=2, timesteps=3, input_words=2, batch=2, learnable=True, trainable=True, fc_decoder=fc_decoder,
    )
    rng = random.Random(1701)
    cycles, kinds = [], set()

    async def bench(ctx) -> None:
        ctx.set(dut.output_ready, 1)
        ctx.set(dut.input_learn, 1)
        ctx.set(dut.input_valid, 1)
        for _ in range(3000):
            ctx.set(dut.control.done, rng.random() < 0.3)
            upcoming = ctx.get(dut.upcoming)
            await ctx.tick()
            control = dut.control
            now = (ctx.get(control.kind), ctx.get(control.layer), ctx.get(control.t), ctx.get(control.first))
            cycles.append(((upcoming.kind, upcoming.layer, upcoming.t, upcoming.first), now))
            kinds.add(now[0])

    simulator = Simulator(dut)
    simulator.add_clock(1e-6)
    simulator.add_testbench(bench)
    simulator.run()
    assert len(kinds) >= (12 if fc_decoder else 9), kinds  # every pass kind and IDLE were seen
    for cycle, (upcoming, now) in enumerate(cycles):
        assert upcoming == now, f"cycle {cycle}: upcoming {upcoming}, registers {now}"
