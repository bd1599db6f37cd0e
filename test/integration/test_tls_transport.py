"""The TLS transport against hostile or misconfigured servers (adversarial review, 2026-12-05).

- TLS floor: a server that speaks only TLS 1.0 with RSA key exchange (`openssl s_server -tls1
  -cipher 'AES128-SHA:@SECLEVEL=0'`, a certificate the client trusts) must not receive a byte
  of HTTP: not the Vault token, not the Arvados token. Vault's Go client requires TLS >= 1.2.
- Permanent TLS failures fail at once (exit 78, one line naming the address) instead of being
  retried for the whole --wait; a connection reset during the handshake is still retried.
- CA settings as Vault's client reads them: VAULT_CACERT wins over VAULT_CAPATH; a CA directory
  that is not one, or a CA file that does not exist, is named before any request.

The hostile servers are `openssl s_server` processes (they print what they receive) and small
Python socket servers; the Vault behind the reset-then-forward proxy is the real OpenBao TLS
dev server.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from faultproxy import CountingListener
from harness import CANARIES, crunch_secrets_bin, free_port, probe_bin

RUN = ["run", "--no-manifest", "--", "{probe}"]
REF = {"X": "vault:secret/data/app#password"}
ARV_UUID = "zzzzz-oss07-tlstransport01"
FAST = 3.0  # a permanent failure must end within this, with --wait 30s


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


class Pki:
    """A CA, server certificates it signs (for 127.0.0.1, and for another name only), and a
    second, unrelated CA with a certificate for 127.0.0.1."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cs-tls-pki-"))
        for ca in ("ca", "other-ca"):
            openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ca}",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                    "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=self.dir)
        self.sign("server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost")
        self.sign("wrong-name", "ca", "subjectAltName=DNS:other.example")
        self.sign("other-server", "other-ca", "subjectAltName=IP:127.0.0.1")
        self.ca = self.dir / "ca.pem"
        self.other_ca = self.dir / "other-ca.pem"

    def sign(self, name: str, ca: str, ext: str) -> None:
        (self.dir / f"{name}.ext").write_text(ext + "\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", cwd=self.dir)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=self.dir)

    def pair(self, name: str) -> list[str]:
        return ["-cert", str(self.dir / f"{name}.pem"), "-key", str(self.dir / f"{name}.key")]

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def pki():
    p = Pki()
    yield p
    p.close()


class SServer:
    """`openssl s_server` on a free loopback port; `received()` is everything it printed, which
    includes every byte of application data a client sent (no -www: it echoes them)."""

    def __init__(self, args: list[str]) -> None:
        self.port = free_port()
        self.log = Path(tempfile.mkstemp(prefix="cs-s_server-", suffix=".log")[1])
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}", *args],
            # Standard input stays open: at its end s_server shuts down.
            stdin=subprocess.PIPE, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while b"ACCEPT" not in self.log.read_bytes():
            assert self.proc.poll() is None, f"s_server {args} exited: {self.log.read_text()[-500:]}"
            assert time.monotonic() < deadline, "s_server did not start"
            time.sleep(0.05)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def received(self) -> bytes:
        return self.log.read_bytes()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.unlink(missing_ok=True)


TLS10_ONLY = ["-tls1", "-cipher", "AES128-SHA:@SECLEVEL=0"]


def one_error_line(r) -> str:
    lines = [l for l in r.err.splitlines() if l.strip()]
    errors = [l for l in lines if "error:" in l]
    assert len(errors) == 1, f"expected one error line: {lines[-6:]}"
    return errors[0]


def run_vault(cs, addr: str, ca: Path | None, token: str, *, wait: str = "30s", extra=None):
    env = dict(REF, VAULT_ADDR=addr, VAULT_TOKEN=token, VAULT_CLIENT_TIMEOUT="5s", **(extra or {}))
    if ca is not None:
        env["VAULT_CACERT"] = str(ca)
    return cs.run(RUN, env, bao=None, token=None, wait=wait, timeout=90)


# ---------------------------------------------------------------------------------------------
# 1. The TLS floor


