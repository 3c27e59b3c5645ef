"""Hostile CIFAR-10 batches (model.data.read_cifar_batch and its restricted unpickler):
pickles that try to run code are refused and proven not to run (each would create a
marker file: a plain unpickler does, the batch reader does not), numpy's allowed
reconstruction refuses hostile arguments, and mutated batches load or are refused."""

from __future__ import annotations

import copyreg
import os
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hostile import FUZZ, mutated, refused_or_valid
from hypothesis import given
from hypothesis import strategies as st

from model.data import read_cifar_batch


def _text(value: str) -> bytes:
    """BINUNICODE of ``value``."""
    raw = value.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


def payloads(marker: Path) -> dict[str, bytes]:
    """Pickles that, unpickled by :func:`pickle.loads`, create ``marker`` (each its own way)."""
    touch = f"touch {marker}"
    python = f"open({str(marker)!r}, 'w').close()"

    class System:
        def __reduce__(self):
            return (os.system, (touch,))

    class Eval:
        def __reduce__(self):
            return (eval, (python,))

    class Exec:
        def __reduce__(self):
            return (exec, (python,))

    class Popen:
        def __reduce__(self):
            return (subprocess.call, (["touch", str(marker)],))

    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}
    return {
        "os.system (protocol 2)": pickle.dumps({**batch, b"x": System()}, protocol=2),
        "os.system (protocol 5)": pickle.dumps({**batch, b"x": System()}, protocol=5),
        "builtins.eval": pickle.dumps(Eval(), protocol=2),
        "builtins.exec": pickle.dumps(Exec(), protocol=4),
        "subprocess.call": pickle.dumps(Popen(), protocol=3),
        # getattr(__import__("os"), "system")(touch): nothing but builtins looked up
        "builtins.getattr(__import__)": b"\x80\x02cbuiltins\ngetattr\ncbuiltins\n__import__\n"
        + _text("os") + b"\x85R" + _text("system") + b"\x86R" + _text(touch) + b"\x85R.",
        # importlib.import_module("os").system via STACK_GLOBAL
        "importlib.import_module": b"\x80\x04\x8c\x08builtins\x8c\x07getattr\x93"
        b"\x8c\x09importlib\x8c\x0dimport_module\x93" + _text("os") + b"\x85R"
        + _text("system") + b"\x86R" + _text(touch) + b"\x85R.",
        # protocol 0 INST: instantiate os.system with the command
        "INST os.system": b"(" + b"V" + touch.encode() + b"\nios\nsystem\n.",
        # protocol 1 OBJ with a global class
        "OBJ subprocess.call": b"(cbuiltins\nexec\n" + _text(python) + b"o.",
    }


def control_runs_every_payload(tmp_path: Path) -> None:
    """A plain unpickler (in a child process) runs each payload: the markers appear."""
    markers = []
    for index in range(len(payloads(tmp_path / "m"))):
        marker = tmp_path / f"control-{index}"
        raw = list(payloads(marker).values())[index]
        (tmp_path / f"control-{index}.pkl").write_bytes(raw)
        markers.append(marker)
    script = (
        "import pickle, sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        pickle.loads(open(path, 'rb').read())\n"
        "    except Exception:\n"
        "        pass\n"
    )
    files = [str(tmp_path / f"control-{index}.pkl") for index in range(len(markers))]
    subprocess.run([sys.executable, "-c", script, *files], check=True, timeout=60, capture_output=True)
    assert [marker.exists() for marker in markers] == [True] * len(markers)


def test_code_running_pickles_are_refused_and_run_nothing(tmp_path: Path) -> None:
    control_runs_every_payload(tmp_path)
    marker = tmp_path / "ran"
    for name, raw in payloads(marker).items():
        path = tmp_path / "data_batch_1"
        path.write_bytes(raw)
        with pytest.raises(ValueError, match=r"data_batch_1: not a CIFAR-10 batch pickle \(.*not allowed") as caught:
            read_cifar_batch(path)
        assert "\n" not in str(caught.value), name
        assert not marker.exists(), name


def test_extension_registry_does_not_reach_a_global(tmp_path: Path) -> None:
    """EXT1 codes resolve through find_class too: a registered os.system stays refused."""
    marker = tmp_path / "ran"
    copyreg.add_extension("os", "system", 0xF0)
    try:
        path = tmp_path / "batch"
        path.write_bytes(b"\x80\x02\x82\xf0" + _text(f"touch {marker}") + b"\x85R.")
        with pytest.raises(ValueError, match="global os.system is not allowed"):
            read_cifar_batch(path)
    finally:
        copyreg.remove_extension("os", "system", 0xF0)
    assert not marker.exists()


