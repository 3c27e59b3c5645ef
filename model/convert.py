"""DNN-to-SNN conversion (Rueckauer et al. 2017), the baseline of the paper's Table IV.

An analog network (:class:`ANN`) with the architecture of a :class:`~model.spec.NetworkSpec`
is trained, then its weights are copied into a spiking :class:`~model.stbp.Network` whose
IF neurons fire at rates proportional to the ANN's ReLU activations:

* the ANN: ``a_0 = x``; an ``nFC`` / ``nC3`` layer ``a_l = ReLU(W_l a_{l-1})`` (the last
  layer linear, ``a_L = W_L a_{L-1}``), an ``AP2`` layer the 2x2 mean of the layer below;
  no biases. Its ``classes x population`` outputs are averaged per class (as the SNN's
  rate and last decoders do) and trained on the MSE against one-hot labels by
  :func:`model.stbp.train` (SGD with Nesterov momentum, batch 50, cosine schedule, the
  float trainer's augmentation), which drives an :class:`ANN` as it drives a network;
* data-based normalisation: ``lambda_l`` is the ``percentile``-th percentile of the
  positive activations of layer l over a sample of training images (the ReLU outputs;
  for the linear output layer its positive part, all a spike rate can represent), as
  snntoolbox computes it over the non-zero activations; ``percentile = 100`` is the
  max-norm of Diehl et al. 2015. ``lambda_0 = 1`` (the pixels are in [0, 1]), an ``AP2``
  layer has the ``lambda`` of the layer below it (averaging commutes with scaling), and a
  layer without any positive activation in the sample keeps ``lambda = 1``;
* the SNN: weights ``W_l lambda_{l-1} / lambda_l``, every threshold
  :data:`CONVERTED_THRESHOLD` (1.0), reset by subtraction, rate decoding
  (:data:`SNN_SWITCHES`). A unit of layer l then fires at about ``a_l / lambda_l`` spikes
  per step, clipped to [0, 1] (activations above ``lambda_l``, 1 - percentile/100 of them,
  saturate). The encoder is the SNN's own (IF neurons driven by the pixel value every
  step) with threshold 1.0 too, so a pixel x spikes ``floor(T x)`` times in T steps: its
  rate is the pixel value, the ANN's input, without a scale of its own.

The converted network is an ordinary float checkpoint (:meth:`Network.save`):
``spikeforge eval`` runs it, ``spikeforge learn --init`` quantizes it (FC networks), and
from there ``estimate``, ``gen`` and ``cosim``. Its surrogate (``scaled``) and reset keep it
learnable by the core; the thresholds are ``fixed``, as the conversion chose them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from model import checkpoint, metrics
from model.checks import check_field
from model.spec import NetworkSpec
from model.stbp import (
    Grads,
    History,
    Network,
    evaluate,
    float_dtype,
    layer_backward,
    layer_forward,
    load_parameters,
    train,
    training_defaults,
    uniform_weights,
)

#: Percentile of the normalisation by default. Rueckauer et al. 2017 use 99.9 and 99.999
#: (100 is the max-norm of Diehl et al. 2015); 99.9 keeps a few outliers from setting a
#: layer's scale at the cost of saturating 0.1 % of its positive activations.
DEFAULT_PERCENTILE = 99.9
#: Training images whose activations set the percentiles (a seeded sample; all of them
#: when the training split is smaller).
DEFAULT_NORMALISATION_SAMPLES = 1000
#: Threshold of every converted layer, encoder included: with reset by subtraction a unit
#: driven by a constant current c in [0, 1] then fires ``floor(T c)`` times in T steps.
CONVERTED_THRESHOLD = 1.0
#: The switches of a converted network's spec (besides the architecture and T).
SNN_SWITCHES: dict[str, Any] = {
    "reset": "subtract",
    "threshold": "fixed",
    "surrogate": "scaled",
    "decoder": "rate",
    "initial_threshold": CONVERTED_THRESHOLD,
}
#: Gain of the ANN's weight init ``U(-a, a)``, ``a = ANN_INIT_GAIN sqrt(3 / fan_in)``: the
#: float trainer's uniform init scaled by fan-in (:func:`model.stbp.init_bound`) with gain 1
#: (unit-variance weights times inputs). He et al.'s ReLU gain sqrt(2) let the first updates
#: kill ReLUs: on digits (default recipe) 32FC-30FC, population 3, 15 epochs, seeds 0-4 fell
#: from 96.7 % to 87.9 % mean test accuracy (one seed 56.7 %, 78 % of its first layer never
#: active), and 128FC-100FC from 98.5 % to 98.1 %.
ANN_INIT_GAIN = 1.0
#: The ANN's optimizer (:func:`model.stbp.train` options; the paper's STBP training's too).
ANN_OPTIMIZER: dict[str, Any] = {"batch": 50, "momentum": 0.9, "lr_schedule": "cosine"}
#: Bound on the values of all layers' traces (T x units x images) of one evaluation batch:
#: a long T evaluates fewer images at a time (at most 500, :func:`model.stbp.evaluate`'s
#: default), so T = 1024 on a conv network fits in memory; results do not depend on it.
EVALUATION_VALUES = 1 << 24
#: ``checkpoint.json`` kind of a saved :class:`ANN` (``eval`` and ``learn`` refuse it).
ANN_KIND = "ann"

#: ANN training defaults per dataset (:data:`ANN_OPTIMIZER`): epochs and base learning
#: rate; the augmentation is the float trainer's (:func:`model.stbp.training_defaults`).
#: Tuned on 128FC-100FC, population 10: digits 98.5 % mean test accuracy over seeds 0-3
#: (98.3-98.6 %) in about 2 s on one core (lr 0.5: 98.0 %), and on digits 128FC-10FC
#: 98.6 %, 16C3-AP2-100FC 97.5 % (seed 0); mnist10k 97.1 % at seed 0 (lr 0.5: 96.6 %).
#: cifar10's values are a starting point that has not been run.
ANN_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"epochs": 100, "lr": 1.0},
    "mnist10k": {"epochs": 20, "lr": 1.0},
    "cifar10": {"epochs": 60, "lr": 0.2},
}


def ann_defaults(dataset: str) -> dict[str, Any]:
    """ANN training defaults of a dataset: ``{"epochs", "lr", "augmentation"}``.

    Raises
    ------
    ValueError
        For a dataset without defaults.
    """
    if dataset not in ANN_DEFAULTS:
        raise ValueError(f"dataset: {dataset!r} is not one of {', '.join(ANN_DEFAULTS)}")
    return {**ANN_DEFAULTS[dataset], "augmentation": training_defaults(dataset)["augmentation"]}


def check_percentile(percentile: Any) -> float:
    """``percentile`` as a float after checking it is a number in (0, 100].

    Raises
    ------
    ValueError
        ``"percentile: ... is out of range (allowed 0 < percentile <= 100)"``.
    """
    if not (
        isinstance(percentile, (int, float))
        and not isinstance(percentile, bool)
        and math.isfinite(percentile)
        and 0 < percentile <= 100
    ):
        raise ValueError(
            f"percentile: {percentile!r} is out of range (allowed 0 < percentile <= 100)"
        )
    return float(percentile)


def converted_spec(spec: NetworkSpec, timesteps: int) -> NetworkSpec:
    """The spec of ``spec``'s architecture converted to an SNN of ``timesteps`` steps
    (:data:`SNN_SWITCHES`; input shape, population and classes kept).

    Raises
    ------
    ValueError
        For ``timesteps`` out of 1..1024 (naming ``timesteps``).
    """
    return replace(spec, timesteps=timesteps, **SNN_SWITCHES)


# The analog network ------------------------------------------------------------------


@dataclass
class AnnTrace:
    """Result of :meth:`ANN.forward`.

    Attributes
    ----------
    activations : list of numpy.ndarray
        ``activations[l]``, l = 0..L, shape (B, *shape of layer l): the input, the ReLU
        outputs, the pooled values, and the linear output layer.
    output : numpy.ndarray
        Class values (the output layer averaged over each class's population), (B, classes).
    """

    activations: list[np.ndarray]
    output: np.ndarray

    @property
    def last_membrane(self) -> np.ndarray:
        """The output layer (B, classes x population): :func:`metrics.predict`'s tie-break,
        the role the output membrane has in an SNN's trace."""
        return self.activations[-1]


class ANN:
    """A ReLU network with the architecture of a spec, without biases.

    Parameters
    ----------
    spec : NetworkSpec
        The layers, input shape, population and classes are used (the SNN switches are
        not); the decoder must be ``rate`` or ``last`` (class populations).
    seed : int
        Seed of the weight init ``U(-a, a)``, ``a = ANN_INIT_GAIN sqrt(3 / fan_in)``.
    dtype : numpy dtype
        ``float32`` (default; training) or ``float64`` (gradient checks).

    Attributes
    ----------
    weights : list of numpy.ndarray
        ``weights[l-1]`` of layer l, laid out as :attr:`model.stbp.Network.weights`: FC
        (n_out, n_in), conv (C_out, C_in, 3, 3), AP2 an empty array. Writable in place.

    Raises
    ------
    ValueError
        For a bad ``spec``, ``seed`` or ``dtype``.
    """

    def __init__(self, spec: NetworkSpec, *, seed: int = 0, dtype: Any = np.float32) -> None:
        if not isinstance(spec, NetworkSpec):
            raise ValueError(f"spec: expected a NetworkSpec, got {type(spec).__name__}")
        if spec.decoder == "fc":
            raise ValueError("decoder: the ANN averages class populations (allowed rate, last)")
        self.spec = spec
        self.dtype = float_dtype(dtype)
        rng = np.random.default_rng(check_field("seed", seed, minimum=0))
        self.weights = uniform_weights(
            spec, rng, self.dtype, lambda fan_in: ANN_INIT_GAIN * math.sqrt(3.0 / fan_in)
        )

    def parameters(self) -> dict[str, np.ndarray]:
        """The weights by checkpoint name, ``weight_<l>`` (l = 1..L). Arrays are not copied."""
        return {f"weight_{l}": w for l, w in enumerate(self.weights, start=1)}

    # Forward -------------------------------------------------------------------------

    def forward(self, x: np.ndarray) -> AnnTrace:
        """Activations of every layer for a batch.

        Parameters
        ----------
        x : numpy.ndarray
            Inputs, shape (B, *input_shape), B >= 1.

        Returns
        -------
        AnnTrace
        """
        spec = self.spec
        x = np.asarray(x)
        if x.ndim < 1 or x.shape[1:] != spec.input_shape or not len(x):
            raise ValueError(
                f"x: expected shape (B, {', '.join(map(str, spec.input_shape))}) with B >= 1, "
                f"got {x.shape}"
            )
        activations = [x.astype(self.dtype, copy=False)]
        for index, layer in enumerate(spec.layers, start=1):
            current = layer_forward(layer.kind, self.weights[index - 1], activations[-1])
            relu = layer.spiking and index < spec.num_layers
            activations.append(np.maximum(current, 0) if relu else current)
        out = activations[-1]
        output = out.reshape(len(out), spec.classes, spec.population).mean(axis=2)
        return AnnTrace(activations, output)

    def predict(self, x: np.ndarray, *, batch: int = 500) -> np.ndarray:
        """Class predictions (B,) by :func:`metrics.predict` (ties: the larger output layer
        mean, then the lowest class), ``batch`` images per forward pass."""
        batch = check_field("batch", batch, minimum=1)
        parts = []
        for start in range(0, len(x), batch):
            trace = self.forward(x[start : start + batch])
            parts.append(metrics.predict(trace.output, trace.last_membrane))
        return np.concatenate(parts)

    # Backward ------------------------------------------------------------------------

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Grads]:
        """MSE loss of a batch and its gradients.

        Parameters
        ----------
        x : numpy.ndarray
            Inputs, shape (B, *input_shape).
        y : numpy.ndarray
            Integer labels in 0..classes-1, shape (B,).

        Returns
        -------
        loss : float
            Mean over batch and classes of ``(output - one_hot)^2``.
        grads : Grads
            ``weights`` as :attr:`weights` (AP2: empty), no thresholds, no decoder.
        """
        loss, grads, _ = self._loss_and_grads(x, y)
        return loss, grads

    def _loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Grads, AnnTrace]:
        """:meth:`loss_and_grads` and the trace.

        This is the step :func:`model.stbp.train` takes of a network, which it reads
        besides ``spec`` (input shape, classes, decoder, threshold) and
        :meth:`parameters`: the loss, gradients with ``named()`` and a trace with
        ``output`` and ``last_membrane``.
        """
        spec = self.spec
        trace = self.forward(x)
        y = np.asarray(y)
        batch = len(trace.output)
        if y.shape != (batch,) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(
                f"y: expected integer labels of shape ({batch},), got {y.dtype} {y.shape}"
            )
        if not (0 <= y.min() and y.max() < spec.classes):
            raise ValueError(f"y: labels must be in 0..{spec.classes - 1}")
        error = trace.output.copy()
        error[np.arange(batch), y] -= 1.0
        loss = float(np.mean(error**2))
        d_class = error * (2.0 / error.size)
        d_out = np.repeat(d_class / spec.population, spec.population, axis=1)
        weights: list[np.ndarray] = [np.zeros(0, self.dtype)] * spec.num_layers
        for index in range(spec.num_layers, 0, -1):  # layer 1 passes no gradient to the input
            layer = spec.layers[index - 1]
            below, weight = trace.activations[index - 1], self.weights[index - 1]
            if index < spec.num_layers and layer.kind != "pool":
                d_out = d_out * (trace.activations[index] > 0)  # ReLU
            weights[index - 1], d_out = layer_backward(layer.kind, weight, d_out, below, index > 1)
        return loss, Grads(weights, []), trace

    # Checkpoints ---------------------------------------------------------------------

    def save(
        self, directory: str | os.PathLike[str], *, training: Mapping[str, Any] | None = None
    ) -> Path:
        """Write ``weights.npz`` and ``checkpoint.json`` (kind :data:`ANN_KIND`), with the
        JSON-ready ``training`` metadata under ``"training"``; returns the folder."""
        meta = {
            "kind": ANN_KIND,
            "spec": self.spec.to_dict(),
            "dtype": self.dtype.name,
            "training": dict(training or {}),
        }
        return checkpoint.write_checkpoint(directory, meta, self.parameters())

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ANN:
        """Read an ANN written by :meth:`save`, validating every array.

        Raises
        ------
        FileNotFoundError
            When the folder or a file is missing.
        ValueError
            When the kind is not :data:`ANN_KIND`, the spec or dtype is invalid, or an
            array is missing, unexpected, of the wrong shape/dtype or not finite.
        """
        return load_parameters(directory, ANN_KIND, cls)


