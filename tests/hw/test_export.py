"""Unit registry, Verilog export, ``spikeforge gen`` and Verilator -Wall lint."""

from __future__ import annotations

import gc
import re
import subprocess
from pathlib import Path

import pytest

import sim.cli
from hw.export import UNITS, Unit, get_unit, write_all, write_unit
from hw.queue import SpikeQueue
from sim.toolchain import VERILATOR_WAIVERS, setup_verilator


def test_registry_defaults_follow_the_contract() -> None:
    assert list(UNITS) == [
        "spike_queue", "reciprocal_divider", "neuron_lane", "dv_unit", "dot_product_lane",
        "gradient_accumulator", "update_unit",
    ]
    assert dict(get_unit("reciprocal_divider").defaults) == {"threshold_bits": 15, "k": 16}
    assert dict(get_unit("neuron_lane").defaults) == {"w": 8, "v": 16}
    assert dict(get_unit("dv_unit").defaults) == {
        "g": 16, "w": 8, "fan_out": 1024, "k": 16, "shift": 16
    }
    assert dict(get_unit("update_unit").defaults) == {
        "lanes": 8, "w": 8, "v": 16, "dw": 24, "dth": 24, "lfsr_init": 1
    }
    assert get_unit("spike_queue").params({"depth": 8}) == {"index_bits": 10, "depth": 8, "stages": 1}


def test_registry_rejects_unknown_names_and_parameters() -> None:
    with pytest.raises(ValueError, match=r"unit: 'adder' is not a unit \(allowed spike_queue, "):
        get_unit("adder")
    with pytest.raises(ValueError, match=r"params: spike_queue has no parameter 'width'"):
        get_unit("spike_queue").params({"width": 3})
    with pytest.raises(ValueError, match=r"defaults: q needs exactly the parameters"):
        Unit("q", SpikeQueue, {"depth": 4})


def test_write_unit_names_file_and_top_module(tmp_path: Path) -> None:
    path = write_unit("spike_queue", tmp_path / "out", {"index_bits": 6})
    assert path == tmp_path / "out" / "spike_queue.v"
    text = path.read_text()
    assert re.search(r"^module spike_queue\(", text, re.M)
    assert "input [5:0] push__payload;" in text


def test_write_all_writes_every_unit(tmp_path: Path) -> None:
    paths = write_all(tmp_path)
    assert [p.name for p in paths] == [f"{name}.v" for name in UNITS]
    for name, path in zip(UNITS, paths):
        assert re.search(rf"^module {name}\(", path.read_text(), re.M)


def _warnings(path: Path, top: str, waivers: tuple[str, ...]) -> tuple[int, set[str], str]:
    verilator = setup_verilator()
    result = subprocess.run(
        [str(verilator), "--lint-only", "-Wall", *(f"-Wno-{w}" for w in waivers),
         "--top-module", top, str(path)],
        capture_output=True, text=True, check=False,
    )
    return result.returncode, set(re.findall(r"%Warning-([A-Z]+)", result.stderr)), result.stderr


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("units")
    return dict(zip(UNITS, write_all(out)))


@pytest.mark.parametrize("name", list(UNITS))
def test_exported_unit_lints_clean_with_the_documented_waivers(
    exported: dict[str, Path], name: str
) -> None:
    code, found, stderr = _warnings(exported[name], name, VERILATOR_WAIVERS)
    assert (code, found) == (0, set()), stderr


def test_every_waiver_is_needed(exported: dict[str, Path]) -> None:
    raised: set[str] = set()
    for name, path in exported.items():
        raised |= _warnings(path, name, ())[1]
    assert set(VERILATOR_WAIVERS) <= raised
    assert raised <= set(VERILATOR_WAIVERS)


@pytest.fixture()
def gen_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI with just this subcommand (others are tested in their own modules)."""
    monkeypatch.setattr(sim.cli, "COMMAND_MODULES", ("gen",))


def test_cli_gen_unit_and_all_units(
    gen_only: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert sim.cli.main(["gen", "--unit", "reciprocal_divider", "--out", str(tmp_path / "a"),
                         "--params", "threshold_bits=8,k=10"]) == 0
    text = (tmp_path / "a" / "reciprocal_divider.v").read_text()
    assert "input [7:0] vth__payload;" in text and "output [10:0] result__payload;" in text
    assert sim.cli.main(["gen", "--all-units", "--out", str(tmp_path / "b")]) == 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(f"{n}.v" for n in UNITS)
    printed = capsys.readouterr().out.split()
    assert printed[0] == str(tmp_path / "a" / "reciprocal_divider.v")
    assert len(printed) == 1 + len(UNITS)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--unit", "adder"],
         "unit: 'adder' is not a unit (allowed spike_queue, reciprocal_divider, neuron_lane, "
         "dv_unit, dot_product_lane, gradient_accumulator, update_unit)"),
        (["--unit", "spike_queue", "--params", "depth=0"],
         "depth: 0 is out of range (allowed 1 or more)"),
        (["--unit", "spike_queue", "--params", "depth"], "--params: 'depth' is not KEY=VALUE"),
        (["--unit", "spike_queue", "--params", "depth=x"],
         "--params: depth: 'x' is not an integer"),
        (["--all-units", "--params", "k=9"], "--params: only allowed with --unit"),
        (["--unit", "dv_unit", "--params", "g=32,w=16,shift=0"],
         "k: 16 is too large for the product width: (acc * R) >> shift needs "
         "g + w + ceil(log2 fan_out) + 1 + k - shift = 75 bits (allowed up to 61)"),
        (["--unit", "update_unit", "--params", "lanes=0"],
         "lanes: 0 is out of range (allowed 1 or more)"),
    ],
)
def test_cli_gen_user_errors(
    gen_only: None, tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    assert sim.cli.main(["gen", *argv, "--out", str(tmp_path)]) == 2
    gc.collect()  # a component whose constructor raised warns when collected: inside the filter
    err = capsys.readouterr().err
    assert err.startswith(f"spikeforge gen: error: {message}") and err.count("\n") == 1
