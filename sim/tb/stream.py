"""Bench base of the learning-datapath units: ``operand`` stream in, ``result`` stream out.

:class:`StreamTB` maps the unit's step-function model (:mod:`model.units`) onto the DUT
from its Amaranth payload layouts, drives operands (held on the stream until accepted, as
the stream rules require) under producer/consumer valid/ready patterns, checks every cycle
against the step function (:class:`sim.tb.common.CycleTB`) and, independently, every
delivered result against the unit's pure ``*_result`` function in an in-order
:class:`sim.tb.common.Scoreboard`. A bench subclass provides the reference of an accepted
operand, its coverage points, a directed table and a random operand generator; the
module defines the cocotb tests ``directed`` and ``random_stream`` with :meth:`StreamTB.test`.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from amaranth.lib import data

from sim.tb.common import Bits, CycleTB, layout_fields, pattern, phases, plain, seeded

__all__ = ["Operand", "Phase", "StreamTB"]

#: An operand: the payload fields of one transfer (model input field -> value).
Operand = dict[str, Any]
#: Distinct junk payloads shown while the random stream's operand stream is idle.
JUNK_POOL = 37


class Phase(NamedTuple):
    """One row of a directed table.

    Attributes
    ----------
    label : str
        Logged when the phase starts.
    operands : list of Operand
        Offered in order.
    producer, consumer : str
        Valid and ready patterns (:data:`sim.tb.common.PATTERNS`).
    side : list of dict, optional
        Per-cycle values of the unit's side inputs (cycled; see :attr:`StreamTB.SIDE_INPUTS`).
    """

    label: str
    operands: list[Operand]
    producer: str = "always"
    consumer: str = "always"
    side: list[dict[str, Any]] | None = None


class StreamTB(CycleTB):
    """Drivers, monitors, model and scoreboards of a unit with operand/result streams.

    Subclasses set :attr:`CORRUPT`, :attr:`COVERAGE` (points the directed table must reach,
    besides ``"operand held"`` and ``"result held"``), optionally :attr:`SIDE_INPUTS` /
    :attr:`SIDE_OUTPUTS` (ports outside the streams, same names in model and DUT), and
    implement :meth:`reference`, :meth:`cover`, :meth:`directed_table` and
    :meth:`random_operands`.

    Parameters
    ----------
    dut : cocotb handle
        The top level.
    config : mapping
        The bench configuration (:func:`sim.tb.common.load_config`): ``params``, ``seed``,
        ``cycles``, ``corrupt``.
    step, state : callable, named tuple
        The unit's step function and its state after reset.
    inputs, outputs : type
        The model's inputs and outputs named tuple classes.
    layouts : (StructLayout, StructLayout)
        The operand and result payload layouts of the component (``hw.<unit>.layouts``);
        their member names are the model's field names.
    """

    SIDE_INPUTS: tuple[str, ...] = ()
    SIDE_OUTPUTS: tuple[str, ...] = ()
    COVERAGE: tuple[str, ...] = ()
    #: Cycles allowed for the drain at the end of a test and after each directed phase.
    DRAIN_CYCLES = 32

    def __init__(
        self,
        dut: Any,
        config: Mapping[str, Any],
        *,
        step: Any,
        state: NamedTuple,
        inputs: type,
        outputs: type,
        layouts: tuple[data.StructLayout, data.StructLayout],
    ) -> None:
        operand, result = layouts
        operand_fields = layout_fields("operand__payload", operand)
        result_fields = layout_fields("result__payload", result)
        self.INPUTS = {
            "operand_valid": "operand__valid",
            **operand_fields,
            "result_ready": "result__ready",
            **{name: name for name in self.SIDE_INPUTS},
        }
        self.OUTPUTS = {
            "operand_ready": "operand__ready",
            "result_valid": "result__valid",
            **result_fields,
            **{name: name for name in self.SIDE_OUTPUTS},
        }
        for kind, mapping, fields in (
            ("inputs", self.INPUTS, inputs._fields),
            ("outputs", self.OUTPUTS, outputs._fields),
        ):
            if set(mapping) != set(fields):
                raise ValueError(f"{kind}: model fields {fields} do not match the ports {tuple(mapping)}")
        self.QUALIFIERS = {name: "result_valid" for name in result_fields}
        super().__init__(dut, step, state, inputs, corrupt=config.get("corrupt"))
        self.config = config
        self.params = dict(config["params"])
        self.inputs = inputs
        self.result_fields = tuple(result_fields)
        self.blank = {name: _zero(bits) for name, bits in operand_fields.items()}
        self.idle = inputs(**self.blank)
        self.results = self.scoreboard("results")
        self.offered: Operand | None = None
        self.accepted = 0
        self.coverage: Counter[str] = Counter()

    # To be provided by the unit's bench --------------------------------------------------

    def reference(self, operand: Operand, inputs: NamedTuple) -> Any:
        """The expected result of an accepted operand (a named tuple), or ``None`` if it
        produces none. Called once per accepted operand, in order."""
        raise NotImplementedError

    def cover(self, operand: Operand, expected: Any) -> None:
        """Count the coverage points an accepted operand reaches."""
        raise NotImplementedError

    def directed_table(self) -> list[Phase]:
        """The directed phases."""
        raise NotImplementedError

    def random_operands(self, rng: random.Random) -> Iterator[Operand]:
        """An endless seeded operand stream."""
        raise NotImplementedError

    def random_side(self, rng: random.Random) -> Iterator[dict[str, Any]]:
        """Per-cycle side inputs of the random stream (none by default)."""
        return itertools.repeat({})

    # Driving and monitoring ---------------------------------------------------------------

    async def drive(
        self,
        cycles: int,
        producer: Iterator[bool],
        consumer: Iterator[bool],
        operands: Iterator[Operand],
        side: Iterator[dict[str, Any]] | None = None,
        junk: Iterator[Operand] | None = None,
    ) -> None:
        """Run ``cycles`` cycles: the producer pattern decides when a new operand is offered
        (held until accepted), the consumer pattern drives ``result.ready``; while nothing
        is offered the payload shows ``junk`` operands (zeros by default)."""
        for _ in range(cycles):
            if self.offered is None and next(producer):
                self.offered = next(operands, None)
            payload = self.offered if self.offered is not None else (
                next(junk) if junk is not None else self.blank
            )
            inputs = self.inputs(
                operand_valid=self.offered is not None,
                result_ready=next(consumer),
                **payload,
                **(next(side) if side is not None else {}),
            )
            out = await self.cycle(inputs)
            self.monitor(inputs, out)

    def monitor(self, inputs: NamedTuple, out: Mapping[str, Any]) -> None:
        """Transaction monitor and coverage, from the DUT's handshakes."""
        if inputs.operand_valid and out["operand_ready"] == 1:
            expected = self.reference(self.offered, inputs)
            if expected is not None:
                self.results.expect(plain(tuple(expected)))
            self.cover(self.offered, expected)
            self.offered = None
            self.accepted += 1
        self.coverage["operand held"] += inputs.operand_valid and out["operand_ready"] == 0
        if out["result_valid"] == 1:
            if inputs.result_ready:
                observed = tuple(out[name] for name in self.result_fields)
                self.results.observe(observed, f"at cycle {self.cycles - 1}")
            else:
                self.coverage["result held"] += 1

    async def drain(self) -> None:
        """Deliver the outstanding operand and results (bounded), then two idle cycles."""
        never, always = itertools.repeat(False), itertools.repeat(True)
        for _ in range(self.DRAIN_CYCLES):
            if self.offered is None and not self.results.expected:
                break
            await self.drive(1, never, always, iter(()))
        await self.drive(2, never, always, iter(()))

    async def run_directed(self) -> None:
        """The :meth:`directed_table`, then a check that every coverage point was reached."""
        rng = random.Random(0)
        for phase in self.directed_table():
            self.log.info("directed: %s (%d operands)", phase.label, len(phase.operands))
            start = self.accepted
            producing, consuming = pattern(phase.producer, rng), pattern(phase.consumer, rng)
            supply = iter(phase.operands)
            side = itertools.cycle(phase.side) if phase.side else None
            for _ in range(12 * len(phase.operands) + self.DRAIN_CYCLES):  # sparse: 1 in 5
                if self.accepted - start == len(phase.operands) and not self.results.expected:
                    break
                await self.drive(1, producing, consuming, supply, side)
            else:
                self.mismatches.error(f"directed: {phase.label}: results did not come back in time")
        points = ("operand held", "result held", *self.COVERAGE)
        self.log.info("directed coverage: %s", {point: self.coverage[point] for point in points})
        missed = [point for point in points if not self.coverage[point]]
        if missed:
            self.mismatches.error(f"directed vectors did not reach: {', '.join(missed)}")

    async def run_random(self, rng: random.Random, cycles: int) -> None:
        """Seeded random operands under every producer x consumer pattern pair, with junk
        payloads (a cycled pool of other random operands) while the operand stream is idle."""
        operands = self.random_operands(rng)
        pool = self.random_operands(random.Random(rng.random()))
        junk = itertools.cycle(list(itertools.islice(pool, JUNK_POOL)))
        side = self.random_side(rng)
        for length, producer, consumer in phases(rng, cycles):
            await self.drive(length, producer, consumer, operands, side, junk)

    async def test(self, name: str) -> None:
        """Run cocotb test ``name`` (``"directed"`` or ``"random_stream"``) to the end."""
        await self.start()
        if name == "directed":
            await self.run_directed()
        else:
            await self.run_random(seeded(self.config, name), int(self.config["cycles"]))
        await self.drain()
        self.finish(self.config, name, self.results)


def _zero(bits: Bits) -> Any:
    return (0,) * bits.count if bits.count else 0