def train_ann(
    ann: ANN,
    dataset: Any,
    *,
    epochs: int,
    lr: float,
    augmentation: Mapping[str, Any] | None,
    seed: int = 0,
    progress: bool = True,
) -> History:
    """Train ``ann`` in place: :func:`model.stbp.train` with :data:`ANN_OPTIMIZER` (batch 50,
    Nesterov momentum 0.9, cosine schedule) on the MSE loss of :meth:`ANN.loss_and_grads`.

    Parameters
    ----------
    dataset : model.data.Dataset
        Uses ``train_x``, ``train_y``, ``input_shape``, ``classes``, ``image_shape``.
    epochs : int
        Passes over the training set, >= 1.
    lr : float
        Base learning rate, > 0 (:data:`ANN_DEFAULTS`).
    augmentation : mapping or None
        Keyword arguments of :func:`model.data.augment` (:func:`ann_defaults`), or None.
    seed : int
        Seeds the shuffling and the augmentation draws.
    progress : bool
        Show a tqdm progress bar on stderr.

    Raises
    ------
    ValueError
        As :func:`model.stbp.train`.
    """
    return train(
        ann, dataset, epochs=epochs, lr=lr, seed=seed, augmentation=augmentation,
        progress=progress, **ANN_OPTIMIZER,
    )


