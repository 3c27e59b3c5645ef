"""Shared cocotb bench machinery: configuration, stall patterns, scoreboards, cycle checker.

A unit bench subclasses :class:`CycleTB`, names the mapping between its step-function model
(:mod:`model.units`) and the DUT ports, and drives one cycle at a time with
:meth:`CycleTB.cycle`, which writes the inputs, samples every output in the read-only
phase, steps the model with the same inputs and compares the two (per-cycle
scoreboard). Transaction-level checks use the in-order :class:`Scoreboard`. Every unit has
one stream in and one stream out: :class:`CycleTB` also drives operands on the first
(held until accepted), monitors both handshakes and runs the cocotb tests ``directed``
(a table of :class:`Phase` rows) and ``random_stream`` with :meth:`CycleTB.test`.

A model field may also live in part of a port (:class:`Bits`): a member of a stream's
struct payload, or an array of lane values (a tuple in the model, lane 0 in the low bits);
:func:`layout_fields` derives them from the unit's Amaranth payload layout.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from amaranth.hdl import Shape
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from model.files import read_json
from sim.tb import CONFIG_ENV

__all__ = [
    "PATTERNS",
    "Bits",
    "CycleTB",
    "Operand",
    "Phase",
    "Scoreboard",
    "corrupted",
    "layout_fields",
    "load_config",
    "pattern",
    "phases",
    "plain",
    "record_stats",
    "seeded",
]

CLOCK_PERIOD_NS = 10
_MAX_REPORTS = 10

#: An operand: the payload fields of one transfer (model input field -> value).
Operand = dict[str, Any]

#: Named valid/ready patterns: fixed ones cycle deterministically, the others draw from
#: the bench's seeded generator.
PATTERNS = ("always", "never", "alternate", "burst", "sparse", "random", "dense")
_FIXED = {
    "always": (True,),
    "never": (False,),
    "alternate": (True, False),
    "burst": (True,) * 5 + (False,) * 3,
}
_PROBABILITY = {"sparse": 0.2, "random": 0.5, "dense": 0.85}


def load_config() -> dict[str, Any]:
    """The bench configuration written by :func:`sim.runner.run`."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} is not set: run benches through sim.runner.run")
    return read_json(path)


def record_stats(config: Mapping[str, Any], test: str, **stats: Any) -> None:
    """Add ``stats`` for cocotb test ``test`` to the run's statistics JSON."""
    path = config["stats"]
    recorded = {}
    if os.path.exists(path):
        recorded = read_json(path)
    recorded[test] = stats
    with open(path, "w") as handle:
        json.dump(recorded, handle, indent=2)


def pattern(kind: str, rng: random.Random) -> Iterator[bool]:
    """An endless valid/ready pattern of one of the :data:`PATTERNS`."""
    if kind in _FIXED:
        return itertools.cycle(_FIXED[kind])
    if kind in _PROBABILITY:
        probability = _PROBABILITY[kind]
        return (rng.random() < probability for _ in itertools.count())
    raise ValueError(f"pattern: {kind!r} is not one of {', '.join(PATTERNS)}")


def phases(
    rng: random.Random, total: int, *, shortest: int = 40, longest: int = 400
) -> Iterator[tuple[int, Iterator[bool], Iterator[bool]]]:
    """Split ``total`` cycles into phases of (length, producer pattern, consumer pattern).

    Every producer x consumer combination of :data:`PATTERNS` (except both ``never``)
    comes up in a seeded shuffled order, repeated with ``itertools.cycle``.
    """
    pairs = [(p, c) for p in PATTERNS for c in PATTERNS if (p, c) != ("never", "never")]
    rng.shuffle(pairs)
    left = total
    for producer, consumer in itertools.cycle(pairs):
        if left <= 0:
            return
        length = min(left, rng.randint(shortest, longest))
        left -= length
        yield length, pattern(producer, rng), pattern(consumer, rng)


