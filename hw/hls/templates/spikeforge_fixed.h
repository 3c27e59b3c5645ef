// spikeforge_fixed.h: the numerics contract (docs/numerics.md) in C++, implemented once.
//
// Exact-width storage types, saturation, the rounding shifts (floor / nearest / stochastic),
// the contract's 32-bit Galois LFSR, the reciprocal R = floor(2^K / Vth), the exact
// (acc * R) >> K, the fire scan (eqs. 2, 8, 14) and the eq. 15 mux. Every function is pure;
// intermediates are int64_t, which holds every contract quantity (at most 62 bits, section 1).
// Plain C++ (g++, clang++): no vendor headers. Define SPIKEFORGE_AP_TYPES to store values in
// the Vitis HLS ap_int / ap_uint types instead of the portable ones below.
#ifndef SPIKEFORGE_FIXED_H
#define SPIKEFORGE_FIXED_H

#include <stdint.h>

// HLS directives: emitted for synthesis (__SYNTHESIS__ is defined by the HLS compiler),
// empty for C simulation and plain compilers (no unknown-pragma warnings).
#if defined(__SYNTHESIS__)
#define SPIKEFORGE_HLS(directive) _Pragma(#directive)
#else
#define SPIKEFORGE_HLS(directive)
#endif

#ifdef SPIKEFORGE_AP_TYPES
#include <ap_int.h>
#endif

namespace spikeforge {

#ifdef SPIKEFORGE_AP_TYPES
template <int W>
using s_int = ap_int<W>;
template <int W>
using u_int = ap_uint<W>;
#else
// The smallest C integer of at least W bits: storage of the portable types below.
template <bool CONDITION, class A, class B>
struct pick {
  typedef A type;
};
template <class A, class B>
struct pick<false, A, B> {
  typedef B type;
};
template <int W, class I8, class I16, class I32, class I64>
struct smallest {
  typedef typename pick<(W <= 8), I8,
                        typename pick<(W <= 16), I16, typename pick<(W <= 32), I32, I64>::type>::type>::type
      type;
};

// Signed W-bit integer (2..63 bits) in the smallest C integer that holds it; a stored
// value wraps to W bits (two's complement), like ap_int<W>. The datapath saturates before
// every store, so the wrap never changes a value; it is computed in the storage width.
template <int W>
class s_int {
  static_assert(W >= 2 && W <= 63, "s_int: 2..63 bits");
  typedef typename smallest<W, int8_t, int16_t, int32_t, int64_t>::type storage;
  typedef typename smallest<W, uint8_t, uint16_t, uint32_t, uint64_t>::type bits;
  static constexpr int SPARE = 8 * static_cast<int>(sizeof(storage)) - W;

 public:
  constexpr s_int() : value_(0) {}
  constexpr s_int(int64_t x)  // NOLINT: implicit, like ap_int
      : value_(static_cast<storage>(
            static_cast<storage>(static_cast<bits>(static_cast<bits>(x) << SPARE)) >> SPARE)) {}
  constexpr operator int64_t() const { return value_; }

 private:
  storage value_;
};

// Unsigned W-bit integer (1..63 bits) in the smallest C integer that holds it; a stored
// value wraps modulo 2^W, like ap_uint<W>.
template <int W>
class u_int {
  static_assert(W >= 1 && W <= 63, "u_int: 1..63 bits");
  typedef typename smallest<W, uint8_t, uint16_t, uint32_t, uint64_t>::type storage;
  static constexpr storage MASK = static_cast<storage>(~uint64_t(0) >> (64 - W));

 public:
  constexpr u_int() : value_(0) {}
  constexpr u_int(int64_t x)  // NOLINT: implicit, like ap_uint
      : value_(static_cast<storage>(static_cast<storage>(x) & MASK)) {}
  constexpr operator int64_t() const { return static_cast<int64_t>(value_); }

