"""Tests for model/data.py: dataset loaders, IDX and CIFAR readers, to_u8, augmentation."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from model import data
from model.data import (
    DATASETS,
    Dataset,
    augment,
    default_augmentation,
    load_dataset,
    read_cifar_batch,
    read_idx,
    to_u8,
    transform,
)

MNIST_SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist"


# digits -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def digits_images() -> Dataset:
    return load_dataset("digits", flatten=False)


def test_digits_shapes_and_split(digits: Dataset, digits_images: Dataset) -> None:
    assert DATASETS == ("digits", "mnist10k", "cifar10")
    assert digits.name == "digits" and digits.classes == 10
    assert digits.train_x.shape == (1437, 64) and digits.test_x.shape == (360, 64)
    assert digits.train_y.shape == (1437,) and digits.test_y.shape == (360,)
    assert digits.input_shape == (64,) and digits.image_shape == (1, 8, 8)
    assert digits_images.input_shape == (1, 8, 8)
    assert digits_images.train_x.shape == (1437, 1, 8, 8)
    assert digits.train_x.dtype == np.float32 and digits.train_y.dtype == np.int64
    # The image form holds the same samples in the same order.
    np.testing.assert_array_equal(digits_images.train_x.reshape(1437, 64), digits.train_x)
    np.testing.assert_array_equal(digits_images.test_y, digits.test_y)
    # Pixels are the 0..16 counts divided by 16.
    pixels = np.concatenate([digits.train_x, digits.test_x]) * 16
    assert pixels.min() == 0 and pixels.max() == 16
    np.testing.assert_array_equal(pixels, np.rint(pixels))


def test_digits_split_is_a_partition(digits: Dataset) -> None:
    from sklearn.datasets import load_digits

    full = load_digits()
    ours = np.concatenate([digits.train_x, digits.test_x]) * 16
    labels = np.concatenate([digits.train_y, digits.test_y])
    rows = np.column_stack([ours, labels])
    expected = np.column_stack([full.data, full.target])
    np.testing.assert_array_equal(np.unique(rows, axis=0), np.unique(expected, axis=0))
    assert len(rows) == len(expected)


def test_digits_is_deterministic_and_stratified(digits: Dataset) -> None:
    again = load_dataset("digits")
    np.testing.assert_array_equal(again.train_x, digits.train_x)
    np.testing.assert_array_equal(again.test_y, digits.test_y)
    totals = np.bincount(np.concatenate([digits.train_y, digits.test_y]), minlength=10)
    tests = np.bincount(digits.test_y, minlength=10)
    assert np.all(np.abs(tests - 0.2 * totals) <= 1), tests


# mnist10k -----------------------------------------------------------------------------


#: The real MNIST 10k files: $SPIKEFORGE_MNIST, data/mnist, or the shared copy beside the repository.
MNIST_REAL = next(
    (Path(folder) for folder in (os.environ.get(data.MNIST_ENV), data.DEFAULT_MNIST_ROOT, MNIST_SHARED)
     if folder and (Path(folder) / data.MNIST_FILES[0]).is_file()),
    None,
)


@pytest.mark.skipif(
    MNIST_REAL is None, reason="no MNIST 10k files ($SPIKEFORGE_MNIST, data/mnist or ../shared/data/mnist)"
)
def test_mnist10k_real_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.MNIST_ENV, str(MNIST_REAL))
    for name, digest in data.MNIST_SHA256.items():
        assert hashlib.sha256((MNIST_REAL / name).read_bytes()).hexdigest() == digest
    flat = load_dataset("mnist10k")
    assert flat.train_x.shape == (8000, 784) and flat.test_x.shape == (2000, 784)
    assert set(np.unique(flat.train_y)) == set(range(10)) == set(np.unique(flat.test_y))
    assert flat.train_x.min() == 0.0 and flat.train_x.max() == 1.0
    images = load_dataset("mnist10k", flatten=False)
    assert images.input_shape == (1, 28, 28) and images.test_x.shape == (2000, 1, 28, 28)
    np.testing.assert_array_equal(images.test_x.reshape(2000, 784), flat.test_x)
    # Image 0 of the MNIST test set is a 7.
    assert flat.train_y[0] == 7


def write_idx(path: Path, array: np.ndarray, *, compress: bool) -> bytes:
    """Write ``array`` as IDX (type from its dtype) and return the raw IDX bytes."""
    codes = {np.dtype("u1"): 0x08, np.dtype("i2"): 0x0B, np.dtype("f4"): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += b"".join(n.to_bytes(4, "big") for n in array.shape)
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw, compresslevel=1) if compress else raw)
    return raw


@pytest.fixture
def fake_mnist(tmp_path: Path) -> Path:
    """A 10,000-image IDX pair whose image i has pixel (0, 0) = i % 256, (0, 1) = i // 256."""
    index = np.arange(10_000)
    images = np.zeros((10_000, 28, 28), np.uint8)
    images[:, 0, 0] = index % 256
    images[:, 0, 1] = index // 256
    write_idx(tmp_path / data.MNIST_FILES[0], images, compress=True)
    write_idx(tmp_path / data.MNIST_FILES[1], (index * 7 % 10).astype(np.uint8), compress=True)
    return tmp_path


