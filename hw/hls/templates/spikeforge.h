// spikeforge.h: the HLS top function of the learning core (one sample per call).
#ifndef SPIKEFORGE_H
#define SPIKEFORGE_H

#include "spikeforge_core.h"

// mode: 0 infer, 1 learn (forward, backward, accumulate; update after every BATCH-th learned
// sample), 2 flush (apply a pending partial batch; no sample). shift_w, shift_th: the
// host-written learning-rate shifts (0..31). Outputs: the predicted class, the class counts
// n_c and the spikes of each layer (encoder first). The learned state (weights ..
// pending) lives in the caller's memories and persists across calls.
void spikeforge_top(spikeforge::op_t mode, const spikeforge::pixel_t pixels[spikeforge::NEURONS[0]],
                    spikeforge::class_t label, spikeforge::shift_t shift_w,
                    spikeforge::shift_t shift_th, spikeforge::class_t& prediction,
                    spikeforge::count_t counts[spikeforge::CLASSES],
                    spikeforge::spikes_t layer_spikes[spikeforge::LAYERS + 1],
                    spikeforge::weight_t weights[spikeforge::W_TOTAL],
                    spikeforge::threshold_t thresholds[spikeforge::C_TOTAL],
                    spikeforge::recip_t reciprocals[spikeforge::C_TOTAL],
                    spikeforge::dw_t dw[spikeforge::W_TOTAL],
                    spikeforge::dth_t dth[spikeforge::C_TOTAL], spikeforge::lfsr_t& lfsr,
                    spikeforge::pending_t& pending);

#endif  // SPIKEFORGE_H
