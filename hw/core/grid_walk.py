"""The learning passes' walks over grid layers' spikes (docs/architecture.md section 9.6).

A DV or DW pass walks a bit-plane of a grid layer with :class:`hw.core.walk.Walker`; each
spike reaches the layer above as that layer's event (:func:`hw.core.grid.event_layout`):
an FC row behind the pools, or a conv event's in-image taps. :class:`GridWalks` gives the
walker its tag (the walked word's event, computed from the word's block, y and x when the
word is issued, so no product lies on the event's path) and turns the walker's running
event into its reads: the row's words, or (a conv consumer) :class:`hw.core.taps.TapSequence`.
"""

from __future__ import annotations

from collections.abc import Mapping

from amaranth.hdl import Cat, Module, Shape, Value

from hw.core.grid import WalkCursor, consumer_event, event_layout, lane_event
from hw.core.taps import TapSequence
from hw.core.walk import Walker, by_layer, counter_shape
from hw.core_config import CoreConfig

__all__ = ["GridWalks", "event_reads"]


def event_reads(config: CoreConfig, layer: int) -> int:
    """Reads of one event into layer ``layer`` of a walk: its row's words, nine taps' for a
    conv layer."""
    return config.row_words(layer) * (9 if config.grid(layer) else 1)


class GridWalks:
    """The walks of blocks ``walked`` (``{block: grid layer whose bit-plane it walks}``) of
    one walker, selected by ``block``; ``issue``, ``first``: the walker's.

    ``tag`` is the walker's tag: the issued word's lane-0 event and its channel block.
    After the walker exists, :meth:`reads` gives each block's reads.
    """

    def __init__(
        self, m: Module, config: CoreConfig, name: str, *, walked: Mapping[int, int], block: Value,
        issue: Value, first: Value,
    ) -> None:
        self.m, self.config, self.name, self.walked, self.block = m, config, name, dict(walked), block
        tags = {}
        for index, layer in self.walked.items():
            cursor = WalkCursor(m, config, layer, name=f"{name}{index}_walk", step=issue & (block == index), first=first)
            at = cursor.at
            tags[index] = Cat(consumer_event(m, config, layer, at.block, at.y, at.x, name=f"{name}{index}_walk"), at.block)
        self.tag = by_layer(block, tags, max(len(tag) for tag in tags.values())) if tags else None

    def reads(self, walker: Walker, step: Value) -> tuple[dict[int, tuple[Value, Value, Value]], dict[int, Value], dict[int, Value]]:
        """``(reads, ends, channel_words)`` of the running event per walked block: its upper
        row's (or kernel) word address, the target's word (dV above, or this layer's) and the
        row word (its lanes); its last read (conv consumers only); the walked neuron's
        channel word. ``step``: the walker reads this cycle."""
        m, cfg = self.m, self.config
        reads, ends, channel_words = {}, {}, {}
        for index, layer in self.walked.items():
            consumer = layer + 1
            event_bits = Shape.cast(event_layout(cfg, consumer)).width
            block_bits = Shape.cast(counter_shape(cfg.channel_words(layer))).width
            event = lane_event(m, cfg, layer, walker.tag[:event_bits], walker.lane, name=f"{self.name}{index}")
            channel_words[index] = walker.tag[event_bits:event_bits + block_bits]
            if cfg.grid(consumer):
                taps = TapSequence(
                    m, cfg, consumer, name=f"{self.name}{index}_taps", event=event, fresh=walker.sub == 0,
                    step=step & (self.block == index),
                )
                reads[index], ends[index] = (taps.w_addr, taps.v_addr, taps.word), taps.last
            else:
                reads[index] = (event + walker.sub, walker.sub, walker.sub)
        return reads, ends, channel_words