def test_mnist10k_split_rule_and_root_override(
    fake_mnist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(data.MNIST_ENV, raising=False)
    ds = load_dataset("mnist10k", root=fake_mnist, flatten=False)
    pixels = np.rint(ds.train_x[:, 0, 0, :2] * 255).astype(int)
    np.testing.assert_array_equal(pixels[:, 0] + 256 * pixels[:, 1], np.arange(8000))
    pixels = np.rint(ds.test_x[:, 0, 0, :2] * 255).astype(int)
    np.testing.assert_array_equal(pixels[:, 0] + 256 * pixels[:, 1], np.arange(8000, 10_000))
    np.testing.assert_array_equal(ds.test_y, np.arange(8000, 10_000) * 7 % 10)
    monkeypatch.setenv(data.MNIST_ENV, str(fake_mnist))
    np.testing.assert_array_equal(load_dataset("mnist10k").train_y, np.arange(8000) * 7 % 10)


def test_mnist10k_missing_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.MNIST_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere.*--data-root.*SPIKEFORGE_MNIST"):
        load_dataset("mnist10k")
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist10k", root=tmp_path)


# IDX ----------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_read_idx_good(tmp_path: Path, compress: bool) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = write_idx(tmp_path / "images", images, compress=compress)
    assert raw[:4] == b"\x00\x00\x08\x03"
    result = read_idx(tmp_path / "images")
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, images)
    labels = np.array([3, 1, 4], np.uint8)
    assert write_idx(tmp_path / "labels", labels, compress=compress)[:4] == b"\x00\x00\x08\x01"
    np.testing.assert_array_equal(read_idx(tmp_path / "labels"), labels)
    wide = np.array([[-300, 2], [5, 32767]], np.int16)
    write_idx(tmp_path / "wide", wide, compress=compress)
    result = read_idx(tmp_path / "wide")
    assert result.dtype == np.dtype("=i2")
    np.testing.assert_array_equal(result, wide)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda raw: b"\x00\x00\x07" + raw[3:], "bad IDX magic number 0x00000703"),
        (lambda raw: b"\x01" + raw[1:], "bad IDX magic number 0x01000803"),
        (lambda raw: raw[:-1], "payload is 23 bytes, expected 24"),
        (lambda raw: raw + b"\x00", "payload is 25 bytes, expected 24"),
        (lambda raw: raw[:10], r"header truncated \(10 of 16 bytes"),
        (lambda raw: raw[:3], "3 bytes is too short for an IDX header"),
    ],
    ids=["type", "zero-bytes", "truncated", "extra", "header", "tiny"],
)
def test_read_idx_corrupt(tmp_path: Path, compress: bool, edit, message: str) -> None:
    raw = write_idx(tmp_path / "good", np.zeros((2, 3, 4), np.uint8), compress=False)
    bad = edit(raw)
    path = tmp_path / "bad-idx"
    path.write_bytes(gzip.compress(bad) if compress else bad)
    with pytest.raises(ValueError, match=f"bad-idx: {message}"):
        read_idx(path)


def test_read_idx_corrupt_gzip_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(bytes(100))[:-12])
    with pytest.raises(ValueError, match="cut.gz: corrupt gzip stream"):
        read_idx(path)
    with pytest.raises(FileNotFoundError, match="absent-file"):
        read_idx(tmp_path / "absent-file")


