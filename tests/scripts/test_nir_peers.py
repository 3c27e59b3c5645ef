"""scripts/nir_peers.py: the missing-peers error and options; with the peers extra (``-m slow``),
spikeforge's float forward and Norse / snnTorch give the same spikes on the same NIR files."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

pytest.importorskip("nir", reason='needs the nir extra: pip install -e ".[nir]"')

SCRIPT = "nir_peers"
PEERS = ("torch", "norse", "snntorch", "nirtorch")
needs_peers = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in PEERS),
    reason='needs the peers extra: pip install -e ".[peers]"',
)


def test_missing_peers_is_one_line(script: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(script, "versions", lambda: {name: None for name in script.PACKAGES})
    assert script.main(["--seeds", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        'nir_peers: torch, norse, snntorch, nirtorch not installed; install the peers extra: pip install -e ".[peers]"\n'
    )


def test_bad_seeds_exits_2(script: ModuleType, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        script.main(["--seeds", "0"])
    assert stop.value.code == 2
    assert "argument --seeds: 0 is out of range (allowed 1 or more)" in capsys.readouterr().err


@pytest.mark.slow
@needs_peers
@pytest.mark.parametrize("key", sorted(["fc", "conv"]))
@pytest.mark.parametrize("exact", [True, False], ids=["exact", "uniform"])
def test_spikeforge_export_runs_in_norse(script: ModuleType, key: str, exact: bool) -> None:
    for seed in range(2):
        row = script.spikeforge_to_norse(key, seed, exact)
        assert row["spikes"] > 0 and row["mismatches"] == 0, row


@pytest.mark.slow
@needs_peers
def test_norse_export_imports_with_the_same_spikes(script: ModuleType) -> None:
    for seed in range(2):
        row = script.norse_to_spikeforge(seed, exact=True)
        assert row["spikes"] > 0 and row["mismatches"] == 0 and row["reset"] == "zero", row


@pytest.mark.slow
@needs_peers
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_snntorch_export_imports_with_the_same_spikes(script: ModuleType, reset: str) -> None:
    for seed in range(2):
        row = script.snntorch_to_spikeforge(reset, seed, exact=True)
        assert row["spikes"] > 0 and row["mismatches"] == 0, row


@pytest.mark.slow
@needs_peers
def test_a_wrong_reset_is_seen(script: ModuleType) -> None:
    """The check fails when the resets differ: snnTorch subtracts, the import resets to zero."""
    rows = [script.snntorch_to_spikeforge("subtract", seed, True, import_reset="zero") for seed in range(2)]
    assert sum(row["mismatches"] for row in rows) > 0


@pytest.mark.slow
@needs_peers
def test_snntorch_import_of_an_if_graph(script: ModuleType) -> None:
    row = script.spikeforge_to_snntorch(0)
    assert row["result"].startswith("IF -> Leaky(")
