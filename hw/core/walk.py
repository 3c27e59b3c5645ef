"""Control helpers of the core's engines: named wires, the word sequence of a pass and
the bit-plane walker of the event-driven word passes (docs/architecture.md section 5.3)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value

__all__ = ["Walker", "WordSequence", "counter_shape", "lowest", "popcount", "select", "wire"]


def wire(m: Module, value: Value, name: str) -> Signal:
    """``value`` as a named combinational signal (emitted once, however often it is used)."""
    signal = Signal(Value.cast(value).shape(), name=name)
    m.d.comb += signal.eq(value)
    return signal


def counter_shape(count: int) -> range:
    """Shape of a counter or index over ``count`` values (at least one bit, never zero-width)."""
    return range(max(count, 2))


def lowest(bits: Value, lanes: int) -> tuple[Value, Value]:
    """``(index, one_hot)`` of the lowest set bit of ``bits`` (index 0, one-hot 0 if none)."""
    index = Const(0, counter_shape(lanes))
    for lane in reversed(range(lanes)):
        index = Mux(bits[lane], lane, index)
    one_hot = Cat(*((index == lane) & bits[lane] for lane in range(lanes)))
    return index, one_hot


def popcount(bits: Value) -> Value:
    """Number of set bits."""
    return sum((bits[x] for x in range(len(bits))), Const(0, 1))


def select(values: Sequence[int], index: Value, bits: int) -> Value:
    """``values[index]`` of a constant table of ``bits``-wide entries (a ROM of Mux)."""
    return Array(Const(value, bits) for value in values)[index]


class WordSequence:
    """The word counter of a pass that takes words one after another: ``k``, whether a word
    is in hand (``have_now``) and, from :meth:`advance`, the pass's end.

    ``start`` (the pass's first cycle) loads word 0; each retire moves to the next word or,
    after the last, ends the pass.
    """

    def __init__(self, m: Module, name: str, *, start: Value, first: Value, words: int) -> None:
        self.m, self.start, self.first = m, start, first
        self.k = Signal(counter_shape(words), name=f"{name}_k")
        self.have = Signal(name=f"{name}_have")
        self.finished = Signal(name=f"{name}_finished")
        self.have_now = self.have & ~first

    def advance(self, retire: Value, last: Value) -> Value:
        """Step on ``retire`` (``last``: ``k`` is the last word); returns "every word has
        retired, this cycle included"."""
        m = self.m
        with m.If(self.start):
            m.d.sync += [self.k.eq(0), self.have.eq(1), self.finished.eq(0)]
        with m.Elif(retire):
            with m.If(last):
                m.d.sync += [self.have.eq(0), self.finished.eq(1)]
            with m.Else():
                m.d.sync += self.k.eq(self.k + 1)
        return (self.finished & ~self.first) | (retire & last)


class Walker:
    """Walk the words of a bit-plane: one event per set (valid) lane, ``cost`` cycles each.

    The word-pass recurrence of docs/architecture.md section 5.3: cycle 0 issues the read of
    word 0; word k's data arrive in ``a_k``; its events start at ``a_k + e * cost``; it
    retires at ``f_k = a_k + max(empty, m_k cost) - 1``, where the next word's read issues
    (``empty``: the cycles of a word without events, 1 or 2).

    Attributes (combinational)
    --------------------------
    issue, issue_word : the bit-plane read this cycle and its word index.
    event, event_start, lane, sub : an event runs (its ``sub``-th cycle, lane ``lane``).
    k : word of the running event.
    finished : every word has retired (this cycle included).
    """

    def __init__(
        self, m: Module, name: str, *, active: Value, first: Value, words: int | Value, cost: int | Value,
        lanes: int, bits: Value, valid: Callable[[Value], Value], max_words: int = 0, max_cost: int = 0,
        empty: int = 1,
    ) -> None:
        # ``words`` and ``cost`` may be Values (a walker shared by layers): then ``max_*`` size it.
        sequence = WordSequence(
            m, name, start=active & first, first=first, words=words if isinstance(words, int) else max_words
        )
        self.k, have_now = sequence.k, sequence.have_now
        self.sub = Signal(counter_shape(cost if isinstance(cost, int) else max_cost), name=f"{name}_sub")
        self.cost = cost
        done_lanes = Signal(lanes, name=f"{name}_done_lanes")

        remaining = wire(m, bits & valid(self.k) & ~done_lanes, f"{name}_remaining")
        lane, one_hot = lowest(remaining, lanes)
        self.lane = wire(m, lane, f"{name}_lane")
        one_hot = wire(m, one_hot, f"{name}_one_hot")
        pending = remaining.any()
        self.event = wire(m, active & have_now & pending, f"{name}_event")
        self.event_start = wire(m, self.event & (self.sub == 0), f"{name}_event_start")
        event_end = self.event & (self.sub == cost - 1)
        alone = ~(remaining & ~one_hot).any()
        quiet = ~pending
        if empty == 2:  # a word without events retires in its second cycle
            waited = Signal(name=f"{name}_waited")
            with m.If(active & have_now & ~pending):
                m.d.sync += waited.eq(~waited)
            quiet &= waited
        retire = wire(m, active & have_now & (quiet | (event_end & alone)), f"{name}_retire")
        last = self.k == words - 1
        self.issue = wire(m, active & (first | (retire & ~last)), f"{name}_issue")
        self.issue_word = Mux(first, 0, self.k + 1)
        self.finished = sequence.advance(retire, last)

        with m.If(self.event):
            m.d.sync += self.sub.eq(Mux(event_end, 0, self.sub + 1))
            with m.If(event_end):
                m.d.sync += done_lanes.eq(done_lanes | one_hot)
        with m.If((active & first) | retire):
            m.d.sync += [done_lanes.eq(0), self.sub.eq(0)]
