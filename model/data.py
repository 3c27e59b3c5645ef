"""Datasets, IDX/CIFAR readers, pixel quantization and image augmentation (numpy only).

Three datasets, loaded by :func:`load_dataset`:

* ``digits``: scikit-learn's 8x8 handwritten digits (1,797 images, shipped inside
  scikit-learn). Pixels 0..16 are divided by 16. Split 80/20 with
  ``sklearn.model_selection.train_test_split(test_size=0.2, random_state=0, stratify=y)``
  into 1,437 training and 360 test images.
* ``mnist10k``: the MNIST test set (10,000 images, the two gzip IDX files of
  :data:`MNIST_FILES`, sha256 in :data:`MNIST_SHA256`) from the folder given by ``root=``
  (CLI ``--data-root``), else the environment variable ``SPIKEFORGE_MNIST``, else
  ``<repository>/data/mnist``. The first 8,000 images train, the last 2,000 test. Pixels
  0..255 are divided by 255.
* ``cifar10``: the CIFAR-10 python batches (``cifar-10-python.tar.gz`` unpacked) from
  ``root=``, else ``SPIKEFORGE_CIFAR10``, else ``<repository>/data/cifar10``. Pixels
  0..255 are divided by 255.

Inputs ``x`` are float32 in [0, 1], labels ``y`` int64 in 0..classes-1.
"""

from __future__ import annotations

import gzip
import io
import math
import numbers
import operator
import os
import pickle
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

#: Dataset names accepted by :func:`load_dataset`.
DATASETS = ("digits", "mnist10k", "cifar10")

#: Environment variables naming the data folders (the CLI flag ``--data-root`` wins).
MNIST_ENV = "SPIKEFORGE_MNIST"
CIFAR10_ENV = "SPIKEFORGE_CIFAR10"

#: Seeded stratified split of the digits: test fraction and ``random_state``.
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0

#: MNIST 10k split: the first ``MNIST_TRAIN`` images train, the rest test.
MNIST_IMAGES = 10_000
MNIST_TRAIN = 8_000
MNIST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
#: sha256 of the gzip files of :data:`MNIST_FILES` (the standard MNIST test set; README "Data").
MNIST_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "ba05d2d6e06f59dd97d2d5378250478bb5c9b64296a5c2681700569121e3a2d7",
    "t10k-labels-idx1-ubyte.gz": "94088eab8a64f51a9b34cc9716f54b6548ef8b2fd16ada6d1575091b933dbf4b",
}

#: CIFAR-10 python batch files: ``data_batch_1``, ``data_batch_2``, ... and ``test_batch``.
CIFAR10_TRAIN_PREFIX = "data_batch_"
CIFAR10_TEST_FILE = "test_batch"
#: Largest batch file read (bytes; a batch of 10,000 images is 31 MB).
CIFAR10_MAX_BYTES = 1 << 26
#: Folder name inside ``cifar-10-python.tar.gz``; ``root`` may be its parent.
CIFAR10_FOLDER = "cifar-10-batches-py"

#: Default data folders, inside the repository (``data/`` is not tracked).
DATA_ROOT = Path(__file__).resolve().parents[1] / "data"
DEFAULT_MNIST_ROOT = DATA_ROOT / "mnist"
DEFAULT_CIFAR10_ROOT = DATA_ROOT / "cifar10"

_GZIP_MAGIC = b"\x1f\x8b"
#: Largest IDX payload :func:`read_idx` accepts (bytes; MNIST's 60,000 training images are 47 MB).
IDX_MAX_BYTES = 1 << 28
_IDX_CHUNK = 1 << 20
_IDX_PROBE = 1 << 16

