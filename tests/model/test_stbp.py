"""The float STBP trainer: gradients against a loop transcription, eq. 15, training, checkpoints."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pytest
from stbp_reference import reference

from model import checkpoint
from model.data import load_dataset
from model.spec import NetworkSpec
from model.stbp import (
    CALIBRATION_WINDOW_SHARE,
    CONV_LR_SCALE,
    INIT_GAIN,
    REFERENCE_TIMESTEPS,
    THRESHOLD_FLOOR,
    TRAINING_DEFAULTS,
    Network,
    default_lr,
    evaluate,
    init_bound,
    learning_rate_scales,
    membrane_grad,
    surrogate_window,
    train,
    training_defaults,
)

SWITCHES = [
    (reset, threshold, surrogate, decoder)
    for reset, threshold in (("zero", "fixed"), ("subtract", "fixed"), ("subtract", "trainable"))
    for surrogate in ("rect", "scaled")
    for decoder in ("rate", "last", "fc")
]


def _switch_id(switches: tuple[str, ...]) -> str:
    return "-".join(switches)


def _random_net(arch, input_shape, switches, *, seed, weight_scale, steps):
    reset, threshold, surrogate, decoder = switches
    grouping = {"classes": 3} if decoder == "fc" else {"classes": 2, "population": 3}
    spec = NetworkSpec.parse(
        arch,
        input_shape=input_shape,
        timesteps=steps,
        reset=reset,
        threshold=threshold,
        surrogate=surrogate,
        decoder=decoder,
        **grouping,
    )
    net = Network(spec, seed=seed)
    rng = np.random.default_rng(seed)
    for weight in net.weights:
        if weight.size:
            bound = weight_scale * np.sqrt(3.0 / np.prod(weight.shape[1:]))
            weight[...] = rng.uniform(-bound, bound, weight.shape)
    for vth in net.thresholds:
        vth[:] = rng.uniform(0.3, 0.9, vth.shape)
    return net, rng


def _assert_close(actual, expected, scale, name):
    """Equal within 1e-9 relative to ``scale``, the largest gradient of the network."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, name
    assert np.abs(actual - expected).max(initial=0.0) <= 1e-9 * scale, name


def _check_against_reference(net, x, y):
    loss, grads = net.loss_and_grads(x, y)
    trace = net.forward(x)
    ref = reference(net, x, y)
    assert loss == pytest.approx(ref["loss"], rel=1e-12)
    for index, spikes in enumerate(trace.spikes):
        expected = ref["spikes"][index]
        np.testing.assert_allclose(spikes.reshape(expected.shape), expected, rtol=1e-12)
    trainable = net.spec.threshold == "trainable"
    wanted = ref["weights"] + ref["thresholds"]
    if net.spec.decoder == "fc":
        wanted.append(ref["decoder_weight"])
    scale = max(np.abs(g).max(initial=0.0) for g in wanted)
    for index, (got, want) in enumerate(zip(grads.weights, ref["weights"]), start=1):
        _assert_close(got, want, scale, f"weight {index}")
        if net.spec.layers[index - 1].spiking:
            assert np.abs(want).max() > 1e-3 * scale, f"weight {index} gradient ~ 0: weak test"
    for index, (got, want) in enumerate(zip(grads.thresholds, ref["thresholds"])):
        _assert_close(got, want, scale, f"threshold {index}")
        if trainable and got.size:
            assert np.abs(want).max() > 1e-3 * scale, f"threshold {index} gradient ~ 0: weak test"
        if not trainable:
            assert not got.any()
    if net.spec.decoder == "fc":
        _assert_close(grads.decoder_weight, ref["decoder_weight"], scale, "decoder weight")
    else:
        assert grads.decoder_weight is None


@pytest.mark.parametrize("switches", SWITCHES, ids=_switch_id)
@pytest.mark.parametrize("seed", [3, 4])
def test_fc_gradients_match_loop_transcription(switches, seed):
    net, rng = _random_net("7FC-6FC", (5,), switches, seed=seed, weight_scale=1.0, steps=5)
    x = rng.random((8, 5))
    y = rng.integers(0, net.spec.classes, 8)
    _check_against_reference(net, x, y)


