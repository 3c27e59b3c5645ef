"""Conv and AP2 layers in the integer network (model/integer.py, model/synapses.py): fast ==
reference, hand-computed address patterns, float tracking, quantization, checkpoints, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.core import CoreModel, check_core_spec
from model.fixed import ROUNDINGS, signed_range
from model.integer import (
    FitState,
    Formats,
    History,
    IntegerNetwork,
    LearningRule,
    CONV_AUGMENTATION,
    ShiftSchedule,
    equivalent_float_lr,
    fit,
    load_learner,
    recipe,
    save_learner,
    shift_offsets,
)
from model.spec import NetworkSpec
from model.synapses import layer_synapses, weight_fold, weight_shape
from model.stbp import Network

# Random conv networks --------------------------------------------------------------------------

#: Architectures (with the input's height and width as multiples of the pools' stride).
TEMPLATES = [
    ("{a}C3-{o}FC", 1),
    ("{a}C3-AP2-{b}C3-{o}FC", 2),
    ("{a}C3-AP2-{b}C3-AP2-{o}FC", 4),
    ("AP2-{a}C3-{o}FC", 2),
    ("{a}C3-AP2-AP2-{o}FC", 4),
    ("{a}C3-AP2-{b}FC-{o}FC", 2),
    ("{b}FC-{o}FC", 1),  # FC on an image input: one encoder threshold per channel
]


@st.composite
def conv_networks(draw: st.DrawFn) -> tuple[IntegerNetwork, np.ndarray, np.ndarray]:
    """A small random conv network (narrow formats saturate often), pixels and labels."""
    template, stride = draw(st.sampled_from(TEMPLATES))
    population, classes = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    arch = template.format(a=draw(st.integers(1, 3)), b=draw(st.integers(1, 3)), o=classes * population)
    shape = (draw(st.integers(1, 2)), stride * draw(st.integers(1, 3)), stride * draw(st.integers(1, 3)))
    spec = NetworkSpec.parse(
        arch, input_shape=shape, timesteps=draw(st.integers(1, 4)), population=population,
        classes=classes, decoder=draw(st.sampled_from(["last", "rate", "fc"])),
        threshold=draw(st.sampled_from(["trainable", "fixed"])),
    )
    w = draw(st.integers(2, 9))
    g = draw(st.integers(4, 12))
    formats = Formats(
        w=w, fw=draw(st.integers(0, w - 1)), v=draw(st.integers(w, w + 5)), g=g,
        gf=draw(st.integers(0, g - 1)), dw=draw(st.integers(g, g + 3)), dth=draw(st.integers(g, g + 3)),
        k=draw(st.integers(8, 13)), df=draw(st.integers(0, 10)),
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    low, high = signed_range(w)
    layers = range(1, spec.num_layers + 1)
    weights = [rng.integers(low, high + 1, weight_shape(spec, i)) for i in layers]
    top = min(formats.threshold_max, draw(st.integers(1, 200)))
    thresholds = [rng.integers(1, top + 1, spec.channels(i)) for i in (0, *layers)]
    decoder = None
    if spec.decoder == "fc":
        decoder = rng.integers(low, high + 1, (classes, spec.timesteps * spec.neurons(spec.num_layers)))
    rule = LearningRule(
        shift_w=draw(st.integers(0, 5)), shift_th=draw(st.integers(0, 5)),
        rounding=draw(st.sampled_from(ROUNDINGS)), batch=draw(st.integers(1, 3)),
    )
    net = IntegerNetwork(
        spec, formats, weights, thresholds, decoder=decoder, rule=rule,
        lfsr_state=draw(st.integers(1, 2**32 - 1)),
    )
    samples = draw(st.integers(1, 3))
    pixels = rng.integers(0, 256, (samples, *shape), dtype=np.uint8)
    if draw(st.booleans()):
        pixels[0] = 0  # an empty input next to others
    return net, pixels, rng.integers(0, classes, samples)


def _clone(net: IntegerNetwork) -> IntegerNetwork:
    return IntegerNetwork(
        net.spec, net.formats, net.weights, net.thresholds, decoder=net.decoder, rule=net.rule,
        lfsr_state=net.lfsr.state,
    )


def _same_state(a: IntegerNetwork, b: IntegerNetwork) -> bool:
    pairs = zip(a.weights + a.thresholds + a.dw + a.dth, b.weights + b.thresholds + b.dw + b.dth)
    return (
        all(np.array_equal(x, y) for x, y in pairs)
        and (a.decoder is None or np.array_equal(a.decoder, b.decoder) and np.array_equal(a.dd, b.dd))
        and a.lfsr.state == b.lfsr.state
        and a.pending == b.pending
    )


def _same_trace(a, b) -> bool:
    arrays = zip(a.spikes + a.windows + [a.last_membrane, a.counts], b.spikes + b.windows + [b.last_membrane, b.counts])
    return all(x.shape == y.shape and np.array_equal(x, y) for x, y in arrays)


@settings(max_examples=60, deadline=None)
@given(conv_networks())
def test_fast_path_equals_reference_path(case: tuple) -> None:
    net, pixels, labels = case
    fast, slow = net, _clone(net)
    assert _same_trace(fast.forward(pixels), slow.forward(pixels, reference=True))
    for _ in range(2):  # the second pass starts from updated weights and a partial batch
        assert fast.learn(pixels, labels) == slow.learn(pixels, labels, reference=True)
        assert _same_state(fast, slow)
    fast.flush()
    slow.flush(reference=True)
    assert _same_state(fast, slow)


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_saturating_conv_network_matches_and_saturates(rounding: str) -> None:
    """v = 8, g = 6, dw = dth = 6: membranes, dV and both accumulators hit their bounds, and
    the fast path replays the affected neurons and accumulators in event order."""
    spec = NetworkSpec.parse("4C3-AP2-3C3-AP2-4FC", input_shape=(2, 8, 4), timesteps=4, population=2)
    formats = Formats(w=8, fw=6, v=8, g=6, gf=2, dw=6, dth=6, k=8)
    rng = np.random.default_rng(2)
    weights = [rng.integers(-128, 128, weight_shape(spec, i)) for i in range(1, 6)]
    thresholds = [rng.integers(1, 60, spec.channels(i)) for i in range(6)]
    net = IntegerNetwork(spec, formats, weights, thresholds, rule=LearningRule(0, 0, rounding, 2))
    ref = _clone(net)
    pixels = rng.integers(0, 256, (3, 2, 8, 4), dtype=np.uint8)
    pixels[1] = 0
    trace = net.forward(pixels)
    assert _same_trace(trace, ref.forward(pixels, reference=True))
    assert trace.last_membrane.min() == -128
    labels = np.array([0, 1, 0])
    net.accumulate(pixels, labels)
    ref.accumulate(pixels, labels, reference=True)
    assert _same_state(net, ref)
    assert [(int(d.min(initial=0)), int(d.max(initial=0))) for d in net.dw[::2]] == [(-25, 31), (-32, 31), (-32, 0)]
    assert net.dth[3].min() == -32  # the 3C3 layer's channels: 2x4 positions each
    net.update()
    ref.update(reference=True)
    assert _same_state(net, ref)
    net.learn(pixels, labels)
    ref.learn(pixels, labels, reference=True)
    assert _same_state(net, ref)


def test_silent_conv_network_learns_nothing() -> None:
    spec = NetworkSpec.parse("2C3-AP2-4FC", input_shape=(1, 4, 4), timesteps=3, population=2, classes=2)
    net = IntegerNetwork.scratch(spec, seed=1)
    before = [w.copy() for w in net.weights]
    net.learn(np.zeros((3, 16), np.uint8), np.array([0, 1, 1]))
    trace = net.forward(np.zeros((1, 1, 4, 4), np.uint8))
    assert not any(s.any() for s in trace.spikes)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights))


# Hand-computed address patterns --------------------------------------------------------------


def test_conv_address_pattern_and_products_by_hand() -> None:
    """1C3 on a 1x2x3 image, kernel taps 1..9 (tap (i, j) = 3 i + j + 1): an event at input
    (p, q) adds tap (p - y + 1, q - x + 1) to output (y, x), nothing outside the image."""
    spec = NetworkSpec.parse("1C3-1FC", input_shape=(1, 2, 3), population=1, classes=1)
    syn = layer_synapses(spec, 1)
    kernel = np.arange(1, 10).reshape(1, 9)
    # Event at (0, 0): taps (0, 0), (0, 1), (1, 0), (1, 1) reach outputs (1, 1), (1, 0),
    # (0, 1), (0, 0); the other five fall outside.
    neurons, words = syn.targets(0)
    assert neurons.tolist() == [4, 3, 1, 0] and words.tolist() == [0, 1, 3, 4]
    assert syn.forward(np.array([[1, 0, 0, 0, 0, 0]]), kernel, 100).tolist() == [[5, 4, 0, 2, 1, 0]]
    everywhere = syn.forward(np.ones((1, 6), np.int64), kernel, 100)
    assert everywhere.tolist() == [[5 + 6 + 8 + 9, 4 + 5 + 6 + 7 + 8 + 9, 4 + 5 + 7 + 8,
                                    2 + 3 + 5 + 6, 1 + 2 + 3 + 4 + 5 + 6, 1 + 2 + 4 + 5]]


def test_conv_products_equal_the_address_pattern() -> None:
    """The fast path's products (im2col) and the reference's per-event address pattern are
    two descriptions of one conv: currents, spatial sums and weight sums agree."""
    spec = NetworkSpec.parse("3C3-AP2-4C3-2FC", input_shape=(2, 4, 6), population=1, classes=2)
    syn = layer_synapses(spec, 3)
    rng = np.random.default_rng(3)
    weight = rng.integers(-9, 10, weight_shape(spec, 3))
    counts = rng.integers(0, 5, (2, syn.n_input))
    dv = rng.integers(-50, 51, (2, syn.n_output))
    current = np.zeros((2, syn.n_output), np.int64)
    spatial = np.zeros((2, syn.n_input), np.int64)
    sums = np.zeros(weight.size, np.int64)
    for m in range(syn.n_input):
        neurons, words = syn.targets(m)
        current[:, neurons] += counts[:, m : m + 1] * weight.ravel()[words]
        spatial[:, m] = dv[:, neurons] @ weight.ravel()[words]
        np.add.at(sums, words, (counts[:, m : m + 1] * dv[:, neurons]).sum(axis=0))
    assert np.array_equal(syn.forward(counts, weight, 10**6), current)
    assert np.array_equal(syn.backward(dv, weight, 10**6), spatial)
    assert np.array_equal(syn.weight_sums(dv, counts, 10**6).ravel(), sums)
    assert syn.pools == 1 and syn.window == 4 and syn.source == 1


def test_pool_counts_and_the_fold_of_the_next_layer() -> None:
    # 1C3-AP2-1FC: conv on 1x2x2 with every tap 10 and threshold 10 fires at all four
    # positions when one pixel is lit; the pool passes the count 4 to the FC layer, whose
    # weight 3 (standing for 12 / 128 in float units) is added once per spike: 12.
    spec = NetworkSpec.parse("1C3-AP2-1FC", input_shape=(1, 2, 2), timesteps=1, population=1, classes=1)
    weights = [np.full((1, 9), 10), np.zeros((0, 0), np.int64), np.array([[3]])]
    thresholds = [np.array([1]), np.array([10]), np.zeros(0, np.int64), np.array([100])]
    net = IntegerNetwork(spec, Formats(), weights, thresholds)
    pixels = np.array([[255, 0, 0, 0]], np.uint8)
    for reference in (False, True):
        trace = net.forward(pixels, reference=reference)
        assert trace.spikes[1][0, 0].tolist() == [True] * 4
        assert trace.spikes[2].tolist() == [[[4]]] and trace.windows[2].shape == (1, 1, 0)
        assert trace.last_membrane.tolist() == [[12]]
    assert weight_fold(spec, 3) == 4 and weight_fold(spec, 1) == 1
    assert np.isclose(net.to_float().weights[2][0, 0], 12 / 128)


def test_conv_weight_gradient_by_hand() -> None:
    # 1C3-2FC on a 1x1x2 image, T = 1, both pixels spike. Conv taps (1, 0), (1, 1), (1, 2)
    # = 20, 40, 30: V = (40 + 30, 20 + 40) = (70, 60) >= 60, both fire in the window.
    # Output weights 64: V = (128, 128), thresholds (100, 200): S = (1, 0), both in the
    # window. Label 1: e = (1, -1), dV_out = (e << 15) R >> 16 with R = (655, 327).
    spec = NetworkSpec.parse("1C3-2FC", input_shape=(1, 1, 2), timesteps=1, population=1, classes=2)
    kernel = np.zeros(9, np.int64)
    kernel[[3, 4, 5]] = [20, 40, 30]
    weights = [kernel.reshape(1, 9), np.full((2, 2), 64)]
    thresholds = [np.array([1]), np.array([60]), np.array([100, 200])]
    net = IntegerNetwork(spec, Formats(), weights, thresholds, rule=LearningRule(20, 20, "floor"))
    pixels = np.array([[255, 255]], np.uint8)
    trace = net.forward(pixels)
    assert trace.spikes[1][0, 0].tolist() == [True, True] and trace.windows[1][0, 0].tolist() == [True, True]
    assert trace.spikes[2][0, 0].tolist() == [True, False] and trace.windows[2][0, 0].tolist() == [True, True]
    net.accumulate(pixels, np.array([1]))
    assert net.dw[1].tolist() == [[327, 327], [-164, -164]]  # 32768 * 655 >> 16, -32768 * 327 >> 16
    # Conv neurons: acc = 64 (327 - 164) = 10432, R = 1092 -> dV = 173 each. The event at
    # x = 0 adds dV(0) to tap (1, 1) and dV(1) to tap (1, 0); the event at x = 1 adds dV(0)
    # to tap (1, 2) and dV(1) to tap (1, 1).
    expected = np.zeros(9, np.int64)
    expected[[3, 4, 5]] = [173, 346, 173]
    assert net.dw[0].tolist() == [expected.tolist()]
    ref = IntegerNetwork(spec, Formats(), weights, thresholds, rule=net.rule)
    ref.accumulate(pixels, np.array([1]), reference=True)
    assert _same_state(net, ref)


# Learning rates, tracking the float network ---------------------------------------------------


def test_recipe_augments_image_networks_from_scratch_only() -> None:
    conv = NetworkSpec.parse("8C3-AP2-16C3-100FC", input_shape=(1, 8, 8), population=10)
    flat = NetworkSpec.parse("128FC-100FC", input_shape=(64,), population=10)
    scratch = recipe("digits", "scratch", conv)
    assert scratch.augmentation == CONV_AUGMENTATION["digits"] == {"flip": False, "shift": 0, "rotate_deg": 10.0}
    # Everything else is the dataset's recipe: FC networks and fine-tuning are unchanged.
    assert (scratch.formats, scratch.schedule, scratch.epochs) == (
        recipe("digits").formats, recipe("digits").schedule, recipe("digits").epochs
    )
    assert recipe("digits", "scratch", flat) == recipe("digits", "scratch")
    assert recipe("digits", "scratch").augmentation is None
    assert recipe("digits", "finetune", conv).augmentation is None
    assert recipe("mnist10k", "scratch", conv).augmentation is None


def test_shift_offsets_of_a_conv_network() -> None:
    spec = NetworkSpec.parse("8C3-AP2-16C3-AP2-100FC", input_shape=(1, 8, 8), population=10)
    # (weights, thresholds) of the spiking layers: the encoder and conv on 8x8 positions,
    # conv behind one pool on 4x4, FC behind one pool.
    assert [shift_offsets(spec, i) for i in spec.spiking_layers()] == [(0, 6), (0, 6), (4, 4), (4, 0)]
    flat = NetworkSpec.parse("128FC-100FC", input_shape=(64,), population=10)
    assert [shift_offsets(flat, i) for i in range(3)] == [(0, 0)] * 3
    # A floor update applies them: W -= dW >> (s_w + 4) behind the pool.
    net = IntegerNetwork.scratch(spec, seed=0, rule=LearningRule(2, 2, "floor"))
    net.dw[4][...] = 1000
    before = net.weights[4].copy()
    net.update()
    assert np.array_equal(before - net.weights[4], np.full(before.shape, 1000 >> 6))


#: As test_integer's: cosine >= 1 - 1e-6 and norms within 0.5 % per layer at wide formats.
TRACK_COSINE = 1 - 1e-6
TRACK_SCALE = 5e-3


@pytest.mark.parametrize(
    "arch, shape",
    [("4C3-AP2-6C3-AP2-20FC", (2, 8, 8)), ("3C3-20FC", (1, 5, 7)), ("AP2-4C3-AP2-12FC-20FC", (1, 4, 8))],
)
def test_wide_integer_gradients_track_float(arch: str, shape: tuple) -> None:
    """dW and dVth equal the float gradients times c B 2^gf (:func:`equivalent_float_lr`'s c;
    the encoder's times 256/255) and, behind k AP2 layers, 4^k (the weights' fold)."""
    spec = NetworkSpec.parse(arch, input_shape=shape, timesteps=6, population=4, classes=5)
    formats = Formats(w=16, fw=10, v=32, g=32, gf=16, dw=48, dth=48, k=24)
    net = IntegerNetwork.scratch(spec, formats, seed=2, gain=1.0)  # every layer spikes
    floats = net.to_float()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (12, *shape), dtype=np.uint8)
    labels = rng.integers(0, 5, 12)
    _, grads = floats.loss_and_grads(pixels / 255.0, labels)
    trace = net.accumulate(pixels, labels)
    float_trace = floats.forward(pixels / 255.0)
    for index in spec.spiking_layers():
        assert np.array_equal(float_trace.spikes[index].reshape(trace.spikes[index].shape) > 0, trace.spikes[index])
    scale = equivalent_float_lr(spec, formats, 0) / 2.0 ** (formats.gf - formats.fw) * len(labels) * 2.0**formats.gf
    pairs = [(grads.weights[i - 1] * weight_fold(spec, i), net.dw[i - 1]) for i in spec.spiking_layers()[1:]]
    pairs += [(grads.thresholds[i] * (256 / 255 if i == 0 else 1), net.dth[i]) for i in spec.spiking_layers()]
    for expected, got in pairs:
        expected = expected.ravel() * scale
        got = got.ravel().astype(np.float64)
        assert np.linalg.norm(expected) > 0
        cosine = expected @ got / np.linalg.norm(expected) / np.linalg.norm(got)
        assert cosine >= TRACK_COSINE
        assert abs(np.linalg.norm(got) / np.linalg.norm(expected) - 1) <= TRACK_SCALE


def test_fit_learns_a_toy_image_problem() -> None:
    """Which quadrant of a 4x4 image is lit: on-line learning from scratch through a conv
    layer and a pool reaches every sample (one seed of a tiny network; others of its seeds
    stall with a silent output layer, as small float networks do)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    quadrants = np.zeros((4, 1, 4, 4), np.uint8)
    for c, (y, x) in enumerate([(0, 0), (0, 2), (2, 0), (2, 2)]):
        quadrants[c, 0, y : y + 2, x : x + 2] = 230
    pixels = quadrants[labels]
    spec = NetworkSpec.parse("4C3-AP2-16FC", input_shape=(1, 4, 4), timesteps=6, population=4)
    net = IntegerNetwork.scratch(spec, seed=2)
    assert net.evaluate(pixels, labels)["accuracy"] < 0.5
    fit(net, pixels, labels, epochs=3, schedule=ShiftSchedule((9,), ()), progress=False)
    assert net.evaluate(pixels, labels)["accuracy"] == 1.0


