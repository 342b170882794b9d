"""Session tests: Qt objects without widgets, on the qasync loop, with a scripted backend."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _flows(flows):
    return flows