@pytest.mark.parametrize("switches", SWITCHES, ids=_switch_id)
def test_fc_gradients_on_silent_inputs_match_loop_transcription(switches):
    """Three input columns of twelve non-zero in the batch: the products restricted to the
    active columns (:func:`model.stbp.active_columns`) give the reference gradients."""
    from model.stbp import active_columns

    net, rng = _random_net("7FC-6FC", (12,), switches, seed=3, weight_scale=1.0, steps=5)
    x = rng.random((8, 12))
    x[:, 3:] = 0.0
    y = rng.integers(0, net.spec.classes, 8)
    assert active_columns(net.forward(x).spikes[0].reshape(-1, 12)) is not None
    _check_against_reference(net, x, y)


@pytest.mark.parametrize("switches", SWITCHES, ids=_switch_id)
def test_conv_gradients_match_loop_transcription(switches):
    net, rng = _random_net(
        "3C3-AP2-3C3-6FC", (2, 4, 4), switches, seed=5, weight_scale=1.0, steps=5
    )
    x = rng.random((6, 2, 4, 4))
    y = rng.integers(0, net.spec.classes, 6)
    _check_against_reference(net, x, y)


def test_scaled_subtract_backward_is_the_eq15_mux():
    rng = np.random.default_rng(0)
    steps, batch, units = 6, 5, 9
    vth = rng.uniform(0.2, 1.0, units)
    v = rng.uniform(-0.5, 1.5, (steps, batch, units))
    s = (v >= vth).astype(np.float64)
    d_spike = rng.normal(size=(steps, batch, units))
    got = membrane_grad(d_spike, v, s, vth, reset="subtract", surrogate="scaled")
    want = np.zeros_like(d_spike)
    after = np.zeros((batch, units))
    for t in reversed(range(steps)):
        for b in range(batch):
            for j in range(units):
                inside = abs(v[t, b, j] - vth[j]) < vth[j] / 2
                after[b, j] = d_spike[t, b, j] / vth[j] if inside else after[b, j]
        want[t] = after
    assert np.array_equal(got, want)
    window = surrogate_window(v, vth, "scaled")
    assert 0 < window.mean() < 1  # both mux inputs are exercised


def test_pinned_api_shapes_and_in_place_weights():
    spec = NetworkSpec.parse("32FC-10FC", input_shape=(16,), timesteps=8, reset="subtract",
                             threshold="trainable", surrogate="scaled", decoder="last",
                             population=1)
    net = Network(spec, seed=0)
    assert [w.shape for w in net.weights] == [(32, 16), (10, 32)]
    assert [v.shape for v in net.thresholds] == [(16,), (32,), (10,)]
    assert all((v == 0.5).all() for v in net.thresholds)
    x = np.random.default_rng(0).random((3, 16))
    trace = net.forward(x)
    assert [s.shape for s in trace.spikes] == [(8, 3, 16), (8, 3, 32), (8, 3, 10)]
    assert trace.output.shape == (3, 10)
    assert trace.spikes[1].any()
    loss, grads = net.loss_and_grads(x, np.array([0, 1, 2]))
    assert loss > 0
    assert [g.shape for g in grads.weights] == [(32, 16), (10, 32)]
    assert [g.shape for g in grads.thresholds] == [(16,), (32,), (10,)]
    net.weights[0][...] = 0.0
    assert not net.forward(x).spikes[1].any()


def test_pool_layer_holds_pooled_values_and_no_parameters():
    spec = NetworkSpec.parse("2C3-AP2-10FC", input_shape=(1, 4, 4), timesteps=3)
    net = Network(spec, seed=0)
    assert net.weights[1].size == 0 and net.thresholds[2].size == 0
    trace = net.forward(np.random.default_rng(1).random((2, 1, 4, 4)))
    conv = trace.spikes[1]
    expected = conv.reshape(3, 2, 2, 2, 2, 2, 2).mean(axis=(4, 6))
    np.testing.assert_allclose(trace.spikes[2], expected)
    assert trace.membranes[2] is None


