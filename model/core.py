"""Event-driven model of the spikeforge core: the schedule the RTL implements.

:class:`CoreModel` runs an :class:`~model.integer.IntegerNetwork` (FC, 3x3 conv and AP2
layers; word layout and address patterns in :mod:`model.core_layout`)
the way the core does (docs/architecture.md): ``P`` lanes, one memory row per
presynaptic neuron, a fire scan per layer and time step that pushes spikes into the next
layer's AER queue (finite depth, backpressure, no event ever dropped) while an integrate
engine drains it, then a backward pass driven by event lists (neurons with ``h = 1`` for
the eq. 15 dot products, presynaptic spikes for the dW rows) and the update every B
samples. The arithmetic is the integer model's (:mod:`model.fixed` primitives applied in
the core's event order), so the results equal :class:`~model.integer.IntegerNetwork`'s
bit for bit; on top of them the model counts every event, memory access and cycle.

Cycle counts follow closed recurrences over the per-word event counts
(:func:`forward_stage_timing`, :func:`event_pass_timing`), written out in
docs/architecture.md section 5. Every memory write can be recorded as a
:class:`TraceRecord` (the co-simulation scoreboard's reference, section 6).

Names: ``P`` (:attr:`CoreModel.lanes`) is the number of lanes, ``Q``
(:attr:`CoreModel.queue_depth`) the capacity of each spike queue, ``n_l`` the neurons
of layer ``l`` (0 = encoder) and ``w_l = ceil(n_l / P)`` its words.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from model import metrics
from model.checks import check_int
from model.fixed import (
    LFSR,
    ceil_log2,
    fire_scan,
    accumulate_sequence,
    mux_dv,
    reciprocal,
    round_shift,
    saturate,
)
from model.core_layout import CoreLayout
from model.integer import IntegerNetwork, label_target, output_error, output_sums, shift_offsets
from model.spec import NetworkSpec
from model.units import (
    DOT_PRODUCT_LANE_LATENCY,
    DV_UNIT_LATENCY,
    GRADIENT_ACCUMULATOR_LATENCY,
    NEURON_LANE_LATENCY,
    UPDATE_UNIT_LATENCY,
)

__all__ = [
    "CONTROL_LATENCY",
    "DV_LATENCY",
    "DIVIDER_LATENCY",
    "DECODE_LATENCY",
    "DVTH_LATENCY",
    "DW_EMPTY_WORD_CYCLES",
    "DW_LATENCY",
    "INTEGRATE_LATENCY",
    "MEMORIES",
    "OPERAND_REGISTERS",
    "PHASES",
    "QUEUE_LATENCY",
    "READOUT_LATENCY",
    "SCAN_LATENCY",
    "UPDATE_LATENCY",
    "WALK_LATENCY",
    "CoreCounters",
    "CoreModel",
    "CoreResult",
    "LayerCounters",
    "PassTiming",
    "PhaseCounters",
    "StageTiming",
    "TraceRecord",
    "check_core_spec",
    "sweep_timing",
    "threshold_update_timing",
    "event_pass_timing",
    "forward_stage_timing",
    "integrate_stage_timing",
    "scoreboard_reads",
    "walk_timing",
    "read_trace",
    "run_samples",
    "write_trace",
]

#: Phases of one sample, in order (``backward`` and ``update`` only when learning).
PHASES = ("clear", "forward", "readout", "backward", "update")

#: Memories of each layer, in the order the trace lists same-cycle writes of one layer
#: (``D``, ``DD``: the fc decoder's weights and accumulators, with the output layer).
MEMORIES = ("PIX", "V", "VTH", "R", "S", "H", "W", "DV", "DW", "DVTH", "D", "DD")
#: Longest line :func:`read_trace` accepts (bytes).
TRACE_LINE_BYTES = 1 << 20

#: Cycles between a pass's last activity (cycle X) and the next pass's first cycle, less
#: one: the controller registers the datapath's done, so a pass lasts ``D = X + 1 +
#: CONTROL_LATENCY`` cycles and its engines are idle in its last cycle.
CONTROL_LATENCY = 1
#: Cycles from a push into an empty spike queue to the cycle it is offered on ``pop``
#: (``hw.queue.SpikeQueue``: SyncFIFOBuffered with a registered output), the same at every
#: depth Q >= 1.
QUEUE_LATENCY = 2
#: Event-driven word passes (DV, DW): a bit-plane word read in cycle r is offered to the
#: walker from r + 1 + QUEUE_LATENCY (its prefetch FIFO); word 0 is read in cycle 0.
WALK_LATENCY = 1 + QUEUE_LATENCY
#: Readout: class c's count and membrane are read in cycle c and compared in c + 1.
READOUT_LATENCY = 1
#: Forward scan: a word's read data (cycle ``k + 1``) registered, then the neuron lane's two
#: stages (``hw.neuron.NeuronLane``): V, S, H written in ``k + 1 + SCAN_LATENCY``.
SCAN_LATENCY = 1 + NEURON_LANE_LATENCY
#: Integrate: a word read in cycle x is written in ``x + INTEGRATE_LATENCY`` (data, operand
#: register, the neuron lane's two stages); the V read port is transparent to its write
#: port, so events start at least INTEGRATE_LATENCY cycles apart (the hazard rule).
INTEGRATE_LATENCY = 2 + NEURON_LANE_LATENCY
#: dV: from an event's last read (e) to its dV write: the words' data (e + 1) and registers
#: (e + 2), the dot product's two stages, its sum with R and the output error registered
#: (e + 4), the dV unit's two stages (``hw.dv.DvUnit``); the same for every layer.
DV_LATENCY = 2 + DOT_PRODUCT_LANE_LATENCY + DV_UNIT_LATENCY
#: dW row update: a word read in cycle x is written in x + 3 (its data registered, then the
#: gradient accumulator's stage); the distance is odd, for the single-port weight banks.
DW_LATENCY = 2 + GRADIENT_ACCUMULATOR_LATENCY
#: DW (and the fc decoder's dD) passes: cycles of a bit-plane word without events; even, so
#: that a row's reads keep the parity of their cycles (docs/architecture.md section 2.1).
DW_EMPTY_WORD_CYCLES = 2
#: dVth accumulation: a word's data (``a_k``) registered, then the accumulator's stage:
#: written in ``a_k + 2``.
DVTH_LATENCY = 1 + GRADIENT_ACCUMULATOR_LATENCY
#: The fc decoder's readout: a D word is added into the class sums the cycle after its read.
DECODE_LATENCY = 1


#: Registers between a memory's read data and a shared datapath unit: the words read, then
#: the running layer's words (the layer multiplexer has a cycle of its own).
OPERAND_REGISTERS = 2
#: Update passes: cycles from a word's read data (``a_k``) to its write, through the
#: operand registers and the update unit's two stages (``hw.update.UpdateUnit``).
UPDATE_LATENCY = OPERAND_REGISTERS + UPDATE_UNIT_LATENCY
#: Reciprocal divider: an operand accepted in cycle ``a`` gives R in ``a + K + DIVIDER_LATENCY``.
DIVIDER_LATENCY = 2


# Timing recurrences --------------------------------------------------------------------


@dataclass(frozen=True)
class StageTiming:
    """Cycle timing of one forward stage (fire scan of layer l || integrate into l+1).

    All cycles are relative to the stage's first cycle (the scan's first read).

    Attributes
    ----------
    cycles : int
        Stage length ``D = X + 1 + CONTROL_LATENCY``, X the last cycle with a retire or a write.
    retire : tuple of int
        ``f_k``: the cycle the scan writes word k (V, S, H).
    push : tuple of int
        ``p_e``: the cycle spike event e (in push order) is pushed into the queue.
    pop : tuple of int
        ``s_e``: the cycle the integrate engine pops event e and reads its first word.
    stall_cycles : int
        Cycles a spike waited for room in the queue (``sum_e p_e - ready_e``).
    high_water : int
        Largest queue occupancy during the stage (0 without a queue).
    reads : tuple of numpy.ndarray
        Per event, the cycles it reads its V words (each written INTEGRATE_LATENCY later).
    """

    cycles: int
    retire: tuple[int, ...]
    push: tuple[int, ...]
    pop: tuple[int, ...]
    stall_cycles: int
    high_water: int
    reads: tuple[np.ndarray, ...] = ()


def forward_stage_timing(
    word_events: Sequence[int], fanout_words: int | None, depth: int
) -> StageTiming:
    """The forward stage recurrence of a flat layer into an FC layer (docs/architecture.md
    section 5.2): :func:`integrate_stage_timing` with the scan in address order, the spikes
    of word k offered at ``f_k + QUEUE_LATENCY`` and every event reading the
    ``fanout_words`` words ``0..c-1`` (``None``: the output layer, no queue).

    Parameters
    ----------
    word_events : sequence of int
        Spikes in each word of the scanned layer, ``m_k``, k = 0..w_l-1 (0..P each).
    fanout_words : int or None
        ``c = ceil(n_{l+1} / P)``.
    depth : int
        Queue capacity Q, 1 or more.
    """
    counts = np.asarray(word_events, dtype=np.int64).reshape(-1)
    retire = np.arange(len(counts)) + 1 + SCAN_LATENCY
    if fanout_words is None:
        return integrate_stage_timing(retire, [], [], depth)
    c = check_int("fanout_words", fanout_words, minimum=1)
    ready = np.repeat(retire + QUEUE_LATENCY, counts)
    words = np.arange(c, dtype=np.int64)
    return integrate_stage_timing(retire, ready, [words] * len(ready), depth)


def scoreboard_reads(start: int, words: np.ndarray, written: np.ndarray) -> np.ndarray:
    """Read cycles of one event's words (distinct addresses, read one per cycle from
    ``start``): a read waits until ``written[word]``, the first cycle it may read that word
    (the last in-flight write's cycle, or one more without a transparent port):
    ``x_r = max(x_{r-1} + 1, written[A_r])``, i.e. ``r + max(start, cummax(written[A] - r))``."""
    offset = np.arange(len(words), dtype=np.int64)
    return offset + np.maximum(start, np.maximum.accumulate(written[words] - offset))


def integrate_stage_timing(
    retire: Sequence[int], ready: Sequence[int], reads: Sequence[np.ndarray], depth: int
) -> StageTiming:
    """The forward stage recurrence (docs/architecture.md section 5.2), any layer kind.

    Parameters
    ----------
    retire : sequence of int
        ``f``: the cycle the scan writes the word it reads in each cycle (scan order).
    ready : sequence of int
        Per event in push order, the cycle its spike is offered to the pusher (its lane
        FIFO or word FIFO output).
    reads : sequence of numpy.ndarray
        Per event, the target layer's V words it reads, one per cycle (distinct).
    depth : int
        Queue capacity Q, 1 or more.

    Notes
    -----
    Event e is pushed at ``p_e = max(ready_e, p_{e-1} + 1, s_{e-Q} + 1)`` (the queue is full
    until event e-Q has been popped) and popped at ``s_e``, its first read; its reads follow
    one per cycle, each waiting for the V write of an earlier read of the same word
    (:func:`scoreboard_reads`; the V read port is transparent, so a read may share the
    write's cycle, ``INTEGRATE_LATENCY`` after the earlier read):
    ``s_e = max(p_e + QUEUE_LATENCY, x_last(e-1) + 1, hazards)``. Each word read in x is
    written in ``x + INTEGRATE_LATENCY``. ``X = max(f_last, x_last + INTEGRATE_LATENCY)``,
    ``D = X + 1 + CONTROL_LATENCY``.
    """
    depth = check_int("depth", depth, minimum=1)
    retire = tuple(int(x) for x in retire)
    size = 1 + max((int(r.max()) for r in reads if len(r)), default=0)
    written = np.full(size, -(1 << 40), np.int64)
    push: list[int] = []
    pop: list[int] = []
    cycles: list[np.ndarray] = []
    stalls = high_water = popped = 0
    last = retire[-1] if retire else 0
    previous = -(1 << 40)
    for e, (offered, words) in enumerate(zip(ready, reads)):
        offered = int(max(offered, push[-1] + 1)) if push else int(offered)
        cycle = offered if e < depth else max(offered, pop[e - depth] + 1)
        stalls += cycle - offered
        push.append(cycle)
        at = scoreboard_reads(max(cycle + QUEUE_LATENCY, previous + 1), words, written)
        written[words] = at + INTEGRATE_LATENCY
        cycles.append(at)
        pop.append(int(at[0]))
        previous = int(at[-1])
        while pop[popped] <= cycle:
            popped += 1
        high_water = max(high_water, e + 1 - popped)
    if cycles:
        last = max(last, previous + INTEGRATE_LATENCY)
    return StageTiming(
        last + 1 + CONTROL_LATENCY, retire, tuple(push), tuple(pop), stalls, high_water, tuple(cycles)
    )


@dataclass(frozen=True)
class PassTiming:
    """Cycle timing of one event-driven word pass (backward dV, dW, dVth; update).

    Attributes
    ----------
    cycles : int
        Pass length ``D = X + 1 + CONTROL_LATENCY``.
    data : tuple of int
        ``a_k``: the cycle word k's read data is available (its events start then).
    retire : tuple of int
        ``f_k``: the cycle word k retires (the next word's read issues).
    reads : tuple of numpy.ndarray
        Per event (walk order) the cycles of its reads (:func:`walk_timing` only).
    """

    cycles: int
    data: tuple[int, ...]
    retire: tuple[int, ...]
    reads: tuple[np.ndarray, ...] = ()

    def event_starts(self, word: int, events: int, cost: int) -> range:
        """Start cycles of the ``events`` events of ``word`` (``a_k + j * cost``)."""
        start = self.data[word]
        return range(start, start + events * cost, cost)


def event_pass_timing(word_events: Sequence[int], cost: int, latency: int, empty: int = 1) -> PassTiming:
    """The word-pass recurrence (docs/architecture.md section 5.3).

    The bit-plane walker reads ahead (``hw.core.walk.Walker``): word 0 is in hand at
    ``a_0 = WALK_LATENCY``, every next word at ``a_k = f_{k-1} + 1``, and it retires at ``f_k = a_k + m_k * cost - 1`` (``a_k + empty - 1`` without events);
    the last event of word k
    writes its result at ``f_k + latency``. ``X = max(f_last, f_k* + latency)`` with k* the
    last word with events, ``D = X + 1 + CONTROL_LATENCY``.

    Parameters
    ----------
    word_events : sequence of int
        Events per word, ``m_k``.
    cost : int
        Cycles per event, 1 or more.
    latency : int
        Cycles from a word's retire to its last write, 0 or more.
    empty : int
        Cycles of a word without events, 1 or 2 (``DW_EMPTY_WORD_CYCLES``).
    """
    cost = check_int("cost", cost, minimum=1)
    latency = check_int("latency", latency, minimum=0)
    empty = check_int("empty", empty, minimum=1, maximum=2)
    counts = np.asarray(word_events, dtype=np.int64).reshape(-1)
    if not counts.size:
        return PassTiming(1 + CONTROL_LATENCY, (), ())
    duration = np.where(counts > 0, counts * cost, empty)
    retire = np.cumsum(duration) + WALK_LATENCY - 1
    data = retire - duration + 1
    last = int(retire[-1])
    busy = np.flatnonzero(counts)
    if busy.size:
        last = max(last, int(retire[busy[-1]]) + latency)
    return PassTiming(last + 1 + CONTROL_LATENCY, tuple(data.tolist()), tuple(retire.tolist()))


def walk_timing(
    word_events: Sequence[int], reads: Sequence[np.ndarray], latency: int, empty: int = 1,
    distance: int | None = None,
) -> PassTiming:
    """The word-pass recurrence (docs/architecture.md section 5.3) with events of any length
    and, for a pass that rewrites the words it reads, the read-after-write stall.

    Parameters
    ----------
    word_events : sequence of int
        Events per word, ``m_k`` (walk order: addresses ascending).
    reads : sequence of numpy.ndarray
        Per event in walk order, the words it reads (one per cycle, distinct); its length
        is the event's cost.
    latency : int
        Cycles from an event's last read to its last write.
    empty : int
        Cycles of a word without events (1, or ``DW_EMPTY_WORD_CYCLES``).
    distance : int or None
        A word read in x is rewritten in ``x + distance - 1`` and may be read again from
        ``x + distance`` (DW passes: ``DW_LATENCY + 1``, the DW port is not transparent);
        ``None``: the pass reads no word it writes.

    Notes
    -----
    ``a_0 = WALK_LATENCY``; word k's events read back to back from ``a_k`` (each read
    waiting as :func:`scoreboard_reads`), ``f_k`` its last read (``a_k + empty - 1``
    without events), ``a_{k+1} = f_k + 1``; ``X = max(f_last, f_k* + latency)``.
    """
    latency = check_int("latency", latency, minimum=0)
    empty = check_int("empty", empty, minimum=1, maximum=2)
    counts = np.asarray(word_events, dtype=np.int64).reshape(-1)
    if not counts.size:
        return PassTiming(1 + CONTROL_LATENCY, (), ())
    size = 1 + max((int(r.max()) for r in reads if len(r)), default=0)
    written = np.full(size, -(1 << 40), np.int64)
    data, retire, cycles = [], [], []
    start, last, e = WALK_LATENCY, 0, 0
    for count in counts.tolist():
        data.append(start)
        end = start + empty - 1
        for _ in range(count):
            at = scoreboard_reads(start, reads[e], written)
            if distance is not None:
                written[reads[e]] = at + distance
            cycles.append(at)
            start = int(at[-1]) + 1
            end = last = start - 1
            e += 1
        retire.append(end)
        start = end + 1
    final = max(retire[-1], last + latency if cycles else 0)
    return PassTiming(final + 1 + CONTROL_LATENCY, tuple(data), tuple(retire), tuple(cycles))


def sweep_timing(words: int, latency: int) -> PassTiming:
    """A pass that reads every word of a memory, one per cycle (the weight update): word k's
    data arrive in ``a_k = k + 1``, its write lands in ``a_k + latency``."""
    words = check_int("words", words, minimum=1)
    latency = check_int("latency", latency, minimum=0)
    data = tuple(range(1, words + 1))
    return PassTiming(words + latency + 1 + CONTROL_LATENCY, data, data)


def threshold_update_timing(changed_words: Sequence[bool], k: int) -> PassTiming:
    """The threshold update of one layer: word k is read in ``f_{k-1}`` (``f_{-1} = 0``),
    its data arrive in ``a_k``, VTH and DVTH are written in ``a_k + UPDATE_LATENCY``; a word
    with a changed threshold hands it to the lane dividers then and writes R (and retires)
    in ``f_k = a_k + UPDATE_LATENCY + K + DIVIDER_LATENCY``, else it retires at its write."""
    k = check_int("k", k, minimum=1)
    changed = np.asarray(changed_words, dtype=bool).reshape(-1)
    duration = UPDATE_LATENCY + 1 + np.where(changed, k + DIVIDER_LATENCY, 0)
    retire = np.cumsum(duration)
    data = retire - duration + 1
    last = int(retire[-1]) if retire.size else 0
    return PassTiming(last + 1 + CONTROL_LATENCY, tuple(data.tolist()), tuple(retire.tolist()))


# Counters ------------------------------------------------------------------------------


def _merge_counts(into: dict[str, int], other: dict[str, int]) -> None:
    for name, count in other.items():
        into[name] = into.get(name, 0) + count


@dataclass
class LayerCounters:
    """Events, memory accesses and cycles of one layer in one phase.

    Forward counters of layer l cover its fire scan and the integration of its spikes into
    layer l+1 (the stage that also spends layer l's synaptic operations); backward
    counters cover layer l's dV, its dW rows (layer l's weights) and its dVth; update
    counters layer l's weights and thresholds.

    Attributes
    ----------
    cycles : int
        Cycles of the layer's stages/passes in this phase.
    spikes : int
        Spikes the layer emitted.
    synaptic_ops : int
        Forward synaptic operations: spikes x fan-out (``n_{l+1}``).
    active_neuron_updates, idle_neuron_updates : int
        Fire-scan neuron updates with / without input current in that step (encoder: a
        nonzero pixel; layer l: at least one spike of layer l-1). ``neuron_updates`` is
        their sum (``n_l`` per step).
    window_events : int
        Backward h = 1 events processed (one eq. 15 mux each).
    dot_macs : int
        Backward multiply-accumulates of the eq. 15 dot products (events x ``n_{l+1}``).
    mux_ops : int
        eq. 15 multiplies ``(acc * R) >> K`` (one per window event).
    dw_rows, dw_adds : int
        dW row updates (presynaptic spikes) and their element adds (rows x ``n_l``).
    dvth_adds : int
        dVth element adds (neurons that fired at t-1, t >= 2).
    weight_updates, threshold_updates, reciprocals : int
        Update phase: weights and thresholds rounded and applied, reciprocals recomputed.
    stall_cycles : int
        Cycles the fire scan waited for a full spike queue.
    queue_high_water : int
        Largest occupancy of the queue into layer l+1 (merged with ``max``).
    words_read, words_written : dict of str to int
        Memory words (P lanes each) read / written, by memory name (:data:`MEMORIES`).
    """

    cycles: int = 0
    spikes: int = 0
    synaptic_ops: int = 0
    active_neuron_updates: int = 0
    idle_neuron_updates: int = 0
    window_events: int = 0
    dot_macs: int = 0
    mux_ops: int = 0
    dw_rows: int = 0
    dw_adds: int = 0
    dvth_adds: int = 0
    weight_updates: int = 0
    threshold_updates: int = 0
    reciprocals: int = 0
    stall_cycles: int = 0
    queue_high_water: int = 0
    words_read: dict[str, int] = field(default_factory=dict)
    words_written: dict[str, int] = field(default_factory=dict)

    @property
    def neuron_updates(self) -> int:
        """Fire-scan neuron (membrane) updates, active and idle."""
        return self.active_neuron_updates + self.idle_neuron_updates

    def read(self, memory: str, words: int) -> None:
        """Count ``words`` reads of ``memory``."""
        self.words_read[memory] = self.words_read.get(memory, 0) + int(words)

    def write(self, memory: str, words: int) -> None:
        """Count ``words`` writes of ``memory``."""
        self.words_written[memory] = self.words_written.get(memory, 0) + int(words)

    def merge(self, other: LayerCounters) -> None:
        """Add ``other``'s counts (``queue_high_water``: the larger)."""
        for item in fields(self):
            name = item.name
            if name in ("words_read", "words_written"):
                _merge_counts(getattr(self, name), getattr(other, name))
            elif name == "queue_high_water":
                self.queue_high_water = max(self.queue_high_water, other.queue_high_water)
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts (``neuron_updates`` included)."""
        data = {item.name: getattr(self, item.name) for item in fields(self)}
        data["words_read"] = dict(sorted(self.words_read.items()))
        data["words_written"] = dict(sorted(self.words_written.items()))
        data["neuron_updates"] = self.neuron_updates
        return data


@dataclass
class PhaseCounters:
    """Counters of one phase: the phase's cycles and one :class:`LayerCounters` per layer.

    ``cycles`` is the phase total; the layers' ``cycles`` add up to it except for the
    parallel memory clears (``clear`` phase, start of ``backward``) and the readout, which
    belong to no layer.
    """

    name: str
    layers: list[LayerCounters]
    cycles: int = 0

    def merge(self, other: PhaseCounters) -> None:
        """Add ``other`` (same phase and layer count)."""
        if other.name != self.name or len(other.layers) != len(self.layers):
            raise ValueError(f"phase: cannot merge {other.name!r} into {self.name!r}")
        self.cycles += other.cycles
        for mine, theirs in zip(self.layers, other.layers):
            mine.merge(theirs)

    def total(self) -> LayerCounters:
        """The layers' counters added up (``queue_high_water``: the largest)."""
        out = LayerCounters()
        for layer in self.layers:
            out.merge(layer)
        out.cycles = self.cycles
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"cycles": self.cycles, "layers": [layer.to_dict() for layer in self.layers]}


@dataclass
class CoreCounters:
    """Counters of one or more samples, by phase (:data:`PHASES` order).

    Attributes
    ----------
    phases : dict of str to PhaseCounters
        The phases that ran.
    samples : int
        Samples merged into these counters.
    """

    phases: dict[str, PhaseCounters] = field(default_factory=dict)
    samples: int = 0

    def phase(self, name: str, layers: int) -> PhaseCounters:
        """The counters of phase ``name``, created (with ``layers`` layers) when missing."""
        if name not in self.phases:
            self.phases[name] = PhaseCounters(name, [LayerCounters() for _ in range(layers)])
        return self.phases[name]

    @property
    def cycles(self) -> int:
        """All cycles of all phases."""
        return sum(phase.cycles for phase in self.phases.values())

    def cycles_by_phase(self) -> dict[str, int]:
        """``{phase: cycles}`` in :data:`PHASES` order."""
        return {name: self.phases[name].cycles for name in PHASES if name in self.phases}

    def merge(self, other: CoreCounters) -> None:
        """Add another sample's (or run's) counters."""
        for name in PHASES:
            if name in other.phases:
                theirs = other.phases[name]
                self.phase(name, len(theirs.layers)).merge(theirs)
        self.samples += other.samples

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "cycles": self.cycles,
            "phases": {name: self.phases[name].to_dict() for name in PHASES if name in self.phases},
        }


