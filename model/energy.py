"""Energy estimates from the core model's counters: named per-event tables with sources.

An energy figure is ``sum over events of count x cost``, the counts being the core model's
(:class:`model.core.LayerCounters`) and the costs coming from a named
:class:`EnergyTable`. Tables carry their source. They differ in what they price:

* ``spikes``: the paper's unit-free metric, one unit per spike (unit ``spike``);
* ``odin`` / ``reckon``: published energy per synaptic operation of two 28 nm
  on-line-learning cores; everything else is folded into that figure (unpriced here);
* ``loihi``: Loihi's pre-silicon per-event energies (14 nm): synaptic op, neuron update
  (active / idle), spike, synaptic (weight) update;
* ``horowitz45``: 45 nm primitive costs (integer adds and multiplies by width, SRAM bits),
  composed into the core's events from the integer formats, memory accesses included.

No peer publishes the cost of the backward-pass events (dot-product MACs, eq. 15
multiplies, accumulator adds); only ``horowitz45`` prices them. :func:`estimate_energy`
lists the events a table leaves unpriced.

NeuroBench names (:func:`neurobench_metrics`): ``Effective_ACs`` (synaptic accumulates per
sample), ``Effective_MACs`` (0: the forward pass has no multiplies), ``Dense`` (the
synaptic operations of a dense network), ``ActivationSparsity`` and ``Footprint`` (bytes
of parameters at the stored widths).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from model import metrics
from model.core import PHASES, CoreCounters, CoreModel, LayerCounters
from model.fixed import ceil_log2
from model.integer import Formats

__all__ = [
    "EVENTS",
    "TABLES",
    "EnergyReport",
    "EnergyTable",
    "event_counts",
    "estimate_energy",
    "get_table",
    "horowitz_add",
    "horowitz_multiply",
    "neurobench_metrics",
]

#: Priced events: counter names of :class:`~model.core.LayerCounters` plus SRAM bits.
EVENTS = (
    "spikes",
    "synaptic_ops",
    "active_neuron_updates",
    "idle_neuron_updates",
    "dot_macs",
    "mux_ops",
    "dw_adds",
    "dvth_adds",
    "weight_updates",
    "threshold_updates",
    "reciprocals",
    "sram_read_bits",
    "sram_write_bits",
)

#: Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
#: 45 nm at 0.9 V: integer add / multiply by width (pJ) and a 64-bit read of an 8 KB SRAM.
HOROWITZ_45NM = MappingProxyType({
    "add8": 0.03,
    "add16": 0.05,
    "add32": 0.1,
    "mult8": 0.2,
    "mult32": 3.1,
    "sram8kb_read64": 10.0,
})


def horowitz_add(bits: int) -> float:
    """pJ of a ``bits``-wide integer add: the listed 8/16/32-bit figure of the next width up,
    linear in the width beyond 32 bits."""
    if bits <= 8:
        return HOROWITZ_45NM["add8"]
    if bits <= 16:
        return HOROWITZ_45NM["add16"]
    return HOROWITZ_45NM["add32"] * max(bits, 32) / 32


def horowitz_multiply(a: int, b: int) -> float:
    """pJ of an ``a x b``-bit integer multiply: the 8x8 figure scaled by the partial-product
    bits ``a*b/64`` (the same rule gives 3.2 pJ for 32x32 against the listed 3.1)."""
    return HOROWITZ_45NM["mult8"] * a * b / 64


@dataclass(frozen=True)
class EnergyTable:
    """Per-event energies with their source.

    Parameters
    ----------
    name : str
        Table name (``--table``).
    unit : str
        ``"pJ"``, or ``"spike"`` for the unit-free spike count.
    source : str
        Where the figures come from.
    costs : mapping of str to float
        Fixed cost per event (:data:`EVENTS` names); ignored when ``derived``.
    derived : bool
        Costs follow from the integer formats through the Horowitz 45 nm primitives
        (:meth:`event_costs`).
    """

    name: str
    unit: str
    source: str
    costs: Mapping[str, float] = field(default_factory=dict)
    derived: bool = False

    def event_costs(self, formats: Formats, *, fan_out: int, index_bits: int) -> dict[str, float]:
        """Cost of each priced event for networks with ``formats``.

        Parameters
        ----------
        fan_out : int
            Largest fan-out (sets the width of the exact dot-product accumulator).
        index_bits : int
            Width of a spike-queue entry (one SRAM write and one read per spike).
        """
        if not self.derived:
            return dict(self.costs)
        f = formats
        bit = HOROWITZ_45NM["sram8kb_read64"] / 64
        acc_bits = f.g + f.w + ceil_log2(max(fan_out, 1))
        return {
            "spikes": 2 * index_bits * bit,
            "synaptic_ops": horowitz_add(f.v),
            # compare V >= Vth, the window 2|V - Vth| < Vth, reset-by-subtraction
            "active_neuron_updates": 3 * horowitz_add(f.v),
            "idle_neuron_updates": 3 * horowitz_add(f.v),
            "dot_macs": horowitz_multiply(f.g, f.w) + horowitz_add(acc_bits),
            "mux_ops": horowitz_multiply(acc_bits, f.k + 1),
            "dw_adds": horowitz_add(f.dw),
            "dvth_adds": horowitz_add(f.dth),
            "weight_updates": horowitz_add(f.dw + 1) + horowitz_add(f.w),
            "threshold_updates": horowitz_add(f.dth + 1) + horowitz_add(f.v - 1),
            # restoring division: one v-bit subtract per quotient bit
            "reciprocals": (f.k + 1) * horowitz_add(f.v),
            "sram_read_bits": bit,
            "sram_write_bits": bit,  # assumed equal to a read
        }

    def to_dict(self, costs: Mapping[str, float] | None = None) -> dict[str, Any]:
        """JSON-ready description (``costs``: the resolved per-event costs, if known)."""
        return {
            "name": self.name,
            "unit": self.unit,
            "source": self.source,
            "costs": dict(costs if costs is not None else self.costs),
        }


#: The named tables (``--table``).
TABLES: Mapping[str, EnergyTable] = MappingProxyType({
    "spikes": EnergyTable(
        "spikes", "spike",
        "Tan, Wu & Lu, enhanced STBP: spikes per inference, the paper's unit-free energy proxy",
        {"spikes": 1.0},
    ),
    "odin": EnergyTable(
        "odin", "pJ",
        "Frenkel et al., IEEE TBioCAS 13(1), 2019, ODIN (28 nm FDSOI, silicon): 12.7 pJ per "
        "synaptic operation, all core energy folded in",
        {"synaptic_ops": 12.7},
    ),
    "reckon": EnergyTable(
        "reckon", "pJ",
        "Frenkel & Indiveri, ISSCC 2022, ReckOn (28 nm, silicon): 5.3 pJ per synaptic "
        "operation, all core energy folded in",
        {"synaptic_ops": 5.3},
    ),
    "loihi": EnergyTable(
        "loihi", "pJ",
        "Davies et al., IEEE Micro 38(1), 2018, Loihi (14 nm, pre-silicon): 23.6 pJ per "
        "synaptic spike op, 81 / 52 pJ per active / inactive neuron update, 1.7 pJ per "
        "within-tile spike, 120 pJ per synaptic update (taken for each weight update)",
        {
            "synaptic_ops": 23.6,
            "active_neuron_updates": 81.0,
            "idle_neuron_updates": 52.0,
            "spikes": 1.7,
            "weight_updates": 120.0,
        },
    ),
    "horowitz45": EnergyTable(
        "horowitz45", "pJ",
        "Horowitz, ISSCC 2014 (45 nm, 0.9 V): integer add 0.03 / 0.05 / 0.1 pJ (8 / 16 / "
        "32 bit), multiply 0.2 pJ (8x8, scaled by partial-product bits), 10 pJ per 64-bit "
        "read of an 8 KB SRAM (writes taken equal), composed at the core's stored widths",
        derived=True,
    ),
})


def get_table(name: str) -> EnergyTable:
    """The table called ``name``.

    Raises
    ------
    ValueError
        ``table: 'x' is not one of ...`` for an unknown name.
    """
    if name not in TABLES:
        raise ValueError(f"table: {name!r} is not one of {', '.join(TABLES)}")
    return TABLES[name]


def event_counts(layer: LayerCounters, core: CoreModel) -> dict[str, int]:
    """Counts of every :data:`EVENTS` entry in one layer's counters (SRAM bits from words)."""
    counts = {name: int(getattr(layer, name)) for name in EVENTS[:-2]}
    counts["sram_read_bits"] = sum(n * core.word_bits(m) for m, n in layer.words_read.items())
    counts["sram_write_bits"] = sum(n * core.word_bits(m) for m, n in layer.words_written.items())
    return counts


