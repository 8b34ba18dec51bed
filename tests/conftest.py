"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SHARED_DATA

# Trained runs for the serving tests (session-scoped, so each trains once per test session).
pytest_plugins = ["tests.fixtures_serve"]


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (real-data tests run only next to the shared folder)")
    return SHARED_DATA
