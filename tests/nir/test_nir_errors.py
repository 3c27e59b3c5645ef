"""Bad NIR files and graphs: one line naming the node (or file) and why, exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir", reason='needs the nir extra: pip install -e ".[nir]"')
h5py = pytest.importorskip("h5py")
from nir_cases import make_network

from sim import nir_io
from sim.cli import main


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def _import_error(tmp_path: Path, graph, capsys) -> str:
    path = tmp_path / "bad.nir"
    nir.write(path, graph)
    message = _cli_error(["import-nir", str(path), "--out", str(tmp_path / "out")], capsys)
    assert message.startswith("spikeforge import-nir: error: ")
    assert not (tmp_path / "out").exists()
    return message


def _conv_graph(pool: str = "avg"):
    return nir_io.network_to_graph(make_network("conv"), pool=pool)


def _affine(g):
    w = g.nodes["linear1"].weight
    g.nodes["linear1"] = nir.Affine(weight=w, bias=np.full(w.shape[0], 0.1, w.dtype))


def _leak(g):
    v = g.nodes["if1"].v_threshold
    g.nodes["if1"] = nir.LIF(
        tau=np.full_like(v, 20.0), r=np.ones_like(v), v_leak=np.zeros_like(v), v_threshold=v, v_reset=np.zeros_like(v)
    )


def _cuba(g):
    v = g.nodes["if1"].v_threshold
    ones = np.ones_like(v)
    g.nodes["if1"] = nir.CubaLIF(tau_syn=ones, tau_mem=ones, r=ones, v_leak=0 * ones, v_threshold=v)


def _linear_shape(g):
    w = g.nodes["linear2"].weight
    g.nodes["linear2"] = nir.Linear(weight=w[:, :-1])


def _threshold_shape(g):
    node = g.nodes["if1"]
    g.nodes["if1"] = nir.IF(r=node.r[:5], v_threshold=node.v_threshold[:5], v_reset=node.v_reset[:5])


def _v_reset(g):
    node = g.nodes["if2"]
    g.nodes["if2"] = nir.IF(r=node.r, v_threshold=node.v_threshold, v_reset=np.full_like(node.v_reset, -0.5))


def _no_encoder(g):
    del g.nodes["encoder"]
    g.edges = [("input", "linear1"), *g.edges[2:]]


def _branch(g):
    g.nodes["extra"] = nir.Output(output_type=np.array([24]))
    g.edges.append(("if1", "extra"))


def _negative_threshold(g):
    node = g.nodes["if2"]
    g.nodes["if2"] = nir.IF(r=node.r, v_threshold=-node.v_threshold, v_reset=node.v_reset)


def _stride(g):
    c = g.nodes["conv1"]
    g.nodes["conv1"] = nir.Conv2d(input_shape=(8, 8), weight=c.weight, stride=2, padding=1, dilation=1, groups=1, bias=c.bias)


def _conv_bias(g):
    c = g.nodes["conv1"]
    g.nodes["conv1"] = nir.Conv2d(
        input_shape=(8, 8), weight=c.weight, stride=1, padding=1, dilation=1, groups=1, bias=c.bias + 1
    )


def _conv_input_shape(g):
    c = g.nodes["conv3"]
    g.nodes["conv3"] = nir.Conv2d(
        input_shape=(8, 8), weight=c.weight, stride=1, padding=1, dilation=1, groups=1, bias=c.bias
    )


def _groups_array(g):
    c = g.nodes["conv1"]
    g.nodes["conv1"] = nir.Conv2d(
        input_shape=(8, 8), weight=c.weight, stride=1, padding=1, dilation=1,
        groups=np.full((2, 1), 0.5, np.float32), bias=c.bias,
    )


def _kernel5(g):
    c = g.nodes["conv1"]
    w = np.zeros((*c.weight.shape[:2], 5, 5), c.weight.dtype)
    g.nodes["conv1"] = nir.Conv2d(input_shape=(8, 8), weight=w, stride=1, padding=2, dilation=1, groups=1, bias=c.bias)


def _pool3(g):
    g.nodes["pool2"] = nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]), padding=np.array([0, 0]))


def _per_unit_conv_threshold(g):
    node = g.nodes["if1"]
    vth = node.v_threshold.copy()
    vth[0, 0, 0] += 0.25
    g.nodes["if1"] = nir.IF(r=node.r, v_threshold=vth, v_reset=node.v_reset)


def _metadata_reset(g):
    g.metadata["reset"] = "sometimes"


FC_CASES: dict[str, tuple[Callable, str]] = {
    "affine bias": (_affine, "node 'linear1' (Affine): bias is non-zero; spikeforge neurons have no bias"),
    "leak": (_leak, "node 'if1' (LIF): finite tau (20.0) is a membrane leak"),
    "cuba": (_cuba, "node 'if1' (CubaLIF): not supported: a synaptic current state and a leak"),
    "linear shape": (_linear_shape, "node 'linear2' (Linear): weight has 23 inputs, its input has 24 values"),
    "threshold shape": (_threshold_shape, "node 'if1' (IF): v_threshold has shape (5,), its input has shape (24,)"),
    "v_reset": (_v_reset, "node 'if2' (IF): v_reset must be 0"),
    "no encoder": (_no_encoder, "node 'linear1' (Linear): the Input must feed an IF"),
    "branch": (_branch, "graph: needs one Input and one Output node, found 1 and 2"),
    "threshold sign": (_negative_threshold, "node 'if2' (IF): v_threshold must be finite and > 0"),
    "metadata reset": (_metadata_reset, "metadata reset: 'sometimes' is not one of zero, subtract"),
}
CONV_CASES: dict[str, tuple[Callable, str]] = {
    "stride": (_stride, "node 'conv1' (Conv2d): stride (2, 2) is not supported (allowed 1)"),
    "conv bias": (_conv_bias, "node 'conv1' (Conv2d): bias is non-zero"),
    "conv input shape": (_conv_input_shape, "node 'conv3' (Conv2d): input_shape (8, 8) differs from its input's (H, W) = (4, 4)"),
    "groups": (_groups_array, "node 'conv1' (Conv2d): groups (0.5, 0.5) is not supported (allowed 1)"),
    "kernel": (_kernel5, "node 'conv1' (Conv2d): weight (4, 2, 5, 5) is not (C_out, C_in, 3, 3)"),
    "pool": (_pool3, "node 'pool2' (AvgPool2d): kernel_size"),
    "per-unit threshold": (_per_unit_conv_threshold, "node 'if1' (IF): v_threshold differs within a channel"),
}


@pytest.mark.parametrize("case", sorted(FC_CASES))
def test_bad_fc_graph(tmp_path: Path, fc_graph, case: str, capsys) -> None:
    change, expected = FC_CASES[case]
    change(fc_graph)
    assert expected in _import_error(tmp_path, fc_graph, capsys)


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_bad_conv_graph(tmp_path: Path, case: str, capsys) -> None:
    change, expected = CONV_CASES[case]
    graph = _conv_graph()
    change(graph)
    assert expected in _import_error(tmp_path, graph, capsys)


def test_unknown_node_type(tmp_path: Path, fc_graph, capsys) -> None:
    path = tmp_path / "bad.nir"
    nir.write(path, fc_graph)
    with h5py.File(path, "r+") as handle:
        del handle["node/nodes/if1/type"]
        handle["node/nodes/if1"].create_dataset("type", data="Spiky", dtype=h5py.string_dtype())
    message = _cli_error(["import-nir", str(path), "--out", str(tmp_path / "out")], capsys)
    assert message.endswith("node 'if1': unknown NIR node type 'Spiky'")


def test_malformed_node(tmp_path: Path, fc_graph, capsys) -> None:
    path = tmp_path / "bad.nir"
    nir.write(path, fc_graph)
    with h5py.File(path, "r+") as handle:
        del handle["node/nodes/if1/r"]
    message = _cli_error(["import-nir", str(path), "--out", str(tmp_path / "out")], capsys)
    assert "node 'if1' (IF): malformed (" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (lambda good: good[: len(good) // 2], "not a readable HDF5 file (Unable to synchronously open file (truncated file"),
        (lambda good: b"not a NIR file\n", "not a readable HDF5 file (Unable to synchronously open file (file signature not found))"),
    ],
    ids=["truncated", "not-hdf5"],
)
def test_unreadable_file(tmp_path: Path, fc_graph, content, expected: str, capsys) -> None:
    good = tmp_path / "good.nir"
    nir.write(good, fc_graph)
    bad = tmp_path / "bad.nir"
    bad.write_bytes(content(good.read_bytes()))
    assert expected in _cli_error(["import-nir", str(bad), "--out", str(tmp_path / "out")], capsys)


def test_hdf5_without_a_graph(tmp_path: Path, capsys) -> None:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("x", data=np.arange(3))
    message = _cli_error(["import-nir", str(path), "--out", str(tmp_path / "out")], capsys)
    assert message.endswith("plain.h5: not a NIR file (no 'node' group)")


def test_missing_file_and_bad_options(tmp_path: Path, capsys) -> None:
    message = _cli_error(["import-nir", str(tmp_path / "none.nir"), "--out", str(tmp_path / "o")], capsys)
    assert message.endswith("none.nir': no such NIR file")
    message = _cli_error(["import-nir", "x.nir", "--out", "o", "--dt", "0"], capsys)
    assert message.endswith("argument --dt: 0.0 is out of range (allowed a finite number > 0)")
    message = _cli_error(["import-nir", "x.nir", "--out", "o", "--reset", "half"], capsys)
    assert "argument --reset: invalid choice: 'half'" in message
    message = _cli_error(["export-nir", "--checkpoint", str(tmp_path / "none"), "--out", "x.nir"], capsys)
    assert message.startswith("spikeforge export-nir: error: checkpoint: folder ")


def test_export_refuses_a_folder_as_out(tmp_path: Path, capsys) -> None:
    make_network("fc").save(tmp_path / "ck")
    (tmp_path / "dir").mkdir()
    message = _cli_error(["export-nir", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "dir")], capsys)
    assert message.endswith("is a folder, not a file")


def test_missing_nir_package_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    make_network("fc").save(tmp_path / "ck")
    monkeypatch.setitem(sys.modules, "nir", None)
    message = _cli_error(["export-nir", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "n.nir")], capsys)
    assert message == 'spikeforge export-nir: error: the nir package is not installed; install the nir extra: pip install -e ".[nir]"'
    message = _cli_error(["import-nir", str(tmp_path / "n.nir"), "--out", str(tmp_path / "o")], capsys)
    assert message.endswith('install the nir extra: pip install -e ".[nir]"')