@pytest.mark.offline
def test_tls10_server_receives_no_vault_request(cs, pki):
    """The reviewer's reproduction: without CURLOPT_SSLVERSION, libcurl 7.88 with Debian 12's
    OpenSSL 3.0 completed a TLS 1.0 handshake and sent GET /v1/... with X-Vault-Token."""
    token = CANARIES.new("token offered to a TLS 1.0 server")
    server = SServer(TLS10_ONLY + pki.pair("server"))
    try:
        r = run_vault(cs, f"https://{server.host}", pki.ca, token)
        got = server.received()
    finally:
        server.close()
    # Never show what the server received: it would hold the token.
    assert token.encode() not in got, "the TLS 1.0 server received the Vault token"
    assert b"X-Vault" not in got and b"GET /v1" not in got, "the TLS 1.0 server received an HTTP request"
    assert r.code == 78, r.describe()
    line = one_error_line(r)
    assert f"https://{server.host}" in line and "TLS >= 1.2" in line, line
    assert r.elapsed < FAST, f"took {r.elapsed:.1f}s with --wait 30s"
    assert r.report is None


@pytest.mark.offline
def test_tls10_server_receives_no_arvados_request(cs, pki, tmp_path):
    token = CANARIES.new("Arvados token offered to a TLS 1.0 server")
    server = SServer(TLS10_ONLY + pki.pair("server"))
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(tmp_path),
           "ARVADOS_API_HOST": server.host, "CRUNCH_SECRETS_ARVADOS_CACERT": str(pki.ca),
           "ARVADOS_API_TOKEN": token, "S": f"arvados:credential/{ARV_UUID}#secret",
           "PROBE_REPORT": str(tmp_path / "report.json")}
    start = time.monotonic()
    try:
        proc = subprocess.run([str(crunch_secrets_bin()), "run", "--no-manifest", "--wait", "30s", "--",
                               str(probe_bin())], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=90)
        got = server.received()
    finally:
        server.close()
    elapsed = time.monotonic() - start
    CANARIES.check(proc.stdout, "stdout")
    CANARIES.check(proc.stderr, "stderr")
    assert token.encode() not in got, "the TLS 1.0 server received the Arvados token"
    assert b"Authorization" not in got and b"GET /arvados" not in got, "the TLS 1.0 server received a request"
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 78, f"exit {proc.returncode}: {err[-600:]}"
    errors = [l for l in err.splitlines() if "error:" in l]
    assert len(errors) == 1 and server.host in errors[0] and "TLS >= 1.2" in errors[0], errors
    assert elapsed < FAST, f"took {elapsed:.1f}s with --wait 30s"
    assert not (tmp_path / "report.json").exists()


# ---------------------------------------------------------------------------------------------
# 2. Permanent TLS failures fail fast; a reset during the handshake is retried

PERMANENT = {
    # name: (s_server arguments, certificate pair, CA the client trusts, text in the error line)
    "TLS 1.0 only": (TLS10_ONLY, "server", "ca", "TLS >= 1.2"),
    "TLS 1.1 only": (["-tls1_1", "-cipher", "AES128-SHA:@SECLEVEL=0"], "server", "ca", "TLS >= 1.2"),
    "no shared cipher": (["-tls1_2", "-cipher", "NULL-SHA256:@SECLEVEL=0"], "server", "ca", "share no cipher"),
    "certificate of another CA": (["-www"], "other-server", "ca", "certificate problem"),
    "hostname mismatch": (["-www"], "wrong-name", "ca", "subject name"),
}


@pytest.mark.offline
@pytest.mark.parametrize("name", list(PERMANENT))
def test_permanent_tls_failure_fails_fast(cs, pki, name):
    args, pair, ca, text = PERMANENT[name]
    token = CANARIES.new(f"token for {name}")
    server = SServer(args + pki.pair(pair))
    try:
        r = run_vault(cs, f"https://{server.host}", pki.dir / f"{ca}.pem", token)
        got = server.received()
    finally:
        server.close()
    assert token.encode() not in got, f"{name}: the server received the token"
    assert r.code == 78, r.describe()
    line = one_error_line(r)
    assert f"https://{server.host}" in line and text in line, line
    assert r.elapsed < FAST, f"{name}: took {r.elapsed:.1f}s with --wait 30s"
    assert r.report is None


