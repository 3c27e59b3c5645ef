"""The on-line learning core (docs/architecture.md): its top, engines and memories."""

from hw.core.host import HOST_READ_LATENCY, HostSignature
from hw.core.top import Core, input_layout, output_layout, trace_layout

__all__ = ["HOST_READ_LATENCY", "Core", "HostSignature", "input_layout", "output_layout", "trace_layout"]