# Trace -----------------------------------------------------------------------------------


class TraceRecord(NamedTuple):
    """One memory write of the core (docs/architecture.md section 6).

    Attributes
    ----------
    sample : int
        Index of the :meth:`CoreModel.infer` / ``learn`` / ``flush`` call since the model
        was built (0-based).
    cycle : int
        Cycle of the write, counted from the sample's first cycle (``clear``).
    phase : str
        One of :data:`PHASES`.
    layer : int
        Layer owning the memory (0 = encoder).
    t : int
        Time step 1..T, or 0 in ``clear`` and ``update``.
    memory : str
        One of :data:`MEMORIES`.
    address : int
        Word address (docs/architecture.md section 2).
    mask : int
        Lane-enable bits (bit j = lane j); padding lanes are never enabled.
    data : tuple of int
        The P lanes of the word after the write (padding lanes hold 0).
    """

    sample: int
    cycle: int
    phase: str
    layer: int
    t: int
    memory: str
    address: int
    mask: int
    data: tuple[int, ...]

    def to_json(self) -> str:
        """The record as one compact JSON object (a line of :func:`write_trace`)."""
        return json.dumps(self._asdict(), separators=(",", ":"))

    def sort_key(self) -> tuple[int, int, int]:
        """Order of writes in one sample: cycle, then layer, then :data:`MEMORIES` order."""
        return self.cycle, self.layer, MEMORIES.index(self.memory)


