"""The dV engine: the eq. 15 mux of every layer's DV passes (docs/architecture.md section 5.3).

The bit-plane walker (:class:`hw.core.walk.Walker`) takes the neurons with ``h = 1`` of
``H^l[t]``. For a hidden or encoder neuron i it reads row i of ``W^{l+1}`` with
``dV^{l+1}``, one word per cycle (``c_{l+1}`` words); the words, registered, go through one
:class:`hw.dot_product.DotProductLane`. An output neuron's spatial sum is its class error
``e_c << E`` (where injected); with the fc decoder it is the dot product of the neuron's D
row at t (``c_D`` words) with the class errors, shifted by ``gf + fw - 2 df + G``
(numerics section 3.1), through the same dot-product lane. Either sum and the neuron's R (read after the event, lane
selected and registered) enter one :class:`hw.dv.DvUnit` (the partial products, their
sum, then shift and saturation), whose result is written into the neuron's lane of
``dV^l`` ``DV_LATENCY`` = 7 cycles after the event's last read:

    last read e | data e + 1 | operand registers e + 2 | the dot product's two stages,
    R read e + 3 | dot sum, R registered, e + 4: the dV unit's operand | e + 7: the write

The unit shifts by ``K_max = max(K, K_0)`` (the encoder's mux shift is ``K_0 = K - 8 + fw``);
a layer with a smaller shift ``K_l`` enters it shifted left by ``K_max - K_l``, so
``((acc << (K_max - K_l)) * R) >> K_max = (acc * R) >> K_l`` exactly.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from hw.controller import Pass
from hw.core.memory import MemoryEngine
from hw.core.readout import class_value_shape
from hw.core.grid_walk import GridWalks, event_reads
from hw.core.walk import Walker, by_layer, counter_shape, decoder_row_base, select, step_base, valid_lanes, wire
from hw.core_config import CoreConfig
from hw.dot_product import DotProductLane
from hw.dv import DvUnit
from model.core import DV_LATENCY
from model.integer import decoder_error_bits, decoder_error_sum_bits
from model.units import DOT_PRODUCT_LANE_LATENCY

__all__ = ["DvEngine", "error_bits", "error_layout", "error_target", "error_word", "grad_bits", "output_error"]


def error_bits(config: CoreConfig) -> int:
    """Width of an output error ``e_c = n_c - target`` (signed): a spike count's and one
    more; the fc decoder's, its bound ``T n_L 2^(w-1) + 2^df`` (the target can outweigh
    the sum) and a sign."""
    if config.fc_decoder:
        f = config.formats
        return decoder_error_bits(config.timesteps * config.sizes[-1], f.w, f.df) + 1
    return config.count_bits + 1


def grad_bits(config: CoreConfig) -> int:
    """Width of the dV operand of the dot-product lane and the gradient accumulator: g, or
    the class errors' when wider (the fc decoder feeds them in place of a dV)."""
    return max(config.formats.g, error_bits(config)) if config.fc_decoder else config.formats.g


def error_target(config: CoreConfig) -> int:
    """The label's class target: ``2^df`` (fc decoder), else the population (x T for the
    rate decoder)."""
    if config.fc_decoder:
        return 1 << config.formats.df
    return config.population * (config.timesteps if config.decoder == "rate" else 1)


def output_error(config: CoreConfig, value: Value, is_label: Value) -> Value:
    """The output error ``e_c = n_c - target x [c == label]`` of class value ``n_c``."""
    return value - Mux(is_label, error_target(config), 0)


def error_layout(config: CoreConfig) -> data.ArrayLayout:
    """The C output errors ``e_c`` (signed ``error_bits``)."""
    return data.ArrayLayout(signed(error_bits(config)), config.classes)


def error_word(config: CoreConfig, errors: Value, word: Value) -> list[Value]:
    """The P errors of ``word`` in a fc decoder row's layout (lane x: class ``word P + x``,
    0 beyond C)."""
    lanes = config.lanes
    none = Const(0, signed(error_bits(config)))
    padded = list(errors) + [none] * (config.decoder_words * lanes - config.classes)
    return [Array(padded[x::lanes])[word] for x in range(lanes)]


