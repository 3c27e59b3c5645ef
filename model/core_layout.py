"""Word layout and address patterns of the core's memories, FC, conv and AP2 alike
(docs/architecture.md sections 2, 5.2 and 5.3).

A spiking layer is stored in one of two layouts:

* **flat** (FC layers, a flat encoder): neuron ``n`` in word ``n div P``, lane ``n mod P``;
* **grid** (conv layers, an image encoder; shape (C, H, W)): position-major, the channels
  across the lanes: neuron ``(c, pos)`` (``pos = y W + x``) in word ``pos cw + c div P``,
  lane ``c mod P``, with ``cw = ceil(C / P)`` words per position. A conv event's targets
  at one position are then ``cw`` consecutive words, lane ``o mod P`` of word ``o div P``
  holding output channel ``o``, aligned with the lanes of the weight row.

Per-channel memories (VTH, R, DVTH) hold one value per channel in words of P channels
(``ceil(C / P)`` words; an FC layer's channels are its neurons). AP2 layers have no
memories. The weight memory of layer ``l`` is the transpose of its integer weights
(:func:`model.synapses.weight_shape`): row ``r`` (FC: input ``m``; conv: ``9 c + 3 i + j``)
of ``ceil(n_out / P)`` words (FC: neurons; conv: output channels).

The scan walks a grid layer *block-major* (channel block ``w`` outer, position inner;
address ``pos cw + w``, a counter stepping by ``cw``), so a block's channels are complete
when its last position is written; a flat layer in address order. Spikes leave a layer in
ascending neuron index (docs/numerics.md section 2.2): a grid layer's scan puts lane ``j``'s
spikes into lane FIFO ``j``; the pusher drains lane 0 of block ``w`` as it arrives and
lanes ``1..P-1`` once the block's last word is written.

The address pattern of an event (:meth:`CoreLayout.event_words`) is the one of
:meth:`model.synapses.Synapses.targets`, grouped into words: one (W word, V word) pair
per cycle, taps row-major, words ascending.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from model.spec import NetworkSpec
from model.synapses import Synapses, positions, weight_shape

__all__ = ["CoreLayout", "EventWords", "LayerLayout"]


@dataclass(frozen=True)
class LayerLayout:
    """The word layout of one layer's per-neuron and per-channel memories.

    Attributes
    ----------
    lanes : int
        P.
    channels : int
        Threshold channels C (FC: neurons; 0 for AP2).
    positions : int
        Neurons per channel, H W (1 for flat layers, 0 for AP2).
    grid : bool
        Position-major (conv, image encoder) rather than flat.
    """

    lanes: int
    channels: int
    positions: int
    grid: bool

    @property
    def neurons(self) -> int:
        return self.channels * self.positions

    @property
    def channel_words(self) -> int:
        """Words of a per-channel memory (VTH, R, DVTH): ``ceil(C / P)``."""
        return math.ceil(self.channels / self.lanes)

    @property
    def words(self) -> int:
        """Words of a per-neuron memory (V, DV; S and H per step)."""
        if self.grid:
            return self.positions * self.channel_words
        return math.ceil(self.neurons / self.lanes)

    @cached_property
    def slots(self) -> np.ndarray:
        """The neuron in each (word, lane), -1 for padding, int64 (words, P)."""
        out = np.full((self.words, self.lanes), -1, np.int64)
        neurons = np.arange(self.neurons, dtype=np.int64)
        address, lane = self.place(neurons)
        out[address, lane] = neurons
        return out

    def place(self, neurons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Word address and lane of each neuron (flat index)."""
        if not self.grid:
            return neurons // self.lanes, neurons % self.lanes
        channel, pos = np.divmod(neurons, self.positions)
        return pos * self.channel_words + channel // self.lanes, channel % self.lanes

    @cached_property
    def scan_order(self) -> np.ndarray:
        """Word addresses in the order the scan (and a DVTH sweep) reads them, int64 (words,):
        grid block-major (``pos cw + w``, w outer), flat ascending."""
        if not self.grid:
            return np.arange(self.words, dtype=np.int64)
        block, pos = np.divmod(np.arange(self.words, dtype=np.int64), self.positions)
        return pos * self.channel_words + block

    @cached_property
    def scan_index(self) -> np.ndarray:
        """The scan cycle that reads each word address (the inverse of :attr:`scan_order`)."""
        out = np.empty(self.words, np.int64)
        out[self.scan_order] = np.arange(self.words)
        return out

    def block_end(self, address: np.ndarray) -> np.ndarray:
        """The scan cycle of the last word of each address's block (grid: its channel block;
        flat: the word itself)."""
        index = self.scan_index[address]
        if not self.grid:
            return index
        return (index // self.positions + 1) * self.positions - 1

    def word_values(self, values: np.ndarray, word: int) -> tuple[int, ...]:
        """The P lanes of ``word`` of a per-neuron vector (padding lanes 0)."""
        slots = self.slots[word]
        return tuple(int(values[n]) if n >= 0 else 0 for n in slots)

    def word_mask(self, word: int) -> int:
        """Lane mask of the neurons that exist in ``word``."""
        return int(np.dot(self.slots[word] >= 0, 1 << np.arange(self.lanes, dtype=np.int64)))

    def lane_mask(self, word: int, bits: np.ndarray) -> int:
        """Lane mask of the neurons of ``word`` whose ``bits`` (per neuron) are set."""
        slots = self.slots[word]
        on = np.where(slots >= 0, bits[np.maximum(slots, 0)], False)
        return int(np.dot(on, 1 << np.arange(self.lanes, dtype=np.int64)))

    def word_counts(self, bits: np.ndarray) -> np.ndarray:
        """Set bits per word (``m_k``, address order) of a per-neuron bool vector, int64."""
        slots = self.slots
        return np.where(slots >= 0, bits[np.maximum(slots, 0)], False).sum(axis=1).astype(np.int64)

    def walk(self, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A bit-plane walker's events: per word (address order) the count of set bits, and
        the set neurons in walk order (words ascending, lanes ascending)."""
        slots = self.slots
        on = np.where(slots >= 0, bits[np.maximum(slots, 0)], False)
        return on.sum(axis=1).astype(np.int64), slots[on]


class EventWords:
    """The words one input event of a spiking layer touches (:meth:`CoreLayout.event_words`).

    Attributes
    ----------
    neurons, weights : numpy.ndarray
        Target neurons and flat weight indices in the contract's order
        (:meth:`model.synapses.Synapses.targets`).
    v_words, w_words : numpy.ndarray
        Per cycle, the target layer's word (V, DV) and the weight word (W, DW), int64.
    """

    __slots__ = ("neurons", "weights", "v_words", "w_words")

    def __init__(self, neurons: np.ndarray, weights: np.ndarray, v_words: np.ndarray, w_words: np.ndarray):
        self.neurons = neurons
        self.weights = weights
        self.v_words = v_words
        self.w_words = w_words


class CoreLayout:
    """Layouts of every layer of ``spec`` at P lanes and the event address patterns.

    Parameters
    ----------
    spec : NetworkSpec
    lanes : int
    synapses : dict of int to Synapses
        The spiking layers' synapses (:attr:`model.integer.IntegerNetwork.synapses`).
    """

    def __init__(self, spec: NetworkSpec, lanes: int, synapses: dict[int, Synapses]) -> None:
        self.lanes = lanes
        self.synapses = synapses
        self.layers: list[LayerLayout] = []
        spiking = set(spec.spiking_layers())
        for index in range(spec.num_layers + 1):
            shape = spec.layer_shape(index)
            if index not in spiking:
                self.layers.append(LayerLayout(lanes, 0, 0, False))
                continue
            self.layers.append(LayerLayout(lanes, shape[0], positions(shape), len(shape) == 3))
        self._shapes = {index: weight_shape(spec, index) for index in synapses}
        self._events: dict[int, list[EventWords]] = {}

    def row_words(self, index: int) -> int:
        """Words of one weight row of layer ``index``: ``ceil(n_out / P)`` (FC neurons, conv
        output channels)."""
        return math.ceil(self._shapes[index][0] / self.lanes)

    def weight_word(self, index: int, weights: np.ndarray) -> np.ndarray:
        """The W word address of each flat weight index of layer ``index``: row
        ``weight mod cols``, word ``(weight div cols) div P``."""
        cols = self._shapes[index][1]
        row_out, row = np.divmod(weights, cols)
        return row * self.row_words(index) + row_out // self.lanes

    def event_words(self, index: int) -> list[EventWords]:
        """For each input m of spiking layer ``index`` (after the pools), its event's words."""
        if index not in self._events:
            syn = self.synapses[index]
            target = self.layers[index]
            out = []
            for m in range(syn.n_input):
                neurons, weights = syn.targets(m)
                v_all, _ = target.place(neurons)
                w_all = self.weight_word(index, weights)
                # Consecutive targets in one word (a tap's output channels) are one cycle.
                first = np.ones(len(neurons), bool)
                first[1:] = (v_all[1:] != v_all[:-1]) | (w_all[1:] != w_all[:-1])
                out.append(EventWords(neurons, weights, v_all[first], w_all[first]))
            self._events[index] = out
        return self._events[index]

    def source_events(self, index: int, fired: np.ndarray) -> list[EventWords]:
        """The events of the spikes ``fired`` (bool, source layer) into layer ``index``, in
        ascending source index."""
        syn = self.synapses[index]
        table = self.event_words(index)
        return [table[m] for m in syn.source_input[np.flatnonzero(fired)]]