@dataclass
class EnergyReport:
    """Energy of a run of the core, per phase and layer, in the table's unit.

    Attributes
    ----------
    table : EnergyTable
    costs : dict of str to float
        Resolved cost per event.
    by_phase : dict of str to list of float
        Energy of each phase, per layer (encoder first), over all merged samples.
    unpriced : list of str
        Events that occurred but the table does not price.
    samples : int
        Samples merged into the counters.
    """

    table: EnergyTable
    costs: dict[str, float]
    by_phase: dict[str, list[float]]
    unpriced: list[str]
    samples: int

    def total(self, phases: Sequence[str] = PHASES) -> float:
        """Energy of ``phases`` over all layers and samples."""
        return float(sum(sum(self.by_phase.get(name, [])) for name in phases))

    def per_sample(self, phases: Sequence[str] = PHASES) -> float:
        """Energy of ``phases`` per sample."""
        return self.total(phases) / max(self.samples, 1)

    def per_layer(self, phases: Sequence[str] = PHASES) -> list[float]:
        """Energy per sample of each layer over ``phases``."""
        layers = max((len(v) for v in self.by_phase.values()), default=0)
        out = [0.0] * layers
        for name in phases:
            for index, value in enumerate(self.by_phase.get(name, [])):
                out[index] += value
        return [value / max(self.samples, 1) for value in out]


