"""Accuracy goal of on-line integer learning of a conv network from scratch (slow: about
15 minutes per seed on one core).

Run with ``OMP_NUM_THREADS=1 python3 -m pytest -m slow tests/model/test_learn_goals.py -s``.
Each seed runs ``spikeforge learn --dataset digits --init scratch`` on :data:`CONV_ARCH`
(population 10, T = 8, B = 1, the fc decoder) with every other option at its default: the
digits recipe's schedule and epochs, the conv shift offsets and init, and the recipe's
augmentation of image networks (``model.integer.CONV_AUGMENTATION``). Goal (issue 15): mean
test accuracy of the three seeds at least 97.5 % (docs/results.md, "Integer model: a conv
network on digits"). The recipe recorded there reaches 96.57 % (seeds 0, 1, 2: 96.67, 96.67,
96.39 %), so this test fails until a recipe reaches the goal.
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


def _learn(tmp_path, seed):
    out, report = tmp_path / f"conv-{seed}", tmp_path / f"conv-{seed}.json"
    assert main([
        "learn", "--dataset", "digits", "--init", "scratch", "--arch", CONV_ARCH,
        "--population", "10", "--timesteps", "8", "--batch", "1", "--decoder", "fc",
        "--seed", str(seed), "--out", str(out), "--json", str(report), "--no-progress",
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
