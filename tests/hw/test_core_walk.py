"""The walk helpers' selection logic against plain Python, exhaustively over small widths."""

from __future__ import annotations

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.core.walk import lowest, one_hot_select


@pytest.mark.parametrize("lanes", [1, 2, 3, 8, 9])
def test_lowest_and_one_hot_select(lanes: int) -> None:
    bits = Signal(lanes)
    index, one_hot = lowest(bits, lanes)
    values = [37 * x + 5 for x in range(lanes)]
    m = Module()
    got_index, got_one_hot, got_value = Signal(len(index)), Signal(lanes), Signal(8)
    m.d.comb += [got_index.eq(index), got_one_hot.eq(one_hot), got_value.eq(one_hot_select(values, one_hot, 8))]
    seen = []

    async def bench(ctx) -> None:
        for word in range(1 << lanes):
            ctx.set(bits, word)
            seen.append((word, ctx.get(got_index), ctx.get(got_one_hot), ctx.get(got_value)))

    simulator = Simulator(m)
    simulator.add_testbench(bench)
    simulator.run()
    for word, got_i, got_h, got_v in seen:
        low = (word & -word).bit_length() - 1
        assert (got_i, got_h, got_v) == ((low, 1 << low, values[low] % 256) if word else (0, 0, 0)), word
