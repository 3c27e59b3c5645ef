"""The neuron lanes of the forward engines: P :class:`hw.neuron.NeuronLane` units, and the
integrate pipeline behind an engine's W and V reads (shared by the FC and the conv
integrate engines, :class:`hw.core.integrate.IntegrateEngine` and
:class:`hw.core.taps.TapIntegrateEngine`)."""

from __future__ import annotations

from collections.abc import Mapping

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import wiring

from hw.core.walk import delay, per_layer, row_lanes
from hw.core_config import CoreConfig
from hw.neuron import NeuronLane
from model.core import INTEGRATE_LATENCY
from model.units import NeuronOp

__all__ = ["OPERAND_DELAY", "integrate_datapath", "neuron_lanes"]

#: Cycles from a read to its operand register (the data, then the register): the neuron
#: lanes take the words then.
OPERAND_DELAY = 2


def neuron_lanes(m: Module, config: CoreConfig, name: str) -> list[NeuronLane]:
    """P neuron lanes, always ready for their results."""
    f = config.formats
    units = []
    for x in range(config.lanes):
        unit = NeuronLane(w=f.w, v=f.v)
        m.submodules[f"{name}{x}"] = unit
        m.d.comb += unit.result.ready.eq(1)
        units.append(unit)
    return units


def integrate_datapath(
    m: Module, config: CoreConfig, layers: Mapping[int, int], stage: Value, name: str, w: wiring.PureInterface,
    v: wiring.PureInterface, *, reading: Value, target: Value | None = None, row_word: Value | None = None,
) -> Value:
    """An integrate engine's pipeline behind its reads (``reading``: the W word and the V
    word ``target`` asked for this cycle, ``row_word`` the W word's place in its row): the
    words read, registered (the operand register), P :class:`NeuronLane` adds with
    saturation, and the write of their results to ``target`` in the lanes of ``row_word``
    (:func:`hw.core.walk.row_lanes`), ``INTEGRATE_LATENCY`` cycles after the read. Without
    ``target`` every event reads its row's words in order, V word ``j`` with row word ``j``:
    the write's word is then counted by the writes (modulo the row's length), not carried
    from the read. ``layers`` holds the layers integrated into by the value of ``stage`` (the
    running stage) that picks each. Returns "no read and nothing in flight after this cycle"."""
    w_read = Signal.like(w.read_data, name=f"{name}_w_read")
    v_read = Signal.like(v.read_data, name=f"{name}_v_read")
    m.d.sync += [w_read.eq(w.read_data), v_read.eq(v.read_data)]
    valid = delay(m, reading, OPERAND_DELAY, f"{name}_valid")[-1]
    units = neuron_lanes(m, config, f"{name}_lane")
    for x, unit in enumerate(units):
        m.d.comb += [
            unit.operand.valid.eq(valid),
            unit.operand.payload.op.eq(NeuronOp.INTEGRATE),
            unit.operand.payload.v.eq(v_read[x]),
            unit.operand.payload.x.eq(w_read[x]),
        ]
    writing = units[0].result.valid
    if target is None:
        costs = {key: config.row_words(layer) for key, layer in layers.items()}
        write_target = write_row_word = Signal(range(max(*costs.values(), 2)), name=f"{name}_written_word")
        last = per_layer(stage, {key: cost - 1 for key, cost in costs.items()}, len(write_target))
        with m.If(writing):
            m.d.sync += write_target.eq(Mux(write_target == last, 0, write_target + 1))
    else:
        write_target = delay(m, target, INTEGRATE_LATENCY, f"{name}_target")[-1]
        write_row_word = delay(m, row_word, INTEGRATE_LATENCY, f"{name}_row_word")[-1]
    lanes = per_layer(stage, {key: row_lanes(config, layer, write_row_word) for key, layer in layers.items()}, config.lanes)
    m.d.comb += [
        v.write_addr.eq(write_target),
        v.write_mask.eq(Mux(writing, lanes, 0)),
        v.write_data.eq(Cat(unit.result.payload.v for unit in units)),
    ]
    in_flight = Signal(range(INTEGRATE_LATENCY + 2), name=f"{name}_in_flight")
    m.d.sync += in_flight.eq(in_flight + reading - writing)
    # Nothing in flight after this cycle and no read: in_flight == writing, by compares.
    return ~reading & Mux(writing, in_flight == 1, in_flight == 0)
