"""Export of the whole core: Verilog top, memory images and a JSON manifest.

:func:`write_core` writes, for an integer network, P lanes and queue depth Q:

* ``<top>.v``: :class:`hw.core.Core` as Verilog (top module ``<top>``, clock ``clk``,
  synchronous reset ``rst``), its memories initialised with the network (Amaranth inlines
  the contents as ``initial`` blocks);
* ``<MEMORY><layer>.hex``: one ``$readmemh`` image per initialised memory (W, VTH, R),
  one word per line, lane 0 in the least significant bits (:meth:`CoreConfig.write_images`);
* ``manifest.json``: :func:`manifest`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from amaranth.back import verilog
from amaranth.lib import wiring

from hw.core import HOST_READ_LATENCY, Core
from hw.core_config import COUNTER_BITS, HOST_REGISTERS, TARGETS, CoreConfig
from model.integer import IntegerNetwork

__all__ = [
    "LINT_WAIVERS", "MANIFEST", "TOP", "core_verilog", "drop_initial_block", "manifest", "port_list", "write_core",
]

#: Default top module name.
TOP = "spikeforge_core"
#: File name of the manifest.
MANIFEST = "manifest.json"
#: Amaranth's Verilog writes ``x == 0`` as ``!x`` on multi-bit values (Verilator: WIDTHTRUNC)
#: and lowers FSMs and ``Array`` indexing to ``casez`` without a default arm after a default
#: assignment (CASEINCOMPLETE); for edge parameters (T = 1, one layer, one word) some
#: comparisons of the parameterised logic are constant (CMPCONST). All three are the
#: generator's style (the IR's widths are exact), so the core's Verilog waives them for
#: Verilator in its own text.
LINT_WAIVERS = (
    "/* verilator lint_off WIDTHTRUNC */\n"
    "/* verilator lint_off CASEINCOMPLETE */\n"
    "/* verilator lint_off CMPCONST */\n"
)


def core_verilog(core: Core, *, name: str = TOP) -> str:
    """Verilog of ``core`` (top module ``name``), with the Verilator waivers.

    Single-port weight banks (iCE40 SPRAM) have no power-up contents on the device, so their
    ``initial`` blocks are left out: the host loads W and clears dW through the host port
    (the manifest's ``host_load``).
    """
    text = verilog.convert(core, name=name, emit_src=False)
    for bank, _, _ in core.config.weight_banks():
        text = drop_initial_block(text, f"mem_{bank}")
    return LINT_WAIVERS + text


def drop_initial_block(text: str, memory: str) -> str:
    """``text`` without the ``initial`` block that fills Verilog memory ``memory``.

    Raises
    ------
    ValueError
        When ``text`` declares no such initialised memory.
    """
    declaration = re.compile(
        rf"(reg \[[^\]]+\] {re.escape(memory)} \[[^\]]+\];\n)\s*initial begin\n"
        rf"(?:\s*{re.escape(memory)}\[\d+\] = [^;\n]+;\n)*\s*end\n"
    )
    text, found = declaration.subn(r"\1", text)
    if found != 1:
        raise ValueError(f"memory: no initialised Verilog memory {memory!r}")
    return text


def port_list(signature: wiring.Signature) -> list[dict[str, Any]]:
    """Verilog ports of a component with ``signature``: ``clk``, ``rst``, then every member."""
    ports: list[dict[str, Any]] = [
        {"name": "clk", "direction": "input", "width": 1},
        {"name": "rst", "direction": "input", "width": 1},
    ]
    interface = signature.create()
    for path, member, value in signature.flatten(interface):
        ports.append({
            "name": "__".join(map(str, path)),
            "direction": "input" if member.flow == wiring.In else "output",
            "width": len(value.as_value()) if hasattr(value, "as_value") else len(value),
        })
    return ports


def manifest(
    config: CoreConfig, signature: wiring.Signature, *, top: str = TOP,
    images: dict[str, str] | None = None, target: str = "sim",
) -> dict[str, Any]:
    """The manifest of a generated core (JSON-ready).

    Keys: ``top``, ``target`` (name and memory budget), ``parameters``
    (:meth:`CoreConfig.to_dict`), ``widths`` (numeric formats, derived shifts, counter,
    count and class bits), ``memories`` (name, layer, depth, lanes, lane and word bits,
    signedness, host region, host base address, image file or ``null``), ``host`` (address
    layout, data width, registers), ``counters`` (counter-port order), ``streams``
    (payload fields of ``pixels`` and ``result``) and ``ports``.
    """
    f = config.formats
    images = images or {}
    chosen = TARGETS[target]
    regions = {spec.key: region for region, spec in enumerate(config.host_memories, start=1)}
    memories = []
    for spec in config.memories:
        hosted = spec.key in regions
        memories.append({
            "name": spec.name, "layer": spec.layer, "key": spec.key, "depth": spec.depth,
            "lanes": spec.lanes, "lane_bits": spec.lane_bits, "word_bits": spec.word_bits,
            "signed": spec.signed, "host_region": regions.get(spec.key),
            "host_base": config.host_address(spec.key, 0) if hosted else None, "image": images.get(spec.key),
        })
    members = signature.members
    return {
        "top": top,
        "target": {"name": chosen.name, "total_bits": chosen.total_bits, "memory_bits": chosen.memory_bits,
                   "used_bits": config.memory_bits, "source": chosen.source},
        "parameters": config.to_dict(),
        "widths": {
            **f.to_dict(),
            "encoder_k": f.encoder_k,
            "error_shift": f.error_shift,
            "threshold_max": f.threshold_max,
            "count_bits": config.count_bits,
            "class_bits": config.class_bits,
            "index_bits": list(config.index_bits),
            "counter_bits": COUNTER_BITS,
        },
        "memories": memories,
        "host": {
            "address_bits": config.host_region_bits + config.host_word_bits,
            "word_bits": config.host_word_bits,
            "region_bits": config.host_region_bits,
            "data_bits": config.host_data_bits,
            "registers": {name: config.host_address(name) for name in HOST_REGISTERS},
            "read_latency": HOST_READ_LATENCY,
            "note": "address = region << word_bits | word; region 0 holds the registers; a request "
                    "is registered and performed in the next cycle if the core is idle; rdata "
                    "follows re (and counter_value follows counter_select) by read_latency cycles",
        },
        "counters": [spec.name for spec in config.counters],
        "host_load": {
            "note": "single-port banks have no power-up contents: after configuration the host "
                    "writes these memories (W from their images, dW zeros) before the first sample",
            "memories": [spec.key for spec in config.memories if config.in_weight_banks(spec)],
        },
        "streams": {
            "pixels": {"words_per_sample": config.words[0], "payload": _fields(members["pixels"])},
            "result": {"payload": _fields(members["result"])},
        },
        "ports": port_list(signature),
    }


def _fields(stream: wiring.Member) -> dict[str, dict[str, int]]:
    """``{field: {offset, width}}`` of a stream member's struct payload."""
    layout = stream.signature.members["payload"].shape
    return {name: {"offset": field.offset, "width": field.width} for name, field in layout}


def write_core(
    network: IntegerNetwork, *, lanes: int, queue_depth: int, out_dir: str | Path,
    target: str = "sim", counters: str | None = None, top: str = TOP,
) -> dict[str, Any]:
    """Write the core's Verilog, memory images and manifest into ``out_dir``.

    Returns
    -------
    dict
        The manifest (also written as :data:`MANIFEST`), with ``files`` added.

    Raises
    ------
    ValueError
        For a network the core cannot build, ``lanes`` / ``queue_depth`` out of range, or
        memories that do not fit ``target`` (naming the field).
    """
    config = CoreConfig.for_target(network, lanes=lanes, queue_depth=queue_depth, target=target, counters=counters)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = config.write_images(network, out)
    core = Core(config, init=config.initial_contents(network))
    verilog_path = out / f"{top}.v"
    verilog_path.write_text(core_verilog(core, name=top))
    data = manifest(config, core.signature, top=top, images=images, target=target)
    data["files"] = {"verilog": verilog_path.name, "images": sorted(images.values()), "manifest": MANIFEST}
    (out / MANIFEST).write_text(json.dumps(data, indent=2) + "\n")
    return data
