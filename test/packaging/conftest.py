"""Fixtures for the packaging tests (test/packaging/run.sh): the integration suite's harness
(real OpenBao dev servers, canary scanning) and the artefacts run.sh built."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import harness  # noqa: E402
from harness import BaoServer, fail, seed  # noqa: E402


def artefact(var: str, how: str) -> Path:
    """A path run.sh exports; a missing one fails the test (never a skip)."""
    value = os.environ.get(var)
    if not value or not Path(value).exists():
        fail(f"${var} is unset or missing ({value!r}): {how}")
    return Path(value)


@pytest.fixture(scope="session")
def bao_tls():
    server = BaoServer(tls=True, name="bao-pkg-tls").start()
    server.world = seed(server)
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _scan_server_logs():
    yield
    for server in harness.SERVERS:
        server.scan_logs()