@pytest.mark.parametrize(
    ("reset", "expected"),
    [
        # x = 0.375, Vth = 0.5 (exact in binary): V = .375 .75 .625 .5 .375 .75 (subtract)
        # and .375 .75 .375 .75 .375 .75 (zero)
        ("subtract", [0, 1, 1, 1, 0, 1]),
        ("zero", [0, 1, 0, 1, 0, 1]),
    ],
)
def test_encoder_rate_coding(reset, expected):
    threshold = "trainable" if reset == "subtract" else "fixed"
    spec = NetworkSpec.parse("10FC", input_shape=(1,), timesteps=6, reset=reset,
                             threshold=threshold)
    trace = Network(spec).forward(np.array([[0.375]]))
    assert trace.spikes[0][:, 0, 0].tolist() == expected


def test_decoders_and_population_layout():
    for decoder, expected in (("rate", [0.5, 0.25]), ("last", [0.5, 0.0])):
        spec = NetworkSpec.parse("4FC", input_shape=(2,), timesteps=2, population=2,
                                 decoder=decoder)
        net = Network(spec)
        out = np.zeros((2, 1, 4))
        out[:, 0, 0] = 1.0  # class 0, first member: spikes at t = 1, 2
        out[0, 0, 3] = 1.0  # class 1, second member: spike at t = 1 only
        np.testing.assert_allclose(net._decode(out)[0], expected)


def test_rejects_bad_inputs():
    spec = NetworkSpec.parse("10FC", input_shape=(4,))
    net = Network(spec)
    with pytest.raises(ValueError, match="x: expected shape"):
        net.forward(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"x: values must be finite and in \[0, 1\]"):
        net.forward(np.full((2, 4), 1.5))
    with pytest.raises(ValueError, match="y: labels"):
        net.loss_and_grads(np.zeros((2, 4)), np.array([0, 10]))
    with pytest.raises(ValueError, match="dtype"):
        Network(spec, dtype=np.int32)
    with pytest.raises(ValueError, match="seed"):
        Network(spec, seed=-1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def digits_images():
    return load_dataset("digits", flatten=False)


def _subset(dataset, train=400):
    from model.data import Dataset

    return Dataset(
        name=dataset.name,
        train_x=dataset.train_x[:train],
        train_y=dataset.train_y[:train],
        test_x=dataset.test_x,
        test_y=dataset.test_y,
        input_shape=dataset.input_shape,
        classes=dataset.classes,
        image_shape=dataset.image_shape,
    )


@pytest.mark.parametrize("timesteps", [1, 2, 4, 7, 8])
def test_t_aware_defaults_are_the_tuned_recipe_up_to_t8(timesteps):
    assert REFERENCE_TIMESTEPS == 8
    for fan_in in (64, 784):
        tuned = INIT_GAIN * 0.5 / timesteps * np.sqrt(3.0 / fan_in)
        assert init_bound(0.5, timesteps, fan_in) == pytest.approx(tuned, rel=1e-15)
    for dataset, recipe in TRAINING_DEFAULTS.items():
        assert default_lr(recipe["lr"], timesteps) == recipe["lr"]
        assert training_defaults(dataset, timesteps) == training_defaults(dataset)
    assert training_defaults("digits")["lr"] == 0.5 and training_defaults("mnist10k")["lr"] == 0.2


@pytest.mark.parametrize("timesteps", [12, 16, 32, 64])
def test_t_aware_defaults_scale_above_t8(timesteps):
    ratio = timesteps / 8
    tuned = INIT_GAIN * 0.5 / timesteps * np.sqrt(3.0 / 784)  # the 1/T rule of T <= 8
    assert init_bound(0.5, timesteps, 784) == pytest.approx(tuned * np.sqrt(ratio), rel=1e-15)
    assert init_bound(0.5, timesteps, 784) == pytest.approx(
        INIT_GAIN * 0.5 * np.sqrt(3.0 / (8 * timesteps * 784)), rel=1e-15
    )
    assert default_lr(0.5, timesteps) == pytest.approx(0.5 / ratio, rel=1e-15)
    assert training_defaults("mnist10k", timesteps)["lr"] == pytest.approx(0.2 * 8 / timesteps)
    assert TRAINING_DEFAULTS["mnist10k"]["lr"] == 0.2  # the table itself is not changed


def test_network_init_uses_init_bound():
    for timesteps in (4, 16):
        spec = NetworkSpec.parse("200FC-50FC", input_shape=(784,), timesteps=timesteps)
        net = Network(spec, seed=0)
        for weight, fan_in in zip(net.weights, (784, 200)):
            bound = init_bound(spec.initial_threshold, timesteps, fan_in)
            assert np.abs(weight).max() <= bound
            assert np.abs(weight).max() > 0.99 * bound


def _window_share(net, x, index):
    membrane = net.forward(x).membranes[index][-1]
    return surrogate_window(membrane, net._vth(index), "scaled").mean()


def test_calibrate_opens_the_window_of_every_layer_of_a_conv_network(digits_images):
    spec = NetworkSpec.parse("4C3-AP2-8C3-AP2-20FC", input_shape=(1, 8, 8), population=2)
    x = digits_images.train_x[:64]
    net = Network(spec, seed=1)
    silent = [_window_share(net, x, index) for index in (3, 5)]
    assert max(silent) < CALIBRATION_WINDOW_SHARE  # the fan-in init alone: behind AP2, too quiet
    factors = net.calibrate(x)
    again = Network(spec, seed=1)
    assert again.calibrate(x) == factors
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, again.weights))
    for index in (1, 5):
        assert _window_share(net, x, index) >= CALIBRATION_WINDOW_SHARE
    # 8C3 behind the pool of 4 channels never reaches the target on these images: it keeps
    # the factor of its largest share, a window open where the init had none
    assert _window_share(net, x, 3) > silent[0]
    assert factors[1] == factors[3] == 1.0  # AP2 layers have no weights
    assert factors[2] > 1.0 and factors[4] > 1.0
    scaled = Network(spec, seed=1)
    for weight, reference_weight, factor in zip(net.weights, scaled.weights, factors):
        assert np.array_equal(weight, reference_weight * factor)


