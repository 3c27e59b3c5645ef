"""The core's stream ports under amaranth.sim: input stalls, output backpressure, host port.

The co-simulation (tests/cosim/test_core_cosim.py) feeds the core through the harness's
FIFOs, so a stalled result never reaches the core's own ``result.ready`` there; this test
drives the core directly.
"""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from hw.core import HOST_READ_LATENCY, Core
from hw.core_config import CoreConfig
from model.core import CoreModel
from model.integer import IntegerNetwork, LearningRule
from model.spec import NetworkSpec


def _setup() -> tuple[IntegerNetwork, CoreConfig, Core]:
    spec = NetworkSpec.parse("3FC-4FC", input_shape=(5,), timesteps=2, population=2)
    scratch = IntegerNetwork.scratch(spec, seed=2)
    thresholds = [np.arange(1, spec.neurons(i) + 1) * 23 + 40 for i in range(spec.num_layers + 1)]
    net = IntegerNetwork(spec, scratch.formats, scratch.weights, thresholds, rule=LearningRule(batch=1))
    config = CoreConfig.from_network(net, lanes=2, queue_depth=3)
    return net, config, Core(config, init=config.initial_contents(net))


def test_streams_stall_and_hold_the_result() -> None:
    net, config, core = _setup()
    pixels = np.array([255, 0, 200, 90, 255])
    expected = CoreModel(net, lanes=2, queue_depth=3).infer(pixels)
    words = [pixels[k * 2 : k * 2 + 2].tolist() + [0] * (2 - len(pixels[k * 2 : k * 2 + 2])) for k in range(3)]
    seen: dict[str, object] = {}

    async def bench(ctx) -> None:
        # Input words with a gap between them; the label and learn flag of the last apply.
        for number, word in enumerate(words):
            ctx.set(core.pixels.valid, 0)
            await ctx.tick().repeat(2)
            ctx.set(core.pixels.valid, 1)
            ctx.set(core.pixels.payload.pixels, word)
            ctx.set(core.pixels.payload.learn, 0)
            assert ctx.get(core.pixels.ready) == 1, number
            await ctx.tick()
        ctx.set(core.pixels.valid, 0)
        cycles = 0
        while not ctx.get(core.result.valid):
            await ctx.tick()
            cycles += 1
            assert cycles < 500, "no result"
        seen["cycles"] = cycles
        payload = ctx.get(core.result.payload)
        # Backpressure: the result stays offered and unchanged, no new input is accepted.
        ctx.set(core.pixels.valid, 1)
        for _ in range(10):
            await ctx.tick()
            assert ctx.get(core.result.valid) == 1
            assert ctx.get(core.result.payload) == payload
            assert ctx.get(core.pixels.ready) == 0 and ctx.get(core.busy) == 0
        ctx.set(core.pixels.valid, 0)
        seen["prediction"] = int(payload.prediction)
        seen["counts"] = [int(c) for c in payload.counts]
        ctx.set(core.result.ready, 1)
        await ctx.tick()
        ctx.set(core.result.ready, 0)
        assert ctx.get(core.result.valid) == 0 and ctx.get(core.pixels.ready) == 1
        # Host port: read back a threshold word (registered request, HOST_READ_LATENCY).
        ctx.set(core.host.addr, config.host_address("VTH1", 1))
        ctx.set(core.host.re, 1)
        await ctx.tick()
        ctx.set(core.host.re, 0)
        await ctx.tick().repeat(HOST_READ_LATENCY - 1)
        seen["vth"] = config.memory("VTH", 1).unpack(ctx.get(core.host.rdata))

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen["prediction"] == expected.prediction
    assert seen["counts"] == expected.counts.tolist()
    assert seen["vth"] == (int(net.thresholds[1][2]), 0)  # neuron 2, then a padding lane
    assert seen["cycles"] >= sum(expected.cycles.values())