class ResetThenForward(CountingListener):
    """A TCP proxy to `upstream` that reads the ClientHello of the first `resets` connections and
    resets them (RST), then forwards every later connection byte for byte."""

    def __init__(self, upstream_port: int, resets: int) -> None:
        self.upstream_port = upstream_port
        self.resets = resets
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        if self.accepted <= self.resets:
            try:
                conn.recv(4096)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            finally:
                conn.close()
            return
        up = socket.create_connection(("127.0.0.1", self.upstream_port))
        for a, b in ((conn, up), (up, conn)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_reset_during_handshake_is_retried(cs_tls, bao_tls):
    proxy = ResetThenForward(bao_tls.port, resets=2)
    try:
        r = cs_tls.run(RUN, dict(REF, VAULT_ADDR=f"https://127.0.0.1:{proxy.port}"), wait="30s")
    finally:
        proxy.close()
    assert r.code == 0, r.describe()
    assert r.env["X"] == bao_tls.world.values["password"]
    assert proxy.accepted >= 3, f"only {proxy.accepted} connections"


@pytest.mark.offline
def test_unresolvable_host_is_retried_until_wait(cs):
    """A name that does not resolve is retried (as by Vault's client): a service name that
    resolves only seconds after the job starts, or a resolver restarting, look the same to
    libcurl as a name that never will. The final line names the host."""
    token = CANARIES.new("token for an unresolvable host")
    r = run_vault(cs, "https://crunch-secrets-no-such-host.invalid:8200", None, token, wait="2s")
    assert r.code == 69, r.describe()
    line = one_error_line(r)
    assert "crunch-secrets-no-such-host.invalid" in line and "resolve" in line, line
    assert r.elapsed >= 1.9, f"gave up after {r.elapsed:.1f}s, before --wait 2s"


# ---------------------------------------------------------------------------------------------
# 3. CA settings as Vault's client reads them


def hashed_dir(cs, ca: Path) -> Path:
    d = cs.tmpfs_dir("cs-capath-")
    shutil.copy(ca, d / "ca.pem")
    h = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(d / "ca.pem")], capture_output=True,
                       text=True, check=True).stdout.strip()
    (d / f"{h}.0").symlink_to(d / "ca.pem")
    return d


def test_cacert_wins_over_capath(cs_tls, bao_tls, pki):
    """Vault's client uses VAULT_CACERT alone when both are set: a CA directory that would
    verify the server does not rescue a CA file that does not."""
    good_dir = hashed_dir(cs_tls, bao_tls.ca_path)
    r = cs_tls.run(RUN, dict(REF, VAULT_CACERT=str(pki.other_ca), VAULT_CAPATH=str(good_dir)), wait="30s")
    assert r.code == 78, r.describe()
    assert r.elapsed < FAST, f"took {r.elapsed:.1f}s"
    # The right file with a directory that does not exist: the directory is not looked at.
    r = cs_tls.run(RUN, dict(REF, VAULT_CAPATH="/nonexistent/cs-capath"))
    assert r.code == 0, r.describe()


@pytest.mark.offline
@pytest.mark.parametrize("case", ["capath missing", "capath a file", "bao_capath missing", "cacert missing",
                                  "cacert a directory"])
def test_unusable_ca_setting_named_before_any_request(cs, pki, case):
    var, value = {
        "capath missing": ("VAULT_CAPATH", "/nonexistent/cs-ca-dir"),
        "capath a file": ("VAULT_CAPATH", str(pki.ca)),
        "bao_capath missing": ("BAO_CAPATH", "/nonexistent/cs-bao-ca-dir"),
        "cacert missing": ("VAULT_CACERT", "/nonexistent/cs-ca.pem"),
        "cacert a directory": ("VAULT_CACERT", str(pki.dir)),
    }[case]
    listener = CountingListener()
    try:
        r = run_vault(cs, f"https://127.0.0.1:{listener.port}", None, CANARIES.new(f"token ({case})"),
                      extra={var: value})
    finally:
        listener.close()
    assert r.code == 78, r.describe()
    line = one_error_line(r)
    assert f"{var}={value}" in line, line
    assert listener.accepted == 0, f"{case}: {listener.accepted} connection(s) before the error"
    assert r.elapsed < FAST
