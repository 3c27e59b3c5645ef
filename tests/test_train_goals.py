"""Accuracy and spike-count goals of ``spikeforge train`` with its defaults (slow: minutes).

Run with ``python3 -m pytest -m slow tests/test_train_goals.py -s``. Each case trains three
seeds of an enhanced configuration (reset subtract, trainable thresholds, scaled surrogate,
last-spike decoder: the CLI defaults, 128FC-100FC, population 10) and of the baseline
(reset zero, fixed thresholds, rect surrogate, rate decoder, T = 8) with the dataset's
training defaults. On mnist10k the enhanced configuration runs T = 4 steps. The conv case
trains the paper's shape of network, :data:`CONV_ARCH`, both configurations with it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sim.cli import main

SEEDS = (0, 1, 2)
BASELINE = ["--reset", "zero", "--threshold", "fixed", "--surrogate", "rect", "--decoder", "rate"]
#: The conv network of the digits goal (conv, pool, conv, pool, FC, as the paper's Table I).
CONV_ARCH = "16C3-AP2-32C3-AP2-256FC-100FC"


def _train(tmp_path, dataset, seed, extra):
    out = tmp_path / f"{dataset}-{'-'.join(extra)}-{seed}"
    assert main(["train", "--dataset", dataset, "--seed", str(seed), "--out", str(out),
                 "--no-progress", *extra]) == 0
    return json.loads((out / "result.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "network", "enhanced_options", "accuracy", "spike_ratio"),
    [
        ("digits", [], [], 0.975, 1.0),
        ("mnist10k", [], ["--timesteps", "4"], 0.95, 0.8),
        ("digits", ["--arch", CONV_ARCH], [], 0.98, 1.0),
        ("mnist10k", ["--arch", CONV_ARCH, "--timesteps", "4"], [], 0.975, 1.0),
    ],
    ids=["digits", "mnist10k", "digits-conv", "mnist10k-conv"],
)
def test_enhanced_beats_baseline(tmp_path, dataset, network, enhanced_options, accuracy, spike_ratio):
    enhanced = [_train(tmp_path, dataset, seed, network + enhanced_options) for seed in SEEDS]
    baseline = [_train(tmp_path, dataset, seed, network + BASELINE) for seed in SEEDS]
    enhanced_accuracy = np.mean([r["accuracy"] for r in enhanced])
    enhanced_spikes = np.mean([r["spikes_per_inference"] for r in enhanced])
    baseline_spikes = np.mean([r["spikes_per_inference"] for r in baseline])
    for name, runs in (("enhanced", enhanced), ("baseline", baseline)):
        print(
            f"{dataset} {name}: accuracy {[r['accuracy'] for r in runs]} "
            f"spikes {[round(r['spikes_per_inference'], 1) for r in runs]} "
            f"seconds {[round(r['history']['seconds'], 1) for r in runs]}"
        )
    assert enhanced_accuracy >= accuracy
    assert enhanced_spikes < baseline_spikes
    assert enhanced_spikes <= spike_ratio * baseline_spikes