# CIFAR-10 -----------------------------------------------------------------------------


def write_batch(path: Path, images: np.ndarray, labels: list[int], protocol: int) -> None:
    batch = {
        b"batch_label": b"test",
        b"data": images.reshape(len(images), 3072),
        b"labels": labels,
        b"filenames": [b"x.png"] * len(labels),
    }
    path.write_bytes(pickle.dumps(batch, protocol=protocol))


def cifar_images(first: int, count: int) -> np.ndarray:
    """``count`` images whose red (0, 0) pixel is ``first + k`` and blue (31, 31) pixel 255."""
    images = np.zeros((count, 3, 32, 32), np.uint8)
    images[:, 0, 0, 0] = np.arange(first, first + count)
    images[:, 2, 31, 31] = 255
    return images


@pytest.fixture(params=[2, 5], ids=["protocol2", "protocol5"])
def cifar_root(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """Two tiny training batches (data_batch_1: 3 images, data_batch_2: 2) and test_batch (2)."""
    write_batch(tmp_path / "data_batch_1", cifar_images(0, 3), [0, 1, 2], request.param)
    write_batch(tmp_path / "data_batch_2", cifar_images(3, 2), [9, 4], request.param)
    write_batch(tmp_path / "test_batch", cifar_images(100, 2), [5, 6], request.param)
    return tmp_path


def test_cifar10_loads_tiny_batches(cifar_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.CIFAR10_ENV, raising=False)
    ds = load_dataset("cifar10", root=cifar_root, flatten=False)
    assert ds.input_shape == (3, 32, 32) and ds.train_x.shape == (5, 3, 32, 32)
    np.testing.assert_array_equal(ds.train_y, [0, 1, 2, 9, 4])
    np.testing.assert_array_equal(ds.test_y, [5, 6])
    np.testing.assert_allclose(ds.train_x[:, 0, 0, 0], np.arange(5) / 255, rtol=1e-6)
    np.testing.assert_array_equal(ds.test_x[:, 2, 31, 31], [1.0, 1.0])
    assert ds.test_x[:, 0, 0, 0].tolist() == pytest.approx([100 / 255, 101 / 255])
    assert ds.train_x.sum() == pytest.approx(5 + (0 + 1 + 2 + 3 + 4) / 255)
    monkeypatch.setenv(data.CIFAR10_ENV, str(cifar_root))
    flat = load_dataset("cifar10")
    assert flat.input_shape == (3072,) and flat.image_shape == (3, 32, 32)
    np.testing.assert_array_equal(flat.train_x, ds.train_x.reshape(5, 3072))


def test_cifar10_accepts_archive_parent(cifar_root: Path, tmp_path_factory) -> None:
    parent = tmp_path_factory.mktemp("extracted")
    (parent / data.CIFAR10_FOLDER).symlink_to(cifar_root, target_is_directory=True)
    assert load_dataset("cifar10", root=parent).train_x.shape == (5, 3072)


def test_cifar10_missing_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.CIFAR10_ENV, raising=False)
    if not data.DEFAULT_CIFAR10_ROOT.is_dir():
        with pytest.raises(FileNotFoundError, match=r"data/cifar10' does not exist.*--data-root.*SPIKEFORGE_CIFAR10"):
            load_dataset("cifar10")
    with pytest.raises(FileNotFoundError, match="does not exist.*--data-root.*SPIKEFORGE_CIFAR10"):
        load_dataset("cifar10", root=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_dataset("cifar10", root=tmp_path)
    write_batch(tmp_path / "data_batch_1", cifar_images(0, 1), [0], 5)
    with pytest.raises(FileNotFoundError, match="test_batch"):
        load_dataset("cifar10", root=tmp_path)


class _Remove:
    """Pickles as a call to os.remove(path): what a hostile batch file could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.remove, (self.path,)


def test_cifar_batch_rejects_globals_and_bad_content(tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel"
    sentinel.touch()
    hostile = tmp_path / "hostile"
    hostile.write_bytes(pickle.dumps({b"data": _Remove(str(sentinel)), b"labels": []}))
    with pytest.raises(ValueError, match=r"hostile: not a CIFAR-10 batch .*remove is not allowed"):
        read_cifar_batch(hostile)
    assert sentinel.exists()
    bad = tmp_path / "bad-labels"
    write_batch(bad, cifar_images(0, 2), [0, 10], 5)
    with pytest.raises(ValueError, match="ints in 0..9"):
        read_cifar_batch(bad)
    short = tmp_path / "short-labels"
    write_batch(short, cifar_images(0, 2), [0], 5)
    with pytest.raises(ValueError, match="list of 2 ints"):
        read_cifar_batch(short)
    wrong = tmp_path / "wrong-data"
    wrong.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"uint8 array of shape \(N, 3072\)"):
        read_cifar_batch(wrong)
    with pytest.raises(FileNotFoundError, match="no-batch"):
        read_cifar_batch(tmp_path / "no-batch")


def test_unknown_dataset() -> None:
    with pytest.raises(ValueError, match="^dataset: 'x' is not one of digits, mnist10k, cifar10$"):
        load_dataset("x")
    with pytest.raises(ValueError, match="dataset: 'svhn' is not one of"):
        default_augmentation("svhn")


def test_dataset_validates_fields() -> None:
    x = np.zeros((4, 2), np.float32)
    y = np.array([0, 1, 2, 0])
    Dataset("toy", x, y, x, y, input_shape=(2,), classes=3)
    with pytest.raises(ValueError, match="train_x: expected float32"):
        Dataset("toy", x.astype(np.float64), y, x, y, input_shape=(2,), classes=3)
    with pytest.raises(ValueError, match=r"test_y: labels must be in 0..1"):
        Dataset("toy", x, y % 2, x, y, input_shape=(2,), classes=2)
    with pytest.raises(ValueError, match=r"test_x: values must be in \[0, 1\]"):
        Dataset("toy", x, y, x + 2, y, input_shape=(2,), classes=3)
    with pytest.raises(ValueError, match="image_shape"):
        Dataset("toy", x, y, x, y, input_shape=(2,), classes=3, image_shape=(1, 1, 3))


# to_u8 --------------------------------------------------------------------------------


def test_to_u8() -> None:
    pixels = np.arange(256)
    np.testing.assert_array_equal(to_u8(pixels / 255), pixels)
    np.testing.assert_array_equal(to_u8(pixels.astype(np.float32) / np.float32(255)), pixels)
    result = to_u8(np.array([0.0, 1.0, 0.5, 0.002, 0.001]))
    assert result.dtype == np.uint8 and result.tolist() == [0, 255, 128, 1, 0]
    for bad in (np.array([1.01]), np.array([-0.1]), np.array([np.nan])):
        with pytest.raises(ValueError, match=r"x: values must be finite and in \[0, 1\]"):
            to_u8(bad)


# augmentation -------------------------------------------------------------------------


def test_default_augmentation() -> None:
    assert default_augmentation("digits") == {"flip": False, "shift": 1, "rotate_deg": 10.0}
    assert default_augmentation("mnist10k") == {"flip": False, "shift": 2, "rotate_deg": 10.0}
    assert default_augmentation("cifar10") == {"flip": True, "shift": 4, "rotate_deg": 0.0}
    default_augmentation("digits")["shift"] = 7
    assert default_augmentation("digits")["shift"] == 1


def batch_of_distinct_pixels(batch: int, channels: int, size: int) -> np.ndarray:
    """Images whose pixels are distinct values in (0, 1], so any move is detectable."""
    count = batch * channels * size * size
    return (np.arange(1, count + 1, dtype=np.float32) / count).reshape(batch, channels, size, size)


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Reference: content moves dy rows down and dx columns right, zero fill."""
    out = np.zeros_like(image)
    h, w = image.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


@pytest.mark.parametrize("name", DATASETS)
def test_augment_keeps_shape_range_and_is_seeded(name: str) -> None:
    size, channels = {"digits": (8, 1), "mnist10k": (28, 1), "cifar10": (32, 3)}[name]
    x = batch_of_distinct_pixels(16, channels, size)
    kwargs = default_augmentation(name)
    first = augment(x, np.random.default_rng(1), **kwargs)
    assert first.shape == x.shape and first.dtype == np.float32
    assert first.min() >= 0 and first.max() <= 1
    assert np.isin(first, np.append(x, 0)).all()
    np.testing.assert_array_equal(first, augment(x, np.random.default_rng(1), **kwargs))
    assert not np.array_equal(first, augment(x, np.random.default_rng(2), **kwargs))
    assert not np.array_equal(first, x)


def test_transform_shift_is_exact() -> None:
    x = batch_of_distinct_pixels(5, 2, 6)
    dy, dx = np.array([0, 2, -1, 3, -5]), np.array([1, -2, 0, 3, 4])
    out = transform(x, flip=np.zeros(5, bool), dy=dy, dx=dx, angle_deg=np.zeros(5))
    for b in range(5):
        np.testing.assert_array_equal(out[b], shifted(x[b], dy[b], dx[b]))
    # A single lit pixel at (1, 4) moves to (3, 2) for dy = 2, dx = -2.
    dot = np.zeros((1, 1, 6, 6), np.float32)
    dot[0, 0, 1, 4] = 1
    moved = transform(dot, flip=np.zeros(1, bool), dy=[2], dx=[-2], angle_deg=[0.0])
    assert np.argwhere(moved[0, 0]).tolist() == [[3, 2]]


def test_augment_shift_draws_every_offset_exactly() -> None:
    x = np.repeat(batch_of_distinct_pixels(1, 1, 7), 64, axis=0)
    out = augment(x, np.random.default_rng(3), flip=False, shift=1, rotate_deg=0.0)
    offsets = set()
    for b in range(64):
        matches = [
            (dy, dx)
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if np.array_equal(out[b], shifted(x[b], dy, dx))
        ]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) == 9


