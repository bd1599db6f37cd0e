"""TLS, retries while Vault is stopped or sealed, and the --wait deadline."""

from __future__ import annotations

import threading
import time

import pytest

RUN = ["run", "--no-manifest", "--", "{probe}"]
REF = {"X": "vault:secret/data/app#password"}


def test_tls_with_right_ca(cs_tls, bao_tls):
    r = cs_tls.run(RUN, dict(REF))
    assert r.code == 0, r.describe()
    assert r.env["X"] == bao_tls.world.values["password"]


def test_tls_bao_cacert_wins(cs_tls, bao_tls):
    r = cs_tls.run(RUN, dict(REF, BAO_CACERT=str(bao_tls.ca_path), VAULT_CACERT="/etc/ssl/certs/ca-certificates.crt"))
    assert r.code == 0, r.describe()


def test_tls_with_wrong_ca_fails(cs_tls, make_bao):
    other = make_bao(tls=True, seeded=False)  # a different generated CA
    start = time.monotonic()
    r = cs_tls.run(RUN, dict(REF, VAULT_CACERT=str(other.ca_path)), wait="2s")
    assert r.code != 0, r.describe()
    assert r.report is None
    assert r.code in (69, 76, 78), r.describe()
    assert time.monotonic() - start < 30


def test_tls_with_system_ca_fails(cs_tls):
    r = cs_tls.run(RUN, dict(REF, VAULT_CACERT=None), wait="1s")
    assert r.code != 0 and r.report is None, r.describe()


def test_tls_skip_verify(cs_tls):
    r = cs_tls.run(RUN, dict(REF, VAULT_CACERT=None, VAULT_SKIP_VERIFY="true"))
    assert r.code == 0, r.describe()


def test_tls_capath(cs_tls, bao_tls):
    import shutil, subprocess
    d = cs_tls.tmpfs_dir()
    shutil.copy(bao_tls.ca_path, d / "ca.pem")
    h = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(d / "ca.pem")], capture_output=True,
                       text=True, check=True).stdout.strip()
    (d / f"{h}.0").symlink_to(d / "ca.pem")
    r = cs_tls.run(RUN, dict(REF, VAULT_CACERT=None, VAULT_CAPATH=str(d)))
    assert r.code == 0, r.describe()


@pytest.mark.slow
def test_stopped_vault_retries_until_deadline(cs, make_bao):
    server = make_bao(seeded=False)
    server.stop()
    r = cs.run(RUN, dict(REF), bao=server, wait="3s")
    assert r.code == 69, r.describe()
    assert r.report is None
    assert 2.8 <= r.elapsed <= 8, f"elapsed {r.elapsed:.2f}s for --wait 3s"


@pytest.mark.slow
def test_nothing_listening_wait_parsing(cs, make_bao):
    server = make_bao(seeded=False, start=False)
    for wait, lo, hi in (("500ms", 0.4, 4), ("2", 1.9, 6)):
        r = cs.run(RUN, dict(REF), bao=server, wait=wait)
        assert r.code == 69, r.describe()
        assert lo <= r.elapsed <= hi, f"elapsed {r.elapsed:.2f}s for --wait {wait}"


@pytest.mark.slow
def test_sealed_then_unsealed_within_deadline(cs, make_bao):
    server = make_bao()
    server.seal()
    t = threading.Timer(2.0, server.unseal)
    t.start()
    try:
        r = cs.run(RUN, dict(REF), bao=server, wait="30s")
    finally:
        t.join()
    assert r.code == 0, r.describe()
    assert r.env["X"] == server.world.values["password"]
    assert r.elapsed >= 1.9


@pytest.mark.slow
def test_sealed_until_deadline(cs, make_bao):
    server = make_bao(seeded=False)
    server.seal()
    r = cs.run(RUN, dict(REF), bao=server, wait="2s")
    assert r.code == 69, r.describe()
    assert 1.8 <= r.elapsed <= 7


@pytest.mark.slow
def test_started_late_within_deadline(cs, make_bao):
    """Vault comes up after crunch-secrets started (no data: the read is a 404, not a retry)."""
    server = make_bao(seeded=False, start=False)
    t = threading.Timer(1.5, server.start)
    t.start()
    try:
        r = cs.run(RUN, {"X": "vault:secret/data/none#x"}, bao=server, wait="30s")
    finally:
        t.join()
    assert r.code == 79, r.describe()
    assert r.elapsed >= 1.4


def test_namespace_header(cs):
    """VAULT_NAMESPACE is sent as X-Vault-Namespace (OpenBao has namespaces)."""
    bao = cs.bao
    status, _ = bao.api_status("POST", "sys/namespaces/team1", {})
    if status not in (200, 204):
        status, _ = bao.api_status("GET", "sys/namespaces/team1")
    assert status in (200, 204), f"cannot create namespace: HTTP {status}"
    st, _ = bao.api_status("POST", "sys/mounts/nskv", {"type": "kv", "options": {"version": "1"}},
                           headers={"X-Vault-Namespace": "team1"})
    assert st in (200, 204, 400), st
    from harness import CANARIES
    val = CANARIES.new("namespace value")
    st, _ = bao.api_status("POST", "nskv/app", {"v": val}, headers={"X-Vault-Namespace": "team1"})
    assert st in (200, 204), st
    r = cs.run(RUN, {"X": "vault:nskv/app#v", "VAULT_NAMESPACE": "team1"})
    assert r.code == 0, r.describe()
    assert r.env["X"] == val
    r = cs.run(RUN, {"X": "vault:nskv/app#v"})
    assert r.code in (79, 77), r.describe()


def test_missing_ca_file_fails_fast(cs_tls):
    """A CA file that does not exist is a configuration/input error, not an unavailable Vault."""
    r = cs_tls.run(RUN, dict(REF, VAULT_CACERT="/nonexistent/ca.pem"), wait="10s")
    assert r.code in (66, 78), r.describe()
    assert r.elapsed < 5, f"retried a missing CA file for {r.elapsed:.1f}s"
    assert "/nonexistent/ca.pem" in r.err


def test_plain_http_to_tls_server(cs_tls, bao_tls):
    r = cs_tls.run(RUN, dict(REF, VAULT_ADDR=bao_tls.addr.replace("https:", "http:")))
    assert r.code != 0 and r.report is None, r.describe()


def test_tls_server_name(cs_tls):
    r = cs_tls.run(RUN, dict(REF, VAULT_TLS_SERVER_NAME="localhost"))
    assert r.code == 0, r.describe()
    r = cs_tls.run(RUN, dict(REF, VAULT_TLS_SERVER_NAME="wrong.example"), wait="1s")
    assert r.code != 0 and r.report is None, r.describe()


def test_client_timeout(cs, bao):
    from harness import FaultProxy
    p = FaultProxy(bao, delay=lambda n, m, path: 5 if path.startswith("/v1/secret/") else 0)
    try:
        r = cs.run(RUN, dict(REF, VAULT_ADDR=p.addr, VAULT_CLIENT_TIMEOUT="1s"), wait="3s")
    finally:
        p.close()
    assert r.code == 69, r.describe()
    assert r.elapsed < 4.8, f"VAULT_CLIENT_TIMEOUT=1s ignored: {r.elapsed:.1f}s"
