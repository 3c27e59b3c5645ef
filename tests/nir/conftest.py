"""Fixtures of the NIR tests: a valid graph to break."""

from __future__ import annotations

import pytest
from nir_cases import make_network


@pytest.fixture
def fc_graph():
    """A fresh valid NIR graph of the FC network (nodes can be replaced to break it)."""
    from sim.nir_io import network_to_graph

    return network_to_graph(make_network("fc"))
