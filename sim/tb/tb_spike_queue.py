"""cocotb bench of ``spike_queue`` (:class:`hw.queue.SpikeQueue`).

Configuration (:func:`sim.tb.common.load_config`): ``params`` (``index_bits``, ``depth``),
``seed``, ``cycles`` (random stream length), ``corrupt`` (``null``, ``"model"`` or
``"scoreboard"``: perturb the step function or the transaction scoreboard).
Every cycle is checked against :func:`model.units.spike_queue_step`; independently, an
in-order scoreboard checks that the indices popped are the indices pushed, in order, and
that none is lost (the queue is drained at the end).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import cocotb

from model.units import SpikeQueueInputs, spike_queue_reset, spike_queue_step
from sim.tb.common import CycleTB, load_config, pattern, phases, seeded

#: Situations the directed vectors must reach (checked at the end of ``directed``).
COVERAGE = (
    "pop from empty",
    "full",
    "push stalled",
    "push and pop together",
    "push offered while popping at full",
    "clear while holding",
    "index max",
    "index 0",
)

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

    def __init__(self, dut: Any, config: Mapping[str, Any]) -> None:
        params = config["params"]
        super().__init__(
            dut,
            spike_queue_step,
            spike_queue_reset(**params),
            SpikeQueueInputs,
            corrupt=config.get("corrupt"),
        )
        self.config = config
        self.index_bits = int(params["index_bits"])
        self.depth = int(params["depth"])
        self.transfers = self.scoreboard("transfers")
        self.offered: int | None = None  # index held on the push stream until accepted
        self.coverage: Counter[str] = Counter()

    async def drive(
        self,
        cycles: int,
        producer: Iterator[bool],
        consumer: Iterator[bool],
        indices: Iterator[int],
        clear: Iterator[bool],
    ) -> None:
        """Run ``cycles`` cycles. The producer pattern decides when a new index is offered;
        an offered index stays on the stream until accepted (stream rules)."""
        for _ in range(cycles):
            if self.offered is None and next(producer):
                self.offered = next(indices)
            inputs = SpikeQueueInputs(
                push_valid=self.offered is not None,
                push_index=self.offered or 0,
                pop_ready=next(consumer),
                clear_high_water=next(clear),
            )
            out = await self.cycle(inputs)
            self.monitor(inputs, out)

    def monitor(self, inputs: SpikeQueueInputs, out: Mapping[str, Any]) -> None:
        """Transaction monitor and coverage, from the DUT's handshakes."""
        pushed = inputs.push_valid and out["push_ready"] == 1
        popped = inputs.pop_ready and out["pop_valid"] == 1
        if pushed:
            self.transfers.expect(self.offered)
            if self.offered == (1 << self.index_bits) - 1:
                self.coverage["index max"] += 1
            if self.offered == 0:
                self.coverage["index 0"] += 1
            self.offered = None
        if popped:
            self.transfers.observe(out["pop_index"], f"at cycle {self.cycles - 1}")
        full = out["level"] == self.depth
        self.coverage["full"] += full
        self.coverage["pop from empty"] += inputs.pop_ready and out["level"] == 0
        self.coverage["push stalled"] += inputs.push_valid and out["push_ready"] == 0
        self.coverage["push and pop together"] += pushed and popped
        self.coverage["push offered while popping at full"] += (
            full and popped and inputs.push_valid
        )
        self.coverage["clear while holding"] += inputs.clear_high_water and out["level"] > 0

    async def drain(self) -> None:
        """Finish an offered index, then pop until the queue is empty (bounded)."""
        never, always = itertools.repeat(False), itertools.repeat(True)
        for _ in range(4 * self.depth + 8):
            if self.offered is None and not self.transfers.expected:
                break
            await self.drive(1, never, always, iter(()), never)
        await self.drive(2, never, always, iter(()), never)  # the queue reports empty

    async def run_directed(self) -> None:
        """The :data:`DIRECTED` table, then a check that every :data:`COVERAGE` point was hit."""
        indices = directed_indices(self.index_bits)
        rng = random.Random(0)
        for label, cycles, producer, consumer, clear in DIRECTED:
            self.log.info("directed: %s", label)
            await self.drive(
                cycles(self.depth),
                pattern(producer, rng),
                pattern(consumer, rng),
                indices,
                pattern(clear, rng),
            )
        missed = [point for point in COVERAGE if not self.coverage[point]]
        if missed:
            self.mismatches.error(f"directed vectors did not reach: {', '.join(missed)}")

    async def run_random(self, rng: random.Random, cycles: int) -> None:
        """Seeded random indices under every producer x consumer pattern pair, with rare clears."""
        top = (1 << self.index_bits) - 1
        indices = (rng.randint(0, top) for _ in itertools.count())
        clear = (rng.random() < 0.01 for _ in itertools.count())
        for length, producer, consumer in phases(rng, cycles):
            await self.drive(length, producer, consumer, indices, clear)


@cocotb.test()
async def directed(dut: Any) -> None:
    """Directed vectors: empty, full, stalls, simultaneous push/pop, clears, edge indices."""
    config = load_config()
    tb = SpikeQueueTB(dut, config)
    await tb.start()
    await tb.run_directed()
    await tb.drain()
    tb.finish(config, "directed", tb.transfers)


@cocotb.test()
async def random_stream(dut: Any) -> None:
    """Seeded random stream with idle and backpressure patterns (``cycles`` cycles)."""
    config = load_config()
    tb = SpikeQueueTB(dut, config)
    await tb.start()
    await tb.run_random(seeded(config, "random_stream"), int(config["cycles"]))
    await tb.drain()
    tb.finish(config, "random_stream", tb.transfers)
