"""Control helpers of the core's engines: named wires, the word sequence of a pass and
the bit-plane walker of the event-driven word passes (docs/architecture.md section 5.3)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, Value
from amaranth.lib import data

from hw.core_config import CoreConfig
from hw.queue import SpikeQueue

__all__ = [
    "PREFETCH_WORDS", "Walker", "WordSequence", "by_layer", "counter_shape", "delay", "lowest", "one_hot_pick", "one_hot_select", "per_layer", "popcount", "row_lanes", "runs", "scoreboard", "select",
    "decoder_lanes", "decoder_row_base", "step_base", "valid_lanes", "wire",
]

#: Words a walker reads ahead of its events (read and not retired): enough that the next
#: word is always offered in the cycle after a retire.
PREFETCH_WORDS = 4


def by_layer(layer: Value, values: Mapping[int, Value | int], shape) -> Value:
    """``values[layer]`` (0 on layers absent from ``values``): the operand of a datapath that
    the layers share, selected by the running pass's layer."""
    chosen = Const(0, shape)
    for index, value in values.items():
        chosen = Mux(layer == index, value, chosen)
    return chosen


def per_layer(layer: Value, values: Mapping[int, Value | int], shape) -> Value:
    """The value of the running layer among ``values`` (keyed by ``layer``'s value) of an
    engine that serves several layers; the only value, unselected, for an engine of one."""
    if len(values) == 1:
        return Value.cast(next(iter(values.values())))
    return by_layer(layer, values, shape)


def runs(layer: Value, index: int, served: Sequence[int]) -> Value:
    """Layer (stage) ``index`` runs, for an engine that serves ``served``: always, when it
    serves that one alone."""
    return Const(1) if len(served) == 1 else layer == index


def valid_lanes(config: CoreConfig, layer: int, word: Value) -> Value:
    """Lane mask of the neurons in ``word`` of ``layer`` (padding lanes of the last word
    clear; grid layers: of the last channel block at every position, a table)."""
    lanes = config.lanes
    full = (1 << lanes) - 1
    if config.grid(layer):
        if config.block_lanes(layer, config.channel_words(layer) - 1) == full:
            return Const(full, lanes)
        return select([config.valid_lanes(layer, k) for k in range(config.words[layer])], word, lanes)
    last = config.valid_lanes(layer, config.words[layer] - 1)
    return Mux(word == config.words[layer] - 1, last, full) if last != full else Const(full, lanes)


def row_lanes(config: CoreConfig, layer: int, word: Value) -> Value:
    """Lane mask of the outputs in ``word`` of a weight row of ``layer`` (FC neurons, conv
    output channels) or of its per-channel memories."""
    if config.grid(layer):
        words = config.channel_words(layer)
        return select([config.block_lanes(layer, u) for u in range(words)], word, config.lanes)
    return valid_lanes(config, layer, word)


def decoder_lanes(config: CoreConfig, word: Value) -> Value:
    """Lane mask of the classes in ``word`` of a fc decoder row."""
    return select([config.decoder_lanes(s) for s in range(config.decoder_words)], word, config.lanes)


def delay(m: Module, value: Value, cycles: int, name: str) -> list[Signal]:
    """``value`` registered ``1..cycles`` times: element ``n`` is ``value`` of ``n + 1`` cycles
    ago (views stay views of their layout)."""
    shape = value.shape() if isinstance(value, data.View) else Value.cast(value).shape()
    stages = [Signal(shape, name=f"{name}{n}") for n in range(cycles)]
    m.d.sync += [later.eq(earlier) for earlier, later in zip([value, *stages], stages)]
    return stages


def scoreboard(m: Module, name: str, *, read: Value, address: Value, cycles: int) -> Value:
    """Whether ``address`` was read (``read``) in one of the last ``cycles`` cycles: the
    hazard of a read whose word has a write in flight (written ``cycles`` cycles after its
    read, or ``cycles + 1`` behind a transparent port)."""
    reads = delay(m, read, cycles, f"{name}_recent")
    addresses = delay(m, address, cycles, f"{name}_recent_address")
    return Cat(valid & (held == address) for valid, held in zip(reads, addresses)).any()


