"""The HTTP conversation, seen through a recording proxy: headers, one fetch per path and
version, which statuses are retried and which are not."""

from __future__ import annotations

import pytest

from harness import FaultProxy

RUN = ["run", "--no-manifest", "--", "{probe}"]


@pytest.fixture
def proxy(bao):
    made = []

    def make(fault=None, delay=None):
        p = FaultProxy(bao, fault, delay)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def reads(p, prefix="/v1/secret/data/"):
    return [x for x in p.paths() if x.startswith(prefix)]


def test_headers_and_single_fetch(cs, world, proxy):
    p = proxy()
    env = {"VAULT_ADDR": p.addr}
    env.update({f"A{i}": "vault:secret/data/app#password" for i in range(5)})
    env.update({"B": "x${vault:secret/data/app#username}", "C": "vault:secret/data/versioned#value#1",
                "D": "vault:secret/data/versioned#value#1", "E": "vault:secret/data/versioned#value"})
    r = cs.run(RUN, env)
    assert r.code == 0, r.describe()
    assert r.env["A0"] == world.values["password"]
    got = reads(p)
    assert sorted(got) == sorted(["/v1/secret/data/app", "/v1/secret/data/versioned?version=1",
                                  "/v1/secret/data/versioned"]), f"reads: {got}"
    for req in p.requests:
        assert req["headers"].get("x-vault-request") == "true", f"no X-Vault-Request on {req['path']}"
        if req["path"].startswith("/v1/secret/"):
            assert req["headers"].get("x-vault-token") or req["headers"].get("authorization"), "no token sent"


def test_namespace_header_sent(cs, proxy):
    p = proxy()
    r = cs.run(RUN, {"VAULT_ADDR": p.addr, "VAULT_NAMESPACE": "team-x", "X": "vault:secret/data/app#password"})
    # The namespace does not exist on the server; what matters is the header.
    assert any(req["headers"].get("x-vault-namespace") == "team-x" for req in p.requests), r.describe()


@pytest.mark.parametrize("status", [412, 429, 500, 502, 503])
def test_retried_statuses(cs, world, proxy, status):
    p = proxy(lambda n, m, path: status if path.startswith("/v1/secret/") and n < 3 else None)
    r = cs.run(RUN, {"VAULT_ADDR": p.addr, "X": "vault:secret/data/app#password"}, wait="20s")
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]
    assert len(reads(p)) >= 2, f"status {status} was not retried"


@pytest.mark.parametrize("status,code", [(400, None), (403, 77), (404, 79), (501, None)])
def test_not_retried_statuses(cs, proxy, status, code):
    p = proxy(lambda n, m, path: status if path.startswith("/v1/secret/") else None)
    r = cs.run(RUN, {"VAULT_ADDR": p.addr, "X": "vault:secret/data/app#password"}, wait="20s")
    assert r.code != 0 and r.report is None, r.describe()
    if code is not None:
        assert r.code == code, r.describe()
    assert len(reads(p)) == 1, f"status {status} was retried ({len(reads(p))} reads)"
    assert r.elapsed < 10


def test_max_retries(cs, proxy):
    p = proxy(lambda n, m, path: 503 if path.startswith("/v1/secret/") else None)
    r = cs.run(RUN, {"VAULT_ADDR": p.addr, "VAULT_MAX_RETRIES": "2", "X": "vault:secret/data/app#password"},
               wait="60s")
    assert r.code == 69, r.describe()
    assert len(reads(p)) == 3, f"{len(reads(p))} reads with VAULT_MAX_RETRIES=2"
    assert r.elapsed < 20


def test_retry_backoff_within_deadline(cs, proxy):
    p = proxy(lambda n, m, path: 503 if path.startswith("/v1/secret/") else None)
    r = cs.run(RUN, {"VAULT_ADDR": p.addr, "X": "vault:secret/data/app#password"}, wait="3s")
    assert r.code == 69, r.describe()
    assert 2.8 <= r.elapsed <= 7, f"elapsed {r.elapsed:.2f}s for --wait 3s"
    n = len(reads(p))
    # 100 ms doubling to 2 s with full jitter: a handful of attempts in 3 s, not hundreds.
    assert 2 <= n <= 60, f"{n} attempts in 3 s"


def test_not_json_is_76(cs, bao, proxy):
    import http.server
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            data = b"<html>not json</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        r = cs.run(RUN, {"VAULT_ADDR": f"http://127.0.0.1:{srv.server_address[1]}",
                         "X": "vault:secret/data/app#password"})
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.code == 76, r.describe()


def test_reads_run_in_parallel(cs, world, proxy):
    p = proxy(delay=lambda n, m, path: 1.0 if path.startswith("/v1/secret/data/") else 0)
    env = {"VAULT_ADDR": p.addr, "A": "vault:secret/data/app#password", "B": "vault:secret/data/aws#secret_key",
           "C": "vault:secret/data/dotenv#API_TOKEN", "D": "vault:secret/data/versioned#value#1",
           "E": "vault:secret/data/ini#password", "F": "vault:secret/data/typed#s"}
    r = cs.run(RUN, env)
    assert r.code == 0, r.describe()
    assert len(reads(p)) == 6
    assert r.elapsed < 3.5, f"6 reads of 1 s each took {r.elapsed:.1f}s: not parallel"


def test_not_dumpable_while_holding_secrets(cs, world, proxy):
    """Run as an unprivileged user: while a read is in flight (after login, with the token held),
    /proc/PID/ of a non-dumpable process belongs to root."""
    import os
    import subprocess
    import threading
    import time as _time

    from harness import crunch_secrets_bin, probe_bin

    for b in (crunch_secrets_bin(), probe_bin()):
        for parent in [b, *b.parents]:
            if parent == parent.parent:
                break
            if not os.stat(parent).st_mode & 0o001:
                pytest.fail(f"{parent} is not accessible to an unprivileged user; cannot run this test")
    p = proxy(delay=lambda n, m, path: 2.0 if path.startswith("/v1/secret/data/versioned") else 0)
    d = cs.tmpfs_dir()
    os.chmod(d, 0o777)
    owners = []

    def watch(proc):
        deadline = _time.monotonic() + 1.5
        while _time.monotonic() < deadline and proc.poll() is None:
            try:
                owners.append(os.stat(f"/proc/{proc.pid}/environ").st_uid)
            except OSError:
                pass
            _time.sleep(0.05)

    env = {"PATH": "/usr/bin:/bin", "VAULT_ADDR": p.addr, "VAULT_TOKEN": cs.bao.root_token,
           "X": "vault:secret/data/versioned#value#1", "PROBE_REPORT": str(d / "report.json")}
    proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(crunch_secrets_bin()),
                             "run", "--no-manifest", "--", str(probe_bin())], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _time.sleep(0.3)
    t = threading.Thread(target=watch, args=(proc,))
    t.start()
    out, err = proc.communicate(timeout=30)
    t.join()
    cs.scan(out, "stdout")
    cs.scan(err, "stderr")
    assert proc.returncode == 0, f"exit {proc.returncode}; stderr: {err.decode(errors='replace')[-500:]!r}"
    assert owners, "could not observe the process"
    assert set(owners) == {0}, f"/proc/PID/environ owners while secrets held: {sorted(set(owners))}"
    import json
    rep = json.loads((d / "report.json").read_text())
    assert rep["dumpable"] == 1 and rep["uid"] == 65534
