// spikeforge_core.h: one sample of the learning core (docs/numerics.md sections 2-4).
//
// Forward pass (integration in ascending event order, fire scan), readout and prediction,
// backward pass (output error, spatial sums, eq. 15 mux, eq. 10/11 accumulators) and the
// update every BATCH samples (rounding shifts, LFSR draws in the contract's order, threshold
// floor at 1 LSB, reciprocals). Sizes, formats and switches come from parameters.h.
//
// Memory layout (docs/hls.md): per-neuron memories (V, S, h, dV) hold the spiking layers
// 0..L one after the other, layer l from NEURON_BASE[l] (a multiple of LANES); per-channel
// memories (Vth, R, dVth) hold their threshold channels from CHANNEL_BASE[l]; the weight
// memory holds, per layer l = 1..L from WEIGHT_BASE[l], ROWS[l] rows of ROW_WORDS[l] words of
// LANES values: FC, one row per input i (its fan-out weights W_ji, j ascending); conv 3x3,
// one row per kernel tap (c, i, j) (row 9 c + 3 i + j: the weights of the C_out output
// channels, o ascending). AP2 layers hold nothing: a spike of (c, y, x) of layer SOURCE[l]
// enters layer l at the position (c, y >> POOL[l], x >> POOL[l]) of layer l - 1 (docs/
// numerics.md section 2.2). The fc decoder's D follows from
// DECODER_BASE as one more block: DECODER_ROWS = T n_L rows (row t n_L + j: output neuron j's
// spike at step t + 1) of DECODER_WORDS words, one value per class. Arrays are partitioned cyclically by
// LANES (one bank per lane), and every loop over a layer's neurons is unrolled by LANES, so
// each iteration touches one word: lane j % LANES of every bank (a conv event's targets of
// one tap are the C_out channels of one position, lanes apart by H W). Padding lanes (past
// a layer's size) are never read or written.
#ifndef SPIKEFORGE_CORE_H
#define SPIKEFORGE_CORE_H

#include "parameters.h"

