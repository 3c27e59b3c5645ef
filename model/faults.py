"""Bit errors in the core's stored memories: seeded injection, flip and stuck-at modes.

A fault is one bit of one stored value of a memory of :data:`~model.integer.STORED_MEMORIES`
(``W``, ``VTH``, ``R``, ``DW``, ``DVTH``): its layer, the flat index of the value in the
integer model's array (:meth:`IntegerNetwork.memory`; ``W`` is ``(n_l, n_{l-1})``, or
``(C_out, 9 C_in)`` for a conv layer, row-major, the core's rows are its columns) and the bit position in the value's stored code
(0 = LSB; two's complement for the signed memories, :meth:`Formats.stored`).

At a bit-error rate ``ber`` every stored bit of a memory is faulty with probability ``ber``
independently: the count is drawn from Binomial(bits, ber), the positions uniformly without
replacement, both from the caller's generator. Only bits that hold a network value count
(the lanes of a memory's last word beyond ``n_l`` hold none and are never read), so the
faults do not depend on P.

Modes:

* ``flip``: an upset (single-event upset, retention error): the stored value changes once;
  a later write (a learning update) overwrites it;
* ``stuck0`` / ``stuck1``: a defective cell: the bit reads 0 / 1 whatever is written;
  :class:`StuckAtNetwork` applies the faults again after every update, as the cell would.

Injected into an :class:`~model.integer.IntegerNetwork` the faults reach every engine
that runs it: the core model copies its memories, and the co-simulation bench writes the
faulty words into the core through the host port (``faults`` of sim/tb/tb_core.py; a test
checks that the core and the model then agree on every write).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.checks import check_field
from model.integer import STORED_MEMORIES, IntegerNetwork

__all__ = ["MODES", "Faults", "StuckAtNetwork", "draw", "inject", "memory_bits", "stored_codes"]

#: Fault modes (module docstring).
MODES = ("flip", "stuck0", "stuck1")


@dataclass(frozen=True)
class Faults:
    """Faulty bits of one memory: parallel int64 arrays ``layer``, ``index``, ``bit``."""

    memory: str
    layer: np.ndarray
    index: np.ndarray
    bit: np.ndarray

    def __len__(self) -> int:
        return len(self.bit)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``memory`` and the three arrays as lists."""
        return {"memory": self.memory, "layer": self.layer.tolist(), "index": self.index.tolist(),
                "bit": self.bit.tolist()}

    @classmethod
    def from_dict(cls, data: Any, net: IntegerNetwork) -> Faults:
        """The faults of :meth:`to_dict`, checked against ``net``'s memories.

        Raises
        ------
        ValueError
            Naming the field when a key is missing, the arrays differ in length or a
            layer, index or bit lies outside ``net``'s memory.
        """
        if not isinstance(data, dict) or set(data) != {"memory", "layer", "index", "bit"}:
            raise ValueError("faults: expected an object with memory, layer, index and bit")
        memory = _check_memory(data["memory"])
        arrays = {}
        for name in ("layer", "index", "bit"):
            values = data[name]
            if not isinstance(values, list) or not all(type(v) is int for v in values):
                raise ValueError(f"faults.{name}: expected a list of integers")
            arrays[name] = np.asarray(values, np.int64).reshape(-1)
        if not len(arrays["layer"]) == len(arrays["index"]) == len(arrays["bit"]):
            raise ValueError("faults: layer, index and bit differ in length")
        layers = _layers(net, memory)
        width = net.formats.stored(memory).bits
        for layer, index, bit in zip(arrays["layer"], arrays["index"], arrays["bit"]):
            if layer not in layers:
                raise ValueError(f"faults.layer: {layer} is out of range (allowed {layers.start}..{layers.stop - 1})")
            size = net.memory(memory, int(layer)).size
            if not 0 <= index < size:
                raise ValueError(f"faults.index: {index} is out of range (allowed 0..{size - 1})")
            if not 0 <= bit < width:
                raise ValueError(f"faults.bit: {bit} is out of range (allowed 0..{width - 1})")
        return cls(memory, arrays["layer"], arrays["index"], arrays["bit"])


def _layers(net: IntegerNetwork, memory: str) -> range:
    first = 1 if memory in ("W", "DW") else 0
    return range(first, net.spec.num_layers + 1)


def _check_memory(memory: str) -> str:
    if memory not in STORED_MEMORIES:
        raise ValueError(f"memory: {memory!r} is not one of {', '.join(STORED_MEMORIES)}")
    return memory


def memory_bits(net: IntegerNetwork, memory: str) -> int:
    """Stored bits of ``memory`` over all layers: values x width."""
    width = net.formats.stored(_check_memory(memory)).bits
    return sum(net.memory(memory, layer).size for layer in _layers(net, memory)) * width


