"""Model-vs-model soak: the integer model's fast and event-order paths, the core model and
(with ``--hls``) the HLS C simulation engine, bit for bit on random networks.

Network ``i`` of seed ``S`` is drawn from its own generator (``default_rng([S, i])``) with
the draw of the C simulation soak (``hls_soak.random_network``: 1..24 inputs, 0 to 2 hidden
layers of 1..20 neurons, population 1..3, 1..4 classes, T 1..6, last, rate or fc decoder, reset
by subtraction or to zero, trainable or fixed thresholds, scaled or rectangular surrogate)
whose formats, weights, thresholds, rule and LFSR state come from
``core_soak.random_integer_network`` (w 2..10, v w..w+8: narrow enough to saturate; every
rounding, B 1..3, shifts 0..7), plus lanes P (1, 2, 3, 4, 5, 8), queue depth Q (1..16) and
samples that are all zero, all 255, sparse or dense (``hls_soak.random_pixels``).

Each network is inferred by every path (spikes, windows, class counts, predictions, output
and final membranes, the core's event counters); a learnable one then learns its samples
(the stream in one call, the stream one sample per call, the reference path, the core
model one sample at a time; the csim engine in one call) and every learned memory
(W, Vth, R, dW, dVth, LFSR state, pending count) is compared after the samples and after
a flush, then the learned networks infer again. A network can be replayed alone with
``--only INDEX`` (same ``--seed``).

Usage::

    python3 scripts/model_soak.py --networks 1000 --samples 4 --seed 1 [--hls] --json soak.json

Prints a summary and exits 1 when any check failed (2 for bad arguments).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from hw.hls import Layout, learnable  # noqa: E402
from model.core import CoreModel, CoreResult  # noqa: E402
from model.fixed import fire_scan, saturate  # noqa: E402
from model.integer import IntegerNetwork, IntegerTrace  # noqa: E402
from model.spec import DECODERS, NetworkSpec  # noqa: E402
from sim.cli import CLIError, _Parser, write_json  # noqa: E402
from sim.options import bounded_int, positive  # noqa: E402

from core_soak import _describe  # noqa: E402
from hls_soak import LANES, random_network, random_pixels  # noqa: E402

#: Spike-queue depths Q drawn for the core model.
QUEUE_DEPTHS = (1, 2, 3, 4, 5, 8, 16)
#: Learned memories compared between the paths.
STATE = ("weights", "thresholds", "reciprocals", "dw", "dth")


# Checks -------------------------------------------------------------------------------


@dataclass
class Tally:
    """Checks of one network: how many ran and the ones that failed (one line each)."""

    checks: int = 0
    mismatches: list[str] = field(default_factory=list)

    def same(self, what: str, got: Any, expected: Any) -> bool:
        """One check: ``got`` equals ``expected`` (arrays element by element, dtype aside)."""
        self.checks += 1
        a, b = np.asarray(got), np.asarray(expected)
        if a.shape == b.shape and np.array_equal(a, b):
            return True
        if a.shape != b.shape:
            detail = f"shape {a.shape} vs {b.shape}"
        elif a.ndim == 0:
            detail = f"{a.item()} vs {b.item()}"
        else:
            where = tuple(int(i) for i in np.argwhere(a != b)[0])
            detail = f"{int((a != b).sum())} of {a.size} differ, first at {where}: {a[where]} vs {b[where]}"
        self.mismatches.append(f"{what}: {detail}")
        return False

    def arrays(self, what: str, got: Sequence[np.ndarray], expected: Sequence[np.ndarray]) -> None:
        """One check per layer of two lists of per-layer arrays (a wrong layer count: one failed check)."""
        if len(got) != len(expected):
            self.same(f"{what} layers", len(got), len(expected))
            return
        for index, (a, b) in enumerate(zip(got, expected)):
            self.same(f"{what}[{index}]", a, b)


def clone(net: IntegerNetwork) -> IntegerNetwork:
    """An independent copy of ``net`` with its accumulators and pending count."""
    copy = IntegerNetwork(
        net.spec, net.formats, net.weights, net.thresholds, decoder=net.decoder, rule=net.rule,
        lfsr_state=net.lfsr.state,
    )
    copy.dw = [a.copy() for a in net.dw]
    copy.dth = [a.copy() for a in net.dth]
    copy.dd = None if net.dd is None else net.dd.copy()
    copy.pending = net.pending
    return copy


def compare_traces(tally: Tally, what: str, got: IntegerTrace, expected: IntegerTrace) -> None:
    """Spikes, windows, output membranes, class counts and predictions of two traces."""
    tally.arrays(f"{what} spikes", got.spikes, expected.spikes)
    tally.arrays(f"{what} windows", got.windows, expected.windows)
    tally.same(f"{what} last membrane", got.last_membrane, expected.last_membrane)
    tally.same(f"{what} counts", got.counts, expected.counts)
    tally.same(f"{what} predictions", got.predictions(), expected.predictions())


def compare_state(tally: Tally, what: str, got: Any, expected: IntegerNetwork) -> None:
    """Every learned memory of ``got`` (a network or a core model) against ``expected``."""
    for name in STATE:
        tally.arrays(f"{what} {name}", getattr(got, name), getattr(expected, name))
    if expected.decoder is not None:
        tally.same(f"{what} decoder", got.decoder, expected.decoder)
        tally.same(f"{what} dd", got.dd, expected.dd)
    tally.same(f"{what} pending", got.pending, expected.pending)
    tally.same(f"{what} LFSR state", got.lfsr.state, expected.lfsr.state)


def final_membranes(net: IntegerNetwork, pixels: np.ndarray) -> list[np.ndarray]:
    """Membranes (N, n_l) of layers 0..L after the last fire scan.

    The encoder's from T saturating adds of the pixels, each followed by a fire scan;
    layer l's from the fast path of the network truncated after layer l (its output
    membrane at t = T before the reset, then the reset).
    """
    spec = net.spec
    v = np.zeros(pixels.shape, np.int64)
    for _ in range(spec.timesteps):
        v = fire_scan(saturate(v + pixels, net.formats.v), net.thresholds[0], reset=spec.reset)[0]
    out = [v]
    for index in range(1, spec.num_layers + 1):
        arch = "-".join(layer.notation() for layer in spec.layers[:index])
        sub = NetworkSpec.parse(
            arch, input_shape=spec.input_shape, timesteps=spec.timesteps, reset=spec.reset,
            threshold=spec.threshold, decoder="last",
        )
        truncated = IntegerNetwork(sub, net.formats, net.weights[:index], net.thresholds[: index + 1])
        out.append(fire_scan(truncated.forward(pixels).last_membrane, net.thresholds[index], reset=spec.reset)[0])
    return out


def expected_counters(spec: NetworkSpec, trace: IntegerTrace, n: int, sample: np.ndarray,
                      *, learning: bool) -> dict[tuple[str, int, str], int]:
    """The core's event counters of sample ``n`` of ``trace`` (pixels ``sample``, (n_0,)):
    ``{(phase, layer, name): count}``.

    Forward: spikes, synaptic operations (spikes x fan-out), active / idle neuron updates
    (a step with input current: a nonzero pixel, or a spike of the layer below); the fc
    decoder's readout: C synaptic operations per output spike. Backward (``learning``):
    eq. 15 window events and multiplies (the encoder's at t = 1 skipped), dot-product MACs
    (the output layer's with the fc decoder: C per window event), dW rows and adds (the
    output layer's with the fc decoder: its dD rows, C adds each), dVth adds (neurons that
    fired at t - 1, t >= 2).
    """
    fc = spec.decoder == "fc"
    steps, layers = spec.timesteps, spec.num_layers
    sizes = [spec.neurons(index) for index in range(layers + 1)]
    spikes = [s[:, n] for s in trace.spikes]
    windows = [h[:, n] for h in trace.windows]
    out: dict[tuple[str, int, str], int] = {}
    for index in range(layers + 1):
        count = int(spikes[index].sum())
        if index == 0:
            active = steps * int(np.count_nonzero(sample))
        else:
            active = sizes[index] * int(spikes[index - 1].any(axis=1).sum())
        values = {
            "spikes": count, "synaptic_ops": count * sizes[index + 1] if index < layers else 0,
            "active_neuron_updates": active, "idle_neuron_updates": steps * sizes[index] - active,
        }
        out.update({("forward", index, name): value for name, value in values.items()})
    if fc:
        out[("readout", layers, "synaptic_ops")] = int(spikes[layers].sum()) * spec.classes
    if not learning:
        return out
    trainable = spec.threshold == "trainable"
    for index in range(layers + 1):
        takes_part = trainable or index >= 1
        events = int(windows[index][1 if index == 0 else 0 :].sum()) if takes_part else 0
        rows = int(spikes[index - 1].sum()) if index >= 1 else 0
        decoder_rows = int(spikes[index].sum()) if fc and index == layers else 0
        fan_out = sizes[index + 1] if index < layers else spec.classes if fc else 0
        values = {
            "window_events": events, "mux_ops": events,
            "dot_macs": events * fan_out,
            "dw_rows": rows + decoder_rows, "dw_adds": rows * sizes[index] + decoder_rows * spec.classes,
            "dvth_adds": int(spikes[index][:-1].sum()) if trainable else 0,
        }
        out.update({("backward", index, name): value for name, value in values.items()})
    return out


def compare_core_result(tally: Tally, what: str, spec: NetworkSpec, result: CoreResult, trace: IntegerTrace,
                        n: int, sample: np.ndarray, *, learning: bool,
                        finals: list[np.ndarray] | None = None) -> None:
    """The core model's result of sample ``n`` against the integer trace: prediction, counts,
    output membrane, S and h planes, final membranes (when given) and event counters."""
    tally.same(f"{what} prediction", result.prediction, trace.predictions()[n])
    tally.same(f"{what} counts", result.counts, trace.counts[n])
    tally.same(f"{what} last membrane", result.last_membrane, trace.last_membrane[n])
    tally.arrays(f"{what} spikes", result.spikes, [s[:, n] for s in trace.spikes])
    tally.arrays(f"{what} windows", result.windows, [h[:, n] for h in trace.windows])
    if finals is not None:
        tally.arrays(f"{what} final membranes", result.membranes, [f[n] for f in finals])
    phases = result.counters.phases
    for (phase, index, name), value in expected_counters(spec, trace, n, sample, learning=learning).items():
        got = getattr(phases[phase].layers[index], name) if phase in phases else None
        tally.same(f"{what} {phase} counter {name}[{index}]", got, value)


def compare_update(tally: Tally, what: str, spec: NetworkSpec, phase: Any,
                   old: Sequence[np.ndarray], new: Sequence[np.ndarray]) -> None:
    """The core's update counters: every weight and (trainable) threshold, one reciprocal per
    threshold the integer model changed (``old`` -> ``new``)."""
    trainable = spec.threshold == "trainable"
    layers = spec.num_layers
    decoder = spec.classes * spec.timesteps * spec.neurons(layers) if spec.decoder == "fc" else 0
    for index in range(layers + 1):
        expected = {
            "weight_updates": (spec.neurons(index) * spec.neurons(index - 1) if index else 0)
            + (decoder if index == layers else 0),
            "threshold_updates": spec.neurons(index) if trainable else 0,
            "reciprocals": int(np.count_nonzero(new[index] != old[index])) if trainable else 0,
        }
        for name, value in expected.items():
            tally.same(f"{what} update counter {name}[{index}]", getattr(phase.layers[index], name), value)


def compare_engine_run(tally: Tally, what: str, outputs: tuple[np.ndarray, ...],
                       traces: Sequence[IntegerTrace], layout: Layout) -> None:
    """A csim engine call's predictions, class counts, spikes per layer and per neuron
    against the integer traces of the same samples (in order)."""
    predictions, counts, layer_spikes, unit_spikes = outputs
    tally.same(f"{what} predictions", predictions, np.concatenate([t.predictions() for t in traces]))
    tally.same(f"{what} counts", counts, np.concatenate([t.counts for t in traces]))
    per_layer = [np.stack([s.sum(axis=(0, 2)) for s in t.spikes], axis=1) for t in traces]
    tally.same(f"{what} spikes per layer", layer_spikes, np.concatenate(per_layer))
    units = np.zeros(layout.neuron_total, np.int64)
    for trace in traces:
        for index, spikes in enumerate(trace.spikes):
            units[layout.neuron_slice(index)] += spikes.sum(axis=(0, 1))
    tally.same(f"{what} spikes per neuron", unit_spikes, units)


# One network ----------------------------------------------------------------------------


@dataclass
class Draw:
    """Network ``index`` of a seed with its core parameters and samples."""

    index: int
    net: IntegerNetwork
    lanes: int
    queue_depth: int
    pixels: np.ndarray
    labels: np.ndarray

    def describe(self) -> str:
        patterns = ["zero" if not row.any() else "full" if (row == 255).all() else "mixed" for row in self.pixels]
        return f"{_describe(self.net)} {self.net.spec.surrogate} P{self.lanes} Q{self.queue_depth} pixels {patterns}"


def draw(seed: int, index: int, samples: int) -> Draw:
    """Network ``index`` of ``seed``, from its own generator ``default_rng([seed, index])``."""
    rng = np.random.default_rng([seed, index])
    net = random_network(rng, DECODERS)
    lanes = int(rng.choice(LANES))
    depth = int(rng.choice(QUEUE_DEPTHS))
    pixels = random_pixels(rng, samples, net.spec.input_shape[0])
    labels = rng.integers(0, net.spec.classes, samples)
    return Draw(index, net, lanes, depth, pixels, labels)


@dataclass
class Learned:
    """What the integer model's fast path learned: its groups (samples, trace) and networks."""

    groups: list[tuple[int, IntegerTrace]]
    before_flush: IntegerNetwork
    after_flush: IntegerNetwork
    trace: IntegerTrace


def check_inference(tally: Tally, what: str, net: IntegerNetwork, pixels: np.ndarray, core: CoreModel) -> IntegerTrace:
    """``net``'s fast path against its reference path and ``core`` (same memories); the fast trace."""
    fast = net.forward(pixels)
    compare_traces(tally, f"{what} reference vs fast", net.forward(pixels, reference=True), fast)
    finals = final_membranes(net, pixels)
    for n, sample in enumerate(pixels):
        result = core.infer(sample)
        compare_core_result(tally, f"{what} core sample {n}", net.spec, result, fast, n, sample,
                            learning=False, finals=finals)
    return fast


def check_learning(tally: Tally, case: Draw) -> Learned:
    """Learn the samples by every path; compare predictions, traces, counters and memories
    after the samples, after a flush and in inference after learning."""
    net, pixels, labels, spec = case.net, case.pixels, case.labels, case.net.spec
    fast, reference, split = clone(net), clone(net), clone(net)
    core = CoreModel(net, lanes=case.lanes, queue_depth=case.queue_depth)
    groups: dict[str, list[tuple[int, IntegerTrace, list[np.ndarray], int]]] = {"fast": [], "reference": []}

    def recorder(name: str, model: IntegerNetwork) -> Callable[[int, IntegerTrace], None]:
        def record(count: int, trace: IntegerTrace) -> None:
            groups[name].append((count, trace, [v.copy() for v in model.thresholds], model.pending))
        return record

    correct = fast.learn(pixels, labels, callback=recorder("fast", fast))
    tally.same("learning reference vs fast correct",
               reference.learn(pixels, labels, reference=True, callback=recorder("reference", reference)), correct)
    tally.same("learning reference vs fast groups", [g[0] for g in groups["reference"]], [g[0] for g in groups["fast"]])
    for g, (theirs, ours) in enumerate(zip(groups["reference"], groups["fast"])):
        compare_traces(tally, f"learning group {g} reference vs fast", theirs[1], ours[1])
    predictions = np.concatenate([g[1].predictions() for g in groups["fast"]])
    singles: list[int] = []
    for n in range(len(pixels)):
        split.learn(pixels[n : n + 1], labels[n : n + 1], callback=lambda _, trace: singles.extend(trace.predictions()))
    tally.same("learning one sample per call vs fast predictions", singles, predictions)

    previous = [v.copy() for v in net.thresholds]
    n = 0
    core_correct = 0
    for count, trace, thresholds, pending in groups["fast"]:
        for k in range(count):
            what = f"learning core sample {n}"
            result = core.learn(pixels[n], int(labels[n]))
            core_correct += int(result.prediction == labels[n])
            compare_core_result(tally, what, spec, result, trace, k, pixels[n], learning=True)
            updated = pending == 0 and k == count - 1
            phases = result.counters.phases
            if tally.same(f"{what} update ran", "update" in phases, updated) and updated:
                compare_update(tally, what, spec, phases["update"], previous, thresholds)
            n += 1
        previous = thresholds
    tally.same("learning core vs fast correct", core_correct, correct)
    for name, other in (("reference", reference), ("one sample per call", split), ("core", core)):
        compare_state(tally, f"learned {name} vs fast", other, fast)

    before_flush = clone(fast)
    fast.flush()
    reference.flush(reference=True)
    split.flush()
    flushed = core.flush()
    if tally.same("flush core ran", flushed is not None, before_flush.pending > 0) and flushed is not None:
        compare_update(tally, "flush core", spec, flushed[0].phases["update"], before_flush.thresholds, fast.thresholds)
    for name, other in (("reference", reference), ("one sample per call", split), ("core", core)):
        compare_state(tally, f"flushed {name} vs fast", other, fast)
    trace = check_inference(tally, "after learning", fast, pixels, core)
    return Learned([(g[0], g[1]) for g in groups["fast"]], before_flush, fast, trace)


def check_csim(tally: Tally, case: Draw, inferred: IntegerTrace, learned: Learned | None) -> None:
    """The csim engine (:class:`sim.hls_engine.CsimNetwork`) against the integer model."""
    from sim.hls_engine import CsimNetwork

    engine = CsimNetwork(case.net)
    layout = Layout.of(case.net, 1)
    compare_engine_run(tally, "csim inference", engine.run(case.pixels), [inferred], layout)
    if learned is None:
        return
    outputs = engine.run(case.pixels, case.labels, learn=True)
    compare_engine_run(tally, "csim learning", outputs, [trace for _, trace in learned.groups], layout)
    compare_state(tally, "csim learned vs fast", engine.network(), learned.before_flush)
    engine.flush()
    compare_state(tally, "csim flushed vs fast", engine.network(), learned.after_flush)
    compare_engine_run(tally, "csim after learning", engine.run(case.pixels), [learned.trace], layout)


def saturation_matters(case: Draw) -> dict[str, bool]:
    """Whether saturation changed this network's outcome: its inference against the same
    network with a 32-bit membrane, its learning (when learnable) against 32-bit membranes
    and dV and 48-bit accumulators (weights keep their width)."""
    net = case.net
    wide_v = replace(net.formats, v=32)
    wide = IntegerNetwork(
        net.spec, wide_v, net.weights, net.thresholds, decoder=net.decoder, rule=net.rule, lfsr_state=net.lfsr.state
    )
    narrow_trace, wide_trace = net.forward(case.pixels), wide.forward(case.pixels)
    out = {"inference": not all(np.array_equal(a, b) for a, b in zip(narrow_trace.spikes, wide_trace.spikes))
           or not np.array_equal(narrow_trace.last_membrane, wide_trace.last_membrane)}
    if learnable(net.spec):
        formats = replace(net.formats, v=32, g=32, dw=48, dth=48)
        narrow = clone(net)
        wide = IntegerNetwork(
            net.spec, formats, net.weights, net.thresholds, decoder=net.decoder, rule=net.rule,
            lfsr_state=net.lfsr.state,
        )
        for model in (narrow, wide):
            model.learn(case.pixels, case.labels)
            model.flush()
        out["learning"] = not all(np.array_equal(a, b) for a, b in zip(narrow.weights + narrow.thresholds,
                                                                         wide.weights + wide.thresholds))
    return out


@dataclass
class NetworkReport:
    """The checks of one network."""

    index: int
    description: str
    checks: int
    mismatches: list[str]
    features: dict[str, Any]


def check_network(seed: int, index: int, samples: int, *, hls: bool = False) -> NetworkReport:
    """Draw network ``index`` of ``seed`` and run every check on it (a crash is a mismatch)."""
    case = draw(seed, index, samples)
    spec, rule = case.net.spec, case.net.rule
    tally = Tally()
    stage = "inference"
    features: dict[str, Any] = {
        "learnable": learnable(spec), "decoder": spec.decoder, "reset": spec.reset, "threshold": spec.threshold,
        "surrogate": spec.surrogate, "rounding": rule.rounding, "batch": rule.batch, "lanes": case.lanes,
        "queue_depth": case.queue_depth, "zero pixels": bool((~case.pixels.any(axis=1)).any()),
        "max pixels": bool((case.pixels == 255).all(axis=1).any()),
    }
    try:
        inferred = check_inference(tally, "inference", case.net, case.pixels,
                                   CoreModel(case.net, lanes=case.lanes, queue_depth=case.queue_depth))
        features["silent output"] = bool((inferred.counts.sum(axis=1) == 0).any())
        learned = None
        if learnable(spec):
            stage = "learning"
            learned = check_learning(tally, case)
        if hls:
            stage = "csim"
            check_csim(tally, case, inferred, learned)
        stage = "saturation"
        features.update({f"saturation changes {k}": v for k, v in saturation_matters(case).items()})
    except Exception as error:  # a crash of any path is a failure too
        tally.checks += 1
        tally.mismatches.append(f"{stage}: {type(error).__name__}: {error}")
    return NetworkReport(index, case.describe(), tally.checks, tally.mismatches, features)


# The soak -------------------------------------------------------------------------------


def coverage(reports: Sequence[NetworkReport]) -> dict[str, Any]:
    """How many networks had each feature: counts per value for the switches, else per flag."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(key for r in reports for key in r.features):
        values = [r.features.get(name) for r in reports]
        if all(isinstance(v, bool) or v is None for v in values):
            out[name] = sum(bool(v) for v in values)
        else:
            out[name] = {str(k): n for k, n in sorted(Counter(values).items(), key=lambda item: str(item[0]))}
    return out


def soak(*, seed: int, networks: int = 1000, samples: int = 4, hls: bool = False,
         only: Sequence[int] | None = None, progress: bool = True) -> dict[str, Any]:
    """Check networks ``0..networks-1`` (or the ``only`` indices) of ``seed``: the summary.

    Returns
    -------
    dict
        ``seed``, ``samples``, ``hls``, ``networks``, ``indices`` (with ``only``), ``checks``,
        ``failed_checks``, ``failures`` (``index``, ``replay`` arguments, ``network``,
        ``mismatches``: the first 20 lines), ``coverage`` and ``seconds``.
    """
    indices = list(range(networks)) if only is None else list(only)
    started = time.perf_counter()
    reports = []
    failed = 0
    bar = tqdm(indices, desc="model soak", unit="net", disable=not progress)
    for index in bar:
        report = check_network(seed, index, samples, hls=hls)
        reports.append(report)
        failed += bool(report.mismatches)
        bar.set_postfix(failed=failed)
    failures = [
        {"index": r.index, "replay": f"--seed {seed} --samples {samples} --only {r.index}" + (" --hls" if hls else ""),
         "network": r.description, "mismatch_count": len(r.mismatches), "mismatches": r.mismatches[:20]}
        for r in reports if r.mismatches
    ]
    summary = {
        "seed": seed, "samples": samples, "hls": hls, "networks": len(reports),
        "checks": sum(r.checks for r in reports), "failed_checks": sum(len(r.mismatches) for r in reports),
        "failures": failures, "coverage": coverage(reports), "seconds": round(time.perf_counter() - started, 1),
    }
    if only is not None:
        summary["indices"] = indices
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="model_soak.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", type=positive, default=1000, help="random networks (default 1000)")
    parser.add_argument("--samples", type=bounded_int(1, 64), default=4, help="samples per network, 1..64 (default 4)")
    parser.add_argument("--seed", type=bounded_int(0), default=1, help="seed, 0 or more (default 1)")
    parser.add_argument("--only", type=bounded_int(0), nargs="+", metavar="INDEX",
                        help="check only these network indices of the seed (replay a failure)")
    parser.add_argument("--hls", action="store_true", help="also the HLS C simulation engine (needs g++)")
    parser.add_argument("--json", metavar="FILE", help="write the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        if args.hls:
            from sim.hls_csim import find_compiler
            from sim.toolchain import ToolchainError

            try:
                find_compiler("g++")
            except ToolchainError as error:
                raise CLIError(f"--hls: {str(error).splitlines()[0]}") from None
        if args.json:  # fail before the soak, not after it
            write_json(args.json, {"seed": args.seed, "running": True})
        summary = soak(seed=args.seed, networks=args.networks, samples=args.samples, hls=args.hls,
                       only=args.only, progress=not args.no_progress)
        if args.json:
            write_json(args.json, summary)
    except CLIError as error:
        print(f"model_soak.py: error: {error}", file=sys.stderr)
        return 2
    for failure in summary["failures"]:
        print(f"FAIL network {failure['index']} ({failure['replay']}): {failure['network']}")
        for line in failure["mismatches"]:
            print(f"  {line}")
    bad = [f["index"] for f in summary["failures"]]
    print(f"model soak: seed {summary['seed']}, {summary['networks']} networks "
          f"({summary['coverage'].get('learnable', 0)} learnable){' with csim' if args.hls else ''}, "
          f"{summary['checks']} checks, {summary['failed_checks']} failed"
          + (f" in networks {bad[:20]}" if bad else "") + f", {summary['seconds']} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