namespace spikeforge {

// Layer kinds (KIND in parameters.h; the encoder is KIND_FC).
enum LayerKind { KIND_FC = 0, KIND_CONV = 1, KIND_POOL = 2 };

// Operations of one call of the top function.
enum Mode { MODE_INFER = 0, MODE_LEARN = 1, MODE_FLUSH = 2 };

// Row r of layer l's weight block (FC: input r; conv: kernel tap r = 9 c + 3 i + j).
inline int weight_row(int l, int r) {
  return WEIGHT_BASE[l] + r * ROW_WORDS[l] * LANES;
}

// The threshold channel (per-channel memory address) of neuron n of spiking layer l.
inline int channel_of(int l, int n) {
  return CHANNEL_BASE[l] + n / POSITIONS[l];
}

// The input position of layer l (a position of layer l - 1) where spike i of its source layer
// SOURCE[l] enters: (c, y >> k, x >> k) behind k = POOL[l] AP2 layers, i itself for none.
inline int input_position(int l, int i) {
  const int k = POOL[l];
  if (k == 0) return i;
  const int s = SOURCE[l];
  const int plane = HEIGHT[s] * WIDTH[s];
  const int c = i / plane;
  const int y = (i % plane) / WIDTH[s];
  const int x = i % WIDTH[s];
  return (c * HEIGHT[l - 1] + (y >> k)) * WIDTH[l - 1] + (x >> k);
}

// Calls visit(m) for each spike of layer l's source at step t, in ascending index of the
// source layer (section 2.2's event order), with m its input position.
template <class Visit>
inline void for_each_event(const bool spike[TIMESTEPS][N_TOTAL], int t, int l, Visit visit) {
  const int below = NEURON_BASE[SOURCE[l]];
  for (int i = 0; i < NEURONS[SOURCE[l]]; ++i) {
    SPIKEFORGE_HLS(HLS LOOP_TRIPCOUNT min=1 max=MAX_NEURONS)
    if (spike[t][below + i]) visit(input_position(l, i));
  }
}

// The address pattern of one input event at position m of spiking layer l: calls
// visit(neuron, word) for each target neuron (per-neuron memory address) and the weight
// (weight memory address) linking them. FC: every neuron j of the layer, word j of row m.
// Conv 3x3: for each tap (i, j) in row-major order whose target (y, x) = (p + 1 - i,
// q + 1 - j) of the event at (c, p, q) lies inside the image, row 9 c + 3 i + j's word o for
// neuron (o, y, x), o ascending. A neuron is visited at most once per event.
template <class Visit>
inline void for_each_target(int l, int m, Visit visit) {
  const int base = NEURON_BASE[l];
  if (KIND[l] != KIND_CONV) {
    const int row = weight_row(l, m);
    for (int j = 0; j < NEURONS[l]; ++j) {
      SPIKEFORGE_HLS(HLS LOOP_TRIPCOUNT min=1 max=MAX_NEURONS)
      SPIKEFORGE_HLS(HLS PIPELINE II=1)
      SPIKEFORGE_HLS(HLS UNROLL factor=LANES)
      visit(base + j, row + j);
    }
    return;
  }
  const int height = HEIGHT[l];
  const int width = WIDTH[l];
  const int plane = height * width;
  const int c = m / plane;
  const int p = (m % plane) / width;
  const int q = m % width;
  for (int tap = 0; tap < 9; ++tap) {
    const int y = p + 1 - tap / 3;
    const int x = q + 1 - tap % 3;
    if (y < 0 || y >= height || x < 0 || x >= width) continue;  // zero padding: no add
    const int row = weight_row(l, 9 * c + tap);
    const int target = base + y * width + x;
    for (int o = 0; o < OUTS[l]; ++o) {
      SPIKEFORGE_HLS(HLS LOOP_TRIPCOUNT min=1 max=MAX_OUTS)
      SPIKEFORGE_HLS(HLS PIPELINE II=1)
      visit(target + o * plane, row + o);
    }
  }
}

// Row t n_L + j of the fc decoder's block (output neuron j at step t + 1).
inline int decoder_row(int t, int j) {
  return DECODER_BASE + (t * NEURONS[LAYERS] + j) * DECODER_WORDS * LANES;
}

// Calls visit(row) with the fc decoder row of each output spike at step t + 1, j ascending.
template <class Visit>
inline void for_each_decoder_row(const bool spike[TIMESTEPS][N_TOTAL], int t, Visit visit) {
  for (int j = 0; j < NEURONS[LAYERS]; ++j) {
    SPIKEFORGE_HLS(HLS LOOP_TRIPCOUNT min=1 max=MAX_NEURONS)
    if (spike[t][NEURON_BASE[LAYERS] + j]) visit(decoder_row(t, j));
  }
}

// Forward pass of one sample (section 2) and its readout (2.1). Records S and h per step
// and neuron; returns the class counts (fc decoder: the decoded sums a_c), the spikes of
// each layer and the prediction.
inline void forward(const pixel_t pixels[NEURONS[0]], const weight_t weights[W_TOTAL],
                    const threshold_t thresholds[N_TOTAL], membrane_t v[N_TOTAL],
                    bool spike[TIMESTEPS][N_TOTAL], bool window[TIMESTEPS][N_TOTAL],
                    count_t counts[CLASSES], spikes_t layer_spikes[LAYERS + 1],
                    class_t& prediction) {
  int64_t fired[LAYERS + 1];
  int64_t membrane[CLASSES];  // class membrane at t = T before the reset (tie-break)
  int64_t count[CLASSES];
  for (int l = 0; l <= LAYERS; ++l) fired[l] = 0;
  for (int c = 0; c < CLASSES; ++c) membrane[c] = count[c] = 0;
  for (int n = 0; n < N_TOTAL; ++n) {
    SPIKEFORGE_HLS(HLS PIPELINE II=1)
    SPIKEFORGE_HLS(HLS UNROLL factor=LANES)
    v[n] = 0;
  }
  for (int t = 0; t < TIMESTEPS; ++t) {
    // Encoder: V0 = sat_v(V0 + p), then the fire scan.
    for (int i = 0; i < NEURONS[0]; ++i) {
      SPIKEFORGE_HLS(HLS PIPELINE II=1)
      SPIKEFORGE_HLS(HLS UNROLL factor=LANES)
      const Fire f = fire_scan<RESET_TO_ZERO>(saturate<V_BITS>(wide(v[i]) + wide(pixels[i])),
                                              wide(thresholds[channel_of(0, i)]));
      v[i] = f.next;
      spike[t][i] = f.spike;
      window[t][i] = f.window;
      fired[0] += f.spike;
    }
    for (int l = 1; l <= LAYERS; ++l) {
      if (KIND[l] == KIND_POOL) continue;  // no neurons: its spikes are its source's
      const int base = NEURON_BASE[l];
      const int size = NEURONS[l];
      // Integrate: each source spike event, ascending, adds its targets' weights,
      // saturating after each add.
      for_each_event(spike, t, l, [&](int m) {
        for_each_target(l, m, [&](int n, int word) {
          v[n] = saturate<V_BITS>(wide(v[n]) + wide(weights[word]));
        });
      });
      // Fire scan on the integrated membranes.
      for (int j = 0; j < size; ++j) {
        SPIKEFORGE_HLS(HLS LOOP_TRIPCOUNT min=1 max=MAX_NEURONS)
        SPIKEFORGE_HLS(HLS PIPELINE II=1)
        SPIKEFORGE_HLS(HLS UNROLL factor=LANES)
        const int64_t integrated = wide(v[base + j]);
        const Fire f = fire_scan<RESET_TO_ZERO>(integrated, wide(thresholds[channel_of(l, j)]));
        v[base + j] = f.next;
        spike[t][base + j] = f.spike;
        window[t][base + j] = f.window;
        fired[l] += f.spike;
        if (l == LAYERS && !FC_DECODER) {
          const int c = j / POPULATION;
          if (t == TIMESTEPS - 1) membrane[c] += integrated;
          if (RATE_DECODER || t == TIMESTEPS - 1) count[c] += f.spike;
        }
      }
    }
    // fc decoder: each output spike adds its D row (one value per class).
    if (FC_DECODER) {
      for_each_decoder_row(spike, t, [&](int row) {
        for (int c = 0; c < CLASSES; ++c) {
          SPIKEFORGE_HLS(HLS PIPELINE II=1)
          SPIKEFORGE_HLS(HLS UNROLL factor=LANES)
          count[c] += wide(weights[row + c]);
        }
      });
    }
  }
  // Prediction: the largest count, then the largest class membrane (not for the fc decoder,
  // whose output layer has no classes), then the lowest index.
  int best = 0;
  for (int c = 0; c < CLASSES; ++c) {
    counts[c] = count[c];
    const bool tie = count[c] == count[best] && !FC_DECODER && membrane[c] > membrane[best];
    if (count[c] > count[best] || tie) best = c;
  }
  for (int l = 0; l <= LAYERS; ++l) layer_spikes[l] = fired[KIND[l] == KIND_POOL ? SOURCE[l] : l];
  prediction = best;
}

// The spatial sum of neuron i of spiking layer l (section 3.2): sum_j dV_j W_j,m(i), exact,
// over the targets j of i's event in the layer its spikes reach (CONSUMER[l]): FC, row m(i)
// of its weights; conv, the transposed kernel over the in-image 3x3 neighbourhood. Behind
// AP2 layers every neuron of a window has the same input position m(i), so the same sum.
inline int64_t spatial_sum(int l, int i, const weight_t weights[W_TOTAL], const dv_t dv[N_TOTAL]) {
  const int above = CONSUMER[l];
  int64_t acc = 0;
  for_each_target(above, input_position(above, i), [&](int n, int word) {
    acc += wide(dv[n]) * wide(weights[word]);
  });
  return acc;
}

// The fc decoder's error sum of output neuron j at step t + 1 (section 3.1): the exact
// sum_c e_c D_c,(t n_L + j), shifted onto the spatial-sum grid.
inline int64_t decoder_sum(int t, int j, const weight_t weights[W_TOTAL], const int64_t error[CLASSES]) {
  const int row = decoder_row(t, j);
  int64_t acc = 0;
  for (int c = 0; c < CLASSES; ++c) {
    SPIKEFORGE_HLS(HLS PIPELINE II=1)
    SPIKEFORGE_HLS(HLS UNROLL factor=LANES)
    acc += error[c] * wide(weights[row + c]);
  }
  return shift_signed(acc, DECODER_ERROR_SHIFT);
}

// Backward pass and accumulation of one labelled sample (section 3): the fc decoder's dD,
// then t = T..1, layers L..1 then the encoder (trainable thresholds only), accumulators
// saturating after each add.
inline void backward(int label, const count_t counts[CLASSES], const weight_t weights[W_TOTAL],
                     const recip_t reciprocals[N_TOTAL], const bool spike[TIMESTEPS][N_TOTAL],
                     const bool window[TIMESTEPS][N_TOTAL], dv_t dv[N_TOTAL], dw_t dw[W_TOTAL],
                     dth_t dth[N_TOTAL]) {
  constexpr int first = TRAINABLE ? 0 : 1;
  int64_t error[CLASSES];  // e_c = n_c - P y_c (last), n_c - P T y_c (rate), a_c - 2^df y_c (fc)
  for (int c = 0; c < CLASSES; ++c) {
    error[c] = wide(counts[c]) - (c == label ? LABEL_TARGET : 0);
  }
  // fc decoder: dD_c,(t n_L + j) += e_c for each output spike (one add per element).
  if (FC_DECODER) {
    for (int t = 0; t < TIMESTEPS; ++t) {
      for_each_decoder_row(spike, t, [&](int row) {
        for (int c = 0; c < CLASSES; ++c) {
          SPIKEFORGE_HLS(HLS PIPELINE II=1)
          SPIKEFORGE_HLS(HLS UNROLL factor=LANES)
          dw[row + c] = saturate<DW_BITS>(wide(dw[row + c]) + error[c]);
        }
      });
    }
  }
  for (int n = 0; n < N_TOTAL; ++n) {
    SPIKEFORGE_HLS(HLS PIPELINE II=1)
    SPIKEFORGE_HLS(HLS UNROLL factor=LANES)
    dv[n] = 0;
  }
  for (int t = TIMESTEPS - 1; t >= 0; --t) {
    const bool inject = RATE_DECODER || t == TIMESTEPS - 1;
    for (int l = LAYERS; l >= first; --l) {
      if (KIND[l] == KIND_POOL) continue;  // no dV
      const int base = NEURON_BASE[l];
      const int size = NEURONS[l];
      const int k = l == 0 ? ENCODER_K : K;
      // dV by the eq. 15 mux; a row is read only where h = 1.
      for (int i = 0; i < size; ++i) {
        SPIKEFORGE_HLS(HLS LOOP_TRIPCOUNT min=1 max=MAX_NEURONS)
        const bool h = window[t][base + i];
        int64_t acc = 0;
        if (h && l < LAYERS) {
          acc = spatial_sum(l, i, weights, dv);
        } else if (h && FC_DECODER) {
          acc = decoder_sum(t, i, weights, error);
        } else if (h && inject) {
          acc = error[i / POPULATION] * (int64_t(1) << ERROR_SHIFT);
        }
        dv[base + i] = mux_dv<G_BITS>(h, acc, wide(reciprocals[channel_of(l, i)]), k, wide(dv[base + i]));
      }
      // eq. 10: each source spike event S_i[t], ascending, adds dV_j[t] of each target j to
      // the accumulator of the weight linking them.
      if (l >= 1) {
        for_each_event(spike, t, l, [&](int m) {
          for_each_target(l, m, [&](int n, int word) {
            dw[word] = saturate<DW_BITS>(wide(dw[word]) + wide(dv[n]));
          });
        });
      }
      // eq. 11: dVth_c += -dV_j[t] S_j[t-1] for t >= 2, neurons j of channel c ascending.
      if (TRAINABLE && t >= 1) {
        for (int j = 0; j < size; ++j) {
          SPIKEFORGE_HLS(HLS LOOP_TRIPCOUNT min=1 max=MAX_NEURONS)
          SPIKEFORGE_HLS(HLS PIPELINE II=1)
          if (spike[t - 1][base + j]) {
            const int c = channel_of(l, j);
            dth[c] = saturate<DTH_BITS>(wide(dth[c]) - wide(dv[base + j]));
          }
        }
      }
    }
  }
}

// LFSR jumps over one weight row of each layer (OUTS[l] draws) and over one fc decoder
// row (layer L + 1: CLASSES draws), tabulated at compile time.
struct RowDraws {
  LfsrJump layer[LAYERS + 2];
};

constexpr RowDraws row_draws_table() {
  RowDraws table{};
  for (int l = 1; l <= LAYERS; ++l) table.layer[l] = lfsr_jump_table(OUTS[l]);
  table.layer[LAYERS + 1] = lfsr_jump_table(CLASSES);
  return table;
}

constexpr RowDraws ROW_DRAWS = row_draws_table();

// The update of one memory row of `size` accumulators (a weight row or a decoder row):
// value = sat_w(value - round_shift(acc, shift)), acc cleared, one LFSR step per element.
// A row of zero accumulators leaves its values as they are (round_shift(0) = 0): only its
// draws are taken, at once.
inline uint32_t update_row(int row, int size, int shift, const LfsrJump& row_draws,
                           weight_t weights[W_TOTAL], dw_t dw[W_TOTAL], uint32_t state) {
  bool touched = false;
  for (int j = 0; j < size; ++j) {
    SPIKEFORGE_HLS(HLS LOOP_TRIPCOUNT min=1 max=MAX_NEURONS)
    SPIKEFORGE_HLS(HLS PIPELINE II=1)
    SPIKEFORGE_HLS(HLS UNROLL factor=LANES)
    touched |= wide(dw[row + j]) != 0;
  }
  if (!touched) return ROUNDING == ROUND_STOCHASTIC ? lfsr_jump(row_draws, state) : state;
  for (int j = 0; j < size; ++j) {
    SPIKEFORGE_HLS(HLS LOOP_TRIPCOUNT min=1 max=MAX_NEURONS)
    SPIKEFORGE_HLS(HLS PIPELINE II=1)
    SPIKEFORGE_HLS(HLS UNROLL factor=LANES)
    if (ROUNDING == ROUND_STOCHASTIC) state = lfsr_step(state);
    const int64_t gradient = wide(dw[row + j]);
    if (gradient != 0) {  // round_shift(0) = 0: a zero accumulator only takes its draw
      const int64_t step = round_shift<ROUNDING>(gradient, shift, state);
      weights[row + j] = saturate<W_BITS>(wide(weights[row + j]) - step);
      dw[row + j] = 0;
    }
  }
  return state;
}

// A learning-rate shift plus a layer's offset (section 4.3), clamped to 31.
inline int offset_shift(int shift, int offset) {
  return shift + offset < 31 ? shift + offset : 31;
}

// The update (section 4): W = sat_w(W - round_shift(dW, s_w + a_l)), then (trainable
// thresholds) Vth = clamp(Vth - round_shift(dVth, s + b_l), 1, max) with s = s_th (layers
// 1..L) or max(s_th - 8 + fw, 0) (encoder), the reciprocals of changed thresholds recomputed
// (layer offsets a_l, b_l: WEIGHT_OFFSET, THRESHOLD_OFFSET, every sum clamped to 31); then the fc decoder's
// D = sat_w(D - round_shift(dD, clamp(s_w + fw - gf - G, 0, 31))); accumulators cleared. Stochastic
// rounding steps the LFSR once per element: layers 1..L, rows ascending, then each row's words
// ascending; then
// thresholds of layers 0..L, channel ascending; then decoder rows, classes ascending.
inline void update(int shift_w, int shift_th, weight_t weights[W_TOTAL],
                   threshold_t thresholds[N_TOTAL], recip_t reciprocals[N_TOTAL],
                   dw_t dw[W_TOTAL], dth_t dth[N_TOTAL], lfsr_t& lfsr) {
  uint32_t state = static_cast<uint32_t>(wide(lfsr));
  for (int l = 1; l <= LAYERS; ++l) {
    const int shift = offset_shift(shift_w, WEIGHT_OFFSET[l]);
    for (int r = 0; r < ROWS[l]; ++r) {  // none for AP2 layers
      SPIKEFORGE_HLS(HLS LOOP_TRIPCOUNT min=1 max=MAX_NEURONS)
      state = update_row(weight_row(l, r), OUTS[l], shift, ROW_DRAWS.layer[l], weights, dw, state);
    }
  }
  if (TRAINABLE) {
    const int shift_encoder = shift_th - PIXEL_FRAC + FW > 0 ? shift_th - PIXEL_FRAC + FW : 0;
    for (int l = 0; l <= LAYERS; ++l) {
      const int base = CHANNEL_BASE[l];
      const int shift = offset_shift(l == 0 ? shift_encoder : shift_th, THRESHOLD_OFFSET[l]);
      for (int c = 0; c < CHANNELS[l]; ++c) {  // none for AP2 layers
        SPIKEFORGE_HLS(HLS LOOP_TRIPCOUNT min=1 max=MAX_NEURONS)
        SPIKEFORGE_HLS(HLS PIPELINE II=1)
        SPIKEFORGE_HLS(HLS UNROLL factor=LANES)
        if (ROUNDING == ROUND_STOCHASTIC) state = lfsr_step(state);
        const int64_t step = round_shift<ROUNDING>(wide(dth[base + c]), shift, state);
        const int64_t old = wide(thresholds[base + c]);
        const int64_t vth = clamp(old - step, 1, THRESHOLD_MAX);
        thresholds[base + c] = vth;
        if (vth != old) reciprocals[base + c] = reciprocal(vth, K);  // a kept threshold keeps its R
        dth[base + c] = 0;
      }
    }
  }
  if (FC_DECODER) {
    const int shift_d = static_cast<int>(clamp(shift_w + DECODER_SHIFT_DELTA, 0, 31));  // u5, as every shift
    for (int t = 0; t < TIMESTEPS; ++t) {
      for (int j = 0; j < NEURONS[LAYERS]; ++j) {
        SPIKEFORGE_HLS(HLS LOOP_TRIPCOUNT min=1 max=MAX_NEURONS)
        state = update_row(decoder_row(t, j), CLASSES, shift_d, ROW_DRAWS.layer[LAYERS + 1], weights, dw, state);
      }
    }
  }
  lfsr = state;
}

// One call of the core: infer a sample, learn from it (an update after every BATCH-th
// learned sample), or flush (apply a pending partial batch). The learned state (weights
// .. pending) persists in the caller's memories; v, spike, window and dv are per-sample.
inline void run(int mode, const pixel_t pixels[NEURONS[0]], int label, int shift_w, int shift_th,
                class_t& prediction, count_t counts[CLASSES], spikes_t layer_spikes[LAYERS + 1],
                weight_t weights[W_TOTAL], threshold_t thresholds[N_TOTAL],
                recip_t reciprocals[N_TOTAL], dw_t dw[W_TOTAL], dth_t dth[N_TOTAL],
                lfsr_t& lfsr, pending_t& pending, membrane_t v[N_TOTAL],
                bool spike[TIMESTEPS][N_TOTAL], bool window[TIMESTEPS][N_TOTAL],
                dv_t dv[N_TOTAL]) {
  if (mode == MODE_FLUSH) {
    if (wide(pending) > 0) {
      update(shift_w, shift_th, weights, thresholds, reciprocals, dw, dth, lfsr);
      pending = 0;
    }
    return;
  }
  forward(pixels, weights, thresholds, v, spike, window, counts, layer_spikes, prediction);
  if (LEARNABLE && mode == MODE_LEARN) {
    backward(label, counts, weights, reciprocals, spike, window, dv, dw, dth);
    pending = wide(pending) + 1;
    if (wide(pending) >= BATCH) {
      update(shift_w, shift_th, weights, thresholds, reciprocals, dw, dth, lfsr);
      pending = 0;
    }
  }
}

}  // namespace spikeforge

#endif  // SPIKEFORGE_CORE_H