# Quantization, memories, checkpoints --------------------------------------------------------


def test_from_float_folds_the_pool_into_the_next_weights() -> None:
    spec = NetworkSpec.parse("3C3-AP2-4C3-AP2-6FC", input_shape=(2, 4, 4), timesteps=3, population=2, classes=3)
    floats = Network(spec, seed=5)
    net = IntegerNetwork.from_float(floats, Formats(fw=6))
    for index in (1, 3, 5):
        expected = np.rint(floats.weights[index - 1].reshape(weight_shape(spec, index)) * 64 / weight_fold(spec, index))
        assert np.array_equal(net.weights[index - 1], np.clip(expected, -128, 127))
    assert [w.shape for w in net.weights] == [(3, 18), (0, 0), (4, 27), (0, 0), (6, 4)]
    # On the integer grid the round trip is exact and both networks fire alike.
    back = net.to_float()
    assert all(np.array_equal(a.shape, b.shape) for a, b in zip(back.weights, floats.weights))
    again = IntegerNetwork.from_float(back, net.formats)
    assert all(np.array_equal(a, b) for a, b in zip(again.weights + again.thresholds, net.weights + net.thresholds))
    for target, weight in zip(floats.weights, back.weights):
        assert np.abs(target - weight).max(initial=0) <= 4 / 64 / 2 + 1e-12  # half a folded LSB
    pixels = np.random.default_rng(1).integers(0, 256, (6, 2, 4, 4), dtype=np.uint8)
    float_trace, trace = back.forward(pixels / 255.0), net.forward(pixels)
    for index in spec.spiking_layers():
        assert np.array_equal(float_trace.spikes[index].reshape(trace.spikes[index].shape) > 0, trace.spikes[index])


