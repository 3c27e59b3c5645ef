"""One csim-engine build cache for the whole HLS test session (builds shared across tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.hls_engine import CACHE_ENV


@pytest.fixture(scope="session")
def engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engine-cache")


@pytest.fixture(autouse=True)
def _engine_cache_env(engine_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(engine_cache))
