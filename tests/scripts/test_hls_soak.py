"""A fast subset of scripts/hls_soak.py: random networks through the HLS C simulation."""

from __future__ import annotations

import shutil
from types import ModuleType

import numpy as np
import pytest

SCRIPT = "hls_soak"

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


def test_random_networks_pass(script: ModuleType) -> None:
    passed, failed, bad = script.soak_random(5, 3, seed=11, progress=False)
    assert (failed, bad) == (0, []) and passed > 5 * 9


def test_random_draws_cover_the_switches(script: ModuleType) -> None:
    rng = np.random.default_rng(0)
    nets = [script.random_network(rng) for _ in range(200)]
    for field, values in (("decoder", {"last", "rate"}), ("reset", {"subtract", "zero"}),
                          ("threshold", {"trainable", "fixed"}), ("surrogate", {"scaled", "rect"})):
        assert {getattr(net.spec, field) for net in nets} == values
    assert {net.rule.rounding for net in nets} == {"floor", "nearest", "stochastic"}
    assert {net.rule.batch for net in nets} == {1, 2, 3}
    pixels = script.random_pixels(rng, 50, 7)
    assert (pixels.sum(axis=1) == 0).any() and (pixels == 255).all(axis=1).any()
