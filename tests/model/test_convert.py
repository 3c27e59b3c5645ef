"""DNN-to-SNN conversion: ANN gradients, the normalisation, the converted network, errors."""

from __future__ import annotations

import numpy as np
import pytest

from model.convert import (
    ANN,
    ANN_DEFAULTS,
    ANN_INIT_GAIN,
    CONVERTED_THRESHOLD,
    activation_scales,
    ann_defaults,
    check_percentile,
    converted_spec,
    evaluate_conversion,
    normalisation_sample,
    to_snn,
    train_ann,
)
from model.data import Dataset, load_dataset
from model.spec import NetworkSpec
from model.stbp import Network, training_defaults

#: FC, conv (first and after a pool), pool, hidden ReLUs and a population output.
GRAD_ARCH = "2C3-AP2-3C3-5FC-6FC"


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits: Dataset) -> ANN:
    """A small ANN on digits (a second or so)."""
    spec = NetworkSpec.parse("32FC-30FC", input_shape=digits.input_shape, population=3)
    ann = ANN(spec, seed=3)
    train_ann(ann, digits, epochs=15, lr=1.0, augmentation=None, seed=3, progress=False)
    return ann


def _grad_problem(seed: int = 0) -> tuple[ANN, np.ndarray, np.ndarray]:
    spec = NetworkSpec.parse(GRAD_ARCH, input_shape=(1, 4, 4), population=2, classes=3)
    ann = ANN(spec, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return ann, rng.uniform(0, 1, (4, 1, 4, 4)), rng.integers(0, 3, 4)


# Gradients ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_ann_gradients_match_finite_differences(seed: int) -> None:
    ann, x, y = _grad_problem(seed)
    _, grads = ann.loss_and_grads(x, y)
    analytic = grads.named()
    assert set(analytic) == set(ann.parameters())
    eps = 1e-6
    for name, weight in ann.parameters().items():
        numeric = np.zeros_like(weight)
        for index in np.ndindex(weight.shape):
            saved = weight[index]
            weight[index] = saved + eps
            up = ann.loss_and_grads(x, y)[0]
            weight[index] = saved - eps
            down = ann.loss_and_grads(x, y)[0]
            weight[index] = saved
            numeric[index] = (up - down) / (2 * eps)
        assert analytic[name].shape == weight.shape, name
        np.testing.assert_allclose(analytic[name], numeric, rtol=1e-5, atol=1e-9, err_msg=name)
    assert any(np.abs(g).max() > 0 for g in analytic.values() if g.size)


def test_ann_forward_is_relu_then_linear_output_and_population_mean() -> None:
    ann, x, _ = _grad_problem()
    trace = ann.forward(x)
    assert [a.shape[1:] for a in trace.activations] == list(ann.spec.shapes)
    assert all((a >= 0).all() for a in trace.activations[1:-1])  # ReLU and pools of ReLUs
    assert (trace.activations[-1] < 0).any()  # the output layer is linear
    np.testing.assert_allclose(trace.output, trace.activations[-1].reshape(4, 3, 2).mean(axis=2))
    np.testing.assert_array_equal(trace.last_membrane, trace.activations[-1])


def test_ann_init_is_uniform_scaled_by_fan_in() -> None:
    spec = NetworkSpec.parse("8C3-AP2-400FC-10FC", input_shape=(2, 4, 4), population=1)
    ann = ANN(spec, seed=0)
    for weight, fan_in in zip((ann.weights[0], ann.weights[2]), (2 * 9, 8 * 2 * 2)):
        bound = ANN_INIT_GAIN * np.sqrt(3.0 / fan_in)
        assert np.abs(weight).max() <= bound
        assert np.abs(weight).max() > 0.9 * bound
    assert ann.weights[1].size == 0 and ann.weights[0].dtype == np.float32


# Training ----------------------------------------------------------------------------


def test_training_is_deterministic_and_learns(digits: Dataset, trained: ANN) -> None:
    accuracy = np.mean(trained.predict(digits.test_x) == digits.test_y)
    assert accuracy > 0.9
    again = ANN(trained.spec, seed=3)
    train_ann(again, digits, epochs=15, lr=1.0, augmentation=None, seed=3, progress=False)
    for ours, theirs in zip(trained.weights, again.weights):
        np.testing.assert_array_equal(ours, theirs)
    other = ANN(trained.spec, seed=4)
    assert not np.array_equal(other.weights[0], ANN(trained.spec, seed=3).weights[0])


def test_defaults_take_the_float_trainers_augmentation() -> None:
    for dataset in ANN_DEFAULTS:
        defaults = ann_defaults(dataset)
        assert defaults["augmentation"] == training_defaults(dataset)["augmentation"]
        assert defaults["epochs"] >= 1 and defaults["lr"] > 0


def test_ann_checkpoint_round_trip(tmp_path, trained: ANN) -> None:
    trained.save(tmp_path / "ann", training={"dataset": "digits"})
    loaded = ANN.load(tmp_path / "ann")
    assert loaded.spec == trained.spec and loaded.dtype == trained.dtype
    for ours, theirs in zip(trained.weights, loaded.weights):
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match="kind 'ann' is not a float checkpoint"):
        Network.load(tmp_path / "ann")