def estimate_energy(counters: CoreCounters, core: CoreModel, table: EnergyTable) -> EnergyReport:
    """Energy of ``counters`` (one or more samples of ``core``) under ``table``."""
    fan_out = max(syn.fan_out for syn in core.synapses.values())
    index_bits = max(core.index_bits(index) for index in core.spiking())
    costs = table.event_costs(core.formats, fan_out=fan_out, index_bits=index_bits)
    by_phase: dict[str, list[float]] = {}
    seen: set[str] = set()
    for name in PHASES:
        if name not in counters.phases:
            continue
        energies = []
        for layer in counters.phases[name].layers:
            counts = event_counts(layer, core)
            seen.update(event for event, n in counts.items() if n)
            energies.append(float(sum(n * costs.get(event, 0.0) for event, n in counts.items())))
        by_phase[name] = energies
    unpriced = [event for event in EVENTS if event in seen and event not in costs]
    return EnergyReport(table, costs, by_phase, unpriced, counters.samples)


def neurobench_metrics(
    core: CoreModel, unit_counts: Sequence[Any], samples: int
) -> dict[str, float | int]:
    """NeuroBench-named metrics of an inference run.

    Parameters
    ----------
    core : CoreModel
    unit_counts : sequence of numpy.ndarray
        Spikes per unit summed over T and the samples, one array per layer (encoder first).
    samples : int
        Inferences behind ``unit_counts``.

    Returns
    -------
    dict
        ``Effective_ACs`` and ``Dense`` per sample, ``Effective_MACs`` (0),
        ``ActivationSparsity`` (0..1) and ``Footprint`` (bytes).
    """
    spec = core.spec
    per_layer = metrics.spikes_per_layer(spec, unit_counts, samples)
    acs = sum(metrics.synaptic_ops_per_layer(spec, unit_counts, samples))
    dense = spec.timesteps * sum(int(metrics.synaptic_fanout(spec, index).sum()) for index in core.spiking())
    return {
        "Effective_ACs": float(acs),
        "Effective_MACs": 0.0,
        "Dense": float(dense),
        "ActivationSparsity": metrics.activation_sparsity(spec, per_layer),
        "Footprint": math.ceil(core.footprint_bits() / 8),
    }
