"""The core's controller: the schedule of one sample as a finite-state machine.

The controller sequences the passes of docs/architecture.md section 4 (clear, the forward
stages, readout, the backward passes and the update) and hands each one to the datapath
(:class:`hw.core.Core`) through a :class:`ControlSignature` interface: the pass
``kind``, its ``layer`` and step ``t``, and a ``first`` strobe in the pass's first cycle
(cycle 0, which issues the pass's first read). An engine raises ``done`` in the pass's last
cycle X (its last retire or write); the datapath registers each engine's ``done`` and
answers the controller's ``done`` from those registers in cycle X + 1, so the next pass
starts in cycle X + 2 (:data:`model.core.CONTROL_LATENCY` = 1), as the cycle formula of
section 5 counts. The datapath keeps every engine of the pass idle in cycle X + 1. The
pass ``kind``, ``layer``, ``t`` and ``first`` are registers: no path runs from the
controller's state decoding into the engines.

Around a sample the controller accepts the input stream (``w_0`` words of P pixels; the
label and the learn flag of the last word apply), and after the last pass offers the
result until it is accepted. Input and output handshakes lie outside the sample's cycles.
"""

from __future__ import annotations

from amaranth.lib import enum

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from model.checks import check_int

__all__ = ["ControlSignature", "Controller", "Pass", "Phase", "pass_layout"]


class Pass(enum.Enum, shape=4):
    """The pass the datapath runs (``IDLE`` between samples)."""

    IDLE = 0
    CLEAR = 1
    FORWARD = 2
    READOUT = 3
    CLEAR_DV = 4
    DV = 5
    DW = 6
    DVTH = 7
    UPDATE_W = 8
    UPDATE_TH = 9
    DECODE = 10
    DD = 11
    UPDATE_D = 12


class Phase(enum.Enum, shape=3):
    """Phases of a sample, in :data:`model.core.PHASES` order (trace and cycle counters)."""

    CLEAR = 0
    FORWARD = 1
    READOUT = 2
    BACKWARD = 3
    UPDATE = 4


#: The phase each pass belongs to.
PASS_PHASE = {
    Pass.CLEAR: Phase.CLEAR,
    Pass.FORWARD: Phase.FORWARD,
    Pass.READOUT: Phase.READOUT,
    Pass.CLEAR_DV: Phase.BACKWARD,
    Pass.DV: Phase.BACKWARD,
    Pass.DW: Phase.BACKWARD,
    Pass.DVTH: Phase.BACKWARD,
    Pass.UPDATE_W: Phase.UPDATE,
    Pass.UPDATE_TH: Phase.UPDATE,
    Pass.DECODE: Phase.READOUT,
    Pass.DD: Phase.BACKWARD,
    Pass.UPDATE_D: Phase.UPDATE,
}


class ControlSignature(wiring.Signature):
    """Controller -> datapath interface (members as the controller drives them).

    Parameters
    ----------
    layers : int
        L.
    timesteps : int
        T.

    Members
    -------
    kind : ``Out(Pass)``
        The running pass (``IDLE`` outside a sample).
    layer : ``Out(range(layers + 1))``
        Its layer (forward: the scanned layer).
    t : ``Out(range(timesteps + 1))``
        Its time step (forward 1..T, backward T..1).
    first : ``Out(1)``
        High in the pass's first cycle.
    start : ``Out(1)``
        High in the cycle before a sample's first cycle (clears per-sample state).
    done : ``In(1)``
        An engine's pass ends this cycle; the controller's: the running pass ended in the
        cycle before (registered by the datapath, ``CONTROL_LATENCY``).
    """

    def __init__(self, *, layers: int, timesteps: int) -> None:
        super().__init__({
            "kind": Out(Pass),
            "layer": Out(range(layers + 1)),
            "t": Out(range(timesteps + 1)),
            "first": Out(1),
            "start": Out(1),
            "done": In(1),
        })


def pass_layout(*, layers: int, timesteps: int) -> data.StructLayout:
    """The pass registers of :class:`ControlSignature` (``kind``, ``layer``, ``t``, ``first``)
    as one value: the controller's ``upcoming``."""
    return data.StructLayout({"kind": Pass, "layer": range(layers + 1), "t": range(timesteps + 1), "first": 1})


