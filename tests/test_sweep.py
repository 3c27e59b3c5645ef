"""``spikeforge sweep`` (sim/sweep.py): spec checks, expansion, and tiny sweeps on a local
2-CPU Ray (learn + estimate on digits, no place-and-route): the table against the same
learn and estimate run directly, resume after a deleted result and (slow) after a SIGKILLed
sweep process joined to that Ray with --address, and a failing point reported without
stopping the others."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sim.synth
from sim.cli import main
from sim.commands.demo import run_step
from sim.sweep import (
    EXAMPLE,
    ROW_FIELDS,
    STAGES,
    expand,
    learn_argv,
    load_spec,
    stage_argv,
)

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _tiny(lanes: str = "[1, 2]", extra: str = "") -> str:
    """The example spec with other lanes and extra grid lines."""
    spec = EXAMPLE.replace("lanes = [1, 2]", f"lanes = {lanes}")
    return spec.replace("[grid]\n", f"[grid]\n{extra}")


# Spec checks: one line, exit 2, before any job ------------------------------------------

BAD_SPECS = {
    "unknown top key": ("grdi = 1\n", "spec.toml: grdi: unknown key (allowed stages, grid, data_root, estimate, synth, cosim)"),
    "unknown grid key": ("[grid]\nlane = [1]\n", "spec.toml: grid.lane: unknown key (allowed dataset, arch, epochs,"),
    "lanes out of range": ("[grid]\nlanes = [1, 0]\n", "spec.toml: grid.lanes: 0 is out of range (allowed 1..1024)"),
    "queue depth type": ("[grid]\nqueue_depth = ['x']\n", "spec.toml: grid.queue_depth: must be an integer, not 'x'"),
    "unknown target": (
        "[grid]\ntarget = ['ecp5']\n", "spec.toml: grid.target: 'ecp5' is not one of none, ice40-up5k, ecp5-25k, ecp5-45k, ecp5-85k"
    ),
    "unknown dataset": ("[grid]\ndataset = ['cifar10']\n", "spec.toml: grid.dataset: 'cifar10' is not one of digits, mnist10k"),
    "bad bits": ("[grid]\nbits = ['w=99']\n", "spec.toml: grid.bits: w: 99 is out of range (allowed 2..16)"),
    "empty axis": ("[grid]\nseed = []\n", "spec.toml: grid.seed: empty list"),
    "stage name": ("stages = ['learn', 'place']\n", "spec.toml: stages: 'place' is not one of learn, estimate, gen, synth, cosim"),
    "no learn": ("stages = ['estimate']\n", "spec.toml: stages: must include 'learn'"),
    "synth without gen": ("stages = ['learn', 'synth']\n", "spec.toml: stages: 'synth' needs 'gen'"),
    "estimate table": ("[estimate]\ntable = 'nope'\n", "spec.toml: estimate.table: 'nope' is not one of "),
    "settings key": ("[cosim]\nsteps = 2\n", "spec.toml: cosim.steps: unknown key (allowed samples, learn, sim)"),
    "population": (
        "[grid]\narch = ['32FC-10FC']\n",
        "spec.toml: grid: population: the last layer has 10 neurons, which is not classes (10) x population (10) "
        "(arch '32FC-10FC', population 10)",
    ),
    "lanes do not fit": (
        "[grid]\narch = ['32FC-10FC']\npopulation = [1]\nlanes = [3]\ntarget = ['ice40-up5k']\nbits = ['v=12,dw=16']\n",
        ("spec.toml: grid.lanes: P = 3, Q = 16 on ice40-up5k (32FC-10FC, bits v=12,dw=16): lanes: single-port weight "
         "memories (ice40-up5k) need an even number of words per weight row; P = 3 gives c_1 = 11; lanes that fit "
         "ice40-up5k at Q = 16: 1"),
    ),
    "second grid": ("[[grid]]\nlanes = [1]\n[[grid]]\nlanes = [-1]\n", "spec.toml: grid[1].lanes: -1 is out of range"),
    "toml syntax": ("[grid\n", "spec.toml: not valid TOML (Expected ']' at the end of a table declaration"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_is_one_line_exit_2_before_any_job(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, message = BAD_SPECS[case]
    out = tmp_path / "out"
    assert main(["sweep", str(_write(tmp_path, text)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"spikeforge sweep: error: {message}"), err[0]
    assert not out.exists()  # nothing started


def test_spec_file_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for path, message in (
        (tmp_path / "spec.yaml", "SPEC: '"),
        (tmp_path / "missing.toml", "SPEC: '"),
        (_write(tmp_path, "[1, 2]", "list.json"), "list.json: expected a table of keys"),
        (_write(tmp_path, "{", "broken.json"), "broken.json: not valid JSON"),
    ):
        assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("spikeforge sweep: error: ") and message in err[0], err
    assert main(["sweep", "--out", str(tmp_path)]) == 2
    assert "SPEC and --out DIR are required" in capsys.readouterr().err


def test_missing_tools_of_a_stage_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sim.toolchain

    def missing(simulator: str) -> None:
        raise sim.toolchain.ToolchainError(f"{simulator} is not installed")

    monkeypatch.setattr(sim.toolchain, "require", missing)
    spec = _write(tmp_path, EXAMPLE.replace('stages = ["learn", "estimate"]', 'stages = ["learn", "cosim"]'))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == "spikeforge sweep: error: spec.toml: stages: verilator is not installed"


def test_without_ray_one_line_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["sweep", str(_write(tmp_path, EXAMPLE)), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (
        'spikeforge sweep: error: Ray is not installed: pip install -e ".[sweep]"'
    )


# Expansion ----------------------------------------------------------------------------


def test_expansion_product_defaults_and_stable_ids(tmp_path: Path) -> None:
    text = _tiny("[1, 2, 4]").replace("seed = [0]", "seed = [0, 3]")
    spec = load_spec(_write(tmp_path, text))
    spec["grid"]["target"] = ["none", "ecp5-25k"]
    sweep = expand(spec)
    assert len(sweep.points) == 3 * 2 * 2
    assert [p.params["lanes"] for p in sweep.points[:3]] == [1, 1, 2]  # the last key varies fastest
    assert {p.params["seed"] for p in sweep.points} == {0, 3}
    assert all(p.params["timesteps"] == 8 and p.params["batch"] == 1 for p in sweep.points)  # defaults
    assert len({p.id for p in sweep.points}) == 12
    assert len({p.learn_id for p in sweep.points}) == 2  # one learn per seed
    assert sweep.stages == ("learn", "estimate") and sweep.settings["estimate"] == {"samples": 20, "table": "horowitz45"}
    again = expand(load_spec(_write(tmp_path, text, "again.toml")) | {"grid": spec["grid"]})
    assert [p.id for p in again.points] == [p.id for p in sweep.points]
    # another estimate setting changes every point's id, not the learn ids
    changed = expand({**spec, "estimate": {"samples": 21}})
    assert not {p.id for p in changed.points} & {p.id for p in sweep.points}
    assert {p.learn_id for p in changed.points} == {p.learn_id for p in sweep.points}
    # the default epochs are the recipe's; several grids concatenate, a repeated point runs once
    grid = {"arch": "32FC-10FC", "population": 1, "lanes": [1, 2]}
    merged = expand({"grid": [grid, {**grid, "lanes": [2, 4]}]})
    assert [p.params["lanes"] for p in merged.points] == [1, 2, 4]
    assert merged.points[0].params["epochs"] == 60
    # the fc decoder: every stage builds it
    fc = expand({"grid": {"decoder": ["last", "fc"], "lanes": [2]}})
    assert [p.params["decoder"] for p in fc.points] == ["last", "fc"]


def test_example_prints_a_spec_that_expands_to_two_points(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["sweep", "--print-example"]) == 0
    printed = capsys.readouterr().out
    assert printed == EXAMPLE
    sweep = expand(load_spec(_write(tmp_path, printed)))
    assert len(sweep.points) == 2 and sweep.stages == ("learn", "estimate")


def test_every_stage_is_the_subcommand_with_the_point_options(tmp_path: Path) -> None:
    from sim.cli import build_parser

    spec = {"stages": list(STAGES), "cosim": {"sim": "verilator"},
            "grid": {"arch": "32FC-10FC", "population": 1, "lanes": 2, "queue_depth": 4, "target": "ecp5-25k"}}
    try:
        sweep = expand(spec)
    except ValueError as error:  # synth needs the fpga extra
        pytest.skip(str(error))
    point = sweep.points[0]
    parser = build_parser()
    for stage in STAGES[1:]:
        args = parser.parse_args(stage_argv(stage, point, "CKPT", tmp_path, sweep.config()))
        assert args.command == stage
        if stage != "synth":
            assert (args.lanes, getattr(args, "queue_depth", 4)) == (2, 4)
    cosim = parser.parse_args(stage_argv("cosim", point, "CKPT", tmp_path, sweep.config()))
    assert (cosim.samples, cosim.learn, cosim.target, cosim.sim) == (2, True, "ecp5-25k", "verilator")
    synth = parser.parse_args(stage_argv("synth", point, "CKPT", tmp_path, sweep.config()))
    assert (synth.gen_dir, synth.target, synth.seed) == (str(tmp_path / "verilog"), "ecp5-25k", 1)


# Sweeps on a local 2-CPU Ray --------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with 2 CPUs for the module (its start-up takes seconds); the tests that
    use it skip without Ray."""
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[sweep]")')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def example_sweep(local_ray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The printed example written to a file and run: its sweep folder."""
    folder = tmp_path_factory.mktemp("sweep")
    spec = _write(folder, EXAMPLE, "example.toml")
    assert main(["sweep", str(spec), "--out", str(folder / "out"), "--no-progress"]) == 0
    return folder


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())