# IDX element type codes (third magic byte) -> big-endian numpy dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_AUGMENTATION = {
    "digits": {"flip": False, "shift": 1, "rotate_deg": 10.0},
    "mnist10k": {"flip": False, "shift": 2, "rotate_deg": 10.0},
    "cifar10": {"flip": True, "shift": 4, "rotate_deg": 0.0},
}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split of a classification dataset.

    Parameters
    ----------
    name : str
        Dataset name (one of :data:`DATASETS` for loaded data).
    train_x, test_x : numpy.ndarray
        float32 inputs in [0, 1], shape ``(N, *input_shape)``.
    train_y, test_y : numpy.ndarray
        int64 labels in ``0..classes-1``, shape ``(N,)``.
    input_shape : tuple of int
        Per-sample shape: ``(N,)`` for flat rows, ``(C, H, W)`` for images.
    classes : int
        Number of classes.
    image_shape : tuple of int or None
        The ``(C, H, W)`` image behind each sample (equal to ``input_shape`` for image
        inputs, the unflattened shape for flat rows), so flat rows can be reshaped for
        :func:`augment`; ``None`` when samples are not images.

    Raises
    ------
    ValueError
        When an array has the wrong dtype or shape, a value is out of range, or the
        image shape does not hold ``prod(input_shape)`` values.
    """

    name: str
    train_x: np.ndarray = field(repr=False)
    train_y: np.ndarray = field(repr=False)
    test_x: np.ndarray = field(repr=False)
    test_y: np.ndarray = field(repr=False)
    input_shape: tuple[int, ...]
    classes: int
    image_shape: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(operator.index(n) for n in self.input_shape))
        object.__setattr__(self, "classes", operator.index(self.classes))
        if self.classes < 1:
            raise ValueError(f"classes: {self.classes} is out of range (allowed 1 or more)")
        if self.image_shape is not None:
            image = tuple(operator.index(n) for n in self.image_shape)
            if len(image) != 3 or math.prod(image) != math.prod(self.input_shape):
                raise ValueError(
                    f"image_shape: {image} must be (C, H, W) holding the "
                    f"{math.prod(self.input_shape)} values of input_shape {self.input_shape}"
                )
            object.__setattr__(self, "image_shape", image)
        for part in ("train", "test"):
            x = getattr(self, f"{part}_x")
            y = getattr(self, f"{part}_y")
            if x.dtype != np.float32 or x.shape[1:] != self.input_shape:
                raise ValueError(
                    f"{part}_x: expected float32 of shape (N, *{self.input_shape}), "
                    f"got {x.dtype} {x.shape}"
                )
            if y.dtype != np.int64 or y.shape != x.shape[:1]:
                raise ValueError(
                    f"{part}_y: expected int64 of shape ({len(x)},), got {y.dtype} {y.shape}"
                )
            if x.size and not (x.min() >= 0.0 and x.max() <= 1.0):
                raise ValueError(f"{part}_x: values must be in [0, 1], found {x.min()}..{x.max()}")
            if y.size and not (y.min() >= 0 and y.max() < self.classes):
                raise ValueError(
                    f"{part}_y: labels must be in 0..{self.classes - 1}, found {y.min()}..{y.max()}"
                )


def load_dataset(
    name: str, *, root: str | os.PathLike[str] | None = None, flatten: bool = True
) -> Dataset:
    """Load a dataset by name.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    root : path, optional
        Data folder for ``mnist10k`` (default ``$SPIKEFORGE_MNIST``, else
        ``<repository>/../shared/data/mnist``) or ``cifar10`` (default
        ``$SPIKEFORGE_CIFAR10``; no built-in default). Ignored for ``digits``.
    flatten : bool
        ``True`` for flat rows (digits 64, MNIST 784, CIFAR-10 3072 values), ``False``
        for ``(C, H, W)`` images (1x8x8, 1x28x28, 3x32x32).

    Raises
    ------
    ValueError
        For an unknown name or corrupt data files.
    FileNotFoundError
        When the data folder or a data file is missing.
    """
    if name == "digits":
        loaded = _load_digits()
    elif name == "mnist10k":
        loaded = _load_mnist10k(root)
    elif name == "cifar10":
        loaded = _load_cifar10(root)
    else:
        raise ValueError(f"dataset: {name!r} is not one of {', '.join(DATASETS)}")
    train_u8, train_y, test_u8, test_y, scale = loaded
    image_shape = train_u8.shape[1:]
    input_shape = (math.prod(image_shape),) if flatten else image_shape

    def inputs(pixels: np.ndarray) -> np.ndarray:
        return (pixels.astype(np.float32) / np.float32(scale)).reshape(len(pixels), *input_shape)

    return Dataset(
        name=name,
        train_x=inputs(train_u8),
        train_y=train_y.astype(np.int64),
        test_x=inputs(test_u8),
        test_y=test_y.astype(np.int64),
        input_shape=input_shape,
        classes=10,
        image_shape=image_shape,
    )


# (train pixels (N, C, H, W) u8, train labels, test pixels, test labels, full-scale value)
_Loaded = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]


def _load_digits() -> _Loaded:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.uint8)[:, None]  # (1797, 1, 8, 8), values 0..16
    train_x, test_x, train_y, test_y = train_test_split(
        images,
        digits.target,
        test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED,
        stratify=digits.target,
    )
    return train_x, train_y, test_x, test_y, 16


def _data_folder(
    dataset: str, root: str | os.PathLike[str] | None, env: str, default: Path, contents: str
) -> Path:
    """Resolve ``root`` > ``$env`` > ``default`` and check the folder exists."""
    hint = f"pass --data-root DIR or set {env} to a folder with {contents}"
    if root is None:
        root = os.environ.get(env) or default
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"{dataset}: data folder {str(folder)!r} does not exist; {hint}")
    return folder


def _load_mnist10k(root: str | os.PathLike[str] | None) -> _Loaded:
    folder = _data_folder(
        "mnist10k", root, MNIST_ENV, DEFAULT_MNIST_ROOT, " and ".join(MNIST_FILES)
    )
    images_path, labels_path = (folder / file for file in MNIST_FILES)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.shape != (MNIST_IMAGES, 28, 28) or images.dtype != np.uint8:
        raise ValueError(
            f"{images_path}: expected {MNIST_IMAGES} uint8 images of 28x28, "
            f"got {images.dtype} {images.shape}"
        )
    if labels.shape != (MNIST_IMAGES,) or labels.dtype != np.uint8 or labels.max() > 9:
        raise ValueError(f"{labels_path}: expected {MNIST_IMAGES} uint8 labels in 0..9")
    images = images[:, None]
    train, test = slice(None, MNIST_TRAIN), slice(MNIST_TRAIN, None)
    return images[train], labels[train], images[test], labels[test], 255


def _load_cifar10(root: str | os.PathLike[str] | None) -> _Loaded:
    contents = f"{CIFAR10_TRAIN_PREFIX}1..5 and {CIFAR10_TEST_FILE} (CIFAR-10 python version)"
    folder = _data_folder("cifar10", root, CIFAR10_ENV, DEFAULT_CIFAR10_ROOT, contents)
    if (folder / CIFAR10_FOLDER).is_dir():
        folder = folder / CIFAR10_FOLDER
    train_files = []
    while (folder / f"{CIFAR10_TRAIN_PREFIX}{len(train_files) + 1}").is_file():
        train_files.append(folder / f"{CIFAR10_TRAIN_PREFIX}{len(train_files) + 1}")
    test_file = folder / CIFAR10_TEST_FILE
    if not train_files or not test_file.is_file():
        missing = CIFAR10_TEST_FILE if train_files else f"{CIFAR10_TRAIN_PREFIX}1"
        raise FileNotFoundError(
            f"cifar10: {str(folder / missing)!r} does not exist; pass --data-root DIR or set "
            f"{CIFAR10_ENV} to a folder with {contents}"
        )
    train = [read_cifar_batch(path) for path in train_files]
    test_x, test_y = read_cifar_batch(test_file)
    train_x = np.concatenate([x for x, _ in train])
    train_y = np.concatenate([y for _, y in train])
    return train_x, train_y, test_x, test_y, 255


# IDX ----------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike[str], *, max_bytes: int = IDX_MAX_BYTES) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed, detected by the magic bytes 1f 8b).

    The header is two zero bytes, a type byte (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32,
    0x0D f32, 0x0E f64; big-endian) and the number of dimensions, then one big-endian
    u32 per dimension. MNIST labels have magic 0x00000801, images 0x00000803. The
    header is read first and the payload it implies (at most ``max_bytes``) is the most
    that is ever read or decompressed.

    Parameters
    ----------
    max_bytes : int
        Largest payload accepted, in bytes (default :data:`IDX_MAX_BYTES`).

    Returns
    -------
    numpy.ndarray
        The payload in native byte order with the header's shape.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        Naming the file when the gzip stream is corrupt, the magic number is not an IDX
        one, the header is short, the header implies more than ``max_bytes``, or the
        payload is not exactly ``prod(dims) * itemsize`` bytes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {str(path)!r} does not exist")
    with path.open("rb") as file:
        compressed = file.read(2) == _GZIP_MAGIC
        file.seek(0)
        stream: Any = gzip.GzipFile(fileobj=file, mode="rb") if compressed else file
        try:
            return _read_idx_stream(path, stream, max_bytes)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path}: corrupt gzip stream ({error})") from None


def _read_idx_stream(path: Path, stream: Any, max_bytes: int) -> np.ndarray:
    """The IDX array of an open (decompressed) stream; see :func:`read_idx`."""
    raw = stream.read(4)
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    zero, type_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()} (expected 0x0000TTDD with type "
            f"TT in {', '.join(f'{t:02x}' for t in _IDX_DTYPES)} and DD >= 1 dimensions)"
        )
    header = 4 + 4 * ndim
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{path}: header truncated ({4 + len(dims)} of {header} bytes for {ndim} dims)")
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    if expected > max_bytes:
        raise ValueError(
            f"{path}: header claims shape {shape} of {dtype.name}, {expected} bytes "
            f"(allowed up to {max_bytes})"
        )
    chunks, size = [], 0
    while size < expected:  # in chunks: memory follows the data found, not the header's claim
        chunk = stream.read(min(_IDX_CHUNK, expected - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    payload = b"".join(chunks)
    extra = len(stream.read(_IDX_PROBE + 1))  # an excess is measured up to _IDX_PROBE bytes
    if len(payload) != expected or extra:
        found = f"more than {expected + _IDX_PROBE}" if extra > _IDX_PROBE else len(payload) + extra
        raise ValueError(
            f"{path}: payload is {found} bytes, expected {expected} for "
            f"shape {shape} of {dtype.name}"
        )
    return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


# CIFAR-10 -----------------------------------------------------------------------------


def _plain_dtype(dtype: Any) -> np.dtype:
    """``dtype`` if it is a plain bool/integer/float dtype (no fields, subarray or objects)."""
    if not (
        isinstance(dtype, np.dtype)
        and dtype.kind in "biuf"
        and dtype.fields is None
        and dtype.subdtype is None
        and not dtype.hasobject
    ):
        raise pickle.UnpicklingError(f"dtype {dtype!r} is not a plain numeric dtype")
    return dtype


def _pickle_dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype(obj, align, copy)`` for a numeric type code such as ``"u1"`` only."""
    if not (isinstance(obj, str) and obj in _PICKLE_DTYPES and isinstance(align, bool) and isinstance(copy, bool)):
        raise pickle.UnpicklingError(f"numpy.dtype{(obj, align, copy)!r} is not allowed")
    return np.dtype(obj, align, copy)


