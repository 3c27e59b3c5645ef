"""Parameters, memory map and memory images of the whole core (docs/architecture.md).

:class:`CoreConfig` is everything the RTL of :class:`hw.core.Core` is generated from: the
geometry of an :class:`~model.integer.IntegerNetwork` (layer sizes and, with conv or AP2
layers, shapes and pools; T, classes,
population, decoder, reset, trainable thresholds), its numeric formats, learning rule and
LFSR state, plus the lanes ``P`` and the spike-queue depth ``Q``. It lists the memories
(:class:`MemorySpec`, section 2 of the architecture), the host memory map (the run-time
load/read port) and the performance counters, and renders the memory-init images
(``$readmemh`` hex files written with :mod:`bitstring`).

The contents of the memories follow the architecture's word layout: neuron ``j`` of a
flat layer sits in word ``j // P``, lane ``j % P`` (lane 0 in the least significant bits;
grid layers position-major, :class:`model.core_layout.LayerLayout`); weight row ``i``
(presynaptic neuron ``i`` of layer ``l - 1``; conv: ``9 c + 3 i + j``) occupies words
``i c_l .. i c_l + c_l - 1`` with ``c_l = ceil(n_l / P)`` (conv: ``ceil(C_out / P)``);
padding lanes hold 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bitstring import BitArray

from model.checks import check_int
from model.core import INTEGRATE_LATENCY, MEMORIES, PHASES, check_core_spec
from model.core_layout import LayerLayout
from model.fixed import ceil_log2
from model.integer import Formats, IntegerNetwork, shift_offsets
from model.spec import NetworkSpec
from model.synapses import positions

__all__ = [
    "COUNTER_BITS",
    "COUNTER_SETS",
    "DEFAULT_QUEUE_DEPTH",
    "HOST_MEMORIES",
    "HOST_REGISTERS",
    "MAX_LANES",
    "MAX_QUEUE_DEPTH",
    "PIXEL_BITS",
    "TARGETS",
    "CoreConfig",
    "CounterSpec",
    "MemorySpec",
    "Target",
    "check_rtl_spec",
    "learning_refusal",
]

#: Width of every performance counter (they wrap).
COUNTER_BITS = 32
#: Spike-queue depth Q of the command line's generated and co-simulated cores.
DEFAULT_QUEUE_DEPTH = 16
#: Largest lanes P a core is built with (the smallest is 1).
MAX_LANES = 1024
#: Largest spike-queue depth Q a core is built with (the smallest is 1).
MAX_QUEUE_DEPTH = 1 << 16
#: Width of a pixel (u8).
PIXEL_BITS = 8
#: Counter sets of ``counters=``: ``all`` (every counter of the model), ``events`` (cycles
#: per phase, spikes, synaptic operations and backward window events: what the energy
#: estimate prices, without the per-memory read/write counters that dominate the core's
#: logic on a small FPGA) or ``cycles`` (cycles per phase only; the model predicts the
#: rest exactly).
COUNTER_SETS = ("all", "events", "cycles")
#: Memories of the host map (:attr:`CoreConfig.host_memories`).
HOST_MEMORIES = ("VTH", "R", "W", "DW", "DVTH", "D", "DD")
#: Host-accessible registers of region 0 of the host map, by word address.
HOST_REGISTERS = ("shift_w", "shift_th", "lfsr_state", "pending")


def check_rtl_spec(spec: NetworkSpec) -> None:
    """Raise ``ValueError`` naming ``arch`` unless the RTL core can build ``spec``: FC, 3x3
    conv and AP2 layers on flat or image inputs (:func:`model.core.check_core_spec`)."""
    check_core_spec(spec)


def learning_refusal(spec: NetworkSpec, config: CoreConfig) -> str:
    """Why ``config``, the RTL core built for ``spec``, does not learn (for a one-line error)."""
    if spec.reset == "subtract" and spec.surrogate == "scaled" and config.single_port_weights:
        return (f"{spec.arch} has grid layers, whose dW passes need dual-port weight memories; the "
                "target keeps W and dW in single-port RAM (build for another target to learn)")
    return "the core learns only networks with reset 'subtract' and surrogate 'scaled'"


@dataclass(frozen=True)
class Target:
    """An implementation target: the memory bits it offers and the largest single memory.

    Attributes
    ----------
    name : str
    total_bits : int
        All dual-port memory bits of the core must fit (sum over memories of depth x word
        bits).
    memory_bits : int
        Bits of the largest single memory.
    source : str
        Where the figures come from.
    single_port_blocks : int
        Single-port RAM blocks of ``single_port_depth`` x ``single_port_width`` bits (iCE40
        SPRAM); when nonzero the core keeps W and dW in them (``single_port_weights``).
    counters : str
        The counter set built for the target unless one is asked for (:data:`COUNTER_SETS`).
    """

    name: str
    total_bits: int
    memory_bits: int
    source: str
    single_port_blocks: int = 0
    single_port_depth: int = 16384
    single_port_width: int = 16
    counters: str = "all"

    def single_port_cost(self, depth: int, word_bits: int) -> int:
        """Single-port blocks one memory of ``depth`` words of ``word_bits`` takes."""
        return math.ceil(depth / self.single_port_depth) * math.ceil(word_bits / self.single_port_width)


#: Targets of ``spikeforge gen --target``: ``sim`` bounds only what a simulator builds in
#: reasonable time; the FPGA figures are the devices' dual-port block RAM.
TARGETS = {
    target.name: target
    for target in (
        Target("sim", 1 << 28, 1 << 26, "co-simulation: 256 Mbit in all, 64 Mbit per memory"),
        Target(
            "ice40-up5k", 30 * 4096, 30 * 4096,
            "Lattice iCE40 UltraPlus 5K: 30 EBR x 4 kbit; W and dW in its 4 single-port "
            "SPRAMs of 16K x 16 (docs/architecture.md section 2.1); cycle counters only",
            single_port_blocks=4, counters="cycles",
        ),
        Target("ecp5-25k", 56 * 18432, 56 * 18432, "Lattice ECP5 LFE5U-25: 56 EBR x 18 kbit"),
        Target("ecp5-45k", 108 * 18432, 108 * 18432, "Lattice ECP5 LFE5U-45: 108 EBR x 18 kbit"),
        Target("ecp5-85k", 208 * 18432, 208 * 18432, "Lattice ECP5 LFE5U-85: 208 EBR x 18 kbit"),
    )
}


@dataclass(frozen=True)
class MemorySpec:
    """One memory of the core (docs/architecture.md section 2).

    Attributes
    ----------
    name : str
        One of :data:`model.core.MEMORIES`.
    layer : int
        Owning layer, 0 = encoder.
    depth : int
        Words.
    lane_bits : int
        Bits per lane.
    signed : bool
        Two's complement lanes (else unsigned).
    lanes : int
        P.
    """

    name: str
    layer: int
    depth: int
    lane_bits: int
    signed: bool
    lanes: int

    @property
    def key(self) -> str:
        """``NAME<layer>``, e.g. ``W1``: the memory's identifier in ports and files."""
        return f"{self.name}{self.layer}"

    @property
    def word_bits(self) -> int:
        """Bits of one word (P lanes)."""
        return self.lane_bits * self.lanes

    @property
    def address_bits(self) -> int:
        """Bits of a word address (at least 1)."""
        return max(ceil_log2(self.depth), 1)

    @property
    def bits(self) -> int:
        """Total bits (depth x word bits)."""
        return self.depth * self.word_bits

    def pack(self, lanes: Sequence[int]) -> int:
        """The word holding ``lanes`` (P values, lane 0 in the least significant bits)."""
        word = 0
        mask = (1 << self.lane_bits) - 1
        for index, value in enumerate(lanes):
            word |= (int(value) & mask) << (index * self.lane_bits)
        return word

    def unpack(self, word: int) -> tuple[int, ...]:
        """The P lane values of ``word`` (sign-extended for signed memories)."""
        mask = (1 << self.lane_bits) - 1
        values = []
        for index in range(self.lanes):
            value = (int(word) >> (index * self.lane_bits)) & mask
            if self.signed and value >> (self.lane_bits - 1):
                value -= 1 << self.lane_bits
            values.append(value)
        return tuple(values)


