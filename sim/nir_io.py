"""NIR interchange: spikeforge networks to and from NIR graphs (the ``nir`` extra, HDF5 files).

Export (:func:`network_to_graph`) writes one chain ``Input -> IF (encoder) -> ... -> Output``:

* the pixel encoder (layer 0) is an ``IF`` on the input shape, driven by the pixel value as
  its current every step, one threshold per input channel;
* ``nFC`` is ``[Flatten ->] Linear -> IF``, ``nC3`` is ``Conv2d`` (3x3, stride 1, padding 1,
  zero bias) ``-> IF``, ``AP2`` is ``AvgPool2d`` 2x2 stride 2 (or ``SumPool2d`` with the next
  layer's weights divided by 4, ``pool="sum"``);
* every ``IF`` has ``r = 1``, ``v_reset = 0`` and the per-channel thresholds repeated over
  the units of the channel; the graph metadata records ``reset``, ``decoder``, ``dt = 1``,
  ``timesteps``, the whole spec (``spikeforge_spec``, JSON) and, for the ``fc`` decoder, its
  weight. An integer checkpoint exports its dequantized values
  (:meth:`model.integer.IntegerNetwork.to_float`) with ``checkpoint_kind = "integer"``.

Import (:func:`graph_to_network`) takes such a chain back, from spikeforge or a peer. The
discretisation: a spikeforge step lasts ``dt`` time units of the file (default 1), and an
``IF`` integrates ``v += r * dt * I`` per step (forward Euler of ``dv/dt = r I``); an ``LIF``
is accepted only with ``tau = inf`` (no leak), where ``r = inf`` (snnTorch's ``Leaky(beta=1)``:
``r = tau / dt``) means a gain of 1 per step. The gain ``g = r dt`` is folded exactly into
the weights of the layer (``W -> g W``; the encoder, which has no weights: ``Vth -> Vth / g``).
``SumPool2d`` becomes ``AP2`` with the next layer's weights times 4. NIR's ``IF`` resets to
``v_reset``; spikeforge resets to zero or by subtraction: ``v_reset`` must be 0, and the reset
is ``reset`` (argument), else the file's ``reset`` metadata, else ``"zero"`` (what NIR's
``IF`` means). docs/nir.md has the table and the rules.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.checkpoint import load_checkpoint_kind, read_checkpoint_json
from model.integer import IntegerNetwork
from model.spec import RESETS, NetworkSpec
from model.stbp import Network

#: How to install the optional dependency (printed when it is missing).
NIR_INSTALL = 'pip install -e ".[nir]"'
#: ``generator`` metadata of the graphs written here.
GENERATOR = "spikeforge"
#: Duration of one spikeforge step in the exported file's time unit.
EXPORT_DT = 1.0
#: Pool node kinds of :func:`network_to_graph`.
POOLS = ("avg", "sum")

#: NIR node types spikeforge cannot run, and why.
UNSUPPORTED = {
    "LI": "a leaky integrator without spikes (spikeforge neurons are IF and spike)",
    "I": "an integrator without spikes (spikeforge neurons are IF and spike)",
    "CubaLI": "a synaptic current and a leak without spikes (spikeforge neurons are IF)",
    "CubaLIF": "a synaptic current state and a leak (spikeforge neurons are IF without leak)",
    "Delay": "synaptic delays (spikeforge delivers every spike in the next layer's same step)",
    "Scale": "an elementwise scale between layers (spikeforge layers are Linear or Conv2d)",
    "Threshold": "a threshold without a membrane (spikeforge neurons are IF)",
    "Conv1d": "a 1-D convolution (spikeforge convolves images with 3x3 Conv2d)",
    "NIRGraph": "a nested graph such as a recurrent layer (spikeforge runs one feed-forward chain)",
}
_NEURONS = ("IF", "LIF")
_SYNAPSES = ("Linear", "Affine", "Conv2d")
_POOLS = ("AvgPool2d", "SumPool2d")
_KNOWN = {"Input", "Output", "Flatten", *_NEURONS, *_SYNAPSES, *_POOLS, *UNSUPPORTED}


def require_nir() -> Any:
    """The ``nir`` module, or a ``ValueError`` naming the extra to install."""
    try:
        import h5py  # noqa: F401
        import nir
    except ImportError:
        raise ValueError(f"the nir package is not installed; install the nir extra: {NIR_INSTALL}") from None
    return nir


# Export --------------------------------------------------------------------------------


def load_checkpoint(directory: str | os.PathLike[str]) -> tuple[Network, dict[str, Any]]:
    """A float or integer checkpoint as a float :class:`Network` plus its export metadata.

    An integer checkpoint is dequantized (``W / 2^fw``, times 4^k behind k AP2 layers,
    ``Vth / 2^fw``, encoder ``Vth / 255``: :meth:`IntegerNetwork.to_float`).

    Raises
    ------
    FileNotFoundError, ValueError
        For a missing or bad checkpoint (as the models' loaders), or another kind.
    """
    kind = load_checkpoint_kind(directory)
    if kind == "float":
        net = Network.load(directory)
        info: dict[str, Any] = {"checkpoint_kind": "float"}
    elif kind == "integer":
        integer = IntegerNetwork.load(directory)
        net = integer.to_float()
        info = {
            "checkpoint_kind": "integer",
            "dequantized": 1,
            "formats": json.dumps(integer.formats_dict(), sort_keys=True),
        }
    else:
        raise ValueError(f"checkpoint: kind {kind!r} is neither 'float' nor 'integer'")
    training = read_checkpoint_json(directory).get("training")
    if isinstance(training, dict) and isinstance(training.get("dataset"), str):
        info["dataset"] = training["dataset"]
    return net, info


def _neuron(nir: Any, vth: np.ndarray, shape: tuple[int, ...]) -> Any:
    """An ``IF`` of ``shape`` with r = 1, v_reset = 0 and per-channel thresholds ``vth``."""
    per_unit = vth.reshape(-1, 1, 1) if len(shape) == 3 else vth
    threshold = np.broadcast_to(per_unit, shape).copy()
    return nir.IF(r=np.ones_like(threshold), v_threshold=threshold, v_reset=np.zeros_like(threshold))


def network_to_graph(net: Network, *, pool: str = "avg", info: Mapping[str, Any] | None = None) -> Any:
    """The NIR graph of a float network (module docstring).

    Parameters
    ----------
    pool : str
        ``"avg"`` (``AvgPool2d``) or ``"sum"`` (``SumPool2d``, next weights / 4: exact in
        binary floats) for ``AP2``.
    info : mapping, optional
        Extra graph metadata (e.g. from :func:`load_checkpoint`).
    """
    nir = require_nir()
    if pool not in POOLS:
        raise ValueError(f"pool: {pool!r} is not one of {', '.join(POOLS)}")
    spec = net.spec
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(spec.input_shape))}
    nodes["encoder"] = _neuron(nir, net.thresholds[0], spec.input_shape)
    scale = 1.0  # of the next synaptic layer: 1/4 per SumPool2d before it
    for index, layer in enumerate(spec.layers, start=1):
        below, shape = spec.layer_shape(index - 1), spec.layer_shape(index)
        weight = net.weights[index - 1] * scale
        if layer.kind == "fc":
            if len(below) == 3:
                nodes[f"flatten{index}"] = nir.Flatten(
                    input_type={"input": np.array(below)}, start_dim=0, end_dim=-1
                )
            nodes[f"linear{index}"] = nir.Linear(weight=weight)
        elif layer.kind == "conv":
            nodes[f"conv{index}"] = nir.Conv2d(
                input_shape=tuple(below[1:]), weight=weight, stride=1, padding=1, dilation=1,
                groups=1, bias=np.zeros(shape[0], weight.dtype),
            )
        else:
            kind = nir.AvgPool2d if pool == "avg" else nir.SumPool2d
            nodes[f"pool{index}"] = kind(
                kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
            )
            scale = scale / 4 if pool == "sum" else scale
            continue
        scale = 1.0
        nodes[f"if{index}"] = _neuron(nir, net.thresholds[index], shape)
    nodes["output"] = nir.Output(output_type=np.array(spec.layer_shape(spec.num_layers)))
    names = list(nodes)
    metadata: dict[str, Any] = {
        "generator": GENERATOR,
        "spikeforge_spec": spec.to_json(),
        "reset": spec.reset,
        "decoder": spec.decoder,
        "timesteps": spec.timesteps,
        "dt": EXPORT_DT,
        "fire": "v >= v_threshold",
        **(info or {}),
    }
    if net.decoder_weight is not None:
        metadata["decoder_weight"] = net.decoder_weight.copy()
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(names)), metadata=metadata)


def export_checkpoint(
    directory: str | os.PathLike[str], out: str | os.PathLike[str], *, pool: str = "avg"
) -> Any:
    """Write the NIR file of a float or integer checkpoint; returns the graph."""
    nir = require_nir()
    net, info = load_checkpoint(directory)
    graph = network_to_graph(net, pool=pool, info=info)
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out: {str(path)!r} is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        nir.write(path, graph)
    except OSError as error:
        raise ValueError(f"--out: cannot write {str(path)!r}: {error.strerror or error}") from None
    return graph


# Reading -------------------------------------------------------------------------------


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def read_graph(path: str | os.PathLike[str]) -> Any:
    """Read a NIR file, naming what is wrong in one line.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        For a file that is not HDF5 (or is truncated), not a NIR graph, has a node of an
        unknown type or a node NIR cannot build (the message names the node).
    """
    require_nir()
    import h5py
    from nir.serialization import hdf2dict

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r}: no such NIR file")
    try:
        with h5py.File(path, "r") as handle:
            root = handle.get("node")
            if root is None or not isinstance(root, h5py.Group):
                raise ValueError(f"{path}: not a NIR file (no 'node' group)")
            data = hdf2dict(root)
    except (OSError, RuntimeError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a readable HDF5 file ({_first_line(error)})") from None
    return graph_from_dict(data, where=str(path))


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def graph_from_dict(data: Any, *, where: str = "graph") -> Any:
    """A ``nir.NIRGraph`` from the dict of a NIR file's ``node`` group (not type-checked:
    :func:`graph_to_network` checks the shapes of the chain it runs)."""
    nir = require_nir()
    if not isinstance(data, dict) or _text(data.get("type")) != "NIRGraph":
        raise ValueError(f"{where}: the top node is not a NIRGraph")
    raw_nodes, raw_edges = data.get("nodes"), data.get("edges")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        raise ValueError(f"{where}: the graph has no nodes")
    nodes = {}
    for name, raw in raw_nodes.items():
        kind = _text(raw.get("type")) if isinstance(raw, dict) else None
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"node {name!r}: has no type")
        if kind not in _KNOWN:
            raise ValueError(f"node {name!r}: unknown NIR node type {kind!r}")
        if kind in UNSUPPORTED:
            raise ValueError(f"node {name!r} ({kind}): not supported: {UNSUPPORTED[kind]}")
        try:
            nodes[name] = nir.dict2NIRNode({key: _text(value) for key, value in raw.items()})
        except Exception as error:  # noqa: BLE001 - nir raises assertions, key and type errors
            raise ValueError(f"node {name!r} ({kind}): malformed ({_first_line(error)})") from None
    try:
        edges = [(str(_text(a)), str(_text(b))) for a, b in np.asarray(raw_edges).reshape(-1, 2)]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: edges must be (source, target) pairs of node names") from None
    metadata = data.get("metadata")
    metadata = {key: _text(value) for key, value in metadata.items()} if isinstance(metadata, dict) else {}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False)


# Import --------------------------------------------------------------------------------


@dataclass
class Imported:
    """Result of :func:`graph_to_network`: the network and how the file was read.

    Attributes
    ----------
    network : Network
    notes : list of str
        What was assumed because the file did not say (one line each).
    chain : list of str
        The node names from Input to Output.
    dataset : str or None
        The dataset named in the metadata (spikeforge files).
    """

    network: Network
    notes: list[str] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)
    dataset: str | None = None


def _chain(graph: Any, nir: Any) -> list[str]:
    """Node names of the single path Input -> ... -> Output, or a one-line error."""
    nodes = graph.nodes
    inputs = [name for name, node in nodes.items() if isinstance(node, nir.Input)]
    outputs = [name for name, node in nodes.items() if isinstance(node, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"graph: needs one Input and one Output node, found {len(inputs)} and {len(outputs)}"
        )
    after: dict[str, str] = {}
    before: dict[str, str] = {}
    for source, target in graph.edges:
        for name in (source, target):
            if name not in nodes:
                raise ValueError(f"edge ({source!r}, {target!r}): node {name!r} does not exist")
        if source in after:
            raise ValueError(
                f"node {source!r}: feeds {after[source]!r} and {target!r}; spikeforge runs one "
                "chain Input -> ... -> Output"
            )
        if target in before:
            raise ValueError(
                f"node {target!r}: has inputs {before[target]!r} and {source!r}; spikeforge runs "
                "one chain Input -> ... -> Output"
            )
        after[source], before[target] = target, source
    chain = [inputs[0]]
    while chain[-1] != outputs[0]:
        following = after.get(chain[-1])
        if following is None:
            raise ValueError(f"node {chain[-1]!r}: does not lead to the Output node {outputs[0]!r}")
        if following in chain:
            raise ValueError(f"node {following!r}: the graph has a cycle; spikeforge runs one chain")
        chain.append(following)
    stray = sorted(set(nodes) - set(chain))
    if stray:
        raise ValueError(f"node {stray[0]!r}: is not on the chain Input -> ... -> Output")
    return chain


def _shape_text(shape: tuple[int, ...]) -> str:
    return f"({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''})"


def _unit_array(name: str, node: Any, field_name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A neuron parameter as a float array of ``shape`` (a scalar is repeated)."""
    kind = type(node).__name__
    try:
        value = np.asarray(getattr(node, field_name), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"node {name!r} ({kind}): {field_name} is not numeric") from None
    if value.size == 1:
        value = np.full(shape, value.reshape(()))
    if value.shape != shape:
        raise ValueError(
            f"node {name!r} ({kind}): {field_name} has shape {_shape_text(value.shape)}, its "
            f"input has shape {_shape_text(shape)}"
        )
    if np.isnan(value).any():
        raise ValueError(f"node {name!r} ({kind}): {field_name} has NaN values")
    return value


