"""Accuracy goals of on-line integer learning of conv networks from scratch (slow: digits
about 2 minutes per seed, mnist10k about 20 minutes per seed, both on the csim engine, which
is bit-identical to the model).

Run with ``OMP_NUM_THREADS=1 python3 -m pytest -m slow tests/model/test_learn_goals.py -s``.
Both goals use :data:`CONV_ARCH` (16 and 32 3x3 maps, one pool, population 10, B = 1, the fc
decoder). digits (issue 15: at least 97.5 %): T = 6, 120 epochs, the digits schedule one shift
faster (:data:`DIGITS_SCHEDULE`), every other option at its default (the conv shift offsets
and init, the recipe's rotations of image networks, ``model.integer.CONV_AUGMENTATION``);
docs/results.md, "Integer model: a conv network on digits": 97.50, 98.06 and 98.33 % on seeds
0, 1, 2, mean 97.96 %.

mnist10k (issue 15: at least 96 %): T = 4 with the mnist10k recipe stretched to 24 epochs; the
goal is asserted on the mean of the three seeds (the mnist10k table of the same section: 96.85,
96.55 and 96.50 % on seeds 0, 1, 2, mean 96.63 %).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sim.cli import main

SEEDS = (0, 1, 2)
#: The conv network of both goals: one pool, so the FC layer reads 32 x 4 x 4 (digits) or
#: 32 x 14 x 14 (mnist10k) positions; 8 and 16 maps leave some seeds' output outside the
#: surrogate window at T = 4.
CONV_ARCH = "16C3-AP2-32C3-100FC"
#: The digits schedule (fc decoder: shifts 14..18) one shift faster: 13..17.
DIGITS_SCHEDULE = "13:0.3,14:0.55,15:0.75,16:0.9,17"
GOAL = 0.975
MNIST_GOAL = 0.96


def _learn(tmp_path, seed, *extra, dataset, timesteps):
    out, report = tmp_path / f"conv-{seed}", tmp_path / f"conv-{seed}.json"
    assert main([
        "learn", "--dataset", dataset, "--init", "scratch", "--arch", CONV_ARCH,
        "--population", "10", "--timesteps", str(timesteps), "--batch", "1", "--decoder", "fc",
        "--seed", str(seed), "--engine", "csim", "--out", str(out), "--json", str(report), "--no-progress", *extra,
    ]) == 0
    return json.loads(report.read_text())


@pytest.mark.slow
def test_digits_conv_from_scratch_reaches_the_goal(tmp_path):
    runs = [
        _learn(tmp_path, seed, "--epochs", "120", "--schedule", DIGITS_SCHEDULE, dataset="digits", timesteps=6)
        for seed in SEEDS
    ]
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
    runs = [_learn(tmp_path, seed, "--epochs", "24", dataset="mnist10k", timesteps=4) for seed in SEEDS]
    accuracy = [r["accuracy"] for r in runs]
    print(f"mnist10k {CONV_ARCH}: accuracy {accuracy} (mean {np.mean(accuracy):.4f})")
    assert np.mean(accuracy) >= MNIST_GOAL
