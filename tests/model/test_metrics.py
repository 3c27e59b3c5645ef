"""Metrics on hand-made arrays: prediction tie-break, spikes, synaptic operations, sparsity."""

from __future__ import annotations

import numpy as np
import pytest

from model import metrics
from model.spec import NetworkSpec


def test_accuracy():
    assert metrics.accuracy(np.array([1, 2, 3, 4]), np.array([1, 0, 3, 0])) == 0.5
    with pytest.raises(ValueError, match="predictions"):
        metrics.accuracy(np.array([1, 2]), np.array([1]))


def test_predict_argmax_then_membrane_then_lowest_index():
    decoded = np.array(
        [
            [0.2, 0.9, 0.1],  # clear winner: 1
            [0.5, 0.1, 0.5],  # tie 0/2: class 2 has the larger membrane
            [0.5, 0.5, 0.0],  # tie 0/1 and equal membranes: lowest index 0
            [0.3, 0.3, 0.3],  # three-way tie: class 2 has the largest membrane
        ]
    )
    # population 2: class c owns neurons 2c, 2c+1; class membrane = their mean
    membrane = np.array(
        [
            [9.0, 9.0, 0.0, 0.0, 5.0, 5.0],  # large class-0 membrane must not override decoded
            [0.1, 0.1, 9.0, 9.0, 0.0, 0.4],  # class 0: 0.1, class 2: 0.2 -> 2
            [0.0, 0.4, 0.2, 0.2, 9.0, 9.0],  # classes 0 and 1 both 0.2; class 2 not tied
            [0.0, 1.0, 0.9, 0.0, 0.6, 0.6],  # 0.5, 0.45, 0.6 -> 2
        ]
    )
    assert metrics.predict(decoded, membrane).tolist() == [1, 2, 0, 2]
    assert metrics.predict(decoded).tolist() == [1, 0, 0, 0]


def test_predict_rejects_bad_shapes():
    with pytest.raises(ValueError, match="decoded"):
        metrics.predict(np.zeros(3))
    with pytest.raises(ValueError, match="last_membrane"):
        metrics.predict(np.zeros((2, 3)), np.zeros((2, 4)))


def test_fc_fanout_and_ops():
    spec = NetworkSpec.parse("5FC-4FC", input_shape=(3,), population=2)
    assert metrics.synaptic_fanout(spec, 0).tolist() == [5, 5, 5]
    assert metrics.synaptic_fanout(spec, 1).tolist() == [4] * 5
    assert metrics.synaptic_fanout(spec, 2).tolist() == [0] * 4  # counted by the decoder only
    counts = [np.array([2.0, 0.0, 4.0]), np.arange(5.0), np.ones(4)]
    assert metrics.spikes_per_layer(spec, counts, 2) == [3.0, 5.0, 2.0]
    assert metrics.synaptic_ops_per_layer(spec, counts, 2) == [15.0, 20.0, 0.0]


def test_fc_decoder_output_spikes_drive_class_synapses():
    spec = NetworkSpec.parse("5FC-4FC", input_shape=(3,), decoder="fc", classes=3)
    assert metrics.synaptic_fanout(spec, 2).tolist() == [3] * 4


def test_conv_fanout_counts_in_bounds_positions():
    spec = NetworkSpec.parse("2C3-4C3-10FC", input_shape=(1, 3, 4))
    encoder = metrics.synaptic_fanout(spec, 0)
    assert encoder.shape == (1, 3, 4)
    # 2 output channels x in-bounds 3x3 positions: corners 4, edges 6, inside 9
    assert encoder[0].tolist() == [[8, 12, 12, 8], [12, 18, 18, 12], [8, 12, 12, 8]]
    assert (metrics.synaptic_fanout(spec, 1) == 4 * encoder[0] // 2).all()
    assert (metrics.synaptic_fanout(spec, 2) == 10).all()


def test_pool_routes_spikes_to_the_pooled_units_fanout():
    spec = NetworkSpec.parse("1C3-AP2-3C3-AP2-7FC", input_shape=(1, 4, 4))
    # After the first pool: 2x2 image feeding a 3C3 layer: every position reaches 4 outputs.
    conv1 = metrics.synaptic_fanout(spec, 1)
    assert conv1.shape == (1, 4, 4) and (conv1 == 3 * 4).all()
    # The 3C3 spikes go through AP2 (2x2 -> 1x1) into 7FC.
    assert (metrics.synaptic_fanout(spec, 3) == 7).all()
    with pytest.raises(ValueError, match="not a spiking layer"):
        metrics.synaptic_fanout(spec, 2)


def test_activation_sparsity_neurobench():
    spec = NetworkSpec.parse("5FC-4FC", input_shape=(3,), timesteps=4, population=2)
    # 12 units x 4 steps = 48 activations per inference, 12 spikes -> sparsity 0.75
    assert metrics.activation_sparsity(spec, [6.0, 4.0, 2.0]) == pytest.approx(0.75)
    assert metrics.activation_sparsity(spec, [0.0, 0.0, 0.0]) == 1.0
    with pytest.raises(ValueError, match="per_layer"):
        metrics.activation_sparsity(spec, [1.0])


def test_summarize_and_count_validation():
    spec = NetworkSpec.parse("5FC-4FC", input_shape=(3,), timesteps=4, population=2)
    counts = [np.full(3, 2.0), np.full(5, 1.0), np.full(4, 1.0)]
    result = metrics.summarize(spec, counts, 2, np.array([0, 1]), np.array([0, 0]))
    assert result == {
        "accuracy": 0.5,
        "spikes_per_inference": 3.0 + 2.5 + 2.0,
        "spikes_per_layer": [3.0, 2.5, 2.0],
        "synaptic_ops_per_inference": 15.0 + 10.0,
        "synaptic_ops_per_layer": [15.0, 10.0, 0.0],
        "activation_sparsity": pytest.approx(1 - 7.5 / 48),
        "samples": 2,
    }
    with pytest.raises(ValueError, match="unit_counts"):
        metrics.spikes_per_layer(spec, counts[:2], 2)
    with pytest.raises(ValueError, match=r"unit_counts\[1\]"):
        metrics.spikes_per_layer(spec, [counts[0], np.ones(4), counts[2]], 2)
    with pytest.raises(ValueError, match="samples"):
        metrics.spikes_per_layer(spec, counts, 0)
