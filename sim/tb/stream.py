"""Bench base of the learning-datapath units: ``operand`` stream in, ``result`` stream out.

:class:`StreamTB` maps the unit's step-function model (:data:`model.units.STREAM_MODELS`)
onto the DUT from its Amaranth payload layouts; :class:`sim.tb.common.CycleTB` drives
operands under producer/consumer valid/ready patterns, checks every cycle against the step
function and, independently, every delivered result against the unit's pure ``*_result``
function in an in-order :class:`sim.tb.common.Scoreboard`. A bench subclass names its
unit and layouts and provides the coverage points, a directed table and a random operand
generator; the module defines the cocotb tests ``directed`` and ``random_stream`` with
:meth:`StreamTB.test`.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from amaranth.lib import data

from model.units import STREAM_MODELS
from sim.tb.common import Bits, CycleTB, Operand, layout_fields

__all__ = ["StreamTB"]

#: Distinct junk payloads shown while the random stream's operand stream is idle.
JUNK_POOL = 37


class StreamTB(CycleTB):
    """Drivers, monitors, model and scoreboards of a unit with operand/result streams.

    Subclasses set :attr:`UNIT`, :attr:`LAYOUTS`, :attr:`CORRUPT` and :attr:`COVERAGE`, and
    implement :meth:`~sim.tb.common.CycleTB.cover`,
    :meth:`~sim.tb.common.CycleTB.directed_table` and
    :meth:`~sim.tb.common.CycleTB.random_operands` (and :meth:`reference` where the unit's
    result depends on more than the operand).

    Attributes
    ----------
    UNIT : str
        The unit's name in :data:`model.units.STREAM_MODELS` (and :data:`hw.export.UNITS`).
    LAYOUTS : callable
        ``layouts(params) -> (operand, result)``: the payload layouts of the component
        (``hw.<unit>.layouts``, a ``staticmethod``); their member names are the model's
        field names.

    Parameters
    ----------
    dut : cocotb handle
        The top level.
    config : mapping
        The bench configuration (:func:`sim.tb.common.load_config`); ``params`` are the
        unit's keyword parameters, checked into ``self.unit``.
    """

    UNIT = ""
    LAYOUTS: Callable[[Any], tuple[data.StructLayout, data.StructLayout]]

    def __init__(self, dut: Any, config: Mapping[str, Any]) -> None:
        model = STREAM_MODELS[self.UNIT]
        self.model = model
        self.unit = model.params(**config["params"])
        operand, result = self.LAYOUTS(self.unit)
        operand_fields = layout_fields("operand__payload", operand)
        result_fields = layout_fields("result__payload", result)
        self.INPUTS = {
            "operand_valid": "operand__valid",
            **operand_fields,
            "result_ready": "result__ready",
            **{name: name for name in model.side_inputs},
        }
        self.OUTPUTS = {
            "operand_ready": "operand__ready",
            "result_valid": "result__valid",
            **result_fields,
            **{name: name for name in model.side_outputs},
        }
        for kind, mapping, fields in (
            ("inputs", self.INPUTS, model.inputs._fields),
            ("outputs", self.OUTPUTS, model.outputs._fields),
        ):
            if set(mapping) != set(fields):
                raise ValueError(f"{kind}: model fields {fields} do not match the ports {tuple(mapping)}")
        self.QUALIFIERS = {name: "result_valid" for name in result_fields}
        self.RESULT_FIELDS = tuple(result_fields)
        super().__init__(dut, config, model.step, model.reset(**config["params"]), model.inputs)
        self.blank = {name: _zero(bits) for name, bits in operand_fields.items()}
        self.idle = model.inputs(**self.blank)

    def reference(self, operand: Operand, inputs: NamedTuple) -> Any:
        """The unit's ``*_result`` of an accepted operand."""
        return self.model.result(self.unit, **operand)

    def junk_operands(self, rng: random.Random) -> Iterator[Operand]:
        """A cycled pool of other random operands."""
        pool = self.random_operands(random.Random(rng.random()))
        return itertools.cycle(list(itertools.islice(pool, JUNK_POOL)))


def _zero(bits: Bits) -> Any:
    return (0,) * bits.count if bits.count else 0
