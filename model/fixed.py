"""Fixed-point formats and the integer primitives of the numerics contract (docs/numerics.md).

Every function here is pure and vectorized: integer arrays (or plain Python ints) in,
``int64`` arrays (or ints) out, with the exact saturation and rounding of the RTL. The
integer network (:mod:`model.integer`), the event-driven core model and the per-unit RTL
step functions (:mod:`model.units`) all build on them, so each rule lives in one place:

* :class:`FixedFormat` -- width, fraction bits, signedness; range, LSB, saturation;
* :func:`saturate`, :func:`round_shift` (floor / nearest / stochastic), :func:`reciprocal`,
  :func:`mul_shift` (the exact ``(acc * R) >> K``);
* :func:`fire_scan` (eqs. 2, 8, 14, one step), :func:`fire_steps` (a layer over T steps
  when nothing can saturate), :func:`encode` (the rate-coding encoder over T steps),
  :func:`mux_dv` (eq. 15, one step) and :func:`mux_dv_steps` (all steps at once);
* :func:`integrate_events` (event order, the reference) and :func:`integrate` (fast, exact);
* :func:`accumulate_sequence` and :func:`accumulate_outer` (saturating accumulation in a
  stated order, fast and exact);
* :func:`exact_matmul` (integer dot products through float BLAS where that is exact);
* :class:`LFSR` and :func:`lfsr_step`, the 32-bit Galois LFSR of stochastic rounding.

Values are held in ``int64``; every width used by the contract is at most 62 bits, so no
intermediate here can overflow (the bounds are stated per function).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from model.checks import check_field

__all__ = [
    "LFSR",
    "LFSR_BITS",
    "LFSR_TAPS",
    "MAX_BITS",
    "RESETS",
    "ROUNDINGS",
    "FixedFormat",
    "accumulate_outer",
    "accumulate_sequence",
    "ceil_log2",
    "encode",
    "exact_matmul",
    "fire_scan",
    "fire_steps",
    "integrate",
    "integrate_events",
    "lfsr_step",
    "mul_shift",
    "mux_dv",
    "mux_dv_steps",
    "reciprocal",
    "round_shift",
    "saturate",
    "shift_signed",
    "signed_range",
]

#: Widest integer any contract quantity may have (int64 with headroom for one add).
MAX_BITS = 62
#: Rounding modes of :func:`round_shift`.
ROUNDINGS = ("floor", "nearest", "stochastic")
#: Reset modes of :func:`fire_scan`.
RESETS = ("subtract", "zero")
#: LFSR width and Galois toggle mask (x^32 + x^22 + x^2 + x + 1, right-shifting).
LFSR_BITS = 32
LFSR_TAPS = 0x80200003

IntLike = int | np.integer
ArrayLike = Any


def _is_scalar(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _as_int64(name: str, x: ArrayLike) -> np.ndarray:
    if type(x) is np.ndarray and x.dtype == np.int64:
        return x
    array = np.asarray(x)
    if array.dtype == np.bool_:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name}: expected integers, got dtype {array.dtype}")
    if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: values exceed the int64 range")
    return array.astype(np.int64, copy=False)


def _result(value: np.ndarray, scalar: bool) -> Any:
    return int(value) if scalar else value


def signed_range(bits: int) -> tuple[int, int]:
    """``(-2^(bits-1), 2^(bits-1) - 1)``, the range of a signed ``bits``-bit integer."""
    bits = check_field("bits", bits, minimum=1, maximum=MAX_BITS)
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


@dataclass(frozen=True)
class FixedFormat:
    """A two's-complement or unsigned fixed-point format.

    Parameters
    ----------
    bits : int
        Total width, 1..62 (a signed format needs 2 or more).
    frac : int
        Fraction bits: the LSB is ``2^-frac`` (may exceed ``bits``; may not be negative).
    signed : bool
        Two's complement when true, unsigned otherwise.

    Raises
    ------
    ValueError
        Naming ``bits`` or ``frac`` and the allowed range.
    """

    bits: int
    frac: int = 0
    signed: bool = True

    def __post_init__(self) -> None:
        minimum = 2 if self.signed else 1
        object.__setattr__(self, "bits", check_field("bits", self.bits, minimum=minimum, maximum=MAX_BITS))
        object.__setattr__(self, "frac", check_field("frac", self.frac, minimum=0, maximum=64))
        object.__setattr__(self, "signed", bool(self.signed))

    @property
    def min(self) -> int:
        """Most negative code (0 if unsigned)."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        """Largest code."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def lsb(self) -> float:
        """Value of one LSB, ``2^-frac``."""
        return 2.0 ** -self.frac

    def saturate(self, x: ArrayLike) -> Any:
        """Clamp codes to ``min..max`` (int64 array, or int for a scalar)."""
        scalar = _is_scalar(x)
        return _result(np.clip(_as_int64("x", x), self.min, self.max), scalar)

    def contains(self, x: ArrayLike) -> bool:
        """True when every code of ``x`` lies in ``min..max``."""
        array = _as_int64("x", x)
        return bool(array.size == 0 or (array.min() >= self.min and array.max() <= self.max))

    def check(self, name: str, x: ArrayLike) -> np.ndarray:
        """Return ``x`` as int64 after checking it fits, else ``ValueError`` naming ``name``."""
        array = _as_int64(name, x)
        if not self.contains(array):
            raise ValueError(
                f"{name}: values {array.min()}..{array.max()} do not fit "
                f"{'signed' if self.signed else 'unsigned'} {self.bits} bits "
                f"(allowed {self.min}..{self.max})"
            )
        return array

    def quantize(self, value: ArrayLike) -> np.ndarray:
        """Codes for real values: ``saturate(rint(value * 2^frac))`` (round half to even)."""
        scaled = np.rint(np.asarray(value, dtype=np.float64) * 2.0**self.frac)
        if not np.all(np.isfinite(scaled)):
            raise ValueError("value: must be finite")
        return np.clip(scaled, self.min, self.max).astype(np.int64)

    def to_float(self, codes: ArrayLike) -> np.ndarray:
        """Real values of codes, ``codes * 2^-frac`` (float64)."""
        return _as_int64("codes", codes).astype(np.float64) * self.lsb


