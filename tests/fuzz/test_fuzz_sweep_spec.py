"""Hostile sweep specs (sim/sweep.py ``load_spec`` and ``expand``, ``spikeforge sweep``):
mutated and generated TOML/JSON files either expand or give one clear error; a bad spec
starts no job and writes nothing."""

from __future__ import annotations

import json

from hostile import FUZZ, mutated, refused_or_valid
from hypothesis import given
from hypothesis import strategies as st

from sim.cli import main
from sim.sweep import EXAMPLE, expand, load_spec

#: JSON-like values of every shape a spec key could be given.
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats(allow_nan=True)
    | st.text(max_size=12) | st.sampled_from(["digits", "128FC-100FC", "ecp5-25k", "last", "v=12"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_KEYS = st.sampled_from(["stages", "grid", "data_root", "estimate", "synth", "cosim", "dataset", "arch",
                         "lanes", "epochs", "target", "bits", "seed", "unknown"])
_SPECS = st.dictionaries(_KEYS, _VALUES, max_size=5)


def _check(path) -> None:
    refused_or_valid(lambda: expand(load_spec(path), source=path.name))


@FUZZ
@given(data=mutated(EXAMPLE.encode()))
def test_mutated_example_spec(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("spec") / "sweep.toml"
    path.write_bytes(data)
    _check(path)


@FUZZ
@given(spec=_SPECS, grid=st.dictionaries(_KEYS, _VALUES, max_size=4))
def test_generated_json_specs(tmp_path_factory, spec: dict, grid: dict) -> None:
    path = tmp_path_factory.mktemp("spec") / "sweep.json"
    path.write_text(json.dumps({**spec, "grid": grid}, allow_nan=True))
    _check(path)


def test_deep_oversized_and_binary_specs(tmp_path, capsys) -> None:
    cases = {
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "deep.toml": "a = " + "[" * 100_000 + "]" * 100_000,
        "binary.toml": b"\xff\xfe\x00grid",
        "huge.json": '{"grid": {"arch": "' + "9" * (17 << 20) + 'FC"}}',
    }
    for name, content in cases.items():
        path = tmp_path / name
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        out = tmp_path / f"out-{name}"
        assert main(["sweep", str(path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and name in err, err
        assert not out.exists()