def test_memories_of_conv_and_pool_layers() -> None:
    spec = NetworkSpec.parse("3C3-AP2-4FC", input_shape=(2, 4, 4), population=2, classes=2)
    net = IntegerNetwork.scratch(spec, seed=3)
    assert net.memory("W", 1).shape == (3, 18) and net.memory("VTH", 1).shape == (3,)
    assert net.memory("VTH", 0).shape == (2,) and net.memory("R", 1).shape == (3,)
    assert net.memory("W", 2).shape == (0, 0) and net.memory("DVTH", 2).shape == (0,)
    pixels = np.full((1, 32), 200, np.uint8)
    net.store("W", 1, np.zeros((3, 18), np.int64))  # a host write: the fast path sees it
    trace = net.forward(pixels)
    assert not trace.spikes[1].any() and _same_trace(trace, net.forward(pixels, reference=True))


def test_checkpoint_round_trip(tmp_path) -> None:
    spec = NetworkSpec.parse("2C3-AP2-3C3-4FC", input_shape=(1, 4, 6), timesteps=3, population=2, classes=2)
    rule = LearningRule(7, 8, "nearest", 4)
    net = IntegerNetwork.scratch(spec, Formats(w=6, v=12), seed=9, gain=1.0, rule=rule)
    net.learn(np.random.default_rng(1).integers(0, 256, (2, 1, 4, 6), dtype=np.uint8), np.array([0, 1]))
    # A learner state keeps the pending conv accumulators.
    state = FitState(0, 2, 0, np.random.default_rng(0).bit_generator.state, History())
    save_learner(tmp_path / "state", net, state)
    resumed, _, _ = load_learner(tmp_path / "state")
    assert _same_state(resumed, net) and resumed.pending == 2 and any(d.any() for d in resumed.dw)
    net.flush()
    back = IntegerNetwork.load(net.save(tmp_path / "ck"))
    assert back.spec == spec and back.formats == net.formats and _same_state(back, net)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 24), dtype=np.uint8)
    assert _same_trace(back.forward(pixels), net.forward(pixels))


