"""A launcher that stops `prepare` half-way (docs/crunch-run-protocol.md, "Interrupted prepare"):
SIGTERM or SIGINT before the login, after it (while a read waits on Vault), and after the files
are written (while the result waits on a full pipe). Whatever the point, the documented rule — run
`cleanup --state DIR.state` after a prepare that did not succeed — must leave no valid token
prepare obtained, no file, no directory and no state file; and a prepare killed before its login
leaves nothing at all."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from faultproxy import FORWARD, Action, FaultProxy
from harness import CANARIES, crunch_secrets_bin

BIN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
REF = "vault:secret/data/app#password"
# Held long enough that the signal always arrives first; then the request is dropped, so a
# stalled login never reaches Vault after the test.
STALL = Action(kind="stall_before", seconds=20, then=Action(kind="reset_before"))


def accessors(bao) -> set[str]:
    return set(bao.api("GET", "auth/token/accessors?list=true")["data"]["keys"])


def wait_until(predicate, proc, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"prepare ended ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def full_pipe() -> tuple[int, int]:
    """A pipe whose buffer is full: writing the result to it blocks until the reader reads."""
    r, w = os.pipe()
    flags = fcntl.fcntl(w, fcntl.F_GETFL)
    fcntl.fcntl(w, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        while True:
            os.write(w, b"\0" * 65536)
    except BlockingIOError:
        pass
    fcntl.fcntl(w, fcntl.F_SETFL, flags)
    return r, w


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("point", ["before login", "after login", "after files written"])
def test_interrupted_prepare_leaves_nothing_after_cleanup(cs, bao, world, point, signo):
    u = urlparse(bao.addr)
    stall_on = {"before login": "auth/approle/login", "after login": "secret/data/app"}.get(point)
    proxy = FaultProxy(u.hostname, u.port,
                       lambda n, m, p: STALL if stall_on and stall_on in p else FORWARD)
    work = cs.tmpfs_dir()
    host_dir = work / "secrets"
    state = Path(str(host_dir) + ".state")
    manifest = {"version": 1, "files": [{"path": "db/password", "template": "${" + REF + "}"}]}
    rec = work / "container.json"
    rec.write_text(json.dumps({"uuid": "zzzzz-dz642-interrupted01", "command": ["true"],
                               "environment": {"X": REF,
                                               "CRUNCH_SECRETS_MANIFEST_JSON": json.dumps(manifest)}}))
    env = dict(BIN_ENV, VAULT_ADDR=proxy.addr, CRUNCH_SECRETS_ROLE_ID=world.role_id,
               CRUNCH_SECRETS_SECRET_ID=world.secret_id)
    before = accessors(bao)
    r, w = full_pipe()
    try:
        p = subprocess.Popen([str(crunch_secrets_bin()), "prepare", "--container", str(rec),
                              "--secrets-dir", str(host_dir), "--result-fd", str(w)], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, pass_fds=(w,))
        os.close(w)
        if stall_on:
            wait_until(lambda: proxy.count(stall_on) > 0, p, f"the request to {stall_on}")
        else:
            wait_until(lambda: (host_dir / "db" / "password").exists(), p, "the file")
            time.sleep(0.2)  # now blocked writing the result into the full pipe
        p.send_signal(signo)
        out, err = p.communicate(timeout=60)
        os.close(r)
        CANARIES.check(out, "prepare stdout")
        CANARIES.check(err, "prepare stderr")
        assert p.returncode in (-signo, 128 + signo), (p.returncode, err.decode(errors="replace"))
        if point == "before login":
            assert not state.exists() and not host_dir.exists(), "a prepare killed before login left files"
            assert accessors(bao) == before, "a token exists although the login never reached Vault"
        elif point == "after login":
            assert state.exists() or accessors(bao) == before, (
                "prepare was killed after its login with a valid token and no state file to revoke it")
        # The launcher's rule after a prepare that did not succeed (cleanup reaches Vault through
        # the proxy too: the state file names the address prepare used).
        clean = subprocess.run([str(crunch_secrets_bin()), "cleanup", "--state", str(state)],
                               env=dict(BIN_ENV), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60)
    finally:
        proxy.close()
    CANARIES.check(clean.stdout, "cleanup stdout")
    CANARIES.check(clean.stderr, "cleanup stderr")
    assert clean.returncode == 0, clean.stderr.decode(errors="replace")
    assert accessors(bao) == before, f"{point}: a token prepare obtained is still valid"
    assert not host_dir.exists(), f"{point}: the secrets directory is left: {list(host_dir.rglob('*'))}"
    assert not state.exists(), f"{point}: the state file is left"
