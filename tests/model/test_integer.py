"""The integer network (model/integer.py): fast == reference, float tracking, a hand example."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.fixed import ROUNDINGS, lfsr_step, signed_range
from model.integer import (
    DECODER_ERROR_GAIN,
    FitState,
    Formats,
    History,
    IntegerNetwork,
    LearningRule,
    ShiftSchedule,
    equivalent_float_lr,
    fit,
    label_target,
    load_learner,
    output_error,
    recipe,
    save_learner,
)
from model.spec import NetworkSpec
from model.stbp import Network

# Random networks ------------------------------------------------------------------------------


@st.composite
def networks(draw: st.DrawFn) -> tuple[IntegerNetwork, np.ndarray, np.ndarray]:
    """A small random integer network (often saturating), pixels and labels."""
    n_in = draw(st.integers(1, 7))
    hidden = draw(st.integers(1, 6))
    population = draw(st.integers(1, 3))
    classes = draw(st.integers(1, 3))
    spec = NetworkSpec.parse(
        f"{hidden}FC-{classes * population}FC",
        input_shape=(n_in,),
        timesteps=draw(st.integers(1, 5)),
        population=population,
        classes=classes,
        decoder=draw(st.sampled_from(["last", "rate", "fc"])),
        threshold=draw(st.sampled_from(["trainable", "fixed"])),
    )
    w = draw(st.integers(2, 10))
    v = draw(st.integers(w, w + 6))  # narrow membranes saturate often
    g = draw(st.integers(4, 12))
    formats = Formats(
        w=w, fw=draw(st.integers(0, w - 1)), v=v, g=g, gf=draw(st.integers(0, g - 1)),
        dw=draw(st.integers(g, g + 4)), dth=draw(st.integers(g, g + 4)), k=draw(st.integers(8, 14)),
        df=draw(st.integers(0, 12)),
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    low, high = signed_range(w)
    weights = [
        rng.integers(low, high + 1, (spec.neurons(i), spec.neurons(i - 1))) for i in (1, 2)
    ]
    top = min(formats.threshold_max, draw(st.integers(1, 300)))
    thresholds = [rng.integers(1, top + 1, spec.neurons(i)) for i in range(3)]
    rule = LearningRule(
        shift_w=draw(st.integers(0, 6)),
        shift_th=draw(st.integers(0, 6)),
        rounding=draw(st.sampled_from(ROUNDINGS)),
        batch=draw(st.integers(1, 3)),
    )
    decoder = None
    if spec.decoder == "fc":
        decoder = rng.integers(low, high + 1, (classes, spec.timesteps * spec.neurons(2)))
    net = IntegerNetwork(
        spec, formats, weights, thresholds, decoder=decoder, rule=rule,
        lfsr_state=draw(st.integers(1, 2**32 - 1)),
    )
    samples = draw(st.integers(1, 5))
    silent = draw(st.booleans())
    pixels = np.zeros((samples, n_in), np.uint8) if silent else rng.integers(0, 256, (samples, n_in), dtype=np.uint8)
    labels = rng.integers(0, classes, samples)
    return net, pixels, labels


def _clone(net: IntegerNetwork) -> IntegerNetwork:
    return IntegerNetwork(
        net.spec, net.formats, net.weights, net.thresholds, decoder=net.decoder, rule=net.rule,
        lfsr_state=net.lfsr.state,
    )


def _same_state(a: IntegerNetwork, b: IntegerNetwork) -> bool:
    return (
        all(np.array_equal(x, y) for x, y in zip(a.weights, b.weights))
        and all(np.array_equal(x, y) for x, y in zip(a.thresholds, b.thresholds))
        and all(np.array_equal(x, y) for x, y in zip(a.dw, b.dw))
        and all(np.array_equal(x, y) for x, y in zip(a.dth, b.dth))
        and (a.decoder is None) == (b.decoder is None)
        and (a.decoder is None or np.array_equal(a.decoder, b.decoder) and np.array_equal(a.dd, b.dd))
        and a.lfsr.state == b.lfsr.state
        and a.pending == b.pending
    )


@settings(max_examples=60, deadline=None)
@given(networks())
def test_fast_path_equals_reference_path(case: tuple) -> None:
    net, pixels, labels = case
    fast, slow = net, _clone(net)
    a = fast.forward(pixels)
    b = slow.forward(pixels, reference=True)
    for x, y in zip(a.spikes + a.windows, b.spikes + b.windows):
        assert np.array_equal(x, y)
    assert np.array_equal(a.last_membrane, b.last_membrane)
    assert np.array_equal(a.counts, b.counts)
    # Two learning passes: the second starts from updated weights and a partial batch.
    for _ in range(2):
        assert fast.learn(pixels, labels) == slow.learn(pixels, labels, reference=True)
        assert _same_state(fast, slow)
    fast.flush()
    slow.flush(reference=True)
    assert _same_state(fast, slow)


def test_saturation_heavy_network_matches_and_saturates() -> None:
    spec = NetworkSpec.parse("6FC-4FC", input_shape=(5,), timesteps=4, population=2)
    formats = Formats(w=8, fw=6, v=8, g=6, gf=2, dw=6, dth=6, k=8)
    # Ascending events 127, 127, 127, -128, -128, -128 end at -128 (the plain sum is -3).
    weights = [np.full((6, 5), 127), np.array([[127] * 3 + [-128] * 3] * 4)]
    thresholds = [np.array([1, 2, 3, 4, 5]), np.full(6, 1), np.array([1, 127, 1, 127])]
    net = IntegerNetwork(spec, formats, weights, thresholds, rule=LearningRule(0, 0, "stochastic", 2))
    ref = _clone(net)
    pixels = np.full((3, 5), 255, np.uint8)
    pixels[1] = 0  # a silent sample in the same batch takes the no-saturation path
    trace = net.forward(pixels)
    assert trace.last_membrane.tolist() == [[-128] * 4, [0] * 4, [-128] * 4]
    reference = ref.forward(pixels, reference=True)
    assert all(np.array_equal(a, b) for a, b in zip(trace.spikes + trace.windows, reference.spikes + reference.windows))
    labels = np.array([0, 1, 0])
    net.learn(pixels, labels)
    ref.learn(pixels, labels, reference=True)
    assert _same_state(net, ref)
    assert any(w.max() == 127 or w.min() == -128 for w in net.weights)


def test_all_silent_network_learns_nothing() -> None:
    spec = NetworkSpec.parse("4FC-2FC", input_shape=(3,), timesteps=3, population=1)
    net = IntegerNetwork.scratch(spec, seed=1)
    before = [w.copy() for w in net.weights]
    net.learn(np.zeros((4, 3), np.uint8), np.array([0, 1, 1, 0]))
    trace = net.forward(np.zeros((1, 3), np.uint8))
    assert not any(s.any() for s in trace.spikes)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights))


# Tracking the float network -------------------------------------------------------------------

#: At wide formats the integer gradients equal the float ones times c * B * 2^gf
#: (:func:`equivalent_float_lr`'s c; the encoder's: times 256/255 more; the fc decoder's
#: D: times 2^(df - gf - G)) up to the floor of the eq. 15 shift: cosine >= 1 - 1e-6 and scale within
#: 0.5 % per layer.
TRACK_COSINE = 1 - 1e-6
TRACK_SCALE = 5e-3


@pytest.mark.parametrize("decoder", ["last", "fc"])
def test_wide_integer_gradients_track_float(decoder: str) -> None:
    spec = NetworkSpec.parse(
        "24FC-20FC", input_shape=(16,), timesteps=6, population=4, classes=5, decoder=decoder
    )
    formats = Formats(w=16, fw=10, v=32, g=32, gf=16, dw=48, dth=48, k=24)
    net = IntegerNetwork.scratch(spec, formats, seed=2)
    floats = net.to_float()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (12, 16), dtype=np.uint8)
    labels = rng.integers(0, 5, 12)
    _, grads = floats.loss_and_grads(pixels / 255.0, labels)
    trace = net.accumulate(pixels, labels)
    float_trace = floats.forward(pixels / 255.0)
    assert all(np.array_equal(a > 0, b) for a, b in zip(float_trace.spikes, trace.spikes))
    lr_scale = equivalent_float_lr(spec, formats, 0) / 2.0 ** (formats.gf - formats.fw)
    scale = lr_scale * len(labels) * 2.0**formats.gf
    pairs = list(zip(grads.weights, net.dw)) + list(zip(grads.thresholds, net.dth))
    encoder = len(grads.weights)  # index of thresholds[0] in pairs
    if decoder == "fc":
        pairs.append((grads.decoder_weight * 2.0 ** (formats.df - formats.gf - DECODER_ERROR_GAIN), net.dd))
    for number, (expected, got) in enumerate(pairs):
        expected = expected.ravel() * scale * (256 / 255 if number == encoder else 1)
        got = got.ravel().astype(np.float64)
        assert np.linalg.norm(expected) > 0
        cosine = expected @ got / np.linalg.norm(expected) / np.linalg.norm(got)
        assert cosine >= TRACK_COSINE
        assert abs(np.linalg.norm(got) / np.linalg.norm(expected) - 1) <= TRACK_SCALE


# A hand-computed learning step ----------------------------------------------------------------


def _tiny(rounding: str) -> IntegerNetwork:
    spec = NetworkSpec.parse("1FC-2FC", input_shape=(1,), timesteps=2, population=1)
    weights = [np.array([[36]]), np.array([[20], [-10]])]
    thresholds = [np.array([128]), np.array([32]), np.array([32, 32])]
    formats = Formats(fw=6)  # E = 14, encoder shift K - 2, encoder threshold shift s_th - 2
    return IntegerNetwork(spec, formats, weights, thresholds, rule=LearningRule(4, 4, rounding), lfsr_state=0xACE1)


def test_hand_computed_learning_step() -> None:
    # Encoder p = 200, Vth0 = 128: V0 = 200 -> S, V0 = 72; 272 -> S. h0 = 0 (2*72, 2*144 >= 128).
    # Layer 1, W = 36, Vth 32: V = 36 -> S, h (2*4 < 32), 4; V = 40 -> S, h (16 < 32), 8.
    # Layer 2, W = (20, -10): t=1 V = (20, -10) no spikes, h = (1, 0); t=2 V = (40, -20),
    # S = (1, 0), h = (1, 0). Counts (1, 0), label 1: e = (1, -1).
    net = _tiny("floor")
    trace = net.forward(np.array([[200]], np.uint8))
    assert [s[:, 0].tolist() for s in trace.spikes] == [[[1], [1]], [[1], [1]], [[0, 0], [1, 0]]]
    assert [h[:, 0].tolist() for h in trace.windows] == [[[0], [0]], [[1], [1]], [[1, 0], [1, 0]]]
    assert trace.last_membrane.tolist() == [[40, -20]]
    assert output_error(trace.counts, np.array([1]), label_target(net.spec, net.formats)).tolist() == [[1, -1]]
    net.accumulate(np.array([[200]], np.uint8), np.array([1]))
    # Output, t=2: acc = 1 << 14, R = 2^16 / 32 = 2048 -> dV = 512 (neuron 0; neuron 1 out of
    # window -> 0); t=1: no error injected -> dV = 0 in the window. dW2 = (512, 0) (S1 = 1).
    # Layer 1, t=2: acc = 512 * 20 = 10240 -> dV = 10240 * 2048 >> 16 = 320; dW1 = 320 (S0 = 1);
    # dVth1 = -320 * S1[1] = -320; t=1: acc = 0 -> dV = 0. Encoder: out of window -> 0.
    assert [d.tolist() for d in net.dw] == [[[320]], [[512], [0]]]
    assert [d.tolist() for d in net.dth] == [[0], [-320], [0, 0]]
    net.update()
    # W1 = 36 - (320 >> 4) = 16; W2 = (20 - 32, -10); Vth1 = 32 + 20 = 52.
    assert [w.tolist() for w in net.weights] == [[[16]], [[-12], [-10]]]
    assert [v.tolist() for v in net.thresholds] == [[128], [52], [32, 32]]
    assert net.reciprocals[1].tolist() == [65536 // 52]
    assert not any(d.any() for d in net.dw + net.dth)


def test_hand_computed_stochastic_draw_order() -> None:
    # Draws: W1 (1), W2 row 0 (j = 0, 1), thresholds of layers 0 (1), 1 (1), 2 (2): 7 steps.
    net = _tiny("stochastic")
    net.learn(np.array([[200]], np.uint8), np.array([1]))
    states = [0xACE1]
    for _ in range(7):
        states.append(lfsr_step(states[-1]))
    r = [s & 15 for s in states[1:]]
    assert net.lfsr.state == states[7]
    assert net.weights[0].tolist() == [[36 - ((320 + r[0]) >> 4)]]
    assert net.weights[1].tolist() == [[20 - ((512 + r[1]) >> 4)], [-10 - ((0 + r[2]) >> 4)]]
    # Encoder threshold shift: max(4 - 8 + 6, 0) = 2.
    assert net.thresholds[0].tolist() == [128 - ((0 + (states[4] & 3)) >> 2)]
    assert net.thresholds[1].tolist() == [32 - ((-320 + r[4]) >> 4)]


def test_hand_computed_fc_decoder_step() -> None:
    # The _tiny network with a fc decoder (classes 2, population 1): output spikes
    # S2[1] = (0, 0), S2[2] = (1, 0), windows h2 = (1, 0) at both steps; D's columns are
    # t n_L + j, so only column 2 (t = 2, j = 0) is read. fw = 6, df = 10: target 1024,
    # error shift gf + fw - 2 df + G = 8 + 6 - 20 + 7 = 1, decoder shift s_w + fw - gf - G = 6.
    spec = NetworkSpec.parse(
        "1FC-2FC", input_shape=(1,), timesteps=2, population=1, classes=2, decoder="fc"
    )
    tiny = _tiny("floor")
    decoder = np.array([[5, -3, 40, 7], [-6, 2, 20, -1]])
    formats = replace(tiny.formats, df=10)
    rule = LearningRule(15, 8, "floor")
    net = IntegerNetwork(spec, formats, tiny.weights, tiny.thresholds, decoder=decoder, rule=rule)
    pixels, labels = np.array([[200]], np.uint8), np.array([1])
    trace = net.forward(pixels)
    assert trace.counts.tolist() == [[40, 20]] and trace.predictions().tolist() == [0]
    # e = (40, 20 - 1024); sums << 1: t=1 (6224, -2128) -> (12448, -4256),
    # t=2 (-18480, 1284) -> (-36960, 2568). Output dV (R = 2048, K = 16: floor(acc / 32)):
    # t=2 (-1155, 0: out of window); t=1 (389, dV[2] = 0). dW2 = (-766, 0); layer 1:
    # acc -23100 -> -722 (t=2), 7780 -> 243 (t=1); dW1 = -479, dVth1 = 722.
    net.accumulate(pixels, labels)
    assert [d.tolist() for d in net.dw] == [[[-479]], [[-766], [0]]]
    assert [d.tolist() for d in net.dth] == [[0], [722], [0, 0]]
    assert net.dd.tolist() == [[0, 0, 40, 0], [0, 0, -1004, 0]]
    net.update()
    # D[:, 2] = (40 - (40 >> 6), 20 - (-1004 >> 6)) = (40, 36); W -= dW >> 15 (floor: -1);
    # Vth1 = 32 - (722 >> 8) = 30.
    assert net.decoder.tolist() == [[5, -3, 40, 7], [-6, 2, 36, -1]]
    assert [w.tolist() for w in net.weights] == [[[37]], [[21], [-10]]]
    assert [v.tolist() for v in net.thresholds] == [[128], [30], [32, 32]]
    assert not net.dd.any()


# Checkpoints, formats and bad input -----------------------------------------------------------


@pytest.mark.parametrize("decoder", ["last", "fc"])
def test_checkpoint_round_trip(tmp_path, decoder: str) -> None:
    spec = NetworkSpec.parse(
        "5FC-4FC", input_shape=(3,), timesteps=3, population=2, classes=2, decoder=decoder
    )
    net = IntegerNetwork.scratch(spec, Formats(w=6, v=12), seed=9, rule=LearningRule(7, 8, "nearest", 4))
    net.learn(np.full((2, 3), 90, np.uint8), np.array([0, 1]))
    # A learner state keeps the pending accumulators (the fc decoder's dD too).
    state = FitState(0, 2, 0, np.random.default_rng(0).bit_generator.state, History())
    save_learner(tmp_path / "state", net, state)
    resumed, _, _ = load_learner(tmp_path / "state")
    assert _same_state(resumed, net) and resumed.pending == 2
    net.flush()
    net.save(tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "checkpoint.json").read_text())
    assert meta["kind"] == "integer" and meta["formats"]["w"] == 6 and meta["formats"]["fw"] == 5
    assert meta["formats"]["rounding"] == "nearest" and meta["formats"]["lfsr_state"] == net.lfsr.state
    back = IntegerNetwork.load(tmp_path / "ck")
    assert back.formats == net.formats and back.rule == net.rule
    assert _same_state(back, net)


def test_checkpoint_with_mismatched_formats_is_rejected(tmp_path) -> None:
    spec = NetworkSpec.parse("5FC-4FC", input_shape=(3,), timesteps=3, population=2)
    net = IntegerNetwork.scratch(spec, seed=1)
    net.weights[0][0, 0] = 100
    net.save(tmp_path / "ck")
    path = tmp_path / "ck" / "checkpoint.json"
    meta = json.loads(path.read_text())
    meta["formats"]["w"], meta["formats"]["fw"] = 6, 5
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"^weights\[0\]: values .* do not fit signed 6 bits"):
        IntegerNetwork.load(tmp_path / "ck")
    meta["formats"]["v"] = 40
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="^v: 40 is out of range"):
        IntegerNetwork.load(tmp_path / "ck")


def test_float_checkpoint_is_rejected(tmp_path) -> None:
    spec = NetworkSpec.parse("5FC-4FC", input_shape=(3,), timesteps=3, population=2)
    Network(spec).save(tmp_path / "float")
    with pytest.raises(ValueError, match="^kind: .*'float', an integer checkpoint is needed"):
        IntegerNetwork.load(tmp_path / "float")


def test_quantized_float_network_matches_float_spikes() -> None:
    spec = NetworkSpec.parse("16FC-10FC", input_shape=(8,), timesteps=5, population=1)
    floats = Network(spec, seed=4)
    for w in floats.weights:  # put weights on the 2^-6 grid so quantization is exact
        w[...] = np.round(w * 64) / 64
    floats.thresholds[0][...] = 128 / 255
    net = IntegerNetwork.from_float(floats, Formats(fw=6))
    assert net.thresholds[0].tolist() == [128] * 8 and net.thresholds[1].tolist() == [32] * 16
    pixels = np.random.default_rng(1).integers(0, 256, (20, 8), dtype=np.uint8)
    expected = floats.forward(pixels / 255.0)
    got = net.forward(pixels)
    assert all(np.array_equal(a > 0, b) for a, b in zip(expected.spikes, got.spikes))
    back = IntegerNetwork.from_float(net.to_float(), net.formats)
    assert all(np.array_equal(a, b) for a, b in zip(back.weights + back.thresholds, net.weights + net.thresholds))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"w": 1}, "w"),
        ({"w": 17}, "w"),
        ({"w": 8, "fw": 8}, "fw"),
        ({"w": 8, "v": 7}, "v"),
        ({"g": 33}, "g"),
        ({"g": 8, "gf": 8}, "gf"),
        ({"g": 16, "dw": 15}, "dw"),
        ({"dth": 49}, "dth"),
        ({"k": 7}, "k"),
        ({"k": 31}, "k"),
    ],
)
def test_formats_reject_out_of_range_widths(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        Formats(**kwargs)


def test_fc_decoder_sums_must_fit_the_model() -> None:
    spec = NetworkSpec.parse("12FC-20FC", input_shape=(4,), timesteps=4, population=2, decoder="fc")
    Formats().check_spec(spec)
    with pytest.raises(ValueError, match="gf, fw: the fc decoder's error sums need"):
        Formats(w=16, fw=15, g=32, gf=31, dw=48, dth=48, df=0).check_spec(spec)  # shift 53


def test_formats_parse() -> None:
    assert Formats.parse("w=6,v=12") == Formats(w=6, fw=5, v=12)
    assert Formats.parse("fw=7") == Formats(w=8, fw=7)
    assert Formats.parse("w=6").df == 7 and Formats.parse("df=12,w=6").df == 12
    with pytest.raises(ValueError, match="^bits: 'x=3'"):
        Formats.parse("x=3")
    with pytest.raises(ValueError, match="^v: 'a' is not an integer"):
        Formats.parse("v=a")


def test_bad_network_inputs_name_the_field() -> None:
    spec = NetworkSpec.parse("4FC-2FC", input_shape=(3,), population=1)
    good_w = [np.zeros((4, 3), int), np.zeros((2, 4), int)]
    good_t = [np.ones(3, int), np.ones(4, int), np.ones(2, int)]
    with pytest.raises(ValueError, match=r"^weights\[1\]: shape"):
        IntegerNetwork(spec, Formats(), [good_w[0], np.zeros((4, 2), int)], good_t)
    with pytest.raises(ValueError, match=r"^weights\[0\]: values"):
        IntegerNetwork(spec, Formats(), [np.full((4, 3), 128), good_w[1]], good_t)
    with pytest.raises(ValueError, match=r"^thresholds\[2\]: 0 is out of range"):
        IntegerNetwork(spec, Formats(), good_w, [good_t[0], good_t[1], np.array([1, 0])])
    net = IntegerNetwork(spec, Formats(), good_w, good_t)
    with pytest.raises(ValueError, match="^pixels: expected shape"):
        net.forward(np.zeros((2, 4), np.uint8))
    with pytest.raises(ValueError, match="^pixels: values"):
        net.forward(np.full((2, 3), 256))
    with pytest.raises(ValueError, match="^labels: "):
        net.learn(np.zeros((2, 3), np.uint8), np.array([0, 2]))
    with pytest.raises(ValueError, match="^rounding: "):
        LearningRule(rounding="up")
    with pytest.raises(ValueError, match="^schedule: "):
        ShiftSchedule.parse("10:0.9,11:0.5,12")


def test_shift_schedule() -> None:
    schedule = ShiftSchedule.parse("14,15,16", threshold_offset=1)
    assert [schedule.shifts(e, 8) for e in range(8)] == [(14, 15)] * 4 + [(15, 16)] * 2 + [(16, 17)] * 2
    assert ShiftSchedule.parse(schedule.to_text(), 1) == schedule


def test_recipe_schedule_keeps_the_float_rate_at_other_formats() -> None:
    spec = NetworkSpec.parse("128FC-100FC", input_shape=(64,), population=10)
    defaults = recipe("digits", "scratch")
    for bits in ("w=4", "w=12,v=20", "fw=5", "gf=4", "g=24,gf=12"):
        formats = Formats.parse(bits)
        schedule = defaults.schedule_for(formats)
        for epoch in range(defaults.epochs):
            base, _ = defaults.schedule.shifts(epoch, defaults.epochs)
            moved, _ = schedule.shifts(epoch, defaults.epochs)
            assert equivalent_float_lr(spec, formats, moved) == equivalent_float_lr(spec, defaults.formats, base)
    with pytest.raises(ValueError, match="^dataset: "):
        recipe("cifar10")


def test_fit_learns_a_separable_toy_problem() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    pixels = np.where(labels[:, None] == 1, [250, 10, 250, 10], [10, 250, 10, 250]).astype(np.uint8)
    spec = NetworkSpec.parse("16FC-8FC", input_shape=(4,), timesteps=6, population=4)
    net = IntegerNetwork.scratch(spec, seed=0)
    assert net.evaluate(pixels, labels)["accuracy"] < 0.9
    history = fit(net, pixels, labels, epochs=1, schedule=ShiftSchedule((9,), ()), progress=False)
    assert net.evaluate(pixels, labels)["accuracy"] == 1.0
    assert len(history.train_accuracy) == 1 and history.samples_per_second > 0
