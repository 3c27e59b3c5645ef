"""Smoke tests of scripts/ablation.py: the row set, bad options, and a tiny digits run
(1 epoch, a few rows, T = 4 and 8) that writes the section, reuses its runs and refuses a
folder holding another configuration."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from matplotlib.image import imread

SCRIPT = "ablation"

SWITCHES = ("reset", "threshold", "surrogate", "decoder")


def test_rows_are_the_baseline_and_ten_distinct_ablations(script: ModuleType) -> None:
    rows = script.ROWS
    assert rows[0].name == "baseline" and rows[0].changes == {}
    assert rows[0].switches == {"reset": "zero", "threshold": "fixed", "surrogate": "rect", "decoder": "rate"}
    assert len(rows) == 11
    assert len({tuple(row.switches[key] for key in SWITCHES) for row in rows}) == 11
    enhanced = script.ROW_BY_NAME["enhanced"]
    assert enhanced.switches == {"reset": "subtract", "threshold": "trainable", "surrogate": "scaled", "decoder": "last"}
    assert script.ROW_BY_NAME["subtract_fixed_scaled_last"].switches["threshold"] == "fixed"
    for row in rows:  # every row is a valid spec, and "changes" really changes each switch it names
        assert all(script.BASELINE[key] != value for key, value in row.changes.items())
        assert row.switches["threshold"] == "fixed" or row.switches["reset"] == "subtract"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--datasets", "cifar10"], "argument --datasets: 'cifar10' is not one of digits, mnist10k"),
        (["--epochs", "0"], "argument --epochs: 0 is out of range (allowed 1 or more)"),
        (["--epochs", "mnist10k=0"], "argument --epochs: 0 is out of range (allowed 1 or more)"),
        (["--epochs", "cifar=3"], "argument --epochs: 'cifar' is not one of digits, mnist10k"),
        (["--seeds", "0"], "argument --seeds: 0 is out of range (allowed 1 or more)"),
        (["--seeds", "two"], "argument --seeds: 'two' is not an integer"),
        (["--rows", "best"], "argument --rows: 'best' is not one of baseline, subtract"),
        (["--jobs", "0"], "argument --jobs: 0 is out of range (allowed 1 or more)"),
    ],
)
def test_bad_option_exits_2_with_one_line(
    script: ModuleType, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as stop:
        script.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_plan_budget_per_dataset(script: ModuleType) -> None:
    args = script.build_parser().parse_args(
        ["--epochs", "digits=5,mnist10k=2", "--seeds", "mnist10k=1,digits=2", "--rows", "last"]
    )
    runs = script.plan(args)
    digits = [run for run in runs if run.dataset == "digits"]
    mnist = [run for run in runs if run.dataset == "mnist10k"]
    # baseline, last at T = 8; enhanced and baseline at T = 4, 16 (T = 8 baseline shared)
    per_seed = ["baseline/8", "last/8", "enhanced/4", "baseline/4", "enhanced/8", "enhanced/16", "baseline/16"]
    assert [f"{run.row.name}/{run.timesteps}" for run in digits if run.seed == 0] == per_seed
    assert len(digits) == 2 * len(per_seed) and len(mnist) == len(per_seed)
    assert {run.epochs for run in digits} == {5} and {run.epochs for run in mnist} == {2}
    default = script.plan(script.build_parser().parse_args(["--datasets", "mnist10k", "--seeds", "1"]))
    assert {run.epochs for run in default} == {None}
    assert default[0].expected()["epochs"] == 30  # the train command's recipe, read not copied


def test_tiny_run_tables_resume_and_conflict(
    script: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out, md = tmp_path / "runs", tmp_path / "results.md"
    md.write_text("# Results\n\n## Other\n\nkept\n")
    argv = ["--datasets", "digits", "--epochs", "1", "--seeds", "2", "--rows", "subtract,enhanced",
            "--timesteps", "4,8", "--out", str(out), "--write", str(md), "--no-progress"]
    assert script.main(argv) == 0
    folders = sorted(path.name for path in (out / "digits").iterdir())
    assert folders == sorted(f"{name}_T{t}_s{s}" for name, t in
                             [("baseline", 8), ("subtract", 8), ("enhanced", 8), ("enhanced", 4), ("baseline", 4)]
                             for s in (0, 1))
    specs = {name: json.loads((out / "digits" / f"{name}_T8_s0" / "checkpoint.json").read_text())["spec"]
             for name in ("baseline", "subtract", "enhanced")}
    for name in ("subtract", "enhanced"):  # the saved specs differ from the baseline as named
        changed = {key for key in SWITCHES if specs[name][key] != specs["baseline"][key]}
        assert changed == set(script.ROW_BY_NAME[name].changes)
    assert json.loads((out / "digits" / "enhanced_T4_s1" / "result.json").read_text())["config"]["timesteps"] == 4

    text = md.read_text()
    assert text.startswith("# Results\n\n## Other\n\nkept\n\n" + script.HEADING)
    table = [line for line in text.splitlines() if line.startswith("| - | baseline")]
    assert len(table) == 1 and table[0].endswith("| 1.000 |")  # the baseline's spike ratio is 1
    assert "1 epoch (the recipe has 250), 2 seeds (0, 1)" in text
    table3 = text.split("Table III (time steps):")[1].split("Against the paper")[0]
    t3 = [line.split(" | ")[:2] for line in table3.splitlines() if line.startswith(("| 4 |", "| 8 |"))]
    assert t3 == [["| 4", "enhanced"], ["| 4", "baseline"], ["| 8", "enhanced"], ["| 8", "baseline"]]
    assert "- all four: enhanced STBP against the baseline" in text
    assert "10 runs trained, 0 reused" in text
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["runs"]) == 10
    tables = json.loads((tmp_path / "ablation.json").read_text())  # next to the Markdown file
    assert sorted((row["row"], row["timesteps"]) for row in tables["digits"]) == [
        ("baseline", 4), ("baseline", 8), ("enhanced", 4), ("enhanced", 8), ("subtract", 8)
    ]
    runs = [run for run in summary["runs"] if run["row"] == "subtract"]
    row = next(row for row in tables["digits"] if row["row"] == "subtract")
    assert row["seeds"] == 2 and row["accuracy"] == sum(run["accuracy"] for run in runs) / 2

    # A cut-short run (no result.json, its trainer state kept) continues from its state.
    result_file = out / "digits" / "enhanced_T4_s1" / "result.json"
    before = json.loads(result_file.read_text())
    result_file.unlink()
    cut_short = script.Run("digits", script.ROW_BY_NAME["enhanced"], 4, 1, 1)
    assert "--resume" in cut_short.train_argv(out, None, False)
    assert "--resume" not in cut_short.train_argv(tmp_path / "elsewhere", None, False)
    assert script.main(argv) == 0
    assert "1 runs trained, 9 reused" in md.read_text()
    assert json.loads(result_file.read_text())["accuracy"] == before["accuracy"]

    def no_training(*_: object) -> None:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(script, "train_run", no_training)
    for name in ("checkpoint.json", "weights.npz"):  # a run kept by its result only, as in docs/runs/
        (out / "digits" / "baseline_T4_s0" / name).unlink()
    capsys.readouterr()
    assert script.main(argv) == 0
    assert "0 runs trained, 10 reused" in md.read_text()

    config = out / "digits" / "subtract_T8_s1" / "result.json"
    result = json.loads(config.read_text())
    result["config"]["epochs"] = 7
    config.write_text(json.dumps(result))
    assert script.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ablation.py: error: ") and "subtract_T8_s1 holds a run with epochs=7" in err
    assert err.count("\n") == 1


def test_failed_runs_are_explained(script: ModuleType) -> None:
    def result(accuracy: float, loss: list[float], train: list[float]) -> dict:
        return {"accuracy": accuracy, "spikes_per_inference": 100.0, "spikes_per_layer": [40.0, 60.0],
                "synaptic_ops_per_inference": 1000.0, "samples": 100,
                "history": {"seconds": 1.0, "loss": loss, "train_accuracy": train},
                "config": {"epochs": 3, "arch": "128FC-100FC", "population": 10}}

    row = script.ROW_BY_NAME
    runs = {
        script.Run("digits", row["baseline"], 16, 0, 3): result(0.95, [0.09, 0.05, 0.04], [0.3, 0.9, 0.95]),
        script.Run("digits", row["enhanced"], 16, 0, 3): result(0.1, [0.1, 0.1, 0.1], [0.1, 0.1, 0.1]),
        script.Run("digits", row["enhanced"], 16, 1, 3): result(0.5, [0.09, 0.06, 0.08], [0.2, 0.7, 0.5]),
        script.Run("digits", row["enhanced"], 16, 2, 3): result(0.9, [0.09, 0.06, 0.05], [0.2, 0.7, 0.9]),
    }
    lines = script.failed_runs(runs, script.collect(runs), "digits")
    assert lines[0].startswith("Runs more than 10 points below the baseline's mean accuracy")
    assert lines[2].startswith("- enhanced, T = 16, seed 0: test accuracy 10.00 %; its training loss was 0.1000 in every epoch")
    assert lines[3].startswith("- enhanced, T = 16, seed 1: test accuracy 50.00 %; its training accuracy peaked at 70.0 % in epoch 2")
    assert len(lines) == 5  # seed 2 is within 10 points
    assert script.failed_runs(runs, script.collect(runs), "mnist10k") == []


def test_table_json_carries_the_spread_over_seeds(script: ModuleType) -> None:
    def cell(accuracy: list[float], spikes: list[float]) -> object:
        n = len(accuracy)
        return script.Cell(accuracy=accuracy, spikes=spikes, encoder=[0.0] * n, ops=[0.0] * n,
                           seconds=[1.0] * n, epochs=1, arch="128FC-100FC", population=10, test_images=360)

    tables = script.table_json({
        ("digits", "baseline", 8): cell([0.90, 0.94], [100.0, 120.0]),
        ("digits", "enhanced", 8): cell([0.97], [90.0]),
    })
    baseline, enhanced = tables["digits"]
    assert baseline["accuracy_std"] == pytest.approx(0.0282843, abs=1e-6)
    assert baseline["spikes_std"] == pytest.approx(14.142136, abs=1e-5)
    assert enhanced["accuracy_std"] is None and enhanced["spikes_std"] is None


def test_arch_runs_a_conv_ablation_in_two_processes_with_its_own_section(script: ModuleType, tmp_path: Path) -> None:
    out, md = tmp_path / "runs", tmp_path / "results.md"
    arch = "4C3-AP2-100FC"
    argv = ["--datasets", "digits", "--epochs", "1", "--seeds", "1", "--rows", "enhanced", "--timesteps", "8",
            "--arch", arch, "--out", str(out), "--write", str(md), "--plot", str(tmp_path / "plots"),
            "--no-progress", "--jobs", "2"]
    assert script.main(argv) == 0
    assert "2 runs trained, 0 reused" in md.read_text()  # baseline and enhanced, one process each
    assert imread(tmp_path / "plots" / f"ablation_{arch}_digits.png").shape[:2] == (660, 960)
    spec = json.loads((out / "digits" / "enhanced_T8_s0" / "checkpoint.json").read_text())["spec"]
    assert spec["arch"] == arch
    assert script.heading(arch) in md.read_text().splitlines()
    tables = json.loads((tmp_path / f"ablation_{arch}.json").read_text())
    assert sorted(row["row"] for row in tables["digits"]) == ["baseline", "enhanced"]
    assert not (tmp_path / "ablation.json").exists()  # the FC tables (the demo's plot) untouched
    assert script.Run("digits", script.ROW_BY_NAME["enhanced"], 8, 0, 1).expected()["arch"] == "128FC-100FC"


def _fail_the_baseline(run, out: Path, data_root, progress: bool) -> tuple[dict, str]:
    """A trainer (module level, so worker processes can unpickle it) whose baseline run fails."""
    if run.row.name == "baseline":
        raise ValueError(f"{run.row.name} failed")
    return {"accuracy": 0.5}, "trained"


def test_a_failed_run_in_a_worker_process_stops_the_ablation(script: ModuleType, tmp_path: Path) -> None:
    runs = [script.Run("digits", script.ROW_BY_NAME[name], 8, 0, 1) for name in ("baseline", "enhanced")]
    with pytest.raises(ValueError, match="baseline failed"):
        script.execute(runs, tmp_path, progress=False, trainer=_fail_the_baseline, jobs=2)
    results, trained = script.execute(runs[1:], tmp_path, progress=False, trainer=_fail_the_baseline, jobs=2)
    assert trained == 1 and results == {runs[1]: {"accuracy": 0.5}}