def test_augment_flip_only() -> None:
    x = np.repeat(batch_of_distinct_pixels(1, 3, 5), 32, axis=0)
    out = augment(x, np.random.default_rng(4), flip=True, shift=0, rotate_deg=0)
    flipped = [np.array_equal(o, x[0, :, :, ::-1]) for o in out]
    kept = [np.array_equal(o, x[0]) for o in out]
    assert all(f != k for f, k in zip(flipped, kept))
    assert 0 < sum(flipped) < 32


def test_rotation() -> None:
    x = batch_of_distinct_pixels(3, 2, 9)
    out = augment(x, np.random.default_rng(5), flip=False, shift=0, rotate_deg=0.0)
    np.testing.assert_array_equal(out, x)
    zero = np.zeros(3)
    none = transform(x, flip=np.zeros(3, bool), dy=zero, dx=zero, angle_deg=zero)
    np.testing.assert_array_equal(none, x)
    for size in (9, 8):  # odd and even sizes: the centre is a pixel or a pixel corner
        image = batch_of_distinct_pixels(2, 1, size)
        quarter = transform(
            image, flip=np.zeros(2, bool), dy=[0, 0], dx=[0, 0], angle_deg=[90, -90]
        )
        np.testing.assert_array_equal(quarter[0], np.rot90(image[0], 1, axes=(1, 2)))
        np.testing.assert_array_equal(quarter[1], np.rot90(image[1], -1, axes=(1, 2)))
    # Small random rotations keep the centre pixel of an odd-sized image and lose corners.
    out = augment(x, np.random.default_rng(6), flip=False, shift=0, rotate_deg=30.0)
    np.testing.assert_array_equal(out[:, :, 4, 4], x[:, :, 4, 4])
    assert not np.array_equal(out, x)


def test_augment_rejects_bad_arguments() -> None:
    rng = np.random.default_rng(0)
    x = np.zeros((2, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"x: expected images of shape \(B, C, H, W\)"):
        augment(x[:, 0], rng, flip=False, shift=1, rotate_deg=0)
    with pytest.raises(ValueError, match=r"shift: 8 is out of range \(allowed 0..7\)"):
        augment(x, rng, flip=False, shift=8, rotate_deg=0)
    with pytest.raises(ValueError, match="shift: must be an integer"):
        augment(x, rng, flip=False, shift=1.5, rotate_deg=0)
    with pytest.raises(ValueError, match=r"rotate_deg: -1 is out of range \(allowed 0..180\)"):
        augment(x, rng, flip=False, shift=0, rotate_deg=-1)


def test_default_data_folders_are_inside_the_repository() -> None:
    repository = Path(data.__file__).resolve().parents[1]
    for folder in (data.DEFAULT_MNIST_ROOT, data.DEFAULT_CIFAR10_ROOT):
        assert folder.resolve().is_relative_to(repository)