def test_calibrate_wakes_the_baseline_configuration(digits_images):
    # the rect window (0 < V < 1 at Vth = 0.5) holds silent layers: the criterion is the
    # scaled one, so the layers behind the pools of the baseline spike too
    spec = NetworkSpec.parse("4C3-AP2-8C3-AP2-20FC", input_shape=(1, 8, 8), population=2,
                             reset="zero", threshold="fixed", surrogate="rect", decoder="rate")
    x = digits_images.train_x[:64]
    net = Network(spec, seed=0)
    assert net.forward(x).spikes[-1].sum() == 0
    net.calibrate(x)
    assert net.forward(x).spikes[-1].sum() > 0


def test_calibrate_leaves_layers_that_reach_the_target(digits):
    spec = NetworkSpec.parse("32FC-20FC", input_shape=(64,), population=2)
    x = digits.train_x[:64]
    net = Network(spec, seed=0)
    target = 0.5 * min(_window_share(net, x, 1), _window_share(net, x, 2))
    assert net.calibrate(x, target=target) == [1.0, 1.0]
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, Network(spec, seed=0).weights))
    with pytest.raises(ValueError, match="target"):
        net.calibrate(x, target=1.5)


def test_conv_weights_learn_at_conv_lr_scale(digits_images):
    spec = NetworkSpec.parse("4C3-AP2-10FC", input_shape=(1, 8, 8))
    net = Network(spec, seed=0)
    scales = learning_rate_scales(net)
    # thresholds shared by the 8 x 8 positions of the encoder and of 4C3 step as one unit's
    assert scales == {"weight_1": CONV_LR_SCALE, "weight_2": 1.0, "weight_3": 1.0,
                      "threshold_0": 1 / 64, "threshold_1": 1 / 64, "threshold_2": 1.0, "threshold_3": 1.0}
    assert set(learning_rate_scales(Network(NetworkSpec.parse("8FC", input_shape=(64,)))).values()) == {1.0}
    data = _subset(digits_images, 20)
    before = [w.copy() for w in net.weights]
    _, grads = net.loss_and_grads(data.train_x, data.train_y)
    train(net, data, epochs=1, lr=0.1, batch=20, momentum=0.0, lr_schedule="constant",
          progress=False)
    for index in (0, 2):  # one plain SGD step: W -= lr * scale * dW (the batch is the whole set)
        expected = before[index] - 0.1 * scales[f"weight_{index + 1}"] * grads.weights[index]
        np.testing.assert_allclose(net.weights[index], expected, rtol=1e-10, atol=1e-12)
    expected = np.maximum(0.5 - 0.1 / 64 * grads.thresholds[0], THRESHOLD_FLOOR)
    np.testing.assert_allclose(net.thresholds[0], expected, rtol=1e-10)


