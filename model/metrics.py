"""Inference metrics shared by the float and integer models (plain arrays in, numbers out).

Spike counts are passed as *unit counts*: for each spiking layer (``spec.spiking_layers()``,
encoder first) an array of shape ``spec.layer_shape(l)`` holding the spikes every unit
emitted, summed over the T time steps and over ``samples`` inferences.

Definitions
-----------
* **spikes per inference**: all spikes of all spiking layers (encoder included) per image,
  averaged over the evaluated images; also reported per spiking layer. AP2 layers are not
  spiking and have no entry.
* **synaptic operations per inference**: every spike times its fan-out (the synapses it
  drives), see :func:`synaptic_fanout`.
* **activation sparsity** (NeuroBench ``ActivationSparsity``): ``1 - nonzero / total``
  over the activations of every spiking layer (encoder included) at every time step.
* **prediction**: the argmax of the decoded class values; ties are broken by the class
  membrane (the mean over the class's population of the output membrane at t = T), then
  by the lowest class index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from model.spec import NetworkSpec


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction (0..1) of ``predictions`` equal to ``labels`` (both int, shape (N,)).

    Raises
    ------
    ValueError
        When the shapes differ or are empty.
    """
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.shape != labels.shape or predictions.ndim != 1 or not len(labels):
        raise ValueError(
            f"predictions: shape {predictions.shape} must equal labels' shape "
            f"{labels.shape} (N,), N >= 1"
        )
    return float(np.mean(predictions == labels))


def predict(decoded: np.ndarray, last_membrane: np.ndarray | None = None) -> np.ndarray:
    """Class predictions with the tie-break rule.

    Parameters
    ----------
    decoded : numpy.ndarray
        Decoded class values, shape (B, classes).
    last_membrane : numpy.ndarray, optional
        Output-layer membrane at t = T (before any reset), shape (B, classes * P) with the
        population of class ``c`` in neurons ``c*P .. c*P + P - 1``. Ties of ``decoded``
        go to the larger class membrane (population mean); ``None`` skips that step (the
        ``fc`` decoder, whose output layer is not grouped by class).

    Returns
    -------
    numpy.ndarray
        int64 class indices, shape (B,): among the classes with the largest decoded value,
        those with the largest class membrane, the lowest index.

    Raises
    ------
    ValueError
        When the shapes do not fit.
    """
    decoded = np.asarray(decoded)
    if decoded.ndim != 2 or decoded.shape[1] < 1:
        raise ValueError(f"decoded: expected shape (B, classes), got {decoded.shape}")
    batch, classes = decoded.shape
    candidates = decoded == decoded.max(axis=1, keepdims=True)
    if last_membrane is not None:
        last_membrane = np.asarray(last_membrane)
        if (
            last_membrane.ndim != 2
            or last_membrane.shape[0] != batch
            or last_membrane.shape[1] % classes
        ):
            raise ValueError(
                f"last_membrane: expected shape ({batch}, {classes} x population), "
                f"got {last_membrane.shape}"
            )
        membrane = last_membrane.reshape(batch, classes, -1).mean(axis=2)
        masked = np.where(candidates, membrane, -np.inf)
        candidates &= masked == masked.max(axis=1, keepdims=True)
    return np.argmax(candidates, axis=1).astype(np.int64)


def _in_bounds(size: int) -> np.ndarray:
    """For each position 0..size-1, how many of its 3 neighbours (-1, 0, +1) are in bounds."""
    position = np.arange(size)
    return np.minimum(position + 1, size - 1) - np.maximum(position - 1, 0) + 1


def _unit_fanout(spec: NetworkSpec, index: int) -> np.ndarray:
    """Synapses driven by one event of each unit of layer ``index`` (shape of that layer)."""
    shape = spec.layer_shape(index)
    if index == spec.num_layers:
        # Output spikes feed the fc decoder's synapses (one per class) or are only counted.
        return np.full(shape, spec.classes if spec.decoder == "fc" else 0, dtype=np.int64)
    after = spec.layers[index]
    if after.kind == "fc":
        return np.full(shape, after.size, dtype=np.int64)
    _, height, width = shape
    if after.kind == "conv":
        # 3x3 same padding: a unit reaches the in-bounds output positions around it.
        per_position = after.size * _in_bounds(height)[:, None] * _in_bounds(width)[None, :]
        return np.broadcast_to(per_position, shape).astype(np.int64)
    # AP2: an event is routed through the pooled unit it falls into (the 1/4 folds into
    # the next layer's weights), so it costs that unit's fan-out.
    pooled = _unit_fanout(spec, index + 1)
    return np.repeat(np.repeat(pooled, 2, axis=1), 2, axis=2)


