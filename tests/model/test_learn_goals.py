"""Accuracy goals of on-line integer learning of conv networks from scratch (slow: digits
about 15 minutes per seed on one core; mnist10k about 20 minutes per seed on the csim engine).

Run with ``OMP_NUM_THREADS=1 python3 -m pytest -m slow tests/model/test_learn_goals.py -s``.
Each seed runs ``spikeforge learn --dataset digits --init scratch`` on :data:`CONV_ARCH`
(population 10, T = 8, B = 1, the fc decoder) with every other option at its default: the
digits recipe's schedule and epochs, the conv shift offsets and init, and the recipe's
augmentation of image networks (``model.integer.CONV_AUGMENTATION``). Goal (issue 15): mean
test accuracy of the three seeds at least 97.5 % (docs/results.md, "Integer model: a conv
network on digits"). The recipe recorded there reaches 96.57 % (seeds 0, 1, 2: 96.67, 96.67,
96.39 %), so this test fails until a recipe reaches the goal.

mnist10k (issue 15: at least 96 %): :data:`MNIST_ARCH` at T = 4 with the mnist10k recipe
stretched to 24 epochs, on the csim engine (bit-identical to the model); the goal is asserted
on the mean of the three seeds (docs/results.md, the mnist10k table of "Integer model: a conv
network on digits": 96.85, 96.55 and 96.50 % on seeds 0, 1, 2, mean 96.63 %).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sim.cli import main

SEEDS = (0, 1, 2)
#: The conv network of the goal: one pool, so the FC layer reads 16 x 4 x 4 positions.
CONV_ARCH = "8C3-AP2-16C3-100FC"
GOAL = 0.975
#: The mnist10k network: 16 and 32 maps, one pool (the narrower 8 / 16 maps leave seed 1's
#: output outside the surrogate window at T = 4).
MNIST_ARCH = "16C3-AP2-32C3-100FC"
MNIST_GOAL = 0.96


def _learn(tmp_path, seed, *extra, dataset="digits", arch=CONV_ARCH, timesteps=8):
    out, report = tmp_path / f"conv-{seed}", tmp_path / f"conv-{seed}.json"
    assert main([
        "learn", "--dataset", dataset, "--init", "scratch", "--arch", arch,
        "--population", "10", "--timesteps", str(timesteps), "--batch", "1", "--decoder", "fc",
        "--seed", str(seed), "--out", str(out), "--json", str(report), "--no-progress", *extra,
    ]) == 0
    return json.loads(report.read_text())


@pytest.mark.slow
def test_digits_conv_from_scratch_reaches_the_goal(tmp_path):
    runs = [_learn(tmp_path, seed) for seed in SEEDS]
    accuracy = [r["accuracy"] for r in runs]
    print(
        f"digits {CONV_ARCH}: accuracy {accuracy} (mean {np.mean(accuracy):.4f}) "
        f"spikes {[round(r['spikes_per_inference'], 1) for r in runs]} "
        f"seconds {[round(r['history']['seconds'], 1) for r in runs]}"
    )
    assert all(r["training"]["augmentation"] == {"flip": False, "shift": 0, "rotate_deg": 10.0} for r in runs)
    assert np.mean(accuracy) >= GOAL


@pytest.mark.slow
def test_mnist10k_conv_from_scratch_reaches_the_goal(tmp_path):
    runs = [
        _learn(tmp_path, seed, "--epochs", "24", "--engine", "csim", dataset="mnist10k", arch=MNIST_ARCH,
               timesteps=4)
        for seed in SEEDS
    ]
    accuracy = [r["accuracy"] for r in runs]
    print(f"mnist10k {MNIST_ARCH}: accuracy {accuracy} (mean {np.mean(accuracy):.4f})")
    assert np.mean(accuracy) >= MNIST_GOAL