def _per_channel(name: str, node: Any, field_name: str, value: np.ndarray) -> np.ndarray:
    """One value per channel: FC units are their own channel; conv units of a channel share."""
    if value.ndim == 3:
        first = value[:, :1, :1]
        if not np.array_equal(value, np.broadcast_to(first, value.shape)):
            raise ValueError(
                f"node {name!r} ({type(node).__name__}): {field_name} differs within a channel; "
                "spikeforge has one per channel"
            )
        return first.reshape(-1)
    return value


def _neuron_params(
    name: str, node: Any, nir: Any, shape: tuple[int, ...], dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel thresholds and input gains (``r dt`` per step) of an IF / LIF node."""
    kind = type(node).__name__
    vth = _unit_array(name, node, "v_threshold", shape)
    reset = _unit_array(name, node, "v_reset", shape)
    r = _unit_array(name, node, "r", shape)
    if not (np.isfinite(vth).all() and vth.min() > 0):
        raise ValueError(f"node {name!r} ({kind}): v_threshold must be finite and > 0")
    if np.any(reset != 0):
        raise ValueError(
            f"node {name!r} ({kind}): v_reset must be 0 (spikeforge resets to zero or by "
            f"subtraction), got {float(reset[reset != 0].flat[0])!r}"
        )
    if isinstance(node, nir.LIF):
        tau = _unit_array(name, node, "tau", shape)
        if np.isfinite(tau).any():
            raise ValueError(
                f"node {name!r} (LIF): finite tau ({float(tau[np.isfinite(tau)].min())!r}) is a "
                "membrane leak; spikeforge neurons do not leak (only tau = inf, e.g. snnTorch's "
                "Leaky(beta=1), is accepted)"
            )
        if np.isfinite(r).any():
            raise ValueError(
                f"node {name!r} (LIF): tau = inf with finite r: r / tau = 0, the input never "
                "reaches the membrane"
            )
        gain = np.ones(shape)  # r = tau / dt (snnTorch): dt r / tau = 1 per step
    else:
        gain = r * dt
        if not (np.isfinite(gain).all() and gain.min() > 0):
            raise ValueError(f"node {name!r} (IF): r * dt must be finite and > 0")
    return _per_channel(name, node, "v_threshold", vth), _per_channel(name, node, "r", gain)


def _array(name: str, node: Any, field_name: str) -> np.ndarray:
    value = np.asarray(getattr(node, field_name))
    if not np.issubdtype(value.dtype, np.number) or not np.isfinite(value).all():
        raise ValueError(f"node {name!r} ({type(node).__name__}): {field_name} must be finite numbers")
    return value


def _shown(value: Any, limit: int = 8) -> str:
    """A node field's value for a one-line message: a string as it is, else its flattened numbers
    (the first ``limit``)."""
    if isinstance(value, str):
        return repr(value)
    try:
        flat = np.asarray(value).reshape(-1).tolist()
    except (TypeError, ValueError):
        return type(value).__name__
    return repr(tuple(flat[:limit]))[:-1] + (", ...)" if len(flat) > limit else ")")


def _pair(name: str, node: Any, field_name: str, expected: int) -> None:
    value = getattr(node, field_name)
    if isinstance(value, str):
        ok = field_name == "padding" and value == "same"
    else:
        try:
            ok = np.array_equal(np.broadcast_to(np.asarray(value), (2,)), [expected, expected])
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(
            f"node {name!r} ({type(node).__name__}): {field_name} {_shown(value)} is not supported "
            f"(allowed {expected}{' or same' if field_name == 'padding' else ''})"
        )


def _shape_of(value: Any) -> tuple[int, ...] | None:
    """A declared NIR shape as a tuple of ints, or None when it is absent or not integers."""
    if value is None:
        return None
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer) and not (
        np.issubdtype(array.dtype, np.floating) and np.all(np.isfinite(array)) and np.all(array == np.round(array))
    ):
        return None
    return tuple(int(n) for n in array.reshape(-1))


def _metadata_number(metadata: Mapping[str, Any], key: str) -> Any:
    value = metadata.get(key)
    return value.item() if isinstance(value, np.ndarray) and value.size == 1 else value


def graph_to_network(
    graph: Any,
    *,
    reset: str | None = None,
    dt: float | None = None,
    timesteps: int | None = None,
    decoder: str | None = None,
    population: int | None = None,
) -> Imported:
    """A float :class:`Network` of a NIR graph (module docstring; docs/nir.md).

    Parameters
    ----------
    reset : str, optional
        ``"zero"`` or ``"subtract"``; default: the file's ``reset`` metadata, else ``"zero"``.
    dt : float, optional
        Duration of one spikeforge step in the file's time unit, > 0; default: the file's
        ``dt`` metadata, else 1.
    timesteps : int, optional
        T; default: the file's ``timesteps`` metadata, else 8.
    decoder, population : optional
        ``"rate"`` or ``"last"`` and output neurons per class; default: the file's spec,
        else rate decoding with population 1.

    Raises
    ------
    ValueError
        One line naming the node (or metadata field) and why it cannot run.
    """
    nir = require_nir()
    metadata = graph.metadata if isinstance(graph.metadata, dict) else {}
    notes: list[str] = []
    if reset is not None and reset not in RESETS:
        raise ValueError(f"reset: {reset!r} is not one of {', '.join(RESETS)}")
    if dt is None:
        dt = _metadata_number(metadata, "dt")
        dt = 1.0 if dt is None else dt
        where = "metadata dt"
    else:
        where = "dt"
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.number)) or not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"{where}: {dt!r} must be a finite number > 0")
    dt = float(dt)
    chain = _chain(graph, nir)
    nodes = graph.nodes
    declared = nodes[chain[0]].input_type
    shape = _shape_of(declared.get("input") if isinstance(declared, dict) else None)
    if shape is None or len(shape) not in (1, 3) or min(shape, default=0) < 1:
        raise ValueError(f"node {chain[0]!r} (Input): its shape is not (N,) or (C, H, W) of positive integers")
    input_shape = shape
    body = chain[1:-1]
    if not body or type(nodes[body[0]]).__name__ not in _NEURONS:
        first = body[0] if body else chain[-1]
        raise ValueError(
            f"node {first!r} ({type(nodes[first]).__name__}): the Input must feed an IF (or "
            "LIF with tau = inf): spikeforge's layer 0 encodes each pixel as the current of an "
            "IF neuron"
        )
    vth0, gain0 = _neuron_params(body[0], nodes[body[0]], nir, shape, dt)
    encoder_vth = vth0 / gain0  # v/g integrates x: the gain moves into the threshold
    tokens: list[str] = []
    weights: list[np.ndarray] = []
    thresholds: list[np.ndarray] = [encoder_vth]
    dtypes: list[np.dtype] = []
    scale = 1.0  # x4 per SumPool2d before the next synaptic layer
    position = 1
    while position < len(body):
        name = body[position]
        node = nodes[name]
        kind = type(node).__name__
        position += 1
        if kind == "Flatten":
            shape = (math.prod(shape),)
            continue
        if kind in _POOLS:
            if len(shape) != 3:
                raise ValueError(
                    f"node {name!r} ({kind}): spikeforge pools images (C, H, W), here its input "
                    f"has shape {_shape_text(shape)}"
                )
            for field_name, expected in (("kernel_size", 2), ("stride", 2), ("padding", 0)):
                _pair(name, node, field_name, expected)
            if shape[1] % 2 or shape[2] % 2:
                raise ValueError(f"node {name!r} ({kind}): needs even height and width, got {shape}")
            shape = (shape[0], shape[1] // 2, shape[2] // 2)
            scale *= 4.0 if kind == "SumPool2d" else 1.0
            tokens.append("AP2")
            weights.append(np.zeros(0))
            thresholds.append(np.zeros(0))
            continue
        if kind in _NEURONS:
            raise ValueError(
                f"node {name!r} ({kind}): a neuron must follow a Linear or Conv2d (or the Input, "
                "as the encoder)"
            )
        if kind not in _SYNAPSES:
            raise ValueError(f"node {name!r} ({kind}): must be the last node (the Output)")
        weight = _array(name, node, "weight")
        dtypes.append(weight.dtype)
        if kind in ("Linear", "Affine"):
            if kind == "Affine" and np.any(_array(name, node, "bias") != 0):
                raise ValueError(
                    f"node {name!r} (Affine): bias is non-zero; spikeforge neurons have no bias"
                )
            if weight.ndim != 2:
                raise ValueError(f"node {name!r} ({kind}): weight must be 2-D (out, in), got {weight.shape}")
            if len(shape) != 1:
                raise ValueError(
                    f"node {name!r} ({kind}): its input has shape {_shape_text(shape)}; put a "
                    "Flatten before it"
                )
            if weight.shape[1] != shape[0]:
                raise ValueError(
                    f"node {name!r} ({kind}): weight has {weight.shape[1]} inputs, its input has "
                    f"{shape[0]} values"
                )
            shape = (weight.shape[0],)
            tokens.append(f"{weight.shape[0]}FC")
        else:
            if np.any(_array(name, node, "bias") != 0):
                raise ValueError(
                    f"node {name!r} (Conv2d): bias is non-zero; spikeforge neurons have no bias"
                )
            if weight.ndim != 4 or weight.shape[2:] != (3, 3):
                raise ValueError(
                    f"node {name!r} (Conv2d): weight {weight.shape} is not (C_out, C_in, 3, 3)"
                )
            for field_name, expected in (("stride", 1), ("padding", 1), ("dilation", 1)):
                _pair(name, node, field_name, expected)
            if np.asarray(getattr(node, "groups", 1)).reshape(-1).tolist() != [1]:
                raise ValueError(f"node {name!r} (Conv2d): groups {_shown(node.groups)} is not supported (allowed 1)")
            if len(shape) != 3 or weight.shape[1] != shape[0]:
                raise ValueError(
                    f"node {name!r} (Conv2d): weight has {weight.shape[1]} input channels, its "
                    f"input has shape {_shape_text(shape)}"
                )
            declared = getattr(node, "input_shape", None)
            if declared is not None and _shape_of(declared) != shape[1:]:
                raise ValueError(
                    f"node {name!r} (Conv2d): input_shape {_shown(declared)} differs from its input's "
                    f"(H, W) = {shape[1:]}"
                )
            shape = (weight.shape[0], *shape[1:])
            tokens.append(f"{weight.shape[0]}C3")
        if position >= len(body) or type(nodes[body[position]]).__name__ not in _NEURONS:
            following = body[position] if position < len(body) else chain[-1]
            raise ValueError(
                f"node {following!r} ({type(nodes[following]).__name__}): spikeforge needs an IF "
                f"(or LIF with tau = inf) after {name!r}"
            )
        neuron = body[position]
        position += 1
        vth, gain = _neuron_params(neuron, nodes[neuron], nir, shape, dt)
        per_out = gain.reshape(-1, *([1] * (weight.ndim - 1)))
        weights.append(np.asarray(weight, np.float64) * (scale * per_out) if (scale != 1 or np.any(gain != 1)) else weight)
        thresholds.append(vth)
        scale = 1.0
    output = nodes[chain[-1]].output_type
    declared = _shape_of(output.get("output") if isinstance(output, dict) else None)
    if declared and math.prod(declared) != math.prod(shape):
        raise ValueError(
            f"node {chain[-1]!r} (Output): shape {_shape_text(declared)} differs from its input's "
            f"{_shape_text(shape)}"
        )
    overrides = {"decoder": decoder, "population": population}
    spec, decoder_weight = _spec(metadata, "-".join(tokens), input_shape, reset, timesteps, overrides, notes)
    dtype = np.float64 if any(d == np.float64 for d in dtypes) else np.float32
    net = Network(spec, dtype=dtype)
    for target, value in zip(net.weights, weights):
        target[...] = value
    for target, value in zip(net.thresholds, thresholds):
        target[...] = value
    if spec.decoder == "fc":
        net.decoder_weight[...] = decoder_weight
    dataset = metadata.get("dataset") if isinstance(metadata.get("dataset"), str) else None
    return Imported(net, notes, chain, dataset)


def _spec(
    metadata: Mapping[str, Any],
    arch: str,
    input_shape: tuple[int, ...],
    reset: str | None,
    timesteps: int | None,
    overrides: Mapping[str, Any],
    notes: list[str],
) -> tuple[NetworkSpec, np.ndarray | None]:
    """The spec of an imported chain: the metadata's switches where given, else defaults."""
    if not arch:
        raise ValueError("graph: no Linear or Conv2d layer after the encoder")
    switches: dict[str, Any] = {}
    stored = metadata.get("spikeforge_spec")
    if stored is not None:
        try:
            saved = NetworkSpec.from_json(str(stored))
        except ValueError as error:
            raise ValueError(f"metadata spikeforge_spec: {error}") from None
        if saved.arch != arch or saved.input_shape != input_shape:
            raise ValueError(
                f"metadata spikeforge_spec: {saved.arch} on {saved.input_shape} differs from the "
                f"graph's {arch} on {input_shape}"
            )
        switches = saved.to_dict()
        for key in ("arch", "input_shape"):
            switches.pop(key)
    if reset is None:
        reset = metadata.get("reset")
        if reset is None:
            reset = "zero"
            notes.append(
                "reset: the file does not say; assuming NIR's reset to v_reset = 0 (zero); pass "
                "--reset subtract for a network trained with reset by subtraction"
            )
        elif reset not in RESETS:
            raise ValueError(f"metadata reset: {reset!r} is not one of {', '.join(RESETS)}")
    switches["reset"] = reset
    if reset == "zero":
        switches["threshold"] = "fixed"  # trainable thresholds need reset by subtraction
    elif "threshold" not in switches:
        switches["threshold"] = "trainable"
    if timesteps is None:
        timesteps = _metadata_number(metadata, "timesteps")
        if timesteps is None:
            timesteps = switches.get("timesteps", 8)
            if stored is None:
                notes.append(f"timesteps: the file does not say; using T = {timesteps}")
    switches["timesteps"] = timesteps
    given = {key: value for key, value in overrides.items() if value is not None}
    if given:
        switches.update(given)
        if "decoder" in given or "population" in given:
            switches.pop("classes", None)  # follows from the last layer and the population
    if stored is None:
        if not given:
            notes.append("decoder: the file does not say; using rate decoding, population 1")
        switches.setdefault("decoder", "rate")
        switches.setdefault("population", 1)
    try:
        spec = NetworkSpec.parse(arch, input_shape=input_shape, **switches)
    except ValueError as error:
        raise ValueError(f"spec: {error}") from None
    decoder_weight = None
    if spec.decoder == "fc":
        decoder_weight = np.asarray(metadata.get("decoder_weight"))
        expected = (spec.classes, spec.timesteps * spec.neurons(spec.num_layers))
        if decoder_weight.shape != expected or not np.issubdtype(decoder_weight.dtype, np.floating):
            raise ValueError(
                f"metadata decoder_weight: the fc decoder needs a float array {expected}, got "
                f"{decoder_weight.dtype} {decoder_weight.shape}"
            )
    return spec, decoder_weight


def import_file(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    reset: str | None = None,
    dt: float | None = None,
    timesteps: int | None = None,
    decoder: str | None = None,
    population: int | None = None,
) -> Imported:
    """Read a NIR file and save it as a float checkpoint folder (:meth:`Network.save`)."""
    graph = read_graph(path)
    result = graph_to_network(
        graph, reset=reset, dt=dt, timesteps=timesteps, decoder=decoder, population=population
    )
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out: {str(folder)!r} exists and is not a folder")
    training: dict[str, Any] = {"imported_from": str(path), "nir_notes": result.notes}
    if result.dataset is not None:
        training["dataset"] = result.dataset
    try:
        result.network.save(folder, training=training)
    except OSError as error:
        raise ValueError(f"--out: cannot write {str(folder)!r}: {error.strerror or error}") from None
    return result
