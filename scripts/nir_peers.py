"""NIR against peer simulators: spikeforge's float forward and the peer's on the same NIR file.

Directions (each on seeded random networks and random inputs in [0, 1], the spike trains of
every spiking layer compared step by step, ``T`` steps):

* ``spikeforge->norse``: :func:`sim.nir_io.network_to_graph` read by ``norse.torch.from_nir``
  (its ``IF`` is ``IAFCell``: ``v += I``, fire ``v > v_th``, reset to ``v_reset``), so the
  spikeforge network resets to zero. Norse has no ``AvgPool2d``: conv networks are written with
  ``SumPool2d`` (``export-nir --pool sum``). Norse hands NIR ``Flatten``'s ``start_dim`` to
  ``torch.nn.Flatten``, which counts the batch dimension, so it runs one sample at a time;
* ``norse->spikeforge``: ``IAFCell`` layers and bias-free ``Linear`` exported by
  ``norse.torch.to_nir`` (``IF``, ``Affine`` with zero bias), read by
  :func:`sim.nir_io.graph_to_network` with the default reset (zero);
* ``snntorch->spikeforge``: ``snntorch.Leaky(beta=1)`` layers (per-neuron ``beta`` and
  thresholds: snnTorch's exporter needs equal shapes) exported by
  ``snntorch.export_nir.export_to_nir`` (``LIF`` with ``tau = r = inf``), read with
  ``reset`` set to the Leaky's ``reset_mechanism`` (the file does not record it);
* ``spikeforge->snntorch``: ``snntorch.import_nir.import_from_nir`` on a spikeforge file:
  reported as what happens (snnTorch 1.0 turns ``IF`` into ``Leaky(beta=0.9)`` with reset by
  subtraction and a hidden-state-less call that returns a tuple; it does not run).

Exact arithmetic (``--exact``): weights multiples of 1/64 (1/256 after a ``SumPool2d``),
inputs multiples of 1/16 and thresholds odd multiples of 1/2048, so float32 sums are exact in
any order and no membrane equals a threshold (with reset by subtraction a tie needs 32 k
spikes in a row, more than T = 8), the one case where spikeforge (fires at ``V >= Vth``) and NIR's ``IF``
(``v > v_threshold``) differ.
Without it every value is a uniform float32 draw.

Needs the ``peers`` extra (``pip install -e ".[peers]"``). Prints one line per check and,
with ``--json FILE``, the versions and the mismatches.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import itertools
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model.spec import NetworkSpec
from model.stbp import Network
from sim import nir_io
from sim.options import bounded_int

#: Peer packages whose versions are reported.
PACKAGES = ("nir", "nirtorch", "torch", "norse", "snntorch")
#: (arch, input shape) of the spikeforge networks sent to the peers.
NETWORKS = {"fc": ("24FC-10FC", (16,)), "conv": ("4C3-AP2-3C3-10FC", (2, 8, 8))}
TIMESTEPS = 8


def versions() -> dict[str, str | None]:
    """Installed versions of :data:`PACKAGES` (None when absent)."""
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _values(rng: np.random.Generator, shape: tuple[int, ...], exact: bool, kind: str) -> np.ndarray:
    """Random weights, inputs or thresholds (exact: dyadic grids, see the module docstring)."""
    if kind == "weight":
        return rng.integers(-32, 33, shape) / 64 if exact else rng.uniform(-0.5, 0.5, shape)
    if kind == "input":
        return rng.integers(0, 17, shape) / 16 if exact else rng.uniform(0, 1, shape)
    return (2 * rng.integers(150, 666, shape) + 1) / 2048 if exact else rng.uniform(0.15, 0.65, shape)


def spikeforge_network(key: str, seed: int, exact: bool, reset: str = "zero") -> Network:
    """A seeded float32 network of :data:`NETWORKS` with random weights and thresholds."""
    arch, shape = NETWORKS[key]
    switches = {"threshold": "fixed"} if reset == "zero" else {}
    spec = NetworkSpec.parse(arch, input_shape=shape, timesteps=TIMESTEPS, decoder="rate", reset=reset, **switches)
    net = Network(spec, seed=seed, dtype=np.float32)
    rng = np.random.default_rng(seed)
    for weight in net.weights:
        weight[...] = _values(rng, weight.shape, exact, "weight")
    for vth in net.thresholds:
        vth[...] = _values(rng, vth.shape, exact, "threshold")
    return net


def _mismatch(theirs: list[np.ndarray], ours: list[np.ndarray]) -> tuple[int, int]:
    """(spikes that differ, spikes emitted by spikeforge) over all layers."""
    differ = sum(int(np.sum(a != b)) for a, b in zip(theirs, ours, strict=True))
    return differ, sum(int(b.sum()) for b in ours)


def _spiking(net: Network, trace_spikes: list[np.ndarray]) -> list[np.ndarray]:
    return [trace_spikes[index] for index in net.spec.spiking_layers()]


def spikeforge_to_norse(key: str, seed: int, exact: bool, batch: int = 4) -> dict[str, Any]:
    """Run a spikeforge export in Norse; spike mismatches over every spiking layer."""
    import torch
    from norse.torch import from_nir
    from norse.torch.module.iaf import IAFCell

    net = spikeforge_network(key, seed, exact)
    x = _values(np.random.default_rng(seed + 1), (batch, *net.spec.input_shape), exact, "input").astype(np.float32)
    ours = _spiking(net, net.forward(x).spikes)
    model = from_nir(nir_io.network_to_graph(net, pool="sum"))
    cells = [module for module in model.modules() if isinstance(module, IAFCell)]
    recorded: dict[int, list] = {id(cell): [] for cell in cells}
    for cell in cells:
        cell.register_forward_hook(lambda module, args, out: recorded[id(module)].append(out[0].numpy()))
    with torch.no_grad():
        for sample in x:  # Norse's Flatten counts the batch dimension: one sample at a time
            state = None
            for _ in range(net.spec.timesteps):
                _, state = model(torch.from_numpy(sample), state)
    steps, layers = net.spec.timesteps, len(cells)
    theirs = [
        np.stack(recorded[id(cell)]).reshape(batch, steps, *ours[i].shape[2:]).swapaxes(0, 1)
        for i, cell in enumerate(cells[:layers])
    ]
    differ, total = _mismatch(theirs, ours)
    return {"check": f"spikeforge->norse {key}", "mismatches": differ, "spikes": total}


def norse_to_spikeforge(seed: int, exact: bool, batch: int = 4) -> dict[str, Any]:
    """A Norse IAF network exported to NIR, imported by spikeforge; output spike mismatches."""
    import torch
    from norse.torch import SequentialState, to_nir
    from norse.torch.functional.iaf import IAFParameters
    from norse.torch.module.iaf import IAFCell

    rng = np.random.default_rng(seed)
    sizes = (16, 24, 10)

    def cell(n: int) -> IAFCell:
        return IAFCell(IAFParameters(v_th=torch.tensor(_values(rng, (n,), exact, "threshold"), dtype=torch.float32)))

    layers: list[torch.nn.Module] = [cell(sizes[0])]
    for n_in, n_out in itertools.pairwise(sizes):
        linear = torch.nn.Linear(n_in, n_out, bias=False)
        linear.weight.data = torch.tensor(_values(rng, (n_out, n_in), exact, "weight"), dtype=torch.float32)
        layers += [linear, cell(n_out)]
    model = SequentialState(*layers)
    graph = to_nir(model, torch.zeros(sizes[0]))
    result = nir_io.graph_to_network(graph, timesteps=TIMESTEPS)
    x = _values(rng, (batch, sizes[0]), exact, "input").astype(np.float32)
    state, outputs = None, []
    with torch.no_grad():
        for _ in range(TIMESTEPS):
            out, state = model(torch.from_numpy(x), state)
            outputs.append(out.numpy())
    ours = result.network.forward(x).spikes[-1]
    differ, total = _mismatch([np.stack(outputs)], [ours])
    return {"check": "norse->spikeforge fc", "mismatches": differ, "spikes": total, "reset": result.network.spec.reset}


def snntorch_to_spikeforge(
    reset: str, seed: int, exact: bool, batch: int = 4, *, import_reset: str | None = None
) -> dict[str, Any]:
    """snnTorch ``Leaky(beta=1)`` layers exported to NIR, imported with ``reset`` (or
    ``import_reset``); output mismatches."""
    import snntorch
    import torch
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    rng = np.random.default_rng(seed)
    sizes = (16, 24, 10)

    def leaky(n: int) -> torch.nn.Module:
        vth = torch.tensor(_values(rng, (n,), exact, "threshold"), dtype=torch.float32)
        return snntorch.Leaky(beta=torch.ones(n), threshold=vth, reset_mechanism=reset, init_hidden=True)

    layers: list[torch.nn.Module] = [leaky(sizes[0])]
    for n_in, n_out in itertools.pairwise(sizes):
        linear = torch.nn.Linear(n_in, n_out, bias=False)
        linear.weight.data = torch.tensor(_values(rng, (n_out, n_in), exact, "weight"), dtype=torch.float32)
        layers += [linear, leaky(n_out)]
    model = torch.nn.Sequential(*layers)
    with warnings.catch_warnings():  # tau = dt / (1 - beta) divides by zero for beta = 1
        warnings.simplefilter("ignore", RuntimeWarning)
        graph = export_to_nir(model, torch.zeros(sizes[0]))
    result = nir_io.graph_to_network(graph, reset=import_reset or reset, timesteps=TIMESTEPS)
    x = _values(rng, (batch, sizes[0]), exact, "input").astype(np.float32)
    utils.reset(model)
    with torch.no_grad():
        outputs = [model(torch.from_numpy(x)).numpy() for _ in range(TIMESTEPS)]
    ours = result.network.forward(x).spikes[-1]
    differ, total = _mismatch([np.stack(outputs)], [ours])
    return {"check": f"snntorch->spikeforge fc reset {reset}", "mismatches": differ, "spikes": total}


def spikeforge_to_snntorch(seed: int) -> dict[str, Any]:
    """What ``snntorch.import_nir.import_from_nir`` makes of a spikeforge file (it does not run)."""
    import torch
    from snntorch.import_nir import import_from_nir

    net = spikeforge_network("fc", seed, exact=True)
    for vth in net.thresholds:
        vth[...] = 0.5  # snnTorch's importer asserts one threshold per layer
    with contextlib.redirect_stdout(io.StringIO()):  # the importer prints its progress
        model = import_from_nir(nir_io.network_to_graph(net))
    neurons = {name: module for name, module in model.named_children() if hasattr(module, "beta")}
    first = next(iter(neurons.values()))
    found = f"IF -> Leaky(beta={float(first.beta):.2f}, reset {first.reset_mechanism})"
    try:
        with torch.no_grad():
            model(torch.zeros(1, *net.spec.input_shape))
        runs = "runs"
    except Exception as error:  # noqa: BLE001 - the peer's failure is the finding
        runs = f"does not run: {type(error).__name__}: {str(error).splitlines()[0]}"
    return {"check": "spikeforge->snntorch fc", "mismatches": None, "spikes": None, "result": f"{found}; {runs}"}


def run_all(seeds: int, exact: bool) -> list[dict[str, Any]]:
    """Every check over ``seeds`` seeds; mismatches and spikes summed over the seeds."""
    checks: list[Callable[[int], dict[str, Any]]] = [
        lambda seed: spikeforge_to_norse("fc", seed, exact),
        lambda seed: spikeforge_to_norse("conv", seed, exact),
        lambda seed: norse_to_spikeforge(seed, exact),
        lambda seed: snntorch_to_spikeforge("zero", seed, exact),
        lambda seed: snntorch_to_spikeforge("subtract", seed, exact),
    ]
    rows = []
    for check in checks:
        results = [check(seed) for seed in range(seeds)]
        rows.append({
            "check": results[0]["check"],
            "mismatches": sum(r["mismatches"] for r in results),
            "spikes": sum(r["spikes"] for r in results),
            "seeds": seeds,
        })
    rows.append(spikeforge_to_snntorch(0))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nir_peers", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=bounded_int(1), default=20, help="random networks per check (default 20)")
    parser.add_argument("--exact", action="store_true", help="dyadic values: float sums exact, no ties")
    parser.add_argument("--json", metavar="FILE", help="write versions and rows here")
    args = parser.parse_args(argv)
    found = versions()
    missing = [name for name in ("torch", "norse", "snntorch", "nirtorch") if found[name] is None]
    if missing:
        print(f"nir_peers: {', '.join(missing)} not installed; install the peers extra: pip install -e \".[peers]\"", file=sys.stderr)
        return 2
    rows = run_all(args.seeds, args.exact)
    print("versions: " + ", ".join(f"{name} {version}" for name, version in found.items()))
    for row in rows:
        if row["mismatches"] is None:
            print(f"{row['check']}: {row['result']}")
        else:
            print(f"{row['check']}: {row['mismatches']} of {row['spikes']} spikes differ ({row['seeds']} seeds)")
    if args.json:
        Path(args.json).write_text(json.dumps({"versions": found, "exact": args.exact, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
