"""cocotb bench of ``reciprocal_divider`` (:class:`hw.reciprocal.ReciprocalDivider`).

Configuration (:func:`sim.tb.common.load_config`): ``params`` (``threshold_bits``, ``k``),
``seed``, ``cycles`` (random stream length), ``corrupt`` (``null``, ``"model"`` or
``"scoreboard"``: perturb the step function or the transaction scoreboard).
Every cycle is checked against :func:`model.units.reciprocal_divider_step`; independently,
an in-order scoreboard checks each delivered result against ``floor(2^K / Vth)``
(:func:`model.units.reciprocal_divider_result`) of the operand accepted for it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any

import cocotb

from model.units import (
    ReciprocalDividerInputs,
    reciprocal_divider_reset,
    reciprocal_divider_result,
    reciprocal_divider_step,
)
from sim.tb.common import CycleTB, Operand, Phase, load_config

#: Situations the directed vectors must reach (checked at the end of ``directed``) besides a
#: held operand and result; "result 0 or 1" only where a threshold above 2^(K-1) fits
#: ``threshold_bits``.
COVERAGE = ("vth 1", "vth max", "vth 0", "result 0 or 1")

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
    OPERAND = "vth"
    RESULT_FIELDS = ("result",)

    def __init__(self, dut: Any, config: Mapping[str, Any]) -> None:
        params = config["params"]
        super().__init__(
            dut, config, reciprocal_divider_step, reciprocal_divider_reset(**params),
            ReciprocalDividerInputs,
        )
        self.threshold_bits = int(params["threshold_bits"])
        self.k = int(params["k"])
        self.drain_cycles = 2 * self.k + 8
        self.cycles_per_operand = 4 * (self.k + 4)
        self.COVERAGE = COVERAGE if self.threshold_bits >= self.k else COVERAGE[:-1]

    def reference(self, operand: Operand, inputs: ReciprocalDividerInputs) -> tuple[int]:
        return (reciprocal_divider_result(operand["vth"], self.k),)

    def cover(self, operand: Operand, expected: tuple[int]) -> None:
        vth, c = operand["vth"], self.coverage
        c["vth 1"] += vth == 1
        c["vth max"] += vth == (1 << self.threshold_bits) - 1
        c["vth 0"] += vth == 0
        c["result 0 or 1"] += expected[0] in (0, 1)

    def directed_table(self) -> list[Phase]:
        operands = directed_operands(self.threshold_bits, self.k)
        return [
            Phase(f"{label} {operands[name]}", [{"vth": vth} for vth in operands[name]],
                  producer, consumer)
            for label, name, producer, consumer in DIRECTED
        ]

    def random_operands(self, rng: random.Random) -> Iterator[Operand]:
        return ({"vth": vth} for vth in random_operands(rng, self.threshold_bits, self.k))


@cocotb.test()
async def directed(dut: Any) -> None:
    """Directed operands: Vth = 1, max, mid-range, K edges, 0; backpressure and idle gaps."""
    await ReciprocalDividerTB(dut, load_config()).test("directed")


@cocotb.test()
async def random_stream(dut: Any) -> None:
    """Seeded random operands with idle and backpressure patterns (``cycles`` cycles)."""
    await ReciprocalDividerTB(dut, load_config()).test("random_stream")
