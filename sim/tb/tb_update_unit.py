"""cocotb bench of ``update_unit`` (:class:`hw.update.UpdateUnit`).

Configuration (:func:`sim.tb.common.load_config`): ``params`` (``lanes``, ``w``, ``v``,
``dw``, ``dth``), ``seed``, ``cycles`` (random stream length), ``corrupt`` (``null``,
``"model"`` or ``"scoreboard"``). Every cycle is checked against
:func:`model.units.update_unit_step`, the LFSR register (``lfsr_state``) included;
independently, an in-order scoreboard checks each delivered word against
:func:`model.units.update_unit_result` with draws from the bench's own
:class:`model.fixed.LFSR`, stepped once per enabled lane of each accepted stochastic word
and reseeded on ``lfsr_load``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Mapping
from typing import Any

import cocotb
import numpy as np

from hw.update import layouts
from model.fixed import LFSR, round_shift
from model.units import Rounding, UpdateOp, UpdateUnitInputs, UpdateUnitResult, update_unit_result
from sim.tb.common import Operand, Phase, load_config
from sim.tb.stream import StreamTB

#: Situations the directed vectors must reach.
COVERAGE = (
    *(f"{op.name.lower()} {mode.name.lower()}" for op in UpdateOp for mode in Rounding),
    "shift 0", "shift 31", "nearest tie", "stochastic round up", "stochastic round down",
    "stochastic partial mask", "weight saturate up", "weight saturate down",
    "threshold clamp 1", "threshold clamp max", "changed", "enabled unchanged",
    "lfsr load", "lfsr load 0", "load with a stochastic word",
)
_NO_LOAD = {"lfsr_load": False, "lfsr_seed": 0}


def _operand(
    op: UpdateOp, rounding: Rounding, shift: int, mask: int, value: tuple, grad: tuple
) -> Operand:
    return {"op": op, "rounding": rounding, "shift": shift, "mask": mask, "value": value, "grad": grad}


class UpdateUnitTB(StreamTB):
    """The update unit's bench."""

    UNIT = "update_unit"
    LAYOUTS = staticmethod(layouts)
    CORRUPT = "value"
    COVERAGE = COVERAGE

    def __init__(self, dut: Any, config: dict[str, Any]) -> None:
        super().__init__(dut, config)
        p = self.unit
        self.all_lanes = (1 << p.lanes) - 1
        self.w_max, self.w_min = (1 << (p.w - 1)) - 1, -(1 << (p.w - 1))
        self.lfsr = LFSR.from_seed(p.lfsr_init)  # the reset state
        self.draws: tuple[int, ...] = ()

    def grad_limits(self, op: UpdateOp) -> tuple[int, int]:
        bits = self.unit.dw if op == UpdateOp.WEIGHT else self.unit.dth
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def value_limits(self, op: UpdateOp) -> tuple[int, int]:
        return (self.w_min, self.w_max) if op == UpdateOp.WEIGHT else (1, self.unit.threshold_max)

    def reference(self, operand: Operand, inputs: UpdateUnitInputs) -> UpdateUnitResult:
        stochastic = operand["rounding"] == Rounding.STOCHASTIC
        mask = operand["mask"]
        self.draws = tuple(
            self.lfsr.step() if stochastic and mask >> j & 1 else 0 for j in range(self.unit.lanes)
        )
        return update_unit_result(self.unit, draws=self.draws, **operand)

    def monitor(self, inputs: UpdateUnitInputs, out: Mapping[str, Any]) -> None:
        super().monitor(inputs, out)  # the draws of a word accepted in this cycle come first
        if inputs.lfsr_load:
            self.lfsr = LFSR.from_seed(inputs.lfsr_seed)
            self.coverage["lfsr load"] += 1
            self.coverage["lfsr load 0"] += inputs.lfsr_seed == 0
            self.coverage["load with a stochastic word"] += (
                inputs.operand_valid and out["operand_ready"] == 1
                and inputs.rounding == Rounding.STOCHASTIC and inputs.mask != 0
            )

    def cover(self, operand: Operand, expected: UpdateUnitResult) -> None:
        op, mode = UpdateOp(operand["op"]), Rounding(operand["rounding"])
        shift, mask, c = operand["shift"], operand["mask"], self.coverage
        c[f"{op.name.lower()} {mode.name.lower()}"] += 1
        c["shift 0"] += shift == 0
        c["shift 31"] += shift == 31
        c["stochastic partial mask"] += mode == Rounding.STOCHASTIC and 0 < mask < self.all_lanes
        enabled = [j for j in range(self.unit.lanes) if mask >> j & 1]
        if not enabled:
            return
        value = np.array([operand["value"][j] for j in enabled])
        grad = np.array([operand["grad"][j] for j in enabled])
        floor = round_shift(grad, shift)
        step = round_shift(grad, shift, mode.name.lower(), np.array([self.draws[j] for j in enabled]))
        if mode == Rounding.NEAREST and shift:
            c["nearest tie"] += int(np.sum(grad & ((1 << shift) - 1) == 1 << (shift - 1)))
        if mode == Rounding.STOCHASTIC:
            c["stochastic round up"] += int(np.sum(step > floor))
            c["stochastic round down"] += int(np.sum((step == floor) & (grad != floor << shift)))
        low, high = self.value_limits(op)
        over, under = int(np.sum(value - step > high)), int(np.sum(value - step < low))
        if op == UpdateOp.WEIGHT:
            c["weight saturate up"] += over
            c["weight saturate down"] += under
        else:
            c["threshold clamp max"] += over
            c["threshold clamp 1"] += under
        changed = sum(expected.changed >> j & 1 for j in enabled)
        c["changed"] += changed
        c["enabled unchanged"] += len(enabled) - changed

    def word(self, op: UpdateOp, mode: Rounding, shift: int, mask: int, n: int) -> Operand:
        """Word ``n`` of the edge set: extreme values and gradients, ties, rotated over lanes."""
        p = self.unit
        low, high = self.grad_limits(op)
        v_low, v_high = self.value_limits(op)
        half = 1 << shift >> 1
        grads = [high, low, 0, 1, -1, half, -half, 3 * half, (1 << shift) + half, high - half]
        values = [v_high, v_low, v_high - 1, v_low + 1, 0 if op == UpdateOp.WEIGHT else 2]
        return _operand(
            op, mode, shift, mask,
            tuple(values[(j + n) % len(values)] for j in range(p.lanes)),
            tuple(max(low, min(high, grads[(j + 3 * n) % len(grads)])) for j in range(p.lanes)),
        )

    def edges(self, shifts: tuple[int, ...], masks: tuple[int, ...]) -> list[Operand]:
        return [
            self.word(op, mode, shift, mask, n)
            for op in UpdateOp for mode in Rounding for shift in shifts for mask in masks
            for n in range(4)
        ]

    def directed_table(self) -> list[Phase]:
        p = self.unit
        shifts = (0, 1, 3, min(p.dw, p.dth) - 1, 31)
        partial = (self.all_lanes, 0b101 & self.all_lanes, 1 << (p.lanes - 1))
        loads = [{"lfsr_load": True, "lfsr_seed": 0}, _NO_LOAD, _NO_LOAD,
                 {"lfsr_load": True, "lfsr_seed": 0x9E3779B9}, _NO_LOAD]
        stochastic = [op for op in self.edges((2, 5), (self.all_lanes, 0b11 & self.all_lanes))
                      if op["rounding"] == Rounding.STOCHASTIC]
        return [
            Phase("every op x rounding x shift, extreme words", self.edges(shifts, (self.all_lanes,))),
            Phase("partial masks under backpressure", self.edges((0, 4), partial), "always", "burst"),
            Phase("stochastic words while the LFSR is reloaded", stochastic, "always", "always", loads),
            Phase("the same with idle gaps", stochastic, "sparse", "alternate", loads),
        ]

    def random_operands(self, rng: random.Random) -> Iterator[Operand]:
        p = self.unit
        while True:
            op, mode = UpdateOp(rng.randrange(2)), Rounding(rng.randrange(3))
            shift = rng.choice((0, 31, rng.randint(0, 31), rng.randint(0, 12)))
            low, high = self.grad_limits(op)
            v_low, v_high = self.value_limits(op)
            near = min(high, 4 << shift)  # gradients whose rounding decides the step
            grad = tuple(
                rng.randint(low, high) if rng.random() < 0.5 else rng.randint(-near, near)
                for _ in range(p.lanes)
            )
            value = tuple(rng.randint(v_low, v_high) for _ in range(p.lanes))
            mask = rng.choice((self.all_lanes, rng.randrange(1 << p.lanes)))
            yield _operand(op, mode, shift, mask, value, grad)

    def random_side(self, rng: random.Random) -> Iterator[dict[str, Any]]:
        for _ in itertools.count():
            if rng.random() < 0.005:
                yield {"lfsr_load": True, "lfsr_seed": rng.choice((0, rng.getrandbits(32)))}
            else:
                yield _NO_LOAD


@cocotb.test()
async def directed(dut: Any) -> None:
    """Directed words: every op x rounding x shift, ties, saturation/clamps, LFSR loads."""
    await UpdateUnitTB(dut, load_config()).test("directed")


@cocotb.test()
async def random_stream(dut: Any) -> None:
    """Seeded random words and rare LFSR loads with idle and backpressure patterns."""
    await UpdateUnitTB(dut, load_config()).test("random_stream")
