"""The HLS C++ target: a Vitis HLS project of the learning core for an integer network.

The C++ implements the numerics contract once (``templates/spikeforge_fixed.h``) and one
sample of the core on it (``templates/spikeforge_core.h``); the top function
(``templates/spikeforge.cpp``) adds the interfaces and memory partitioning. This module writes
the parts that depend on the network -- ``parameters.h`` (sizes, formats, switches, the
memory layout) and ``weights.h`` (the checkpoint's initial contents) -- next to copies of the
templates, plus the testbench, its data files and ``build_prj.tcl`` (see docs/hls.md):

``<out>/firmware/``
    ``spikeforge.cpp`` (top ``spikeforge_top``), ``spikeforge.h``, ``spikeforge_core.h``,
    ``spikeforge_fixed.h``, ``parameters.h``, ``weights.h``;
``<out>/tb/``
    ``tb_spikeforge.cpp`` (self-checking), ``tb_input.dat``, ``tb_expected.dat``;
``<out>/build_prj.tcl``, ``<out>/README.md``.

The same core compiled with ``templates/engine.cpp`` is the native engine of
:mod:`sim.hls_engine`. Running the C simulation and producing the expected values from the
integer model is :mod:`sim.hls_csim`'s job.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hw.core_config import MAX_LANES
from model.checks import check_field, check_int
from model.fixed import ceil_log2
from model.core import check_core_spec
from model.integer import PIXEL_FRAC, IntegerNetwork, label_target, shift_offsets
from model.spec import NetworkSpec
from model.synapses import positions, source_layer

__all__ = [
    "DEFAULT_CLOCK_NS",
    "DEFAULT_PART",
    "ENGINE_SOURCE",
    "MAX_SPIKE_BITS",
    "OPS",
    "STATE_ARRAYS",
    "TOP",
    "Layout",
    "Vectors",
    "check_target",
    "engine_sources",
    "firmware_sources",
    "learnable",
    "write_project",
]

#: Folder of the C++ and Tcl templates.
TEMPLATES = Path(__file__).with_name("templates")
#: Firmware files copied verbatim from :data:`TEMPLATES`.
FIRMWARE_TEMPLATES = ("spikeforge_fixed.h", "spikeforge_core.h", "spikeforge.h", "spikeforge.cpp")
#: The testbench source (tb/).
TESTBENCH = "tb_spikeforge.cpp"
#: The native engine's C ABI wrapper (not part of the HLS project).
ENGINE_SOURCE = "engine.cpp"
#: The HLS top function.
TOP = "spikeforge_top"
#: Default FPGA part of build_prj.tcl (Zynq-7020, e.g. PYNQ-Z2) and clock period (ns).
DEFAULT_PART = "xc7z020clg400-1"
DEFAULT_CLOCK_NS = 10.0
#: Largest per-sample S and h memory (T x neurons bits each) the target accepts.
MAX_SPIKE_BITS = 1 << 24
#: Largest memory (words x lanes) the target's int indices address.
MAX_MEMORY = (1 << 31) - 1
#: Testbench record operations (``op`` of tb_input.dat); 0..2 are the top's modes.
OPS = {"infer": 0, "learn": 1, "flush": 2, "check": 3}
#: The learned memories in the order of the testbench, the engine and :meth:`Layout.pack`.
STATE_ARRAYS = ("weights", "thresholds", "reciprocals", "dw", "dth")
#: Testbench data files.
INPUT_FILE = "tb_input.dat"
EXPECTED_FILE = "tb_expected.dat"

#: Layer kinds of ``KIND`` in parameters.h (the encoder is 0).
KINDS = {"fc": 0, "conv": 1, "pool": 2}

_ROUNDINGS = {"floor": "ROUND_FLOOR", "nearest": "ROUND_NEAREST", "stochastic": "ROUND_STOCHASTIC"}


@dataclass(frozen=True)
class Layout:
    """The target's flat memories: neurons, channels and weights of every layer, P lanes per word.

    Spiking layer l (0 = encoder) holds ``words[l] = ceil(n_l / P)`` words from
    ``neuron_base[l]`` of the per-neuron memories (V, S, h, dV) and ``channel_words[l] =
    ceil(c_l / P)`` words from ``channel_base[l]`` of the per-channel memories (Vth, R,
    dVth; one entry per FC neuron, conv output channel or image input channel). Layer
    l = 1..L holds ``rows[l]`` rows of ``row_words[l] = ceil(outs[l] / P)`` words from
    ``weight_base[l]`` of the weight memories (W, dW): the transpose of its 2-D weights
    (FC ``(n_l, n_{l-1})``: row i the fan-out of input i; conv ``(C_out, 9 C_in)``: row
    ``9 c + 3 i + j`` the C_out words of kernel tap (i, j) of input channel c). AP2 layers
    hold nothing (0 neurons, channels and rows). The fc decoder's D (and dD) follow from
    ``decoder_base``: ``decoder_rows = T n_L`` rows of ``decoder_words = ceil(C / P)``
    words, row ``t n_L + j`` the class weights of output neuron j's spike at step t + 1.
    Padding lanes (past ``n_l``, ``c_l``, ``outs[l]`` or C) are 0.

    Parameters
    ----------
    neurons : tuple of int
        ``n_0 .. n_L`` (0 for AP2 layers).
    lanes : int
        P, values per word, 1..:data:`~hw.core_config.MAX_LANES`.
    decoder_rows, classes : int
        ``T n_L`` and C for the fc decoder, else 0.
    channels, rows, outs : tuple of int, optional
        Threshold channels ``c_0 .. c_L`` and the weight shape ``(outs[l], rows[l])`` of
        each layer (index 0 unused); by default those of FC layers on a flat input
        (``c_l = n_l``, ``(n_l, n_{l-1})``).
    """

    neurons: tuple[int, ...]
    lanes: int
    decoder_rows: int = 0
    classes: int = 0
    channels: tuple[int, ...] = ()
    rows: tuple[int, ...] = ()
    outs: tuple[int, ...] = ()
    words: tuple[int, ...] = field(init=False)
    channel_words: tuple[int, ...] = field(init=False)
    row_words: tuple[int, ...] = field(init=False)
    neuron_base: tuple[int, ...] = field(init=False)
    channel_base: tuple[int, ...] = field(init=False)
    weight_base: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        lanes = check_field("lanes", self.lanes, minimum=1, maximum=MAX_LANES)
        neurons = self.neurons
        defaults = {
            "channels": neurons,
            "rows": (0, *neurons[:-1]),
            "outs": (0, *neurons[1:]),
        }
        for name, default in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, tuple(default))

        def ceil(values: tuple[int, ...]) -> tuple[int, ...]:
            return tuple(-(-n // lanes) for n in values)

        def bases(sizes: Sequence[int]) -> tuple[int, ...]:
            return tuple(int(b) for b in np.cumsum((0, *sizes[:-1])))

        words, channel_words, row_words = ceil(neurons), ceil(self.channels), ceil(self.outs)
        blocks = [rows * row * lanes for rows, row in zip(self.rows, row_words)]
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "channel_words", channel_words)
        object.__setattr__(self, "row_words", row_words)
        object.__setattr__(self, "neuron_base", tuple(b * lanes for b in bases(words)))
        object.__setattr__(self, "channel_base", tuple(b * lanes for b in bases(channel_words)))
        object.__setattr__(self, "weight_base", bases(blocks))

    @classmethod
    def of(cls, net: IntegerNetwork, lanes: int) -> Layout:
        """The layout of ``net``'s layers (and fc decoder) at P = ``lanes``."""
        spec = net.spec
        spiking = set(spec.spiking_layers())
        layers = range(spec.num_layers + 1)
        neurons = tuple(spec.neurons(layer) if layer in spiking else 0 for layer in layers)
        channels = tuple(spec.channels(layer) for layer in layers)
        shapes = [(0, 0), *(w.shape for w in net.weights)]
        outs = tuple(int(shape[0]) for shape in shapes)
        rows = tuple(int(shape[1]) for shape in shapes)
        decoder = (spec.timesteps * neurons[-1], spec.classes) if net.decoder is not None else (0, 0)
        return cls(neurons, lanes, *decoder, channels, rows, outs)

    @property
    def layers(self) -> int:
        """L, layers after the encoder."""
        return len(self.neurons) - 1

    @property
    def neuron_total(self) -> int:
        """Entries of a per-neuron memory (``N_TOTAL``)."""
        return self.neuron_base[-1] + self.words[-1] * self.lanes

    @property
    def channel_total(self) -> int:
        """Entries of a per-channel memory (``C_TOTAL``)."""
        return self.channel_base[-1] + self.channel_words[-1] * self.lanes

    @property
    def decoder_words(self) -> int:
        """Words of one fc decoder row, ``ceil(C / P)`` (0 without the fc decoder)."""
        return -(-self.classes // self.lanes)

    @property
    def decoder_base(self) -> int:
        """Start of the fc decoder's block in a weight memory: the end of layer L's."""
        last = self.layers
        return self.weight_base[last] + self.rows[last] * self.row_words[last] * self.lanes

    @property
    def weight_total(self) -> int:
        """Entries of a weight memory (``W_TOTAL``)."""
        return self.decoder_base + self.decoder_rows * self.decoder_words * self.lanes

    def neuron_slice(self, layer: int) -> slice:
        """Layer ``layer``'s entries of a per-neuron memory (padding excluded)."""
        return slice(self.neuron_base[layer], self.neuron_base[layer] + self.neurons[layer])

    def channel_slice(self, layer: int) -> slice:
        """Layer ``layer``'s entries of a per-channel memory (padding excluded)."""
        return slice(self.channel_base[layer], self.channel_base[layer] + self.channels[layer])

    def size(self, name: str) -> int:
        """Entries of the packed memory ``name`` (:data:`STATE_ARRAYS`)."""
        return self.weight_total if name in ("weights", "dw") else self.channel_total

    def _rows(self, flat: np.ndarray, layer: int) -> np.ndarray:
        """Layer l's weight block of ``flat`` as (rows, words x P) rows, or for
        l = L + 1 the fc decoder's as (T n_L, decoder words x P) rows (a view)."""
        if layer > self.layers:
            start, count, stride = self.decoder_base, self.decoder_rows, self.decoder_words * self.lanes
        else:
            start, count, stride = self.weight_base[layer], self.rows[layer], self.row_words[layer] * self.lanes
        return flat[start : start + count * stride].reshape(count, stride)

    def pack(self, net: IntegerNetwork) -> dict[str, Any]:
        """``net``'s learned state in this layout: :data:`STATE_ARRAYS` (int64) plus
        ``lfsr`` and ``pending`` (int)."""
        state: dict[str, Any] = {name: np.zeros(self.size(name), np.int64) for name in STATE_ARRAYS}
        for layer in range(1, self.layers + 1):
            self._rows(state["weights"], layer)[:, : self.outs[layer]] = net.weights[layer - 1].T
            self._rows(state["dw"], layer)[:, : self.outs[layer]] = net.dw[layer - 1].T
        if self.decoder_rows:
            decoder = self.layers + 1
            self._rows(state["weights"], decoder)[:, : self.classes] = net.decoder.T
            self._rows(state["dw"], decoder)[:, : self.classes] = net.dd.T
        for layer in range(self.layers + 1):
            where = self.channel_slice(layer)
            state["thresholds"][where] = net.thresholds[layer]
            state["reciprocals"][where] = net.reciprocals[layer]
            state["dth"][where] = net.dth[layer]
        state["lfsr"] = net.lfsr.state
        state["pending"] = net.pending
        return state

    def unpack(self, state: dict[str, Any]) -> dict[str, Any]:
        """Per-layer arrays of a packed state: ``weights``/``dw`` (outs, rows) for l = 1..L
        (FC ``(n_l, n_{l-1})``, conv ``(C_out, 9 C_in)``, AP2 ``(0, 0)``),
        ``thresholds``/``dth`` (c_l,) for l = 0..L, and ``decoder``/``dd`` (C, T n_L) of
        the fc decoder, else None (copies, int64)."""
        out: dict[str, Any] = {}
        for name in ("weights", "dw"):
            out[name] = [
                self._rows(state[name], layer)[:, : self.outs[layer]].T.copy()
                for layer in range(1, self.layers + 1)
            ]
        for name in ("thresholds", "dth"):
            out[name] = [
                state[name][self.channel_slice(layer)].copy()
                for layer in range(self.layers + 1)
            ]
        for name, packed in (("decoder", "weights"), ("dd", "dw")):
            rows = self._rows(state[packed], self.layers + 1)
            out[name] = rows[:, : self.classes].T.copy() if self.decoder_rows else None
        return out


def check_target(net: IntegerNetwork, lanes: int) -> Layout:
    """The layout of ``net`` at P = ``lanes`` after checking the target can express it.

    Every spec the core model runs (:func:`model.core.check_core_spec`: FC, conv and AP2
    layers, any decoder; the RTL's narrower rule is :func:`hw.core_config.check_rtl_spec`)
    and every format, rounding and batch that :class:`~model.integer.IntegerNetwork` accepts
    map onto the C++; the limits are the target's memory sizes.

    Raises
    ------
    ValueError
        Naming ``net``, ``spec``, ``lanes``, ``timesteps`` (the per-sample S and h
        memories exceed :data:`MAX_SPIKE_BITS` bits) or ``arch`` (a weight memory exceeds
        2^31 - 1 entries).
    """
    if not isinstance(net, IntegerNetwork):
        raise ValueError(f"net: expected an IntegerNetwork, got {type(net).__name__}")
    check_core_spec(net.spec)
    check_int("lanes", lanes, minimum=1, maximum=MAX_LANES, type_error=ValueError)
    layout = Layout.of(net, lanes)
    bits = net.spec.timesteps * layout.neuron_total
    if bits > MAX_SPIKE_BITS:
        raise ValueError(
            f"timesteps: T x neurons = {bits} spike bits per sample exceed the HLS target's "
            f"{MAX_SPIKE_BITS} (fewer time steps or neurons)"
        )
    if layout.weight_total > MAX_MEMORY:
        raise ValueError(
            f"arch: {net.spec.arch} needs {layout.weight_total} weight entries, more than the "
            f"HLS target's {MAX_MEMORY}"
        )
    return layout


def learnable(spec: NetworkSpec) -> bool:
    """True when the core can learn ``spec``: the eq. 15 mux needs reset by subtraction and
    the scaled surrogate (otherwise the target only infers)."""
    return spec.reset == "subtract" and spec.surrogate == "scaled"


# Generated headers -------------------------------------------------------------------


def _array(name: str, values: Sequence[int], ctype: str = "int") -> str:
    return f"constexpr {ctype} {name}[{len(values)}] = {{{', '.join(str(int(v)) for v in values)}}};"


def parameters_header(net: IntegerNetwork, layout: Layout) -> str:
    """``parameters.h``: sizes, formats, switches, memory layout and storage types of ``net``.

    Only the network's structure enters (not its values), so equal structures share one
    engine build (:mod:`sim.hls_engine`).
    """
    spec, f, rule = net.spec, net.formats, net.rule
    fc = spec.decoder == "fc"
    target = label_target(spec, f)
    # Decoded values: counts 0..P T, or the fc sums |a_c| <= T n_L 2^(w-1) (signed).
    decoded = layout.decoder_rows << (f.w - 1) if fc else target
    spike_max = max(layout.neurons) * spec.timesteps
    layers = range(spec.num_layers + 1)
    shapes = [spec.layer_shape(layer) for layer in layers]
    grids = [shape if len(shape) == 3 else (shape[0], 1, 1) for shape in shapes]
    sources = [0, *(source_layer(spec, layer) for layer in layers[1:])]
    consumers = [0] * len(sources)
    for layer in spec.spiking_layers()[1:]:
        consumers[sources[layer]] = layer
    offsets = [shift_offsets(spec, layer) for layer in layers]
    constants = {
        "LAYERS": layout.layers,
        "TIMESTEPS": spec.timesteps,
        "POPULATION": spec.population,
        "CLASSES": spec.classes,
        "LANES": layout.lanes,
        "BATCH": rule.batch,
        "W_BITS": f.w,
        "FW": f.fw,
        "V_BITS": f.v,
        "G_BITS": f.g,
        "GF": f.gf,
        "DW_BITS": f.dw,
        "DTH_BITS": f.dth,
        "K": f.k,
        "ENCODER_K": f.encoder_k,
        "ERROR_SHIFT": f.error_shift,
        "PIXEL_FRAC": PIXEL_FRAC,
        "LABEL_TARGET": target,
        "DECODER_ERROR_SHIFT": f.decoder_error_shift,
        "DECODER_SHIFT_DELTA": f.decoder_shift_delta,
        "DECODER_BASE": layout.decoder_base,
        "DECODER_ROWS": layout.decoder_rows,
        "DECODER_WORDS": layout.decoder_words,
        "N_TOTAL": layout.neuron_total,
        "C_TOTAL": layout.channel_total,
        "W_TOTAL": layout.weight_total,
        "MAX_NEURONS": max(layout.neurons),
        "MAX_WORDS": max(layout.words),
        "MAX_OUTS": max(max(layout.outs), 1),
    }
    widths = {
        "COUNT_BITS": max(ceil_log2(decoded + 1), 1) + fc,
        "SPIKE_BITS": max(ceil_log2(spike_max + 1), 1),
        "CLASS_BITS": max(ceil_log2(spec.classes), 1),
        "PENDING_BITS": max(ceil_log2(rule.batch + 1), 1),
    }
    lines = [
        "// parameters.h: generated by spikeforge hls (hw/hls) -- do not edit.",
        f"// {spec.arch}, input {'x'.join(map(str, spec.input_shape))}, T = {spec.timesteps}, {spec.decoder} decoder, "
        f"population {spec.population}, reset {spec.reset}, thresholds {spec.threshold}, "
        f"rounding {rule.rounding}, B = {rule.batch}, P = {layout.lanes}.",
        "#ifndef SPIKEFORGE_PARAMETERS_H",
        "#define SPIKEFORGE_PARAMETERS_H",
        "",
        '#include "spikeforge_fixed.h"',
        "",
        "namespace spikeforge {",
        "",
        "// Sizes, formats (docs/numerics.md section 1) and derived constants.",
        *(f"constexpr int {name} = {value};" for name, value in constants.items()),
        f"constexpr int64_t THRESHOLD_MAX = {f.threshold_max};  // 2^(v-1) - 1",
        "",
        "// Switches of the spec and the update rule.",
        f"constexpr bool RATE_DECODER = {str(spec.decoder == 'rate').lower()};",
        f"constexpr bool FC_DECODER = {str(fc).lower()};",
        f"constexpr bool RESET_TO_ZERO = {str(spec.reset == 'zero').lower()};",
        f"constexpr bool TRAINABLE = {str(spec.threshold == 'trainable').lower()};",
        f"constexpr bool LEARNABLE = {str(learnable(spec)).lower()};  // reset subtract, surrogate scaled",
        f"constexpr Rounding ROUNDING = {_ROUNDINGS[rule.rounding]};",
        "",
        "// Layers (0 = encoder): kind (0 FC or encoder, 1 conv 3x3, 2 AP2), shape (DEPTH, HEIGHT,",
        "// WIDTH) = (C, H, W) or (n, 1, 1), neurons per threshold channel (H W of an image, else 1),",
        "// the spiking layer its input comes from (SOURCE) through POOL = l - 1 - SOURCE AP2 layers,",
        "// the spiking layer its spikes reach (CONSUMER, 0 for none) and the shift offsets of its",
        "// weights (4 POOL) and thresholds (rint(log2(H W))), docs/numerics.md sections 2.2, 4.3.",
        _array("KIND", [0, *(KINDS[layer.kind] for layer in spec.layers)]),
        _array("DEPTH", [grid[0] for grid in grids]),
        _array("HEIGHT", [grid[1] for grid in grids]),
        _array("WIDTH", [grid[2] for grid in grids]),
        _array("POSITIONS", [positions(shape) for shape in shapes]),
        _array("SOURCE", sources),
        _array("POOL", [layer - 1 - sources[layer] if layer else 0 for layer in layers]),
        _array("CONSUMER", consumers),
        _array("WEIGHT_OFFSET", [offset[0] for offset in offsets]),
        _array("THRESHOLD_OFFSET", [offset[1] for offset in offsets]),
        "",
        "// Memory layout: neurons n_l (0 for AP2) in words of P from NEURON_BASE; threshold",
        "// channels from CHANNEL_BASE; weight rows (ROWS[l] rows of OUTS[l] values in ROW_WORDS[l]",
        "// words) from WEIGHT_BASE (the fc decoder's block: DECODER_ROWS rows of DECODER_WORDS",
        "// words from DECODER_BASE).",
        _array("NEURONS", layout.neurons),
        _array("WORDS", layout.words),
        _array("NEURON_BASE", layout.neuron_base),
        _array("CHANNELS", layout.channels),
        _array("CHANNEL_BASE", layout.channel_base),
        _array("ROWS", layout.rows),
        _array("OUTS", layout.outs),
        _array("ROW_WORDS", layout.row_words),
        _array("WEIGHT_BASE", layout.weight_base),
        "",
        "// Widths of the outputs and registers.",
        *(f"constexpr int {name} = {value};" for name, value in widths.items()),
        "",
        "// Storage types (signed s_int<W> / unsigned u_int<W>, exact widths).",
        "typedef u_int<8> pixel_t;         // pixel p, LSB 1/255",
        "typedef s_int<W_BITS> weight_t;   // W, LSB 2^-fw (fc decoder D: 2^-df)",
        "typedef s_int<V_BITS> membrane_t; // V, LSB 2^-fw (encoder: 1/255)",
        "typedef u_int<V_BITS - 1> threshold_t; // Vth, 1..2^(v-1)-1",
        "typedef u_int<K + 1> recip_t;     // R = floor(2^K / Vth)",
        "typedef s_int<G_BITS> dv_t;       // dV, LSB 2^-gf",
        "typedef s_int<DW_BITS> dw_t;      // dW accumulator",
        "typedef s_int<DTH_BITS> dth_t;    // dVth accumulator",
        "typedef u_int<32> lfsr_t;         // LFSR state, never 0",
        "typedef u_int<PENDING_BITS> pending_t; // learned samples since the last update",
        (
            "typedef s_int<COUNT_BITS> count_t;     // fc decoded value a_c, LSB 2^-df"
            if fc else "typedef u_int<COUNT_BITS> count_t;     // class count n_c"
        ),
        "typedef u_int<SPIKE_BITS> spikes_t;    // spikes of one layer per sample",
        "typedef u_int<CLASS_BITS> class_t;     // class index",
        "typedef u_int<5> shift_t;         // learning-rate shift",
        "typedef u_int<2> op_t;            // 0 infer, 1 learn, 2 flush",
        "",
        "}  // namespace spikeforge",
        "",
        "#endif  // SPIKEFORGE_PARAMETERS_H",
        "",
    ]
    return "\n".join(lines)


def _values(name: str, values: np.ndarray) -> str:
    rows = [", ".join(str(int(v)) for v in values[i : i + 16]) for i in range(0, len(values), 16)]
    body = ",\n    ".join(rows)
    return f"const int64_t {name}[{len(values)}] = {{\n    {body}}};"


def weights_header(net: IntegerNetwork, layout: Layout) -> str:
    """``weights.h``: the checkpoint's W, Vth, R and LFSR state in the memory layout (the
    accumulators and the pending count start at 0)."""
    state = layout.pack(net)
    return "\n".join([
        "// weights.h: generated by spikeforge hls (hw/hls) -- the checkpoint's initial contents.",
        "#ifndef SPIKEFORGE_WEIGHTS_H",
        "#define SPIKEFORGE_WEIGHTS_H",
        "",
        '#include "parameters.h"',
        "",
        "namespace spikeforge {",
        "",
        _values("INIT_WEIGHTS", state["weights"]),
        _values("INIT_THRESHOLDS", state["thresholds"]),
        _values("INIT_RECIPROCALS", state["reciprocals"]),
        f"const int64_t INIT_LFSR = {state['lfsr']};",
        "",
        "}  // namespace spikeforge",
        "",
        "#endif  // SPIKEFORGE_WEIGHTS_H",
        "",
    ])


def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def firmware_sources(net: IntegerNetwork, layout: Layout) -> dict[str, str]:
    """The files of ``firmware/``: name -> text."""
    sources = {name: _template(name) for name in FIRMWARE_TEMPLATES}
    sources["parameters.h"] = parameters_header(net, layout)
    sources["weights.h"] = weights_header(net, layout)
    return sources


def engine_sources(net: IntegerNetwork, layout: Layout) -> dict[str, str]:
    """The native engine's sources (the core, ``parameters.h`` and ``engine.cpp``)."""
    names = ("spikeforge_fixed.h", "spikeforge_core.h", ENGINE_SOURCE)
    return {**{name: _template(name) for name in names}, "parameters.h": parameters_header(net, layout)}


# Testbench vectors -------------------------------------------------------------------


class Vectors:
    """The testbench's records and expected values (tb_input.dat, tb_expected.dat).

    Parameters
    ----------
    inputs : int
        Pixels per sample (n_0).
    """

    def __init__(self, inputs: int) -> None:
        self.inputs = check_field("inputs", inputs, minimum=1)
        self.records: list[np.ndarray] = []
        self.expected: list[np.ndarray] = []
        self.ops: list[int] = []

    def _add(self, op: str, head: Sequence[int], pixels: np.ndarray | None, expected: np.ndarray) -> None:
        row = np.zeros(4 + self.inputs, np.int64)
        row[:4] = [OPS[op], *head]
        if pixels is not None:
            row[4:] = pixels
        self.records.append(row)
        self.expected.append(np.asarray(expected, np.int64).ravel())
        self.ops.append(OPS[op])

    def sample(
        self,
        pixels: np.ndarray,
        label: int,
        shifts: tuple[int, int],
        *,
        learn: bool,
        prediction: int,
        counts: np.ndarray,
        layer_spikes: np.ndarray,
    ) -> None:
        """An infer or learn record with its expected prediction, counts and spikes per layer."""
        expected = np.concatenate([[prediction], counts, layer_spikes])
        self._add("learn" if learn else "infer", (label, *shifts), pixels, expected)

    def flush(self, shifts: tuple[int, int]) -> None:
        """A flush record (applies a pending partial batch; nothing to compare)."""
        self._add("flush", (0, *shifts), None, np.zeros(0))

    def check(self, state: dict[str, Any]) -> None:
        """A record comparing the whole learned state (:meth:`Layout.pack`)."""
        parts = [state[name] for name in STATE_ARRAYS] + [[state["lfsr"], state["pending"]]]
        self._add("check", (0, 0, 0), None, np.concatenate(parts))

    def count(self, op: str) -> int:
        """Records of one operation (``infer``, ``learn``, ``flush``, ``check``)."""
        return self.ops.count(OPS[op])

    def write(self, folder: str | os.PathLike[str]) -> list[Path]:
        """Write tb_input.dat and tb_expected.dat into ``folder``; returns their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        inputs, expected = folder / INPUT_FILE, folder / EXPECTED_FILE
        rows = [" ".join(map(str, row.tolist())) for row in self.records]
        inputs.write_text("\n".join([str(len(rows)), *rows]) + "\n", encoding="ascii")
        lines = [" ".join(map(str, values.tolist())) for values in self.expected if values.size]
        expected.write_text("\n".join(lines) + "\n", encoding="ascii")
        return [inputs, expected]


# The project ---------------------------------------------------------------------------


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def write_project(
    net: IntegerNetwork,
    out_dir: str | os.PathLike[str],
    vectors: Vectors,
    *,
    lanes: int = 1,
    part: str = DEFAULT_PART,
    clock_ns: float = DEFAULT_CLOCK_NS,
) -> list[Path]:
    """Write the HLS project of ``net`` into ``out_dir`` (created).

    Parameters
    ----------
    net : IntegerNetwork
        The network (its checkpoint values become ``weights.h``).
    out_dir : path
        Project folder: ``firmware/``, ``tb/``, ``build_prj.tcl``, ``README.md``.
    vectors : Vectors
        Testbench records and expected values (:func:`sim.hls_csim.make_vectors`).
    lanes : int
        P, the partition factor of every memory (values per word).
    part : str
        FPGA part of ``set_part``.
    clock_ns : float
        Clock period of ``create_clock`` in ns, > 0.

    Returns
    -------
    list of Path
        Every file written.

    Raises
    ------
    ValueError
        As :func:`check_target`; naming ``part`` or ``clock_ns`` when invalid, ``vectors``
        when its pixel count differs from the network's.
    """
    layout = check_target(net, lanes)
    if not part or any(c.isspace() or c in "{}[]$\"\\;" for c in part):
        raise ValueError(f"part: {part!r} is not an FPGA part name such as {DEFAULT_PART}")
    if not (isinstance(clock_ns, (int, float)) and np.isfinite(clock_ns) and clock_ns > 0):
        raise ValueError(f"clock_ns: {clock_ns!r} must be a period in ns > 0")
    if vectors.inputs != layout.neurons[0]:
        raise ValueError(f"vectors: {vectors.inputs} pixels per sample, the network has {layout.neurons[0]}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {str(out)!r} exists and is not a folder")
    files = {f"firmware/{name}": text for name, text in firmware_sources(net, layout).items()}
    files[f"tb/{TESTBENCH}"] = _template(TESTBENCH)
    values = {
        "PART": part,
        "CLOCK_NS": f"{clock_ns:g}",
        "TOP": TOP,
        "ARCH": net.spec.arch,
        "LANES": str(lanes),
        "RECORDS": str(len(vectors.records)),
    }
    files["build_prj.tcl"] = _fill(_template("build_prj.tcl"), values)
    files["README.md"] = _fill(_template("README.md"), values)
    written = []
    for name, text in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written + vectors.write(out / "tb")
