"""Registry of the datapath units and their Verilog export.

Each unit is exported as ``NAME.v`` whose top module is ``NAME`` (Amaranth emits the
unit's own submodules, e.g. a FIFO, into the same file under hierarchical names such as
``NAME.fifo``). Default parameters are the numerics contract's defaults
(docs/numerics.md section 1: w = 8, v = 16 so thresholds have 15 bits, g = 16, dw = dth = 24,
K = 16), with P = 8 lanes and a fan-out bound of 1024 where a unit has them. Adding a unit is
one :class:`Unit` line in :data:`UNITS`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from amaranth.back import verilog
from amaranth.lib import wiring

from hw.accumulator import GradientAccumulator
from hw.dot_product import DotProductLane
from hw.dv import DvUnit
from hw.neuron import NeuronLane
from hw.queue import SpikeQueue
from hw.reciprocal import ReciprocalDivider
from hw.update import UpdateUnit

__all__ = ["UNITS", "Unit", "get_unit", "write_all", "write_unit"]


@dataclass(frozen=True)
class Unit:
    """One exportable unit: its module name, component class and default parameters.

    Parameters
    ----------
    name : str
        Verilog module and file name (``NAME.v``).
    component : callable
        The :class:`amaranth.lib.wiring.Component` class, called with keyword parameters.
    defaults : mapping of str to int
        Default value of every keyword parameter of ``component``.
    """

    name: str
    component: Callable[..., wiring.Component]
    defaults: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        accepted = {
            p.name
            for p in inspect.signature(self.component).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
        if set(self.defaults) != accepted:
            raise ValueError(
                f"defaults: {self.name} needs exactly the parameters {sorted(accepted)}, "
                f"got {sorted(self.defaults)}"
            )

    def params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The defaults updated with ``overrides``.

        Raises
        ------
        ValueError
            If an override names a parameter the unit does not have.
        """
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"params: {self.name} has no parameter {unknown[0]!r} "
                f"(allowed {', '.join(sorted(self.defaults))})"
            )
        return {**self.defaults, **overrides}

    def build(self, overrides: Mapping[str, Any] | None = None) -> wiring.Component:
        """Construct the component (its own checks raise for bad values)."""
        return self.component(**self.params(overrides))

    def verilog(self, overrides: Mapping[str, Any] | None = None) -> str:
        """Verilog text of the unit, top module :attr:`name`."""
        return verilog.convert(self.build(overrides), name=self.name, emit_src=False)


#: Units by name, in export order.
UNITS: Mapping[str, Unit] = MappingProxyType({unit.name: unit for unit in (
    Unit("spike_queue", SpikeQueue, {"index_bits": 10, "depth": 64, "stages": 1}),
    Unit("reciprocal_divider", ReciprocalDivider, {"threshold_bits": 15, "k": 16}),
    Unit("neuron_lane", NeuronLane, {"w": 8, "v": 16}),
    Unit("dv_unit", DvUnit, {"g": 16, "w": 8, "fan_out": 1024, "k": 16, "shift": 16}),
    Unit("dot_product_lane", DotProductLane, {"lanes": 8, "g": 16, "w": 8, "fan_out": 1024}),
    Unit("gradient_accumulator", GradientAccumulator, {"lanes": 8, "g": 16, "dw": 24, "dth": 24}),
    Unit("update_unit", UpdateUnit, {"lanes": 8, "w": 8, "v": 16, "dw": 24, "dth": 24, "lfsr_init": 1}),
)})


def get_unit(name: str) -> Unit:
    """The registered unit ``name``; ``ValueError`` listing the names otherwise."""
    try:
        return UNITS[name]
    except KeyError:
        raise ValueError(f"unit: {name!r} is not a unit (allowed {', '.join(UNITS)})") from None


def write_unit(name: str, out_dir: str | Path, overrides: Mapping[str, Any] | None = None) -> Path:
    """Write ``out_dir/NAME.v`` (creating ``out_dir``) and return its path."""
    unit = get_unit(name)
    text = unit.verilog(overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{unit.name}.v"
    path.write_text(text)
    return path


def write_all(out_dir: str | Path) -> list[Path]:
    """Write every registered unit with its default parameters; the paths in order."""
    return [write_unit(name, out_dir) for name in UNITS]
