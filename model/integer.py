"""The bit-accurate integer network: inference and on-line learning (docs/numerics.md).

:class:`IntegerNetwork` holds integer weights and thresholds of a spiking network of FC,
3x3 conv and AP2 layers (:class:`~model.spec.NetworkSpec`; the layer kinds' connections in
:mod:`model.synapses`) in the formats of :class:`Formats`, runs the forward pass on u8
pixels, computes the eq. 15 gradients in integers, accumulates them and applies
shift-based updates every B samples with floor / nearest / stochastic rounding. The
readout is the last-spike, rate or spatio-temporal (``fc``) decoder.

Two paths give bit-identical results, saturation included:

* the fast path (default) is vectorized over samples and neurons and uses the exact
  primitives of :mod:`model.fixed` (exact sums with per-element saturation checks and an
  event-order replay where saturation could occur);
* the reference path (``reference=True``) loops in event order like the core: one
  presynaptic event at a time for integration, one window neuron at a time for the
  backward dot product, one accumulator element and one LFSR step at a time for updates.

Quantities and shapes (layer 0 is the encoder; flat or (C, H, W) inputs):

* ``weights[l-1]``: layer l, int64, signed ``w`` bits, LSB ``2^-fw``: FC (n_l, n_{l-1}),
  conv (C_out, 9 C_in) (:mod:`model.synapses`), AP2 (0, 0); a layer behind k AP2 layers
  weighs each of the 4^k spikes of a window (it stands for the float weight / 4^k);
* ``thresholds[l]``: l = 0..L, int64, one per channel (FC: per neuron; conv and image
  encoder: per channel, shared by its H W neurons; AP2: none), 1..2^(v-1)-1 (encoder:
  pixel LSB 1/255);
* ``reciprocals[l]``: ``floor(2^K / thresholds[l])``;
* accumulators ``dw[l-1]`` (signed ``dw`` bits) and ``dth[l]`` (signed ``dth`` bits);
* ``fc`` decoder only: ``decoder`` int64 (classes, T n_L), signed ``w`` bits, LSB ``2^-df``
  (column ``t n_L + j`` weighs output neuron j's spike at step t + 1), and its accumulator
  ``dd`` (signed ``dw`` bits).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from model import checkpoint, metrics
from model.checks import check_field
from model.files import ArraySpec
from model.fixed import (
    LFSR,
    LFSR_BITS,
    MAX_BITS,
    ROUNDINGS,
    FixedFormat,
    accumulate_outer,
    accumulate_sequence,
    ceil_log2,
    encode,
    exact_matmul,
    fire_scan,
    fire_steps,
    integrate,
    mul_shift,
    mux_dv_steps,
    reciprocal,
    round_shift,
    saturate,
    shift_signed,
    signed_range,
)
from model.spec import NetworkSpec
from model.synapses import (
    Synapses,
    layer_synapses,
    pool_counts,
    positions,
    source_layer,
    weight_fold,
    weight_shape,
)

__all__ = [
    "CONV_AUGMENTATION",
    "CONV_INIT_GAIN",
    "DECODER_ERROR_GAIN",
    "DECODER_SHIFT_OFFSET",
    "DEFAULT_SCHEDULE",
    "INIT_GAIN",
    "PIXEL_SCALE",
    "RECIPES",
    "STORED_MEMORIES",
    "FitState",
    "Formats",
    "History",
    "IntegerNetwork",
    "IntegerTrace",
    "LearningRule",
    "Recipe",
    "ShiftSchedule",
    "decoder_error_bits",
    "decoder_error_sum_bits",
    "equivalent_float_lr",
    "fit",
    "label_target",
    "load_learner",
    "output_error",
    "output_sums",
    "recipe",
    "save_learner",
    "shift_offsets",
]

#: The memories whose stored values :meth:`IntegerNetwork.memory` exposes: weights,
#: thresholds, reciprocals and the two gradient accumulators (the core's W, VTH, R, DW, DVTH).
STORED_MEMORIES = ("W", "VTH", "R", "DW", "DVTH")
#: Full-scale pixel code: a u8 pixel p stands for the float input ``p / 255``.
PIXEL_SCALE = 255
#: Fraction bits the contract assigns to the encoder's pixel LSB (1/255 taken as 2^-8).
PIXEL_FRAC = 8
#: G: the fc decoder's error reaches the output layer times 2^G, so that its integer
#: gradients have the scale of the last decoder's at P = 10 (c = C 2^G / 2 = 640 against
#: C P^2 / 2 = 500; without it the dV grid 2^-gf is 2^7 times coarser for fc and learning
#: from scratch loses about 6 points, docs/numerics.md section 3.1).
DECODER_ERROR_GAIN = 7

#: Scratch init: ``W ~ U{-a..a}``, ``a = rint(INIT_GAIN * Vth0 * sqrt(3 / fan_in) * 2^fw)``,
#: the float trainer's ``U(-a, a)`` on the integer grid with half its gain (fewer initial
#: spikes; on-line learning from scratch at w = 8 starts faster, docs/results.md).
INIT_GAIN = 1.0
#: Scratch init gain of networks with conv or AP2 layers. A conv neuron's few inputs
#: (9 C_in, dense encoder spikes) and the counts behind a pool make the FC gain's layers fire
#: densely: 8C3-AP2-16C3-AP2-100FC on digits (T = 8, shift 12, 5 epochs, seed 0) stayed at
#: chance with gains 1.0 and 0.6 and reached 62 / 74 % test accuracy with 0.3 / 0.4
#: (0.4: 69 and 68 % on seeds 1 and 2).
CONV_INIT_GAIN = 0.4


# Formats ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Formats:
    """Widths of every stored quantity (docs/numerics.md section 1).

    Parameters
    ----------
    w : int
        Weight bits, 2..16 (signed).
    fw : int or None
        Weight (and membrane, threshold) fraction bits, 0..w-1; default ``w - 1`` (weights
        span [-1, 1), the finest grid that holds the learned weights; docs/results.md).
    v : int
        Membrane bits, w..32 (signed); thresholds are unsigned ``v - 1`` bits.
    g : int
        dV bits, 4..32 (signed).
    gf : int
        dV fraction bits, 0..g-1 (LSB ``2^-gf`` gradient units).
    dw, dth : int
        Weight- and threshold-gradient accumulator bits, g..48 (signed).
    k : int
        Reciprocal exponent K, 8..30 (``R = floor(2^K / Vth)``, K + 1 bits).
    df : int or None
        The fc decoder's weight fraction bits, 0..24 (its weights are signed ``w`` bits,
        LSB ``2^-df``); default ``fw + 2`` (the learned decoder weights are about 20 times
        smaller than the layers'; docs/numerics.md section 7).

    Raises
    ------
    ValueError
        Naming the key and its allowed range.
    """

    w: int = 8
    fw: int | None = None
    v: int = 16
    g: int = 16
    gf: int = 8
    dw: int = 24
    dth: int = 24
    k: int = 16
    df: int | None = None

    KEYS = ("w", "fw", "v", "g", "gf", "dw", "dth", "k", "df")
    #: Added after the first checkpoints: a stored formats object without it gets the default.
    OPTIONAL_KEYS = ("df",)

    def __post_init__(self) -> None:
        w = check_field("w", self.w, minimum=2, maximum=16)
        fw = w - 1 if self.fw is None else check_field("fw", self.fw, minimum=0, maximum=w - 1)
        v = check_field("v", self.v, minimum=w, maximum=32)
        g = check_field("g", self.g, minimum=4, maximum=32)
        gf = check_field("gf", self.gf, minimum=0, maximum=g - 1)
        dw = check_field("dw", self.dw, minimum=g, maximum=48)
        dth = check_field("dth", self.dth, minimum=g, maximum=48)
        k = check_field("k", self.k, minimum=8, maximum=30)
        df = fw + 2 if self.df is None else check_field("df", self.df, minimum=0, maximum=24)
        for name, value in zip(self.KEYS, (w, fw, v, g, gf, dw, dth, k, df)):
            object.__setattr__(self, name, value)

    @classmethod
    def parse(cls, text: str, base: Formats | None = None) -> Formats:
        """Formats from ``"w=8,v=16,..."`` (keys of :attr:`KEYS`), other keys from ``base``.

        ``fw`` follows a changed ``w`` (``w - 1``) and ``df`` a changed ``fw`` (``fw + 2``)
        unless given.

        Raises
        ------
        ValueError
            For an unknown key, a missing ``=`` or a non-integer value (naming it).
        """
        values = {} if base is None else base.to_dict()
        given: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in str(text).split(","))):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in cls.KEYS:
                raise ValueError(
                    f"bits: {item!r} is not key=value with a key among {', '.join(cls.KEYS)}"
                )
            try:
                given[key] = int(value)
            except ValueError:
                raise ValueError(f"{key}: {value.strip()!r} is not an integer") from None
        values.update(given)
        if "w" in given and "fw" not in given:
            values["fw"] = None
        if ("w" in given or "fw" in given) and "df" not in given:
            values["df"] = None
        return cls(**values)

    def to_dict(self) -> dict[str, int]:
        """``{key: value}`` for every key of :attr:`KEYS`."""
        return {key: getattr(self, key) for key in self.KEYS}

    # Derived formats and constants -----------------------------------------------------

    @property
    def weight(self) -> FixedFormat:
        """Signed w bits, LSB 2^-fw."""
        return FixedFormat(self.w, self.fw, True)

    @property
    def membrane(self) -> FixedFormat:
        """Signed v bits, LSB 2^-fw (encoder: pixel LSB)."""
        return FixedFormat(self.v, self.fw, True)

    @property
    def threshold_max(self) -> int:
        """Largest threshold, ``2^(v-1) - 1`` (smallest: 1)."""
        return (1 << (self.v - 1)) - 1

    def stored(self, memory: str) -> FixedFormat:
        """The format of one stored value of a parameter or accumulator memory.

        ``W`` signed w bits, ``VTH`` unsigned v - 1, ``R`` unsigned K + 1, ``DW`` signed
        dw, ``DVTH`` signed dth (:data:`STORED_MEMORIES`).
        """
        formats = {
            "W": self.weight, "VTH": FixedFormat(self.v - 1, 0, False),
            "R": FixedFormat(self.k + 1, 0, False), "DW": FixedFormat(self.dw, 0, True),
            "DVTH": FixedFormat(self.dth, 0, True),
        }
        if memory not in formats:
            raise ValueError(f"memory: {memory!r} is not one of {', '.join(STORED_MEMORIES)}")
        return formats[memory]

    @property
    def error_shift(self) -> int:
        """E = gf + fw: the output layer's spatial sum is ``e << E``."""
        return self.gf + self.fw

    @property
    def encoder_k(self) -> int:
        """The encoder's mux shift ``K - 8 + fw`` (its Vth has the pixel LSB)."""
        return self.k - PIXEL_FRAC + self.fw

    @property
    def decoder(self) -> FixedFormat:
        """The fc decoder's weights: signed w bits, LSB 2^-df."""
        return FixedFormat(self.w, self.df, True)

    @property
    def decoder_error_shift(self) -> int:
        """``gf + fw - 2 df + G``: the ``fc`` decoder's error sum ``sum_c e_c D_cj`` (LSB
        ``2^-2df``) reaches the output layer's spatial-sum grid (LSB ``2^-(gf+fw)``) times
        ``2^G``, G = :data:`DECODER_ERROR_GAIN`, shifted by this (left when positive,
        floor right when negative)."""
        return self.gf + self.fw - 2 * self.df + DECODER_ERROR_GAIN

    @property
    def decoder_shift_delta(self) -> int:
        """``fw - gf - G``: the ``fc`` decoder's update shift is ``s_w`` plus this."""
        return self.fw - self.gf - DECODER_ERROR_GAIN

    def decoder_shift(self, shift_w: int) -> int:
        """The ``fc`` decoder's update shift ``clamp(s_w + fw - gf - G, 0, 31)`` (a u5 like
        every shift): the same float learning rate as the weights (numerics section 4.3)."""
        return int(np.clip(shift_w + self.decoder_shift_delta, 0, 31))

    def threshold_shift_encoder(self, shift_th: int) -> int:
        """Encoder threshold shift ``max(s_th - 8 + fw, 0)`` (same float step as layers 1..L)."""
        return max(shift_th - PIXEL_FRAC + self.fw, 0)

    def quantize_threshold(self, value: Any, *, encoder: bool = False) -> np.ndarray:
        """Integer thresholds for float ones: ``clamp(rint(value * 2^fw), 1, max)``.

        The encoder's (``encoder=True``) have the pixel LSB: ``rint(value * 255)``.
        """
        scale = PIXEL_SCALE if encoder else 2.0**self.fw
        scaled = np.rint(np.asarray(value, np.float64) * scale)
        return np.clip(scaled, 1, self.threshold_max).astype(np.int64)

    def check_spec(self, spec: NetworkSpec) -> None:
        """Check that the spatial sums of ``spec`` fit 62 bits (section 1).

        Raises
        ------
        ValueError
            Naming ``g``/``w`` when ``g + w + ceil(log2 fan_out)`` exceeds 62 bits (fan-out:
            the neurons one input event reaches, n_l for FC, 9 C_out for conv).
        """
        spiking = spec.spiking_layers()[1:]
        fan_out = max(layer_synapses(spec, index).fan_out for index in spiking)
        acc_bits = self.g + self.w + ceil_log2(fan_out)
        # (acc * R) >> K_l with R of K + 1 bits and K_l >= K - 8 + fw must stay in range.
        product_bits = acc_bits + 1 + max(PIXEL_FRAC - self.fw, 0)
        if product_bits > MAX_BITS - 1:
            raise ValueError(
                f"g, w: spatial sums need g + w + ceil(log2 {fan_out}) = {acc_bits} bits and "
                f"their scaled product {product_bits} (allowed up to {MAX_BITS - 1})"
            )
        if spec.decoder == "fc":
            # |e_c| <= T n_L 2^(w-1) + 2^df; the error sums over classes, shifted, must stay
            # below 2^61 like every spatial sum (the eq. 15 product, mul_shift).
            inputs = spec.timesteps * spec.neurons(spec.num_layers)
            sum_bits = decoder_error_sum_bits(inputs, self.w, self.df, spec.classes) + max(self.decoder_error_shift, 0)
            if sum_bits > MAX_BITS - 1:
                raise ValueError(
                    f"gf, fw: the fc decoder's error sums need {sum_bits} bits "
                    f"(allowed up to {MAX_BITS - 1})"
                )
            return
        error = spec.population * spec.timesteps
        if ceil_log2(error + 1) + 1 + self.error_shift > MAX_BITS:
            raise ValueError(
                f"gf, fw: the output error e << {self.error_shift} exceeds {MAX_BITS} bits"
            )


@dataclass(frozen=True)
class LearningRule:
    """Learning-rate shifts, rounding and batch of the update (numerics section 4).

    Parameters
    ----------
    shift_w : int
        ``s_w``, 0..31: ``W -= round_shift(dW, s_w)``.
    shift_th : int
        ``s_th``, 0..31 for layers 1..L (the encoder uses ``max(s_th - 8 + fw, 0)``).
    rounding : str
        ``"floor"``, ``"nearest"`` or ``"stochastic"``.
    batch : int
        B, samples per update, 1 or more (1 = on-line).
    """

    shift_w: int = 10
    shift_th: int = 10
    rounding: str = "stochastic"
    batch: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "shift_w", check_field("shift_w", self.shift_w, minimum=0, maximum=31))
        object.__setattr__(self, "shift_th", check_field("shift_th", self.shift_th, minimum=0, maximum=31))
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"rounding: {self.rounding!r} is not one of {', '.join(ROUNDINGS)}")
        object.__setattr__(self, "batch", check_field("batch", self.batch, minimum=1, maximum=1 << 20))


