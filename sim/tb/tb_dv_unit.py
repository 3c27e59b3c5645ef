"""cocotb bench of ``dv_unit`` (:class:`hw.dv.DvUnit`, the eq. 15 mux).

Configuration (:func:`sim.tb.common.load_config`): ``params`` (``g``, ``w``, ``fan_out``,
``k``, ``shift``), ``seed``, ``cycles`` (random stream length), ``corrupt`` (``null``,
``"model"`` or ``"scoreboard"``). Every cycle is checked against
:func:`model.units.dv_unit_step`; independently, an in-order scoreboard checks each
delivered result against :func:`model.units.dv_unit_result` of the operand accepted for it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import cocotb

from hw.dv import layouts
from model.fixed import mul_shift, reciprocal
from model.units import DvUnitResult
from sim.tb.common import Operand, Phase, load_config
from sim.tb.stream import StreamTB

#: Situations the directed vectors must reach.
COVERAGE = (
    "acc max", "acc min", "acc zero", "r of vth 1", "r 0", "r max", "saturate up",
    "saturate down", "exact", "floor of a negative product", "carry", "carry max", "carry min",
)


def _operand(acc: int, r: int, window: bool = True, dv_next: int = 0) -> Operand:
    return {"acc": acc, "r": r, "window": window, "dv_next": dv_next}


class DvUnitTB(StreamTB):
    """The dV unit's bench."""

    UNIT = "dv_unit"
    LAYOUTS = staticmethod(layouts)
    CORRUPT = "dv"
    COVERAGE = COVERAGE

    def __init__(self, dut: Any, config: dict[str, Any]) -> None:
        super().__init__(dut, config)
        p = self.unit
        self.acc_max, self.acc_min = (1 << (p.acc_bits - 1)) - 1, -(1 << (p.acc_bits - 1))
        self.g_max, self.g_min = (1 << (p.g - 1)) - 1, -(1 << (p.g - 1))
        self.r_max = (1 << (p.k + 1)) - 1

    def cover(self, operand: Operand, expected: DvUnitResult) -> None:
        acc, r, c = operand["acc"], operand["r"], self.coverage
        if not operand["window"]:
            c["carry"] += 1
            c["carry max"] += operand["dv_next"] == self.g_max
            c["carry min"] += operand["dv_next"] == self.g_min
            return
        scaled = mul_shift(acc, r, self.unit.shift)
        c["acc max"] += acc == self.acc_max
        c["acc min"] += acc == self.acc_min
        c["acc zero"] += acc == 0
        c["r of vth 1"] += r == 1 << self.unit.k
        c["r 0"] += r == 0
        c["r max"] += r == self.r_max
        c["saturate up"] += scaled > self.g_max
        c["saturate down"] += scaled < self.g_min
        c["exact"] += self.g_min < scaled < self.g_max and scaled != 0
        c["floor of a negative product"] += acc * r < 0 and (acc * r) % (1 << self.unit.shift) != 0

    def reciprocals(self) -> list[int]:
        """R of Vth = 1 (2^K), 2, 3, 7, the largest 15-bit threshold, plus 0 and all ones."""
        k = self.unit.k
        return [reciprocal(vth, k) for vth in (1, 2, 3, 7, (1 << 15) - 1)] + [0, self.r_max]

    def edges(self) -> list[Operand]:
        """Extreme sums times every reciprocal edge, then the temporal carry."""
        shift = self.unit.shift
        sums = [self.acc_max, self.acc_min, 0, 1, -1, 1 << shift, -(1 << shift) - 1,
                self.g_max << shift, (self.g_max + 1) << shift, self.g_min << shift,
                (self.g_min << shift) - 1]
        operands = [
            _operand(acc, r, True, self.g_max)
            for acc in sums if self.acc_min <= acc <= self.acc_max
            for r in self.reciprocals()
        ]
        operands += [
            _operand(acc, r, False, dv)
            for acc, r in ((self.acc_max, self.r_max), (self.acc_min, 1 << self.unit.k), (0, 0))
            for dv in (self.g_max, self.g_min, 0, -1)
        ]
        return operands

    def directed_table(self) -> list[Phase]:
        return [
            Phase("extreme sums x reciprocal edges; carries", self.edges()),
            Phase("the same under backpressure", self.edges(), "always", "burst"),
            Phase("the same with idle gaps", self.edges()[::3], "sparse", "random"),
        ]

    def random_operands(self, rng: random.Random) -> Iterator[Operand]:
        p = self.unit
        while True:
            kind = rng.random()
            if kind < 0.4:  # sums that land near the g-bit range after the multiply
                r = reciprocal(rng.randint(1, (1 << 15) - 1), p.k)
                target = rng.randint(2 * self.g_min, 2 * self.g_max) << p.shift
                acc = max(self.acc_min, min(self.acc_max, target // max(r, 1)))
            elif kind < 0.6:
                acc = rng.choice((self.acc_max, self.acc_min, 0, rng.randint(-3, 3)))
                r = rng.choice((0, 1 << p.k, self.r_max, rng.randint(0, self.r_max)))
            else:
                acc = rng.randint(self.acc_min, self.acc_max)
                r = rng.randint(0, self.r_max)
            yield _operand(acc, r, rng.random() < 0.7, rng.randint(self.g_min, self.g_max))


@cocotb.test()
async def directed(dut: Any) -> None:
    """Directed vectors: extreme sums and reciprocals, saturation both ways, carries."""
    await DvUnitTB(dut, load_config()).test("directed")


@cocotb.test()
async def random_stream(dut: Any) -> None:
    """Seeded random operands with idle and backpressure patterns (``cycles`` cycles)."""
    await DvUnitTB(dut, load_config()).test("random_stream")
