"""cocotb bench of ``neuron_lane`` (:class:`hw.neuron.NeuronLane`).

Configuration (:func:`sim.tb.common.load_config`): ``params`` (``w``, ``v``), ``seed``,
``cycles`` (random stream length), ``corrupt`` (``null``, ``"model"`` or ``"scoreboard"``).
Every cycle is checked against :func:`model.units.neuron_lane_step`; independently, an
in-order scoreboard checks each delivered result against
:func:`model.units.neuron_lane_result` of the operand accepted for it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import cocotb

from hw.neuron import layouts
from model.units import NeuronLaneResult, NeuronOp
from sim.tb.common import Operand, Phase, load_config
from sim.tb.stream import StreamTB

#: Situations the directed vectors must reach.
COVERAGE = (
    "v max", "v min", "v zero", "vth 1", "vth max", "x max", "x min", "pixel 255",
    "saturate up", "saturate down", "spike", "spike at vth", "no spike", "reset to zero",
    "h edge even +", "h edge even -", "h inside even", "h edge odd in", "h edge odd out",
    "op nop", "op integrate", "op fire", "op integrate_fire",
)


def _operand(op: NeuronOp, v: int = 0, x: int = 0, vth: int = 1, zero: bool = False) -> Operand:
    return {"op": op, "v": v, "x": x, "vth": vth, "reset_zero": zero}


class NeuronLaneTB(StreamTB):
    """The neuron lane's bench."""

    UNIT = "neuron_lane"
    LAYOUTS = staticmethod(layouts)
    CORRUPT = "v"
    COVERAGE = COVERAGE

    def __init__(self, dut: Any, config: dict[str, Any]) -> None:
        super().__init__(dut, config)
        p = self.unit
        self.v_max, self.v_min = (1 << (p.v - 1)) - 1, -(1 << (p.v - 1))
        self.vth_max = (1 << p.threshold_bits) - 1
        self.w_max, self.w_min = (1 << (p.w - 1)) - 1, -(1 << (p.w - 1))

    def cover(self, operand: Operand, expected: NeuronLaneResult) -> None:
        op, v, x, vth = NeuronOp(operand["op"]), operand["v"], operand["x"], operand["vth"]
        c = self.coverage
        c[f"op {op.name.lower()}"] += 1
        c["v max"] += v == self.v_max
        c["v min"] += v == self.v_min
        c["v zero"] += v == 0
        c["x max"] += op & NeuronOp.INTEGRATE and x == self.w_max
        c["x min"] += op & NeuronOp.INTEGRATE and x == self.w_min
        c["pixel 255"] += op == NeuronOp.INTEGRATE_FIRE and x == 255
        if op & NeuronOp.INTEGRATE:
            c["saturate up"] += v + x > self.v_max
            c["saturate down"] += v + x < self.v_min
        if not op & NeuronOp.FIRE:
            return
        c["vth 1"] += vth == 1
        c["vth max"] += vth == self.vth_max
        c["spike"] += expected.spike
        c["spike at vth"] += expected.integrated == vth
        c["no spike"] += not expected.spike
        c["reset to zero"] += expected.spike and operand["reset_zero"]
        d = expected.integrated - vth
        if vth % 2 == 0:
            c["h edge even +"] += d == vth // 2
            c["h edge even -"] += d == -(vth // 2)
            c["h inside even"] += abs(d) == vth // 2 - 1
        else:
            c["h edge odd in"] += abs(d) == (vth - 1) // 2 and vth > 1
            c["h edge odd out"] += abs(d) == (vth + 1) // 2

    def window_edges(self) -> list[Operand]:
        """Fire scans at |V - Vth| = Vth/2 and one LSB either side, odd and even Vth."""
        thresholds = {1, 2, 3, 4, 5, 6, 7, 32, 33, self.vth_max // 2, self.vth_max - 1, self.vth_max}
        operands = []
        for vth in sorted(t for t in thresholds if 1 <= t <= self.vth_max):
            for d in sorted({vth // 2 + e for e in (-1, 0, 1)} | {(vth + 1) // 2}):
                for v in (vth + d, vth - d):
                    if self.v_min <= v <= self.v_max:
                        operands.append(_operand(NeuronOp.FIRE, v, 0, vth))
        return operands

    def edges(self) -> list[Operand]:
        """Extreme membranes, addends and thresholds through every op and both resets."""
        p = self.unit
        x_top = (1 << (p.operand_bits - 1)) - 1
        operands = []
        for v in (self.v_max, self.v_min, 0, 1, -1):
            for x in (self.w_max, self.w_min, 0, 1, -1):
                operands.append(_operand(NeuronOp.INTEGRATE, v, x))
            operands.append(_operand(NeuronOp.INTEGRATE_FIRE, v, 255, 1))
            operands.append(_operand(NeuronOp.INTEGRATE_FIRE, v, x_top, self.vth_max, True))
            for vth in (1, 2, self.vth_max):
                for op in (NeuronOp.NOP, NeuronOp.FIRE):
                    operands.append(_operand(op, v, self.w_max, vth))
                    operands.append(_operand(op, v, self.w_min, vth, True))
        for vth in (1, 3, self.vth_max):  # exactly at the threshold, and one below
            for v in (vth, vth - 1):
                operands.append(_operand(NeuronOp.FIRE, v, 0, vth, v % 2 == 1))
        return operands

    def directed_table(self) -> list[Phase]:
        return [
            Phase("membrane, addend and threshold edges", self.edges()),
            Phase("window edges |V - Vth| = Vth/2, odd and even Vth", self.window_edges()),
            Phase("edges under backpressure", self.edges(), "always", "burst"),
            Phase("window edges with idle gaps", self.window_edges(), "sparse", "alternate"),
        ]

    def random_operands(self, rng: random.Random) -> Iterator[Operand]:
        p = self.unit
        while True:
            op = NeuronOp(rng.randrange(4))
            vth = rng.choice((1, 2, 3, rng.randint(1, self.vth_max), self.vth_max))
            kind = rng.random()
            if kind < 0.4 and op & NeuronOp.FIRE:  # near the window and the threshold
                v = max(self.v_min, min(self.v_max, vth + rng.randint(-vth, vth)))
            elif kind < 0.6:
                v = rng.choice((self.v_max, self.v_min, self.v_max - 1, self.v_min + 1))
            else:
                v = rng.randint(self.v_min, self.v_max)
            if op == NeuronOp.INTEGRATE_FIRE:
                x = rng.choice((rng.randint(0, 255), 255, 0))
            elif rng.random() < 0.9:
                x = rng.randint(self.w_min, self.w_max)
            else:
                x = rng.randint(-(1 << (p.operand_bits - 1)), (1 << (p.operand_bits - 1)) - 1)
            yield _operand(op, v, x, vth, rng.random() < 0.25)


@cocotb.test()
async def directed(dut: Any) -> None:
    """Directed vectors: extremes, saturation both ways, Vth = 1, window edges, backpressure."""
    await NeuronLaneTB(dut, load_config()).test("directed")


@cocotb.test()
async def random_stream(dut: Any) -> None:
    """Seeded random operands with idle and backpressure patterns (``cycles`` cycles)."""
    await NeuronLaneTB(dut, load_config()).test("random_stream")
