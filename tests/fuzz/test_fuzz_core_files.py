"""Hostile files of the core flow: trace JSON lines (model.core.read_trace), the generated
folder's manifest.json (sim.synth.find_design), the cosim bench configuration
(sim.tb.common.load_config), JSON documents in general (model.files.read_json) and spec
dictionaries (NetworkSpec.from_dict): each read as a valid object or refused with one error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hostile import FUZZ, mutated, refused_or_valid
from hypothesis import given
from hypothesis import strategies as st

from model import files
from model.core import MEMORIES, PHASES, TraceRecord, read_trace, write_trace
from model.spec import MAX_NEURONS, MAX_WEIGHTS, NetworkSpec
from sim.synth import find_design
from sim.tb import CONFIG_ENV
from sim.tb.common import load_config

#: Any JSON value, nested a little.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)

RECORDS = [
    TraceRecord(0, 3, "forward", 1, 1, "V", 5, 3, (12, -4)),
    TraceRecord(0, 9, "update", 2, 0, "W", 0, 1, (7, 0)),
]


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "trace.jsonl"
    write_trace(RECORDS, path)
    return path


def test_trace_round_trips(trace: Path) -> None:
    assert read_trace(trace) == RECORDS


@FUZZ
@given(data=st.data())
def test_mutated_trace_reads_or_is_refused(trace: Path, data) -> None:
    original = trace.read_bytes()
    try:
        trace.write_bytes(data.draw(mutated(original)))
        records = refused_or_valid(lambda: read_trace(trace))
        for record in records or []:
            assert record.phase in PHASES and record.memory in MEMORIES
            assert all(isinstance(getattr(record, name), int) for name in ("sample", "cycle", "layer", "t", "address", "mask"))
            assert isinstance(record.data, tuple) and all(isinstance(lane, int) for lane in record.data)
    finally:
        trace.write_bytes(original)


@FUZZ
@given(field=st.sampled_from(TraceRecord._fields), value=JSON)
def test_trace_fields_replaced(trace: Path, field: str, value) -> None:
    item = RECORDS[0]._asdict()
    item[field] = value
    trace.write_text(json.dumps(item) + "\n")
    records = refused_or_valid(lambda: read_trace(trace))
    if records is not None:
        assert records[0]._replace(**{field: getattr(RECORDS[0], field)}) == RECORDS[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"sample": 0}\n', "not a trace record"),
        (b"\xff\xfe\n", "not a trace record"),
        (b"[" * 100_000 + b"\n", r"not a trace record \(nested too deeply"),
        (b"7" * 5000 + b"\n", "not a trace record"),
        (b" " * ((1 << 20) + 10), "line longer than"),
    ],
)
def test_hostile_trace_lines(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"t\.jsonl:1: {message}") as caught:
        read_trace(path)
    assert "\n" not in str(caught.value)


def test_missing_trace_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent"):
        read_trace(tmp_path / "absent")


# manifest.json and the bench configuration ----------------------------------------------


@pytest.fixture
def gen_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "gen"
    folder.mkdir()
    (folder / "core.v").write_text("module core(input clk); endmodule\n")
    (folder / "manifest.json").write_text(json.dumps({"top": "core", "memories": []}))
    return folder


@FUZZ
@given(data=st.data())
def test_mutated_manifest_gives_a_top_or_is_refused(gen_dir: Path, data) -> None:
    path = gen_dir / "manifest.json"
    original = path.read_bytes()
    try:
        path.write_bytes(data.draw(mutated(original)))
        design = refused_or_valid(lambda: find_design(gen_dir))
        if design is not None:
            assert isinstance(design.top, str) and design.top
    finally:
        path.write_bytes(original)


@FUZZ
@given(document=JSON)
def test_any_json_manifest_gives_a_top_or_is_refused(gen_dir: Path, document) -> None:
    (gen_dir / "manifest.json").write_text(json.dumps({"top": document}))
    design = refused_or_valid(lambda: find_design(gen_dir))
    assert design is None or design.top == document


@pytest.mark.parametrize(
    "content", [b"\xff\xfe", b"[" * 100_000, b'{"top": ' + b"1" * 5000 + b"}", b"", b"null"]
)
def test_hostile_manifest_is_one_error(gen_dir: Path, content: bytes) -> None:
    (gen_dir / "manifest.json").write_bytes(content)
    with pytest.raises(ValueError, match=r"manifest\.json: ") as caught:
        find_design(gen_dir)
    assert "\n" not in str(caught.value)


def test_oversized_manifest_is_refused_unread(gen_dir: Path) -> None:
    with (gen_dir / "manifest.json").open("r+b") as handle:
        handle.truncate(files.MAX_JSON_BYTES + 1)
    with pytest.raises(ValueError, match=r"manifest\.json: \d+ bytes is too large"):
        find_design(gen_dir)


@pytest.mark.parametrize("content", [b"\xff", b"[" * 100_000, b"{"])
def test_hostile_bench_config_is_one_error(tmp_path: Path, monkeypatch, content: bytes) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    monkeypatch.setenv(CONFIG_ENV, str(path))
    with pytest.raises(ValueError, match=r"config\.json: "):
        load_config()


# read_json and spec dictionaries ---------------------------------------------------------


@FUZZ
@given(raw=st.binary(max_size=64) | JSON.map(lambda value: json.dumps(value).encode()))
def test_read_json_returns_json_or_refuses(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(raw)
    refused_or_valid(lambda: files.read_json(path))


SPEC = NetworkSpec.parse("6FC-10FC", input_shape=(64,), timesteps=2).to_dict()
SPEC_VALUES = JSON | st.sampled_from(
    [MAX_NEURONS + 1, 1 << 62, -1, 0, "1048577FC-10FC", "99999999FC-10FC", "8C3-AP2-10FC", "6FC-" * 70 + "10FC",
     [1 << 30], [0], [-5], [2, 2, 1 << 20], [3, 32, 32], "zero", "fc", float("nan"), float("inf"), 1e308]
)


@FUZZ
@given(field=st.sampled_from(sorted(SPEC)), value=SPEC_VALUES, extra=st.dictionaries(st.text(max_size=4), JSON, max_size=1))
def test_spec_from_hostile_dict_is_valid_or_refused(field: str, value, extra) -> None:
    data = {**SPEC, field: value, **extra}
    spec = refused_or_valid(lambda: NetworkSpec.from_dict(data))
    if spec is not None:
        assert all(math.prod(shape) <= MAX_NEURONS for shape in spec.shapes)
        assert 1 <= spec.timesteps <= 1024
        weights = sum(math.prod(a) * math.prod(b) for a, b in zip(spec.shapes[1:], spec.shapes))
        assert weights <= MAX_WEIGHTS or any(layer.kind != "fc" for layer in spec.layers)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"arch": "2000000FC-10FC"}, "arch: layer 1 \\(2000000FC\\): 2000000 units is out of range"),
        ({"arch": "8192FC-8192FC-10FC"}, "arch: \\d+ weights is out of range"),
        ({"arch": "6FC-" * 70 + "10FC"}, "arch: 71 layers is out of range"),
        ({"arch": "1" * 5000 + "FC"}, "arch: bad layer"),
        ({"input_shape": [1 << 30]}, "input_shape: 1073741824 is out of range"),
        ({"input_shape": [2048, 2048, 3]}, "input_shape: 12582912 units is out of range"),
        ({"input_shape": 64}, "input_shape: must be a list"),
        ({"timesteps": -3}, "timesteps: -3 is out of range"),
        ({"classes": 1 << 40, "decoder": "fc"}, "classes: 1099511627776 is out of range"),
        ({"initial_threshold": 10**400}, "initial_threshold: "),
        ({"initial_threshold": float("nan")}, "initial_threshold: nan"),
    ],
)
def test_spec_sizes_are_capped(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        NetworkSpec.from_dict({**SPEC, **change})