@dataclass(frozen=True)
class CounterSpec:
    """One performance counter of the core, in counter-port order.

    Attributes
    ----------
    name : str
        ``cycles.<phase>``, ``<event>.<layer>`` (``spikes``, ``synaptic_ops``,
        ``window_events``, ``stall_cycles``, ``queue_high_water``) or
        ``reads.<MEMORY>.<layer>`` / ``writes.<MEMORY>.<layer>``.
    kind : str
        ``cycles``, ``event``, ``reads`` or ``writes``.
    layer : int or None
        The layer the count belongs to (the model's :class:`~model.core.LayerCounters`
        attribution: a forward stage's integration and a backward dV pass's dot products
        count on the scanned / windowed layer), ``None`` for cycles.
    item : str
        The phase (cycles), the event name or the memory name.
    """

    name: str
    kind: str
    layer: int | None
    item: str


@dataclass(frozen=True)
class CoreConfig:
    """Everything the core is generated from.

    Build it with :meth:`from_network`. The numeric formats follow docs/numerics.md
    section 1; lanes and queue depth docs/architecture.md section 1.

    Attributes
    ----------
    sizes : tuple of int
        ``n_0 .. n_L`` (``n_0`` = inputs).
    lanes : int
        P, values per memory word, 1 or more.
    queue_depth : int
        Q, spike-queue capacity, 1 or more (docs/architecture.md section 3).
    timesteps, classes, population : int
        T, C and neurons per class (output layer = ``C x population``).
    decoder : str
        ``"last"``, ``"rate"`` or ``"fc"``.
    reset : str
        ``"subtract"`` or ``"zero"``.
    trainable : bool
        Thresholds learn (eq. 11): DVTH memories and threshold updates exist.
    learnable : bool
        The core can learn the network (reset by subtraction, eq. 14 surrogate; with grid
        layers, dual-port weight memories): the backward and update hardware exist.
    rounding : str
        Update rounding: ``"floor"``, ``"nearest"`` or ``"stochastic"``.
    batch : int
        B, samples per update.
    formats : Formats
        Widths (w, fw, v, g, gf, dw, dth, k).
    shift_w, shift_th : int
        Reset values of the learning-rate shift registers (0..31).
    lfsr_state : int
        Reset value of the LFSR (1..2^32-1).
    pending : int
        Reset value of the pending-sample counter (0..B-1).
    counter_set : str
        One of :data:`COUNTER_SETS`.
    single_port_weights : bool
        W and dW in the single-port banks (:meth:`weight_banks`).
    shapes, pools, numbers, offsets : tuple
        Networks with grid layers only (empty for FC networks on flat inputs): per layer of
        the core (its spiking layers, numbered 0..L without the AP2 layers) the shape
        ``(n,)`` or ``(C, H, W)``, the AP2 layers in front of it (k), its index in the
        network's spec and its (weight, threshold) learning-rate shift offsets
        (:func:`model.integer.shift_offsets`).
    """

    sizes: tuple[int, ...]
    lanes: int
    queue_depth: int
    timesteps: int
    classes: int
    population: int
    decoder: str
    reset: str
    trainable: bool
    learnable: bool
    rounding: str
    batch: int
    formats: Formats
    shift_w: int
    shift_th: int
    lfsr_state: int
    pending: int
    counter_set: str = "all"
    single_port_weights: bool = False
    shapes: tuple[tuple[int, ...], ...] = ()
    pools: tuple[int, ...] = ()
    numbers: tuple[int, ...] = ()
    offsets: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_network(
        cls, network: IntegerNetwork, *, lanes: int, queue_depth: int, target: str = "sim",
        counters: str | None = None,
    ) -> CoreConfig:
        """The configuration of a core running ``network`` with P lanes and queues of depth Q.

        ``target`` (a key of :data:`TARGETS`) decides where W and dW live: a target with
        single-port RAM blocks (iCE40 SPRAM) gets ``single_port_weights``. ``counters`` is
        one of :data:`COUNTER_SETS` (default: the target's, :attr:`Target.counters`).

        Raises
        ------
        ValueError
            For a network the core cannot build (``arch``), ``lanes`` / ``queue_depth``
            out of range, an unknown ``target``
            or ``counters`` (naming them), or single-port weights with an odd row length.
        TypeError
            When ``lanes`` or ``queue_depth`` is not an integer.
        """
        if not isinstance(network, IntegerNetwork):
            raise ValueError(f"network: expected an IntegerNetwork, got {type(network).__name__}")
        spec = network.spec
        check_rtl_spec(spec)
        lanes = check_int("lanes", lanes, minimum=1, maximum=MAX_LANES)
        queue_depth = check_int("queue_depth", queue_depth, minimum=1, maximum=MAX_QUEUE_DEPTH)
        if target not in TARGETS:
            raise ValueError(f"target: {target!r} is not one of {', '.join(TARGETS)}")
        if counters is None:
            counters = TARGETS[target].counters
        if counters not in COUNTER_SETS:
            raise ValueError(f"counters: {counters!r} is not one of {', '.join(COUNTER_SETS)}")
        rule = network.rule
        spiking = spec.spiking_layers()
        grid = () if spec.is_fc_only else (
            tuple(spec.layer_shape(index) for index in spiking),
            (0,) + tuple(above - below - 1 for below, above in zip(spiking, spiking[1:])),
            tuple(spiking),
            tuple(shift_offsets(spec, index) for index in spiking),
        )
        config = cls(
            sizes=tuple(spec.neurons(index) for index in spiking),
            lanes=lanes,
            queue_depth=queue_depth,
            timesteps=spec.timesteps,
            classes=spec.classes,
            population=spec.population,
            decoder=spec.decoder,
            reset=spec.reset,
            trainable=spec.threshold == "trainable",
            # A grid layer's dW events revisit rows at any parity: dual-port W and dW only.
            learnable=spec.reset == "subtract" and spec.surrogate == "scaled"
            and not (grid and TARGETS[target].single_port_blocks),
            rounding=rule.rounding,
            batch=rule.batch,
            formats=network.formats,
            shift_w=rule.shift_w,
            shift_th=rule.shift_th,
            lfsr_state=network.lfsr.state,
            pending=network.pending,
            counter_set=counters,
            single_port_weights=TARGETS[target].single_port_blocks > 0,
            **dict(zip(("shapes", "pools", "numbers", "offsets"), grid)),
        )
        if config.single_port_weights:
            for layer in range(1, config.layers + 1):
                if config.row_words(layer) % 2:
                    raise ValueError(
                        f"lanes: single-port weight memories ({target}) need an even number of "
                        f"words per weight row; P = {lanes} gives c_{layer} = {config.row_words(layer)}"
                    )
        return config

    @classmethod
    def for_target(
        cls, network: IntegerNetwork, *, lanes: int, queue_depth: int, target: str = "sim",
        counters: str | None = None,
    ) -> CoreConfig:
        """:meth:`from_network` for ``target``, checked to fit it (:meth:`check_target`).

        Raises
        ------
        ValueError
            As :meth:`from_network` and :meth:`check_target`; when P is what does not fit,
            the message names the P values that do (:meth:`lanes_that_fit`).
        """
        if target not in TARGETS:
            raise ValueError(f"target: {target!r} is not one of {', '.join(TARGETS)}")
        try:
            config = cls.from_network(
                network, lanes=lanes, queue_depth=queue_depth, target=target, counters=counters
            )
            config.check_target(target)
        except ValueError as error:
            if not str(error).startswith(("lanes:", "target:")):
                raise
            fitting = cls._fitting_lanes_text(network, queue_depth, target, counters)
            raise ValueError(f"{error}; {fitting}") from None
        return config

    @classmethod
    def lanes_that_fit(
        cls, network: IntegerNetwork, *, queue_depth: int, target: str, counters: str | None = None
    ) -> list[int]:
        """The lanes P (1 up to the widest layer) whose core for ``network`` fits ``target``."""
        widest = max(network.spec.neurons(index) for index in range(network.spec.num_layers + 1))
        fitting = []
        for lanes in range(1, min(MAX_LANES, widest) + 1):
            try:
                config = cls.from_network(
                    network, lanes=lanes, queue_depth=queue_depth, target=target, counters=counters
                )
                config.check_target(target)
            except ValueError:
                continue
            fitting.append(lanes)
        return fitting

    @classmethod
    def _fitting_lanes_text(
        cls, network: IntegerNetwork, queue_depth: int, target: str, counters: str | None
    ) -> str:
        fitting = cls.lanes_that_fit(network, queue_depth=queue_depth, target=target, counters=counters)
        if not fitting:
            return f"no P fits {target} at Q = {queue_depth} with these formats"
        runs: list[list[int]] = []
        for lanes in fitting:
            if runs and lanes == runs[-1][-1] + 1:
                runs[-1].append(lanes)
            else:
                runs.append([lanes])
        spans = ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}..{run[-1]}" for run in runs)
        return f"lanes that fit {target} at Q = {queue_depth}: {spans}"

    # Geometry ------------------------------------------------------------------------------

    @property
    def layers(self) -> int:
        """L, layers after the encoder."""
        return len(self.sizes) - 1

    def shape(self, layer: int) -> tuple[int, ...]:
        """Shape of layer ``layer``: ``(n,)`` or ``(C, H, W)`` (a grid layer)."""
        return self.shapes[layer] if self.shapes else (self.sizes[layer],)

    def grid(self, layer: int) -> bool:
        """Layer ``layer`` is stored position-major (conv, an image encoder)."""
        return len(self.shape(layer)) == 3

    def pool_levels(self, layer: int) -> int:
        """k: the AP2 layers between layer ``layer - 1`` and layer ``layer`` (1..L)."""
        return self.pools[layer] if self.pools else 0

    def number(self, layer: int) -> int:
        """The index in the network's spec of the core's layer ``layer``."""
        return self.numbers[layer] if self.numbers else layer

    def shift_offsets(self, layer: int) -> tuple[int, int]:
        """Layer ``layer``'s additions to the weight and threshold shifts (0 for FC layers on
        flat inputs)."""
        return self.offsets[layer] if self.offsets else (0, 0)

    def layer_of(self, number: int) -> int:
        """The core's layer of the network spec's spiking layer ``number``."""
        return self.numbers.index(number) if self.numbers else number

    def layout(self, layer: int) -> LayerLayout:
        """The word layout of layer ``layer`` (:class:`model.core_layout.LayerLayout`)."""
        shape = self.shape(layer)
        return LayerLayout(self.lanes, shape[0], positions(shape), len(shape) == 3)

    @property
    def words(self) -> tuple[int, ...]:
        """``w_l``, l = 0..L: ``ceil(n_l / P)`` (flat) or ``H W ceil(C / P)`` (grid)."""
        return tuple(self.layout(layer).words for layer in range(len(self.sizes)))

    def channel_words(self, layer: int) -> int:
        """Words of a per-channel memory (VTH, R, DVTH) of ``layer``: ``ceil(C / P)``."""
        return math.ceil(self.shape(layer)[0] / self.lanes)

    def row_words(self, layer: int) -> int:
        """``c_l``: words of one weight row of layer ``layer`` (1..L): ``ceil(n_l / P)``
        (FC), ``ceil(C_out / P)`` (conv)."""
        return self.channel_words(layer)

    def weight_rows(self, layer: int) -> int:
        """Rows of the weights of layer ``layer`` (1..L): its inputs after the pools (FC),
        ``9 C_in`` (conv)."""
        if self.grid(layer):
            return 9 * self.shape(layer - 1)[0]
        return self.sizes[layer - 1] >> (2 * self.pool_levels(layer))

    def valid_lanes(self, layer: int, word: int) -> int:
        """Lane mask of the neurons that exist in ``word`` of ``layer`` (grid: of the
        channel block ``word mod ceil(C / P)``)."""
        if self.grid(layer):
            return self.block_lanes(layer, word % self.channel_words(layer))
        return (1 << min(self.lanes, self.sizes[layer] - word * self.lanes)) - 1

    def block_lanes(self, layer: int, block: int) -> int:
        """Lane mask of the channels in word ``block`` of a per-channel memory of ``layer``."""
        return (1 << min(self.lanes, self.shape(layer)[0] - block * self.lanes)) - 1

    @property
    def first_backward_layer(self) -> int:
        """The lowest layer with a dV pass: 0 with trainable thresholds, else 1."""
        return 0 if self.trainable else 1

    @property
    def fc_decoder(self) -> bool:
        """The readout is the fc decoder (memories D and dD)."""
        return self.decoder == "fc"

    @property
    def count_bits(self) -> int:
        """Width of a decoded class value: a spike count ``n_c`` (0..population x T,
        unsigned), or the fc decoder's sum of up to ``T n_L`` signed w-bit weights."""
        if self.fc_decoder:
            return self.formats.w + ceil_log2(self.timesteps * self.sizes[-1])
        return max(ceil_log2(self.population * self.timesteps + 1), 1)

    @property
    def decoder_words(self) -> int:
        """``c_D = ceil(C / P)``: words of one fc decoder row (0 without the fc decoder)."""
        return math.ceil(self.classes / self.lanes) if self.fc_decoder else 0

    def decoder_lanes(self, word: int) -> int:
        """Lane mask of the classes in ``word`` of a fc decoder row."""
        return (1 << min(self.lanes, self.classes - word * self.lanes)) - 1

    @property
    def class_bits(self) -> int:
        """Width of a class index (at least 1)."""
        return max(ceil_log2(self.classes), 1)

    @property
    def index_bits(self) -> tuple[int, ...]:
        """Width of a neuron index of each layer in its spike queue (at least 2)."""
        return tuple(max(ceil_log2(n), 2) for n in self.sizes)

    @property
    def max_fan_out(self) -> int:
        """Largest layer size after the encoder: the longest dot product."""
        return max(self.sizes[1:])

    def class_of(self, word: int, lane: int) -> int:
        """Class of lane ``lane`` of output word ``word`` (0 for padding lanes)."""
        neuron = word * self.lanes + lane
        return neuron // self.population if neuron < self.sizes[-1] else 0

    # Memories ------------------------------------------------------------------------------

    @property
    def memories(self) -> tuple[MemorySpec, ...]:
        """The memories that exist, by layer, in :data:`model.core.MEMORIES` order."""
        f = self.formats
        lane = {
            "PIX": (PIXEL_BITS, False), "V": (f.v, True), "VTH": (f.v - 1, False),
            "R": (f.k + 1, False), "S": (1, False), "H": (1, False), "W": (f.w, True),
            "DV": (f.g, True), "DW": (f.dw, True), "DVTH": (f.dth, True),
            "D": (f.w, True), "DD": (f.dw, True),
        }
        specs = []
        for layer, words in enumerate(self.words):
            channel_words = self.channel_words(layer)
            weights = self.weight_rows(layer) * self.row_words(layer) if layer else 0
            depth = {
                "PIX": words, "V": words, "VTH": channel_words, "R": channel_words,
                "S": self.timesteps * words, "H": self.timesteps * words,
                "W": weights, "DV": words, "DW": weights, "DVTH": channel_words,
                "D": self.timesteps * self.sizes[-1] * self.decoder_words,
                "DD": self.timesteps * self.sizes[-1] * self.decoder_words,
            }
            for name in MEMORIES:
                if self._has_memory(name, layer):
                    bits, signed = lane[name]
                    specs.append(MemorySpec(name, layer, depth[name], bits, signed, self.lanes))
        return tuple(specs)

    def _has_memory(self, name: str, layer: int) -> bool:
        if name == "PIX":
            return layer == 0
        if name == "W":
            return layer >= 1
        if name == "DV":
            return self.learnable and layer >= self.first_backward_layer
        if name == "DW":
            return self.learnable and layer >= 1
        if name == "DVTH":
            return self.learnable and self.trainable
        if name in ("D", "DD"):  # the fc decoder's, with the output layer
            return self.fc_decoder and layer == self.layers and (name == "D" or self.learnable)
        return True

    def memory(self, name: str, layer: int) -> MemorySpec:
        """The memory ``name`` of ``layer``.

        Raises
        ------
        ValueError
            When the core has no such memory.
        """
        for spec in self.memories:
            if spec.name == name and spec.layer == layer:
                return spec
        raise ValueError(f"memory: the core has no {name} memory in layer {layer}")

    @property
    def memory_bits(self) -> int:
        """Bits of all memories."""
        return sum(spec.bits for spec in self.memories)

    def check_target(self, target: str) -> Target:
        """Check that the memories fit ``target`` (a key of :data:`TARGETS`).

        Raises
        ------
        ValueError
            Naming ``target`` when unknown, or the memory that does not fit.
        """
        if target not in TARGETS:
            raise ValueError(f"target: {target!r} is not one of {', '.join(TARGETS)}")
        chosen = TARGETS[target]
        banked = self.single_port_weights and chosen.single_port_blocks > 0
        dual = [spec for spec in self.memories if not (banked and self.in_weight_banks(spec))]
        if banked:
            blocks = sum(chosen.single_port_cost(depth, bits) for _, depth, bits in self.weight_banks())
            if blocks > chosen.single_port_blocks:
                raise ValueError(
                    f"target: W and dW need {blocks} single-port blocks of {chosen.single_port_depth} x "
                    f"{chosen.single_port_width} bits, more than the {chosen.single_port_blocks} of {target}"
                )
        largest = max(dual, key=lambda spec: spec.bits)
        if largest.bits > chosen.memory_bits:
            raise ValueError(
                f"target: memory {largest.key} needs {largest.bits} bits, more than the "
                f"{chosen.memory_bits} of one memory on {target}"
            )
        total = sum(spec.bits for spec in dual)
        if total > chosen.total_bits:
            raise ValueError(
                f"target: the memories need {total} bits, more than the "
                f"{chosen.total_bits} available on {target}"
            )
        return chosen

    def v_read_transparent(self, spec: MemorySpec) -> bool:
        """``spec`` is a ``V`` whose read port must be transparent to its write port: a conv
        layer's (its scoreboard lets a read meet the pending write) or an FC layer's whose
        events can start ``INTEGRATE_LATENCY`` cycles apart (rows of ``c <= INTEGRATE_LATENCY``
        words: the next event reads a word in the cycle it is written). Never the encoder's
        (docs/architecture.md section 5.5)."""
        if spec.name != "V" or spec.layer == 0:
            return False
        return self.grid(spec.layer) or self.row_words(spec.layer) <= INTEGRATE_LATENCY

    def in_weight_banks(self, spec: MemorySpec) -> bool:
        """``spec`` lives in the shared single-port banks (W and dW with ``single_port_weights``)."""
        return self.single_port_weights and spec.name in ("W", "DW")

    def weight_banks(self) -> list[tuple[str, int, int]]:
        """``(name, depth, word_bits)`` of each single-port bank (none without ``single_port_weights``).

        W and dW each get two banks, even and odd word addresses, every layer's words stacked
        from layer 1 up (:meth:`bank_base`); a pass never reads and writes one bank in the
        same cycle (docs/architecture.md section 2.1).
        """
        if not self.single_port_weights:
            return []
        banks = []
        for name in ("W", "DW"):
            specs = [spec for spec in self.memories if spec.name == name]
            if specs:
                depth = max(self.bank_base(name, spec.layer) + spec.depth // 2 for spec in specs)
                banks += [(f"{name}_even", depth, specs[0].word_bits), (f"{name}_odd", depth, specs[0].word_bits)]
        return banks

    def bank_base(self, name: str, layer: int) -> int:
        """First bank word of ``name`` (W or DW) of ``layer`` in its single-port banks.

        Aligned when that takes no deeper power of two than stacking: each layer's half
        (``depth / 2`` words) in a power-of-two region, the largest first, so a region's
        base is a multiple of its size and the bank address is the base's bits above the
        word's (no adder). Otherwise the halves are stacked from layer 1 up.
        """
        halves = {spec.layer: spec.depth // 2 for spec in self.memories if spec.name == name}
        regions = {below: 1 << ceil_log2(half) for below, half in halves.items()}
        stacked = sum(halves.values())
        if sum(regions.values()) <= 1 << ceil_log2(stacked):
            order = sorted(regions, key=lambda below: (-regions[below], below))
            return sum(regions[below] for below in order[:order.index(layer)])
        return sum(halves[below] for below in halves if below < layer)

    # Host map ------------------------------------------------------------------------------

    @property
    def host_memories(self) -> tuple[MemorySpec, ...]:
        """Memories reachable through the host port, in region order 1, 2, ...: the learned
        state and parameters (W, VTH, R, dW, dVth; the fc decoder's D, dD); the per-sample
        memories (PIX, V, S, H, dV) are rewritten by every sample and have no host port."""
        return tuple(spec for spec in self.memories if spec.name in HOST_MEMORIES)

    @property
    def host_word_bits(self) -> int:
        """Bits of a word address in the host map."""
        return max(
            max(spec.address_bits for spec in self.host_memories),
            ceil_log2(len(HOST_REGISTERS)),
        )

    @property
    def host_region_bits(self) -> int:
        """Bits of the region number (region 0 = registers)."""
        return max(ceil_log2(len(self.host_memories) + 1), 1)

    @property
    def host_data_bits(self) -> int:
        """Width of the host data bus: the widest word or register (LFSR: 32 bits)."""
        return max(32, max(spec.word_bits for spec in self.host_memories))

    def host_address(self, key: str, word: int = 0) -> int:
        """Host address of ``word`` of memory ``key`` (``NAME<layer>``) or register ``key``.

        Raises
        ------
        ValueError
            For an unknown memory/register or a word beyond its depth.
        """
        shift = self.host_word_bits
        if key in HOST_REGISTERS:
            return HOST_REGISTERS.index(key)
        for region, spec in enumerate(self.host_memories, start=1):
            if spec.key == key:
                check_int("word", word, minimum=0, maximum=spec.depth - 1)
                return (region << shift) | word
        names = [spec.key for spec in self.host_memories] + list(HOST_REGISTERS)
        raise ValueError(f"key: {key!r} is not a host memory or register ({', '.join(names)})")

    # Counters ------------------------------------------------------------------------------

    @property
    def counters(self) -> tuple[CounterSpec, ...]:
        """The performance counters, in counter-port order."""
        everything = self.counter_set == "all"
        specs = [CounterSpec(f"cycles.{phase}", "cycles", None, phase) for phase in self.phases]
        if self.counter_set == "cycles":
            return tuple(specs)
        for layer in range(self.layers + 1):
            events = ["spikes"]
            if layer < self.layers:
                events += ["synaptic_ops", "stall_cycles", "queue_high_water"] if everything else ["synaptic_ops"]
            if self.learnable and layer >= self.first_backward_layer:
                events.append("window_events")
            specs += [CounterSpec(f"{event}.{layer}", "event", layer, event) for event in events]
            if everything:
                for kind, names in (("reads", self.read_counts(layer)), ("writes", self.write_counts(layer))):
                    specs += [CounterSpec(f"{kind}.{name}.{layer}", kind, layer, name) for name in names]
        return tuple(specs)

    @property
    def phases(self) -> tuple[str, ...]:
        """Phases the core runs (:data:`model.core.PHASES`; no learning phases without learning)."""
        return PHASES if self.learnable else PHASES[:3]

    def read_counts(self, layer: int) -> tuple[str, ...]:
        """Memories whose word reads count on ``layer`` (model attribution), MEMORIES order."""
        names = {"V", "VTH"} | ({"PIX"} if layer == 0 else set())
        if layer < self.layers:
            names |= {"W"}  # the integration of this layer's spikes into layer + 1
        if self.learnable:
            if layer >= self.first_backward_layer:
                names |= {"H", "R"} | ({"W", "DV"} if layer < self.layers else set())
            if layer >= 1:
                names |= {"S", "DW", "DV", "W"}
            if self.trainable:
                names |= {"DVTH", "DV", "S"}
        if self.fc_decoder and layer == self.layers:  # the decoder's passes and its update
            names |= {"S", "D"} | ({"DD"} if self.learnable else set())
        return tuple(name for name in MEMORIES if name in names)

    def write_counts(self, layer: int) -> tuple[str, ...]:
        """Memories whose word writes count on ``layer`` (model attribution), MEMORIES order."""
        names = {"V", "S", "H"}
        if self.learnable:
            if layer >= self.first_backward_layer:
                names |= {"DV"}
            if layer >= 1:
                names |= {"DW", "W"}
            if self.trainable:
                names |= {"DVTH", "VTH", "R"}
            if self.fc_decoder and layer == self.layers:
                names |= {"D", "DD"}
        return tuple(name for name in MEMORIES if name in names)

    # Contents ------------------------------------------------------------------------------

    def input_words(self, pixels: np.ndarray) -> list[list[int]]:
        """The PIX words of one sample's u8 pixels (flat index order, n_0 values): the
        encoder's layout (grid: position-major, the channels across the lanes)."""
        layout = self.layout(0)
        values = np.asarray(pixels, np.int64).reshape(-1)
        return [list(layout.word_values(values, k)) for k in range(layout.words)]

    def as_words(self, values: np.ndarray) -> list[list[int]]:
        """Per-neuron values of one layer as words of P lanes (padding 0)."""
        padded = np.zeros(math.ceil(len(values) / self.lanes) * self.lanes, np.int64)
        padded[: len(values)] = values
        return padded.reshape(-1, self.lanes).tolist()

    def rows_as_words(self, matrix: np.ndarray) -> list[list[int]]:
        """A layer's ``(n_l, n_{l-1})`` weights (or dW) as memory words: one row per
        presynaptic neuron, ``c_l`` words each."""
        return [word for row in np.asarray(matrix).T for word in self.as_words(row)]

    def initial_contents(self, network: IntegerNetwork) -> dict[str, list[list[int]]]:
        """Words (lists of P lanes) of the memories the network initialises: W, VTH, R (and
        the fc decoder's D: row ``(t-1) n_L + j`` holds the C class weights of output spike
        ``(t, j)``).

        Parameters
        ----------
        network : IntegerNetwork
            A network with this configuration's geometry.

        Returns
        -------
        dict
            ``{key: words}`` for every ``W<l>``, ``VTH<l>`` and ``R<l>`` (and ``D<L>``);
            the other memories start at 0.

        Raises
        ------
        ValueError
            When the network's layer sizes differ from :attr:`sizes`.
        """
        sizes = tuple(network.spec.neurons(self.number(i)) for i in range(self.layers + 1))
        if sizes != self.sizes:
            raise ValueError(f"network: layer sizes {sizes} differ from the core's {self.sizes}")
        contents: dict[str, list[list[int]]] = {}
        for layer in range(self.layers + 1):
            number = self.number(layer)
            contents[f"VTH{layer}"] = self.as_words(network.thresholds[number])
            contents[f"R{layer}"] = self.as_words(network.reciprocals[number])
            if layer:
                contents[f"W{layer}"] = self.rows_as_words(network.weights[number - 1])
        if self.fc_decoder:
            contents[f"D{self.layers}"] = self.rows_as_words(network.decoder)
        return contents

    def write_images(self, network: IntegerNetwork, folder: str | Path) -> dict[str, str]:
        """Write one ``$readmemh`` image per initialised memory: ``<key>.hex``.

        Each line is one word in hexadecimal, most significant lane first (lane 0 in the
        least significant bits), two's complement lanes, padded to whole hex digits.

        Returns
        -------
        dict
            ``{key: file name}``.
        """
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        files = {}
        for key, words in self.initial_contents(network).items():
            spec = next(s for s in self.memories if s.key == key)
            digits = math.ceil(spec.word_bits / 4)
            lines = []
            for word in words:
                bits = BitArray(uint=spec.pack(word), length=digits * 4)
                lines.append(bits.hex)
            name = f"{key}.hex"
            (out / name).write_text("\n".join(lines) + "\n")
            files[key] = name
        return files

    def to_dict(self) -> dict[str, object]:
        """The parameters as JSON-ready values (the manifest's ``parameters``)."""
        return {
            "sizes": list(self.sizes),
            "words": list(self.words),
            "lanes": self.lanes,
            "queue_depth": self.queue_depth,
            "timesteps": self.timesteps,
            "classes": self.classes,
            "population": self.population,
            "decoder": self.decoder,
            "reset": self.reset,
            "trainable": self.trainable,
            "learnable": self.learnable,
            "rounding": self.rounding,
            "batch": self.batch,
            "shift_w": self.shift_w,
            "shift_th": self.shift_th,
            "lfsr_state": self.lfsr_state,
            "pending": self.pending,
            "counter_set": self.counter_set,
            "single_port_weights": self.single_port_weights,
            **({"shapes": [list(shape) for shape in self.shapes], "pools": list(self.pools),
                "numbers": list(self.numbers), "offsets": [list(pair) for pair in self.offsets]}
               if self.shapes else {}),
        }