def _pickle_reconstruct(subtype: Any, shape: Any, code: Any) -> np.ndarray:
    """``_reconstruct(ndarray, (0,), b"b")``: the empty array a pickled one starts from."""
    if subtype is not np.ndarray or shape != (0,) or code not in (b"b", "b"):
        raise pickle.UnpicklingError("numpy _reconstruct is allowed only for an empty ndarray")
    return np.ndarray((0,), np.uint8)


def _pickle_frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """``_frombuffer``: an array over pickled bytes (no allocation beyond them)."""
    if not isinstance(buffer, (bytes, bytearray)) or order not in ("C", "F"):
        raise pickle.UnpicklingError("numpy _frombuffer needs bytes and order 'C' or 'F'")
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise pickle.UnpicklingError(f"numpy _frombuffer shape {shape!r} is not a tuple of sizes")
    dtype = _plain_dtype(dtype)
    if math.prod(shape) * dtype.itemsize != len(buffer):
        raise pickle.UnpicklingError(f"numpy _frombuffer: {len(buffer)} bytes do not hold shape {shape}")
    return np.frombuffer(buffer, dtype).reshape(shape, order=order)


def _pickle_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode(text, "latin1")``: bytes in protocol 0-2 pickles."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only for str and latin1")
    return text.encode("latin1")