def test_training_defaults_rejects_bad_timesteps():
    with pytest.raises(ValueError, match="timesteps"):
        training_defaults("digits", 0)


def test_training_learns_digits(digits):
    spec = NetworkSpec.parse("64FC-50FC", input_shape=(64,), timesteps=8, population=5)
    net = Network(spec, seed=0, dtype=np.float32)
    before = evaluate(net, digits.test_x, digits.test_y)["accuracy"]
    history = train(net, _subset(digits, 800), epochs=6, lr=0.5, seed=0, progress=False)
    after = evaluate(net, digits.test_x, digits.test_y)["accuracy"]
    assert before < 0.3 and after > 0.75
    assert history.loss[-1] < history.loss[0]
    assert len(history.loss) == len(history.train_accuracy) == len(history.lr) == 6


def test_training_is_seeded_and_keeps_fixed_thresholds(digits):
    spec = NetworkSpec.parse("20FC-10FC", input_shape=(64,), timesteps=4, reset="zero",
                             threshold="fixed", surrogate="rect", decoder="rate")
    runs = []
    for _ in range(2):
        net = Network(spec, seed=3)
        train(net, _subset(digits, 100), epochs=1, lr=0.5, seed=3, progress=False,
              augmentation={"flip": False, "shift": 1, "rotate_deg": 10.0})
        runs.append(net)
    assert all(np.array_equal(a, b) for a, b in zip(runs[0].weights, runs[1].weights))
    assert all((v == 0.5).all() for v in runs[0].thresholds)


def test_threshold_floor(digits):
    spec = NetworkSpec.parse("20FC-10FC", input_shape=(64,), timesteps=4, decoder="rate")
    net = Network(spec, seed=0)
    for weight in net.weights:
        weight *= 4.0  # busy layers, so every threshold gets large gradients
    train(net, _subset(digits, 100), epochs=2, lr=200.0, seed=0, progress=False,
          threshold_floor=0.3, lr_schedule="constant")
    lowest = min(v.min() for v in net.thresholds)
    assert lowest == pytest.approx(0.3)
    assert THRESHOLD_FLOOR > 0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"epochs": 0, "lr": 0.1}, "epochs"),
        ({"epochs": 1, "lr": -1.0}, "lr"),
        ({"epochs": 1, "lr": 0.1, "momentum": 1.0}, "momentum"),
        ({"epochs": 1, "lr": 0.1, "batch": 0}, "batch"),
        ({"epochs": 1, "lr": 0.1, "lr_schedule": "step"}, "lr_schedule"),
        ({"epochs": 1, "lr": 0.1, "threshold_floor": 0.0}, "threshold_floor"),
    ],
)
def test_train_rejects_bad_options(digits, options, field):
    net = Network(NetworkSpec.parse("10FC", input_shape=(64,)))
    with pytest.raises(ValueError, match=f"^{field}:"):
        train(net, digits, progress=False, **options)