@dataclass(frozen=True)
class ShiftSchedule:
    """Step schedule of the learning-rate shifts over the epochs of a run.

    Epoch ``e`` of ``E`` uses ``shift_w = weight[i]`` where ``i`` counts the
    ``milestones`` (fractions of the run) with ``milestone <= e / E``, and
    ``shift_th = shift_w + threshold_offset``.

    Parameters
    ----------
    weight : tuple of int
        Weight shifts, one more than ``milestones``; each 0..31.
    milestones : tuple of float
        Increasing fractions in (0, 1).
    threshold_offset : int
        ``s_th - s_w``, -8..8.
    """

    weight: tuple[int, ...] = (10, 11, 12)
    milestones: tuple[float, ...] = (0.5, 0.75)
    threshold_offset: int = 0

    def __post_init__(self) -> None:
        weight = tuple(check_field("schedule", s, minimum=0, maximum=31) for s in self.weight)
        milestones = tuple(float(m) for m in self.milestones)
        if len(weight) != len(milestones) + 1:
            raise ValueError("schedule: needs one weight shift more than milestones")
        if any(not 0 < m < 1 for m in milestones) or list(milestones) != sorted(milestones):
            raise ValueError("schedule: milestones must increase within (0, 1)")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "milestones", milestones)
        offset = check_field("threshold_offset", self.threshold_offset, minimum=-8, maximum=8)
        object.__setattr__(self, "threshold_offset", offset)

    @classmethod
    def parse(cls, text: str, threshold_offset: int = 0) -> ShiftSchedule:
        """``"10,11,12"`` -> shifts with evenly split milestones ... or ``"10:0.5,11:0.75,12"``.

        Each item but the last may carry ``:fraction``, the point where the *next* shift
        starts; without fractions, ``n`` shifts switch at ``1/2, 3/4, 7/8, ...``.
        """
        items = [part.strip() for part in str(text).split(",") if part.strip()]
        if not items:
            raise ValueError("schedule: needs at least one shift, e.g. '10,11,12'")
        shifts, marks = [], []
        try:
            for item in items:
                shift, sep, mark = item.partition(":")
                shifts.append(int(shift))
                if sep:
                    marks.append(float(mark))
        except ValueError:
            raise ValueError(
                f"schedule: {text!r} is not like '10,11,12' or '10:0.5,11:0.75,12'"
            ) from None
        if not marks:
            marks = [1.0 - 0.5**i for i in range(1, len(shifts))]
        return cls(tuple(shifts), tuple(marks), threshold_offset)

    def shifts(self, epoch: int, epochs: int) -> tuple[int, int]:
        """``(shift_w, shift_th)`` for epoch ``epoch`` (0-based) of ``epochs``."""
        index = sum(m <= epoch / epochs for m in self.milestones)
        shift_w = self.weight[index]
        return shift_w, int(np.clip(shift_w + self.threshold_offset, 0, 31))

    def rebased(self, delta: int) -> ShiftSchedule:
        """Every weight shift moved by ``delta`` (clamped to 0..31), same milestones and offset."""
        weight = tuple(int(np.clip(shift + delta, 0, 31)) for shift in self.weight)
        return ShiftSchedule(weight, self.milestones, self.threshold_offset)

    def to_text(self) -> str:
        """Inverse of :meth:`parse` (with explicit milestones)."""
        parts = [f"{s}:{m:g}" for s, m in zip(self.weight, self.milestones)]
        return ",".join(parts + [str(self.weight[-1])])


#: Default learning-rate schedule (numerics section 4.3).
DEFAULT_SCHEDULE = ShiftSchedule()


@dataclass(frozen=True)
class Recipe:
    """Default formats, shift schedule and epochs of a learning run (numerics section 4.3).

    Attributes
    ----------
    formats : Formats
    schedule : ShiftSchedule
    epochs : int
    augmentation : mapping, optional
        Keyword arguments of :func:`model.data.augment` applied to every epoch's training
        images (host side, :func:`fit`), or None (no augmentation).
    """

    formats: Formats
    schedule: ShiftSchedule
    epochs: int
    augmentation: Mapping[str, Any] | None = None

    def schedule_for(self, formats: Formats, decoder: str = "last") -> ShiftSchedule:
        """The schedule for other formats at the same float learning rates, and for
        ``decoder``.

        The float-equivalent rate is ``c 2^(gf - fw - s)`` (numerics section 4.3), so every
        shift moves by ``(gf - gf_0) - (fw - fw_0)`` from this recipe's formats, plus
        :data:`DECODER_SHIFT_OFFSET` of the decoder (clamped to 0..31).
        """
        delta = (formats.gf - self.formats.gf) - (formats.fw - self.formats.fw)
        return self.schedule.rebased(delta + DECODER_SHIFT_OFFSET.get(decoder, 0))