#: Type codes :func:`_pickle_dtype` accepts.
_PICKLE_DTYPES = frozenset(
    f"{order}{kind}" for order in ("", "<", ">", "|", "=") for kind in
    ("b1", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8")
)
#: The callables a REDUCE may call: checked stand-ins of numpy's array/dtype reconstruction.
_PICKLE_CALLS = frozenset((_pickle_dtype, _pickle_reconstruct, _pickle_frombuffer, _pickle_encode))


def _numpy_pickle_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,  # only as _reconstruct's argument, never called
        ("numpy", "dtype"): _pickle_dtype,
        ("_codecs", "encode"): _pickle_encode,  # bytes in protocol 0-2 pickles
    }
    for package in ("numpy.core", "numpy._core"):  # numpy 1.x and 2.x module names
        allowed[(f"{package}.multiarray", "_reconstruct")] = _pickle_reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = _pickle_frombuffer
    return allowed


def _refused(opcode: str) -> Any:
    def load(self: _CifarUnpickler) -> None:
        raise pickle.UnpicklingError(f"opcode {opcode} is not allowed")

    return load


class _CifarUnpickler(pickle._Unpickler):
    """Unpickler that builds only containers, bytes, str, ints and plain numeric arrays.

    Containers, bytes, str and int are built by pickle opcodes without any global lookup,
    so a CIFAR batch needs nothing else. The only globals resolved are numpy's array and
    dtype reconstruction and ``_codecs.encode``, each replaced by a stand-in that checks
    its arguments (an empty array, a numeric type code, latin1 text); a REDUCE may call
    only those, BUILD may only set the state of such an array (plain dtype, data of
    exactly its size) or dtype, and the opcodes that instantiate classes (NEWOBJ,
    NEWOBJ_EX, OBJ, INST) are refused. Any other global (the way a pickle runs code) is
    refused before it is looked up. It is pickle's pure-Python unpickler, which reads a
    length-prefixed item only as far as the data goes (no allocation from a claimed size).
    """

    _allowed = _numpy_pickle_globals()
    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None

    def load_reduce(self) -> None:
        if self.stack[-2] not in _PICKLE_CALLS:
            raise pickle.UnpicklingError(f"calling {self.stack[-2]!r} is not allowed")
        super().load_reduce()

    def load_build(self) -> None:
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.ndarray):
            ok = isinstance(state, tuple) and len(state) == 5 and state[0] == 1 and inst.shape == (0,)
            if ok:
                _, shape, dtype, fortran, raw = state
                ok = (
                    isinstance(shape, tuple)
                    and all(type(n) is int and n >= 0 for n in shape)
                    and isinstance(fortran, bool)
                    and isinstance(raw, (bytes, bytearray))
                    and math.prod(shape) * _plain_dtype(dtype).itemsize == len(raw)
                )
        elif isinstance(inst, np.dtype):
            ok = (
                isinstance(state, tuple) and len(state) in (8, 9) and state[0] == 3
                and state[1] in ("<", ">", "|", "=") and state[2:5] == (None, None, None)
                and state[5:7] == (-1, -1) and type(state[7]) is int and state[8:] in ((), (None,))
            )
        else:
            ok = False
        if not ok:
            raise pickle.UnpicklingError(f"BUILD of a {type(inst).__name__} with this state is not allowed")
        super().load_build()

    def load_bytearray8(self) -> None:  # read first: pickle's own allocates the claimed size
        (size,) = struct.unpack("<Q", self.read(8))
        data = self.read(size)
        if len(data) != size:
            raise pickle.UnpicklingError("truncated")
        self.append(bytearray(data))

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8
    for _opcode in ("NEWOBJ", "NEWOBJ_EX", "OBJ", "INST"):
        dispatch[getattr(pickle, _opcode)[0]] = _refused(_opcode)


