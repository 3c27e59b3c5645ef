"""Shared pytest configuration."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# Property tests are reproducible: the examples follow from each test's name, no example
# database carries over between runs (each test's own settings inherit this profile).
settings.register_profile("reproducible", derandomize=True, database=None)
settings.load_profile("reproducible")