# Errors -------------------------------------------------------------------------------------


def test_conv_networks_reject_bad_fields_by_name() -> None:
    spec = NetworkSpec.parse("2C3-AP2-4FC", input_shape=(1, 4, 4), population=2, classes=2)
    good = IntegerNetwork.scratch(spec, seed=0)
    with pytest.raises(ValueError, match=r"^weights\[0\]: shape \(2, 1, 3, 3\) does not match layer 1 \(2, 9\)"):
        IntegerNetwork(spec, Formats(), [np.zeros((2, 1, 3, 3), int), *good.weights[1:]], good.thresholds)
    with pytest.raises(ValueError, match=r"^weights\[1\]: shape \(1, 1\) does not match layer 2 \(0, 0\)"):
        IntegerNetwork(spec, Formats(), [good.weights[0], np.zeros((1, 1), int), good.weights[2]], good.thresholds)
    with pytest.raises(ValueError, match=r"^thresholds\[1\]: shape \(32,\) does not match layer 1 \(2,\)"):
        IntegerNetwork(spec, Formats(), good.weights, [good.thresholds[0], np.ones(32, int), *good.thresholds[2:]])
    with pytest.raises(ValueError, match=r"^pixels: expected shape \(N, 16\) or \(N, 1, 4, 4\)"):
        good.forward(np.zeros((1, 4, 5), np.uint8))
    # The spatial sum of a conv layer covers 9 C_out neurons per event.
    wide = NetworkSpec.parse("512C3-4FC", input_shape=(1, 2, 2), population=2, classes=2)
    with pytest.raises(ValueError, match=r"^g, w: spatial sums need g \+ w \+ ceil\(log2 4608\)"):
        Formats(w=16, fw=15, g=32, dw=48, dth=48).check_spec(wide)