def test_example_sweep_table_equals_direct_learn_and_estimate(example_sweep: Path, tmp_path: Path) -> None:
    out = example_sweep / "out"
    rows = _rows(out)
    sweep = expand(load_spec(example_sweep / "example.toml"))
    assert [row["id"] for row in rows] == [p.id for p in sweep.points]
    assert [row["lanes"] for row in rows] == [1, 2] and {row["status"] for row in rows} == {"ok"}
    # the same learn and estimate, run directly
    learn = sweep.points[0].learn_params()
    assert run_step(learn_argv(learn, tmp_path, None)) == 0
    learned = json.loads((tmp_path / "learn.json").read_text())
    for point, row in zip(sweep.points, rows, strict=True):
        folder = tmp_path / point.id
        folder.mkdir()
        assert run_step(stage_argv("estimate", point, str(tmp_path / "checkpoint"), folder, sweep.config())) == 0
        estimate = json.loads((folder / "estimate.json").read_text())
        assert row["accuracy"] == learned["accuracy"] and row["spikes_per_inference"] == learned["spikes_per_inference"]
        for key in ("cycles_per_inference", "cycles_per_learning_step", "synaptic_ops_per_inference",
                    "energy_per_inference", "energy_per_learning_step", "energy_unit"):
            assert row[key] == estimate[key], key
        assert row["fits"] is None and row["latency_ms_per_learning_step"] is None  # no synthesis
    assert rows[1]["cycles_per_learning_step"] < rows[0]["cycles_per_learning_step"]  # P = 2 is faster
    assert [row["pareto"] for row in rows] == [False, True]  # same accuracy, fewer cycles
    # the CSV holds the same rows, the plot is a PNG
    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0].split(",") == list(ROW_FIELDS) and len(lines) == 3
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_recomputes_only_the_point_whose_result_is_gone(
    example_sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = example_sweep / "out"
    before = _rows(out)
    kept, deleted = (out / "points" / row["id"] / "result.json" for row in before)
    kept_time = kept.stat().st_mtime_ns
    deleted.unlink()
    capsys.readouterr()
    assert main(["sweep", str(example_sweep / "example.toml"), "--out", str(out), "--no-progress"]) == 0
    assert "1 computed, 1 reused, 0 failed" in capsys.readouterr().err
    assert kept.stat().st_mtime_ns == kept_time and deleted.is_file()
    after = _rows(out)
    figures = [key for key in ROW_FIELDS if key != "seconds"]
    assert [[row[key] for key in figures] for row in after] == [[row[key] for key in figures] for row in before]


def test_failing_point_is_reported_and_the_others_finish(
    example_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    shutil.copytree(example_sweep / "out" / "learn", out / "learn")  # seed 0 is learned already
    spec = _write(tmp_path, EXAMPLE.replace("seed = [0]", "seed = [0, 1]").replace("lanes = [1, 2]", "lanes = [2]"))
    sweep = expand(load_spec(spec))
    blocked = out / "learn" / sweep.points[1].learn_id
    blocked.write_text("not a folder")  # the seed-1 learn cannot write its checkpoint
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    good, bad = _rows(out)
    assert good["status"] == "ok" and good["cycles_per_inference"] > 0
    assert bad["status"] == "failed" and bad["error"].startswith("learn: FileExistsError: ")
    assert bad["cycles_per_inference"] is None and bad["pareto"] is None
    assert f"point {bad['id']} (P = 2, none) failed: learn: FileExistsError" in err
    assert "2 computed, 0 reused, 1 failed" in err  # the seed-0 point ran on the copied learn


@pytest.mark.slow  # a second driver process: its start-up and fresh Ray workers take a minute on 2 loaded cores
def test_sigkilled_sweep_resumes_with_its_finished_points(
    local_ray, example_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    shutil.copytree(example_sweep / "out" / "learn", out / "learn")  # only the estimates run
    spec = _write(tmp_path, _tiny("[1, 2, 3, 4]"))
    address = local_ray.get_runtime_context().gcs_address  # the sweep joins this Ray as a cluster
    process = subprocess.Popen(
        [sys.executable, "-m", "sim.cli", "sweep", str(spec), "--out", str(out), "--address", address, "--no-progress"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("points/*/result.json")):
            assert process.poll() is None and time.monotonic() < deadline, "no point finished"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    time.sleep(1)  # Ray cancels the killed driver's tasks
    finished = {path.parent.name: path.stat().st_mtime_ns for path in out.glob("points/*/result.json")}
    assert 1 <= len(finished) < 4 and not (out / "results.json").exists()
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    rows = _rows(out)
    assert [row["lanes"] for row in rows] == [1, 2, 3, 4] and {row["status"] for row in rows} == {"ok"}
    for point, mtime in finished.items():  # reused, not recomputed
        assert (out / "points" / point / "result.json").stat().st_mtime_ns == mtime
    computed, reused = map(int, re.search(r"(\d+) computed, (\d+) reused, 0 failed", err).groups())
    assert computed + reused == 4 and reused >= len(finished)  # a task may finish as the driver dies


def test_pareto_front_and_figure() -> None:
    from sim.plots import pareto_figure, pareto_front

    # (x = latency, y = accuracy): equal points both stay, a dominated one does not
    assert pareto_front([1, 2, 2, 3, 1], [0.5, 0.9, 0.9, 0.8, 0.4]) == [True, True, True, False, False]
    rows = [
        {"target": "ecp5-25k", "lanes": p, "queue_depth": 4, "accuracy": a, "latency_ms_per_learning_step": x,
         "logic": logic, "pareto": on}
        for p, a, x, logic, on in ((1, 0.9, 2.0, 1000, False), (2, 0.9, 1.0, 3000, True), (4, None, None, None, None))
    ]
    axis = pareto_figure(rows, "latency_ms_per_learning_step").axes[0]
    scatter = axis.collections[0]
    assert list(scatter.get_linewidths()) == [0.0, 1.5]  # the front edged
    assert scatter.get_sizes()[1] == 430 and scatter.get_sizes()[0] == pytest.approx(30 + 400 / 3)
    assert axis.get_xlabel() == "latency per learning step at Fmax (ms)"
    assert "2 points (1 without figures)" in axis.get_title()


@pytest.mark.parametrize("spec", sorted(path.name for path in (ROOT / "scripts").glob("sweep_*.toml")))
def test_the_scripts_specs_expand(spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The specs the docs name are valid as they are: every point's core fits its target
    (the FPGA tools reported as installed: the spec is checked, not the machine)."""
    monkeypatch.setattr(sim.synth, "require_tools", lambda target: {})
    sweep = expand(load_spec(ROOT / "scripts" / spec))
    assert sweep.points and sweep.stages[0] == "learn"
    if "synth" in sweep.stages:
        assert all(point.params["target"] != "none" for point in sweep.points)