class Bits(NamedTuple):
    """Where a model field lives inside a DUT port.

    Attributes
    ----------
    port : str
        The DUT port (e.g. ``operand__payload``).
    offset : int
        Bit position of the field's least significant bit.
    width : int
        Bits of the field, or of one element of an array field.
    signed : bool
        Two's complement (read back as a negative number when the top bit is set).
    count : int
        0 for a scalar field; for an array, the number of elements (the model's value is
        a tuple, element 0 in the lowest bits).
    """

    port: str
    offset: int
    width: int
    signed: bool = False
    count: int = 0

    def encode(self, value: Any) -> int:
        """The field's bits, shifted into place in the port's value."""
        items = tuple(value) if self.count else (value,)
        if len(items) != max(self.count, 1):
            raise ValueError(f"{self.port}: {len(items)} values for {self.count} elements")
        mask = (1 << self.width) - 1
        word = 0
        for n, item in enumerate(items):
            word |= (int(item) & mask) << (n * self.width)
        return word << self.offset

    def decode(self, word: int) -> int | tuple[int, ...]:
        """The field's value (a tuple for an array) from the port's value."""
        mask = (1 << self.width) - 1
        items = []
        for n in range(max(self.count, 1)):
            item = (word >> (self.offset + n * self.width)) & mask
            if self.signed and item >> (self.width - 1):
                item -= 1 << self.width
            items.append(item)
        return tuple(items) if self.count else items[0]


def layout_fields(port: str, layout: data.StructLayout) -> dict[str, Bits]:
    """:class:`Bits` of every member of a struct payload ``layout`` carried by ``port``.

    Members are scalars (any shape-castable, e.g. ``signed(8)`` or an enum) or one-level
    :class:`~amaranth.lib.data.ArrayLayout` s of scalars (lane arrays).
    """
    fields = {}
    for name, member in layout:
        shape, count = member.shape, 0
        if isinstance(shape, data.ArrayLayout):
            shape, count = shape.elem_shape, shape.length
        scalar = Shape.cast(shape)
        fields[name] = Bits(port, member.offset, scalar.width, scalar.signed, count)
    return fields


def plain(value: Any) -> int | tuple:
    """A model value as compared with the DUT: an int, or a tuple of plain values."""
    if isinstance(value, tuple):
        return tuple(plain(item) for item in value)
    return int(value)


def _flip(value: Any) -> int | tuple:
    """``value`` with the least significant bit of its first integer flipped."""
    if isinstance(value, tuple):
        return (_flip(value[0]), *value[1:]) if value else value
    return int(value) ^ 1


def corrupted(step: Callable, field: str) -> Callable:
    """A step function whose output ``field`` has its least significant bit flipped (of
    its first element for a tuple).

    Used to prove that a bench's checks can fail.
    """

    def corrupt_step(state: Any, inputs: Any) -> tuple[Any, Any]:
        outputs, next_state = step(state, inputs)
        return outputs._replace(**{field: _flip(getattr(outputs, field))}), next_state

    return corrupt_step


class Scoreboard:
    """In-order scoreboard: each observed item must equal the oldest expected one.

    Parameters
    ----------
    name : str
        Used in messages.
    log : logging.Logger
        Where the first mismatches are reported.
    corrupt : bool
        Flip the least significant bit of every expected item (of its first integer for a
        tuple), to prove that the scoreboard can fail.
    """

    def __init__(self, name: str, log: Any, *, corrupt: bool = False) -> None:
        self.name = name
        self.log = log
        self.corrupt = corrupt
        self.expected: deque[Any] = deque()
        self.matched = 0
        self.errors = 0

    def expect(self, item: Any) -> None:
        """Queue an expected item."""
        self.expected.append(_flip(item) if self.corrupt else item)

    def observe(self, item: Any, where: str = "") -> None:
        """Check an observed item against the oldest expected one."""
        if not self.expected:
            self.error(f"{self.name}: unexpected {item!r} {where}")
        elif (wanted := self.expected.popleft()) != item:
            self.error(f"{self.name}: mismatch {where}: got {item!r}, expected {wanted!r}")
        else:
            self.matched += 1

    def error(self, message: str) -> None:
        """Count an error; log the first few."""
        self.errors += 1
        if self.errors <= _MAX_REPORTS:
            self.log.error(message)


class Phase(NamedTuple):
    """One row of a directed table.

    Attributes
    ----------
    label : str
        Logged when the phase starts.
    operands : list of Operand
        Offered in order.
    producer, consumer : str
        Valid and ready patterns (:data:`PATTERNS`).
    side : list of dict, optional
        Per-cycle values of the unit's side inputs (cycled).
    """

    label: str
    operands: list[Operand]
    producer: str = "always"
    consumer: str = "always"
    side: list[dict[str, Any]] | None = None


