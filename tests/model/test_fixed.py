"""Primitives of the numerics contract (model/fixed.py) on edge values and random data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.fixed import (
    LFSR,
    LFSR_TAPS,
    FixedFormat,
    accumulate_outer,
    accumulate_sequence,
    encode,
    exact_matmul,
    fire_scan,
    fire_steps,
    integrate,
    integrate_events,
    lfsr_step,
    mul_shift,
    mux_dv,
    mux_dv_steps,
    reciprocal,
    round_shift,
    saturate,
    signed_range,
)

FAST = settings(max_examples=60, deadline=None)


# Formats and saturation ------------------------------------------------------------------


@pytest.mark.parametrize("bits", [2, 8, 16, 24, 48, 62])
def test_saturate_signed_edges(bits: int) -> None:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    values = np.array([low - 1, low, -1, 0, 1, high, high + 1], np.int64)
    expected = np.array([low, low, -1, 0, 1, high, high], np.int64)
    assert np.array_equal(saturate(values, bits), expected)
    assert saturate(high + 5, bits) == high and isinstance(saturate(high + 5, bits), int)
    assert signed_range(bits) == (low, high)


def test_saturate_unsigned_and_format() -> None:
    assert np.array_equal(saturate(np.array([-3, 0, 255, 256]), 8, signed=False), [0, 0, 255, 255])
    fmt = FixedFormat(8, 6)
    assert (fmt.min, fmt.max, fmt.lsb) == (-128, 127, 2**-6)
    assert np.array_equal(fmt.quantize([-3.0, -2.0, 0.5, 1.984375, 5.0]), [-128, -128, 32, 127, 127])
    assert fmt.to_float(np.array([-128, 64])).tolist() == [-2.0, 1.0]
    with pytest.raises(ValueError, match="weights: values 0..200 do not fit signed 8 bits"):
        fmt.check("weights", np.array([0, 200]))


@pytest.mark.parametrize("kwargs, field", [({"bits": 1}, "bits"), ({"bits": 63}, "bits"), ({"bits": 8, "frac": -1}, "frac")])
def test_format_rejects_bad_widths(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        FixedFormat(**kwargs)


# Rounding shifts ---------------------------------------------------------------------------


def test_round_shift_edges() -> None:
    x = np.array([-(1 << 47), -3, -2, -1, 0, 1, 2, 3, (1 << 47) - 1], np.int64)
    assert round_shift(x, 1).tolist() == [-(1 << 46), -2, -1, -1, 0, 0, 1, 1, (1 << 46) - 1]
    # nearest, ties up: -1.5 -> -1, -0.5 -> 0, 0.5 -> 1, 1.5 -> 2
    assert round_shift(x, 1, "nearest").tolist() == [-(1 << 46), -1, -1, 0, 0, 1, 1, 2, 1 << 46]
    for mode in ("floor", "nearest"):
        assert np.array_equal(round_shift(x, 0, mode), x)
    assert round_shift(-1, 31) == -1 and round_shift(-1, 31, "nearest") == 0
    with pytest.raises(ValueError, match="^shift: "):
        round_shift(x, 32)
    with pytest.raises(ValueError, match="^rounding: "):
        round_shift(x, 2, "up")
    with pytest.raises(ValueError, match="^draws: "):
        round_shift(x, 2, "stochastic")


@FAST
@given(st.integers(-(1 << 40), 1 << 40), st.integers(0, 12))
def test_stochastic_rounding_is_exactly_unbiased(x: int, shift: int) -> None:
    # Over every value of the s drawn bits, sum_r floor((x + r) / 2^s) == x exactly.
    draws = np.arange(1 << shift, dtype=np.int64)
    rounded = round_shift(np.full(len(draws), x, np.int64), shift, "stochastic", draws)
    assert int(rounded.sum()) == x
    assert set(rounded.tolist()) <= {x >> shift, (x >> shift) + 1}
    # Only the low s bits of a draw count.
    high_bits = draws + (np.int64(0x5A5A) << 40)
    assert np.array_equal(round_shift(np.full(len(draws), x), shift, "stochastic", high_bits), rounded)


# Reciprocal and scaled products --------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 8, 16, 30])
def test_reciprocal_edges(k: int) -> None:
    assert reciprocal(1, k) == 1 << k
    assert reciprocal(2, k) == 1 << (k - 1)
    assert reciprocal((1 << k) + 1, k) == 0
    assert reciprocal((1 << 31) - 1, k) == 0
    assert reciprocal(np.array([3]), k).tolist() == [(1 << k) // 3]


def test_reciprocal_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="^vth: 0 is out of range"):
        reciprocal(np.array([5, 0]), 16)
    with pytest.raises(ValueError, match="^k: "):
        reciprocal(5, 31)


@FAST
@given(st.integers(1, (1 << 31) - 1), st.integers(1, 30))
def test_reciprocal_is_floor_division(vth: int, k: int) -> None:
    assert reciprocal(vth, k) == (1 << k) // vth


@FAST
@given(st.integers(-(1 << 47), (1 << 47) - 1), st.integers(1, 24), st.integers(0, 1 << 13))
def test_mul_shift_is_exact(acc: int, k: int, vth: int) -> None:
    r = reciprocal(max(vth, 1), k)
    assert mul_shift(acc, r, k) == (acc * r) >> k
    assert mul_shift(np.array([acc]), np.array([r]), k).tolist() == [(acc * r) >> k]


def test_mul_shift_extremes() -> None:
    acc = np.array([-(1 << 60), (1 << 60) - 1, -1, 0], np.int64)
    got = mul_shift(acc, 1 << 10, 30)
    assert got.tolist() == [(int(a) << 10) >> 30 for a in acc]
    with pytest.raises(ValueError, match="^r: "):
        mul_shift(acc, -1, 16)


# Fire scan and mux -------------------------------------------------------------------------


def test_fire_scan_edges() -> None:
    vth = 33  # odd: the window 2|V - Vth| < Vth is |V - 33| <= 16
    v = np.array([-(1 << 15), 0, 16, 17, 32, 33, 49, 50, 66, (1 << 15) - 1])
    after, spikes, window = fire_scan(v, vth)
    assert spikes.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert window.tolist() == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    assert np.array_equal(after, v - 33 * spikes)
    zero, _, _ = fire_scan(v, vth, reset="zero")
    assert np.array_equal(zero, np.where(spikes, 0, v))
    # Vth = 1: the window holds V == 1 only.
    _, s1, h1 = fire_scan(np.array([0, 1, 2]), 1)
    assert s1.tolist() == [0, 1, 1] and h1.tolist() == [0, 1, 0]
    # Vth = 0 (a faulty stored word): fires whenever V >= 0, never in the window.
    after0, s0, h0 = fire_scan(np.array([-1, 0, 5]), 0)
    assert s0.tolist() == [0, 1, 1] and h0.tolist() == [0, 0, 0] and after0.tolist() == [-1, 0, 5]
    with pytest.raises(ValueError, match="^vth: -1 is out of range"):
        fire_scan(v, -1)
    with pytest.raises(ValueError, match="^reset: "):
        fire_scan(v, 3, reset="hold")


def test_mux_dv_saturates_and_holds() -> None:
    acc = np.array([1 << 30, -(1 << 30), 100, 100])
    window = np.array([True, True, True, False])
    out = mux_dv(acc, 1 << 16, 16, window, np.array([0, 0, 0, -7]), 16)
    assert out.tolist() == [32767, -32768, 100, -7]


@FAST
@given(st.integers(1, 9), st.integers(1, 6), st.integers(4, 16), st.integers(0, 2**32 - 1))
def test_mux_dv_steps_equals_step_by_step(steps: int, n: int, bits: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(1 << 30), 1 << 30, (steps, n))
    r = reciprocal(rng.integers(1, 200, n), 12)
    windows = rng.random((steps, n)) < 0.4
    dv = np.zeros(n, np.int64)
    expected = np.zeros((steps, n), np.int64)
    for t in range(steps - 1, -1, -1):
        dv = mux_dv(acc[t], r, 12, windows[t], dv, bits)
        expected[t] = dv
    assert np.array_equal(mux_dv_steps(acc, r, 12, windows, bits), expected)


@FAST
@given(st.integers(1, 12), st.sampled_from([8, 16, 23, 24, 30]), st.sampled_from(["subtract", "zero"]), st.integers(0, 2**32 - 1))
def test_fire_steps_equals_step_by_step(steps: int, bits: int, reset: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    top = ((1 << (bits - 1)) - 1) // steps  # the largest |current| that cannot saturate
    currents = rng.integers(-top, top + 1, (steps, 4, 5))
    vth = rng.integers(1, max(2, top), 5)
    spikes, windows, last = fire_steps(currents, vth, bits, reset=reset)
    v = np.zeros((4, 5), np.int64)
    for t in range(steps):
        before = v + currents[t]
        v, s, h = fire_scan(before, vth, reset=reset)
        assert np.array_equal(spikes[t], s) and np.array_equal(windows[t], h)
    assert np.array_equal(last, before)
    floats = fire_steps(currents.astype(np.float64), vth, bits, reset=reset, bound=(1 << (bits - 1)) - 1)
    assert all(np.array_equal(a, b) for a, b in zip(floats, (spikes, windows, last)))


def test_fire_steps_refuses_possible_saturation() -> None:
    # rise 100 and fall 28 both fit 8 bits (their sum 128 does not): V = 100, 95 - 28 = 67
    assert fire_steps(np.array([[100], [-28]]), np.array([5]), 8)[2].tolist() == [67]
    with pytest.raises(ValueError, match="^currents: membranes could exceed 8 bits"):
        fire_steps(np.array([[100], [28]]), np.array([5]), 8)
    with pytest.raises(ValueError, match="^currents: expected integers"):
        fire_steps(np.array([[1.0]]), np.array([5]), 8)


@FAST
@given(st.integers(1, 40), st.integers(9, 16), st.sampled_from(["subtract", "zero"]), st.integers(0, 2**32 - 1))
def test_encode_equals_step_by_step(steps: int, bits: int, reset: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (3, 7))
    if seed % 2:  # mostly zero pixels (the gathered path)
        pixels[rng.random((3, 7)) < 0.8] = 0
    pixels[0, :3] = [0, 255, 1]
    vth = rng.integers(1, 300, 7)
    vth[:2] = [1, 255]
    v = np.zeros((3, 7), np.int64)
    for t, (spikes, windows) in enumerate(zip(*encode(pixels, vth, steps, bits, reset=reset))):
        v, s, h = fire_scan(saturate(v + pixels, bits), vth, reset=reset)
        assert np.array_equal(spikes, s) and np.array_equal(windows, h), t


# Integration and accumulation: fast == event order -----------------------------------------

_SHAPES = st.tuples(st.integers(1, 6), st.integers(1, 9), st.integers(1, 9))


@FAST
@given(_SHAPES, st.integers(3, 12), st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_integrate_matches_event_order(shape: tuple, bits: int, seed: int, density: float) -> None:
    batch, n_out, n_in = shape
    rng = np.random.default_rng(seed)
    low, high = signed_range(bits)
    w = rng.integers(low, high + 1, (n_out, n_in))
    v = rng.integers(low, high + 1, (batch, n_out))
    s = rng.random((batch, n_in)) < density
    fast = integrate(v, w, s, bits)
    for n in range(batch):
        assert np.array_equal(fast[n], integrate_events(v[n], w, np.flatnonzero(s[n]), bits))


def test_integrate_order_matters_and_silent_input() -> None:
    w = np.array([[7, -7]])
    # ascending: 5 + 7 -> 7 (sat), 7 - 7 -> 0; the plain sum would give 5
    assert integrate(np.array([[5]]), w, np.array([[True, True]]), 4).tolist() == [[0]]
    v = np.array([[3], [-8]])
    assert np.array_equal(integrate(v, w, np.zeros((2, 2), bool), 4), v)


@FAST
@given(st.integers(1, 12), st.integers(1, 5), st.integers(4, 16), st.integers(0, 2**32 - 1))
def test_accumulate_sequence_matches_loop(steps: int, n: int, bits: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    low, high = signed_range(bits)
    acc = rng.integers(low, high + 1, n)
    adds = rng.integers(low // 2, high // 2 + 1, (steps, n))
    expected = acc.copy()
    for step in adds:
        expected = np.clip(expected + step, low, high)
    assert np.array_equal(accumulate_sequence(acc, adds, bits), expected)


@FAST
@given(st.integers(1, 10), st.integers(1, 5), st.integers(1, 5), st.integers(4, 16), st.integers(0, 2**32 - 1))
def test_accumulate_outer_matches_loop(steps: int, n_a: int, n_b: int, bits: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    low, high = signed_range(bits)
    acc = rng.integers(low, high + 1, (n_a, n_b))
    a = rng.integers(low, high + 1, (steps, n_a))
    b = rng.random((steps, n_b)) < 0.6
    expected = acc.copy()
    for m in range(steps):
        expected = np.clip(expected + np.outer(a[m], b[m]), low, high)
    assert np.array_equal(accumulate_outer(acc, a, b, bits), expected)


def test_exact_matmul_beyond_float64() -> None:
    a = np.array([[(1 << 40) + 1, (1 << 40) + 3]])
    b = np.array([[(1 << 20) + 1], [(1 << 20) - 1]])
    exact = int(a[0, 0]) * int(b[0, 0]) + int(a[0, 1]) * int(b[1, 0])
    assert exact_matmul(a, b, 1 << 62)[0, 0] == exact
    assert exact_matmul(np.array([[1, 1]]), np.array([[3], [4]]), 7)[0, 0] == 7


# LFSR ---------------------------------------------------------------------------------------


def test_lfsr_step_and_seeding() -> None:
    assert lfsr_step(1) == LFSR_TAPS  # LSB set: shift out, xor the mask
    assert lfsr_step(2) == 1
    assert LFSR.from_seed(0).state == 1
    assert LFSR.from_seed(1 << 32).state == 1
    assert LFSR.from_seed((1 << 32) + 5).state == 5
    with pytest.raises(ValueError, match="^state: "):
        LFSR(0)
    lfsr = LFSR(0xFFFFFFFF)
    state = lfsr_step(0xFFFFFFFF)
    assert lfsr.draw(4) == state & 15 and lfsr.state == state


def test_lfsr_is_maximal_length() -> None:
    # x^32 + x^22 + x^2 + x + 1 is primitive: A^(2^32-1) = I and A^((2^32-1)/q) != I
    # for every prime factor q of 2^32 - 1 = 3 * 5 * 17 * 257 * 65537.
    def apply(columns: list[int], state: int) -> int:
        out = 0
        for b in range(32):
            if state >> b & 1:
                out ^= columns[b]
        return out

    def power(columns: list[int], n: int) -> list[int]:
        result = [1 << b for b in range(32)]
        while n:
            if n & 1:
                result = [apply(columns, c) for c in result]
            columns = [apply(columns, c) for c in columns]
            n >>= 1
        return result

    step = [lfsr_step(1 << b) for b in range(32)]
    identity = [1 << b for b in range(32)]
    period = (1 << 32) - 1
    assert power(step, period) == identity
    for q in (3, 5, 17, 257, 65537):
        assert power(step, period // q) != identity


@FAST
@given(st.integers(1, 2**32 - 1), st.integers(0, 3000))
def test_lfsr_states_equal_sequential_steps(seed: int, count: int) -> None:
    fast, slow = LFSR(seed), LFSR(seed)
    sequence = [slow.step() for _ in range(count)]
    assert fast.states(count).tolist() == sequence
    assert fast.state == slow.state
    picked = LFSR(seed)
    at = np.arange(count)[::-7]
    assert picked.states(count, at=at).tolist() == [sequence[i] for i in at]
    assert picked.state == slow.state