@pytest.mark.parametrize(
    "arch, shape, message",
    [
        ("2C3-AP2-4FC", (1, 5, 4), r"^arch: layer 2 \(AP2\) needs even height and width, got 5x4"),
        ("2C3-AP2", (1, 4, 4), "^arch: the last layer must be nFC, not AP2"),
        ("4FC-2C3-4FC", (1, 4, 4), r"^arch: layer 2 \(2C3\) needs an image input"),
    ],
)
def test_specs_the_integer_model_cannot_run(arch: str, shape: tuple, message: str) -> None:
    """Odd sizes under AP2 (the float trainer's pool drops nothing and refuses them too), a
    pool after the last spiking layer, a conv on flat features: refused with the spec's error."""
    with pytest.raises(ValueError, match=message):
        IntegerNetwork.scratch(NetworkSpec.parse(arch, input_shape=shape, population=2, classes=2))


def test_core_model_takes_conv_networks() -> None:
    """The core model runs conv and AP2 layers (tests/model/test_core.py); the RTL's
    refusal is tested with the RTL (tests/hw/test_core_export.py)."""
    spec = NetworkSpec.parse("2C3-AP2-4FC", input_shape=(1, 4, 4), population=2, classes=2)
    check_core_spec(spec)
    CoreModel(IntegerNetwork.scratch(spec, seed=0), lanes=2, queue_depth=4)