def read_cifar_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch file safely.

    The file is a pickled dict with ``b"data"`` (uint8 array, shape (N, 3072): the red,
    green and blue 32x32 planes, row-major) and ``b"labels"`` (N ints in 0..9). It is read
    with a restricted unpickler (see :class:`_CifarUnpickler`) and ``encoding="bytes"``,
    the way the original Python 2 pickles decode.

    Returns
    -------
    images : numpy.ndarray
        uint8, shape (N, 3, 32, 32).
    labels : numpy.ndarray
        int64, shape (N,), values 0..9.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        Naming the file when it is not a valid batch or uses a disallowed pickle global.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch {str(path)!r} does not exist")
    size = path.stat().st_size
    if size > CIFAR10_MAX_BYTES:
        raise ValueError(f"{path}: {size} bytes is too large for a CIFAR-10 batch (allowed up to {CIFAR10_MAX_BYTES})")
    with path.open("rb") as file:
        raw = io.BytesIO(file.read(size))  # a read of n bytes reserves n: never more than the file
    try:
        batch = _CifarUnpickler(raw, encoding="bytes").load()
    except Exception as error:  # any decoding failure of an untrusted file is a data error
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if isinstance(error, EOFError):
            reason = "truncated"
        raise ValueError(f"{path}: not a CIFAR-10 batch pickle ({reason})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path}: expected a dict with keys b'data' and b'labels'")
    data, labels = batch[b"data"], batch[b"labels"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.shape[1:] == (3072,)):
        raise ValueError(f"{path}: b'data' must be a uint8 array of shape (N, 3072)")
    if not isinstance(labels, list) or len(labels) != len(data):
        raise ValueError(f"{path}: b'labels' must be a list of {len(data)} ints")
    if not all(type(label) is int and 0 <= label <= 9 for label in labels):
        raise ValueError(f"{path}: b'labels' must hold ints in 0..9")
    return data.reshape(-1, 3, 32, 32), np.array(labels, dtype=np.int64)


