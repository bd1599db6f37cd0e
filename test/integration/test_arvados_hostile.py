"""A hostile or broken Arvados API server in front of crunch-secrets' credential source: huge
and deeply nested answers, wrong types for secret/external_id/expires_at, a lying
items_available, a redirect to another host, an error page that echoes the token, a server that
trickles its answer. Expected every time: one line on stderr with a documented exit code,
nothing executed, no value or token in any output, and no request to another host."""

from __future__ import annotations

import http.server
import json
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from harness import CANARIES, crunch_secrets_bin, probe_bin

UUID = "zzzzz-oss07-hostilecred0001"
TOKEN = CANARIES.new("hostile arvados container token")
SECRET = CANARIES.new("hostile arvados credential secret")
CONTAINER = {"uuid": "zzzzz-dz642-hostilectr0001", "state": "Running"}


def item(**over):
    c = {"uuid": UUID, "name": "lab", "credential_class": "example:password",
         "external_id": "user", "expires_at": None, "scopes": []}
    c.update(over)
    return c


class Hostile:
    """An HTTPS server answering containers/current, the credentials list and the secret from
    `answers` (path prefix -> (status, headers, body bytes or a callable writing to the socket)),
    counting every request."""

    def __init__(self, answers: dict):
        self.answers = answers
        self.requests: list[str] = []
        self.work = Path(tempfile.mkdtemp(prefix="cs-arv-hostile-"))
        cert, key = self.work / "cert.pem", self.work / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=hostile", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ca = str(cert)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # requests carry the token
                pass

            def do_GET(self):
                owner.requests.append(self.path)
                path = self.path.split("/arvados/v1/", 1)[-1]
                for prefix, (status, headers, body) in owner.answers.items():
                    if path.startswith(prefix):
                        break
                else:
                    status, headers, body = 404, {}, b'{"errors":["Path not found"]}'
                if callable(body):
                    body(self)
                    return
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        subprocess.run(["rm", "-rf", str(self.work)])


def ok(obj) -> tuple[int, dict, bytes]:
    return 200, {}, json.dumps(obj).encode()


def standard(**over):
    answers = {"containers/current": ok(CONTAINER),
               "credentials?": ok({"kind": "arvados#credentialList", "items": [item()],
                                   "items_available": 1}),
               f"credentials/{UUID}/secret": ok({"external_id": "user", "secret": SECRET})}
    answers.update(over)
    # The most specific prefix first.
    return dict(sorted(answers.items(), key=lambda kv: -len(kv[0])))


def deep(n: int) -> bytes:
    return b'{"uuid":"x","state":"Running","deep":' + b"[" * n + b"]" * n + b"}"


def trickle(handler):
    """Headers, then one byte of a valid answer every second."""
    body = json.dumps(CONTAINER).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    for b in body:
        try:
            handler.wfile.write(bytes([b]))
            handler.wfile.flush()
        except OSError:
            return
        time.sleep(1)


other_host_hits: list[str] = []

CASES = {
    # name: (answers, expected exit codes)
    "huge answer": (standard(**{"containers/current": (200, {}, b'{"a":"' + b"x" * (40 << 20) + b'"}')}),
                    (76,)),
    "deep containers/current": (standard(**{"containers/current": (200, {}, deep(200000))}), (76,)),
    "deep list": (standard(**{"credentials?": (200, {}, b'{"items":[' + b"[" * 200000 + b"]" * 200000 + b"]}")}), (76,)),
    "deep secret": (standard(**{f"credentials/{UUID}/secret": (200, {}, b'{"secret":' + b"[" * 200000 + b"]" * 200000 + b"}")}), (76,)),
    "secret a number": (standard(**{f"credentials/{UUID}/secret": ok({"secret": 42})}), (76,)),
    "secret an object": (standard(**{f"credentials/{UUID}/secret": ok({"secret": {"v": SECRET}})}), (76,)),
    "external_id an object": (standard(**{f"credentials/{UUID}/secret": ok({"secret": SECRET, "external_id": {"a": 1}})}), (76,)),
    "expires_at a number": (standard(**{"credentials?": ok({"items": [item(expires_at=0)], "items_available": 1})}), (76,)),
    "expires_at not a date": (standard(**{"credentials?": ok({"items": [item(expires_at="soon")], "items_available": 1})}), (76,)),
    "items_available lying": (standard(**{"credentials?": ok({"items": [], "items_available": 10**12})}), (79,)),
    "redirect to another host": (standard(**{f"credentials/{UUID}/secret": (302, {"Location": "https://127.0.0.1:9/steal"}, b"{}")}), (76,)),
    "error page with the token": (standard(**{f"credentials/{UUID}/secret": (500, {}, json.dumps({"errors": [f"bad token {TOKEN} here"]}).encode())}), (69,)),
    "slow-loris": (standard(**{"containers/current": (200, {}, trickle)}), (69,)),
}


@pytest.mark.offline
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_arvados_answers(case, tmp_path):
    answers, codes = CASES[case]
    server = Hostile(answers)
    report = Path(tempfile.mkdtemp(prefix="cs-arv-hostile-report-", dir="/dev/shm")) / "r.json"
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(tmp_path),
           "ARVADOS_API_HOST": server.host, "CRUNCH_SECRETS_ARVADOS_CACERT": server.ca,
           "ARVADOS_API_TOKEN": TOKEN, "PROBE_REPORT": str(report),
           "S": f"arvados:credential/{UUID}#secret"}
    start = time.monotonic()
    try:
        proc = subprocess.run([str(crunch_secrets_bin()), "run", "--no-manifest", "--wait", "3s",
                               "--", str(probe_bin())], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    finally:
        server.close()
    elapsed = time.monotonic() - start
    CANARIES.check(proc.stdout, f"{case}: stdout")
    CANARIES.check(proc.stderr, f"{case}: stderr")
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode in codes, f"{case}: exit {proc.returncode}: {err[-600:]}"
    lines = [l for l in err.splitlines() if l.strip()]
    errors = [l for l in lines if ": error:" in l or l.startswith("crunch-secrets: error")]
    assert len(errors) == 1, f"{case}: expected one error line: {lines[-5:]}"
    assert not report.exists(), f"{case}: the command ran"
    assert elapsed < 30, f"{case}: took {elapsed:.1f}s with --wait 3s"
    assert not any("steal" in r for r in server.requests), "a redirect was followed"
    if case == "huge answer":
        # Refused at once, as Vault's over-size answers are: not retried until --wait.
        asked = [r for r in server.requests if "containers/current" in r]
        assert len(asked) == 1, f"sent {len(asked)} times"