#: Shift offset of a decoder's schedule from the recipe's (tuned for ``last``). With the fc
#: decoder's c = C 2^G / 2 = 640 (``equivalent_float_lr``) +1 gives 0.64 times the last
#: decoder's float rate; on digits from scratch 0 diverged at T = 16, +1 learned best at
#: T = 8 and 16 (docs/numerics.md section 4.3; results: docs/results.md "Integer model: the
#: fc decoder").
DECODER_SHIFT_OFFSET: dict[str, int] = {"fc": 1}


def shift_offsets(spec: NetworkSpec, index: int) -> tuple[int, int]:
    """Layer ``index``'s additions to the weight and threshold shifts (numerics section 4.3),
    so that every layer learns at an FC layer's float-equivalent rate.

    Weights: ``4 k`` behind k AP2 layers (a weight there stands for W_f / 4^k and takes up
    to 4^k events per input, so the same shift would step W_f 16^k times as fast).
    Thresholds of a layer of H x W positions (conv, image encoder): ``rint(log2(H W))``,
    since a channel's gradient sums over its positions (the float trainer's ``1 / (H W)``).
    Both 0 for FC layers on flat inputs.
    """
    weight = 4 * (index - 1 - source_layer(spec, index)) if index > 0 else 0
    return weight, int(np.rint(np.log2(positions(spec.layer_shape(index)))))


#: Defaults per (dataset, init): ``init`` is ``"scratch"`` or ``"finetune"`` (a quantized
#: float network). Chosen by the sweeps in docs/results.md.
RECIPES: dict[tuple[str, str], Recipe] = {
    ("digits", "scratch"): Recipe(
        Formats(), ShiftSchedule((13, 14, 15, 16, 17), (0.3, 0.55, 0.75, 0.9)), 60
    ),
    ("digits", "finetune"): Recipe(Formats(), ShiftSchedule((15, 16, 17), (0.5, 0.75)), 6),
    ("mnist10k", "scratch"): Recipe(Formats(), ShiftSchedule((14, 15, 16), (0.5, 0.75)), 12),
    ("mnist10k", "finetune"): Recipe(Formats(), ShiftSchedule((16, 17), (0.5,)), 2),
}


#: Host-side augmentation of the training images of networks that read images (a conv or
#: AP2 layer first) learning from scratch, per dataset: the float trainer's digits default
#: (``model.stbp.TRAINING_DEFAULTS``, rotations up to 10 degrees, nearest-neighbour). On
#: digits 8C3-AP2-16C3-100FC (T = 8, the digits schedule compressed to 10 epochs, seed 0) it
#: raised the test accuracy from 93.6 to 95.0 % with the fc decoder and from 91.7 to
#: 92.5 % with the last decoder; a shift by up to one pixel instead (fc decoder) lost 8
#: points (an 8x8 digit moves by an eighth of its width). FC networks learn without it
#: (their recipe is unchanged).
CONV_AUGMENTATION: dict[str, dict[str, Any]] = {
    "digits": {"flip": False, "shift": 0, "rotate_deg": 10.0},
}


def recipe(dataset: str, init: str = "scratch", spec: NetworkSpec | None = None) -> Recipe:
    """The default :class:`Recipe` for ``dataset`` (digits, mnist10k) and ``init``.

    With a ``spec`` whose input is an image (a conv or AP2 layer first), learning from
    scratch adds the dataset's :data:`CONV_AUGMENTATION`, if it has one.

    Raises
    ------
    ValueError
        For an unknown dataset or init.
    """
    if init not in ("scratch", "finetune"):
        raise ValueError(f"init: {init!r} is not one of scratch, finetune")
    if (dataset, init) not in RECIPES:
        known = sorted({name for name, _ in RECIPES})
        raise ValueError(
            f"dataset: {dataset!r} has no integer-learning defaults (allowed {', '.join(known)})"
        )
    base = RECIPES[(dataset, init)]
    if init == "scratch" and spec is not None and len(spec.input_shape) == 3:
        augmentation = CONV_AUGMENTATION.get(dataset)
        if augmentation is not None:
            return replace(base, augmentation=dict(augmentation))
    return base


# Traces and errors --------------------------------------------------------------------


@dataclass
class IntegerTrace:
    """Result of :meth:`IntegerNetwork.forward` on N samples.

    Attributes
    ----------
    spikes : list of numpy.ndarray
        ``spikes[l]``, l = 0..L, bool (T, N, n_l) (neurons in flat (C, H, W) order); for
        an AP2 layer the input counts it passes on, int64 (T, N, n_l), each the number of
        spikes (0..4^k behind k pools) of its window.
    windows : list of numpy.ndarray
        The eq. 14 windows ``h``, bool (T, N, n_l), on V before reset (AP2: (T, N, 0), no
        neurons).
    last_membrane : numpy.ndarray
        Output membranes at t = T before the reset, int64 (N, n_L).
    counts : numpy.ndarray
        Decoded values: class spike counts ``n_c``, or the fc decoder's sums, int64
        (N, classes).
    by_class : bool
        Whether the output layer is grouped by class (last, rate), so that ties of
        ``counts`` go to the larger class membrane; the fc decoder's ties go to the
        lowest class.
    """

    spikes: list[np.ndarray]
    windows: list[np.ndarray]
    last_membrane: np.ndarray
    counts: np.ndarray
    by_class: bool = True

    def predictions(self) -> np.ndarray:
        """Predicted classes with the tie-break of :func:`model.metrics.predict`."""
        return metrics.predict(self.counts, self.last_membrane if self.by_class else None)


def equivalent_float_lr(spec: NetworkSpec, formats: Formats, shift: int) -> float:
    """The float SGD learning rate of an integer update ``W -= dW >> shift`` (B = 1).

    ``lr = c * 2^(gf - fw - shift)`` with ``c = C P^2 / 2`` (last decoder),
    ``C (P T)^2 / 2`` (rate decoder) or ``C 2^G / 2`` (fc decoder, G =
    :data:`DECODER_ERROR_GAIN`): the integer output error is the float model's MSE gradient
    (mean over classes) times ``c`` (numerics section 4.3).
    """
    shift = check_field("shift", shift, minimum=0, maximum=31)
    if spec.decoder == "fc":
        return spec.classes * 2.0**DECODER_ERROR_GAIN / 2 * 2.0 ** (formats.gf - formats.fw - shift)
    full = label_target(spec, formats)
    scale = spec.classes * full**2 / 2
    return scale * 2.0 ** (formats.gf - formats.fw - shift)


def decoder_error_bits(inputs: int, w: int, df: int) -> int:
    """Magnitude bits of a fc decoder's output error: ``|e_c| <= inputs 2^(w-1) + 2^df``
    (``inputs`` = T n_L decoder inputs of signed w-bit weights, the target ``2^df``)."""
    return ceil_log2((inputs << (w - 1)) + (1 << df) + 1)


def decoder_error_sum_bits(inputs: int, w: int, df: int, classes: int) -> int:
    """Signed bits of a fc decoder's error sum ``sum_c e_c D_cj`` before its shift: C
    products of an error (:func:`decoder_error_bits`) and a signed w-bit weight."""
    return decoder_error_bits(inputs, w, df) + w - 1 + ceil_log2(classes) + 1


def label_target(spec: NetworkSpec, formats: Formats) -> int:
    """The decoded value of a one-hot 1: ``P`` (last), ``P T`` (rate), ``2^df`` (fc)."""
    if spec.decoder == "fc":
        return 1 << formats.df
    return spec.population * (spec.timesteps if spec.decoder == "rate" else 1)


def output_error(decoded: np.ndarray, labels: np.ndarray, target: int) -> np.ndarray:
    """Integer output error ``e_c = n_c - target * y_c`` (``target``: :func:`label_target`).

    Parameters
    ----------
    decoded : numpy.ndarray
        Decoded class values (spike counts, or the fc decoder's sums), int64 (N, classes).
    labels : numpy.ndarray
        Labels, int (N,).

    Returns
    -------
    numpy.ndarray
        int64 (N, classes).
    """
    error = np.array(decoded, dtype=np.int64)
    error[np.arange(len(error)), labels] -= target
    return error


def output_sums(
    spec: NetworkSpec, formats: Formats, decoder: np.ndarray | None, error: np.ndarray
) -> np.ndarray:
    """The output layer's spatial sums (T, N, n_L) on the ``2^-(gf+fw)`` grid (numerics
    section 3.1) for the class errors ``error`` (N, classes): ``e << E`` at t = T (last) or
    every t (rate); for the fc decoder ``sum_c e_c D_c,(t n_L + j)`` shifted by
    ``gf + fw - 2 df + G``."""
    steps, n_out = spec.timesteps, spec.neurons(spec.num_layers)
    batch = len(error)
    if decoder is not None:
        bound = int(np.abs(error).sum(axis=1).max(initial=0)) * int(np.abs(decoder).max(initial=0))
        total = shift_signed(exact_matmul(error, decoder, bound), formats.decoder_error_shift)
        return total.reshape(batch, steps, n_out).transpose(1, 0, 2)
    sums = np.zeros((steps, batch, n_out), np.int64)
    per_neuron = np.repeat(error, spec.population, axis=1) << formats.error_shift
    if spec.decoder == "rate":
        sums[:] = per_neuron
    else:
        sums[-1] = per_neuron
    return sums


def flat_history(spikes_out: np.ndarray) -> np.ndarray:
    """Output spikes (T, N, n_L) as the fc decoder's inputs (N, T n_L), column ``t n_L + j``."""
    steps, batch, n_out = spikes_out.shape
    return spikes_out.transpose(1, 0, 2).reshape(batch, steps * n_out)


def _sample_major(steps: np.ndarray) -> np.ndarray:
    """Per-step values (T, N, n) as rows (N T, n): samples ascending, then the steps as given."""
    return steps.transpose(1, 0, 2).reshape(-1, steps.shape[2])


