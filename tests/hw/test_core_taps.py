"""The conv address patterns of the RTL against the core model's (model/core_layout.py),
under amaranth.sim: the tap generator's words of every input event and the scan's
block-major word sequence (the co-simulation checks them in context:
tests/cosim/test_core_conv_cosim.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.core.grid import GridCursor
from hw.core.taps import TapAddress
from hw.core_config import CoreConfig
from model.core_layout import CoreLayout
from model.integer import IntegerNetwork
from model.spec import NetworkSpec

#: A non-square image, P dividing neither channel count (conv after conv, conv after a pool).
SPEC = NetworkSpec.parse("3C3-5C3-AP2-3C3-4FC", input_shape=(2, 4, 6), timesteps=1)
LANES = 2


def _setup() -> tuple[CoreConfig, CoreLayout]:
    net = IntegerNetwork.scratch(SPEC, seed=1)
    return CoreConfig.from_network(net, lanes=LANES, queue_depth=2), CoreLayout(SPEC, LANES, net.synapses)


def test_tap_words_equal_the_model_event_words() -> None:
    config, layout = _setup()
    for layer in (1, 2, 3):  # the core's conv layers: after the encoder, a conv and a pool
        number = config.number(layer)
        unit = TapAddress(config, layer)
        channels, (_, height, width) = config.shape(layer - 1)[0], config.shape(layer)
        cw = config.row_words(layer)
        events = layout.event_words(number)
        got: list[list[tuple[int, int]]] = []

        async def bench(ctx: Any) -> None:
            for m in range(len(events)):
                c, pos = divmod(m, height * width)
                y, x = divmod(pos, width)
                ctx.set(unit.event.w_base, 9 * c * cw)
                ctx.set(unit.event.v_base, pos * cw)
                ctx.set(unit.event.y, y)
                ctx.set(unit.event.x, x)
                ctx.set(unit.taps, 0)
                taps = ctx.get(unit.inside)
                words = []
                while taps:
                    ctx.set(unit.taps, taps)
                    for word in range(cw):
                        ctx.set(unit.word, word)
                        words.append((ctx.get(unit.w_addr), ctx.get(unit.v_addr)))
                    taps &= ~ctx.get(unit.one_hot)
                got.append(words)

        sim = Simulator(unit)
        sim.add_testbench(bench)
        sim.run()
        assert len(events) == channels * height * width
        for m, event in enumerate(events):
            assert got[m] == list(zip(event.w_words.tolist(), event.v_words.tolist())), (layer, m)


def test_grid_scan_order_equals_the_model() -> None:
    config, layout = _setup()
    for layer in range(config.layers):
        m = Module()
        step, first = Signal(), Signal()
        cursor = GridCursor(m, config, layer, name="scan", step=step, first=first)
        words = config.words[layer]
        got = []

        async def bench(ctx: Any) -> None:
            for k in range(words):
                ctx.set(first, k == 0)
                ctx.set(step, 1)
                got.append(ctx.get(cursor.address))
                await ctx.tick()

        sim = Simulator(m)
        sim.add_clock(1e-6)
        sim.add_testbench(bench)
        sim.run()
        assert got == layout.layers[config.number(layer)].scan_order.tolist(), layer
        assert np.array_equal(np.sort(got), np.arange(words))
