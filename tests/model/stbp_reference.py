"""Slow loop-per-neuron transcription of the STBP equations, the oracle of test_stbp.py.

Every layer is written as an explicit synapse table ``(post unit, pre unit, weight index,
gain)`` built with plain loops (FC: all pairs; conv: the in-bounds 3x3 neighbours; AP2: the
four inputs of a pooled unit with gain 1/4), and every neuron, time step and synapse is
visited one at a time with Python floats.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from model.spec import NetworkSpec


def synapse_table(spec: NetworkSpec, index: int) -> list[tuple[int, int, int | None, float]]:
    """Synapses of layer ``index``: (post, pre, flat weight index or None, gain).

    ``post`` and ``pre`` are flat unit indices of layers ``index`` and ``index - 1``.
    """
    layer = spec.layers[index - 1]
    pre_shape, post_shape = spec.layer_shape(index - 1), spec.layer_shape(index)
    table = []
    if layer.kind == "fc":
        n_in = math.prod(pre_shape)
        for j in range(layer.size):
            for i in range(n_in):
                table.append((j, i, j * n_in + i, 1.0))
        return table
    c_in, height, width = pre_shape
    if layer.kind == "conv":
        for o, r, c in itertools.product(range(layer.size), range(height), range(width)):
            post = (o * height + r) * width + c
            for ci, di, dj in itertools.product(range(c_in), range(3), range(3)):
                rr, cc = r + di - 1, c + dj - 1
                if 0 <= rr < height and 0 <= cc < width:
                    pre = (ci * height + rr) * width + cc
                    table.append((post, pre, ((o * c_in + ci) * 3 + di) * 3 + dj, 1.0))
        return table
    out_h, out_w = post_shape[1:]
    for ci, r, c in itertools.product(range(c_in), range(out_h), range(out_w)):
        post = (ci * out_h + r) * out_w + c
        for di, dj in itertools.product(range(2), range(2)):
            table.append((post, (ci * height + 2 * r + di) * width + 2 * c + dj, None, 0.25))
    return table


def channel_of(spec: NetworkSpec, index: int, unit: int) -> int:
    """Threshold channel of flat unit ``unit`` of layer ``index``."""
    shape = spec.layer_shape(index)
    return unit if len(shape) == 1 else unit // (shape[1] * shape[2])


def reference(net, x: np.ndarray, y: np.ndarray) -> dict:
    """Loss, gradients and spikes of ``net`` on ``(x, y)`` by explicit loops (float64)."""
    spec = net.spec
    steps, batch, layers = spec.timesteps, len(x), spec.num_layers
    classes, population = spec.classes, spec.population
    sub = spec.reset == "subtract"
    sizes = [spec.neurons(i) for i in range(layers + 1)]
    vth = [np.asarray(v, np.float64) for v in net.thresholds]
    weights = [np.asarray(w, np.float64).ravel() for w in net.weights]
    tables = [None] + [synapse_table(spec, i) for i in range(1, layers + 1)]
    spiking = [True] + [layer.spiking for layer in spec.layers]

    def threshold(index, unit):
        return float(vth[index][channel_of(spec, index, unit)])

    # Forward: S[l][t][b][u], V[l][t][b][u]
    S = [np.zeros((steps, batch, n)) for n in sizes]
    V = [np.zeros((steps, batch, n)) for n in sizes]
    flat_x = x.reshape(batch, -1).astype(np.float64)
    for index in range(layers + 1):
        for b in range(batch):
            current = np.zeros((steps, sizes[index]))
            if index == 0:
                current[:] = flat_x[b]
            else:
                for t in range(steps):
                    for post, pre, w, gain in tables[index]:
                        weight = weights[index - 1][w] if w is not None else gain
                        current[t, post] += weight * S[index - 1][t, b, pre]
            for u in range(sizes[index]):
                if not spiking[index]:
                    S[index][:, b, u] = current[:, u]
                    continue
                theta = threshold(index, u)
                v_prev, s_prev = 0.0, 0.0
                for t in range(steps):
                    if sub:
                        v = v_prev - s_prev * theta + current[t, u]
                    else:
                        v = v_prev * (1.0 - s_prev) + current[t, u]
                    s = 1.0 if v >= theta else 0.0
                    V[index][t, b, u], S[index][t, b, u] = v, s
                    v_prev, s_prev = v, s

    # Decoder and loss
    out = S[layers]
    n_out = sizes[layers]
    decoded = np.zeros((batch, classes))
    for b in range(batch):
        for c in range(classes):
            if spec.decoder == "fc":
                decoded[b, c] = sum(
                    net.decoder_weight[c, t * n_out + n] * out[t, b, n]
                    for t in range(steps)
                    for n in range(n_out)
                )
            else:
                total = 0.0
                for p in range(population):
                    n = c * population + p
                    if spec.decoder == "rate":
                        total += sum(out[t, b, n] for t in range(steps)) / steps
                    else:
                        total += out[steps - 1, b, n]
                decoded[b, c] = total / population
    loss = 0.0
    d_decoded = np.zeros((batch, classes))
    for b in range(batch):
        for c in range(classes):
            diff = decoded[b, c] - (1.0 if y[b] == c else 0.0)
            loss += diff * diff / (batch * classes)
            d_decoded[b, c] = 2.0 * diff / (batch * classes)

    # Backward: e[t][b][u] is the gradient reaching the spikes of a layer from outside.
    e = np.zeros((steps, batch, n_out))
    d_decoder = None
    if spec.decoder == "fc":
        d_decoder = np.zeros_like(net.decoder_weight, dtype=np.float64)
        grid = itertools.product(range(batch), range(classes), range(steps), range(n_out))
        for b, c, t, n in grid:
            e[t, b, n] += d_decoded[b, c] * net.decoder_weight[c, t * n_out + n]
            d_decoder[c, t * n_out + n] += d_decoded[b, c] * out[t, b, n]
    else:
        for b, c, p in itertools.product(range(batch), range(classes), range(population)):
            n = c * population + p
            if spec.decoder == "rate":
                for t in range(steps):
                    e[t, b, n] = d_decoded[b, c] / population / steps
            else:
                e[steps - 1, b, n] = d_decoded[b, c] / population
    trainable = spec.threshold == "trainable"
    d_weights = [np.zeros(w.size) for w in weights]
    d_thresholds = [np.zeros(v.shape) for v in vth]
    for index in range(layers, -1, -1):
        if spiking[index]:
            d_v = np.zeros((steps, batch, sizes[index]))
            for b in range(batch):
                for u in range(sizes[index]):
                    theta = threshold(index, u)
                    after = 0.0  # dV[t + 1]
                    for t in range(steps - 1, -1, -1):
                        v, s = V[index][t, b, u], S[index][t, b, u]
                        if spec.surrogate == "rect":
                            h = 1.0 if abs(v - theta) < 0.5 else 0.0
                        else:
                            h = 1.0 / theta if abs(v - theta) < theta / 2 else 0.0
                        if sub:  # eqs. 9-10
                            d_s = e[t, b, u] - after * theta
                            d_v[t, b, u] = d_s * h + after
                        else:  # eq. 4
                            d_s = e[t, b, u] - after * v
                            d_v[t, b, u] = d_s * h + (1.0 - s) * after
                        after = d_v[t, b, u]
                    if trainable:  # eq. 11
                        for t in range(1, steps):
                            d_thresholds[index][channel_of(spec, index, u)] -= (
                                d_v[t, b, u] * S[index][t - 1, b, u]
                            )
        else:
            d_v = e
        if index == 0:
            break
        below = np.zeros((steps, batch, sizes[index - 1]))
        for t, b in itertools.product(range(steps), range(batch)):
            for post, pre, w, gain in tables[index]:
                weight = weights[index - 1][w] if w is not None else gain
                below[t, b, pre] += d_v[t, b, post] * weight
                if w is not None:  # eq. 6
                    d_weights[index - 1][w] += d_v[t, b, post] * S[index - 1][t, b, pre]
        e = below
    return {
        "loss": loss,
        "decoded": decoded,
        "spikes": S,
        "weights": [g.reshape(np.shape(w)) for g, w in zip(d_weights, net.weights)],
        "thresholds": d_thresholds,
        "decoder_weight": d_decoder,
    }