class DvEngine(MemoryEngine):
    """The DV passes of every layer that takes part (``first_backward_layer..L``).

    Members
    -------
    control : ``In(ControlSignature)``
        ``control.done`` (out) ends the pass.
    errors : ``In(ArrayLayout(signed(error_bits), C))`` (fc decoder)
        The output errors ``e_c``.
    counts : ``In(ArrayLayout(count_bits, C))``, label : ``In(class_bits)`` (other decoders)
        The class spike counts and the label: the error of the neuron's class is computed
        from its count (:func:`output_error`).
    h<l>, r<l> : ``Out(MemoryPortSignature)`` (read), dv<l> (written; read for l above the
    lowest), w<l> (read, l above the lowest), d<L> (read, the fc decoder).
    events : ``Out(1)``
        An event (a neuron with h = 1) starts this cycle (the window-event counter).
    """

    def __init__(self, config: CoreConfig) -> None:
        if config.fc_decoder:
            members = {"errors": In(error_layout(config))}
        else:
            members = {
                "counts": In(data.ArrayLayout(class_value_shape(config), config.classes)),
                "label": In(config.class_bits),
            }
        super().__init__(config, members | {"events": Out(1)})

    def memories(self) -> list[tuple[str, int]]:
        cfg = self.config
        layers = range(cfg.first_backward_layer, cfg.layers + 1)
        ports = [(name, layer) for layer in layers for name in ("H", "R", "DV")]
        ports += [("W", layer) for layer in layers if layer > cfg.first_backward_layer]
        return ports + ([("D", cfg.layers)] if cfg.fc_decoder else [])

    def access(self, name: str, layer: int) -> tuple[bool, bool]:
        if name == "DV":  # written; read as the layer above by the pass of the layer below
            return layer > self.config.first_backward_layer, True
        return True, False

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        f = cfg.formats
        lanes, layers, words = cfg.lanes, cfg.layers, cfg.words
        lowest = cfg.first_backward_layer
        control = self.control
        layer, first, t = control.layer, control.first, control.t

        dv_layers = range(lowest, layers + 1)
        hidden = range(lowest, layers)
        # The layers whose sums are dot products: the hidden ones, and the output layer's
        # with the fc decoder (its D row with the class errors). A flat layer's row is i c;
        # a grid layer's neuron reaches its consumer as an event (an FC row behind its pools,
        # or a conv event's in-image taps: an event of up to 9 c reads).
        dotted = list(hidden) + ([layers] if cfg.fc_decoder else [])
        grid = [i for i in dv_layers if cfg.grid(i)]
        tapped = [i for i in grid if cfg.grid(i + 1)]
        costs = {i: event_reads(cfg, i + 1) for i in hidden}
        costs[layers] = cfg.decoder_words if cfg.fc_decoder else 1
        walking = wire(m, control.kind == Pass.DV, "dv_active")
        issue, end = Signal(name="dv_issue"), Signal(name="dv_end")
        walks = GridWalks(m, cfg, "dv", walked={i: i for i in grid}, block=layer, issue=issue, first=first)
        walker = Walker(
            m, "dv", active=walking, first=first,
            words=by_layer(layer, {i: words[i] for i in dv_layers}, counter_shape(max(words) + 1)),
            cost=by_layer(layer, costs, counter_shape(max(costs.values()) + 1)),
            max_words=max(words[i] for i in dv_layers), max_cost=max(costs.values()), lanes=lanes,
            bits=by_layer(layer, {i: self.port("H", i).read_data.as_value() for i in dv_layers}, lanes),
            valid=lambda k: by_layer(layer, {i: valid_lanes(cfg, i, k) for i in dv_layers}, lanes),
            rows={i: costs[i] for i in dotted if i not in grid}, layer=layer,
            end=end if tapped else None, tag=walks.tag,
        )
        m.d.comb += issue.eq(walker.issue)
        # The running event's words in W^{l+1} and dV^{l+1}, and its neuron's R word, by layer.
        grid_reads, ends, grid_channels = walks.reads(walker, walker.step)
        reads = {i: (walker.address, walker.sub) for i in dotted if i not in grid}
        reads.update({i: read[:2] for i, read in grid_reads.items()})
        channel_word = {i: walker.k for i in dv_layers if i not in grid} | grid_channels
        if tapped:
            m.d.comb += end.eq(by_layer(
                layer, {i: ends.get(i, walker.sub == costs[i] - 1) for i in dv_layers}, 1
            ))
        m.d.comb += self.events.eq(walker.event_start)
        # The datapath after the reads (from an event's e + 1, so from the pass's cycle 4 on)
        # selects by a registered copy of the pass's layer.
        pass_layer = Signal.like(layer, name="dv_pass_layer")
        m.d.sync += pass_layer.eq(layer)
        closing = walker.closing

        # Tags of the events in flight, from the last read (e) to the write (e + DV_LATENCY):
        # the neuron's word and lane, and its channel's word (R).
        tag_layout = data.StructLayout({
            "valid": 1, "word": counter_shape(max(words)), "lane": counter_shape(lanes),
            "channel": counter_shape(max(cfg.channel_words(i) for i in dv_layers)),
        })
        tags = [Signal(tag_layout, name=f"dv_tag{n + 1}") for n in range(DV_LATENCY)]
        m.d.sync += [
            tags[0].valid.eq(closing), tags[0].word.eq(walker.k), tags[0].lane.eq(walker.lane),
            tags[0].channel.eq(by_layer(layer, channel_word, len(tags[0].channel))),
        ]
        m.d.sync += [later.eq(earlier) for earlier, later in zip(tags, tags[1:])]

        # The dV unit's operand at e + OPERAND, with the dot sum; R read two cycles before,
        # its lane registered with the operand. tags[n] holds the event at e + 1 + n.
        operand_at = 2 + DOT_PRODUCT_LANE_LATENCY
        r = Signal(f.k + 1, name="dv_r")
        r_read = by_layer(
            pass_layer, {i: Array(self.port("R", i).read_data)[tags[operand_at - 2].lane] for i in dv_layers}, f.k + 1
        )
        m.d.sync += r.eq(r_read)

        # One dV unit shifts by the largest mux shift; a layer with a smaller one (K or the
        # encoder's K_0 = K - 8 + fw) enters it shifted left by the difference.
        shifts = {i: f.encoder_k if i == 0 else f.k for i in dv_layers}
        unit_shift = max(shifts.values())
        acc_bits, sum_now = 1, Const(0, signed(1))

        if not cfg.fc_decoder:
            # Output layer: the class of the neuron, then its error (the operand).
            target_class = Signal(cfg.class_bits, name="dv_class")
            before = tags[operand_at - 3]
            classes = [select([cfg.class_of(w, x) for w in range(words[layers])], before.word, cfg.class_bits)
                       for x in range(lanes)]
            m.d.sync += target_class.eq(Array(classes)[before.lane])
            injected = Const(1) if cfg.decoder == "rate" else (t == cfg.timesteps)
            error = Signal(signed(error_bits(cfg) + f.error_shift), name="dv_error")
            class_error = Signal(signed(error_bits(cfg)), name="dv_class_error")
            m.d.comb += class_error.eq(
                output_error(cfg, Array(self.counts)[target_class], self.label == target_class)
            )
            m.d.sync += error.eq(Mux(injected, class_error << f.error_shift, 0))
            acc_bits = len(error) + unit_shift - shifts[layers]
            sum_now = error << (unit_shift - shifts[layers])

        if dotted:
            selected, widest = self._dot_sums(
                m, walker, reads, hidden=hidden, tapped=tapped, walking=walking, pass_layer=pass_layer, shifts=shifts
            )
            sum_now = selected if cfg.fc_decoder else Mux(pass_layer == layers, sum_now, selected)
            acc_bits = max(acc_bits, widest)

        # The dV unit: (acc * R) >> K, saturated; the result written at e + DV_LATENCY.
        unit = DvUnit(g=f.g, w=f.w, fan_out=1 << max(acc_bits - f.g - f.w, 0), k=unit_shift, shift=unit_shift)
        m.submodules.unit = unit
        m.d.comb += [
            unit.result.ready.eq(1),
            unit.operand.valid.eq(tags[operand_at - 1].valid),
            unit.operand.payload.acc.eq(sum_now),
            unit.operand.payload.r.eq(r),
            unit.operand.payload.window.eq(1),
        ]
        written = tags[DV_LATENCY - 1]
        for i in dv_layers:
            on = walking & (layer == i)
            h_port, r_port, dv_port = self.port("H", i), self.port("R", i), self.port("DV", i)
            m.d.comb += [
                h_port.read_en.eq(on & walker.issue),
                h_port.read_addr.eq(step_base(t, words[i], cfg.timesteps) + walker.issue_word),
                r_port.read_en.eq(on & tags[operand_at - 3].valid),
                r_port.read_addr.eq(tags[operand_at - 3].channel),
                dv_port.write_addr.eq(written.word),
                dv_port.write_mask.eq(Mux(on & unit.result.valid, 1 << written.lane, 0)),
                dv_port.write_data.eq(Cat(unit.result.payload.dv for _ in range(lanes))),
            ]
        in_flight = Cat(tag.valid for tag in tags[: DV_LATENCY - 1]).any()
        m.d.comb += control.done.eq(walker.finished & ~walker.event & ~in_flight)
        return m

    def _dot_sums(
        self, m: Module, walker: Walker, reads: dict[int, tuple[Value, Value]], *, hidden: range, tapped: list[int],
        walking: Value, pass_layer: Signal, shifts: dict[int, int],
    ) -> tuple[Value, int]:
        """The dot products of the hidden layers (and of the output layer's D row with the
        class errors, fc decoder): the ports, the registered operands, the lane. Returns the
        running layer's sum, shifted to the dV unit's shift, and its width (bits)."""
        cfg = self.config
        f = cfg.formats
        lanes, layers, sizes = cfg.lanes, cfg.layers, cfg.sizes
        layer, t = self.control.layer, self.control.t
        unit_shift = max(shifts.values())
        # Row i of W^{l+1} with dV^{l+1} (or the output neuron's D row at t with the class
        # errors), registered, into the dot product.
        fan_out = max(
            [cfg.shape(i + 1)[0] * 9 if i in tapped else sizes[i + 1] for i in hidden]
            + ([cfg.classes] if cfg.fc_decoder else [])
        )
        dot = DotProductLane(lanes=lanes, g=grad_bits(cfg), w=f.w, fan_out=fan_out)
        m.submodules.dot = dot
        m.d.comb += dot.result.ready.eq(1)
        event = walking & walker.step
        for i in hidden:
            on = layer == i
            w_port, up_port = self.port("W", i + 1), self.port("DV", i + 1)
            m.d.comb += [
                w_port.read_en.eq(event & on), w_port.read_addr.eq(reads[i][0]),
                up_port.read_en.eq(event & on), up_port.read_addr.eq(reads[i][1]),
            ]
        weight_words = {i: self.port("W", i + 1).read_data for i in hidden}
        grad_words = {i: self.port("DV", i + 1).read_data for i in hidden}
        if cfg.fc_decoder:
            d_port = self.port("D", layers)
            m.d.comb += [
                d_port.read_en.eq(event & (layer == layers)),
                d_port.read_addr.eq(decoder_row_base(cfg, t) + walker.address),
            ]
            d_word = Signal.like(walker.sub, name="dv_d_word")  # the D word's classes
            m.d.sync += d_word.eq(walker.sub)
            weight_words[layers] = d_port.read_data
            grad_words[layers] = error_word(cfg, self.errors, d_word)
        arrived = [Signal(name=f"dv_arrived{n}") for n in range(2)]
        last = [Signal(name=f"dv_last{n}") for n in range(2)]
        m.d.sync += [arrived[0].eq(event), arrived[1].eq(arrived[0]), last[0].eq(walker.closing), last[1].eq(last[0])]
        weights = Signal(dot.operand.payload.weights.shape(), name="dv_weights")
        grads = Signal(dot.operand.payload.grads.shape(), name="dv_grads")
        for x in range(lanes):
            m.d.sync += [
                weights[x].eq(by_layer(pass_layer, {i: word[x] for i, word in weight_words.items()}, signed(f.w))),
                grads[x].eq(by_layer(pass_layer, {i: word[x] for i, word in grad_words.items()}, signed(grad_bits(cfg)))),
            ]
        m.d.comb += [
            dot.operand.valid.eq(arrived[1]),
            dot.operand.payload.weights.eq(weights),
            dot.operand.payload.grads.eq(grads),
            dot.operand.payload.last.eq(last[1]),
        ]
        total = dot.result.payload.sum
        scaled = {i: total << (unit_shift - shifts[i]) for i in hidden}
        if cfg.fc_decoder:  # floor (arithmetic) shift when the decoder's shift is negative
            # The error sum of C products e_c D_cj (the contract's bound on it); the lane's sum
            # is sized for the widest dV row, so it is narrowed before the shift.
            inputs = cfg.timesteps * cfg.sizes[-1]
            error_sum = total[: decoder_error_sum_bits(inputs, f.w, f.df, cfg.classes)].as_signed()
            shift = f.decoder_error_shift
            decoded = error_sum << shift if shift >= 0 else error_sum >> -shift
            scaled[layers] = decoded << (unit_shift - shifts[layers])
        widest = max(len(value) for value in scaled.values())
        return by_layer(pass_layer, scaled, signed(widest)), widest
