"""Fixtures for the integration suite: seeded OpenBao dev servers (HTTP and TLS), a runner
for crunch-secrets, and a leak scan of every server log after every test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import BaoServer, Runner, seed  # noqa: E402


@pytest.fixture(scope="session")
def bao():
    """A seeded HTTP dev server shared by the session. Tests must not seal or stop it."""
    server = BaoServer(name="bao-http").start()
    server.world = seed(server)
    yield server
    server.close()


@pytest.fixture(scope="session")
def world(bao):
    return bao.world


@pytest.fixture(scope="session")
def bao_tls():
    """A seeded TLS dev server (its generated CA is `ca_path`)."""
    server = BaoServer(tls=True, name="bao-tls").start()
    server.world = seed(server)
    yield server
    server.close()


@pytest.fixture
def make_bao():
    """Starts dedicated servers a test may stop, seal or restart: make_bao(tls=..., extra_args=...)."""
    started: list[BaoServer] = []

    def make(*, tls: bool = False, extra_args: list[str] | None = None, seeded: bool = True,
             start: bool = True) -> BaoServer:
        server = BaoServer(tls=tls, extra_args=extra_args, name=f"bao-dedicated-{len(harness.SERVERS)}")
        started.append(server)
        if start:
            server.start()
            if seeded:
                server.world = seed(server)
        return server

    yield make
    for s in started:
        s.close()


@pytest.fixture
def cs(request):
    """A Runner bound to the shared HTTP server (created lazily so offline tests need no server)."""
    runner = Runner(None)
    if "offline" not in request.keywords:
        runner.bao = request.getfixturevalue("bao")
    yield runner
    runner.cleanup()


@pytest.fixture
def cs_tls(bao_tls):
    runner = Runner(bao_tls)
    yield runner
    runner.cleanup()


@pytest.fixture(autouse=True)
def _scan_server_logs():
    """After each test, every server log must be free of canaries."""
    yield
    for server in harness.SERVERS:
        server.scan_logs()


def pytest_configure(config):
    config.addinivalue_line("markers", "offline: the test needs no OpenBao server")
    config.addinivalue_line("markers", "slow: the test waits for deadlines (seconds)")
    config.addinivalue_line("markers", "ha: needs the 3-node Raft cluster (CS_HA=1, run-all.sh --ha)")


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL 15 on loopback (test/postgres/pg.sh), shared by the session."""
    from postgres import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


def pytest_collection_modifyitems(config, items):
    """The HA cluster tests run only with CS_HA=1 (`bash test/run-all.sh --ha`): they are
    deselected, not skipped, otherwise."""
    if os.environ.get("CS_HA") == "1":
        return
    keep = [i for i in items if "ha" not in i.keywords]
    dropped = [i for i in items if "ha" in i.keywords]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
