"""Fixtures for the tests of scripts/ (plain files, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="module")
def script(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The script named by the test module's ``SCRIPT`` (a file stem under scripts/), imported.

    It is registered in ``sys.modules`` while the module's tests run (dataclasses resolve
    annotations through it) and removed afterwards.
    """
    name = request.module.SCRIPT
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]
