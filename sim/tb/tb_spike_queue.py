"""cocotb bench of ``spike_queue`` (:class:`hw.queue.SpikeQueue`).

Configuration (:func:`sim.tb.common.load_config`): ``params`` (``index_bits``, ``depth``,
``stages`` = 1: the model's queue has one high-water mark; the per-stage marks of a shared
queue are checked by tests/hw/test_units_sim.py and the core co-simulation),
``seed``, ``cycles`` (random stream length), ``corrupt`` (``null``, ``"model"`` or
``"scoreboard"``: perturb the step function or the transaction scoreboard).
Every cycle is checked against :func:`model.units.spike_queue_step`; independently, an
in-order scoreboard checks that the indices popped are the indices pushed, in order, and
that none is lost (the queue is drained at the end).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Mapping
from typing import Any

import cocotb

from model.units import SpikeQueueInputs, spike_queue_reset, spike_queue_step
from sim.tb.common import CycleTB, Operand, load_config, pattern

#: Situations the directed vectors must reach (checked at the end of ``directed``) besides a
#: stalled push and a held pop. At depth 1 a push needs an empty queue and a pop a full one,
#: so "push and pop together" is unreachable there (:data:`UNREACHABLE_AT_DEPTH_1`).
COVERAGE = (
    "pop from empty",
    "full",
    "push and pop together",
    "push offered while popping at full",
    "clear while holding",
    "index max",
    "index 0",
)
UNREACHABLE_AT_DEPTH_1 = ("push and pop together",)

#: Directed phases: (label, cycles as a function of depth, producer, consumer, clear).
DIRECTED = (
    ("pop from an empty queue", lambda depth: 4, "never", "always", "never"),
    ("fill until full, consumer stalled", lambda depth: depth + 3, "always", "never", "never"),
    ("push against a full queue", lambda depth: 3, "always", "never", "never"),
    ("clear the high-water mark while full", lambda depth: 1, "never", "never", "always"),
    ("push and pop at full occupancy", lambda depth: 2 * depth, "always", "always", "never"),
    ("drain to empty", lambda depth: depth + 3, "never", "always", "never"),
    ("push and pop around one entry", lambda depth: 12, "alternate", "always", "never"),
    ("consumer slower than producer", lambda depth: 3 * depth, "always", "alternate", "never"),
    ("clear the high-water mark while empty", lambda depth: 4, "never", "always", "always"),
)


def directed_indices(bits: int) -> Iterator[int]:
    """Max, 0, alternating bit patterns, then counting up (wrapping)."""
    top = (1 << bits) - 1
    edges = (top, 0, top & 0x5555_5555, top & 0xAAAA_AAAA, 1, 1 << (bits - 1))
    return itertools.chain(edges, (n & top for n in itertools.count(2)))


def _clears(strobes: Iterator[bool]) -> Iterator[dict[str, bool]]:
    return ({"clear_high_water": strobe} for strobe in strobes)


class SpikeQueueTB(CycleTB):
    """Drivers, monitors, model and scoreboards of the spike queue."""

    INPUTS = {
        "push_valid": "push__valid",
        "push_index": "push__payload",
        "pop_ready": "pop__ready",
        "clear_high_water": "clear_high_water",
    }
    OUTPUTS = {
        "push_ready": "push__ready",
        "pop_valid": "pop__valid",
        "pop_index": "pop__payload",
        "level": "level",
        "high_water": "high_water",
        "full": "full",
    }
    QUALIFIERS = {"pop_index": "pop_valid"}
    CORRUPT = "pop_index"
    OPERAND = "push"
    RESULT = "pop"
    RESULT_FIELDS = ("pop_index",)
    SCOREBOARD = "transfers"
    COVERAGE = COVERAGE

    def __init__(self, dut: Any, config: Mapping[str, Any]) -> None:
        params = config["params"]
        if int(params.get("stages", 1)) != 1:
            raise ValueError(f"stages: the spike-queue bench models a queue of one stage, got {params['stages']}")
        state = spike_queue_reset(index_bits=params["index_bits"], depth=params["depth"])
        super().__init__(dut, config, spike_queue_step, state, SpikeQueueInputs)
        self.index_bits = int(params["index_bits"])
        self.depth = int(params["depth"])
        self.drain_cycles = 4 * self.depth + 8  # pop until the queue is empty
        if self.depth == 1:
            self.COVERAGE = tuple(p for p in COVERAGE if p not in UNREACHABLE_AT_DEPTH_1)

    def reference(self, operand: Operand, inputs: SpikeQueueInputs) -> tuple[int]:
        """A pushed index comes out unchanged, in push order."""
        return (operand["push_index"],)

    def cover(self, operand: Operand, expected: tuple[int]) -> None:
        index = operand["push_index"]
        self.coverage["index max"] += index == (1 << self.index_bits) - 1
        self.coverage["index 0"] += index == 0

    def monitor(self, inputs: SpikeQueueInputs, out: Mapping[str, Any]) -> None:
        """The transfers, then the occupancy coverage."""
        super().monitor(inputs, out)
        pushed = inputs.push_valid and out["push_ready"] == 1
        popped = inputs.pop_ready and out["pop_valid"] == 1
        full = out["level"] == self.depth
        self.coverage["full"] += full
        self.coverage["pop from empty"] += inputs.pop_ready and out["level"] == 0
        self.coverage["push and pop together"] += pushed and popped
        self.coverage["push offered while popping at full"] += (
            full and popped and inputs.push_valid
        )
        self.coverage["clear while holding"] += inputs.clear_high_water and out["level"] > 0

    async def run_directed(self) -> None:
        """The :data:`DIRECTED` table (fixed cycle counts), then a check that every
        :data:`COVERAGE` point was hit."""
        indices = ({"push_index": index} for index in directed_indices(self.index_bits))
        rng = random.Random(0)
        for label, cycles, producer, consumer, clear in DIRECTED:
            self.log.info("directed: %s", label)
            await self.drive(
                cycles(self.depth),
                pattern(producer, rng),
                pattern(consumer, rng),
                indices,
                _clears(pattern(clear, rng)),
            )
        self.check_coverage(self.COVERAGE)

    def random_operands(self, rng: random.Random) -> Iterator[Operand]:
        top = (1 << self.index_bits) - 1
        return ({"push_index": rng.randint(0, top)} for _ in itertools.count())

    def random_side(self, rng: random.Random) -> Iterator[dict[str, bool]]:
        """Rare clears of the high-water mark."""
        return _clears(rng.random() < 0.01 for _ in itertools.count())


@cocotb.test()
async def directed(dut: Any) -> None:
    """Directed vectors: empty, full, stalls, simultaneous push/pop, clears, edge indices."""
    await SpikeQueueTB(dut, load_config()).test("directed")


@cocotb.test()
async def random_stream(dut: Any) -> None:
    """Seeded random stream with idle and backpressure patterns (``cycles`` cycles)."""
    await SpikeQueueTB(dut, load_config()).test("random_stream")
