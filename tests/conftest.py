"""Shared pytest fixtures."""

from __future__ import annotations

import os
import pathlib

import pytest


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """The folder of real datasets (``$REPBENCH_SHARED_DATA``); skips the test when it is not set."""
    path = os.environ.get("REPBENCH_SHARED_DATA")
    if not path:
        pytest.skip("REPBENCH_SHARED_DATA is not set: real-data test skipped")
    return pathlib.Path(path)