def wire(m: Module, value: Value, name: str) -> Signal:
    """``value`` as a named combinational signal (emitted once, however often it is used)."""
    signal = Signal(Value.cast(value).shape(), name=name)
    m.d.comb += signal.eq(value)
    return signal


def counter_shape(count: int) -> range:
    """Shape of a counter or index over ``count`` values (at least one bit, never zero-width)."""
    return range(max(count, 2))


def lowest(bits: Value, lanes: int) -> tuple[Value, Value]:
    """``(index, one_hot)`` of the lowest set bit of ``bits`` (index 0, one-hot 0 if none):
    the one-hot isolated by a carry chain (``bits & -bits``), the index OR-encoded from it."""
    bits = Value.cast(bits)[:lanes]
    one_hot = (bits & (~bits + 1))[:lanes]
    return one_hot_select(range(lanes), one_hot, Shape.cast(counter_shape(lanes)).width), one_hot


def one_hot_select(values: Sequence[int], one_hot: Value, bits: int) -> Value:
    """``values[x]`` for the set bit ``x`` of ``one_hot`` (0 if none): an OR of AND terms,
    no index decoder."""
    return Cat(*(
        Cat(*(one_hot[x] for x, value in enumerate(values) if value >> b & 1), Const(0, 1)).any() for b in range(bits)
    ))


def one_hot_pick(values: Sequence[Value], one_hot: Value) -> Value:
    """``values[x]`` for the set bit ``x`` of ``one_hot`` (0 if none): an OR of AND terms
    (a table of constants: :func:`one_hot_select`, an OR of the one-hot bits per bit, which
    Yosys maps to fewer cells than this form of it)."""
    picked = Const(0, Value.cast(values[0]).shape())
    for x, value in enumerate(values):
        picked = picked | Mux(one_hot[x], value, 0)
    return picked


def popcount(bits: Value) -> Value:
    """Number of set bits."""
    return sum((bits[x] for x in range(len(bits))), Const(0, 1))


def select(values: Sequence[int], index: Value, bits: int) -> Value:
    """``values[index]`` of a constant table of ``bits``-wide entries (a ROM of Mux)."""
    return Array(Const(value, bits) for value in values)[index]


def step_base(t: Value, stride: int, steps: int, lag: int = 1) -> Value:
    """``(t - lag) * stride``, the first address of step ``t - lag`` in a memory of ``steps``
    blocks of ``stride`` words, as a table of constants indexed by t: no multiplier on the
    address path (0 for t < lag)."""
    bases = [max(step - lag, 0) * stride for step in range(steps + 1)]
    return select(bases, t, max(max(bases).bit_length(), 1))


def decoder_row_base(config: CoreConfig, t: Value) -> Value:
    """First word of step t's fc decoder rows: row ``(t-1) n_L + j`` starts ``j c_D`` later."""
    return step_base(t, config.sizes[-1] * config.decoder_words, config.timesteps)


class WordSequence:
    """The word counter of a pass that takes words one after another: ``k``, the register
    ``following`` = k + 1 (the next word's address, no adder behind it), whether a word is
    in hand (``have_now``) and, from :meth:`advance`, the pass's end.

    ``start`` (the pass's first cycle) loads word 0; each retire moves to the next word or,
    after the last, ends the pass.
    """

    def __init__(self, m: Module, name: str, *, start: Value, first: Value, words: int) -> None:
        self.m, self.start, self.first = m, start, first
        self.k = Signal(counter_shape(words), name=f"{name}_k")
        self.following = Signal(range(words + 1), name=f"{name}_following")
        self.have = Signal(name=f"{name}_have")
        self.finished = Signal(name=f"{name}_finished")
        self.have_now = self.have & ~first

    def advance(self, retire: Value, last: Value) -> Value:
        """Step on ``retire`` (``last``: ``k`` is the last word); returns "every word has
        retired, this cycle included"."""
        m = self.m
        with m.If(self.start):
            m.d.sync += [self.k.eq(0), self.following.eq(1), self.have.eq(1), self.finished.eq(0)]
        with m.Elif(retire):
            with m.If(last):
                m.d.sync += [self.have.eq(0), self.finished.eq(1)]
            with m.Else():
                m.d.sync += [self.k.eq(self.following), self.following.eq(self.following + 1)]
        return (self.finished & ~self.first) | (retire & last)