def _decode(spikes_out: np.ndarray, spec: NetworkSpec, decoder: np.ndarray | None) -> np.ndarray:
    """Decoded values (N, classes) from output spikes (T, N, n_L): class spike counts, or
    the fc decoder's exact sums ``sum_(t,j) D_c,(t n_L + j) S_j[t]`` (LSB ``2^-df``)."""
    if decoder is not None:
        bound = int(np.abs(decoder).sum(axis=1).max(initial=0))
        return exact_matmul(flat_history(spikes_out), decoder.T, bound)
    chosen = spikes_out.sum(axis=0) if spec.decoder == "rate" else spikes_out[-1]
    n = chosen.shape[0]
    return chosen.reshape(n, spec.classes, spec.population).sum(axis=2, dtype=np.int64)


# The network --------------------------------------------------------------------------


def _check_integer_spec(spec: NetworkSpec) -> None:
    if not isinstance(spec, NetworkSpec):
        raise ValueError(f"spec: expected a NetworkSpec, got {type(spec).__name__}")


class IntegerNetwork:
    """A spiking network of FC, conv and AP2 layers in integers (docs/numerics.md).

    Parameters
    ----------
    spec : NetworkSpec
        Any architecture (FC, conv, AP2; flat or image input), any decoder.
    formats : Formats
        Widths.
    weights : sequence of array of int
        ``weights[l-1]`` of layer l, shape :func:`model.synapses.weight_shape` (FC
        (n_l, n_{l-1}), conv (C_out, 9 C_in), AP2 (0, 0)), fitting signed ``w`` bits.
    thresholds : sequence of array of int
        ``thresholds[l]``, l = 0..L, shape (channels_l,) (:meth:`NetworkSpec.channels`), in
        1..2^(v-1)-1.
    decoder : array of int, optional
        The fc decoder's weights (classes, T n_L), fitting signed ``w`` bits; required for
        ``spec.decoder == "fc"``, else not allowed.
    rule : LearningRule, optional
        Shifts, rounding and batch of the update.
    lfsr_state : int
        LFSR state, 1..2^32-1.

    Raises
    ------
    ValueError
        Naming the field for a bad spec, a mismatched shape or an out-of-range value.
    """

    def __init__(
        self,
        spec: NetworkSpec,
        formats: Formats,
        weights: Sequence[np.ndarray],
        thresholds: Sequence[np.ndarray],
        *,
        decoder: np.ndarray | None = None,
        rule: LearningRule | None = None,
        lfsr_state: int = 1,
    ) -> None:
        _check_integer_spec(spec)
        if not isinstance(formats, Formats):
            raise ValueError(f"formats: expected a Formats, got {type(formats).__name__}")
        formats.check_spec(spec)
        self.spec = spec
        self.formats = formats
        self.rule = LearningRule() if rule is None else rule
        if not isinstance(self.rule, LearningRule):
            raise ValueError(f"rule: expected a LearningRule, got {type(rule).__name__}")
        self.lfsr = LFSR(lfsr_state)
        layers = spec.num_layers
        if len(weights) != layers:
            raise ValueError(
                f"weights: expected {layers} arrays (layers 1..{layers}), got {len(weights)}"
            )
        if len(thresholds) != layers + 1:
            raise ValueError(
                f"thresholds: expected {layers + 1} arrays (layers 0..{layers}), "
                f"got {len(thresholds)}"
            )
        #: The synapses of every spiking layer 1..L, and the spiking layer each one's
        #: spikes reach (its consumer).
        self.synapses: dict[int, Synapses] = {
            index: layer_synapses(spec, index) for index in spec.spiking_layers()[1:]
        }
        self._consumer = {syn.source: index for index, syn in self.synapses.items()}
        self._offsets = [shift_offsets(spec, index) for index in range(spec.num_layers + 1)]
        self.weights: list[np.ndarray] = []
        for index, array in enumerate(weights, start=1):
            shape = weight_shape(spec, index)
            name = f"weights[{index - 1}]"
            if np.shape(array) != shape:
                raise ValueError(
                    f"{name}: shape {np.shape(array)} does not match layer {index} {shape}"
                )
            self.weights.append(formats.weight.check(name, array).copy())
        self.thresholds: list[np.ndarray] = []
        for index, array in enumerate(thresholds):
            name = f"thresholds[{index}]"
            if np.shape(array) != (spec.channels(index),):
                raise ValueError(
                    f"{name}: shape {np.shape(array)} does not match layer {index} "
                    f"({spec.channels(index)},)"
                )
            values = FixedFormat(formats.v - 1, 0, False).check(name, array).copy()
            if values.size and values.min() < 1:
                raise ValueError(
                    f"{name}: {values.min()} is out of range (allowed 1..{formats.threshold_max})"
                )
            self.thresholds.append(values)
        self.decoder: np.ndarray | None = None
        if spec.decoder == "fc":
            shape = (spec.classes, spec.timesteps * spec.neurons(layers))
            if decoder is None or np.shape(decoder) != shape:
                got = "none" if decoder is None else f"shape {np.shape(decoder)}"
                raise ValueError(f"decoder: the fc decoder needs weights of shape {shape}, got {got}")
            self.decoder = formats.decoder.check("decoder", decoder).copy()
        elif decoder is not None:
            raise ValueError(f"decoder: weights are given but the spec's decoder is {spec.decoder!r}")
        self.dd = None if self.decoder is None else np.zeros_like(self.decoder)
        self.dw = [np.zeros_like(w) for w in self.weights]
        self.dth = [np.zeros_like(v) for v in self.thresholds]
        self.pending = 0
        self.reciprocals = [reciprocal(vth, formats.k) for vth in self.thresholds]
        self._refresh()

    # Construction ----------------------------------------------------------------------

    @classmethod
    def scratch(
        cls,
        spec: NetworkSpec,
        formats: Formats | None = None,
        *,
        seed: int = 0,
        gain: float | None = None,
        rule: LearningRule | None = None,
    ) -> IntegerNetwork:
        """Seeded integer init: ``W ~ U{-a..a}`` with ``a = rint(gain Vth0 sqrt(3/fan_in) 2^fw)``.

        ``fan_in`` is a neuron's inputs, n_{l-1} (FC) or 9 C_in (conv), whatever AP2 layers
        come before (in float units a weight behind k pools is then 4^k times larger,
        :func:`~model.synapses.weight_fold`, which keeps those layers spiking without the
        float trainer's :meth:`~model.stbp.Network.calibrate`). ``gain`` defaults to
        :data:`INIT_GAIN` for FC layers only, else :data:`CONV_INIT_GAIN`. Thresholds start
        at ``spec.initial_threshold`` (``rint(. * 2^fw)``, encoder ``rint(. * 255)``); the
        fc decoder's weights, drawn after the layers', at
        ``a = rint(sqrt(3 / (T n_L)) 2^df)`` (the float decoder's bound); the LFSR is
        seeded with ``seed``.
        """
        _check_integer_spec(spec)
        formats = Formats() if formats is None else formats
        seed = check_field("seed", seed, minimum=0, maximum=(1 << 63) - 1)
        rng = np.random.default_rng(seed)
        if gain is None:
            only_fc = all(layer.kind == "fc" for layer in spec.layers)
            gain = INIT_GAIN if only_fc else CONV_INIT_GAIN

        def draw(bound: float, frac: int, shape: tuple[int, int]) -> np.ndarray:
            a = int(min(max(round(bound * 2.0**frac), 1), formats.weight.max))
            return rng.integers(-a, a + 1, shape, dtype=np.int64)

        weights = []
        for index in range(1, spec.num_layers + 1):
            shape = weight_shape(spec, index)
            if not spec.layers[index - 1].spiking:
                weights.append(np.zeros(shape, np.int64))
                continue
            bound = gain * spec.initial_threshold * math.sqrt(3.0 / shape[1])
            weights.append(draw(bound, formats.fw, shape))
        decoder = None
        if spec.decoder == "fc":
            inputs = spec.timesteps * spec.neurons(spec.num_layers)
            decoder = draw(math.sqrt(3.0 / inputs), formats.df, (spec.classes, inputs))
        thresholds = [
            formats.quantize_threshold(
                np.full(spec.channels(index), spec.initial_threshold), encoder=index == 0
            )
            for index in range(spec.num_layers + 1)
        ]
        state = LFSR.from_seed(seed).state
        return cls(
            spec, formats, weights, thresholds, decoder=decoder, rule=rule, lfsr_state=state
        )

    @classmethod
    def from_float(
        cls,
        net: Any,
        formats: Formats | None = None,
        *,
        seed: int = 0,
        rule: LearningRule | None = None,
    ) -> IntegerNetwork:
        """Quantize a float :class:`model.stbp.Network` (numerics section 1).

        ``W = sat_w(rint(W_f 2^fw / 4^k))`` behind k AP2 layers (the pools' 1/4^k folded
        in, :func:`~model.synapses.weight_fold`; conv kernels reshaped to (C_out, 9 C_in)),
        ``Vth = clamp(rint(Vth_f 2^fw), 1, max)``, encoder ``Vth0 = clamp(rint(255 Vth0_f),
        1, max)``, fc decoder ``D = sat_w(rint(D_f 2^df))``.
        """
        spec = net.spec
        _check_integer_spec(spec)
        formats = Formats() if formats is None else formats
        weights = [
            formats.weight.quantize(w.reshape(weight_shape(spec, index)) / weight_fold(spec, index))
            for index, w in enumerate(net.weights, start=1)
        ]
        thresholds = [
            formats.quantize_threshold(vth, encoder=index == 0)
            for index, vth in enumerate(net.thresholds)
        ]
        decoder = None if net.decoder_weight is None else formats.decoder.quantize(net.decoder_weight)
        seed = check_field("seed", seed, minimum=0, maximum=(1 << 63) - 1)
        state = LFSR.from_seed(seed).state
        return cls(
            spec, formats, weights, thresholds, decoder=decoder, rule=rule, lfsr_state=state
        )

    def memory(self, memory: str, layer: int) -> np.ndarray:
        """The stored values of ``memory`` (:data:`STORED_MEMORIES`) of ``layer`` (the array
        itself: ``W``/``DW`` for l = 1..L shaped as :attr:`weights`, ``VTH``/``R``/``DVTH``
        one per channel for l = 0..L; an AP2 layer's are empty)."""
        self.formats.stored(memory)
        per_layer = {"W": self.weights, "DW": self.dw, "VTH": self.thresholds,
                     "R": self.reciprocals, "DVTH": self.dth}[memory]
        first = 1 if memory in ("W", "DW") else 0
        layer = check_field("layer", layer, minimum=first, maximum=self.spec.num_layers)
        return per_layer[layer - first]

    def store(self, memory: str, layer: int, values: np.ndarray) -> None:
        """Overwrite the stored values of ``memory`` of ``layer`` as a host write would.

        Only the shape and the memory's width are checked: a threshold word of 0 (which
        only a fault can produce) is kept, and the reciprocals are not recomputed, as in
        the core. This is how :mod:`model.faults` injects bit errors.

        Raises
        ------
        ValueError
            Naming ``memory``/``layer`` or the values' shape or width.
        """
        target = self.memory(memory, layer)
        name = f"{memory}[{layer}]"
        if np.shape(values) != target.shape:
            raise ValueError(f"{name}: shape {np.shape(values)} does not match {target.shape}")
        target[...] = self.formats.stored(memory).check(name, values)
        if memory == "W":
            self._refresh()

    def to_float(self, dtype: Any = np.float64) -> Any:
        """The float :class:`model.stbp.Network` with this network's values (the inverse of
        :meth:`from_float`): ``4^k W / 2^fw`` (k AP2 layers before), ``Vth / 2^fw``, encoder
        ``Vth0 / 255``.

        Both networks then emit the same spikes on ``x = p / 255`` except where float
        rounding decides an exact tie with a threshold (the encoder's 1/255 steps are not
        dyadic; about 0.05 % of the spikes on digits).
        """
        from model.stbp import Network

        floats = Network(self.spec, dtype=dtype)
        scale = 2.0**self.formats.fw
        for index, (target, weight) in enumerate(zip(floats.weights, self.weights), start=1):
            target[...] = (weight * (weight_fold(self.spec, index) / scale)).reshape(target.shape)
        floats.thresholds[0][...] = self.thresholds[0] / PIXEL_SCALE
        for target, vth in zip(floats.thresholds[1:], self.thresholds[1:]):
            target[...] = vth / scale
        if self.decoder is not None:
            floats.decoder_weight[...] = self.decoder / 2.0**self.formats.df
        return floats

    def _refresh(self) -> None:
        """Recompute, after a weight change, each spiking layer's largest |W| and per neuron
        the sums of its positive and of its negative weights over every event one step can
        bring (4^k per input behind k pools)."""
        self._positive: dict[int, np.ndarray] = {}
        self._negative: dict[int, np.ndarray] = {}
        self._max_weight: dict[int, int] = {}
        for index, syn in self.synapses.items():
            weight = self.weights[index - 1]
            self._positive[index] = syn.step_sums(np.maximum(weight, 0))
            self._negative[index] = syn.step_sums(np.maximum(-weight, 0))
            self._max_weight[index] = int(np.abs(weight).max(initial=0))

    def _layer_k(self, index: int) -> int:
        return self.formats.encoder_k if index == 0 else self.formats.k

    def _per_neuron(self, values: np.ndarray, index: int) -> np.ndarray:
        """Per-channel values of spiking layer ``index`` (thresholds, reciprocals) for each
        of its neurons, in flat order."""
        return np.repeat(values, positions(self.spec.layer_shape(index)))

    # Inputs ----------------------------------------------------------------------------

    def check_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """u8 pixels (N, n_0) or (N, *input_shape) as int64 (N, n_0), else ``ValueError``
        naming ``pixels``."""
        array = np.asarray(pixels)
        n_0 = self.spec.neurons(0)
        if array.ndim > 2 and array.shape[1:] == self.spec.input_shape:
            array = array.reshape(len(array), n_0)
        if array.ndim != 2 or array.shape[1] != n_0 or not len(array):
            shape = ", ".join(map(str, self.spec.input_shape))
            image = f" or (N, {shape})" if len(self.spec.input_shape) == 3 else ""
            raise ValueError(
                f"pixels: expected shape (N, {n_0}){image} with N >= 1, got {array.shape}"
            )
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"pixels: expected u8 integers 0..255, got dtype {array.dtype}")
        if array.min() < 0 or array.max() > 255:
            raise ValueError(f"pixels: values {array.min()}..{array.max()} are outside 0..255")
        return array.astype(np.int64)

    def check_labels(self, labels: np.ndarray, count: int) -> np.ndarray:
        """Integer labels (count,) in 0..classes-1, else ``ValueError`` naming ``labels``."""
        array = np.asarray(labels)
        if array.shape != (count,) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"labels: expected integers of shape ({count},), got {array.dtype} {array.shape}"
            )
        if count and (array.min() < 0 or array.max() >= self.spec.classes):
            raise ValueError(f"labels: values must be in 0..{self.spec.classes - 1}")
        return array.astype(np.int64)

    # Forward ---------------------------------------------------------------------------

    def forward(self, pixels: np.ndarray, *, reference: bool = False) -> IntegerTrace:
        """Run T steps on u8 pixels (N, n_0); ``reference=True`` loops in event order."""
        p = self.check_pixels(pixels)
        return self._forward_reference(p) if reference else self._forward_fast(p)

    def _trace(
        self,
        spikes: Mapping[int, np.ndarray],
        windows: Mapping[int, np.ndarray],
        last: np.ndarray,
        decoded: np.ndarray | None = None,
    ) -> IntegerTrace:
        """The trace of the spiking layers' ``spikes`` and ``windows`` (by layer index),
        with each AP2 layer's input counts in between."""
        spec = self.spec
        steps, batch = spikes[0].shape[:2]
        spike_list, window_list = [], []
        for index in range(spec.num_layers + 1):
            if index in spikes:
                spike_list.append(spikes[index])
                window_list.append(windows[index])
                continue
            source = source_layer(spec, index)
            levels = index - source
            spike_list.append(pool_counts(spikes[source], spec.layer_shape(source), levels))
            window_list.append(np.zeros((steps, batch, 0), bool))
        if decoded is None:
            decoded = _decode(spike_list[-1], spec, self.decoder)
        return IntegerTrace(spike_list, window_list, last, decoded, by_class=self.decoder is None)

    def _forward_fast(self, p: np.ndarray) -> IntegerTrace:
        # Layer-major: layer l at step t needs only layer l at t-1 and its source at t, so
        # each layer's currents for all T steps come from one exact product; the results
        # equal the core's time-major order.
        spec, f = self.spec, self.formats
        vth = self._per_neuron(self.thresholds[0], 0)
        encoded = encode(p, vth, spec.timesteps, f.v, reset=spec.reset)
        spikes, windows = {0: encoded[0]}, {0: encoded[1]}
        for index, syn in self.synapses.items():
            spikes[index], windows[index], last = self._layer_forward(index, spikes[syn.source])
        return self._trace(spikes, windows, last)

    def _layer_forward(
        self, index: int, below: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Spikes, windows (T, N, n) and last pre-reset membranes (N, n) of spiking layer
        ``index`` from its source's spikes ``below`` (T, N, n_source).

        From V = 0 every partial sum of a sample's events up to step t lies between
        ``-sum relu(-W_ji)`` and ``sum relu(W_ji)`` over the input events so far (the
        reset never raises V and leaves it >= 0 when it fires). Samples whose bound fits
        the membrane (checked with the weights' sums, else with the input counts) cannot
        saturate and run through :func:`fire_steps`; the others replay their events step
        by step with :func:`integrate`.
        """
        spec, f = self.spec, self.formats
        syn = self.synapses[index]
        steps, batch, _ = below.shape
        weight = self.weights[index - 1]
        positive, negative = self._positive[index], self._negative[index]
        high = signed_range(f.v)[1]
        bound = int(max(positive.max(initial=0), negative.max(initial=0)))
        counts = syn.pool(below).reshape(steps * batch, syn.n_input)
        currents = syn.forward(counts, weight, bound, as_int=False)
        currents = currents.reshape(steps, batch, syn.n_output)
        if steps * bound <= high:
            reach = np.full(batch, steps * bound)
        else:
            totals = syn.pool(below.sum(axis=0, dtype=np.int64))
            rows = int(totals.sum(axis=1).max(initial=0)) * self._max_weight[index]
            reach = np.maximum(
                syn.forward(totals, np.maximum(weight, 0), rows),
                syn.forward(totals, np.maximum(-weight, 0), rows),
            ).max(axis=1, initial=0)
        vth = self._per_neuron(self.thresholds[index], index)
        safe = reach <= high
        if safe.all():
            return fire_steps(currents, vth, f.v, reset=spec.reset, bound=int(reach.max()))
        out_spikes = np.empty((steps, batch, syn.n_output), bool)
        out_windows = np.empty((steps, batch, syn.n_output), bool)
        last = np.empty((batch, syn.n_output), np.int64)
        if safe.any():
            out_spikes[:, safe], out_windows[:, safe], last[safe] = fire_steps(
                currents[:, safe], vth, f.v, reset=spec.reset, bound=int(reach[safe].max()),
            )
        exact = currents[:, ~safe].astype(np.int64)
        v = np.zeros((int((~safe).sum()), syn.n_output), np.int64)
        for t in range(steps):
            before = integrate(
                v, lambda neurons: syn.rows(weight, neurons), below[t, ~safe], f.v,
                positive=positive, negative=negative, current=exact[t],
            )
            v, out_spikes[t, ~safe], out_windows[t, ~safe] = fire_scan(before, vth, reset=spec.reset)
        last[~safe] = before
        return out_spikes, out_windows, last

    def _forward_reference(self, p: np.ndarray) -> IntegerTrace:
        spec, f = self.spec, self.formats
        steps, batch = spec.timesteps, len(p)
        layers = [0, *self.synapses]
        spikes = {i: np.zeros((steps, batch, spec.neurons(i)), bool) for i in layers}
        windows = {i: np.zeros((steps, batch, spec.neurons(i)), bool) for i in layers}
        vth = {i: self._per_neuron(self.thresholds[i], i) for i in layers}
        last = np.zeros((batch, spec.neurons(spec.num_layers)), np.int64)
        for sample in range(batch):
            v = {i: np.zeros(spec.neurons(i), np.int64) for i in layers}
            for t in range(steps):
                v[0] = saturate(v[0] + p[sample], f.v)
                v[0], spikes[0][t, sample], windows[0][t, sample] = fire_scan(
                    v[0], vth[0], reset=spec.reset
                )
                for index, syn in self.synapses.items():
                    weight = self.weights[index - 1]
                    for i in np.flatnonzero(spikes[syn.source][t, sample]):  # ascending index
                        neurons, words = syn.targets(syn.source_input[i])
                        v[index][neurons] = saturate(v[index][neurons] + weight.take(words), f.v)
                    if t == steps - 1 and index == spec.num_layers:
                        last[sample] = v[index]
                    v[index], spikes[index][t, sample], windows[index][t, sample] = fire_scan(
                        v[index], vth[index], reset=spec.reset
                    )
        decoded = None
        if self.decoder is not None:  # one output spike event at a time adds its column
            n_out = spec.neurons(spec.num_layers)
            decoded = np.zeros((batch, spec.classes), np.int64)
            for sample, t, j in zip(*np.nonzero(spikes[spec.num_layers].transpose(1, 0, 2))):
                decoded[sample] += self.decoder[:, t * n_out + j]
        return self._trace(spikes, windows, last, decoded)

    # Learning --------------------------------------------------------------------------

    def _check_learnable(self) -> None:
        if self.spec.reset != "subtract" or self.spec.surrogate != "scaled":
            raise ValueError(
                "spec: integer learning implements the eq. 15 mux, which needs reset "
                f"'subtract' and surrogate 'scaled' (got {self.spec.reset!r}, "
                f"{self.spec.surrogate!r})"
            )

    def accumulate(
        self, pixels: np.ndarray, labels: np.ndarray, *, reference: bool = False
    ) -> IntegerTrace:
        """Forward, backward and gradient accumulation of N samples on the current weights.

        Adds each sample's eq. 10/11 gradients to :attr:`dw` / :attr:`dth` in sample order
        (saturating) without updating; :meth:`update` applies them. Returns the trace.
        """
        self._check_learnable()
        p = self.check_pixels(pixels)
        y = self.check_labels(labels, len(p))
        if reference:
            trace = self._forward_reference(p)
            self._backward_reference(trace, y)
        else:
            trace = self._forward_fast(p)
            self._backward_fast(trace, y)
        self.pending += len(p)
        return trace

    def _output_error(self, trace: IntegerTrace, labels: np.ndarray) -> np.ndarray:
        """The class errors ``e`` (N, classes) of section 3.1."""
        return output_error(trace.counts, labels, label_target(self.spec, self.formats))

    def _learned_layers(self) -> list[int]:
        """The spiking layers whose dV the backward pass computes, output first: L..1 and,
        with trainable thresholds, the encoder (for its thresholds)."""
        first = 0 if self.spec.threshold == "trainable" else 1
        return [index for index in reversed(self.spec.spiking_layers()) if index >= first]

    def _backward_fast(self, trace: IntegerTrace, labels: np.ndarray) -> None:
        # Layer-major (like the forward pass): dV^l[t] needs dV^l[t+1] and dV[t] of the layer
        # its spikes reach, so a layer's spatial sums for all T steps come from one exact
        # product.
        spec, f = self.spec, self.formats
        steps, batch = spec.timesteps, len(labels)
        error = self._output_error(trace, labels)
        if self.dd is not None:  # dD = e S, samples in order
            self.dd = accumulate_outer(self.dd, error, flat_history(trace.spikes[-1]), f.dw)
        history: dict[int, np.ndarray] = {}
        for index in self._learned_layers():
            if index == spec.num_layers:
                acc = output_sums(spec, f, self.decoder, error)
            else:  # every neuron of a window takes its pooled position's sum
                above = self._consumer[index]
                syn = self.synapses[above]
                grads = history[above].reshape(steps * batch, -1)
                bound = int(np.abs(grads).sum(axis=1).max(initial=0)) * self._max_weight[above]
                sums = syn.backward(grads, self.weights[above - 1], bound)
                acc = syn.unpool(sums).reshape(steps, batch, -1)
            recip = self._per_neuron(self.reciprocals[index], index)
            history[index] = mux_dv_steps(
                acc, recip, self._layer_k(index), trace.windows[index], f.g
            )
        # Accumulate in the contract's order: samples ascending, t descending.
        for index, syn in self.synapses.items():
            grads = _sample_major(history[index][::-1])
            inputs = _sample_major(trace.spikes[syn.source][::-1])
            self.dw[index - 1] = syn.accumulate(self.dw[index - 1], grads, inputs, f.dw)
        if spec.threshold == "trainable":
            for index, dv in history.items():
                # -dV[t] S[t-1] for t = T..2 (0-based t = T-1..1), per sample in order.
                adds = -dv[:0:-1] * trace.spikes[index][-2::-1]
                self.dth[index] = accumulate_sequence(
                    self.dth[index], self._channel_adds(adds, index), f.dth
                )

    def _channel_adds(self, adds: np.ndarray, index: int) -> np.ndarray:
        """Threshold-gradient adds (T', N, n) of spiking layer ``index`` in accumulation
        order, (N T' P, channels): samples ascending, then the given steps, then each
        channel's P neurons in flat order."""
        channels = self.spec.channels(index)
        per_channel = positions(self.spec.layer_shape(index))
        grouped = _sample_major(adds).reshape(-1, channels, per_channel)
        return grouped.transpose(0, 2, 1).reshape(-1, channels)

    def _backward_reference(self, trace: IntegerTrace, labels: np.ndarray) -> None:
        spec, f = self.spec, self.formats
        steps, layers = spec.timesteps, spec.num_layers
        error = self._output_error(trace, labels)
        learned = self._learned_layers()
        recips = {index: self._per_neuron(self.reciprocals[index], index) for index in learned}
        low_w, high_w = signed_range(f.dw)
        n_out = spec.neurons(layers)
        for sample in range(len(labels)):
            dv = {index: np.zeros(spec.neurons(index), np.int64) for index in learned}
            if self.dd is not None:  # one column add per output spike event
                for t, j in zip(*np.nonzero(trace.spikes[-1][:, sample])):
                    column = self.dd[:, t * n_out + j] + error[sample]
                    self.dd[:, t * n_out + j] = np.clip(column, low_w, high_w)
            for t in range(steps - 1, -1, -1):
                for index in learned:
                    new = dv[index].copy()
                    for i in np.flatnonzero(trace.windows[index][t, sample]):
                        # The core reads row i only where h = 1.
                        acc = self._spatial_sum(index, i, t, error[sample], dv)
                        scaled = mul_shift(acc, int(recips[index][i]), self._layer_k(index))
                        new[i] = saturate(scaled, f.g)
                    dv[index] = new
                    if index >= 1:
                        fired = trace.spikes[self.synapses[index].source][t, sample]
                        self._add_weight_rows(index, fired, dv[index])
                    if spec.threshold == "trainable" and t >= 1:
                        self._add_thresholds(index, trace.spikes[index][t - 1, sample], dv[index])

    def _spatial_sum(
        self, index: int, i: int, t: int, error: np.ndarray, dv: Mapping[int, np.ndarray]
    ) -> int:
        """Neuron i's exact spatial sum at step t (0-based) of one sample: the output error
        (section 3.1), or the dV of the neurons its events reach times their weights."""
        spec, f = self.spec, self.formats
        if index == spec.num_layers and self.decoder is not None:
            column = self.decoder[:, t * spec.neurons(index) + i]
            return shift_signed(sum(int(e) * int(d) for e, d in zip(error, column)), f.decoder_error_shift)
        if index == spec.num_layers:
            injected = spec.decoder == "rate" or t == spec.timesteps - 1
            return int(error[i // spec.population]) << f.error_shift if injected else 0
        above = self._consumer[index]
        syn = self.synapses[above]
        neurons, words = syn.targets(syn.source_input[i])
        weights = self.weights[above - 1].take(words)
        return sum(int(d) * int(w) for d, w in zip(dv[above][neurons], weights))

    def _add_weight_rows(self, index: int, fired: np.ndarray, dv: np.ndarray) -> None:
        """Eq. 10 for one step: each source spike event, in ascending index, adds the dV of
        its targets to its weights' accumulators (one memory row per input, conv: per tap)."""
        syn, acc = self.synapses[index], self.dw[index - 1]
        low, high = signed_range(self.formats.dw)
        for i in np.flatnonzero(fired):
            neurons, words = syn.targets(syn.source_input[i])
            np.put(acc, words, np.clip(acc.take(words) + dv[neurons], low, high))

    def _add_thresholds(self, index: int, fired: np.ndarray, dv: np.ndarray) -> None:
        """Eq. 11 for one step: ``dVth_c -= dV_n`` for each neuron n that fired at the step
        before, in ascending index, into its channel's accumulator."""
        acc, per_channel = self.dth[index], positions(self.spec.layer_shape(index))
        low, high = signed_range(self.formats.dth)
        for n in np.flatnonzero(fired):
            channel = n // per_channel
            acc[channel] = min(max(int(acc[channel]) - int(dv[n]), low), high)

    def update(self, *, reference: bool = False) -> None:
        """Apply the accumulated gradients (numerics section 4) and clear them.

        ``W = sat_w(W - round_shift(dW, s_w))``, ``Vth = clamp(Vth - round_shift(dVth, s),
        1, max)``, the reciprocals of the thresholds that changed recomputed (the core's
        rule: an unchanged threshold keeps its stored R). Stochastic draws in the
        contract's order.
        """
        before = [vth.copy() for vth in self.thresholds]
        if reference:
            self._update_reference()
        else:
            self._update_fast()
        for index, (old, new) in enumerate(zip(before, self.thresholds)):
            changed = new != old
            if changed.any():
                fresh = reciprocal(np.where(changed, new, 1), self.formats.k)
                self.reciprocals[index] = np.where(changed, fresh, self.reciprocals[index])
        for array in (*self.dw, *self.dth, *([] if self.dd is None else [self.dd])):
            array[...] = 0
        self.pending = 0
        self._refresh()

    def _weight_shift(self, index: int) -> int:
        """Layer ``index``'s weight shift: ``s_w`` plus its :func:`shift_offsets`, 0..31."""
        return min(self.rule.shift_w + self._offsets[index][0], 31)

    def _threshold_shift(self, index: int) -> int:
        shift = self.rule.shift_th
        base = self.formats.threshold_shift_encoder(shift) if index == 0 else shift
        return min(base + self._offsets[index][1], 31)

    def _draw_count(self) -> int:
        count = sum(w.size for w in self.weights)
        if self.spec.threshold == "trainable":
            count += sum(v.size for v in self.thresholds)
        if self.decoder is not None:
            count += self.decoder.size
        return count

    def _update_fast(self) -> None:
        rule, f = self.rule, self.formats
        trainable = self.spec.threshold == "trainable"
        # Flattened accumulators in draw order: W^T row-major per layer, then thresholds,
        # then the fc decoder's D^T row-major (row t n_L + j, one value per class).
        blocks: list[tuple[np.ndarray, int]] = [
            (dw.T.ravel(), self._weight_shift(index)) for index, dw in enumerate(self.dw, start=1)
        ]
        if trainable:
            blocks += [(dth, self._threshold_shift(index)) for index, dth in enumerate(self.dth)]
        if self.dd is not None:
            blocks.append((self.dd.T.ravel(), f.decoder_shift(rule.shift_w)))
        offsets = np.cumsum([0] + [len(values) for values, _ in blocks])
        nonzero = [np.flatnonzero(values) for values, _ in blocks]
        states = None
        if rule.rounding == "stochastic":
            positions = np.concatenate([nz + offset for nz, offset in zip(nonzero, offsets)])
            states = self.lfsr.states(self._draw_count(), at=positions)
        steps = []
        cursor = 0
        for (values, shift), nz in zip(blocks, nonzero):
            draws = None if states is None else states[cursor : cursor + len(nz)]
            cursor += len(nz)
            step = np.zeros_like(values)
            step[nz] = round_shift(values[nz], shift, rule.rounding, draws)
            steps.append(step)
        for index, weight in enumerate(self.weights):
            delta = steps[index].reshape(weight.shape[::-1]).T
            self.weights[index] = f.weight.saturate(weight - delta)
        if trainable:
            for index, vth in enumerate(self.thresholds):
                delta = steps[len(self.weights) + index]
                self.thresholds[index] = np.clip(vth - delta, 1, f.threshold_max)
        if self.decoder is not None:
            delta = steps[-1].reshape(self.decoder.shape[::-1]).T
            self.decoder = f.weight.saturate(self.decoder - delta)

    def _update_reference(self) -> None:
        rule, f = self.rule, self.formats
        stochastic = rule.rounding == "stochastic"

        def one(value: int, shift: int) -> int:
            draw = self.lfsr.step() if stochastic else None
            return round_shift(int(value), shift, rule.rounding, draw)

        for index, weight in enumerate(self.weights):
            n_out, n_in = weight.shape
            shift = self._weight_shift(index + 1)
            for i in range(n_in):  # memory row i: input i (conv: kernel row (c, i, j))
                for j in range(n_out):
                    step = one(self.dw[index][j, i], shift)
                    weight[j, i] = f.weight.saturate(int(weight[j, i]) - step)
        if self.spec.threshold == "trainable":
            for index, vth in enumerate(self.thresholds):
                shift = self._threshold_shift(index)
                for c in range(len(vth)):
                    step = one(self.dth[index][c], shift)
                    vth[c] = min(max(int(vth[c]) - step, 1), f.threshold_max)
        if self.decoder is not None:
            shift = f.decoder_shift(rule.shift_w)
            for row in range(self.decoder.shape[1]):  # memory row t n_L + j
                for c in range(self.spec.classes):
                    step = one(self.dd[c, row], shift)
                    self.decoder[c, row] = f.weight.saturate(int(self.decoder[c, row]) - step)

    def learn(
        self,
        pixels: np.ndarray,
        labels: np.ndarray,
        *,
        reference: bool = False,
        callback: Callable[[int, IntegerTrace], None] | None = None,
    ) -> int:
        """Learn from a stream of samples in order, updating after every B-th sample.

        The sample counter (:attr:`pending`) carries over between calls, so a stream may
        be split (e.g. into epochs); :meth:`flush` applies a final partial batch.

        Parameters
        ----------
        callback : callable, optional
            Called as ``callback(samples, trace)`` after each group of samples processed
            on the same weights.

        Returns
        -------
        int
            Samples of the stream whose prediction (made while learning) was correct.
        """
        p = self.check_pixels(pixels)
        y = self.check_labels(labels, len(p))
        correct = 0
        start = 0
        while start < len(p):
            stop = min(start + self.rule.batch - self.pending, len(p))
            trace = self.accumulate(p[start:stop], y[start:stop], reference=reference)
            correct += int(np.sum(trace.predictions() == y[start:stop]))
            if self.pending >= self.rule.batch:
                self.update(reference=reference)
            if callback is not None:
                callback(stop - start, trace)
            start = stop
        return correct

    def flush(self, *, reference: bool = False) -> None:
        """Apply a pending partial batch (no-op when none is pending)."""
        if self.pending:
            self.update(reference=reference)

    # Evaluation ------------------------------------------------------------------------

    def evaluate(
        self, pixels: np.ndarray, labels: np.ndarray, *, batch: int = 500
    ) -> dict[str, Any]:
        """Test metrics (:func:`model.metrics.summarize`) on u8 pixels and labels."""
        batch = check_field("batch", batch, minimum=1, maximum=1 << 30)
        p = self.check_pixels(pixels)
        y = self.check_labels(labels, len(p))

        def run(start: int, stop: int) -> tuple[list[np.ndarray], np.ndarray]:
            trace = self._forward_fast(p[start:stop])
            shaped = [
                spikes.reshape(*spikes.shape[:2], *self.spec.layer_shape(index))
                for index, spikes in enumerate(trace.spikes)
            ]
            return shaped, trace.predictions()

        return metrics.evaluate_batches(self.spec, y, batch, run)

    # Checkpoints -----------------------------------------------------------------------

    def formats_dict(self) -> dict[str, Any]:
        """Every width, shift, K, rounding, batch and the LFSR state (checkpoint ``formats``)."""
        return {
            **self.formats.to_dict(),
            **asdict(self.rule),
            "encoder_k": self.formats.encoder_k,
            "error_shift": self.formats.error_shift,
            "lfsr_state": self.lfsr.state,
        }

    def save(
        self,
        directory: str | os.PathLike[str],
        *,
        training: Mapping[str, Any] | None = None,
        learner: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write an integer checkpoint: ``checkpoint.json`` (kind "integer"), ``weights.npz``.

        Arrays ``weight_<l>`` (l = 1..L), ``threshold_<l>`` (l = 0..L) and, for the fc
        decoder, ``decoder_weight``, int64. A pending partial batch is not saved; call
        :meth:`flush` first, or give ``learner`` (JSON-ready fields stored under
        ``"learner"`` with ``pending``): then ``state.npz`` holds the accumulators
        ``dw_<l>``, ``dth_<l>`` (and ``dd``) too (:func:`save_learner`).
        """
        meta = {
            "kind": "integer",
            "spec": self.spec.to_dict(),
            "formats": self.formats_dict(),
            "training": dict(training or {}),
        }
        arrays = {f"weight_{index}": w for index, w in enumerate(self.weights, start=1)}
        arrays.update({f"threshold_{index}": v for index, v in enumerate(self.thresholds)})
        if self.decoder is not None:
            arrays["decoder_weight"] = self.decoder
        if learner is None:
            return checkpoint.write_checkpoint(directory, meta, arrays)
        meta["learner"] = {**learner, "pending": self.pending}
        state = {f"dw_{index}": dw for index, dw in enumerate(self.dw, start=1)}
        state.update({f"dth_{index}": dth for index, dth in enumerate(self.dth)})
        if self.dd is not None:
            state["dd"] = self.dd
        return checkpoint.write_checkpoint(directory, meta, arrays, state=state)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> IntegerNetwork:
        """Read an integer checkpoint written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            When the folder or a file is missing.
        ValueError
            For a float checkpoint (naming ``kind``), a bad spec or ``formats`` key, or a
            missing / mismatched / out-of-range array (naming it).
        """
        meta = checkpoint.read_checkpoint_json(directory)
        if meta["kind"] != "integer":
            raise ValueError(
                f"kind: checkpoint {str(directory)!r} is {meta['kind']!r}, "
                "an integer checkpoint is needed"
            )
        try:
            spec = NetworkSpec.from_dict(meta.get("spec"))
        except ValueError as error:
            raise ValueError(f"checkpoint spec: {error}") from None
        _check_integer_spec(spec)
        stored = meta.get("formats")
        if not isinstance(stored, dict):
            raise ValueError("formats: checkpoint.json needs a 'formats' object")
        formats = Formats(**{key: stored.get(key) for key in Formats.KEYS if key in stored})
        required = [key for key in Formats.KEYS if key not in Formats.OPTIONAL_KEYS]
        needed = (*required, "shift_w", "shift_th", "rounding", "batch", "lfsr_state")
        missing = [key for key in needed if key not in stored]
        if missing:
            raise ValueError(f"formats: checkpoint lacks {', '.join(missing)}")
        rule = LearningRule(
            stored["shift_w"], stored["shift_th"], stored["rounding"], stored["batch"]
        )
        lfsr_state = check_field("lfsr_state", stored["lfsr_state"], minimum=1, maximum=(1 << LFSR_BITS) - 1)
        layers = range(1, spec.num_layers + 1)
        expected = {f"weight_{i}": ArraySpec(weight_shape(spec, i), "iu") for i in layers}
        expected.update({f"threshold_{i}": ArraySpec((spec.channels(i),), "iu") for i in (0, *layers)})
        if spec.decoder == "fc":
            shape = (spec.classes, spec.timesteps * spec.neurons(spec.num_layers))
            expected["decoder_weight"] = ArraySpec(shape, "iu")
        arrays = checkpoint.read_arrays(directory, expected)
        weights = [arrays[f"weight_{i}"] for i in layers]
        thresholds = [arrays[f"threshold_{i}"] for i in (0, *layers)]
        return cls(
            spec, formats, weights, thresholds, decoder=arrays.get("decoder_weight"),
            rule=rule, lfsr_state=lfsr_state,
        )


# On-line training ----------------------------------------------------------------------


@dataclass
class History:
    """Per-epoch record of :func:`fit`.

    Attributes
    ----------
    train_accuracy : list of float
        Accuracy of the predictions made while learning each epoch (0..1).
    shifts : list of tuple of int
        ``(shift_w, shift_th)`` of each epoch.
    test_accuracy : list of float
        Test accuracy after each epoch (when test data were given).
    seconds : float
        Wall-clock learning time (evaluation excluded).
    samples_per_second : float
        Learned samples per second.
    """

    train_accuracy: list[float] = field(default_factory=list)
    shifts: list[tuple[int, int]] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0
    samples_per_second: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "train_accuracy": self.train_accuracy,
            "shifts": [list(s) for s in self.shifts],
            "test_accuracy": self.test_accuracy,
            "seconds": self.seconds,
            "samples_per_second": self.samples_per_second,
        }

    @classmethod
    def from_dict(cls, data: Any) -> History:
        """Inverse of :meth:`to_dict` (a saved learner state).

        Raises
        ------
        ValueError
            Naming the field that is missing or not of the right type.
        """
        try:
            return cls(
                [float(a) for a in data["train_accuracy"]],
                [(int(w), int(th)) for w, th in data["shifts"]],
                [float(a) for a in data["test_accuracy"]],
                float(data["seconds"]),
                float(data["samples_per_second"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"history: not a learning record ({error!s})") from None


@dataclass
class FitState:
    """Where :func:`fit` stands, enough to continue it bit-exactly.

    Attributes
    ----------
    epoch : int
        Epochs finished, 0..epochs.
    sample : int
        Samples of epoch ``epoch`` learned so far (positions in its shuffled order).
    correct : int
        Of those, the predictions made while learning that were correct.
    rng : dict
        The shuffling generator's ``bit_generator.state`` at the start of epoch ``epoch``.
    history : History
        The finished epochs' record (``seconds`` so far).
    """

    epoch: int
    sample: int
    correct: int
    rng: dict[str, Any]
    history: History

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "sample": self.sample,
            "correct": self.correct,
            "rng": self.rng,
            "history": self.history.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> FitState:
        """Inverse of :meth:`to_dict`, checked.

        Raises
        ------
        ValueError
            Naming the field that is missing or out of range.
        """
        if not isinstance(data, dict):
            raise ValueError("fit: the saved position is not a JSON object")
        numbers = {
            name: check_field(name, data.get(name), minimum=0, maximum=1 << 62)
            for name in ("epoch", "sample", "correct")
        }
        checkpoint.restore_generator(data.get("rng"))
        return cls(**numbers, rng=data["rng"], history=History.from_dict(data.get("history")))


def save_learner(
    directory: str | os.PathLike[str],
    net: IntegerNetwork,
    state: FitState,
    *,
    fields: Mapping[str, Any] | None = None,
) -> Path:
    """Write the learner state of a :func:`fit` run atomically: an integer checkpoint of
    ``net`` (loadable by :meth:`IntegerNetwork.load`) with its accumulators and pending
    count, the LFSR state, and ``learner = {"fit": state, "pending", **fields}``."""
    return net.save(directory, learner={**(fields or {}), "fit": state.to_dict()})


def load_learner(
    directory: str | os.PathLike[str],
) -> tuple[IntegerNetwork, FitState, dict[str, Any]]:
    """Read a learner state written by :func:`save_learner`.

    Returns
    -------
    (IntegerNetwork, FitState, dict)
        The network with its accumulators and pending count, the fit position, and the
        ``learner`` fields.

    Raises
    ------
    FileNotFoundError, ValueError
        As :meth:`IntegerNetwork.load`; naming the field or array of a bad state.
    """
    net = IntegerNetwork.load(directory)
    fields = checkpoint.read_learner_fields(directory, "a learner state")
    expected = {f"dw_{i}": ArraySpec(w.shape, "iu") for i, w in enumerate(net.weights, start=1)}
    expected.update({f"dth_{i}": ArraySpec(v.shape, "iu") for i, v in enumerate(net.thresholds)})
    if net.decoder is not None:
        expected["dd"] = ArraySpec(net.decoder.shape, "iu")
    arrays = checkpoint.read_arrays(directory, expected, name=checkpoint.STATE_NPZ)
    dw, dth = net.formats.stored("DW"), net.formats.stored("DVTH")
    net.dw = [dw.check(f"dw_{i}", arrays[f"dw_{i}"]).astype(np.int64) for i in range(1, len(net.weights) + 1)]
    net.dth = [dth.check(f"dth_{i}", arrays[f"dth_{i}"]).astype(np.int64) for i in range(len(net.thresholds))]
    if net.decoder is not None:
        net.dd = dw.check("dd", arrays["dd"]).astype(np.int64)
    net.pending = check_field("pending", fields.get("pending"), minimum=0, maximum=net.rule.batch - 1)
    return net, FitState.from_dict(fields.get("fit")), fields


def fit(
    net: IntegerNetwork,
    pixels: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    schedule: ShiftSchedule = DEFAULT_SCHEDULE,
    seed: int = 0,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    augmentation: Mapping[str, Any] | None = None,
    image_shape: tuple[int, int, int] | None = None,
    progress: bool = True,
    state: FitState | None = None,
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[FitState], None] | None = None,
) -> History:
    """On-line learning over ``epochs`` shuffled passes, shifts per ``schedule``.

    The run can be saved and continued bit-exactly: ``on_checkpoint(state)`` is called
    before the first sample, after every epoch and every ``checkpoint_every`` samples
    (counted over the whole run), with ``net`` holding the matching weights,
    accumulators, pending count and LFSR state (:func:`save_learner` writes both); the
    same call with that ``state`` and network continues where it stopped.

    Parameters
    ----------
    net : IntegerNetwork
        Learns in place with ``net.rule``'s rounding and batch.
    pixels, labels : numpy.ndarray
        u8 training pixels (N, n_0) and labels (N,).
    epochs : int
        1 or more.
    schedule : ShiftSchedule
        Learning-rate shifts per epoch.
    seed : int
        Seeds the shuffling (host side; the LFSR state is the network's).
    test : (pixels, labels), optional
        Evaluated after every epoch into ``History.test_accuracy``.
    augmentation : mapping, optional
        Keyword arguments of :func:`model.data.augment` (``flip``, ``shift``,
        ``rotate_deg``) applied to every epoch's shuffled samples (host side: nearest-
        neighbour moves of the u8 pixels, drawn from the shuffling generator).
    image_shape : (C, H, W), optional
        The image behind each flat row; required with ``augmentation``.
    progress : bool
        tqdm progress bar on stderr (samples).
    state : FitState, optional
        Where to continue (``net`` must hold the state saved with it).
    checkpoint_every : int
        Samples between mid-epoch calls of ``on_checkpoint``, 0 (epoch ends only) or more.
    on_checkpoint : callable, optional
        ``on_checkpoint(state)``, see above.

    Returns
    -------
    History
        The record of the whole run (``state.history`` continued).
    """
    from tqdm import tqdm

    from model.data import augment

    epochs = check_field("epochs", epochs, minimum=1, maximum=1 << 20)
    seed = check_field("seed", seed, minimum=0, maximum=(1 << 63) - 1)
    p = net.check_pixels(pixels)
    y = net.check_labels(labels, len(p))
    if augmentation is not None and (image_shape is None or math.prod(image_shape) != p.shape[1]):
        raise ValueError(
            f"image_shape: {image_shape!r} must be (C, H, W) holding {p.shape[1]} pixels"
        )
    every = check_field("checkpoint_every", checkpoint_every, minimum=0, maximum=1 << 62)
    n = len(y)
    rng = np.random.default_rng(seed)
    if state is None:
        state = FitState(0, 0, 0, rng.bit_generator.state, History())
        if on_checkpoint is not None:
            on_checkpoint(state)
    elif state.epoch > epochs or state.sample >= n or state.correct > state.sample:
        raise ValueError(
            f"state: epoch {state.epoch}, sample {state.sample} is outside this run "
            f"({epochs} epochs of {n} samples)"
        )
    history = state.history
    bar = tqdm(
        total=epochs * n, initial=state.epoch * n + state.sample, disable=not progress,
        unit="sample", leave=False, mininterval=0.5,
    )
    try:
        for epoch in range(state.epoch, epochs):
            shift_w, shift_th = schedule.shifts(epoch, epochs)
            net.rule = replace(net.rule, shift_w=shift_w, shift_th=shift_th)
            resumed = epoch == state.epoch
            if resumed:
                rng = checkpoint.restore_generator(state.rng)
            start_state = rng.bit_generator.state
            order = rng.permutation(n)
            inputs, targets = p[order], y[order]
            if augmentation is not None:
                images = inputs.reshape(len(inputs), *image_shape)
                inputs = augment(images, rng, **augmentation).reshape(inputs.shape)
            start, correct = (state.sample, state.correct) if resumed else (0, 0)
            while start < n:
                # Up to the next multiple of checkpoint_every over the run, or the epoch's end.
                done = epoch * n + start
                stop = min(n, (done // every + 1) * every - epoch * n) if every else n
                started = time.perf_counter()
                correct += net.learn(
                    inputs[start:stop], targets[start:stop], callback=lambda k, _: bar.update(k)
                )
                if stop == n and epoch == epochs - 1:
                    net.flush()
                history.seconds += time.perf_counter() - started
                start = stop
                if start < n and on_checkpoint is not None:
                    on_checkpoint(FitState(epoch, start, correct, start_state, history))
            history.shifts.append((shift_w, shift_th))
            history.train_accuracy.append(correct / n)
            postfix = {"acc": f"{history.train_accuracy[-1]:.3f}", "s_w": shift_w}
            if test is not None:
                history.test_accuracy.append(net.evaluate(*test)["accuracy"])
                postfix["test"] = f"{history.test_accuracy[-1]:.3f}"
            bar.set_postfix(postfix)
            if on_checkpoint is not None:
                on_checkpoint(FitState(epoch + 1, 0, 0, rng.bit_generator.state, history))
    finally:
        bar.close()
    history.samples_per_second = epochs * len(y) / max(history.seconds, 1e-9)
    return history