RECONSTRUCT = b"cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n"


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("ndarray called", b"\x80\x02cnumpy\nndarray\nJ\x00\x00\x00\x40\x85R.", "calling .* is not allowed"),
        ("_reconstruct huge", b"\x80\x02" + RECONSTRUCT + b"\x8a\x06\x00\x00\x00\x00\x00\x01\x85C\x01b\x87R.",
         "only for an empty ndarray"),
        ("_reconstruct subtype", b"\x80\x02cnumpy._core.multiarray\n_reconstruct\ncnumpy\ndtype\nK\x00\x85C\x01b\x87R.",
         "only for an empty ndarray"),
        ("dtype object", b"\x80\x02cnumpy\ndtype\n" + _text("O") + b"\x85R.", r"numpy.dtype\('O'"),
        ("dtype huge string", b"\x80\x02cnumpy\ndtype\n" + _text("U2000000000") + b"\x85R.", "numpy.dtype"),
        ("dtype structured", b"\x80\x02cnumpy\ndtype\n" + _text("i8,O") + b"\x85R.", "numpy.dtype"),
        ("encode rot13", b"\x80\x02c_codecs\nencode\n" + _text("x") + _text("rot13") + b"\x86R.", "latin1"),
        ("encode bytes", b"\x80\x02c_codecs\nencode\nC\x01x" + _text("latin1") + b"\x86R.", "latin1"),
        ("frombuffer huge", b"\x80\x05cnumpy._core.numeric\n_frombuffer\n(C\x01x" + b"cnumpy\ndtype\n"
         + _text("u1") + b"\x85R\x8a\x05\x00\x00\x00\x00\x01\x85" + _text("C") + b"tR.",
         "do not hold shape"),
        ("build object state", b"\x80\x02" + RECONSTRUCT + b"K\x00\x85C\x01b\x87R(K\x01K\x01\x85cnumpy\ndtype\n"
         + _text("u1") + b"\x85R\x89]K\x01at\x62.", "not allowed"),
        ("build dtype fields", b"\x80\x02cnumpy\ndtype\n" + _text("u1") + b"\x89\x88\x87R(K\x03" + _text("|")
         + b"N(" + _text("a") + b"t}NJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.", "BUILD of a .*DType"),
        ("build a dict", b"\x80\x02}}b.", "BUILD of a dict"),
        ("binbytes8 of 1 TiB", b"\x80\x05\x8e" + (1 << 40).to_bytes(8, "little") + b"abc", "truncated"),
        ("bytearray8 of 1 TiB", b"\x80\x05\x96" + (1 << 40).to_bytes(8, "little") + b"abc", "truncated"),
        ("frame of 1 TiB", b"\x80\x05\x95" + (1 << 40).to_bytes(8, "little") + b"N.", ""),
        ("deep lists", b"\x80\x02" + b"]" * 20_000 + b".", "expected a dict"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 30 else "",
)
def test_allowed_reconstruction_refuses_hostile_arguments(tmp_path: Path, name, raw, message) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(raw)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=f"test_batch: .*{message}") as caught:
            read_cifar_batch(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(caught.value), name
    assert peak < 8 << 20, name  # never what a length or a shape claims


def batch_bytes(protocol: int, count: int = 2) -> bytes:
    images = np.arange(count * 3072, dtype=np.uint8).reshape(count, 3072)
    batch = {b"batch_label": b"x", b"data": images, b"labels": list(range(count)), b"filenames": [b"a.png"] * count}
    return pickle.dumps(batch, protocol=protocol)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_every_protocol_of_a_real_batch_loads(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(batch_bytes(protocol))
    images, labels = read_cifar_batch(path)
    assert images.shape == (2, 3, 32, 32) and images.dtype == np.uint8
    np.testing.assert_array_equal(images.reshape(2, 3072), np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072))
    assert labels.tolist() == [0, 1]


def valid_batch(result) -> None:
    if result is not None:
        images, labels = result
        assert images.dtype == np.uint8 and images.shape[1:] == (3, 32, 32)
        assert labels.dtype == np.int64 and labels.shape == (len(images),)
        assert labels.size == 0 or 0 <= labels.min() <= labels.max() <= 9


@FUZZ
@given(protocol=st.sampled_from([2, 5]), data=st.data())
def test_mutated_batches_load_or_are_refused(tmp_path: Path, protocol: int, data) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(data.draw(mutated(batch_bytes(protocol, 1))))
    valid_batch(refused_or_valid(lambda: read_cifar_batch(path)))


#: Opcodes (with small arguments) a generated pickle is built from.
OPCODES = [
    b"(", b"t", b")", b"]", b"}", b"e", b"a", b"s", b"u", b"N", b"\x88", b"\x89", b"K\x05", b"J\xff\xff\xff\x7f",
    b"C\x03abc", b"\x8c\x01x", b"q\x00", b"h\x00", b"\x94", b"R", b"b", b"0", b"2", b"\x85", b"\x86", b"\x87",
    b"cnumpy\nndarray\n", b"cnumpy\ndtype\n", b"cnumpy._core.multiarray\n_reconstruct\n", b"c_codecs\nencode\n",
    b"cos\nsystem\n", b"cbuiltins\neval\n", b"\x8c\x02os\x8c\x06system\x93", b"\x81", b"\x92", b"o", b"iold\nname\n",
]


@FUZZ
@given(ops=st.lists(st.sampled_from(OPCODES), max_size=40))
def test_generated_opcode_streams_are_refused_or_valid(tmp_path: Path, ops) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x04" + b"".join(ops) + b".")
    valid_batch(refused_or_valid(lambda: read_cifar_batch(path)))


def test_oversized_batch_is_refused_unread(tmp_path: Path) -> None:
    from model.data import CIFAR10_MAX_BYTES

    path = tmp_path / "data_batch_1"
    with path.open("wb") as handle:  # sparse: no disk used
        handle.truncate(CIFAR10_MAX_BYTES + 1)
    with pytest.raises(ValueError, match=r"data_batch_1: \d+ bytes is too large for a CIFAR-10 batch"):
        read_cifar_batch(path)