def draw(
    net: IntegerNetwork,
    memory: str,
    ber: float,
    rng: np.random.Generator,
    *,
    bit: int | None = None,
) -> Faults:
    """Draw the faulty bits of ``memory`` at bit-error rate ``ber``.

    Parameters
    ----------
    ber : float
        Probability that a stored bit is faulty, 0..1.
    rng : numpy.random.Generator
        Draws the count and the positions.
    bit : int, optional
        Only this bit position of every value (the rate is then per value): which bits
        matter most.

    Raises
    ------
    ValueError
        Naming ``memory``, ``ber`` or ``bit`` and the allowed range.
    """
    width = net.formats.stored(_check_memory(memory)).bits
    if not (isinstance(ber, (int, float)) and 0.0 <= ber <= 1.0):
        raise ValueError(f"ber: {ber!r} is out of range (allowed 0..1)")
    if bit is not None:
        bit = check_field("bit", bit, minimum=0, maximum=width - 1)
    layers = list(_layers(net, memory))
    sizes = np.array([net.memory(memory, layer).size for layer in layers], np.int64)
    per_value = 1 if bit is not None else width
    total = int(sizes.sum()) * per_value
    count = int(rng.binomial(total, ber)) if total else 0
    positions = np.sort(rng.choice(total, size=count, replace=False)) if count else np.zeros(0, np.int64)
    value, position_bit = np.divmod(positions, per_value)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    which = np.searchsorted(starts, value, side="right") - 1
    return Faults(
        memory,
        np.asarray(layers, np.int64)[which] if count else np.zeros(0, np.int64),
        (value - starts[which]).astype(np.int64),
        np.full(count, bit, np.int64) if bit is not None else position_bit.astype(np.int64),
    )


def stored_codes(net: IntegerNetwork, memory: str, layer: int) -> np.ndarray:
    """The stored bit patterns (unsigned codes, int64) of ``memory`` of ``layer``."""
    fmt = net.formats.stored(memory)
    return np.asarray(net.memory(memory, layer), np.int64) & ((1 << fmt.bits) - 1)


def apply(net: IntegerNetwork, faults: Faults, mode: str) -> None:
    """Apply ``faults`` to ``net``'s stored values in place (through :meth:`IntegerNetwork.store`).

    Raises
    ------
    ValueError
        Naming ``mode`` when it is not one of :data:`MODES`.
    """
    if mode not in MODES:
        raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    fmt = net.formats.stored(faults.memory)
    for layer in np.unique(faults.layer):
        chosen = faults.layer == layer
        codes = stored_codes(net, faults.memory, int(layer)).ravel()
        index, masks = faults.index[chosen], np.left_shift(1, faults.bit[chosen])
        if mode == "flip":
            np.bitwise_xor.at(codes, index, masks)
        elif mode == "stuck0":
            np.bitwise_and.at(codes, index, ~masks)
        else:
            np.bitwise_or.at(codes, index, masks)
        if fmt.signed:
            codes = np.where(codes >> (fmt.bits - 1), codes - (1 << fmt.bits), codes)
        shape = net.memory(faults.memory, int(layer)).shape
        net.store(faults.memory, int(layer), codes.reshape(shape))


class StuckAtNetwork(IntegerNetwork):
    """A copy of a network whose faulty cells stay stuck: the faults are applied on
    construction and again after every update (:meth:`IntegerNetwork.update`).

    Parameters
    ----------
    network : IntegerNetwork
        Copied; not modified.
    faults : sequence of Faults
    mode : str
        ``"stuck0"`` or ``"stuck1"``.
    """

    def __init__(self, network: IntegerNetwork, faults: Sequence[Faults], mode: str) -> None:
        if mode not in MODES[1:]:
            raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES[1:])}")
        self.__dict__.update(copy.deepcopy(network.__dict__))
        self.faults = list(faults)
        self.mode = mode
        self._stick()

    def _stick(self) -> None:
        for faults in self.faults:
            apply(self, faults, self.mode)

    def update(self, *, reference: bool = False) -> None:
        super().update(reference=reference)
        self._stick()


def inject(net: IntegerNetwork, faults: Sequence[Faults], mode: str) -> IntegerNetwork:
    """A copy of ``net`` with ``faults`` applied: an :class:`IntegerNetwork` for ``flip``,
    a :class:`StuckAtNetwork` for the stuck-at modes."""
    if mode not in MODES:
        raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    if mode != "flip":
        return StuckAtNetwork(net, faults, mode)
    faulty = copy.deepcopy(net)
    for group in faults:
        apply(faulty, group, mode)
    return faulty
