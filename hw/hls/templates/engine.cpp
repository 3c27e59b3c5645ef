// engine.cpp: the core as a native engine for the host (C ABI, called through ctypes).
//
// Not part of the HLS project: it runs spikeforge::run, the function the HLS top calls, on a
// state the host allocates once (sf_create) and loads and reads back as int64 arrays in the
// memory layout of parameters.h. sf_run processes a whole batch of samples per call.
#include <stdint.h>

#include "spikeforge_core.h"

using namespace spikeforge;

namespace {

struct Engine {
  weight_t weights[W_TOTAL];
  threshold_t thresholds[C_TOTAL];
  recip_t reciprocals[C_TOTAL];
  dw_t dw[W_TOTAL];
  dth_t dth[C_TOTAL];
  lfsr_t lfsr;
  pending_t pending;
  membrane_t v[N_TOTAL];
  bool spike[TIMESTEPS][N_TOTAL];
  bool window[TIMESTEPS][N_TOTAL];
  dv_t dv[N_TOTAL];
};

}  // namespace

extern "C" {

// Sizes the host checks against its layout: LAYERS, TIMESTEPS, LANES, N_TOTAL, W_TOTAL, C_TOTAL.
void sf_layout(int64_t out[6]) {
  out[0] = LAYERS;
  out[1] = TIMESTEPS;
  out[2] = LANES;
  out[3] = N_TOTAL;
  out[4] = W_TOTAL;
  out[5] = C_TOTAL;
}

void* sf_create() { return new Engine(); }

void sf_destroy(void* engine) { delete static_cast<Engine*>(engine); }

void sf_load(void* handle, const int64_t* weights, const int64_t* thresholds,
             const int64_t* reciprocals, const int64_t* dw, const int64_t* dth, int64_t lfsr,
             int64_t pending) {
  Engine& e = *static_cast<Engine*>(handle);
  for (int n = 0; n < W_TOTAL; ++n) {
    e.weights[n] = weights[n];
    e.dw[n] = dw[n];
  }
  for (int n = 0; n < C_TOTAL; ++n) {
    e.thresholds[n] = thresholds[n];
    e.reciprocals[n] = reciprocals[n];
    e.dth[n] = dth[n];
  }
  e.lfsr = lfsr;
  e.pending = pending;
}

void sf_store(const void* handle, int64_t* weights, int64_t* thresholds, int64_t* reciprocals,
              int64_t* dw, int64_t* dth, int64_t registers[2]) {
  const Engine& e = *static_cast<const Engine*>(handle);
  for (int n = 0; n < W_TOTAL; ++n) {
    weights[n] = wide(e.weights[n]);
    dw[n] = wide(e.dw[n]);
  }
  for (int n = 0; n < C_TOTAL; ++n) {
    thresholds[n] = wide(e.thresholds[n]);
    reciprocals[n] = wide(e.reciprocals[n]);
    dth[n] = wide(e.dth[n]);
  }
  registers[0] = wide(e.lfsr);
  registers[1] = wide(e.pending);
}

// Infer (mode 0) or learn from (mode 1) n samples in order: pixels (n, NEURONS[0]) u8,
// labels (n,). Writes predictions (n,), counts (n, CLASSES), layer_spikes (n, LAYERS + 1) and
// adds every neuron's spikes over T to unit_spikes (N_TOTAL,).
void sf_run(void* handle, int mode, const uint8_t* pixels, const int64_t* labels, int64_t n,
            int shift_w, int shift_th, int64_t* predictions, int64_t* counts,
            int64_t* layer_spikes, int64_t* unit_spikes) {
  Engine& e = *static_cast<Engine*>(handle);
  pixel_t sample[NEURONS[0]];
  count_t count[CLASSES];
  spikes_t fired[LAYERS + 1];
  for (int64_t s = 0; s < n; ++s) {
    for (int i = 0; i < NEURONS[0]; ++i) sample[i] = pixels[s * NEURONS[0] + i];
    class_t prediction = 0;
    run(mode, sample, static_cast<int>(labels[s]), shift_w, shift_th, prediction, count, fired,
        e.weights, e.thresholds, e.reciprocals, e.dw, e.dth, e.lfsr, e.pending, e.v, e.spike,
        e.window, e.dv);
    predictions[s] = wide(prediction);
    for (int c = 0; c < CLASSES; ++c) counts[s * CLASSES + c] = wide(count[c]);
    for (int l = 0; l <= LAYERS; ++l) layer_spikes[s * (LAYERS + 1) + l] = wide(fired[l]);
    for (int t = 0; t < TIMESTEPS; ++t) {
      for (int j = 0; j < N_TOTAL; ++j) unit_spikes[j] += e.spike[t][j];
    }
  }
}

// Apply a pending partial batch (no-op when none is pending).
void sf_flush(void* handle, int shift_w, int shift_th) {
  Engine& e = *static_cast<Engine*>(handle);
  class_t prediction = 0;
  count_t count[CLASSES];
  spikes_t fired[LAYERS + 1];
  run(MODE_FLUSH, nullptr, 0, shift_w, shift_th, prediction, count, fired, e.weights,
      e.thresholds, e.reciprocals, e.dw, e.dth, e.lfsr, e.pending, e.v, e.spike, e.window, e.dv);
}

}  // extern "C"
