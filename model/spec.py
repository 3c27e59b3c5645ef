"""Network specification in the paper's notation, with validation.

An architecture string lists layers separated by ``-``:

* ``nFC``  a fully connected layer of ``n`` integrate-and-fire neurons;
* ``nC3``  a 3x3 convolution (stride 1, same padding) with ``n`` output channels;
* ``AP2``  a 2x2 average pooling with stride 2 (not spiking: it averages the spikes of
  the layer before it and passes the result on as input current).

Layer 0 is always the input encoder (rate coding by IF neurons, one threshold per input
channel). Layers 1..L follow the architecture string.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from dataclasses import asdict, dataclass, field
from typing import Any

from model.checks import check_field

RESETS = ("zero", "subtract")
THRESHOLDS = ("fixed", "trainable")
SURROGATES = ("rect", "scaled")
DECODERS = ("rate", "last", "fc")
LAYER_KINDS = ("fc", "conv", "pool")
#: The network of every command without ``--arch`` (train, convert, learn from scratch, sweeps).
DEFAULT_ARCH = "128FC-100FC"

#: Size limits of a spec (a spec read from a file cannot make a model allocate more):
#: layers after the encoder, units of one layer (input included), synaptic weights in all
#: (decoder included), classes.
MAX_LAYERS = 64
MAX_NEURONS = 1 << 20
MAX_WEIGHTS = 1 << 26
MAX_CLASSES = 1 << 16

_TOKEN = re.compile(r"^(?:(?P<fc>[1-9]\d{0,7})FC|(?P<conv>[1-9]\d{0,7})C3|(?P<pool>AP2))$")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the architecture.

    Parameters
    ----------
    kind : str
        ``"fc"``, ``"conv"`` (3x3, same padding) or ``"pool"`` (2x2 average, stride 2).
    size : int
        Neurons (``fc``) or output channels (``conv``); 0 for ``pool``.
    """

    kind: str
    size: int = 0

    @property
    def spiking(self) -> bool:
        """True for layers of IF neurons (FC and conv)."""
        return self.kind != "pool"

    def notation(self) -> str:
        """The layer in the paper's notation (``128FC``, ``96C3``, ``AP2``)."""
        return {"fc": f"{self.size}FC", "conv": f"{self.size}C3", "pool": "AP2"}[self.kind]


def parse_arch(arch: str) -> tuple[LayerSpec, ...]:
    """Parse ``"96C3-256C3-AP2-...-1024FC-1020FC"`` into layer specs.

    Raises
    ------
    ValueError
        If the string is empty, has more than :data:`MAX_LAYERS` layers, or a token is not
        ``nFC``, ``nC3`` or ``AP2`` (n of at most 8 digits).
    """
    if not isinstance(arch, str) or not arch.strip():
        raise ValueError("arch: must be a non-empty string such as '128FC-100FC'")
    tokens = arch.strip().split("-")
    if len(tokens) > MAX_LAYERS:
        raise ValueError(f"arch: {len(tokens)} layers is out of range (allowed 1..{MAX_LAYERS})")
    layers = []
    for token in tokens:
        match = _TOKEN.match(token.strip())
        if match is None:
            raise ValueError(
                f"arch: bad layer {token!r} in {arch!r}; allowed tokens are nFC, nC3 and AP2 "
                "with n >= 1 (e.g. '128FC-100FC')"
            )
        if match["fc"]:
            layers.append(LayerSpec("fc", int(match["fc"])))
        elif match["conv"]:
            layers.append(LayerSpec("conv", int(match["conv"])))
        else:
            layers.append(LayerSpec("pool"))
    return tuple(layers)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: {reprlib.repr(value)} is not one of {', '.join(allowed)}")