class Walker:
    """Walk the words of a bit-plane: one event per set (valid) lane, ``cost`` cycles each.

    The word-pass recurrence of docs/architecture.md section 5.3. A reader issues the
    bit-plane reads ahead, one per cycle while fewer than :data:`PREFETCH_WORDS` words are
    outstanding (read and not retired); each word read in cycle r enters a prefetch FIFO
    (:class:`hw.queue.SpikeQueue`) in ``r + 1`` with its valid lanes and is offered from
    ``r + 3``. So word 0's data are in hand in ``a_0 = WALK_LATENCY`` = 3 and every next
    word in the cycle after the last retired (``a_{k+1} = f_k + 1``); a word's events
    start at ``a_k + e * cost`` and it retires at ``f_k = a_k + max(empty, m_k cost) - 1``
    (``empty``: the cycles of a word without events, 1 or 2). The event logic works on the
    FIFO's registered output, never on a memory's read data.

    With ``rows`` (``{layer: c}``, the row length of each layer the walker serves, selected
    by ``layer``), ``address`` is the word ``i c + sub`` of the running event's row: the
    lane's ``x c`` is a table, and after an event's first cycle the address is a register
    counting up. Words retire in the order they are read, so the head word's ``k`` and its
    base ``k P c`` are counts of the retired words (registers), not carried by the FIFO.

    An engine whose events are not ``cost`` reads long (a conv event's in-image taps) gives
    ``end`` (the running event's last read, this cycle); ``stall`` holds the running event
    for a cycle without a read (a word whose write is in flight); ``tag`` (a value of the
    issued word, e.g. its grid position) travels through the FIFO with the word.

    Attributes (combinational)
    --------------------------
    issue, issue_word : the bit-plane read this cycle and its word index.
    event, event_start, lane, sub : an event runs (its ``sub``-th read, lane ``lane``).
    step : the running event reads this cycle (``event`` and no ``stall``).
    closing : its last read is this cycle.
    k, tag : word of the running event and its ``tag``.
    address : ``i c + sub`` of the running event (with ``rows``).
    finished : every word has retired (this cycle included).
    """

    def __init__(
        self, m: Module, name: str, *, active: Value, first: Value, words: int | Value, cost: int | Value,
        lanes: int, bits: Value, valid: Callable[[Value], Value], max_words: int = 0, max_cost: int = 0,
        empty: int = 1, rows: Mapping[int, int] | None = None, layer: Value | None = None,
        end: Value | None = None, stall: Value | None = None, tag: Value | None = None,
    ) -> None:
        # ``words`` and ``cost`` may be Values (a walker shared by layers): then ``max_*`` size it.
        most = words if isinstance(words, int) else max_words
        index_shape = counter_shape(most)

        # Reader: word ``issue_word`` in each cycle with room, ahead of the events.
        read = Signal(range(most + 1), name=f"{name}_read")
        read_now = Mux(first, 0, read)
        outstanding = Signal(range(PREFETCH_WORDS + 1), name=f"{name}_outstanding")
        outstanding_now = Mux(first, 0, outstanding)
        self.issue = wire(m, active & (read_now < words) & (outstanding_now < PREFETCH_WORDS), f"{name}_issue")
        self.issue_word = read_now
        with m.If(self.issue):
            m.d.sync += read.eq(read_now + 1)
        arrived = Signal(name=f"{name}_arrived")
        arrived_word = Signal(index_shape, name=f"{name}_arrived_word")
        m.d.sync += [arrived.eq(self.issue), arrived_word.eq(read_now)]
        carried = Cat()
        if tag is not None:
            carried = Signal(len(Value.cast(tag)), name=f"{name}_arrived_tag")
            m.d.sync += carried.eq(tag)
        fifo = SpikeQueue(index_bits=max(lanes + len(carried), 2), depth=PREFETCH_WORDS)
        m.submodules[f"{name}_prefetch"] = fifo
        m.d.comb += [
            fifo.push.valid.eq(arrived),
            fifo.push.payload.eq(Cat(bits & valid(arrived_word), carried)),
            fifo.clear_high_water.eq(0),
        ]

        # Events: the lanes of the FIFO's head word, lowest first; the head word is the
        # pass's ``retired``-th, its base ``k P c`` the retired words' (no retire in a pass's
        # first cycle: the FIFO is empty).
        held = fifo.pop.payload
        retired = Signal(range(most + 1), name=f"{name}_retired")
        retired_now = Mux(first, 0, retired)
        self.k = Signal(index_shape, name=f"{name}_k")
        m.d.comb += self.k.eq(retired_now)
        rows = dict(rows or {})
        longest = max((most * lanes * c for c in rows.values()), default=1)
        base = Signal(range(longest + 1), name=f"{name}_base")
        held_base = Mux(first, 0, base)
        self.tag = held[lanes:lanes + len(carried)] if tag is not None else None
        # The FIFO holds words only inside the walker's pass (empty in its first cycle and
        # after its last retire), so its head needs no pass decode.
        have_now = fifo.pop.valid
        self.sub = Signal(counter_shape(cost if isinstance(cost, int) else max_cost), name=f"{name}_sub")
        self.cost = cost
        done_lanes = Signal(lanes, name=f"{name}_done_lanes")
        remaining = wire(m, held[:lanes] & ~done_lanes, f"{name}_remaining")
        lane, one_hot = lowest(remaining, lanes)
        self.lane = wire(m, lane, f"{name}_lane")
        one_hot = wire(m, one_hot, f"{name}_one_hot")
        pending = remaining.any()
        self.event = wire(m, have_now & pending, f"{name}_event")
        self.event_start = wire(m, self.event & (self.sub == 0), f"{name}_event_start")
        self.step = self.event if stall is None else wire(m, self.event & ~stall, f"{name}_step")
        event_end = self.closing = wire(
            m, self.step & ((self.sub == cost - 1) if end is None else end), f"{name}_closing"
        )
        alone = ~(remaining & ~one_hot).any()
        quiet = ~pending
        if empty == 2:  # a word without events retires in its second cycle
            waited = Signal(name=f"{name}_waited")
            with m.If(have_now & ~pending):
                m.d.sync += waited.eq(~waited)
            quiet &= waited
        retire = wire(m, have_now & (quiet | (event_end & alone)), f"{name}_retire")
        m.d.comb += fifo.pop.ready.eq(retire)
        m.d.sync += outstanding.eq(outstanding_now + self.issue - retire)
        m.d.sync += retired.eq(retired_now + retire)
        row_step = by_layer(layer, {i: lanes * c for i, c in rows.items()}, base.shape())
        base_next = held_base + Mux(retire, row_step, 0)
        m.d.sync += base.eq(base_next)
        self.finished = wire(m, active & ~first & (retired_now + retire == words), f"{name}_finished")

        # The first word of each lane's row, ``base + x c``, registered with the base (an
        # event starts no sooner than the cycle after its word's base is known): the lane
        # select picks a register, no adder behind it.
        starts = []
        for x in range(lanes):
            start = Signal(base.shape(), name=f"{name}_row_start{x}")
            m.d.sync += start.eq(base_next + by_layer(layer, {i: x * c for i, c in rows.items()}, base.shape()))
            starts.append(start)
        following = Signal(base.shape(), name=f"{name}_following")  # the next word of the row
        self.address = wire(m, Mux(self.sub == 0, one_hot_pick(starts, one_hot), following), f"{name}_address")
        with m.If(self.step):
            m.d.sync += following.eq(self.address + 1)
            m.d.sync += self.sub.eq(Mux(event_end, 0, self.sub + 1))
            with m.If(event_end):
                m.d.sync += done_lanes.eq(done_lanes | one_hot)
        with m.If((active & first) | retire):
            m.d.sync += [done_lanes.eq(0), self.sub.eq(0)]