@overload
def saturate(x: IntLike, bits: int, *, signed: bool = True) -> int: ...
@overload
def saturate(x: np.ndarray, bits: int, *, signed: bool = True) -> np.ndarray: ...
def saturate(x: ArrayLike, bits: int, *, signed: bool = True) -> Any:
    """Clamp to the signed (``-2^(bits-1)..2^(bits-1)-1``) or unsigned (``0..2^bits-1``) range.

    ``bits`` is 1..62 (2..62 when signed). Returns int64 (an int for a scalar input).
    """
    return FixedFormat(bits, 0, signed).saturate(x)


def round_shift(
    x: ArrayLike, shift: int, rounding: str = "floor", draws: ArrayLike | None = None
) -> Any:
    """Divide by ``2^shift`` with the contract's rounding (section 4.1).

    Parameters
    ----------
    x : int or array of int
        Signed values, at most 61 bits (the rounding add needs one more).
    shift : int
        0..31.
    rounding : str
        ``"floor"``: ``x >> shift``; ``"nearest"`` (ties up): ``(x + 2^(shift-1)) >> shift``,
        ``x`` for ``shift = 0``; ``"stochastic"``: ``(x + r) >> shift`` with ``r`` the
        low ``shift`` bits of ``draws`` (unbiased: ``E = x / 2^shift``).
    draws : int or array of int, optional
        Random words for ``"stochastic"``, broadcastable to ``x`` (LFSR states; only
        their low ``shift`` bits are used).

    Returns
    -------
    int64 array, or int for a scalar ``x``.

    Raises
    ------
    ValueError
        For a bad ``shift``/``rounding``, or ``draws`` missing for stochastic rounding.
    """
    shift = check_field("shift", shift, minimum=0, maximum=31)
    scalar = _is_scalar(x)
    values = _as_int64("x", x)
    if rounding == "floor":
        out = values >> shift
    elif rounding == "nearest":
        out = values if shift == 0 else (values + (1 << (shift - 1))) >> shift
    elif rounding == "stochastic":
        if draws is None:
            raise ValueError("draws: stochastic rounding needs random words (LFSR states)")
        r = _as_int64("draws", draws) & ((1 << shift) - 1)
        out = (values + r) >> shift
    else:
        raise ValueError(f"rounding: {rounding!r} is not one of {', '.join(ROUNDINGS)}")
    return _result(out, scalar)


def shift_signed(x: ArrayLike, shift: int) -> Any:
    """``x * 2^shift`` on the integer grid: ``x << shift`` for ``shift >= 0``, else the
    floor (arithmetic) shift ``x >> -shift``. Returns int64 (an int for a scalar ``x``)."""
    scalar = _is_scalar(x)
    values = _as_int64("x", x)
    out = values << shift if shift >= 0 else values >> -shift
    return _result(out, scalar)