@dataclass(frozen=True)
class NetworkSpec:
    """A spiking network and its training switches (the paper's ablation axes).

    Parameters
    ----------
    layers : tuple of LayerSpec
        Layers 1..L (the encoder, layer 0, is implicit).
    input_shape : tuple of int
        ``(N,)`` for flat inputs (each input is its own encoder channel) or ``(C, H, W)``
        for images (one encoder threshold per channel ``C``).
    timesteps : int
        Simulation steps T, 1..1024.
    reset : str
        ``"zero"`` (eq. 1) or ``"subtract"`` (eq. 8).
    threshold : str
        ``"fixed"`` or ``"trainable"`` (eq. 11; requires ``reset="subtract"``).
    surrogate : str
        ``"rect"`` (eq. 3) or ``"scaled"`` (eq. 14).
    decoder : str
        ``"rate"`` (mean over T), ``"last"`` (spikes at t = T) or ``"fc"`` (a trainable
        FC layer over all T x N_out output spikes).
    population : int
        Output neurons per class (rate and last decoders); the class value is their mean.
    classes : int
        Number of classes. For ``rate``/``last`` the last layer must have
        ``classes * population`` neurons.
    initial_threshold : float
        Initial Vth of every layer, encoder included (paper: 0.5).

    Every layer (the input too) has at most :data:`MAX_NEURONS` units, the weights
    (decoder included) number at most :data:`MAX_WEIGHTS`, ``classes`` is 1..
    :data:`MAX_CLASSES`.

    Raises
    ------
    ValueError
        Naming the field and the allowed values.
    """

    layers: tuple[LayerSpec, ...]
    input_shape: tuple[int, ...]
    timesteps: int = 8
    reset: str = "subtract"
    threshold: str = "trainable"
    surrogate: str = "scaled"
    decoder: str = "last"
    population: int = 1
    classes: int = 10
    initial_threshold: float = 0.5
    shapes: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("arch: needs at least one layer")
        if len(self.layers) > MAX_LAYERS:
            raise ValueError(f"arch: {len(self.layers)} layers is out of range (allowed 1..{MAX_LAYERS})")
        for layer in self.layers:
            if not isinstance(layer, LayerSpec):
                raise ValueError(f"layers: expected LayerSpec items, got {layer!r}")
            _choice("layer kind", layer.kind, LAYER_KINDS)
        shape = tuple(self.input_shape) if isinstance(self.input_shape, (tuple, list)) else ()
        if len(shape) not in (1, 3):
            raise ValueError(
                f"input_shape: {self.input_shape!r} must be (N,) or (C, H, W) of positive integers"
            )
        shape = tuple(check_field("input_shape", n, minimum=1, maximum=MAX_NEURONS) for n in shape)
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "timesteps", check_field("timesteps", self.timesteps, minimum=1, maximum=1024))
        _choice("reset", self.reset, RESETS)
        _choice("threshold", self.threshold, THRESHOLDS)
        _choice("surrogate", self.surrogate, SURROGATES)
        _choice("decoder", self.decoder, DECODERS)
        if self.threshold == "trainable" and self.reset != "subtract":
            raise ValueError(
                "threshold: 'trainable' needs reset 'subtract' (eq. 11 reaches Vth only "
                "through the reset); use threshold 'fixed' with reset 'zero'"
            )
        population = check_field("population", self.population, minimum=1, maximum=MAX_NEURONS)
        object.__setattr__(self, "population", population)
        object.__setattr__(self, "classes", check_field("classes", self.classes, minimum=1, maximum=MAX_CLASSES))
        vth = self.initial_threshold
        try:
            finite = isinstance(vth, (int, float)) and not isinstance(vth, bool) and math.isfinite(vth)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite or vth <= 0:
            raise ValueError(f"initial_threshold: {reprlib.repr(vth)} must be a finite number > 0")
        object.__setattr__(self, "initial_threshold", float(vth))
        object.__setattr__(self, "shapes", self._infer_shapes())
        self._check_sizes()
        last = self.layers[-1]
        if last.kind != "fc":
            raise ValueError(f"arch: the last layer must be nFC, not {last.notation()}")
        if self.decoder != "fc" and last.size != self.classes * self.population:
            raise ValueError(
                f"population: the last layer has {last.size} neurons, which is not "
                f"classes ({self.classes}) x population ({self.population})"
            )

    def _check_sizes(self) -> None:
        """Every layer within :data:`MAX_NEURONS` units, all weights within :data:`MAX_WEIGHTS`."""
        for index, shape in enumerate(self.shapes):
            units = math.prod(shape)
            if units > MAX_NEURONS:
                what = "input_shape" if index == 0 else f"arch: layer {index} ({self.layers[index - 1].notation()})"
                raise ValueError(
                    f"{what}: {units} units is out of range (allowed 1..{MAX_NEURONS} per layer)"
                )
        weights = 0
        for index, layer in enumerate(self.layers, start=1):
            below = self.shapes[index - 1]
            weights += {"fc": layer.size * math.prod(below), "conv": layer.size * below[0] * 9}.get(layer.kind, 0)
        if self.decoder == "fc":
            weights += self.classes * self.timesteps * math.prod(self.shapes[-1])
        if weights > MAX_WEIGHTS:
            raise ValueError(f"arch: {weights} weights is out of range (allowed up to {MAX_WEIGHTS})")

    def _infer_shapes(self) -> tuple[tuple[int, ...], ...]:
        shapes = [self.input_shape]
        for index, layer in enumerate(self.layers, start=1):
            prev = shapes[-1]
            if layer.kind == "fc":
                shapes.append((layer.size,))
                continue
            if len(prev) != 3:
                raise ValueError(
                    f"arch: layer {index} ({layer.notation()}) needs an image input "
                    f"(C, H, W), but its input has shape {prev}"
                )
            c, h, w = prev
            if layer.kind == "conv":
                shapes.append((layer.size, h, w))
            else:
                if h % 2 or w % 2:
                    raise ValueError(
                        f"arch: layer {index} (AP2) needs even height and width, got {h}x{w}"
                    )
                shapes.append((c, h // 2, w // 2))
        return tuple(shapes)

    # Construction ---------------------------------------------------------------------

    @classmethod
    def parse(cls, arch: str, *, input_shape: tuple[int, ...], **switches: Any) -> NetworkSpec:
        """Build a spec from the paper's notation, e.g. ``parse("128FC-100FC", input_shape=(64,))``.

        Keyword switches are the dataclass fields (``timesteps``, ``reset``, ...). When
        ``classes`` is omitted it is 10 for ``fc`` decoding, else last-layer size / population.
        """
        layers = parse_arch(arch)
        unknown = set(switches) - {f for f in cls.__dataclass_fields__ if f != "shapes"} - {"layers"}
        if unknown:
            raise ValueError(f"spec: unknown field(s) {', '.join(sorted(unknown))}")
        if "classes" not in switches and switches.get("decoder", cls.decoder) != "fc":
            population = switches.get("population", 1)
            last = layers[-1]
            if isinstance(population, int) and population >= 1 and last.kind == "fc":
                if last.size % population == 0:
                    switches["classes"] = last.size // population
        return cls(layers=layers, input_shape=tuple(input_shape), **switches)

    @property
    def arch(self) -> str:
        """The architecture in the paper's notation."""
        return "-".join(layer.notation() for layer in self.layers)

    @property
    def num_layers(self) -> int:
        """L, the number of layers after the encoder."""
        return len(self.layers)

    def layer_shape(self, index: int) -> tuple[int, ...]:
        """Shape of layer ``index`` (0 = encoder = input shape) for one sample."""
        return self.shapes[index]

    def channels(self, index: int) -> int:
        """Threshold channels of layer ``index``: FC neurons, conv/encoder image channels; 0 for pools."""
        if index > 0 and not self.layers[index - 1].spiking:
            return 0
        shape = self.shapes[index]
        return shape[0]

    def neurons(self, index: int) -> int:
        """Number of units in layer ``index`` for one sample."""
        return math.prod(self.shapes[index])

    def spiking_layers(self) -> list[int]:
        """Indices of spiking layers, encoder (0) first."""
        return [0] + [i for i, layer in enumerate(self.layers, start=1) if layer.spiking]

    @property
    def is_fc_only(self) -> bool:
        """True when every layer is FC and the input is flat."""
        return len(self.input_shape) == 1 and all(layer.kind == "fc" for layer in self.layers)

    # Serialisation --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``from_dict`` inverts it."""
        data = asdict(self)
        data.pop("shapes")
        data.pop("layers")
        data["arch"] = self.arch
        data["input_shape"] = list(self.input_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSpec:
        """Rebuild (and validate) a spec from ``to_dict`` output."""
        if not isinstance(data, dict) or "arch" not in data or "input_shape" not in data:
            raise ValueError("spec: expected a JSON object with 'arch' and 'input_shape'")
        data = dict(data)
        arch = data.pop("arch")
        input_shape = data.pop("input_shape")
        if not isinstance(input_shape, (list, tuple)):
            raise ValueError(
                f"input_shape: must be a list (N,) or (C, H, W) of positive integers, not {type(input_shape).__name__}"
            )
        if not all(isinstance(key, str) for key in data):
            raise ValueError("spec: field names must be strings")
        return cls.parse(arch, input_shape=tuple(input_shape), **data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NetworkSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"spec: not valid JSON ({error.msg} at line {error.lineno})") from None
        return cls.from_dict(data)