def test_train_rejects_mismatched_dataset(digits):
    net = Network(NetworkSpec.parse("10FC", input_shape=(16,)))
    with pytest.raises(ValueError, match="dataset"):
        train(net, digits, epochs=1, lr=0.1, progress=False)


def test_evaluate_counts_spikes_and_ops():
    spec = NetworkSpec.parse("6FC-4FC", input_shape=(3,), timesteps=4, population=2)
    net = Network(spec, seed=1)
    x = np.random.default_rng(2).random((5, 3))
    y = np.array([0, 1, 0, 1, 1])
    trace = net.forward(x)
    result = evaluate(net, x, y, batch=2)
    per_layer = [float(s.sum()) / 5 for s in trace.spikes]
    assert result["spikes_per_layer"] == pytest.approx(per_layer)
    ops = per_layer[0] * 6 + per_layer[1] * 4
    assert result["synaptic_ops_per_inference"] == pytest.approx(ops)
    assert result["samples"] == 5


# Checkpoints -------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    spec = NetworkSpec.parse("2C3-AP2-8FC", input_shape=(1, 4, 4), timesteps=3, decoder="fc",
                             classes=3)
    net = Network(spec, seed=4)
    net.thresholds[1][:] = [0.25, 0.75]
    folder = net.save(tmp_path / "ckpt", training={"epochs": 3})
    return net, folder


def test_checkpoint_round_trip(saved):
    net, folder = saved
    loaded = Network.load(folder)
    assert loaded.spec == net.spec and loaded.dtype == net.dtype
    for name, value in net.parameters().items():
        assert np.array_equal(loaded.parameters()[name], value), name
    x = np.random.default_rng(0).random((2, 1, 4, 4))
    np.testing.assert_array_equal(loaded.forward(x).output, net.forward(x).output)
    meta = json.loads((folder / "checkpoint.json").read_text())
    assert meta["kind"] == "float" and meta["format_version"] == 1
    assert meta["training"] == {"epochs": 3}
    assert checkpoint.load_checkpoint_kind(folder) == "float"


def _rewrite_arrays(folder, change):
    arrays = checkpoint.read_arrays(folder)
    change(arrays)
    np.savez(folder / "weights.npz", **arrays)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("weight_3"), r"\['weight_3'\] are missing"),
        (lambda a: a.update(extra=np.zeros(1)), r"\['extra'\] are unexpected"),
        (lambda a: a.update(weight_1=np.zeros((2, 1, 3, 2))), "array weight_1 is float64"),
        (lambda a: a.update(weight_3=a["weight_3"].astype(np.float32)),
         "array weight_3 is float32"),
        (lambda a: a["threshold_0"].__setitem__(0, np.nan), "array threshold_0 has non-finite"),
        (lambda a: a["threshold_1"].__setitem__(1, 0.0), "array threshold_1 has thresholds <= 0"),
    ],
)
def test_checkpoint_rejects_bad_arrays(saved, change, message):
    _, folder = saved
    _rewrite_arrays(folder, change)
    with pytest.raises(ValueError, match=message):
        Network.load(folder)


def test_checkpoint_rejects_corrupt_files(saved, tmp_path):
    _, folder = saved
    with pytest.raises(FileNotFoundError):
        Network.load(tmp_path / "missing")
    (folder / "weights.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="not a readable npz archive"):
        Network.load(folder)
    with zipfile.ZipFile(folder / "weights.npz", "w") as archive:
        archive.writestr("weight_1.npy", b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="npz"):
        Network.load(folder)
    np.savez(folder / "weights.npz", weight_1=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="npz") as caught:
        Network.load(folder)
    assert "allow_pickle" not in str(caught.value) and "pickle.load" not in str(caught.value)
    (folder / "weights.npz").write_bytes(pickle.dumps({"weight_1": [1, 2]}))  # a plain pickle
    with pytest.raises(ValueError, match=r"not a readable npz archive \(it holds pickled data, which is never loaded\)"):
        Network.load(folder)
    with pytest.raises(FileNotFoundError, match="is a file, not a checkpoint folder"):
        Network.load(folder / "weights.npz")
    (folder / "weights.npz").unlink()
    with pytest.raises(FileNotFoundError, match="weights.npz"):
        Network.load(folder)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(kind="integer"), "not a float checkpoint"),
        (lambda m: m.update(format_version=2), "format_version 2"),
        (lambda m: m.pop("kind"), "'kind'"),
        (lambda m: m["spec"].update(timesteps=0), "checkpoint spec: timesteps"),
        (lambda m: m.update(dtype="int8"), "dtype"),
    ],
)
def test_checkpoint_rejects_bad_json(saved, edit, message):
    _, folder = saved
    meta = json.loads((folder / "checkpoint.json").read_text())
    edit(meta)
    (folder / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=message):
        Network.load(folder)