class Controller(wiring.Component):
    """The sample schedule (docs/architecture.md section 4) as an FSM.

    States, one per pass kind plus ``LOAD`` (accept input words) and ``OUTPUT`` (offer
    the result): ``LOAD -> CLEAR -> FORWARD (t = 1..T, layer 0..L) -> [DECODE (t =
    1..T)] -> READOUT`` and, for a learning sample, ``CLEAR_DV -> {[DD if layer = L], DV,
    DW if layer >= 1, DVTH if trainable and t >= 2} for t = T..1, layer L..first (layer 0
    not at t = 1)``, then, every B-th learning sample, ``UPDATE_W (layers 1..L) ->
    UPDATE_TH (layers 0..L, trainable) -> [UPDATE_D]``, and finally ``OUTPUT -> LOAD``
    (bracketed: the fc decoder's passes, layer L).

    Parameters
    ----------
    layers : int
        L, 1 or more.
    timesteps : int
        T, 1 or more.
    input_words : int
        ``w_0``: input words per sample.
    batch : int
        B, learning samples per update.
    learnable : bool
        Learning hardware exists (else the learn flag is ignored).
    trainable : bool
        Thresholds learn (DVTH passes, encoder dV, threshold updates).
    fc_decoder : bool
        The readout is the fc decoder (DECODE, DD and UPDATE_D passes).
    pending : int
        Reset value of the pending-sample counter, 0..B-1.

    Members
    -------
    control : ``Out(ControlSignature(layers=layers, timesteps=timesteps))``
        To the datapath.
    upcoming : ``Out(pass_layout(layers=layers, timesteps=timesteps))``
        The values ``control.kind``, ``layer``, ``t`` and ``first`` take in the next cycle
        (for engines that keep registered copies of their own).
    input_valid : ``In(1)``, input_ready : ``Out(1)``, input_learn : ``In(1)``
        The input stream's handshake and the learn flag of the offered word.
    word : ``Out(range(max(input_words, 2)))``
        Index of the input word offered now (its PIX address).
    learning : ``Out(1)``
        The sample running (or last run) learns.
    output_valid : ``Out(1)``, output_ready : ``In(1)``
        The result stream's handshake.
    busy : ``Out(1)``
        A sample's passes are running.
    pending : ``Out(range(max(batch, 2)))``
        Learning samples since the last update.
    pending_load : ``In(1)``, pending_value : ``In(range(max(batch, 2)))``
        Host write of the pending counter (honoured while idle).

    Raises
    ------
    TypeError, ValueError
        For a parameter that is not an integer or out of range (naming it).
    """

    def __init__(
        self, *, layers: int, timesteps: int, input_words: int, batch: int,
        learnable: bool, trainable: bool, fc_decoder: bool = False, pending: int = 0,
    ) -> None:
        self.layers = check_int("layers", layers, minimum=1)
        self.timesteps = check_int("timesteps", timesteps, minimum=1)
        self.input_words = check_int("input_words", input_words, minimum=1)
        self.batch = check_int("batch", batch, minimum=1)
        self.learnable = bool(learnable)
        self.trainable = bool(trainable)
        self.fc_decoder = bool(fc_decoder)
        self.pending_init = check_int("pending", pending, minimum=0, maximum=self.batch - 1)
        super().__init__({
            "control": Out(ControlSignature(layers=self.layers, timesteps=self.timesteps)),
            "upcoming": Out(pass_layout(layers=self.layers, timesteps=self.timesteps)),
            "input_valid": In(1),
            "input_ready": Out(1),
            "input_learn": In(1),
            "word": Out(range(max(self.input_words, 2))),
            "learning": Out(1),
            "output_valid": Out(1),
            "output_ready": In(1),
            "busy": Out(1),
            "pending": Out(range(max(self.batch, 2)), init=self.pending_init),
            "pending_load": In(1),
            "pending_value": In(range(max(self.batch, 2))),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        control = self.control
        last_layer = self.layers
        lowest = 0 if self.trainable else 1
        steps = self.timesteps

        # Control: every transition into a pass raises `first` for that pass's first cycle;
        # the pass kind is a register that follows the state. The registers take their
        # `upcoming` values (the defaults: first low, the others held).
        upcoming = self.upcoming
        first = Signal()
        m.d.comb += [control.first.eq(first), self.busy.eq(control.kind != Pass.IDLE)]
        layer, t = control.layer, control.t
        m.d.comb += [upcoming.kind.eq(control.kind), upcoming.layer.eq(layer), upcoming.t.eq(t), upcoming.first.eq(0)]
        m.d.sync += [
            control.kind.eq(upcoming.kind), layer.eq(upcoming.layer), t.eq(upcoming.t), first.eq(upcoming.first),
        ]
        # The datapath's done is registered (no path from a datapath result into the next
        # pass's state): a pass that ends in cycle X hands over in X + 1 and the next pass
        # starts in X + 2 (model.core.CONTROL_LATENCY). The register seen in a pass's first
        # cycle belongs to the pass before.
        done = control.done & ~first

        def go(state: str) -> None:
            """Next state ``state``; the pass kind follows (``IDLE`` for LOAD and OUTPUT)."""
            m.next = state
            m.d.comb += upcoming.kind.eq(Pass[state] if state in Pass.__members__ else Pass.IDLE)

        def enter(state: str, *, new_layer=None, new_t=None) -> None:
            go(state)
            m.d.comb += upcoming.first.eq(1)
            if new_layer is not None:
                m.d.comb += upcoming.layer.eq(new_layer)
            if new_t is not None:
                m.d.comb += upcoming.t.eq(new_t)

        def after_learning() -> None:
            """A learning sample's backward pass is over: update every B samples."""
            due = self.pending == self.batch - 1
            with m.If(due):
                m.d.sync += self.pending.eq(0)
                enter("UPDATE_W", new_layer=1)
            with m.Else():
                m.d.sync += self.pending.eq(self.pending + 1)
                go("OUTPUT")

        def output_layer_step(new_t) -> None:
            """Step ``new_t``'s passes of the output layer: DD first with the fc decoder."""
            enter("DD" if self.fc_decoder else "DV", new_layer=last_layer, new_t=new_t)

        def next_backward() -> None:
            """Layer below (skipping the encoder at t = 1), else the step before, else done."""
            below = layer - 1
            lower = (layer != lowest) & ~((below == 0) & (t == 1))
            earlier = t != 1
            with m.If(lower):
                enter("DV", new_layer=below)
            with m.Elif(earlier):
                output_layer_step(t - 1)
            with m.Else():
                after_learning()

        def after_update() -> None:
            """Weights and thresholds are updated: the fc decoder's rows, else the result."""
            if self.fc_decoder:
                enter("UPDATE_D", new_layer=last_layer)
            else:
                go("OUTPUT")

        def after_dw() -> None:
            if self.trainable and steps > 1:
                with m.If(t != 1):
                    enter("DVTH")
                with m.Else():
                    next_backward()
            else:
                next_backward()

        with m.FSM(init="LOAD"):
            with m.State("LOAD"):
                m.d.comb += self.input_ready.eq(1)
                with m.If(self.pending_load):
                    m.d.sync += self.pending.eq(self.pending_value)
                with m.If(self.input_valid):
                    with m.If(self.word == self.input_words - 1):
                        m.d.sync += [
                            self.word.eq(0),
                            self.learning.eq(self.input_learn if self.learnable else 0),
                        ]
                        m.d.comb += control.start.eq(1)
                        enter("CLEAR")
                    with m.Else():
                        m.d.sync += self.word.eq(self.word + 1)

            with m.State("CLEAR"):
                with m.If(done):
                    enter("FORWARD", new_layer=0, new_t=1)

            with m.State("FORWARD"):
                with m.If(done):
                    with m.If(layer != last_layer):
                        enter("FORWARD", new_layer=layer + 1)
                    with m.Elif(t != steps):
                        enter("FORWARD", new_layer=0, new_t=t + 1)
                    with m.Else():
                        if self.fc_decoder:
                            enter("DECODE", new_t=1)
                        else:
                            enter("READOUT")

            with m.State("DECODE"):
                with m.If(done):
                    with m.If(t != steps):
                        enter("DECODE", new_t=t + 1)
                    with m.Else():
                        enter("READOUT")

            with m.State("READOUT"):
                with m.If(done):
                    with m.If(self.learning):
                        enter("CLEAR_DV")
                    with m.Else():
                        go("OUTPUT")

            with m.State("CLEAR_DV"):
                with m.If(done):
                    output_layer_step(steps)

            with m.State("DD"):
                with m.If(done):
                    enter("DV")

            with m.State("DV"):
                with m.If(done):
                    with m.If(layer != 0):
                        enter("DW")
                    with m.Else():
                        after_dw()

            with m.State("DW"):
                with m.If(done):
                    after_dw()

            with m.State("DVTH"):
                with m.If(done):
                    next_backward()

            with m.State("UPDATE_W"):
                with m.If(done):
                    with m.If(layer != last_layer):
                        enter("UPDATE_W", new_layer=layer + 1)
                    with m.Else():
                        if self.trainable:
                            enter("UPDATE_TH", new_layer=0)
                        else:
                            after_update()

            with m.State("UPDATE_TH"):
                with m.If(done):
                    with m.If(layer != last_layer):
                        enter("UPDATE_TH", new_layer=layer + 1)
                    with m.Else():
                        after_update()

            with m.State("UPDATE_D"):
                with m.If(done):
                    go("OUTPUT")

            with m.State("OUTPUT"):
                m.d.comb += self.output_valid.eq(1)
                with m.If(self.output_ready):
                    go("LOAD")

        return m
