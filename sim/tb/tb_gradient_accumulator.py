"""cocotb bench of ``gradient_accumulator`` (:class:`hw.accumulator.GradientAccumulator`).

Configuration (:func:`sim.tb.common.load_config`): ``params`` (``lanes``, ``g``, ``dw``,
``dth``), ``seed``, ``cycles`` (random stream length), ``corrupt`` (``null``, ``"model"``
or ``"scoreboard"``). Every cycle is checked against
:func:`model.units.gradient_accumulator_step`; independently, an in-order scoreboard checks
each delivered word against :func:`model.units.gradient_accumulator_result` of the word
accepted for it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import cocotb

from hw.accumulator import layouts
from model.units import AccumulateOp, GradientAccumulatorResult
from sim.tb.common import Operand, Phase, load_config
from sim.tb.stream import StreamTB

#: Situations the directed vectors must reach (per op: "dw ..." and "dvth ...").
COVERAGE = tuple(
    f"{op} {point}"
    for op in ("dw", "dvth")
    for point in ("saturate up", "saturate down", "at max", "at min", "exact", "lane off",
                  "all lanes", "no lanes")
)


class GradientAccumulatorTB(StreamTB):
    """The gradient accumulator's bench."""

    UNIT = "gradient_accumulator"
    LAYOUTS = staticmethod(layouts)
    CORRUPT = "acc"
    COVERAGE = COVERAGE

    def __init__(self, dut: Any, config: dict[str, Any]) -> None:
        super().__init__(dut, config)
        p = self.unit
        self.g_max, self.g_min = (1 << (p.g - 1)) - 1, -(1 << (p.g - 1))
        self.all_lanes = (1 << p.lanes) - 1

    def limits(self, op: AccumulateOp) -> tuple[int, int]:
        """The op's accumulator range: dw bits for dW, dth bits for dVth."""
        bits = self.unit.dw if op == AccumulateOp.DW else self.unit.dth
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def cover(self, operand: Operand, expected: GradientAccumulatorResult) -> None:
        op = AccumulateOp(operand["op"])
        low, high = self.limits(op)
        name, mask, c = op.name.lower(), operand["mask"], self.coverage
        c[f"{name} all lanes"] += mask == self.all_lanes
        c[f"{name} no lanes"] += mask == 0
        c[f"{name} lane off"] += 0 < mask < self.all_lanes
        sign = 1 if op == AccumulateOp.DW else -1
        for j, (acc, dv) in enumerate(zip(operand["acc"], operand["dv"])):
            if not mask >> j & 1:
                continue
            exact = acc + sign * dv
            c[f"{name} saturate up"] += exact > high
            c[f"{name} saturate down"] += exact < low
            c[f"{name} at max"] += exact == high
            c[f"{name} at min"] += exact == low
            c[f"{name} exact"] += low < exact < high

    def edges(self) -> list[Operand]:
        """Accumulators at and next to both limits of each op, with extreme dV, all masks."""
        p = self.unit
        operands = []
        for op in AccumulateOp:
            low, high = self.limits(op)
            # one dV step from a limit (within the accumulator when dV is the wider)
            accs = [high, high - 1, low, low + 1, 0, max(high - self.g_max, low), min(low - self.g_min, high)]
            dvs = [self.g_max, self.g_min, 1, -1, 0, self.g_max, self.g_min]
            for mask in (self.all_lanes, 0, 0b0101 & self.all_lanes, 1 << (p.lanes - 1)):
                for shift in range(len(accs)):
                    acc = tuple(accs[(j + shift) % len(accs)] for j in range(p.lanes))
                    dv = tuple(dvs[(j + 2 * shift) % len(dvs)] for j in range(p.lanes))
                    operands.append({"op": op, "mask": mask, "acc": acc, "dv": dv})
            toward = 1 if op == AccumulateOp.DW else -1  # the dV sign that raises acc
            for acc, dv in ((high - 1, toward), (low + 1, -toward)):  # land exactly on a limit
                operands.append(
                    {"op": op, "mask": self.all_lanes, "acc": (acc,) * p.lanes, "dv": (dv,) * p.lanes}
                )
        return operands

    def directed_table(self) -> list[Phase]:
        return [
            Phase("limits of dW and dVth with extreme dV, every mask", self.edges()),
            Phase("the same under backpressure", self.edges(), "always", "burst"),
            Phase("the same with idle gaps", self.edges()[::2], "alternate", "random"),
        ]

    def random_operands(self, rng: random.Random) -> Iterator[Operand]:
        p = self.unit
        while True:
            op = AccumulateOp(rng.randrange(2))
            low, high = self.limits(op)
            near = rng.random() < 0.5  # accumulators within reach of a limit
            reach = min(self.g_max, high - low)
            acc = tuple(
                rng.choice((high - rng.randint(0, reach), low + rng.randint(0, reach)))
                if near else rng.randint(low, high)
                for _ in range(p.lanes)
            )
            dv = tuple(rng.randint(self.g_min, self.g_max) for _ in range(p.lanes))
            mask = rng.choice((self.all_lanes, rng.randrange(1 << p.lanes)))
            yield {"op": op, "mask": mask, "acc": acc, "dv": dv}


@cocotb.test()
async def directed(dut: Any) -> None:
    """Directed words: both limits of dW and dVth, saturation both ways, every mask."""
    await GradientAccumulatorTB(dut, load_config()).test("directed")


@cocotb.test()
async def random_stream(dut: Any) -> None:
    """Seeded random words with idle and backpressure patterns (``cycles`` cycles)."""
    await GradientAccumulatorTB(dut, load_config()).test("random_stream")
