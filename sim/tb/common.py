"""Shared cocotb bench machinery: configuration, stall patterns, scoreboards, cycle checker.

A unit bench subclasses :class:`CycleTB`, names the mapping between its step-function model
(:mod:`model.units`) and the DUT ports, and drives one cycle at a time with
:meth:`CycleTB.cycle`, which writes the inputs, samples every output in the read-only
phase, steps the model with the same inputs and compares the two (per-cycle
scoreboard). Transaction-level checks use the in-order :class:`Scoreboard`.

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
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from amaranth.hdl import Shape
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from sim.tb import CONFIG_ENV

__all__ = [
    "PATTERNS",
    "Bits",
    "CycleTB",
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
    with open(path) as handle:
        return json.load(handle)


def record_stats(config: Mapping[str, Any], test: str, **stats: Any) -> None:
    """Add ``stats`` for cocotb test ``test`` to the run's statistics JSON."""
    path = config["stats"]
    recorded = {}
    if os.path.exists(path):
        with open(path) as handle:
            recorded = json.load(handle)
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


def _read(handle: Any) -> int | str:
    value = handle.value
    try:
        return int(value)
    except ValueError:  # X or Z bits
        return str(value)


class CycleTB:
    """Base bench comparing a DUT with a step-function model every cycle.

    Subclasses set the class attributes below and call :meth:`cycle` once per clock cycle.

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

    Parameters
    ----------
    dut : cocotb handle
        The top level.
    step : callable
        ``step(state, inputs) -> (outputs, next_state)``.
    state : named tuple
        The model state after reset.
    inputs : type
        The model's inputs named tuple class (its defaults are the idle inputs).
    corrupt : str or None
        ``"model"`` perturbs the step function (see :func:`corrupted`), ``"scoreboard"``
        the expected items of the scoreboards made by :meth:`scoreboard`; either way the
        bench must then fail.
    """

    INPUTS: Mapping[str, str | Bits] = {}
    OUTPUTS: Mapping[str, str | Bits] = {}
    QUALIFIERS: Mapping[str, str] = {}
    CORRUPT = ""
    CORRUPTIONS = ("model", "scoreboard")

    def __init__(
        self,
        dut: Any,
        step: Callable,
        state: NamedTuple,
        inputs: type,
        *,
        corrupt: str | None = None,
    ) -> None:
        if corrupt is not None and corrupt not in self.CORRUPTIONS:
            raise ValueError(
                f"corrupt: {corrupt!r} is not one of {', '.join(self.CORRUPTIONS)} or null"
            )
        self.dut = dut
        self.log = dut._log
        self.corrupt = corrupt
        self.step = corrupted(step, self.CORRUPT) if corrupt == "model" else step
        self.reset_state = state
        self.state = state
        self.idle = inputs()
        self.cycles = 0
        self.mismatches = Scoreboard("cycle", self.log)
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

    @property
    def seconds(self) -> float:
        """Wall-clock time since the end of reset."""
        return time.perf_counter() - self._started

    def finish(self, config: Mapping[str, Any], test: str, *boards: Scoreboard) -> None:
        """Record statistics and fail unless every scoreboard is clean and drained."""
        seconds = self.seconds
        pending = {board.name: len(board.expected) for board in boards if board.expected}
        errors = self.mismatches.errors + sum(board.errors for board in boards)
        record_stats(
            config,
            test,
            cycles=self.cycles,
            seconds=seconds,
            cycles_per_second=self.cycles / seconds if seconds else 0.0,
            errors=errors,
            matched={board.name: board.matched for board in boards},
            pending=pending,
        )
        self.log.info(
            "%s: %d cycles in %.2f s (%.0f cycles/s), %d errors, matched %s",
            test, self.cycles, seconds, self.cycles / seconds if seconds else 0.0, errors,
            {board.name: board.matched for board in boards},
        )
        assert errors == 0, f"{test}: {errors} scoreboard errors (first ones logged above)"
        assert not pending, f"{test}: transactions still expected at the end: {pending}"


def seeded(config: Mapping[str, Any], salt: str) -> random.Random:
    """A generator seeded from the configuration's ``seed`` and a per-test ``salt``."""
    return random.Random(f"{config.get('seed', 0)}:{salt}")