def reciprocal(vth: ArrayLike, k: int) -> Any:
    """The per-channel reciprocal ``R = floor(2^k / vth)`` (unsigned, ``k + 1`` bits).

    Parameters
    ----------
    vth : int or array of int
        Thresholds, 1 or more (``vth = 1`` gives ``2^k``; ``vth > 2^k`` gives 0).
    k : int
        Scale exponent K, 1..30.

    Raises
    ------
    ValueError
        Naming ``vth`` when a threshold is below 1, ``k`` when out of range.
    """
    k = check_field("k", k, minimum=1, maximum=30)
    scalar = _is_scalar(vth)
    values = _as_int64("vth", vth)
    if values.size and values.min() < 1:
        raise ValueError(f"vth: {values.min()} is out of range (allowed 1 or more)")
    return _result(np.int64(1 << k) // values, scalar)


def mul_shift(acc: ArrayLike, r: ArrayLike, k: int) -> Any:
    """Exact ``floor(acc * r / 2^k)`` without a wide intermediate.

    Splits ``acc = hi * 2^k + lo`` (``0 <= lo < 2^k``, arithmetic shift), so that
    ``(acc * r) >> k = hi * r + ((lo * r) >> k)`` exactly (``hi * r * 2^k`` is a multiple
    of ``2^k``). Valid for ``0 <= k <= 30``, ``0 <= r <= 2^31`` (then ``lo * r < 2^61``) and
    ``|acc| * r < 2^(61 + k)`` (then ``|hi * r| < 2^61``); the encoder uses ``k = K - 8 + fw``
    with ``R`` of ``K + 1`` bits, so ``r`` may exceed ``2^k``.

    Raises
    ------
    ValueError
        When ``r`` is negative or above ``2^31``.
    """
    k = check_field("k", k, minimum=0, maximum=30)
    scalar = _is_scalar(acc) and _is_scalar(r)
    a = _as_int64("acc", acc)
    recip = _as_int64("r", r)
    if recip.size and (recip.min() < 0 or recip.max() > 1 << 31):
        raise ValueError(f"r: values must be in 0..{1 << 31}")
    hi = a >> k
    lo = a & ((1 << k) - 1)
    return _result(hi * recip + ((lo * recip) >> k), scalar)


def _check_stored_thresholds(vth: ArrayLike) -> np.ndarray:
    """Thresholds as the fire scan reads them: int64, 0 or more (0 only after a fault)."""
    values = _as_int64("vth", vth)
    if values.size and values.min() < 0:
        raise ValueError(f"vth: {values.min()} is out of range (allowed 0 or more)")
    return values


def fire_scan(
    v: ArrayLike, vth: ArrayLike, *, reset: str = "subtract"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fire scan of one time step (eqs. 2, 8, 14) on integrated membranes.

    Parameters
    ----------
    v : array of int
        Membranes after integration, signed v bits.
    vth : array of int
        Thresholds, 1..2^(v-1)-1, broadcastable to ``v``; 0 only as a faulty stored word
        (:mod:`model.faults`), which fires whenever ``V >= 0`` and has an empty window.
    reset : str
        ``"subtract"`` (``V - S*Vth``, cannot overflow since ``V >= Vth > 0`` when S) or
        ``"zero"`` (``V = 0`` when S).

    Returns
    -------
    (v_next, spikes, window)
        ``v_next`` int64 after the reset; ``spikes = V >= Vth`` and
        ``window = 2|V - Vth| < Vth`` (the eq. 14 window ``|V - Vth| < Vth/2``, exact),
        both bool and computed on V *before* the reset.

    Raises
    ------
    ValueError
        For a bad ``reset`` or a threshold below 1.
    """
    if reset not in RESETS:
        raise ValueError(f"reset: {reset!r} is not one of {', '.join(RESETS)}")
    v = _as_int64("v", v)
    vth = _check_stored_thresholds(vth)
    spikes = v >= vth
    window = 2 * np.abs(v - vth) < vth
    v_next = v - vth * spikes if reset == "subtract" else np.where(spikes, 0, v)
    return v_next, spikes, window


def mux_dv(
    acc: ArrayLike, r: ArrayLike, k: int, window: ArrayLike, dv_next: ArrayLike, bits: int
) -> np.ndarray:
    """The eq. 15 mux: ``sat_bits((acc * R) >> k)`` where ``window``, else ``dv_next``.

    Parameters
    ----------
    acc : array of int
        Exact spatial sums ``sum_j dV_j W_ji`` (or ``e << E`` at the output), < 2^61.
    r : array of int
        Reciprocals ``floor(2^K / Vth)`` of the neurons' thresholds.
    k : int
        The layer's shift (``K``; ``K - 8 + fw`` for the encoder).
    window : array of bool
        The fire scan's ``h`` at this step.
    dv_next : array of int
        ``dV[t+1]`` (0 at t = T).
    bits : int
        dV width g.
    """
    scaled = saturate(mul_shift(acc, r, k), bits)
    return np.where(np.asarray(window, bool), scaled, _as_int64("dv_next", dv_next))


def fire_steps(
    currents: ArrayLike,
    vth: ArrayLike,
    bits: int,
    *,
    reset: str = "subtract",
    bound: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A layer's IF dynamics over T steps when no membrane can saturate (eqs. 2, 8, 14).

    From ``V = 0``: per step ``V += currents[t]`` then :func:`fire_scan`. Every membrane
    lies between ``-sum_t relu(-currents[t])`` and ``sum_t relu(currents[t])`` (the reset
    never raises V and leaves it >= 0 when it fires); this function requires both to be
    at most ``2^(bits-1) - 1`` (checked, or given as ``bound``), so no saturation can occur.
    All values are then integers below ``2^(bits+1)`` in magnitude (``2V`` and ``3 Vth``
    included), which float32 (``bits <= 23``) or float64 (``bits <= 52``) represent
    exactly, so the steps run in that float type -- every add, subtract and compare is
    exact -- and the result equals the integer steps bit for bit.

    Parameters
    ----------
    currents : array, shape (T, ...)
        Exact input sums per step: integers, or floats holding exact integers (e.g.
        :func:`exact_matmul` with ``as_int=False``) together with ``bound``. For a hidden
        layer, callers must also know that no *partial* sum of a step's events
        saturates (see :func:`integrate`).
    vth : array of int
        Thresholds (>= 1; 0 only as a faulty stored word, as :func:`fire_scan`),
        broadcastable to one step.
    bits : int
        Membrane width v.
    reset : str
        ``"subtract"`` or ``"zero"``.
    bound : int, optional
        The caller's bound on ``sum_t relu(+-currents[t])`` per neuron (then not
        recomputed); required for float currents.

    Returns
    -------
    (spikes, windows, last)
        bool (T, ...) ``S[t]`` and ``h[t]``; int64 membranes of the last step before the
        reset.

    Raises
    ------
    ValueError
        When a membrane could saturate, a threshold is negative or ``reset`` is unknown.
    """
    if reset not in RESETS:
        raise ValueError(f"reset: {reset!r} is not one of {', '.join(RESETS)}")
    current = np.asarray(currents)
    if bound is None and not np.issubdtype(current.dtype, np.integer):
        raise ValueError(
            f"currents: expected integers (or a bound with exact floats), got dtype {current.dtype}"
        )
    vth = _check_stored_thresholds(vth)
    _, high = signed_range(bits)
    if bound is None and current.size:
        rise = np.maximum(current, 0).sum(axis=0, dtype=np.int64)
        fall = np.maximum(-current, 0).sum(axis=0, dtype=np.int64)
        bound = int(max(rise.max(), fall.max()))
    if current.size and bound > high:
        raise ValueError(
            f"currents: membranes could exceed {bits} bits (use integrate with saturation)"
        )
    dtype = np.float32 if bits <= 23 else np.float64 if bits <= 52 else np.int64
    drive = current.astype(dtype, copy=False)
    threshold = vth.astype(dtype)
    half = threshold / 2 if dtype != np.int64 else None  # exact: a power-of-two scale
    spikes = np.empty(current.shape, bool)
    windows = np.empty(current.shape, bool)
    v = np.zeros(current.shape[1:], dtype)
    for t in range(len(current)):
        v = v + drive[t]
        above = v - threshold
        spikes[t] = above >= 0
        windows[t] = np.abs(above) < half if half is not None else 2 * np.abs(above) < threshold
        last = v
        v = np.where(spikes[t], above if reset == "subtract" else 0, v)
    return spikes, windows, last.astype(np.int64) if len(current) else v.astype(np.int64)


def encode(
    pixels: ArrayLike, vth: ArrayLike, steps: int, bits: int, *, reset: str = "subtract"
) -> tuple[np.ndarray, np.ndarray]:
    """The encoder layer over T steps: ``V0 = sat_bits(V0 + p)``, then :func:`fire_scan`.

    Without possible saturation (``steps * max(p) <= 2^(bits-1) - 1``, e.g. T <= 128 at
    v = 16) this is :func:`fire_steps` on the constant drive (only of the non-zero pixels
    when most are zero: a zero pixel never reaches a threshold of 1 or more nor its
    window); otherwise
    the steps run one by one with the saturating add.

    Parameters
    ----------
    pixels : array of int, shape (N, n)
        Non-negative inputs (u8 pixels).
    vth : array of int
        Encoder thresholds (>= 1; 0 only as a faulty stored word), broadcastable to (N, n).
    steps : int
        T, 1 or more.
    bits : int
        Membrane width v.

    Returns
    -------
    (spikes, windows)
        bool arrays (T, N, n): ``S[t]`` and the eq. 14 windows ``h[t]``.
    """
    p = _as_int64("pixels", pixels)
    if p.size and p.min() < 0:
        raise ValueError(f"pixels: {p.min()} is out of range (allowed 0 or more)")
    _, high = signed_range(bits)
    bound = steps * int(p.max(initial=0))
    if bound <= high and 2 * np.count_nonzero(p) >= p.size:
        drive = np.broadcast_to(p, (steps, *p.shape))
        spikes, windows, _ = fire_steps(drive, vth, bits, reset=reset, bound=bound)
        return spikes, windows
    if bound <= high:  # mostly zero pixels: only the others (and a faulty 0 threshold) can fire
        thresholds = np.broadcast_to(np.asarray(vth), p.shape)
        where = np.nonzero((p != 0) | (thresholds == 0))
        drive = np.broadcast_to(p[where], (steps, len(where[0])))
        lit_vth = thresholds[where]
        lit = fire_steps(drive, lit_vth, bits, reset=reset, bound=bound)
        spikes = np.zeros((steps, *p.shape), bool)
        windows = np.zeros((steps, *p.shape), bool)
        spikes[(slice(None), *where)] = lit[0]
        windows[(slice(None), *where)] = lit[1]
        return spikes, windows
    spikes = np.empty((steps, *p.shape), bool)
    windows = np.empty((steps, *p.shape), bool)
    v = np.zeros(p.shape, np.int64)
    for t in range(steps):
        v, spikes[t], windows[t] = fire_scan(saturate(v + p, bits), vth, reset=reset)
    return spikes, windows


def mux_dv_steps(
    acc: ArrayLike, r: ArrayLike, k: int, windows: ArrayLike, bits: int
) -> np.ndarray:
    """The eq. 15 mux over all steps, t = T..1, with ``dV[T+1] = 0`` (vectorized over t).

    ``dV[t] = sat_bits((acc[t] * R) >> k)`` where ``windows[t]``, else ``dV[t+1]``; equal to
    :func:`mux_dv` applied for t = T..1. Since the scaled value does not depend on the
    recursion, ``dV[t]`` is the scaled value at the first window step ``t' >= t`` (0 if none).

    Parameters
    ----------
    acc : array of int, shape (T, ...)
        Spatial sums per step.
    r : array of int
        Reciprocals, broadcastable to one step.
    k : int
        The layer's shift.
    windows : array of bool, shape (T, ...)
        ``h`` per step.
    bits : int
        dV width g.

    Returns
    -------
    numpy.ndarray
        int64 dV, shape (T, ...).
    """
    windows = np.asarray(windows, bool)
    scaled = saturate(mul_shift(acc, r, k), bits)
    steps = len(windows)
    index = np.where(windows, np.arange(steps).reshape(-1, *[1] * (windows.ndim - 1)), steps)
    index = np.minimum.accumulate(index[::-1], axis=0)[::-1]  # first window step >= t
    padded = np.concatenate([scaled, np.zeros((1, *scaled.shape[1:]), np.int64)])
    return np.take_along_axis(padded, index, axis=0)


def integrate_events(
    v: ArrayLike, weights: ArrayLike, events: ArrayLike, bits: int
) -> np.ndarray:
    """Reference integration: ``V = sat_bits(V + W[:, i])`` per event ``i``, in the given order.

    Parameters
    ----------
    v : array of int, shape (n_out,)
        Membranes, signed ``bits``.
    weights : array of int, shape (n_out, n_in)
        The layer's weights (column ``i`` is presynaptic neuron ``i``'s fan-out).
    events : sequence of int
        Presynaptic spike indices in arrival order (ascending within a time step).
    bits : int
        Membrane width v.
    """
    low, high = signed_range(bits)
    out = _as_int64("v", v).copy()
    columns = _as_int64("weights", weights)
    for i in np.asarray(events, dtype=np.int64):
        out = np.clip(out + columns[:, i], low, high)
    return out


def exact_matmul(a: ArrayLike, b: ArrayLike, bound: int, *, as_int: bool = True) -> np.ndarray:
    """Integer ``a @ b`` through BLAS when that is exact, else int64 matmul.

    Every partial sum of the product is an integer of magnitude at most ``bound`` (the
    caller's bound on ``sum |a_ik b_kj|``). Integers up to 2^24 (float32) or 2^53
    (float64) are exactly representable, so each floating-point addition is exact in any
    order (BLAS blocking and FMA included); beyond 2^53 the int64 matmul is used.

    Returns
    -------
    numpy.ndarray
        The exact product: int64, or with ``as_int=False`` the float32/float64 array of
        exact integer values that BLAS returned (int64 beyond 2^53).
    """
    if bound <= 1 << 24:
        dtype = np.float32
    elif bound <= 1 << 53:
        dtype = np.float64
    else:
        return _as_int64("a", a) @ _as_int64("b", b)
    product = np.asarray(a, dtype=dtype) @ np.asarray(b, dtype=dtype)
    return product.astype(np.int64) if as_int else product


def integrate(
    v: ArrayLike,
    weights: ArrayLike | Callable[[np.ndarray], np.ndarray],
    spikes: ArrayLike,
    bits: int,
    *,
    positive: np.ndarray | None = None,
    negative: np.ndarray | None = None,
    current: np.ndarray | None = None,
) -> np.ndarray:
    """Fast integration of one time step, bit-identical to :func:`integrate_events`.

    For each sample ``n`` and neuron ``j`` the events of ``spikes[n]`` are applied in
    ascending index order with saturation after each. The exact sum is used when no
    partial sum can leave the range -- checked per (n, j) against
    ``V + sum_i relu(W_ji)`` and ``V - sum_i relu(-W_ji)`` over all inputs, then over the
    inputs that actually spiked -- and the remaining entries are replayed in event order.

    Parameters
    ----------
    v : array of int, shape (N, n_out)
        Membranes, signed ``bits``.
    weights : array of int, shape (n_out, n_in), or callable
        Weights, |W| < 2^(w-1); or, for a layer without a dense weight matrix (a conv
        kernel at every position), ``rows(neurons)`` returning the weights W_ji of the
        given neurons j (len(neurons), n_in), 0 where input i does not reach j (then
        ``positive``, ``negative`` and ``current`` are required).
    spikes : array of bool, shape (N, n_in)
        Presynaptic spikes of this step.
    bits : int
        Membrane width v.
    positive, negative : array of int, shape (n_out,), optional
        ``sum_i relu(W_ji)`` and ``sum_i relu(-W_ji)`` (or bounds of them) if the caller
        caches them.
    current : array of int, shape (N, n_out), optional
        The exact sums ``spikes @ weights.T`` if the caller computed them (e.g. for all
        time steps of a layer in one product).

    Returns
    -------
    numpy.ndarray
        int64 (N, n_out).
    """
    low, high = signed_range(bits)
    v = _as_int64("v", v)
    s = np.asarray(spikes, dtype=bool)
    if callable(weights):
        if positive is None or negative is None or current is None:
            raise ValueError("weights: a row function needs positive, negative and current")
        rows_of = weights
    else:
        w = _as_int64("weights", weights)
        rows_of = w.__getitem__
        if positive is None:
            positive = np.maximum(w, 0).sum(axis=1)
        if negative is None:
            negative = np.maximum(-w, 0).sum(axis=1)
        if current is None:
            bound = int(max(positive.max(initial=0), negative.max(initial=0)))
            current = exact_matmul(s, w.T, bound)
    total = v + current
    risky = (v + positive > high) | (v - negative < low)
    if not risky.any():
        return total
    rows, cols = np.nonzero(risky)
    s_rows = s[rows]
    neurons, inverse = np.unique(cols, return_inverse=True)
    w_cols = rows_of(neurons)[inverse]
    pos = (s_rows * np.maximum(w_cols, 0)).sum(axis=1)
    neg = (s_rows * np.maximum(-w_cols, 0)).sum(axis=1)
    replay = (v[rows, cols] + pos > high) | (v[rows, cols] - neg < low)
    rows, cols, s_rows, w_cols = rows[replay], cols[replay], s_rows[replay], w_cols[replay]
    if rows.size:
        value = v[rows, cols].copy()
        for i in np.flatnonzero(s_rows.any(axis=0)):
            fired = s_rows[:, i]
            value = np.where(fired, np.clip(value + w_cols[:, i], low, high), value)
        total[rows, cols] = value
    return total


def accumulate_sequence(acc: ArrayLike, contributions: ArrayLike, bits: int) -> np.ndarray:
    """Saturating accumulation ``acc = sat_bits(acc + c[m])`` for m = 0, 1, ... in order.

    Fast and exact: the plain sum is used for every element whose running sum cannot
    leave the range (``acc + sum relu(c) <= max`` and ``acc - sum relu(-c) >= min``);
    the other elements are replayed in sequence order.

    Parameters
    ----------
    acc : array of int, shape S
        Accumulators, signed ``bits``.
    contributions : array of int, shape (M, *S)
        The adds in order (zeros for elements not touched at step m); |c| < 2^(62 - log2 M).
    bits : int
        Accumulator width.

    Returns
    -------
    numpy.ndarray
        int64, shape S.
    """
    low, high = signed_range(bits)
    acc = _as_int64("acc", acc)
    c = _as_int64("contributions", contributions)
    if c.shape[1:] != acc.shape:
        raise ValueError(f"contributions: shape {c.shape} does not match acc {acc.shape} per step")
    positive = np.maximum(c, 0).sum(axis=0)
    negative = np.maximum(-c, 0).sum(axis=0)
    out = acc + positive - negative
    risky = (acc + positive > high) | (acc - negative < low)
    if risky.any():
        value = acc[risky]
        for step in c[:, risky]:
            value = np.clip(value + step, low, high)
        out[risky] = value
    return out


def accumulate_outer(acc: ArrayLike, a: ArrayLike, b: ArrayLike, bits: int) -> np.ndarray:
    """Saturating accumulation ``acc = sat_bits(acc + outer(a[m], b[m]))`` for m in order.

    The weight-gradient accumulator of eq. 10: ``a[m]`` are the dV of the postsynaptic
    neurons and ``b[m]`` the presynaptic spikes of step m (samples ascending, t
    descending). The exact sum ``a.T @ b`` is used for every element whose running sum
    cannot leave the range (global check first, then per element with the positive and
    negative parts of the products); the other elements are replayed in order.

    Parameters
    ----------
    acc : array of int, shape (n_a, n_b)
        Accumulators, signed ``bits``.
    a : array of int, shape (M, n_a)
    b : array of int or bool, shape (M, n_b)
    bits : int
        Accumulator width.

    Returns
    -------
    numpy.ndarray
        int64, shape (n_a, n_b).
    """
    low, high = signed_range(bits)
    acc = _as_int64("acc", acc)
    a = _as_int64("a", a)
    b = _as_int64("b", b)
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b) or acc.shape != (a.shape[1], b.shape[1]):
        raise ValueError(
            f"a, b: shapes {a.shape} and {b.shape} do not give acc's shape {acc.shape} "
            "as (M, n_a) and (M, n_b)"
        )
    abs_a, abs_b = np.abs(a), np.abs(b)
    bound = int(abs_a.sum(axis=0).max(initial=0)) * int(abs_b.max(initial=0))
    out = acc + exact_matmul(a.T, b, bound)
    if int(np.abs(acc).max(initial=0)) + bound <= high:
        return out
    pa, na, pb, nb = np.maximum(a, 0), np.maximum(-a, 0), np.maximum(b, 0), np.maximum(-b, 0)
    positive = exact_matmul(pa.T, pb, bound) + exact_matmul(na.T, nb, bound)
    negative = exact_matmul(pa.T, nb, bound) + exact_matmul(na.T, pb, bound)
    risky = (acc + positive > high) | (acc - negative < low)
    if risky.any():
        rows, cols = np.nonzero(risky)
        value = acc[rows, cols]
        for step in range(len(a)):
            value = np.clip(value + a[step, rows] * b[step, cols], low, high)
        out[rows, cols] = value
    return out


# LFSR --------------------------------------------------------------------------------------

_LFSR_MASK = (1 << LFSR_BITS) - 1


def lfsr_step(state: int) -> int:
    """One step of the 32-bit Galois LFSR: ``s >> 1``, xor ``0x80200003`` if the LSB was 1."""
    state = operator.index(state)
    if not 0 < state <= _LFSR_MASK:
        raise ValueError(f"state: {state} is out of range (allowed 1..{_LFSR_MASK})")
    lsb = state & 1
    state >>= 1
    return state ^ LFSR_TAPS if lsb else state


def _apply(columns: np.ndarray, states: np.ndarray) -> np.ndarray:
    """Apply the GF(2) linear map with column images ``columns[b]`` to every state."""
    out = np.zeros_like(states)
    for b in range(LFSR_BITS):
        out ^= ((states >> np.uint64(b)) & np.uint64(1)) * columns[b]
    return out


class _Orbit:
    """The LFSR orbit of ``e_31``: ``u[m] = A^m e_31`` as a growing uint64 table.

    Since ``A e_(b+1) = e_b`` (a right shift of a word whose LSB is 0), ``e_b = A^(31-b) e_31``
    and therefore ``A^k s = XOR over set bits b of s of u[k + 31 - b]``: any window of
    states is a few gathers from this one table.
    """

    def __init__(self) -> None:
        states = [1 << 31]
        for _ in range(63):
            states.append(lfsr_step(states[-1]))
        self.table = np.array(states, dtype=np.uint64)

    def ensure(self, length: int) -> np.ndarray:
        while len(self.table) < length:
            m = len(self.table) - LFSR_BITS  # A^m e_b = u[m + 31 - b] is in the table
            columns = self.table[m + 31 - np.arange(LFSR_BITS)]
            self.table = np.concatenate([self.table[:m], _apply(columns, self.table)])
        return self.table


_ORBIT = _Orbit()


class LFSR:
    """The contract's 32-bit Galois LFSR (section 4.2), stepped once per draw.

    Parameters
    ----------
    state : int
        Current state, 1..2^32-1 (never 0).

    Raises
    ------
    ValueError
        Naming ``state`` when out of range.
    """

    def __init__(self, state: int) -> None:
        state = operator.index(state)
        if not 0 < state <= _LFSR_MASK:
            raise ValueError(f"state: {state} is out of range (allowed 1..{_LFSR_MASK})")
        self._state = state

    @classmethod
    def from_seed(cls, seed: int) -> LFSR:
        """Seed the LFSR: ``state = seed mod 2^32``, with 0 mapped to 1."""
        seed = operator.index(seed)
        return cls((seed & _LFSR_MASK) or 1)

    @property
    def state(self) -> int:
        """The current state (the checkpoint stores it as ``lfsr_state``)."""
        return self._state

    def step(self) -> int:
        """Advance one step and return the new state."""
        self._state = lfsr_step(self._state)
        return self._state

    def draw(self, bits: int) -> int:
        """One draw: step, then the low ``bits`` (0..32) bits of the new state."""
        bits = check_field("bits", bits, minimum=0, maximum=LFSR_BITS)
        return self.step() & ((1 << bits) - 1)

    def states(self, count: int, at: ArrayLike | None = None) -> np.ndarray:
        """The states after steps 1..count (or only at the given 0-based positions), then advance.

        Equivalent to ``count`` calls of :meth:`step` (the result's element ``m`` is the
        state after ``m + 1`` steps), computed by gathers from a cached orbit table.

        Parameters
        ----------
        count : int
            Steps to take, 0 or more.
        at : array of int, optional
            Positions 0..count-1 to return (any order); all positions when omitted.

        Returns
        -------
        numpy.ndarray
            int64 states, shape ``(count,)`` or ``at``'s shape.
        """
        count = operator.index(count)
        if count < 0:
            raise ValueError(f"count: {count} is out of range (allowed 0 or more)")
        positions = np.arange(count) if at is None else np.asarray(at, dtype=np.int64)
        if positions.size and (positions.min() < 0 or positions.max() >= count):
            raise ValueError(f"at: positions must lie in 0..{count - 1}")
        if count == 0:
            return np.zeros(positions.shape, dtype=np.int64)
        table = _ORBIT.ensure(count + LFSR_BITS)
        bits = [b for b in range(LFSR_BITS) if self._state >> b & 1]
        steps = positions + 1
        out = np.zeros(positions.shape, dtype=np.uint64)
        last = np.uint64(0)
        for b in bits:
            out ^= table[steps + (31 - b)]
            last ^= table[count + 31 - b]
        self._state = int(last)
        return out.astype(np.int64)

    def __repr__(self) -> str:
        return f"LFSR(0x{self._state:08x})"


def ceil_log2(n: int) -> int:
    """``ceil(log2 n)`` for n >= 1 (0 for n = 1)."""
    return max(int(n) - 1, 0).bit_length() if n >= 1 else 0

