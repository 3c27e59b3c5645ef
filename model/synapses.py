"""The synapses of the integer model's spiking layers: FC, 3x3 conv, AP2 folded in
(docs/numerics.md sections 2.2, 3.2 and 3.4).

A spiking layer l reads the spikes of the spiking layer s below it (the encoder is layer
0) through the ``k = l - 1 - s`` AP2 layers between them. A spike of neuron (c, y, x) of
layer s is an *input event* at the pooled position (c, y >> k, x >> k) of layer l - 1, so
layer l's input is the count 0..4^k of each window's spikes and the float pool's 1/4^k is
folded into the layer's integer weights. Neurons, inputs and positions are numbered by
their flat index in their layer's shape ((C, H, W) row-major, or flat).

:class:`Synapses` holds that geometry and two views of the layer kind's connections:

* the address pattern (:meth:`Synapses.targets`): the neurons and weights that one input
  event touches, in the contract's order (the reference path's event loop, and
  :meth:`Synapses.rows`, the effective weights of a few neurons for an event-order replay);
* exact products over many events at once (:meth:`~Synapses.forward`,
  :meth:`~Synapses.backward`, :meth:`ConvSynapses.weight_sums`) through
  :func:`model.fixed.exact_matmul` (the fast path's).

Values are int64 on the contract's grids: weights signed ``w`` bits (LSB ``2^-fw``), input
counts 0..4^k, currents exact on the membrane grid (saturation is the caller's), dV signed
``g`` bits (LSB ``2^-gf``), spatial sums exact (``g + w + ceil(log2 fan_out)`` bits) and
weight-gradient accumulators signed ``dw`` bits, saturating.

Weights are 2-D int64: FC ``(n_out, n_in)``; conv ``(C_out, 9 C_in)``, column
``9 c + 3 i + j`` the kernel tap (i, j) of input channel c (tap row i = dy + 1, column
j = dx + 1: the float ``(C_out, C_in, 3, 3)`` reshaped). The stored memory is the transpose
in both cases: one row per input (FC) or per (c, i, j) (conv), one word per output neuron
(FC) or output channel (conv).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from functools import cached_property
from typing import NamedTuple

import numpy as np

from model.fixed import accumulate_outer, exact_matmul, signed_range
from model.spec import NetworkSpec

__all__ = [
    "ConvSynapses",
    "FullSynapses",
    "Synapses",
    "layer_synapses",
    "pool_counts",
    "positions",
    "source_layer",
    "weight_fold",
    "weight_shape",
]

#: Kernel taps of a 3x3 conv, row-major: tap 3 i + j is (i, j), offset (i - 1, j - 1).
TAPS = tuple((i, j) for i in range(3) for j in range(3))


def positions(shape: tuple[int, ...]) -> int:
    """Neurons per threshold channel of a layer of ``shape``: H W for (C, H, W), else 1."""
    return shape[1] * shape[2] if len(shape) == 3 else 1


def weight_shape(spec: NetworkSpec, index: int) -> tuple[int, ...]:
    """The integer weights of layer ``index`` (1..L): FC (n_l, n_{l-1}), conv
    (C_out, 9 C_in), AP2 (0, 0) (no weights)."""
    layer = spec.layers[index - 1]
    if layer.kind == "fc":
        return (layer.size, spec.neurons(index - 1))
    if layer.kind == "conv":
        return (layer.size, 9 * spec.layer_shape(index - 1)[0])
    return (0, 0)


def pool_counts(spikes: np.ndarray, shape: tuple[int, ...], levels: int) -> np.ndarray:
    """The input counts after ``levels`` AP2 layers: spikes (..., C H W) of a layer of
    ``shape`` (C, H, W) -> int64 (..., C (H >> k) (W >> k)), each the number of spikes in its
    2^k x 2^k window (``levels = 0``: the spikes unchanged)."""
    if levels == 0:
        return spikes
    channels, height, width = shape
    side = 1 << levels
    lead = spikes.shape[:-1]
    windows = spikes.reshape(-1, channels, height // side, side, width // side, side)
    counts = windows.sum(axis=(3, 5), dtype=np.int64)
    return counts.reshape(*lead, channels * (height // side) * (width // side))


class Table(NamedTuple):
    """A layer's address pattern for every input, in event order: entries
    ``indptr[m]..indptr[m+1]-1`` belong to input m, each a target neuron and a flat weight
    index."""

    indptr: np.ndarray
    inputs: np.ndarray
    targets: np.ndarray
    weights: np.ndarray


class Synapses(ABC):
    """The connections of spiking layer ``index`` from spiking layer ``source``.

    Parameters
    ----------
    source_shape, input_shape, output_shape : tuple of int
        Shapes of layer ``source``, of layer ``index - 1`` (the pooled source) and of
        layer ``index``.
    source : int
        The spiking layer below (0: the encoder).
    pools : int
        AP2 layers between them, ``index - 1 - source``.
    """

    def __init__(
        self,
        source_shape: tuple[int, ...],
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        source: int,
        pools: int,
    ) -> None:
        self.source_shape = source_shape
        self.input_shape = input_shape
        self.output_shape = output_shape
        self.source = source
        self.pools = pools
        self.n_source = math.prod(source_shape)
        self.n_input = math.prod(input_shape)
        self.n_output = math.prod(output_shape)
        #: Largest input count: the spikes of one 2^k x 2^k window.
        self.window = 4**pools

    # The pool: source spikes -> input events ------------------------------------------

    def pool(self, spikes: np.ndarray) -> np.ndarray:
        """Source spikes (..., n_source) -> input counts (..., n_input)."""
        return pool_counts(spikes, self.source_shape, self.pools)

    @cached_property
    def source_input(self) -> np.ndarray:
        """The input index of each source neuron, int64 (n_source,)."""
        grid = np.arange(self.n_input, dtype=np.int64).reshape(self.input_shape)
        if self.pools:
            side = 1 << self.pools
            grid = grid.repeat(side, axis=1).repeat(side, axis=2)
        return grid.ravel()

    def unpool(self, values: np.ndarray) -> np.ndarray:
        """Per-input values (..., n_input) -> per source neuron (..., n_source): each
        neuron of a window gets its pooled position's value."""
        return values[..., self.source_input] if self.pools else values

    # The layer kind ---------------------------------------------------------------------

    @property
    @abstractmethod
    def fan_out(self) -> int:
        """Most neurons one input event reaches."""

    @abstractmethod
    def forward(
        self, counts: np.ndarray, weight: np.ndarray, bound: int, *, as_int: bool = True
    ) -> np.ndarray:
        """Exact input currents (M, n_output) of input counts (M, n_input); ``bound``
        bounds every partial sum (:func:`~model.fixed.exact_matmul`, also ``as_int``)."""

    @abstractmethod
    def step_sums(self, weight: np.ndarray) -> np.ndarray:
        """Per neuron (n_output,), the sum of ``weight`` (non-negative, e.g. the positive
        part of W) over every event one step can bring: 4^k per input that reaches it."""

    @abstractmethod
    def backward(self, dv: np.ndarray, weight: np.ndarray, bound: int) -> np.ndarray:
        """Exact spatial sums (M, n_input) ``sum_j dV_j W_j,m`` of each input m over the
        neurons j its events reach, for dV (M, n_output)."""

    @abstractmethod
    def targets(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The address pattern of an input event at ``m``: target neurons and flat weight
        indices, int64, in the contract's order (each target once)."""

    @abstractmethod
    def rows(self, weight: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The weight each source neuron's event adds to each of ``targets``, int64
        (len(targets), n_source) (0 where it adds nothing)."""

    @abstractmethod
    def accumulate(
        self, acc: np.ndarray, dv: np.ndarray, spikes: np.ndarray, bits: int
    ) -> np.ndarray:
        """The saturating weight-gradient accumulator after the steps m = 0, 1, ... in order
        (eq. 10): every source spike event of ``spikes[m]`` (M, n_source), in ascending
        index, adds ``dV[m]`` (M, n_output) of each of its targets to its weight's
        accumulator, saturating to ``bits`` after each add."""


class FullSynapses(Synapses):
    """FC: every input reaches every neuron; an event at input m adds column m of W to the
    membranes, neurons j ascending."""

    @property
    def fan_out(self) -> int:
        return self.n_output

    def forward(
        self, counts: np.ndarray, weight: np.ndarray, bound: int, *, as_int: bool = True
    ) -> np.ndarray:
        return exact_matmul(counts, weight.T, bound, as_int=as_int)

    def step_sums(self, weight: np.ndarray) -> np.ndarray:
        return self.window * weight.sum(axis=1)

    def backward(self, dv: np.ndarray, weight: np.ndarray, bound: int) -> np.ndarray:
        return exact_matmul(dv, weight, bound)

    def targets(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        neurons = np.arange(self.n_output, dtype=np.int64)
        return neurons, neurons * self.n_input + m

    def rows(self, weight: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return self.unpool(weight[targets])

    def accumulate(
        self, acc: np.ndarray, dv: np.ndarray, spikes: np.ndarray, bits: int
    ) -> np.ndarray:
        # The events of one step reaching element (j, m) all add the same dV_j: saturating
        # after each equals saturating their sum, count_m dV_j, once.
        return accumulate_outer(acc, dv, self.pool(spikes), bits)


class ConvSynapses(Synapses):
    """3x3 conv, stride 1, zero padding keeping the size: an event at input (c, p, q) adds,
    for each tap (i, j) in row-major order whose target (p + 1 - i, q + 1 - j) lies in the
    image, weight row (c, i, j) to that position's C_out neurons, channels ascending."""

    @property
    def fan_out(self) -> int:
        return 9 * self.output_shape[0]

    def _patches(self, values: np.ndarray) -> np.ndarray:
        """(M, C H W) values on this layer's grid -> (M H W, 9 C): row (m, y, x), column
        9 c + 3 i + j holds the value at (c, y + i - 1, x + j - 1), 0 outside the image."""
        _, height, width = self.output_shape
        count = len(values)
        channels = values.shape[1] // (height * width)
        padded = np.zeros((count, channels, height + 2, width + 2), values.dtype)
        padded[:, :, 1:-1, 1:-1] = values.reshape(count, channels, height, width)
        patches = np.empty((count, height, width, channels, 9), values.dtype)
        for tap, (i, j) in enumerate(TAPS):
            patches[..., tap] = padded[:, :, i : i + height, j : j + width].transpose(0, 2, 3, 1)
        return patches.reshape(count * height * width, channels * 9)

    def _channel_major(self, grid: np.ndarray, count: int) -> np.ndarray:
        """(M H W, C) rows of positions -> (M, C H W)."""
        _, height, width = self.output_shape
        return grid.reshape(count, height * width, -1).transpose(0, 2, 1).reshape(count, -1)

    def forward(
        self, counts: np.ndarray, weight: np.ndarray, bound: int, *, as_int: bool = True
    ) -> np.ndarray:
        product = exact_matmul(self._patches(counts), weight.T, bound, as_int=as_int)
        return self._channel_major(product, len(counts))

    def step_sums(self, weight: np.ndarray) -> np.ndarray:
        full = np.full((1, self.n_input), self.window)
        return self.forward(full, weight, self.window * int(weight.sum()))[0]

    def backward(self, dv: np.ndarray, weight: np.ndarray, bound: int) -> np.ndarray:
        # Input (c, p, q) reaches (o, p + 1 - i, q + 1 - j) through tap (i, j): the patch
        # tap (2 - i, 2 - j) of dV, i.e. the kernel flipped, channels swapped.
        c_out = len(weight)
        flipped = weight.reshape(c_out, -1, 3, 3)[:, :, ::-1, ::-1].transpose(0, 2, 3, 1)
        product = exact_matmul(self._patches(dv), flipped.reshape(9 * c_out, -1), bound)
        return self._channel_major(product, len(dv))

    def weight_sums(self, dv: np.ndarray, counts: np.ndarray, bound: int) -> np.ndarray:
        """Exact ``sum over m, positions of dV[o, y, x] counts[c, y + i - 1, x + j - 1]``
        per weight (C_out, 9 C_in), for dV (M, n_output) and counts (M, n_input)."""
        c_out = self.output_shape[0]
        per_channel = dv.reshape(len(dv), c_out, -1).transpose(1, 0, 2).reshape(c_out, -1)
        return exact_matmul(per_channel, self._patches(counts), bound)

    @cached_property
    def table(self) -> Table:
        """Every input's address pattern (:meth:`targets`), concatenated in input order."""
        c_in, height, width = self.input_shape
        c_out = self.output_shape[0]
        channel, p, q = np.indices(self.input_shape).reshape(3, -1, 1, 1)
        tap = np.arange(9).reshape(1, 9, 1)
        y, x = p + 1 - tap // 3, q + 1 - tap % 3
        out = np.arange(c_out).reshape(1, 1, c_out)
        shape = (self.n_input, 9, c_out)
        inside = np.broadcast_to((y >= 0) & (y < height) & (x >= 0) & (x < width), shape)
        target = (out * height + y) * width + x
        weight = out * 9 * c_in + channel * 9 + tap
        inputs = np.broadcast_to(np.arange(self.n_input).reshape(-1, 1, 1), shape)
        indptr = np.concatenate([[0], np.cumsum(inside.reshape(self.n_input, -1).sum(axis=1))])
        return Table(
            indptr, inputs[inside], np.broadcast_to(target, shape)[inside],
            np.broadcast_to(weight, shape)[inside],
        )

    def targets(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        table = self.table
        span = slice(table.indptr[m], table.indptr[m + 1])
        return table.targets[span], table.weights[span]

    def _by_input(self, keys: np.ndarray, chosen: np.ndarray, values: np.ndarray) -> np.ndarray:
        """(len(chosen), n_source) from the table entries whose ``keys`` (targets or weight
        indices) are among ``chosen``: row r, column i holds ``values`` of the entry of key
        ``chosen[r]`` at source i's input, -1 where there is none."""
        table = self.table
        slot = np.full(int(max(keys.max(initial=0), chosen.max(initial=0))) + 1, -1)
        slot[chosen] = np.arange(len(chosen))
        picked = slot[keys] >= 0
        dense = np.full((len(chosen), self.n_input), -1, np.int64)
        dense[slot[keys[picked]], table.inputs[picked]] = values[picked]
        return self.unpool(dense)

    def rows(self, weight: np.ndarray, targets: np.ndarray) -> np.ndarray:
        table = self.table
        index = self._by_input(table.targets, targets, np.arange(len(table.targets)))
        return np.where(index >= 0, weight.ravel()[table.weights[index]], 0)

    def accumulate(
        self, acc: np.ndarray, dv: np.ndarray, spikes: np.ndarray, bits: int
    ) -> np.ndarray:
        """Exact sums (:meth:`weight_sums`) where no running sum can leave the range (the
        sums of the positive and of the negative adds checked per element), the other
        elements replayed event by event (an element takes many adds per step)."""
        low, high = signed_range(bits)
        counts = self.pool(spikes)
        bound = int(np.abs(dv).sum(dtype=np.int64)) * self.window
        out = acc + self.weight_sums(dv, counts, bound)
        if int(np.abs(acc).max(initial=0)) + bound <= high:
            return out
        positive = self.weight_sums(np.maximum(dv, 0), counts, bound)
        negative = self.weight_sums(np.maximum(-dv, 0), counts, bound)
        risky = np.flatnonzero((acc + positive > high) | (acc - negative < low))
        if risky.size:
            target = self._by_input(self.table.weights, risky, self.table.targets)
            value = acc.ravel()[risky]
            for step, fired in enumerate(spikes):
                for i in np.flatnonzero(fired):  # ascending source index
                    reached = target[:, i] >= 0
                    added = np.clip(value + dv[step, target[:, i]], low, high)
                    value = np.where(reached, added, value)
            np.put(out, risky, value)
        return out


def source_layer(spec: NetworkSpec, index: int) -> int:
    """The spiking layer whose spikes reach layer ``index`` (1..L): the one below it, past
    any AP2 layers (0: the encoder)."""
    source = index - 1
    while source > 0 and not spec.layers[source - 1].spiking:
        source -= 1
    return source


def weight_fold(spec: NetworkSpec, index: int) -> int:
    """4^k for a layer behind k AP2 layers (1..L; 1 for none): its integer weight stands
    for the float weight / 4^k, since it is added once per spike of a window (the float
    pool adds the window's mean)."""
    return 4 ** (index - 1 - source_layer(spec, index))


def layer_synapses(spec: NetworkSpec, index: int) -> Synapses:
    """The :class:`Synapses` of spiking layer ``index`` (1..L) of ``spec``."""
    source = source_layer(spec, index)
    kind = FullSynapses if spec.layers[index - 1].kind == "fc" else ConvSynapses
    return kind(
        spec.layer_shape(source), spec.layer_shape(index - 1), spec.layer_shape(index),
        source, index - 1 - source,
    )