# Normalisation and conversion ----------------------------------------------------------


def test_scales_are_percentiles_of_positive_activations(digits: Dataset, trained: ANN) -> None:
    x = normalisation_sample(digits.train_x, 300, seed=1)
    activations = trained.forward(x).activations
    for percentile in (99.0, 100.0):
        scales = activation_scales(trained, x, percentile=percentile, batch=128)
        assert scales[0] == 1.0
        for layer in (1, 2):
            values = activations[layer][activations[layer] > 0].astype(np.float64)
            # float32 products of other batch sizes may differ in the last bit
            assert scales[layer] == pytest.approx(np.percentile(values, percentile), rel=1e-6)
    assert scales[1] == pytest.approx(activations[1].max(), rel=1e-6)


def test_pool_layers_pass_the_scale_on_and_dead_layers_keep_one() -> None:
    spec = NetworkSpec.parse("2C3-AP2-4FC", input_shape=(1, 4, 4), population=2, classes=2)
    ann = ANN(spec, seed=0)
    ann.weights[2][...] = -1.0  # the output layer never positive
    x = np.random.default_rng(0).uniform(0, 1, (5, 1, 4, 4))
    scales = activation_scales(ann, x, percentile=100)
    assert scales[2] == scales[1] > 0 and scales[3] == 1.0


def test_to_snn_rescales_weights_and_sets_the_switches(trained: ANN) -> None:
    scales = [1.0, 2.0, 4.0]
    net = to_snn(trained, scales, timesteps=16)
    spec = net.spec
    assert spec == converted_spec(trained.spec, 16)
    switches = (spec.timesteps, spec.reset, spec.threshold, spec.decoder)
    assert switches == (16, "subtract", "fixed", "rate")
    assert spec.arch == trained.spec.arch and spec.population == 3
    np.testing.assert_allclose(net.weights[0], trained.weights[0] / 2.0)
    np.testing.assert_allclose(net.weights[1], trained.weights[1] / 2.0)
    assert all((vth == CONVERTED_THRESHOLD).all() for vth in net.thresholds)


def test_encoder_threshold_makes_the_rate_the_pixel_value(digits: Dataset, trained: ANN) -> None:
    x = digits.test_x[:20]  # multiples of 1/16: exact in float
    for steps in (8, 32):
        net = to_snn(trained, [1.0, 1.0, 1.0], timesteps=steps)
        counts = net.forward(x).spikes[0].sum(axis=0)
        np.testing.assert_array_equal(counts, np.floor(steps * x))


