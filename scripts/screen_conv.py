"""Short screens of integer on-line learning recipes for conv networks on digits.

Builds the network ``spikeforge learn --init scratch`` builds (``IntegerNetwork.scratch``)
and learns it with ``model.integer.fit``, the test set evaluated after every epoch, with
variations the CLI does not offer: other layer shift offsets (set on the network's
``_offsets``, so the core model and the HLS target never see them), a calibrated init
(each layer's bound scaled by 2^(k/4) until ``--calibrate`` of its membranes at t = T lie in
the eq. 14 window, as ``model.stbp.Network.calibrate``), augmentation. One line of JSON per
run is appended to ``--json``. The screens of docs/results.md "Integer model: a conv network
on digits" ran ``python3 scripts/screen_conv.py --epochs 10 --arch A [changes]``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

ROOT = str(__import__("pathlib").Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from model.data import load_dataset, to_u8  # noqa: E402
from model import integer as I  # noqa: E402
from model.spec import NetworkSpec  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--dataset", default="digits")
ap.add_argument("--arch", default="8C3-AP2-16C3-AP2-100FC")
ap.add_argument("--epochs", type=int, default=10)
ap.add_argument("--schedule", default="13:0.3,14:0.55,15:0.75,16:0.9,17")
ap.add_argument("--gain", type=float, default=None)
ap.add_argument("--conv-offset", type=int, default=0, help="extra weight shift of conv kernels")
ap.add_argument("--conv-offset-first", type=int, default=None, help="extra shift of the first conv only")
ap.add_argument("--pool-offset", type=int, default=4)
ap.add_argument("--fc-offset", type=int, default=0, help="extra weight shift of FC layers of conv nets")
ap.add_argument("--th-extra", type=int, default=0, help="extra threshold shift of all conv layers")
ap.add_argument("--calibrate", type=float, default=0.0, help="window share target at t=T")
ap.add_argument("--cal-n", type=int, default=200)
ap.add_argument("--rotate", type=float, default=0.0)
ap.add_argument("--shift", type=int, default=0)
ap.add_argument("--decoder", default="last")
ap.add_argument("--timesteps", type=int, default=8)
ap.add_argument("--population", type=int, default=10)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--train-n", type=int, default=0)
ap.add_argument("--json", default=None)
args = ap.parse_args()

ds = load_dataset(args.dataset, flatten=False)
trp, tep = to_u8(ds.train_x), to_u8(ds.test_x)
trp = trp.reshape(len(trp), -1)
tep = tep.reshape(len(tep), -1)
try_ = ds.train_y
if args.train_n:
    trp, try_ = trp[: args.train_n], try_[: args.train_n]
spec = NetworkSpec.parse(args.arch, input_shape=ds.input_shape, timesteps=args.timesteps,
                         population=args.population, decoder=args.decoder, classes=ds.classes)
net = I.IntegerNetwork.scratch(spec, I.Formats(), seed=args.seed, gain=args.gain)

offs = []
for index in range(spec.num_layers + 1):
    a, b = I.shift_offsets(spec, index)
    if index > 0:
        a = args.pool_offset * (a // 4)
        kind = spec.layers[index - 1].kind
        if kind == "conv":
            a += args.conv_offset
            if args.conv_offset_first is not None and index == 1:
                a += args.conv_offset_first - args.conv_offset
            b += args.th_extra
        elif kind == "fc" and any(l.kind != "fc" for l in spec.layers):
            a += args.fc_offset
    offs.append((a, b))
net._offsets = offs

if args.calibrate > 0:
    # Layer by layer: scale the init bound by 2^(k/4) until the window share at t = T
    # reaches the target on the first cal-n training images.
    rng = np.random.default_rng(args.seed + 12345)
    x = trp[: args.cal_n]
    factors = []
    for index in spec.spiking_layers()[1:]:
        base = net.weights[index - 1].copy()
        shape = base.shape
        u = rng.uniform(-1, 1, shape)
        a0 = max(int(np.abs(base).max()), 1)
        best = None
        for k in range(-16, 33):
            a = a0 * 2 ** (k / 4)
            w = np.clip(np.rint(u * a), -128, 127).astype(np.int64)
            net.weights[index - 1][...] = w
            net._refresh()
            tr = net.forward(x)
            share = tr.windows[index][-1].mean()
            rate = tr.spikes[index].mean()
            if best is None or share > best[0]:
                best = (share, k, w)
            if share >= args.calibrate:
                break
        else:
            net.weights[index - 1][...] = best[2]
            net._refresh()
            k = best[1]
        factors.append((index, k, round(float(share), 3), round(float(rate), 3), a0, int(np.abs(net.weights[index-1]).max())))
    print("calibration", factors, flush=True)

sched = I.ShiftSchedule.parse(args.schedule)
aug = None
if args.rotate or args.shift:
    aug = dict(flip=False, shift=args.shift, rotate_deg=args.rotate)
t0 = time.time()
hist = I.fit(net, trp, try_, epochs=args.epochs, schedule=sched, seed=args.seed,
             test=(tep, ds.test_y), augmentation=aug, image_shape=ds.input_shape, progress=False)
res = net.evaluate(tep, ds.test_y)
out = dict(vars(args), test=hist.test_accuracy, train=hist.train_accuracy,
           final=res["accuracy"], spikes=res["spikes_per_inference"], seconds=hist.seconds,
           wall=time.time() - t0)
print(" ".join(f"{a:.3f}" for a in hist.test_accuracy))
print(f"final {res['accuracy']:.4f} train {hist.train_accuracy[-1]:.3f} spikes {res['spikes_per_inference']:.0f} s/epoch {hist.seconds/args.epochs:.1f}")
if args.json:
    with open(args.json, "a") as fh:
        fh.write(json.dumps(out) + "\n")