# Conversion --------------------------------------------------------------------------


def normalisation_sample(x: np.ndarray, samples: int, *, seed: int = 0) -> np.ndarray:
    """``samples`` rows of ``x`` drawn without replacement by a seeded generator, in their
    order in ``x`` (all of ``x`` when it has no more rows).

    Raises
    ------
    ValueError
        For ``samples`` < 1 or a bad ``seed``.
    """
    samples = check_field("samples", samples, minimum=1)
    rng = np.random.default_rng(check_field("seed", seed, minimum=0))
    if samples >= len(x):
        return x
    return x[np.sort(rng.choice(len(x), samples, replace=False))]


def activation_scales(
    ann: ANN, x: np.ndarray, *, percentile: float = DEFAULT_PERCENTILE, batch: int = 500
) -> np.ndarray:
    """The normalisation factors ``lambda_l``, l = 0..L (see the module docstring).

    Parameters
    ----------
    ann : ANN
    x : numpy.ndarray
        Training images, shape (N, *input_shape) (:func:`normalisation_sample`).
    percentile : float
        In (0, 100]; 100 is the maximum activation.
    batch : int
        Images per forward pass (memory; float32 products may round differently at
        another batch size).

    Returns
    -------
    numpy.ndarray
        float64, shape (L + 1,): ``lambda_0 = 1``, ``lambda_l > 0``.

    Raises
    ------
    ValueError
        For a bad ``percentile``, ``batch`` or ``x``.
    """
    percentile = check_percentile(percentile)
    batch = check_field("batch", batch, minimum=1)
    spec = ann.spec
    positive: list[list[np.ndarray]] = [[] for _ in range(spec.num_layers + 1)]
    for start in range(0, len(x), batch):
        activations = ann.forward(x[start : start + batch]).activations
        for index in spec.spiking_layers()[1:]:
            values = activations[index]
            positive[index].append(values[values > 0])
    scales = np.ones(spec.num_layers + 1)
    for index, layer in enumerate(spec.layers, start=1):
        if not layer.spiking:
            scales[index] = scales[index - 1]
            continue
        values = np.concatenate(positive[index])
        if values.size:
            scales[index] = float(np.percentile(values.astype(np.float64), percentile))
    return scales


