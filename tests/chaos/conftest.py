"""Chaos tests start real collector/agent processes and kill only those, by pid."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: slow fault-injection tests (real processes, netns, tmpfs); CI runs them"
    )
