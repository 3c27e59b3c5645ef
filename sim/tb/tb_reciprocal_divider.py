"""cocotb bench of ``reciprocal_divider`` (:class:`hw.reciprocal.ReciprocalDivider`).

Configuration (:func:`sim.tb.common.load_config`): ``params`` (``threshold_bits``, ``k``),
``seed``, ``cycles`` (random stream length), ``corrupt`` (``null``, ``"model"`` or
``"scoreboard"``: perturb the step function or the transaction scoreboard).
Every cycle is checked against :func:`model.units.reciprocal_divider_step`; independently,
an in-order scoreboard checks each delivered result against ``floor(2^K / Vth)``
(:func:`model.units.reciprocal_divider_result`) of the operand accepted for it.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import cocotb

from model.units import (
    ReciprocalDividerInputs,
    reciprocal_divider_reset,
    reciprocal_divider_result,
    reciprocal_divider_step,
)
from sim.tb.common import CycleTB, load_config, pattern, phases, seeded

#: Situations the directed vectors must reach (checked at the end of ``directed``);
#: "result 0 or 1" only where a threshold above 2^(K-1) fits ``threshold_bits``.
COVERAGE = ("vth 1", "vth max", "vth 0", "result held", "operand held", "result 0 or 1")

#: Directed phases: (label, operand set name, producer, consumer).
DIRECTED = (
    ("contract edges back to back", "edges", "always", "always"),
    ("results held under backpressure", "edges", "always", "burst"),
    ("K edges with idle gaps", "k_edges", "sparse", "alternate"),
    ("vth = 0 (outside the contract: all ones)", "zero", "always", "always"),
)


def directed_operands(threshold_bits: int, k: int) -> dict[str, list[int]]:
    """Operand sets: contract edges (1, 2, 3, max, mid-range) and K edges (2^K +- 1 etc.)."""
    top = (1 << threshold_bits) - 1
    edges = [1, 2, 3, top, top - 1, 1 << (threshold_bits - 1), (1 << (threshold_bits - 1)) + 1]
    k_edges = [(1 << k) + offset for offset in (-1, 0, 1)] + [(1 << (k - 1)) + 1, 1 << (k // 2)]
    return {
        "edges": edges,
        "k_edges": [value for value in k_edges if 1 <= value <= top],
        "zero": [0],
    }


def random_operands(rng: random.Random, threshold_bits: int, k: int) -> Iterator[int]:
    """Uniform thresholds, small ones, and powers of two +-1 (within the contract's 1..max)."""
    top = (1 << threshold_bits) - 1
    while True:
        kind = rng.random()
        if kind < 0.5:
            yield rng.randint(1, top)
        elif kind < 0.75:
            yield rng.randint(1, min(top, 64))
        else:
            power = 1 << rng.randint(0, threshold_bits - 1)
            yield min(max(power + rng.choice((-1, 0, 1)), 1), top)


class ReciprocalDividerTB(CycleTB):
    """Drivers, monitors, model and scoreboards of the reciprocal divider."""

    INPUTS = {"vth_valid": "vth__valid", "vth": "vth__payload", "result_ready": "result__ready"}
    OUTPUTS = {
        "vth_ready": "vth__ready",
        "busy": "busy",
        "result_valid": "result__valid",
        "result": "result__payload",
    }
    QUALIFIERS = {"result": "result_valid"}
    CORRUPT = "result"

    def __init__(self, dut: Any, config: Mapping[str, Any]) -> None:
        params = config["params"]
        super().__init__(
            dut,
            reciprocal_divider_step,
            reciprocal_divider_reset(**params),
            ReciprocalDividerInputs,
            corrupt=config.get("corrupt"),
        )
        self.config = config
        self.threshold_bits = int(params["threshold_bits"])
        self.k = int(params["k"])
        self.results = self.scoreboard("results")
        self.offered: int | None = None
        self.accepted = 0
        self.coverage: Counter[str] = Counter()

    async def drive(
        self,
        cycles: int,
        producer: Iterator[bool],
        consumer: Iterator[bool],
        operands: Iterator[int],
    ) -> None:
        """Run ``cycles`` cycles; an offered operand stays on the stream until accepted."""
        for _ in range(cycles):
            if self.offered is None and next(producer):
                self.offered = next(operands, None)
            inputs = ReciprocalDividerInputs(
                vth_valid=self.offered is not None,
                vth=self.offered or 0,
                result_ready=next(consumer),
            )
            out = await self.cycle(inputs)
            self.monitor(inputs, out)

    def monitor(self, inputs: ReciprocalDividerInputs, out: Mapping[str, Any]) -> None:
        """Transaction monitor and coverage, from the DUT's handshakes."""
        if inputs.vth_valid and out["vth_ready"] == 1:
            vth = inputs.vth
            self.results.expect(reciprocal_divider_result(vth, self.k))
            self.coverage["vth 1"] += vth == 1
            self.coverage["vth max"] += vth == (1 << self.threshold_bits) - 1
            self.coverage["vth 0"] += vth == 0
            self.offered = None
            self.accepted += 1
        self.coverage["operand held"] += inputs.vth_valid and out["vth_ready"] == 0
        if out["result_valid"] == 1:
            if inputs.result_ready:
                self.results.observe(out["result"], f"at cycle {self.cycles - 1}")
                self.coverage["result 0 or 1"] += out["result"] in (0, 1)
            else:
                self.coverage["result held"] += 1

    async def drain(self) -> None:
        """Deliver the outstanding operand and result (bounded)."""
        never, always = itertools.repeat(False), itertools.repeat(True)
        for _ in range(2 * self.k + 8):
            if self.offered is None and not self.results.expected:
                break
            await self.drive(1, never, always, iter(()))
        await self.drive(2, never, always, iter(()))

    async def run_directed(self) -> None:
        """The :data:`DIRECTED` table, then a check that every :data:`COVERAGE` point was hit."""
        operands = directed_operands(self.threshold_bits, self.k)
        rng = random.Random(0)
        for label, name, producer, consumer in DIRECTED:
            self.log.info("directed: %s %s", label, operands[name])
            values = operands[name]
            start = self.accepted
            producing = pattern(producer, rng)
            consuming = pattern(consumer, rng)
            supply = iter(values)
            for _ in range(len(values) * 4 * (self.k + 4)):
                if self.accepted - start == len(values) and not self.results.expected:
                    break
                await self.drive(1, producing, consuming, supply)
            else:
                self.mismatches.error(f"directed: {label}: results did not come back in time")
        reachable = COVERAGE if self.threshold_bits >= self.k else COVERAGE[:-1]
        missed = [point for point in reachable if not self.coverage[point]]
        if missed:
            self.mismatches.error(f"directed vectors did not reach: {', '.join(missed)}")

    async def run_random(self, rng: random.Random, cycles: int) -> None:
        """Seeded random operands under every producer x consumer pattern pair."""
        operands = random_operands(rng, self.threshold_bits, self.k)
        for length, producer, consumer in phases(rng, cycles):
            await self.drive(length, producer, consumer, operands)


@cocotb.test()
async def directed(dut: Any) -> None:
    """Directed operands: Vth = 1, max, mid-range, K edges, 0; backpressure and idle gaps."""
    config = load_config()
    tb = ReciprocalDividerTB(dut, config)
    await tb.start()
    await tb.run_directed()
    await tb.drain()
    tb.finish(config, "directed", tb.results)


@cocotb.test()
async def random_stream(dut: Any) -> None:
    """Seeded random operands with idle and backpressure patterns (``cycles`` cycles)."""
    config = load_config()
    tb = ReciprocalDividerTB(dut, config)
    await tb.start()
    await tb.run_random(seeded(config, "random_stream"), int(config["cycles"]))
    await tb.drain()
    tb.finish(config, "random_stream", tb.results)
