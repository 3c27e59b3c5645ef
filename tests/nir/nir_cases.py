"""Seeded small networks of the NIR tests (FC, conv with pool, fc decoder)."""

from __future__ import annotations

import numpy as np

from model.spec import NetworkSpec
from model.stbp import Network

#: (arch, input shape, decoder) of the round-trip networks: FC, conv with pool, fc decoder.
NETWORKS = {
    "fc": ("24FC-10FC", (16,), "last"),
    "conv": ("4C3-AP2-3C3-10FC", (2, 8, 8), "rate"),
    "conv-fc-decoder": ("3C3-AP2-6FC", (1, 4, 4), "fc"),
}


def make_network(key: str, *, seed: int = 0, dtype=np.float32, reset: str = "subtract") -> Network:
    """A seeded network of :data:`NETWORKS` with random per-channel thresholds in 0.2..0.9."""
    arch, shape, decoder = NETWORKS[key]
    switches = {"threshold": "fixed"} if reset == "zero" else {}
    spec = NetworkSpec.parse(arch, input_shape=shape, decoder=decoder, timesteps=6, reset=reset, **switches)
    net = Network(spec, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    for vth in net.thresholds:
        vth[...] = rng.uniform(0.2, 0.9, vth.shape)
    return net
