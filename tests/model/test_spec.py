"""NetworkSpec: the paper's notation, validation and JSON round trip."""

from __future__ import annotations

import pytest

from model.spec import LayerSpec, NetworkSpec, parse_arch

PAPER_CIFAR = "96C3-256C3-AP2-384C3-AP2-384C3-256C3-1024FC-1020FC"


def test_parse_fc_arch():
    assert parse_arch("128FC-100FC") == (LayerSpec("fc", 128), LayerSpec("fc", 100))


def test_paper_cifar_arch_shapes():
    spec = NetworkSpec.parse(PAPER_CIFAR, input_shape=(3, 32, 32), population=102)
    assert spec.arch == PAPER_CIFAR
    assert spec.classes == 10
    assert spec.layer_shape(0) == (3, 32, 32)
    assert spec.layer_shape(3) == (256, 16, 16)
    assert spec.layer_shape(5) == (384, 8, 8)
    assert spec.layer_shape(9) == (1020,)
    assert spec.spiking_layers() == [0, 1, 2, 4, 6, 7, 8, 9]
    assert spec.channels(0) == 3 and spec.channels(1) == 96 and spec.channels(3) == 0
    assert spec.neurons(8) == 1024


def test_pinned_parse_call():
    spec = NetworkSpec.parse("32FC-10FC", input_shape=(16,), timesteps=8, reset="subtract",
                             threshold="trainable", surrogate="scaled", decoder="last",
                             population=1)
    assert spec.num_layers == 2 and spec.classes == 10 and spec.is_fc_only
    assert spec.initial_threshold == 0.5


def test_json_round_trip():
    spec = NetworkSpec.parse("128FC-100FC", input_shape=(64,), population=10, timesteps=4,
                             reset="zero", threshold="fixed", surrogate="rect", decoder="rate")
    assert NetworkSpec.from_json(spec.to_json()) == spec


def test_fc_decoder_keeps_explicit_classes():
    spec = NetworkSpec.parse("64FC-20FC", input_shape=(16,), decoder="fc", classes=4)
    assert spec.classes == 4


@pytest.mark.parametrize(
    ("arch", "kwargs", "field"),
    [
        ("128XX", {}, "arch"),
        ("", {}, "arch"),
        ("0FC", {}, "arch"),
        ("128FC-AP2", {"input_shape": (1, 8, 8)}, "arch"),
        ("10C3-10FC", {"input_shape": (64,)}, "arch"),
        ("AP2-10FC", {"input_shape": (1, 7, 7)}, "arch"),
        ("100FC", {"reset": "soft"}, "reset"),
        ("100FC", {"threshold": "learned"}, "threshold"),
        ("100FC", {"reset": "zero", "threshold": "trainable"}, "threshold"),
        ("100FC", {"surrogate": "sigmoid"}, "surrogate"),
        ("100FC", {"decoder": "softmax"}, "decoder"),
        ("100FC", {"population": 3}, "population"),
        ("100FC", {"population": 0}, "population"),
        ("100FC", {"timesteps": 0}, "timesteps"),
        ("100FC", {"timesteps": 2000}, "timesteps"),
        ("100FC", {"initial_threshold": -1.0}, "initial_threshold"),
        ("100FC", {"input_shape": (8, 8)}, "input_shape"),
        ("100FC", {"bogus": 1}, "bogus"),
    ],
)
def test_invalid_spec_names_the_field(arch, kwargs, field):
    kwargs = {"input_shape": (64,), **kwargs}
    input_shape = kwargs.pop("input_shape")
    with pytest.raises(ValueError, match=field):
        NetworkSpec.parse(arch, input_shape=input_shape, **kwargs)


def test_invalid_json():
    with pytest.raises(ValueError, match="spec"):
        NetworkSpec.from_json("{not json")
    with pytest.raises(ValueError, match="arch"):
        NetworkSpec.from_dict({"input_shape": [4]})
