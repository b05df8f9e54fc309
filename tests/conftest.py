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


def pytest_collection_modifyitems(config, items):
    """`slow` tests (minutes of real-data computing) run when the shared data is present (as in
    `.ci/run`) or when REPBENCH_SLOW=1; otherwise they skip with that reason."""
    if os.environ.get("REPBENCH_SHARED_DATA") or os.environ.get("REPBENCH_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow real-data check: set REPBENCH_SHARED_DATA (as .ci/run does) "
                                   "or REPBENCH_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