def test_checkpoint_rejects_unreadable_json(saved):
    _, folder = saved
    (folder / "checkpoint.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Network.load(folder)
    (folder / "checkpoint.json").unlink()
    with pytest.raises(FileNotFoundError, match="checkpoint.json"):
        Network.load(folder)


def _conv_by_definition(x, weight):
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, weight.shape[0], h, w))
    for row in range(h):
        for col in range(w):
            patch = padded[:, :, row : row + 3, col : col + 3]
            out[:, :, row, col] = np.einsum("ncij,ocij->no", patch, weight)
    return out


@pytest.mark.parametrize("shape", [(5, 2, 4, 6), (3, 1, 1, 1), (2, 3, 7, 2)])
def test_conv_kernels_match_their_definition(shape):
    from model import stbp

    rng = np.random.default_rng(0)
    x = rng.random(shape)
    weight = rng.normal(size=(4, shape[1], 3, 3))
    d_out = rng.normal(size=(shape[0], 4, *shape[2:]))
    out = stbp.conv3x3(x, weight)
    np.testing.assert_allclose(out, _conv_by_definition(x, weight), rtol=1e-12, atol=1e-12)
    # the gradients are the adjoints: <d_out, conv(x, W)> is linear in x and in W
    grad_w, grad_x = stbp.conv3x3_backward(x, weight, d_out, input_grad=True)
    for k in range(weight.size):
        unit = np.zeros(weight.size)
        unit[k] = 1.0
        expected = np.sum(d_out * _conv_by_definition(x, unit.reshape(weight.shape)))
        assert grad_w.flat[k] == pytest.approx(expected, rel=1e-10, abs=1e-10)
    probe = rng.normal(size=x.shape)
    assert np.sum(grad_x * probe) == pytest.approx(np.sum(d_out * _conv_by_definition(probe, weight)))
    assert out.dtype == grad_w.dtype == grad_x.dtype == np.float64
    assert stbp.conv3x3(x.astype(np.float32), weight.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize(("c_in", "c_out"), [(1, 4), (4, 2)])
def test_conv_kernels_in_blocks_match_one_block(monkeypatch, c_in, c_out):
    """Blocks of the minimum size (many, the last one partial) give the one-block results."""
    from model import stbp

    rng = np.random.default_rng(2)
    x = rng.random((3, c_in, 5, 6))
    weight = rng.normal(size=(c_out, c_in, 3, 3))
    d_out = rng.normal(size=(3, c_out, 5, 6))
    whole = [stbp.conv3x3(x, weight), *stbp.conv3x3_backward(x, weight, d_out, input_grad=True)]
    monkeypatch.setattr(stbp, "CONV_BLOCK_VALUES", 1)
    blocks = [stbp.conv3x3(x, weight), *stbp.conv3x3_backward(x, weight, d_out, input_grad=True)]
    for one, many in zip(whole, blocks):
        np.testing.assert_allclose(many, one, rtol=1e-12, atol=1e-12)


def test_avg_pool_is_the_2x2_mean():
    from model import stbp

    x = np.random.default_rng(1).random((2, 3, 4, 6))
    expected = x.reshape(2, 3, 2, 2, 3, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(stbp.avg_pool2(x), expected, rtol=1e-15)