def synaptic_fanout(spec: NetworkSpec, layer: int) -> np.ndarray:
    """Synaptic operations caused by one spike of each unit of spiking layer ``layer``.

    * next layer ``nFC``: ``n`` (every neuron of the next layer);
    * next layer ``nC3`` (3x3, same padding): ``n`` x the number of in-bounds output
      positions of the 3x3 window centred on the unit (9 inside, 6 on an edge, 4 in a
      corner);
    * next layer ``AP2``: the spike is routed through the pooled unit it falls into and
      costs that pooled unit's fan-out, by these rules applied to the layer after the pool;
    * output layer: ``classes`` for the ``fc`` decoder (its weights are synapses), else 0.

    Returns
    -------
    numpy.ndarray
        int64, shape ``spec.layer_shape(layer)``.

    Raises
    ------
    ValueError
        When ``layer`` is not a spiking layer of ``spec``.
    """
    if layer not in spec.spiking_layers():
        raise ValueError(f"layer: {layer} is not a spiking layer (allowed {spec.spiking_layers()})")
    return _unit_fanout(spec, layer)


def _check_counts(spec: NetworkSpec, unit_counts: Sequence[np.ndarray], samples: int) -> None:
    layers = spec.spiking_layers()
    if len(unit_counts) != len(layers):
        raise ValueError(
            f"unit_counts: expected {len(layers)} arrays (spiking layers {layers}), "
            f"got {len(unit_counts)}"
        )
    for layer, counts in zip(layers, unit_counts):
        if np.shape(counts) != spec.layer_shape(layer):
            raise ValueError(
                f"unit_counts[{layers.index(layer)}]: layer {layer} expects shape "
                f"{spec.layer_shape(layer)}, got {np.shape(counts)}"
            )
    if not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples: {samples!r} is out of range (allowed 1 or more)")


def spikes_per_layer(
    spec: NetworkSpec, unit_counts: Sequence[np.ndarray], samples: int
) -> list[float]:
    """Spikes per inference of each spiking layer, encoder first."""
    _check_counts(spec, unit_counts, samples)
    return [float(np.sum(counts, dtype=np.float64)) / samples for counts in unit_counts]


def synaptic_ops_per_layer(
    spec: NetworkSpec, unit_counts: Sequence[np.ndarray], samples: int
) -> list[float]:
    """Synaptic operations per inference caused by the spikes of each spiking layer."""
    _check_counts(spec, unit_counts, samples)
    return [
        float(np.sum(np.asarray(counts, np.float64) * synaptic_fanout(spec, layer))) / samples
        for layer, counts in zip(spec.spiking_layers(), unit_counts)
    ]


def activation_sparsity(spec: NetworkSpec, per_layer: Sequence[float]) -> float:
    """NeuroBench activation sparsity ``1 - spikes / (T x spiking units)`` per inference.

    Parameters
    ----------
    per_layer : sequence of float
        Spikes per inference of each spiking layer, encoder first (:func:`spikes_per_layer`).
    """
    layers = spec.spiking_layers()
    if len(per_layer) != len(layers):
        raise ValueError(f"per_layer: expected {len(layers)} values, got {len(per_layer)}")
    total = spec.timesteps * sum(spec.neurons(layer) for layer in layers)
    return 1.0 - float(sum(per_layer)) / total


def summarize(
    spec: NetworkSpec,
    unit_counts: Sequence[np.ndarray],
    samples: int,
    predictions: np.ndarray,
    labels: np.ndarray,
) -> dict[str, Any]:
    """The metrics of an evaluation as a JSON-ready dict.

    Returns
    -------
    dict
        ``accuracy`` (0..1), ``spikes_per_inference``, ``spikes_per_layer`` (list, encoder
        first), ``synaptic_ops_per_inference``, ``synaptic_ops_per_layer``,
        ``activation_sparsity`` (0..1), ``samples``.
    """
    per_layer = spikes_per_layer(spec, unit_counts, samples)
    ops = synaptic_ops_per_layer(spec, unit_counts, samples)
    return {
        "accuracy": accuracy(predictions, labels),
        "spikes_per_inference": float(sum(per_layer)),
        "spikes_per_layer": per_layer,
        "synaptic_ops_per_inference": float(sum(ops)),
        "synaptic_ops_per_layer": ops,
        "activation_sparsity": activation_sparsity(spec, per_layer),
        "samples": int(samples),
    }


def evaluate_batches(
    spec: NetworkSpec,
    labels: np.ndarray,
    batch: int,
    run: Callable[[int, int], tuple[Sequence[np.ndarray], np.ndarray]],
) -> dict[str, Any]:
    """:func:`summarize` an evaluation run ``batch`` samples at a time.

    ``run(start, stop)`` infers samples ``start..stop-1`` and returns their spikes (indexed
    by layer, each ``(T, B, *layer shape)``; only the spiking layers are read) and their
    predicted classes ``(B,)``. Results do not depend on ``batch``.
    """
    layers = spec.spiking_layers()
    counts = [np.zeros(spec.layer_shape(index), np.float64) for index in layers]
    predictions = np.empty(len(labels), np.int64)
    for start in range(0, len(labels), batch):
        stop = min(start + batch, len(labels))
        spikes, predictions[start:stop] = run(start, stop)
        for total, index in zip(counts, layers):
            total += spikes[index].sum(axis=(0, 1), dtype=np.float64)
    return summarize(spec, counts, len(labels), predictions, labels)