def _read(handle: Any) -> int | str:
    value = handle.value
    try:
        return int(value)
    except ValueError:  # X or Z bits
        return str(value)


class CycleTB:
    """Base bench comparing a DUT with a step-function model every cycle, and driving its
    operand stream against its result stream.

    Subclasses set the class attributes below and implement :meth:`reference`,
    :meth:`cover`, :meth:`directed_table` and :meth:`random_operands` (or override the
    ``run_*`` methods); :meth:`test` runs a cocotb test to the end.

    Attributes
    ----------
    INPUTS : mapping of str to str or Bits
        Model input field -> DUT port (Amaranth names, ``push__valid`` etc.) or the
        :class:`Bits` of a port holding it (several fields may share a port).
    OUTPUTS : mapping of str to str or Bits
        Model output field -> DUT port or :class:`Bits`; every field is compared every
        cycle ...
    QUALIFIERS : mapping of str to str
        ... except a field listed here, compared only when the named valid field is set.
    CORRUPT : str
        Output field whose LSB a corrupted model flips.
    CORRUPTIONS : tuple of str
        Allowed ``corrupt`` values besides ``None``.
    OPERAND, RESULT : str
        Names of the input and output streams in the model's fields (``<name>_valid``,
        ``<name>_ready``).
    RESULT_FIELDS : tuple of str
        Model output fields of a delivered result, in the order of :meth:`reference`'s tuple.
    SCOREBOARD : str
        Name of the transaction scoreboard (``self.results``).
    COVERAGE : tuple of str
        Points the directed table must reach, besides ``"operand held"`` and
        ``"result held"`` (a valid operand or result refused for a cycle).

    Parameters
    ----------
    dut : cocotb handle
        The top level.
    config : mapping
        The bench configuration (:func:`load_config`): ``params``, ``seed``, ``cycles``,
        ``corrupt``: ``"model"`` perturbs the step function (see :func:`corrupted`),
        ``"scoreboard"`` the expected items of the scoreboards made by :meth:`scoreboard`;
        either way the bench must then fail.
    step : callable
        ``step(state, inputs) -> (outputs, next_state)``.
    state : named tuple
        The model state after reset.
    inputs : type
        The model's inputs named tuple class (its defaults are the idle inputs).
    """

    INPUTS: Mapping[str, str | Bits] = {}
    OUTPUTS: Mapping[str, str | Bits] = {}
    QUALIFIERS: Mapping[str, str] = {}
    CORRUPT = ""
    CORRUPTIONS = ("model", "scoreboard")
    OPERAND = "operand"
    RESULT = "result"
    RESULT_FIELDS: tuple[str, ...] = ()
    SCOREBOARD = "results"
    COVERAGE: tuple[str, ...] = ()

    def __init__(
        self, dut: Any, config: Mapping[str, Any], step: Callable, state: NamedTuple, inputs: type
    ) -> None:
        corrupt = config.get("corrupt")
        if corrupt is not None and corrupt not in self.CORRUPTIONS:
            raise ValueError(
                f"corrupt: {corrupt!r} is not one of {', '.join(self.CORRUPTIONS)} or null"
            )
        self.dut = dut
        self.log = dut._log
        self.config = config
        self.corrupt = corrupt
        self.step = corrupted(step, self.CORRUPT) if corrupt == "model" else step
        self.reset_state = state
        self.state = state
        self.inputs = inputs
        self.idle = inputs()
        self.cycles = 0
        self.mismatches = Scoreboard("cycle", self.log)
        self.results = self.scoreboard(self.SCOREBOARD)
        #: Payload shown while no operand is offered (the model's input defaults).
        self.blank: Operand = {}
        #: Cycles allowed for the drain at the end of a test and after each directed phase.
        self.drain_cycles = 32
        #: Cycles allowed per operand of a directed phase (sparse producers offer 1 in 5).
        self.cycles_per_operand = 12
        self.offered: Operand | None = None
        self.accepted = 0
        self.coverage: Counter[str] = Counter()
        self._clock_handle = dut.clk
        self._inputs = self._ports(self.INPUTS)
        self._outputs = self._ports(self.OUTPUTS)
        self._qualified = dict(self.QUALIFIERS)
        self._started = time.perf_counter()

    def _ports(
        self, mapping: Mapping[str, str | Bits]
    ) -> list[tuple[Any, list[tuple[str, Bits | None]]]]:
        """Group the fields by DUT port: ``[(handle, [(field, bits or None), ...]), ...]``."""
        grouped: dict[str, list[tuple[str, Bits | None]]] = {}
        for field, where in mapping.items():
            port, bits = (where, None) if isinstance(where, str) else (where.port, where)
            grouped.setdefault(port, []).append((field, bits))
        return [(getattr(self.dut, port), fields) for port, fields in grouped.items()]

    def _apply(self, inputs: NamedTuple) -> None:
        for handle, fields in self._inputs:
            word = 0
            for field, bits in fields:
                value = getattr(inputs, field)
                word |= int(value) if bits is None else bits.encode(value)
            handle.value = word

    def _sample(self) -> dict[str, Any]:
        actual: dict[str, Any] = {}
        for handle, fields in self._outputs:
            word = _read(handle)
            for field, bits in fields:
                actual[field] = word if bits is None or isinstance(word, str) else bits.decode(word)
        return actual

    async def start(self, reset_cycles: int = 2) -> None:
        """Start the clock and hold ``rst`` for ``reset_cycles`` cycles with idle inputs."""
        Clock(self._clock_handle, CLOCK_PERIOD_NS, unit="ns").start()
        self.dut.rst.value = 1
        self._apply(self.idle)
        for _ in range(reset_cycles):
            await RisingEdge(self._clock_handle)
        self.dut.rst.value = 0
        self.state = self.reset_state
        self._started = time.perf_counter()

    async def cycle(self, inputs: NamedTuple) -> dict[str, int | str]:
        """Apply ``inputs`` for one cycle; check and return the DUT's outputs.

        Outputs are sampled in the read-only phase (X/Z bits read as a string, which never
        matches); a qualified output is compared only while DUT and model both flag it valid.
        Array fields are tuples.
        """
        self._apply(inputs)
        await ReadOnly()
        actual = self._sample()
        expected, self.state = self.step(self.state, inputs)
        for field, value in actual.items():
            qualifier = self._qualified.get(field)
            both_valid = qualifier is None or (
                actual[qualifier] == 1 and getattr(expected, qualifier)
            )
            if not both_valid:
                continue
            wanted = plain(getattr(expected, field))
            if value != wanted:
                self.mismatches.error(
                    f"cycle {self.cycles}: {field} mismatch: DUT {value}, model {wanted} "
                    f"(inputs {inputs})"
                )
        await RisingEdge(self._clock_handle)
        self.cycles += 1
        return actual

    def scoreboard(self, name: str) -> Scoreboard:
        """A transaction scoreboard (corrupted in ``corrupt="scoreboard"`` runs)."""
        return Scoreboard(name, self.log, corrupt=self.corrupt == "scoreboard")

    # To be provided by the unit's bench --------------------------------------------------

    def reference(self, operand: Operand, inputs: NamedTuple) -> tuple | None:
        """The expected result of an accepted operand (a tuple of the
        :attr:`RESULT_FIELDS`), or ``None`` if it produces none. Called once per accepted
        operand, in order."""
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

    def junk_operands(self, rng: random.Random) -> Iterator[Operand] | None:
        """Payloads shown while the random stream's operand stream is idle (``None``: the
        :attr:`blank` payload)."""
        return None

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
        (held until accepted, as the stream rules require), the consumer pattern drives the
        result stream's ``ready``; while nothing is offered the payload shows ``junk``
        operands (:attr:`blank` by default); ``side`` gives further per-cycle inputs."""
        for _ in range(cycles):
            if self.offered is None and next(producer):
                self.offered = next(operands, None)
            payload = self.offered if self.offered is not None else (
                next(junk) if junk is not None else self.blank
            )
            inputs = self.inputs(
                **{f"{self.OPERAND}_valid": self.offered is not None},
                **{f"{self.RESULT}_ready": next(consumer)},
                **payload,
                **(next(side) if side is not None else {}),
            )
            out = await self.cycle(inputs)
            self.monitor(inputs, out)

    def monitor(self, inputs: NamedTuple, out: Mapping[str, Any]) -> None:
        """Transaction monitor and coverage, from the DUT's handshakes."""
        offered = getattr(inputs, f"{self.OPERAND}_valid")
        ready = out[f"{self.OPERAND}_ready"]
        if offered and ready == 1:
            expected = self.reference(self.offered, inputs)
            if expected is not None:
                self.results.expect(plain(tuple(expected)))
            self.cover(self.offered, expected)
            self.offered = None
            self.accepted += 1
        self.coverage["operand held"] += offered and ready == 0
        if out[f"{self.RESULT}_valid"] == 1:
            if getattr(inputs, f"{self.RESULT}_ready"):
                observed = tuple(out[name] for name in self.RESULT_FIELDS)
                self.results.observe(observed, f"at cycle {self.cycles - 1}")
            else:
                self.coverage["result held"] += 1

    async def drain(self) -> None:
        """Deliver the outstanding operand and results (bounded), then two idle cycles."""
        never, always = itertools.repeat(False), itertools.repeat(True)
        for _ in range(self.drain_cycles):
            if self.offered is None and not self.results.expected:
                break
            await self.drive(1, never, always, iter(()))
        await self.drive(2, never, always, iter(()))

    def check_coverage(self, points: Sequence[str]) -> None:
        """Log the coverage of ``points`` (and of the held operand and result); count an
        error naming those the directed vectors did not reach."""
        points = ("operand held", "result held", *points)
        self.log.info("directed coverage: %s", {point: self.coverage[point] for point in points})
        missed = [point for point in points if not self.coverage[point]]
        if missed:
            self.mismatches.error(f"directed vectors did not reach: {', '.join(missed)}")

    async def run_directed(self) -> None:
        """The :meth:`directed_table`, each phase until its results are back (bounded), then
        a check that every :attr:`COVERAGE` point was reached."""
        rng = random.Random(0)
        for phase in self.directed_table():
            self.log.info("directed: %s (%d operands)", phase.label, len(phase.operands))
            start = self.accepted
            producing, consuming = pattern(phase.producer, rng), pattern(phase.consumer, rng)
            supply = iter(phase.operands)
            side = itertools.cycle(phase.side) if phase.side else None
            for _ in range(self.cycles_per_operand * len(phase.operands) + self.drain_cycles):
                if self.accepted - start == len(phase.operands) and not self.results.expected:
                    break
                await self.drive(1, producing, consuming, supply, side)
            else:
                self.mismatches.error(f"directed: {phase.label}: results did not come back in time")
        self.check_coverage(self.COVERAGE)

    async def run_random(self, rng: random.Random, cycles: int) -> None:
        """Seeded random operands and side inputs under every producer x consumer pattern
        pair (:func:`phases`), with :meth:`junk_operands` while the operand stream is idle."""
        operands = self.random_operands(rng)
        junk = self.junk_operands(rng)
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
        self.finish(name)

    @property
    def seconds(self) -> float:
        """Wall-clock time since the end of reset."""
        return time.perf_counter() - self._started

    def finish(self, test: str) -> None:
        """Record statistics and fail unless both scoreboards are clean and drained."""
        seconds, board = self.seconds, self.results
        pending = {board.name: len(board.expected)} if board.expected else {}
        errors = self.mismatches.errors + board.errors
        matched = {board.name: board.matched}
        record_stats(
            self.config,
            test,
            cycles=self.cycles,
            seconds=seconds,
            cycles_per_second=self.cycles / seconds if seconds else 0.0,
            errors=errors,
            matched=matched,
            pending=pending,
        )
        self.log.info(
            "%s: %d cycles in %.2f s (%.0f cycles/s), %d errors, matched %s",
            test, self.cycles, seconds, self.cycles / seconds if seconds else 0.0, errors, matched,
        )
        assert errors == 0, f"{test}: {errors} scoreboard errors (first ones logged above)"
        assert not pending, f"{test}: transactions still expected at the end: {pending}"


def seeded(config: Mapping[str, Any], salt: str) -> random.Random:
    """A generator seeded from the configuration's ``seed`` and a per-test ``salt``."""
    return random.Random(f"{config.get('seed', 0)}:{salt}")

