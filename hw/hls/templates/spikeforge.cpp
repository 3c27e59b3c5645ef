// spikeforge.cpp: the HLS top function (interfaces, memory partitioning, per-sample memories).
#include "spikeforge.h"

using namespace spikeforge;

void spikeforge_top(op_t mode, const pixel_t pixels[NEURONS[0]], class_t label, shift_t shift_w,
                    shift_t shift_th, class_t& prediction, count_t counts[CLASSES],
                    spikes_t layer_spikes[LAYERS + 1], weight_t weights[W_TOTAL],
                    threshold_t thresholds[C_TOTAL], recip_t reciprocals[C_TOTAL],
                    dw_t dw[W_TOTAL], dth_t dth[C_TOTAL], lfsr_t& lfsr, pending_t& pending) {
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_ctrl_hs port=return)
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_none port=mode)
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_none port=label)
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_none port=shift_w)
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_none port=shift_th)
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_memory port=pixels)
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_vld port=prediction)
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_memory port=counts)
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_memory port=layer_spikes)
  // The learned memories: one bank per lane (P values per word), loadable by the host.
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_memory port=weights)
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_memory port=thresholds)
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_memory port=reciprocals)
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_memory port=dw)
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_memory port=dth)
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_ovld port=lfsr)
  SPIKEFORGE_HLS(HLS INTERFACE mode=ap_ovld port=pending)
  SPIKEFORGE_HLS(HLS ARRAY_PARTITION variable=pixels type=cyclic factor=LANES)
  SPIKEFORGE_HLS(HLS ARRAY_PARTITION variable=weights type=cyclic factor=LANES)
  SPIKEFORGE_HLS(HLS ARRAY_PARTITION variable=thresholds type=cyclic factor=LANES)
  SPIKEFORGE_HLS(HLS ARRAY_PARTITION variable=reciprocals type=cyclic factor=LANES)
  SPIKEFORGE_HLS(HLS ARRAY_PARTITION variable=dw type=cyclic factor=LANES)
  SPIKEFORGE_HLS(HLS ARRAY_PARTITION variable=dth type=cyclic factor=LANES)
  // Per-sample memories: membranes, S and h of every step (2T bits per neuron), dV.
  static membrane_t v[N_TOTAL];
  static bool spike[TIMESTEPS][N_TOTAL];
  static bool window[TIMESTEPS][N_TOTAL];
  static dv_t dv[N_TOTAL];
  SPIKEFORGE_HLS(HLS ARRAY_PARTITION variable=v type=cyclic factor=LANES)
  SPIKEFORGE_HLS(HLS ARRAY_PARTITION variable=spike type=cyclic factor=LANES dim=2)
  SPIKEFORGE_HLS(HLS ARRAY_PARTITION variable=window type=cyclic factor=LANES dim=2)
  SPIKEFORGE_HLS(HLS ARRAY_PARTITION variable=dv type=cyclic factor=LANES)
  run(static_cast<int>(wide(mode)), pixels, static_cast<int>(wide(label)),
      static_cast<int>(wide(shift_w)), static_cast<int>(wide(shift_th)), prediction, counts,
      layer_spikes, weights, thresholds, reciprocals, dw, dth, lfsr, pending, v, spike, window,
      dv);
}