def write_trace(records: Iterable[TraceRecord], path: str | os.PathLike[str]) -> int:
    """Write records as JSON lines (one object per write, field names as :class:`TraceRecord`).

    Returns
    -------
    int
        Records written.
    """
    count = 0
    with Path(path).open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(record.to_json() + "\n")
            count += 1
    return count


def read_trace(path: str | os.PathLike[str]) -> list[TraceRecord]:
    """Read a trace written by :func:`write_trace`.

    Each line is one JSON object of at most :data:`TRACE_LINE_BYTES` bytes with exactly
    the fields of :class:`TraceRecord`: integers >= 0, ``phase`` in :data:`PHASES`,
    ``memory`` in :data:`MEMORIES`, ``data`` a list of integers.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    ValueError
        When a line is not UTF-8, too long, or not a trace record (naming the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trace {str(path)!r} does not exist or is not a file")
    records = []
    with path.open("rb") as handle:
        for number in itertools.count(1):
            line = handle.readline(TRACE_LINE_BYTES + 1)
            if not line:
                break
            if len(line) > TRACE_LINE_BYTES:
                raise ValueError(f"{path}:{number}: line longer than {TRACE_LINE_BYTES} bytes")
            try:
                records.append(_trace_record(json.loads(line.decode("utf-8"))))
            except RecursionError:
                raise ValueError(f"{path}:{number}: not a trace record (nested too deeply)") from None
            except ValueError as error:  # JSON, UTF-8 and field errors
                raise ValueError(f"{path}:{number}: not a trace record ({error})") from None
    return records


def _trace_record(item: Any) -> TraceRecord:
    """The record of one parsed trace line, every field checked."""
    if not isinstance(item, dict) or set(item) != set(TraceRecord._fields):
        raise ValueError(f"expected an object with the fields {', '.join(TraceRecord._fields)}")
    if item["phase"] not in PHASES or item["memory"] not in MEMORIES:
        raise ValueError(f"phase must be one of {', '.join(PHASES)} and memory one of {', '.join(MEMORIES)}")
    data = item["data"]
    if not isinstance(data, list):
        raise ValueError("data: must be a list of integers")
    fields = {name: item[name] for name in ("sample", "cycle", "layer", "t", "address", "mask")}
    numbers = {name: check_int(name, value, minimum=0, type_error=ValueError) for name, value in fields.items()}
    lanes = tuple(check_int("data", value, minimum=-(1 << 63), maximum=(1 << 64) - 1, type_error=ValueError) for value in data)
    return TraceRecord(phase=item["phase"], memory=item["memory"], data=lanes, **numbers)


# Results ---------------------------------------------------------------------------------


@dataclass
class CoreResult:
    """Outcome of :meth:`CoreModel.infer` or :meth:`CoreModel.learn` on one sample.

    Attributes
    ----------
    prediction : int
        Predicted class (readout rule of docs/numerics.md section 2.1).
    counts : numpy.ndarray
        Class spike counts ``n_c``, int64 (classes,).
    last_membrane : numpy.ndarray
        Output membranes at t = T after integration, before the reset, int64 (n_L,).
    membranes : list of numpy.ndarray
        Every layer's membrane after the last fire scan, int64 (n_l,), l = 0..L.
    spikes, windows : list of numpy.ndarray
        S and h bit-planes, bool (T, n_l), l = 0..L.
    counters : CoreCounters
        This sample's counters.
    trace : list of TraceRecord
        Memory writes in the core's order (empty unless tracing was asked for).
    """

    prediction: int
    counts: np.ndarray
    last_membrane: np.ndarray
    membranes: list[np.ndarray]
    spikes: list[np.ndarray]
    windows: list[np.ndarray]
    counters: CoreCounters
    trace: list[TraceRecord]

    @property
    def cycles(self) -> dict[str, int]:
        """Cycles per phase."""
        return self.counters.cycles_by_phase()


# The core --------------------------------------------------------------------------------


class _Recorder:
    """Collects trace records of one sample (a no-op when tracing is off)."""

    def __init__(self, enabled: bool, sample: int, lanes: int) -> None:
        self.enabled = enabled
        self.sample = sample
        self.lanes = lanes
        self.records: list[TraceRecord] = []

    def word(self, values: np.ndarray, word: int) -> tuple[int, ...]:
        """Lanes of ``word`` of a per-neuron vector (padding lanes 0)."""
        chunk = values[word * self.lanes : (word + 1) * self.lanes]
        out = [int(x) for x in chunk]
        return tuple(out + [0] * (self.lanes - len(out)))

    def add(
        self, cycle: int, phase: str, layer: int, t: int, memory: str, address: int, mask: int,
        data: tuple[int, ...],
    ) -> None:
        self.records.append(
            TraceRecord(self.sample, int(cycle), phase, layer, t, memory, int(address), int(mask), data)
        )

    def sorted(self) -> list[TraceRecord]:
        return sorted(self.records, key=TraceRecord.sort_key)


def _mask(bits: np.ndarray) -> int:
    """Lane mask of a bool vector of at most P lanes (bit j = lane j)."""
    return int(np.dot(np.asarray(bits, np.int64), 1 << np.arange(len(bits), dtype=np.int64)))


def check_core_spec(spec: NetworkSpec) -> None:
    """Raise ``ValueError`` naming ``spec`` unless the core model can run it: FC, 3x3 conv
    and AP2 layers on flat or image inputs, every decoder (the last layer is FC, which
    :class:`~model.spec.NetworkSpec` already requires)."""
    if not isinstance(spec, NetworkSpec):
        raise ValueError(f"spec: expected a NetworkSpec, got {type(spec).__name__}")


class CoreModel:
    """The core's event-driven model: integer results, counters, cycles and trace.

    The model owns copies of the network's memories (weights, thresholds, reciprocals,
    gradient accumulators, LFSR state, pending-sample counter); the network passed in is
    not modified. :meth:`to_network` returns the current state as an
    :class:`~model.integer.IntegerNetwork`.

    Parameters
    ----------
    network : IntegerNetwork
        Any network the integer model runs (FC, conv, AP2; flat or image input; any decoder).
    lanes : int
        P, parallel lanes (words of P values), 1 or more.
    queue_depth : int
        Q, capacity of each inter-layer spike queue in indices, 1 or more (the
        ``hw.queue.SpikeQueue`` keeps its head in a register, the rest in RAM; one rule,
        ``QUEUE_LATENCY``, at every depth).

    Attributes
    ----------
    weights, thresholds, reciprocals, dw, dth : list of numpy.ndarray
        The memories' contents in the integer model's shapes (``weights[l-1]`` is
        ``(n_l, n_{l-1})``; the core stores its transpose, one row per presynaptic neuron).
    decoder, dd : numpy.ndarray or None
        The fc decoder's D and dD, (C, T n_L); the core stores the transpose, one row of
        ``decoder_words`` words per output spike position ``t n_L + j``.
    pending : int
        Samples accumulated since the last update.
    lfsr : LFSR
        The stochastic-rounding LFSR.
    sizes, words : list of int
        ``n_l`` and ``w_l`` of layers 0..L.
    samples : int
        Calls of :meth:`infer` / :meth:`learn` / :meth:`flush` so far; numbers the trace
        records (may be set to continue another model's numbering).

    Raises
    ------
    ValueError
        For a network the core cannot run (naming ``arch``/``network``) or a bad ``lanes``
        / ``queue_depth`` (naming it and the allowed range).
    TypeError
        When ``lanes`` or ``queue_depth`` is not an integer.
    """

    def __init__(self, network: IntegerNetwork, *, lanes: int, queue_depth: int) -> None:
        if not isinstance(network, IntegerNetwork):
            raise ValueError(f"network: expected an IntegerNetwork, got {type(network).__name__}")
        spec = network.spec
        check_core_spec(spec)
        self.lanes = check_int("lanes", lanes, minimum=1)
        self.queue_depth = check_int("queue_depth", queue_depth, minimum=1)
        self.spec = spec
        self.formats = network.formats
        self.rule = network.rule
        self.weights = [w.copy() for w in network.weights]
        self.thresholds = [v.copy() for v in network.thresholds]
        self.reciprocals = [r.copy() for r in network.reciprocals]
        self.dw = [a.copy() for a in network.dw]
        self.dth = [a.copy() for a in network.dth]
        self.decoder = None if network.decoder is None else network.decoder.copy()
        self.dd = None if network.dd is None else network.dd.copy()
        self.pending = network.pending
        self.lfsr = LFSR(network.lfsr.state)
        self.synapses = network.synapses
        self.consumer = {syn.source: index for index, syn in self.synapses.items()}
        self.layout = CoreLayout(spec, self.lanes, self.synapses)
        self.sizes = [spec.neurons(index) for index in range(spec.num_layers + 1)]
        self.words = [layer.words for layer in self.layout.layers]
        self.offsets = [shift_offsets(spec, index) for index in range(spec.num_layers + 1)]
        #: Words of one fc decoder row (C values), 0 without the fc decoder.
        self.decoder_words = 0 if self.decoder is None else math.ceil(spec.classes / self.lanes)
        self.samples = 0

    # Geometry ----------------------------------------------------------------------------

    @property
    def can_learn(self) -> bool:
        """True when the core can learn this network (reset-by-subtraction, eq. 14 surrogate)."""
        return self.spec.reset == "subtract" and self.spec.surrogate == "scaled"

    @property
    def num_layers(self) -> int:
        """L, layers after the encoder."""
        return self.spec.num_layers

    def spiking(self) -> list[int]:
        """The spiking layers 0..L (AP2 layers have no memories and no stage)."""
        return self.spec.spiking_layers()

    def valid_mask(self, layer: int, word: int) -> int:
        """Lane mask of the neurons that exist in ``word`` of ``layer``."""
        return self.layout.layers[layer].word_mask(word)

    def row_mask(self, width: int, word: int) -> int:
        """Lane mask of the values that exist in ``word`` of a row of ``width`` values (a
        weight or fc decoder row, a per-channel memory)."""
        lanes = min(self.lanes, width - word * self.lanes)
        return (1 << lanes) - 1

    def decoder_mask(self, word: int) -> int:
        """Lane mask of the classes that exist in ``word`` of a fc decoder row."""
        return self.row_mask(self.spec.classes, word)

    def event_cost(self, index: int, fired: np.ndarray) -> int:
        """Words the events of the spikes ``fired`` of spiking layer ``index`` touch in the
        layer they reach (one cycle each), 0 for the output layer (no fc decoder)."""
        if index == self.num_layers:
            return int(np.sum(fired)) * self.decoder_words
        events = self.layout.source_events(self.consumer[index], fired)
        return sum(len(event.v_words) for event in events)

    def ideal_cycles(self, spikes: Sequence[np.ndarray]) -> int:
        """The ideal forward bound: the words every event touches (FC: ``ceil(n_out / P)``;
        conv: ``ceil(C_out / P)`` per in-image tap; the fc decoder: ``ceil(C / P)``) plus the
        fire scans (every word of every spiking layer, each step), nothing overlapped.

        Parameters
        ----------
        spikes : sequence of numpy.ndarray
            S bit-planes (T, n_l) of one inference, l = 0..L.
        """
        total = self.spec.timesteps * sum(self.words)
        for index in self.spiking():
            total += sum(self.event_cost(index, fired) for fired in spikes[index])
        return total

    def footprint_bits(self) -> int:
        """Bits of the stored parameters: weights and the fc decoder's (w), thresholds (v-1),
        reciprocals (K+1)."""
        f = self.formats
        weights = (sum(w.size for w in self.weights) + (0 if self.decoder is None else self.decoder.size)) * f.w
        thresholds = sum(v.size for v in self.thresholds)
        return weights + thresholds * (f.v - 1 + f.k + 1)

    def word_bits(self, memory: str) -> int:
        """Width in bits of one word of ``memory`` (P lanes of the memory's format)."""
        f = self.formats
        lane = {"PIX": 8, "V": f.v, "S": 1, "H": 1, "DV": f.g, "D": f.w, "DD": f.dw}
        if memory not in MEMORIES:
            raise ValueError(f"memory: {memory!r} is not one of {', '.join(MEMORIES)}")
        return (lane[memory] if memory in lane else f.stored(memory).bits) * self.lanes

    def index_bits(self, layer: int) -> int:
        """Width of a neuron index of ``layer`` in its spike queue (at least 1)."""
        return max(ceil_log2(self.sizes[layer]), 1)

    def to_network(self) -> IntegerNetwork:
        """The current state as an :class:`~model.integer.IntegerNetwork` (copies; stored
        thresholds and reciprocals as they are, a faulty threshold word of 0 included)."""
        net = IntegerNetwork(
            self.spec, self.formats, self.weights, [np.maximum(v, 1) for v in self.thresholds],
            decoder=self.decoder, rule=self.rule, lfsr_state=self.lfsr.state,
        )
        for layer, (vth, r) in enumerate(zip(self.thresholds, self.reciprocals)):
            net.store("VTH", layer, vth)
            net.store("R", layer, r)
        net.dw = [a.copy() for a in self.dw]
        net.dth = [a.copy() for a in self.dth]
        net.dd = None if self.dd is None else self.dd.copy()
        net.pending = self.pending
        return net

    def _check_pixels(self, pixels: np.ndarray) -> np.ndarray:
        array = np.asarray(pixels)
        n0 = self.sizes[0]
        if array.shape == self.spec.input_shape:
            array = array.reshape(n0)
        if array.shape != (n0,) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"pixels: expected integers of shape ({n0},), got {array.dtype} {array.shape}")
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(f"pixels: values {array.min()}..{array.max()} are outside 0..255")
        return array.astype(np.int64)

    # Public entry points -----------------------------------------------------------------

    def infer(self, pixels: np.ndarray, *, trace: bool = False) -> CoreResult:
        """Run one inference (clear, forward, readout) on u8 pixels of shape (n_0,) (or the
        input's (C, H, W)).

        Parameters
        ----------
        trace : bool
            Record every memory write in :attr:`CoreResult.trace`.
        """
        p = self._check_pixels(pixels)
        recorder = _Recorder(trace, self.samples, self.lanes)
        self.samples += 1
        counters = CoreCounters(samples=1)
        result, _ = self._forward(p, counters, recorder)
        result.trace = recorder.sorted()
        return result

    def learn(self, pixels: np.ndarray, label: int, *, trace: bool = False) -> CoreResult:
        """One learning step: inference, backward, and the update when B samples are pending.

        Parameters
        ----------
        label : int
            Class 0..classes-1.
        trace : bool
            Record every memory write in :attr:`CoreResult.trace`.

        Raises
        ------
        ValueError
            For a network whose learning the core does not implement (reset or surrogate
            other than ``subtract``/``scaled``), bad pixels or label.
        """
        spec = self.spec
        if not self.can_learn:
            raise ValueError(
                "spec: learning uses the eq. 15 mux, which needs reset 'subtract' and surrogate "
                f"'scaled' (got {spec.reset!r}, {spec.surrogate!r})"
            )
        p = self._check_pixels(pixels)
        label = check_int("label", label, minimum=0, maximum=spec.classes - 1)
        recorder = _Recorder(trace, self.samples, self.lanes)
        self.samples += 1
        counters = CoreCounters(samples=1)
        result, cycle = self._forward(p, counters, recorder)
        cycle = self._backward(result, label, counters, recorder, cycle)
        self.pending += 1
        if self.pending >= self.rule.batch:
            self._update(counters, recorder, cycle)
        result.trace = recorder.sorted()
        return result

    def flush(self, *, trace: bool = False) -> tuple[CoreCounters, list[TraceRecord]] | None:
        """Apply a pending partial batch: its ``update`` counters and trace; ``None`` if none."""
        if not self.pending:
            return None
        recorder = _Recorder(trace, self.samples, self.lanes)
        self.samples += 1
        counters = CoreCounters()
        self._update(counters, recorder, 0)
        return counters, recorder.sorted()

    # Forward -------------------------------------------------------------------------------

    def _forward(
        self, p: np.ndarray, counters: CoreCounters, rec: _Recorder
    ) -> tuple[CoreResult, int]:
        spec = self.spec
        steps, layers, lanes = spec.timesteps, self.num_layers, self.lanes
        sizes, words = self.sizes, self.words
        count = layers + 1

        # CLEAR: every membrane memory, all layers in parallel, one word per cycle.
        clear = counters.phase("clear", count)
        clear.cycles = max(words) + CONTROL_LATENCY
        for index in self.spiking():
            clear.layers[index].write("V", words[index])
            if rec.enabled:
                layout = self.layout.layers[index]
                for k in range(words[index]):
                    rec.add(k, "clear", index, 0, "V", k, layout.word_mask(k), (0,) * lanes)
        cycle = clear.cycles

        forward = counters.phase("forward", count)
        v = [np.zeros(n, np.int64) for n in sizes]
        spikes = [np.zeros((steps, n), bool) for n in sizes]
        windows = [np.zeros((steps, n), bool) for n in sizes]
        last = np.zeros(sizes[-1], np.int64)
        for t in range(1, steps + 1):
            for index in self.spiking():
                c = forward.layers[index]
                integrated, fired, timing = self._stage(index, t, p, v, spikes, windows, c, rec, cycle)
                if t == steps and index == layers:
                    last = integrated
                c.cycles += timing.cycles
                c.spikes += int(fired.sum())
                c.stall_cycles += timing.stall_cycles
                c.queue_high_water = max(c.queue_high_water, timing.high_water)
                cycle += timing.cycles
        forward.cycles = sum(layer.cycles for layer in forward.layers)

        # READOUT: the fc decoder's pass over the output spikes, then one class per cycle
        # (count, then class membrane (not fc), then lowest index).
        readout = counters.phase("readout", count)
        if self.decoder is None:
            counts = spikes[-1].sum(axis=0) if spec.decoder == "rate" else spikes[-1][-1].astype(np.int64)
            counts = counts.reshape(spec.classes, spec.population).sum(axis=1).astype(np.int64)
            prediction = int(metrics.predict(counts[None], last[None])[0])
        else:
            counts = self._decode(spikes[-1], readout.layers[layers])
            prediction = int(metrics.predict(counts[None])[0])
        readout.cycles = sum(layer.cycles for layer in readout.layers) + spec.classes + READOUT_LATENCY + CONTROL_LATENCY
        cycle += readout.cycles
        result = CoreResult(prediction, counts, last, v, spikes, windows, counters, [])
        return result, cycle

    def _per_neuron(self, values: np.ndarray, index: int) -> np.ndarray:
        """Per-channel values (thresholds, reciprocals) of layer ``index`` for each neuron."""
        return np.repeat(values, self.layout.layers[index].positions)

    def _stage(
        self, index: int, t: int, p: np.ndarray, v: list[np.ndarray], spikes: list[np.ndarray],
        windows: list[np.ndarray], c: LayerCounters, rec: _Recorder, start: int,
    ) -> tuple[np.ndarray, np.ndarray, StageTiming]:
        """Forward stage of spiking layer ``index`` at step t: its fire scan (the encoder's
        add first) || the integration of its spikes into the layer they reach. Returns the
        membranes before the scan, the spikes and the stage's timing."""
        f, layout = self.formats, self.layout.layers[index]
        words = layout.words
        if index == 0:
            integrated = saturate(v[0] + p, f.v)
            active = int(np.count_nonzero(p))
            c.read("PIX", words)
        else:
            integrated = v[index]
            source = self.synapses[index].source
            active = self.sizes[index] if spikes[source][t - 1].any() else 0
        after, fired, window = fire_scan(integrated, self._per_neuron(self.thresholds[index], index), reset=self.spec.reset)
        retire = np.arange(words) + 1 + SCAN_LATENCY  # by scan cycle
        target = self.consumer.get(index)
        events = [] if target is None else self.layout.source_events(target, fired)
        neurons = np.flatnonzero(fired)
        address, lane = layout.place(neurons)
        ready = retire[layout.scan_index[address]]
        if layout.grid:  # lanes 1..P-1 wait for their block's last word (the lane FIFOs)
            ready = np.where(lane > 0, np.maximum(ready, retire[layout.block_end(address)]), ready)
        timing = integrate_stage_timing(
            retire, ready + QUEUE_LATENCY, [event.v_words for event in events], self.queue_depth
        )
        if target is not None:
            self._integrate(target, v, events, timing, start, t, c, rec)
        v[index] = after
        spikes[index][t - 1] = fired
        windows[index][t - 1] = window
        c.active_neuron_updates += active
        c.idle_neuron_updates += self.sizes[index] - active
        c.read("V", words)
        c.read("VTH", words)
        for memory in ("V", "S", "H"):
            c.write(memory, words)
        if rec.enabled:
            base = (t - 1) * words
            for k, retired in zip(layout.scan_order.tolist(), timing.retire):
                mask = layout.word_mask(k)
                at = start + retired
                rec.add(at, "forward", index, t, "V", k, mask, layout.word_values(after, k))
                rec.add(at, "forward", index, t, "S", base + k, mask, layout.word_values(fired, k))
                rec.add(at, "forward", index, t, "H", base + k, mask, layout.word_values(window, k))
        return integrated, fired, timing

    def _decode(self, spikes: np.ndarray, c: LayerCounters) -> np.ndarray:
        """The fc decoder's readout pass: for t = 1..T, D row ``(t-1) n_L + j`` (its C class
        weights, ``decoder_words`` words) added to the class sums for each output spike
        j, ascending; the S words of the step are scanned like a dW pass. Returns the sums."""
        steps, n_out = spikes.shape
        counts = np.zeros(self.spec.classes, np.int64)
        words = self.decoder_words
        for t in range(steps):
            events = np.flatnonzero(spikes[t])
            counts += self.decoder[:, t * n_out + events].sum(axis=1)
            timing = event_pass_timing(self.layout.layers[-1].word_counts(spikes[t]), words, DECODE_LATENCY)
            c.cycles += timing.cycles
            c.synaptic_ops += len(events) * self.spec.classes
            c.read("S", self.words[-1])
            c.read("D", len(events) * words)
        return counts

    def _integrate(
        self, target: int, v: list[np.ndarray], events: list, timing: StageTiming,
        start: int, t: int, c: LayerCounters, rec: _Recorder,
    ) -> None:
        """Each event (ascending source index) adds its weights to its targets in layer
        ``target``, saturating; its V words are written INTEGRATE_LATENCY after their reads."""
        bits = self.formats.v
        weight = self.weights[target - 1]
        layout = self.layout.layers[target]
        state = v[target]
        for event, reads in zip(events, timing.reads):
            state[event.neurons] = saturate(state[event.neurons] + weight.take(event.weights), bits)
            c.synaptic_ops += len(event.neurons)
            c.read("W", len(reads))
            c.read("V", len(reads))
            c.write("V", len(reads))
            if rec.enabled:
                for k, at in zip(event.v_words.tolist(), reads.tolist()):
                    rec.add(start + at + INTEGRATE_LATENCY, "forward", target, t, "V", k, layout.word_mask(k), layout.word_values(state, k))
        v[target] = state

    # Backward ------------------------------------------------------------------------------

    def _layer_k(self, index: int) -> int:
        return self.formats.encoder_k if index == 0 else self.formats.k

    def _backward(
        self, result: CoreResult, label: int, counters: CoreCounters, rec: _Recorder, cycle: int
    ) -> int:
        spec, f = self.spec, self.formats
        steps, layers = spec.timesteps, self.num_layers
        words = self.words
        trainable = spec.threshold == "trainable"
        first = 0 if trainable else 1
        learned = [index for index in reversed(self.spiking()) if index >= first]
        backward = counters.phase("backward", layers + 1)
        target = label_target(spec, f)
        error = output_error(result.counts[None], np.array([label]), target)
        sums = output_sums(spec, f, self.decoder, error)[:, 0]  # (T, n_L)

        # Clear dV of every layer that takes part, in parallel.
        clear_cycles = max(words[index] for index in learned) + CONTROL_LATENCY
        for index in learned:
            backward.layers[index].write("DV", words[index])
            if rec.enabled:
                layout = self.layout.layers[index]
                for k in range(words[index]):
                    rec.add(cycle + k, "backward", index, 0, "DV", k, layout.word_mask(k), (0,) * self.lanes)
        cycle += clear_cycles
        dv = [np.zeros(n, np.int64) for n in self.sizes]
        for t in range(steps, 0, -1):
            for index in learned:
                if index == 0 and t == 1:
                    continue  # the encoder's dV[1] feeds no accumulator
                c = backward.layers[index]
                if index == layers and self.decoder is not None:
                    cycle = self._dd_pass(t, result, error[0], c, rec, cycle)
                output = sums[t - 1] if index == layers else None
                cycle = self._dv_pass(index, t, dv, result, output, c, rec, cycle)
                if index >= 1:
                    cycle = self._dw_pass(index, t, dv, result, c, rec, cycle)
                if trainable and t >= 2:
                    cycle = self._dvth_pass(index, t, dv, result, c, rec, cycle)
        backward.cycles = clear_cycles + sum(layer.cycles for layer in backward.layers)
        return cycle

    def _dv_pass(
        self, index: int, t: int, dv: list[np.ndarray], result: CoreResult, output: np.ndarray | None,
        c: LayerCounters, rec: _Recorder, cycle: int,
    ) -> int:
        """eq. 15 for the neurons of ``index`` with h = 1 at step t (the others keep dV[t+1]);
        ``output``: the output layer's spatial sums at t (None for the other layers). An
        event reads, one word pair per cycle, the words its forward event touches: W and
        DV of the layer its spikes reach (fc decoder: its D row)."""
        f, layout = self.formats, self.layout.layers[index]
        window = result.windows[index][t - 1]
        per_word, active = layout.walk(window)
        acc = np.zeros(self.sizes[index], np.int64)
        if index == self.num_layers:
            # The fc decoder's D row with the class errors, like a hidden layer's row.
            cost = max(self.decoder_words, 1)
            acc[active] = output[active]
            reads = [np.arange(cost)] * len(active)
            if self.decoder is not None:
                c.dot_macs += len(active) * self.spec.classes
                c.read("D", len(active) * cost)
        else:
            above = self.consumer[index]
            syn = self.synapses[above]
            weight = self.weights[above - 1]
            bound = int(np.abs(dv[above]).sum()) * int(np.abs(weight).max(initial=0))
            acc[active] = syn.unpool(syn.backward(dv[above][None], weight, bound))[0, active]
            table = self.layout.event_words(above)
            events = [table[m] for m in syn.source_input[active]]
            reads = [event.v_words for event in events]
            c.dot_macs += sum(len(event.neurons) for event in events)
            c.read("W", sum(map(len, reads)))
            c.read("DV", sum(map(len, reads)))
        previous = dv[index]
        recip = self._per_neuron(self.reciprocals[index], index)
        dv[index] = mux_dv(acc, recip, self._layer_k(index), window, previous, f.g)
        timing = walk_timing(per_word, reads, DV_LATENCY)
        c.cycles += timing.cycles
        c.window_events += len(active)
        c.mux_ops += len(active)
        c.read("H", layout.words)
        c.read("R", len(active))
        c.write("DV", len(active))
        if rec.enabled:
            state = previous.copy()
            addresses, lanes = layout.place(active)
            for i, k, lane, at in zip(active.tolist(), addresses.tolist(), lanes.tolist(), timing.reads):
                state[i] = dv[index][i]
                rec.add(cycle + int(at[-1]) + DV_LATENCY, "backward", index, t, "DV", k, 1 << lane, layout.word_values(state, k))
        return cycle + timing.cycles

    def _dw_pass(
        self, index: int, t: int, dv: list[np.ndarray], result: CoreResult, c: LayerCounters,
        rec: _Recorder, cycle: int,
    ) -> int:
        """eq. 10: each source spike at t (walk order) adds dV^index[t] of its targets to the
        accumulators of the weights that link them: the event's DW words, read with the DV
        words of its targets, written DW_LATENCY later (a word re-read waits for its write)."""
        bits = self.formats.dw
        syn = self.synapses[index]
        source = self.layout.layers[syn.source]
        fired = result.spikes[syn.source][t - 1]
        per_word, neurons = source.walk(fired)
        table = self.layout.event_words(index)
        events = [table[m] for m in syn.source_input[neurons]]
        acc = self.dw[index - 1]
        timing = walk_timing(
            per_word, [event.w_words for event in events], DW_LATENCY, DW_EMPTY_WORD_CYCLES, DW_LATENCY + 1
        )
        row_words = self.layout.row_words(index)
        n_out, cols = acc.shape
        c.cycles += timing.cycles
        c.read("S", source.words)
        for event, reads in zip(events, timing.reads):
            np.put(acc, event.weights, saturate(acc.take(event.weights) + dv[index][event.neurons], bits))
            c.dw_rows += 1
            c.dw_adds += len(event.neurons)
            for memory in ("DW", "DV"):
                c.read(memory, len(reads))
            c.write("DW", len(reads))
            if rec.enabled:
                for address, at in zip(event.w_words.tolist(), reads.tolist()):
                    row, word = divmod(address, row_words)
                    rec.add(
                        cycle + at + DW_LATENCY, "backward", index, t, "DW", address,
                        self.row_mask(n_out, word), rec.word(acc[:, row], word),
                    )
        return cycle + timing.cycles

    def _dd_pass(
        self, t: int, result: CoreResult, error: np.ndarray, c: LayerCounters, rec: _Recorder, cycle: int,
    ) -> int:
        """The fc decoder's dD: row ``(t-1) n_L + j`` += e for each output spike j at step t
        (a dW pass over the output layer's S word at t with the class errors as dV)."""
        lanes, out_words = self.lanes, self.words[-1]
        n_out = self.sizes[-1]
        fired = result.spikes[-1][t - 1]
        events = np.flatnonzero(fired)
        rows = (t - 1) * n_out + events
        self.dd[:, rows] = saturate(self.dd[:, rows] + error[:, None], self.formats.dw)
        cost = self.decoder_words
        timing = event_pass_timing(self.layout.layers[-1].word_counts(fired), cost, DW_LATENCY, DW_EMPTY_WORD_CYCLES)
        c.cycles += timing.cycles
        c.dw_rows += len(rows)
        c.dw_adds += len(rows) * self.spec.classes
        c.read("S", out_words)
        c.read("DD", len(rows) * cost)
        c.write("DD", len(rows) * cost)
        if rec.enabled:
            layer = self.num_layers
            for k in range(out_words):
                in_word = events[(events >= k * lanes) & (events < (k + 1) * lanes)]
                for x, j in zip(timing.event_starts(k, len(in_word), cost), in_word):
                    row = (t - 1) * n_out + int(j)
                    for word in range(cost):
                        rec.add(
                            cycle + x + word + DW_LATENCY, "backward", layer, t, "DD", row * cost + word,
                            self.decoder_mask(word), rec.word(self.dd[:, row], word),
                        )
        return cycle + timing.cycles

    def _dvth_pass(
        self, index: int, t: int, dv: list[np.ndarray], result: CoreResult, c: LayerCounters,
        rec: _Recorder, cycle: int,
    ) -> int:
        """eq. 11: dVth_c -= dV[t] for the neurons of channel c that fired at t-1, positions
        ascending. A sweep in scan order reads DV and S word by word; the accumulator holds
        a channel block's DVTH word (read with the block's first word) and writes it
        DVTH_LATENCY after the block's last word's data, if any of its lanes fired."""
        f, layout = self.formats, self.layout.layers[index]
        fired = result.spikes[index][t - 2]
        adds = (-dv[index] * fired).reshape(layout.channels, layout.positions).T
        self.dth[index] = accumulate_sequence(self.dth[index], adds, f.dth)
        timing = sweep_timing(layout.words, DVTH_LATENCY)
        per_block = fired.reshape(layout.channels, layout.positions).any(axis=1)
        block_words = layout.words // layout.channel_words
        c.cycles += timing.cycles
        c.dvth_adds += int(fired.sum())
        for memory in ("DV", "S"):
            c.read(memory, layout.words)
        c.read("DVTH", layout.channel_words)
        for w in range(layout.channel_words):
            lanes = per_block[w * self.lanes : (w + 1) * self.lanes]
            if not lanes.any():
                continue
            c.write("DVTH", 1)
            if rec.enabled:
                at = cycle + timing.data[(w + 1) * block_words - 1] + DVTH_LATENCY
                rec.add(at, "backward", index, t, "DVTH", w, _mask(lanes), rec.word(self.dth[index], w))
        return cycle + timing.cycles

    # Update ----------------------------------------------------------------------------------

    def _draws(self, count: int) -> np.ndarray | None:
        """LFSR states for ``count`` draws in order (stochastic rounding), else ``None``."""
        return self.lfsr.states(count) if self.rule.rounding == "stochastic" else None

    def _update(self, counters: CoreCounters, rec: _Recorder, cycle: int) -> int:
        """Weights of layers 1..L, then thresholds of layers 0..L and their reciprocals, then
        the fc decoder's rows."""
        spec, f, rule = self.spec, self.formats, self.rule
        layers = self.num_layers
        update = counters.phase("update", layers + 1)
        for index in self.synapses:
            shift = min(rule.shift_w + self.offsets[index][0], 31)
            new, cycle = self._update_rows(
                self.weights[index - 1].T, self.dw[index - 1].T, shift, ("W", "DW"), index,
                update.layers[index], rec, cycle,
            )
            self.weights[index - 1] = np.ascontiguousarray(new.T)
            self.dw[index - 1][...] = 0
        if spec.threshold == "trainable":
            for index in self.spiking():
                cycle = self._update_thresholds(index, update.layers[index], rec, cycle)
        if self.decoder is not None:
            new, cycle = self._update_rows(
                self.decoder.T, self.dd.T, f.decoder_shift(rule.shift_w), ("D", "DD"), layers,
                update.layers[layers], rec, cycle,
            )
            self.decoder = np.ascontiguousarray(new.T)
            self.dd[...] = 0
        update.cycles = sum(layer.cycles for layer in update.layers)
        self.pending = 0
        return cycle

    def _update_rows(
        self, values: np.ndarray, accumulators: np.ndarray, shift: int, memories: tuple[str, str],
        layer: int, c: LayerCounters, rec: _Recorder, cycle: int,
    ) -> tuple[np.ndarray, int]:
        """One update sweep over memory rows (a weight block or the fc decoder): ``values``
        and ``accumulators`` (rows, width) in memory order, ``sat_w(values - round_shift(acc,
        shift))`` with one LFSR draw per element in row-major order, one word per cycle,
        the accumulator word cleared with it. Returns the new rows and the next cycle."""
        rule = self.rule
        rows, width = values.shape
        words = math.ceil(width / self.lanes)
        draws = self._draws(rows * width)
        step = round_shift(accumulators, shift, rule.rounding, None if draws is None else draws.reshape(rows, width))
        new = self.formats.weight.saturate(values - step)
        timing = sweep_timing(rows * words, UPDATE_LATENCY)
        c.cycles += timing.cycles
        c.weight_updates += rows * width
        for memory in memories:
            c.read(memory, rows * words)
            c.write(memory, rows * words)
        if rec.enabled:
            zero = (0,) * self.lanes
            for row in range(rows):
                for k in range(words):
                    address = row * words + k
                    at = cycle + timing.data[address] + UPDATE_LATENCY
                    mask = self.row_mask(width, k)
                    rec.add(at, "update", layer, 0, memories[0], address, mask, rec.word(new[row], k))
                    rec.add(at, "update", layer, 0, memories[1], address, mask, zero)
        return new, cycle + timing.cycles

    def _update_thresholds(self, index: int, c: LayerCounters, rec: _Recorder, cycle: int) -> int:
        f, rule, lanes = self.formats, self.rule, self.lanes
        shift = f.threshold_shift_encoder(rule.shift_th) if index == 0 else rule.shift_th
        shift = min(shift + self.offsets[index][1], 31)
        words = self.layout.layers[index].channel_words
        old = self.thresholds[index]
        draws = self._draws(len(old))
        new = np.clip(old - round_shift(self.dth[index], shift, rule.rounding, draws), 1, f.threshold_max)
        changed = new != old
        self.thresholds[index] = new
        self.reciprocals[index] = np.where(changed, reciprocal(new, f.k), self.reciprocals[index])
        self.dth[index][...] = 0
        per_word = np.add.reduceat(changed.astype(np.int64), np.arange(0, len(changed), lanes))
        timing = threshold_update_timing(per_word > 0, f.k)
        c.cycles += timing.cycles
        c.threshold_updates += len(old)
        c.reciprocals += int(changed.sum())
        for memory in ("VTH", "DVTH"):
            c.read(memory, words)
            c.write(memory, words)
        c.write("R", int(np.count_nonzero(per_word)))
        if rec.enabled:
            zero = (0,) * lanes
            for k in range(words):
                mask = self.row_mask(len(old), k)
                at = cycle + timing.data[k] + UPDATE_LATENCY
                rec.add(at, "update", index, 0, "VTH", k, mask, rec.word(new, k))
                rec.add(at, "update", index, 0, "DVTH", k, mask, zero)
                if per_word[k]:
                    lanes_changed = _mask(changed[k * lanes : (k + 1) * lanes])
                    rec.add(cycle + timing.retire[k], "update", index, 0, "R", k, lanes_changed, rec.word(self.reciprocals[index], k))
        return cycle + timing.cycles


def run_samples(
    core: CoreModel,
    pixels: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    trace: Callable[[list[TraceRecord]], None] | None = None,
) -> tuple[CoreCounters, list[CoreResult]]:
    """Infer (``labels`` None) or learn every sample in order; counters merged over samples.

    Parameters
    ----------
    core : CoreModel
    pixels : numpy.ndarray
        u8 pixels (N, n_0).
    labels : numpy.ndarray, optional
        Labels (N,): learn instead of infer.
    trace : callable, optional
        Called with each sample's trace records (tracing is on when given).
    """
    totals = CoreCounters()
    results = []
    for n, sample in enumerate(np.asarray(pixels)):
        if labels is None:
            result = core.infer(sample, trace=trace is not None)
        else:
            result = core.learn(sample, int(labels[n]), trace=trace is not None)
        totals.merge(result.counters)
        if trace is not None:
            trace(result.trace)
        result.trace = []
        results.append(result)
    return totals, results
