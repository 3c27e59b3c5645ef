"""Co-simulation harness of the whole core: the core plus a trace buffer per memory.

Comparing the core with :class:`model.core.CoreModel` write by write must not cost Python
work every clock cycle (cocotb wakes up at about 40,000 cycles/s at best on this kind of
machine). So the harness top :class:`CoreHarness` records every memory write in hardware:
one :data:`TRACE_BUFFER` instance per memory (a circular buffer of ``2^depth_bits``
entries, :func:`entry_layout`) captures the core's ``trace_bus`` whenever that memory's
write port has a lane enabled, and ``trace_crossings`` counts the times any buffer fills
another half. The bench sleeps until the result is offered or ``trace_crossings``
changes, then reads the new entries of every buffer directly from the simulator (arrays
are visible through VPI), so no buffer is ever overwritten before it is read.

The buffer is plain Verilog (:data:`TRACE_BUFFER`, no ``initial`` block, so it costs no
simulator start-up) instantiated from Amaranth; :func:`harness_verilog` returns the whole
text with the two Verilator lint waivers that Amaranth's generated Verilog needs
(:data:`hw.core_export.LINT_WAIVERS`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from amaranth.back import verilog
from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Instance, Module, ResetSignal, Signal, unsigned
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import Out

from hw.controller import Phase
from hw.core import Core
from hw.core_config import COUNTER_BITS, CoreConfig, MemorySpec
from hw.core_export import LINT_WAIVERS

__all__ = [
    "DEPTH_BITS",
    "TOP",
    "TRACE_BUFFER",
    "CoreHarness",
    "buffer_name",
    "entry_layout",
    "harness_verilog",
    "retrigger_time_zero",
]

#: Top module name of the harness.
TOP = "core_harness"
#: Entries of each trace buffer: 2^DEPTH_BITS.
DEPTH_BITS = 10

#: The trace buffer: ``count`` entries written so far (entry n at ``entries[n mod 2^D]``);
#: ``crossed`` is high in the cycle whose write completes another half of the buffer.
TRACE_BUFFER = """
module spikeforge_trace_buffer #(
    parameter WIDTH = 1,
    parameter DEPTH_BITS = 10
) (
    input wire clk,
    input wire rst,
    input wire en,
    input wire [WIDTH-1:0] data,
    output wire crossed
);
  reg [31:0] count /*verilator public_flat_rd*/;
  reg [WIDTH-1:0] entries [0:(1 << DEPTH_BITS) - 1] /*verilator public_flat_rd*/;
  always @(posedge clk) begin
    if (rst) begin
      count <= 32'd0;
    end else if (en) begin
      entries[count[DEPTH_BITS-1:0]] <= data;
      count <= count + 32'd1;
    end
  end
  assign crossed = en && (count[DEPTH_BITS-2:0] == {(DEPTH_BITS-1){1'b1}});
endmodule
"""


def buffer_name(spec: MemorySpec) -> str:
    """Verilog instance name of the trace buffer of memory ``spec`` (``trace_<key>``)."""
    return f"trace_{spec.key}"


def entry_layout(config: CoreConfig, spec: MemorySpec) -> data.StructLayout:
    """One trace-buffer entry: ``mask``, ``addr``, ``data``, ``t``, ``phase``, ``cycle``."""
    return data.StructLayout({
        "mask": unsigned(spec.lanes),
        "addr": unsigned(spec.address_bits),
        "data": unsigned(spec.word_bits),
        "t": range(config.timesteps + 1),
        "phase": Phase,
        "cycle": unsigned(COUNTER_BITS),
    })


class CoreHarness(wiring.Component):
    """:class:`hw.core.Core` (with its trace bus) and one trace buffer per memory.

    Parameters
    ----------
    config : CoreConfig
    init : mapping, optional
        Initial memory contents (:meth:`CoreConfig.initial_contents`).
    depth_bits : int
        Trace-buffer entries ``2^depth_bits`` (2 or more).

    Members
    -------
    The core's ``pixels`` and ``result`` (each through a three-entry FIFO), ``done``,
    ``busy``, ``host``, ``counter_select``, ``counter_value``, and
    ``trace_crossings : Out(32)``.
    """

    def __init__(
        self, config: CoreConfig, *, init: Mapping[str, Sequence[Sequence[int]]] | None = None,
        depth_bits: int = DEPTH_BITS,
    ) -> None:
        self.config = config
        self.core = Core(config, init=init, trace=True)
        self.depth_bits = depth_bits
        members = self.core.signature.members
        super().__init__({
            **{name: members[name] for name in (
                "pixels", "result", "done", "busy", "host", "counter_select", "counter_value"
            )},
            "trace_crossings": Out(COUNTER_BITS),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        # Everything runs in the domain "core", whose reset is the bench's reset registered:
        # with the top-level reset input in their next-state logic, Verilator would evaluate
        # all registers' inputs again whenever the bench writes a signal (every clock edge).
        m.domains.core = domain = ClockDomain("core", local=True)
        reset = Signal(init=1)
        m.d.sync += reset.eq(0)
        m.d.comb += [domain.clk.eq(ClockSignal()), domain.rst.eq(reset)]
        core = self.core
        m.submodules.core = DomainRenamer("core")(core)
        # The streams pass through three-entry FIFOs: the core's controller sees registered
        # handshakes only, so Verilator need not re-evaluate its next-state logic (and
        # everything feeding it) whenever a bench input or the clock toggles. The FIFOs add
        # latency outside the samples' cycles.
        for name, source, sink in (("pixels_fifo", self.pixels, core.pixels), ("result_fifo", core.result, self.result)):
            queue = fifo.SyncFIFOBuffered(width=len(source.payload.as_value()), depth=3)
            m.submodules[name] = DomainRenamer("core")(queue)
            m.d.comb += [
                queue.w_stream.valid.eq(source.valid),
                queue.w_stream.payload.eq(source.payload.as_value()),
                source.ready.eq(queue.w_stream.ready),
                sink.valid.eq(queue.r_stream.valid),
                sink.payload.as_value().eq(queue.r_stream.payload),
                queue.r_stream.ready.eq(sink.ready),
            ]
        wiring.connect(m, wiring.flipped(self.host), core.host)
        m.d.comb += [
            self.done.eq(core.done),
            self.busy.eq(core.busy),
            core.counter_select.eq(self.counter_select),
            self.counter_value.eq(core.counter_value),
        ]

        # Monitors: one trace buffer per memory write port
        bus = core.trace_bus
        crossings = []
        for spec in self.config.memories:
            port = bus[spec.key]
            entry = Signal(entry_layout(self.config, spec), name=f"entry_{spec.key}")
            m.d.comb += [
                entry.mask.eq(port.en),
                entry.addr.eq(port.addr),
                entry.data.eq(port.data),
                entry.t.eq(bus.t),
                entry.phase.eq(bus.phase),
                entry.cycle.eq(bus.cycle),
            ]
            crossed = Signal(name=f"crossed_{spec.key}")
            m.submodules[buffer_name(spec)] = Instance(
                "spikeforge_trace_buffer",
                p_WIDTH=len(entry.as_value()),
                p_DEPTH_BITS=self.depth_bits,
                i_clk=ClockSignal("core"),
                i_rst=ResetSignal("core"),
                i_en=port.en.any(),
                i_data=entry.as_value(),
                o_crossed=crossed,
            )
            crossings.append(crossed)
        total = sum(crossings[1:], crossings[0])
        m.d.core += self.trace_crossings.eq(self.trace_crossings + total)
        return m


#: An input port declaration of Amaranth's Verilog (``input [7:0] name;``).
_INPUT = re.compile(r"^(\s*input (?:\[\d+:0\] )?\S+);$", re.MULTILINE)
#: The register Amaranth's Verilog uses to run every ``always @*`` block once at time 0.
_TIME_ZERO = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\S*)\s+= 0;$", re.MULTILINE)


def retrigger_time_zero(text: str) -> str:
    """Make Icarus evaluate every ``always @*`` block after time 0.

    Amaranth's Verilog gives each module a register initialised to 0 and read by all its
    ``always @*`` blocks, so that they run once at time 0. In Icarus Verilog the
    initialisation can happen before the blocks wait on it, and a block whose other inputs
    never change (e.g. outputs decoded from an FSM that stays in its reset state) keeps X.
    Toggling the register at 1 ps, before the first clock edge, runs them all.
    """
    return _TIME_ZERO.sub(lambda match: f"{match[0]}\n{match[1]}initial #1 {match[2]} = 1'b1;", text)


def harness_verilog(
    config: CoreConfig, init: Mapping[str, Sequence[Sequence[int]]] | None = None,
    *, simulator: str = "verilator", depth_bits: int = DEPTH_BITS,
) -> str:
    """The harness's complete Verilog (top :data:`TOP`, the trace buffer module appended).

    For ``simulator="icarus"`` the time-zero evaluation is fixed up
    (:func:`retrigger_time_zero`).
    """
    harness = CoreHarness(config, init=init, depth_bits=depth_bits)
    text = verilog.convert(harness, name=TOP, emit_src=False)
    # The bench sees only the harness top (read-only, its inputs writable) and the trace
    # buffers (read-only), so Verilator may optimise the core itself (builds use
    # sim.runner.build(public=False)). A writable signal would make Verilator re-evaluate
    # everything it feeds whenever the clock toggles.
    start = text.index(f"module {TOP}(")
    end = text.index("\nmodule ", start)
    top = _INPUT.sub(r"\1 /*verilator public_flat_rw*/;", text[start:end])
    text = f"{text[:start]}/*verilator public_flat_rd_on*/\n{top}\n/*verilator public_off*/{text[end:]}"
    text = LINT_WAIVERS + text + TRACE_BUFFER
    return retrigger_time_zero(text) if simulator == "icarus" else text

