"""The Arvados client (src/arvados) end to end against the stand-in served over HTTPS, through
the `arvados-fetch` test tool (test/tools/arvados-fetch.cpp), which prints SHA-256 digests of
what it fetched, never values. Checks the client conventions (ARVADOS_API_HOST as host:port
meaning https, ARVADOS_API_HOST_INSECURE, a CA bundle), lookup by uuid and by name, and one
clear line with the documented exit code for each failure.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness import CANARIES, REPO_ROOT, fail
from test_arvados_plugin import (
    ALICE_DONE, ALICE_RUN1, BOB_RUN, FIXTURE_DATA, FIXTURES, STANDIN, container_token, plain_token,
)

SECRETS = {c["uuid"]: c for c in FIXTURE_DATA["credentials"]}
LAB_AWS = "zzzzz-oss07-labawscred00001"
LAB_DB = "zzzzz-oss07-labdbpasswd0001"
ALICE_LOCKED = "zzzzz-dz642-alicelocked0001"


def fetch_bin() -> str:
    p = Path(os.environ.get("ARVADOS_FETCH_BIN", REPO_ROOT / "build" / "arvados-fetch"))
    if not p.is_file():
        fail(f"arvados-fetch not found at {p}; build with `ninja -C build` or set ARVADOS_FETCH_BIN")
    return str(p)


@pytest.fixture(scope="module")
def tls_standin():
    """The stand-in over HTTPS with a fresh self-signed certificate for 127.0.0.1."""
    work = Path(tempfile.mkdtemp(prefix="cs-arv-tls-"))
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=arvados-standin", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = work / "port"
    log = open(work / "standin.log", "wb")
    proc = subprocess.Popen([sys.executable, str(STANDIN), "--fixtures", str(FIXTURES), "--port", "0",
                             "--port-file", str(port_file), "--tls-cert", str(cert), "--tls-key", str(key),
                             "--verbose"], stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 20
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            fail("the TLS stand-in did not start")
        time.sleep(0.05)
    yield {"host": f"127.0.0.1:{int(port_file.read_text())}", "ca": str(cert)}
    proc.terminate()
    proc.wait(10)
    CANARIES.check((work / "standin.log").read_bytes(), "the TLS stand-in's log")
    subprocess.run(["rm", "-rf", str(work)])


def run(standin, token: str | None, *names: str, ca: bool = True, insecure: str | None = None,
        host: str | None = None):
    env = {"PATH": "/usr/bin:/bin", "ARVADOS_API_HOST": host or standin["host"]}
    if ca:
        env["CRUNCH_SECRETS_ARVADOS_CACERT"] = standin["ca"]
    if insecure is not None:
        env["ARVADOS_API_HOST_INSECURE"] = insecure
    if token is not None:
        env["ARVADOS_API_TOKEN"] = token
    proc = subprocess.run([fetch_bin(), *names], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)
    CANARIES.check(proc.stdout, "arvados-fetch stdout")
    CANARIES.check(proc.stderr, "arvados-fetch stderr")
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def sha(v: str) -> str:
    return hashlib.sha256(v.encode()).hexdigest()


def test_by_uuid_and_by_name_over_https(tls_standin):
    code, out, err = run(tls_standin, container_token(ALICE_RUN1), LAB_DB, "lab-aws", LAB_DB)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 and lines[-1] == "requests=5", out  # 3 in round 1, 2 secrets
    by_ref = {l.split()[0]: l.split() for l in lines[:-1]}
    assert by_ref[LAB_DB][1:4] == [LAB_DB, "lab-db", "example:password"]
    assert by_ref[LAB_DB][4] == "secret=" + sha(SECRETS[LAB_DB]["secret"]), "wrong secret"
    assert by_ref[LAB_DB][5] == "external_id=" + sha("labdbuser")
    assert by_ref["lab-aws"][1] == LAB_AWS
    assert by_ref["lab-aws"][4] == "secret=" + sha(SECRETS[LAB_AWS]["secret"]), "wrong secret"


def test_insecure_flag_instead_of_a_ca(tls_standin):
    code, out, err = run(tls_standin, container_token(ALICE_RUN1), "lab-aws", ca=False, insecure="true")
    assert code == 0, err
    code, out, err = run(tls_standin, container_token(ALICE_RUN1), "lab-aws", ca=False)
    assert code == 78, (code, err)
    assert "CA bundle" in err and "ARVADOS_API_HOST_INSECURE" in err, err


@pytest.mark.parametrize("token_of, names, want_code, want_text", [
    (lambda: container_token(ALICE_RUN1), ["no-such-name"], 79, "no credential with this name"),
    (lambda: container_token(ALICE_RUN1), ["shared-name"], 65, "2 credentials have this name"),
    (lambda: container_token(ALICE_RUN1), ["zzzzz-oss07-otheronly000001"], 79, "not readable"),
    (lambda: container_token(ALICE_RUN1), ["lab-expired"], 77, "expired"),
    (lambda: container_token(ALICE_LOCKED), ["lab-aws"], 77, "is Locked, not Running"),
    (lambda: container_token(ALICE_DONE), ["lab-aws"], 80, "refused ARVADOS_API_TOKEN"),
    (lambda: plain_token("zzzzz-gj3su-alicetoken00001"), ["lab-aws"], 77, "not a container's token"),
    (lambda: container_token(BOB_RUN), ["lab-aws"], 79, "no credential with this name"),
    (lambda: None, ["lab-aws"], 78, "ARVADOS_API_TOKEN is not set"),
])
def test_each_failure_is_one_line_with_its_code(tls_standin, token_of, names, want_code, want_text):
    code, out, err = run(tls_standin, token_of(), *names)
    assert code == want_code, (code, err)
    assert want_text in err, err
    assert err.count("\n") == 1 and out == "", (out, err)
    assert names[0] in err, err


def test_host_conventions(tls_standin):
    code, _, err = run(tls_standin, container_token(ALICE_RUN1), "lab-aws", host="http://" + tls_standin["host"])
    assert code == 78 and "ARVADOS_API_HOST" in err, err
    code, _, err = run(tls_standin, container_token(ALICE_RUN1), "lab-aws", host="https://" + tls_standin["host"])
    assert code == 0, err
