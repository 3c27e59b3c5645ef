"""cocotb bench of ``dot_product_lane`` (:class:`hw.dot_product.DotProductLane`).

Configuration (:func:`sim.tb.common.load_config`): ``params`` (``lanes``, ``g``, ``w``,
``fan_out``), ``seed``, ``cycles`` (random stream length), ``corrupt`` (``null``,
``"model"`` or ``"scoreboard"``). Every cycle is checked against
:func:`model.units.dot_product_lane_step`; independently, an in-order scoreboard checks each
delivered sum against the bench's own running total of the words accepted since the
previous ``last`` (:func:`model.units.dot_product_lane_word` per word). Sums follow the
core's layout: at most ``ceil(fan_out / P)`` words, padding lanes past ``fan_out`` carry
zero weights.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import cocotb

from hw.dot_product import layouts
from model.units import DotProductLaneInputs, DotProductLaneResult, dot_product_lane_word
from sim.tb.common import Operand, Phase, load_config
from sim.tb.stream import StreamTB

#: Situations the directed vectors must reach.
COVERAGE = (
    "sum max", "sum min", "sum zero", "one word", "full length", "padding lanes",
    "back to back sums",
)  # "padding lanes" only where fan_out is not a multiple of P


class DotProductLaneTB(StreamTB):
    """The dot-product lane's bench."""

    UNIT = "dot_product_lane"
    LAYOUTS = staticmethod(layouts)
    CORRUPT = "sum"
    COVERAGE = COVERAGE

    def __init__(self, dut: Any, config: dict[str, Any]) -> None:
        super().__init__(dut, config)
        p = self.unit
        self.w_max, self.w_min = (1 << (p.w - 1)) - 1, -(1 << (p.w - 1))
        self.g_max, self.g_min = (1 << (p.g - 1)) - 1, -(1 << (p.g - 1))
        products = [a * b for a in (self.w_max, self.w_min) for b in (self.g_max, self.g_min)]
        self.sum_max, self.sum_min = p.fan_out * max(products), p.fan_out * min(products)
        self.total = 0  # running sum of the accepted words of the current sum
        self.words = 0  # words accepted of the current sum
        self.last_cycle = -2  # cycle of the last accepted ``last`` word
        if p.fan_out % p.lanes == 0:  # no padding lanes to reach
            self.COVERAGE = tuple(point for point in COVERAGE if point != "padding lanes")

    def reference(
        self, operand: Operand, inputs: DotProductLaneInputs
    ) -> DotProductLaneResult | None:
        self.total += dot_product_lane_word(self.unit, operand["weights"], operand["grads"])
        self.words += 1
        if not operand["last"]:
            return None
        return DotProductLaneResult(self.total)

    def cover(self, operand: Operand, expected: DotProductLaneResult | None) -> None:
        c = self.coverage
        c["padding lanes"] += self.words == self.unit.words
        if expected is None:
            return
        c["sum max"] += expected.sum == self.sum_max
        c["sum min"] += expected.sum == self.sum_min
        c["sum zero"] += expected.sum == 0
        c["one word"] += self.words == 1
        c["full length"] += self.words == self.unit.words
        c["back to back sums"] += self.words == 1 and self.last_cycle == self.cycles - 1
        self.last_cycle = self.cycles
        self.total = self.words = 0

    def word(self, index: int, weights: list[int], grads: list[int], last: bool) -> Operand:
        """Word ``index`` of a sum, with the padding lanes (past ``fan_out``) zeroed."""
        p = self.unit
        live = [index * p.lanes + j < p.fan_out for j in range(p.lanes)]
        return {
            "weights": tuple(a if on else 0 for a, on in zip(weights, live)),
            "grads": tuple(grads),
            "last": last,
        }

    def constant_sum(self, weight: int, grad: int, words: int) -> list[Operand]:
        p = self.unit
        return [
            self.word(n, [weight] * p.lanes, [grad] * p.lanes, n == words - 1)
            for n in range(words)
        ]

    def extremes(self) -> list[Operand]:
        """Full-length sums at the extreme width (both signs), zero sums, one-word sums."""
        p = self.unit
        full = p.words
        pairs = [(a, b) for a in (self.w_max, self.w_min) for b in (self.g_max, self.g_min)]
        operands = []
        for a, b in pairs:
            operands += self.constant_sum(a, b, full)
        operands += self.constant_sum(0, self.g_min, full)
        operands += self.constant_sum(self.w_min, 0, 1)
        for a, b in pairs:
            operands += self.constant_sum(a, b, 1)
        ramp = [self.word(0, [j - p.lanes // 2 for j in range(p.lanes)], [1] * p.lanes, False),
                self.word(1 % full, [1] * p.lanes, [-1] * p.lanes, True)]
        return operands + ramp

    def directed_table(self) -> list[Phase]:
        return [
            Phase("sums at the extreme width, back to back", self.extremes()),
            Phase("the same under backpressure", self.extremes(), "always", "alternate"),
            Phase("the same with idle gaps", self.extremes(), "burst", "dense"),
        ]

    def random_operands(self, rng: random.Random) -> Iterator[Operand]:
        p = self.unit
        while True:
            short = rng.randint(1, min(4, p.words))
            words = rng.choice((1, short, short, short, rng.randint(1, p.words), p.words))
            extreme = rng.random() < 0.2
            for n in range(words):
                if extreme:
                    weights = [rng.choice((self.w_max, self.w_min)) for _ in range(p.lanes)]
                    grads = [rng.choice((self.g_max, self.g_min)) for _ in range(p.lanes)]
                else:
                    weights = [rng.randint(self.w_min, self.w_max) for _ in range(p.lanes)]
                    grads = [rng.randint(self.g_min, self.g_max) for _ in range(p.lanes)]
                yield self.word(n, weights, grads, n == words - 1)


@cocotb.test()
async def directed(dut: Any) -> None:
    """Directed sums: the extreme width both ways, zero, one word, full length, padding."""
    await DotProductLaneTB(dut, load_config()).test("directed")


@cocotb.test()
async def random_stream(dut: Any) -> None:
    """Seeded random sums with idle and backpressure patterns (``cycles`` cycles)."""
    await DotProductLaneTB(dut, load_config()).test("random_stream")