def to_snn(ann: ANN, scales: Sequence[float], *, timesteps: int) -> Network:
    """The converted SNN: weights ``W_l scales[l-1] / scales[l]``, thresholds 1.0,
    :func:`converted_spec` at ``timesteps`` steps, the ANN's dtype.

    Parameters
    ----------
    scales : sequence of float
        ``lambda_l``, l = 0..L, each > 0 (:func:`activation_scales`).
    timesteps : int
        T, 1..1024.

    Raises
    ------
    ValueError
        For a bad ``timesteps`` or ``scales``.
    """
    spec = converted_spec(ann.spec, timesteps)
    scales = np.asarray(scales, np.float64)
    layers = spec.num_layers
    if scales.shape != (layers + 1,) or not (np.isfinite(scales).all() and scales.min() > 0):
        raise ValueError(
            f"scales: expected {layers + 1} finite values > 0 (layers 0..{layers}), "
            f"got {scales.tolist()}"
        )
    net = Network(spec, dtype=ann.dtype)
    for index, (target, weight) in enumerate(zip(net.weights, ann.weights), start=1):
        target[...] = weight * (scales[index - 1] / scales[index])
    return net


def evaluate_conversion(
    ann: ANN,
    scales: Sequence[float],
    x: np.ndarray,
    y: np.ndarray,
    timesteps: Sequence[int],
    *,
    progress: bool = True,
) -> list[tuple[Network, dict[str, Any]]]:
    """Convert ``ann`` at each T of ``timesteps`` and evaluate it on ``(x, y)``.

    Returns
    -------
    list of (Network, dict)
        Per T, in the given order: the converted network (:func:`to_snn`) and its metrics
        (:func:`model.stbp.evaluate`: ``accuracy``, ``spikes_per_inference``,
        ``spikes_per_layer``, ``synaptic_ops_per_inference``, ...).

    Raises
    ------
    ValueError
        For a bad ``timesteps`` value, ``scales`` or data.
    """
    results = []
    for steps in tqdm(list(timesteps), disable=not progress, unit="T", leave=False):
        net = to_snn(ann, scales, timesteps=steps)
        units = sum(net.spec.neurons(index) for index in range(net.spec.num_layers + 1))
        batch = min(500, max(1, EVALUATION_VALUES // (steps * units)))
        results.append((net, evaluate(net, x, y, batch=batch)))
    return results