def test_rates_approach_the_normalised_activations_as_t_grows() -> None:
    spec = NetworkSpec.parse(GRAD_ARCH, input_shape=(1, 4, 4), population=2, classes=3)
    ann = ANN(spec, seed=2, dtype=np.float64)
    x = np.random.default_rng(2).uniform(0, 1, (16, 1, 4, 4))
    scales = activation_scales(ann, x, percentile=100)  # no activation above its scale
    activations = ann.forward(x).activations
    errors = []
    for steps in (8, 64, 512):
        trace = to_snn(ann, scales, timesteps=steps).forward(x)
        errors.append([
            np.abs(trace.spikes[l].mean(axis=0) - np.maximum(activations[l], 0) / scales[l]).max()
            for l in range(1, spec.num_layers + 1)
        ])
    errors = np.array(errors)  # about 4 / T here: each layer adds its rounding to 1 / T
    assert (np.diff(errors, axis=0) < 0).all() and (errors[-1] < 0.02).all(), errors


def test_converted_accuracy_approaches_the_anns(digits: Dataset, trained: ANN) -> None:
    ann_accuracy = np.mean(trained.predict(digits.test_x) == digits.test_y)
    scales = activation_scales(trained, normalisation_sample(digits.train_x, 500))
    results = evaluate_conversion(
        trained, scales, digits.test_x, digits.test_y, [2, 64], progress=False
    )
    (short, few), (long, many) = results
    assert (short.spec.timesteps, long.spec.timesteps) == (2, 64)
    assert abs(many["accuracy"] - ann_accuracy) <= 0.02
    assert few["accuracy"] < many["accuracy"]
    assert many["spikes_per_inference"] > few["spikes_per_inference"] > 0
    assert len(many["spikes_per_layer"]) == 3 and many["synaptic_ops_per_inference"] > 0


def test_normalisation_sample_is_seeded_and_ordered() -> None:
    x = np.arange(100)
    picked = normalisation_sample(x, 10, seed=5)
    np.testing.assert_array_equal(picked, normalisation_sample(x, 10, seed=5))
    assert len(picked) == 10 and (np.diff(picked) > 0).all()
    assert not np.array_equal(picked, normalisation_sample(x, 10, seed=6))
    assert normalisation_sample(x, 500) is x


# Errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1.0, 100.5, float("nan"), float("inf"), True, "99"])
def test_percentile_out_of_range(value) -> None:
    message = r"^percentile: .* is out of range \(allowed 0 < percentile <= 100\)$"
    with pytest.raises(ValueError, match=message):
        check_percentile(value)
    assert check_percentile(100) == 100.0 and check_percentile(1e-3) == 1e-3


def _errors(trained: ANN) -> list[tuple]:
    x, ones = np.zeros((2, 64)), [1.0, 1.0, 1.0]
    return [
        (ANN, (NetworkSpec.parse("20FC", input_shape=(4,), decoder="fc"),), {}, "^decoder: "),
        (ANN, (trained.spec,), {"dtype": np.int32}, "^dtype: must be float32 or float64"),
        (ANN, (trained.spec,), {"seed": -1}, r"^seed: -1 is out of range \(allowed 0 or more\)"),
        (ann_defaults, ("imagenet",), {}, "^dataset: 'imagenet' is not one of digits"),
        (trained.forward, (np.zeros((2, 5)),), {}, r"^x: expected shape \(B, 64\)"),
        (trained.loss_and_grads, (x, np.array([0.0, 1.0])), {}, "^y: expected integer"),
        (trained.loss_and_grads, (x, np.array([0, 10])), {}, r"^y: labels must be in 0\.\.9"),
        (to_snn, (trained, ones), {"timesteps": 0},
         r"^timesteps: 0 is out of range \(allowed 1\.\.1024\)"),
        (to_snn, (trained, ones[:2]), {"timesteps": 8}, "^scales: expected 3 finite values > 0"),
        (to_snn, (trained, [1.0, 0.0, 1.0]), {"timesteps": 8}, "^scales: expected 3 finite"),
        (activation_scales, (trained, x), {"percentile": 0}, "^percentile: 0 is out of range"),
        (normalisation_sample, (x, 0), {}, r"^samples: 0 is out of range \(allowed 1 or more\)"),
    ]


def test_errors_name_the_field(trained: ANN) -> None:
    for call, args, kwargs, message in _errors(trained):
        with pytest.raises(ValueError, match=message):
            call(*args, **kwargs)