 private:
  storage value_;
};
#endif

// A stored value as int64_t, the width every computation below uses.
template <class T>
constexpr int64_t wide(const T& x) {
  return static_cast<int64_t>(x);
}

// sat_n: clamp to the signed BITS-bit range [-2^(BITS-1), 2^(BITS-1) - 1].
template <int BITS>
constexpr int64_t saturate(int64_t x) {
  return x < -(int64_t(1) << (BITS - 1))      ? -(int64_t(1) << (BITS - 1))
         : x > (int64_t(1) << (BITS - 1)) - 1 ? (int64_t(1) << (BITS - 1)) - 1
                                               : x;
}

// Clamp to low..high (thresholds: 1..2^(v-1)-1).
constexpr int64_t clamp(int64_t x, int64_t low, int64_t high) {
  return x < low ? low : x > high ? high : x;
}

// Rounding of round_shift (section 4.1).
enum Rounding { ROUND_FLOOR = 0, ROUND_NEAREST = 1, ROUND_STOCHASTIC = 2 };

// round_shift(x, s), s = 0..31: floor x >> s; nearest (ties up) (x + 2^(s-1)) >> s (x for
// s = 0); stochastic (x + r) >> s with r the low s bits of draw (an LFSR state).
template <Rounding ROUNDING>
inline int64_t round_shift(int64_t x, int shift, uint32_t draw) {
  if (ROUNDING == ROUND_NEAREST) {
    return shift == 0 ? x : (x + (int64_t(1) << (shift - 1))) >> shift;
  }
  if (ROUNDING == ROUND_STOCHASTIC) {
    return (x + static_cast<int64_t>(draw & ((uint64_t(1) << shift) - 1))) >> shift;
  }
  return x >> shift;
}

// The 32-bit Galois LFSR, right-shifting, toggle mask x^32 + x^22 + x^2 + x + 1 (section 4.2).
constexpr uint32_t LFSR_TAPS = 0x80200003u;

constexpr uint32_t lfsr_step(uint32_t state) {
  return (state >> 1) ^ ((state & 1u) ? LFSR_TAPS : 0u);
}

// The LFSR is linear over GF(2): the state after n steps is M^n s, M^n's column b being n
// steps from state 2^b. lfsr_jump applies such a matrix (tabulated from lfsr_step).
struct LfsrJump {
  uint32_t column[32];
};

constexpr LfsrJump lfsr_jump_table(int steps) {
  LfsrJump jump{};
  for (int b = 0; b < 32; ++b) {
    uint32_t state = uint32_t(1) << b;
    for (int n = 0; n < steps; ++n) state = lfsr_step(state);
    jump.column[b] = state;
  }
  return jump;
}

inline uint32_t lfsr_jump(const LfsrJump& jump, uint32_t state) {
  uint32_t out = 0;
  for (int b = 0; b < 32; ++b) {
    SPIKEFORGE_HLS(HLS UNROLL)
    out ^= ((state >> b) & 1u) ? jump.column[b] : 0u;
  }
  return out;
}

// x * 2^shift on the integer grid: x << shift for shift >= 0, else the floor shift x >> -shift.
constexpr int64_t shift_signed(int64_t x, int shift) {
  return shift >= 0 ? static_cast<int64_t>(static_cast<uint64_t>(x) << shift) : x >> -shift;
}

// R = floor(2^k / vth), vth >= 1 (K + 1 bits unsigned).
inline int64_t reciprocal(int64_t vth, int k) {
  return (int64_t(1) << k) / vth;
}

// Exact floor(acc * r / 2^k): acc = hi 2^k + lo (0 <= lo < 2^k) gives hi r + ((lo r) >> k)
// without a wide product (0 <= k <= 30, 0 <= r <= 2^31, |acc| r < 2^(61 + k)).
inline int64_t mul_shift(int64_t acc, int64_t r, int k) {
  const int64_t hi = acc >> k;
  const int64_t lo = acc & ((int64_t(1) << k) - 1);
  return hi * r + ((lo * r) >> k);
}

// The fire scan of one neuron at one step on its integrated membrane v (eqs. 2, 8, 14):
// spike S = v >= vth, window h = 2|v - vth| < vth (on v before the reset), next membrane
// v - S vth (reset by subtraction) or 0 if S (reset to zero).
struct Fire {
  bool spike;
  bool window;
  int64_t next;
};

template <bool RESET_TO_ZERO>
inline Fire fire_scan(int64_t v, int64_t vth) {
  const int64_t above = v - vth;
  Fire out;
  out.spike = above >= 0;
  out.window = 2 * (above < 0 ? -above : above) < vth;
  out.next = out.spike ? (RESET_TO_ZERO ? 0 : above) : v;
  return out;
}

// The eq. 15 mux: dV[t] = sat_g((acc * R) >> k) where the window h is 1, else dV[t+1].
template <int G_BITS>
inline int64_t mux_dv(bool window, int64_t acc, int64_t r, int k, int64_t dv_next) {
  return window ? saturate<G_BITS>(mul_shift(acc, r, k)) : dv_next;
}

}  // namespace spikeforge

#endif  // SPIKEFORGE_FIXED_H
