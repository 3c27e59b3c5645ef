"""Bounded fuzzing of the NIR reader: corrupted bytes, truncations and random node fields
either import or fail with one ``ValueError`` line, never another exception."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir", reason='needs the nir extra: pip install -e ".[nir]"')
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nir_cases import make_network

from sim import nir_io

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("nir") / "good.nir"
    nir.write(path, nir_io.network_to_graph(make_network("conv"), pool="sum"), compression=None)
    return path.read_bytes()


def _read(path: Path) -> None:
    """Read and import; a ValueError must be one line."""
    try:
        result = nir_io.graph_to_network(nir_io.read_graph(path))
    except ValueError as error:
        assert str(error) and "\n" not in str(error).strip()
        return
    x = np.full((1, *result.network.spec.input_shape), 0.5)
    result.network.forward(x)


@FUZZ
@given(data=st.data())
def test_corrupted_bytes(tmp_path: Path, good_file: bytes, data: st.DataObject) -> None:
    content = bytearray(good_file)
    for _ in range(data.draw(st.integers(1, 8))):
        content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        content = content[: data.draw(st.integers(0, len(content)))]
    path = tmp_path / "fuzz.nir"
    path.write_bytes(bytes(content))
    _read(path)


VALUES = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.lists(st.integers(-2, 9), max_size=4).map(np.array),
    st.tuples(st.integers(0, 4), st.integers(0, 4)).map(lambda shape: np.full(shape, 0.5, np.float32)),
)


@FUZZ
@given(data=st.data())
def test_random_node_fields(data: st.DataObject) -> None:
    graph = nir_io.network_to_graph(make_network("conv"), pool="sum")
    raw = graph.to_dict()
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(st.sampled_from(sorted(raw["nodes"])))
        node = raw["nodes"][name]
        field = data.draw(st.sampled_from(sorted(node) + ["extra"]))
        if data.draw(st.booleans()) and field in node:
            del node[field]
        else:
            node[field] = data.draw(VALUES)
    try:
        result = nir_io.graph_to_network(nir_io.graph_from_dict(raw))
    except ValueError as error:
        assert str(error) and "\n" not in str(error).strip()
        return
    result.network.forward(np.full((1, *result.network.spec.input_shape), 0.5))