# Pixels and augmentation --------------------------------------------------------------


def to_u8(x: np.ndarray) -> np.ndarray:
    """Quantize inputs in [0, 1] to u8 pixels ``rint(255 * x)`` (pixel LSB = 1/255).

    Raises
    ------
    ValueError
        When a value is not finite or outside [0, 1].
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size and not (np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0):
        raise ValueError(f"x: values must be finite and in [0, 1], found {x.min()}..{x.max()}")
    return np.rint(255.0 * x).astype(np.uint8)


def default_augmentation(name: str) -> dict[str, Any]:
    """Keyword arguments of :func:`augment` for a dataset.

    Digits are never flipped (a flip changes their class); ``digits`` shifts by up to 1
    pixel and ``mnist10k`` by up to 2, both rotate by up to 10 degrees; ``cifar10``
    flips and shifts by up to 4 pixels without rotation.

    Raises
    ------
    ValueError
        For an unknown dataset name.
    """
    if name not in _AUGMENTATION:
        raise ValueError(f"dataset: {name!r} is not one of {', '.join(DATASETS)}")
    return dict(_AUGMENTATION[name])


def transform(
    x: np.ndarray, *, flip: np.ndarray, dy: np.ndarray, dx: np.ndarray, angle_deg: np.ndarray
) -> np.ndarray:
    """Rotate, shift and flip each image of a batch by given per-image amounts.

    Output pixel ``(r, c)`` of image ``b`` takes the input pixel found by undoing, in
    order, the horizontal flip (``c -> W-1-c`` where ``flip[b]``), the shift (the
    content moves ``dy[b]`` rows down and ``dx[b]`` columns right) and the rotation
    (``angle_deg[b]`` counter-clockwise as displayed, row 0 at the top, about the image
    centre ``((H-1)/2, (W-1)/2)``), rounded to the nearest pixel; the image is thus
    rotated first, then shifted, then flipped. Pixels whose source falls outside the
    image are 0.

    Parameters
    ----------
    x : numpy.ndarray
        Images, shape (B, C, H, W), any dtype.
    flip : numpy.ndarray
        bool, shape (B,).
    dy, dx : numpy.ndarray
        int, shape (B,): shift in pixels.
    angle_deg : numpy.ndarray
        float, shape (B,): rotation in degrees.

    Returns
    -------
    numpy.ndarray
        A new array with the shape and dtype of ``x``.
    """
    batch, _, height, width = x.shape
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    cols = np.where(np.asarray(flip, bool)[:, None, None], width - 1 - cols, cols)
    # Shift, then rotation about the centre, both inverted (output -> source).
    v = rows - np.asarray(dy)[:, None, None] - (height - 1) / 2
    u = cols - np.asarray(dx)[:, None, None] - (width - 1) / 2
    theta = np.deg2rad(np.asarray(angle_deg, np.float64))[:, None, None]
    cos, sin = np.cos(theta), np.sin(theta)
    src_c = np.rint(u * cos - v * sin + (width - 1) / 2).astype(np.intp)
    src_r = np.rint(u * sin + v * cos + (height - 1) / 2).astype(np.intp)
    inside = (src_r >= 0) & (src_r < height) & (src_c >= 0) & (src_c < width)
    index = np.where(inside, src_r * width + src_c, 0).reshape(batch, 1, height * width)
    flat = x.reshape(batch, -1, height * width)
    out = np.take_along_axis(flat, np.broadcast_to(index, flat.shape), axis=2)
    out *= inside.reshape(batch, 1, height * width)
    return out.reshape(x.shape)


def augment(
    x: np.ndarray, rng: np.random.Generator, *, flip: bool, shift: int, rotate_deg: float
) -> np.ndarray:
    """Random flip, shift and rotation of a batch of images (see :func:`transform`).

    Per image: a horizontal flip with probability 0.5 (if ``flip``), a shift by integers
    drawn uniformly from ``[-shift, shift]`` for rows and columns, and a rotation by an
    angle drawn uniformly from ``[-rotate_deg, rotate_deg]`` degrees, nearest-neighbour,
    zero fill. Draws happen in that order, only for enabled transforms, so a seed
    reproduces the result.

    Parameters
    ----------
    x : numpy.ndarray
        Images, shape (B, C, H, W).
    rng : numpy.random.Generator
        Source of the random draws.
    flip : bool
        Enable random horizontal flips.
    shift : int
        Largest shift in pixels, 0..min(H, W) - 1.
    rotate_deg : float
        Largest rotation in degrees, 0..180.

    Returns
    -------
    numpy.ndarray
        A new array with the shape and dtype of ``x``; values are a subset of ``x``'s and 0.

    Raises
    ------
    ValueError
        When ``x`` is not 4-D or ``shift``/``rotate_deg`` is out of range.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x: expected images of shape (B, C, H, W), got shape {x.shape}")
    batch, _, height, width = x.shape
    try:
        shift = operator.index(shift)
    except TypeError:
        raise ValueError(f"shift: must be an integer, not {shift!r}") from None
    if not 0 <= shift < min(height, width):
        raise ValueError(f"shift: {shift} is out of range (allowed 0..{min(height, width) - 1})")
    if not (isinstance(rotate_deg, numbers.Real) and 0 <= rotate_deg <= 180):
        raise ValueError(f"rotate_deg: {rotate_deg!r} is out of range (allowed 0..180)")
    flips = rng.random(batch) < 0.5 if flip else np.zeros(batch, bool)
    if shift:
        dy, dx = rng.integers(-shift, shift, size=(2, batch), endpoint=True)
    else:
        dy = dx = np.zeros(batch, int)
    angles = rng.uniform(-rotate_deg, rotate_deg, batch) if rotate_deg else np.zeros(batch)
    return transform(x, flip=flips, dy=dy, dx=dx, angle_deg=angles)
