"""Adversarial review of the changes of 2026-12-04 (issue 8 inherited descriptors, issue 12 the
state file written right after the login, D4 credentials with control characters, the structure
refactor): attacks from outside, as a hostile server, a local attacker or an unlucky operator,
with a real OpenBao server and fault injection only where a fault is the point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

from faultproxy import FORWARD, Action, FaultProxy
from harness import CANARIES, crunch_secrets_bin

BIN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
REF = "vault:secret/data/app#password"


def accessors(bao) -> set[str]:
    return set(bao.api("GET", "auth/token/accessors?list=true")["data"]["keys"])


def container_record(work: Path, uuid: str) -> Path:
    manifest = {"version": 1, "files": [{"path": "db/password", "template": "${" + REF + "}"}]}
    rec = work / "container.json"
    rec.write_text(json.dumps({"uuid": uuid, "command": ["true"],
                               "environment": {"X": REF,
                                               "CRUNCH_SECRETS_MANIFEST_JSON": json.dumps(manifest)}}))
    return rec


def run_cleanup(state: Path) -> subprocess.CompletedProcess:
    clean = subprocess.run([str(crunch_secrets_bin()), "cleanup", "--state", str(state)],
                           env=dict(BIN_ENV), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
    CANARIES.check(clean.stdout, "cleanup stdout")
    CANARIES.check(clean.stderr, "cleanup stderr")
    return clean


def test_failed_prepare_whose_revocation_fails_keeps_the_state_file(cs, bao, world):
    """Vault answers the login, then refuses the read and drops the revocation (an outage, a
    load balancer restarting): prepare fails and cannot revoke its token. It must leave the state
    file naming the token, so that the launcher's rule (cleanup after a prepare that did not
    succeed) revokes it once Vault answers again; removing the state file first left a valid
    AppRole token nobody could revoke."""
    u = urlparse(bao.addr)
    broken = {"on": True}

    def decide(n, method, path):
        if broken["on"] and "secret/data/app" in path:
            return Action(kind="status", status=403)
        if broken["on"] and "revoke-self" in path:
            return Action(kind="reset_before")
        return FORWARD

    proxy = FaultProxy(u.hostname, u.port, decide)
    work = cs.tmpfs_dir()
    host_dir = work / "secrets"
    state = Path(str(host_dir) + ".state")
    rec = container_record(work, "zzzzz-dz642-revokefails01")
    env = dict(BIN_ENV, VAULT_ADDR=proxy.addr, CRUNCH_SECRETS_ROLE_ID=world.role_id,
               CRUNCH_SECRETS_SECRET_ID=world.secret_id)
    before = accessors(bao)
    try:
        p = subprocess.run([str(crunch_secrets_bin()), "prepare", "--container", str(rec),
                            "--secrets-dir", str(host_dir)], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        CANARIES.check(p.stdout, "prepare stdout")
        CANARIES.check(p.stderr, "prepare stderr")
        assert p.returncode != 0, "prepare succeeded although its read was refused"
        assert proxy.count("revoke-self") > 0, "prepare did not try to revoke its token"
        broken["on"] = False
        clean = run_cleanup(state)
    finally:
        proxy.close()
    assert clean.returncode == 0, clean.stderr.decode(errors="replace")
    assert accessors(bao) == before, (
        "prepare failed, could not revoke its token, and removed the state file that named it: "
        "the token stays valid until its TTL")
    assert not host_dir.exists()
    assert not state.exists()


def test_signal_while_the_state_file_is_written_leaves_no_token_behind(cs, bao, world):
    """SIGTERM while prepare writes its state file (held here by delaying the temporary file's
    fsync with strace): the temporary file holds the Vault token under a random name cleanup
    cannot know. Signals must wait while the state file is written, as they do for the secret
    files, so that either the state file is complete or no token is on disk."""
    work = cs.tmpfs_dir()
    host_dir = work / "secrets"
    state = Path(str(host_dir) + ".state")
    rec = container_record(work, "zzzzz-dz642-statesignal01")
    env = dict(BIN_ENV, VAULT_ADDR=bao.addr, CRUNCH_SECRETS_ROLE_ID=world.role_id,
               CRUNCH_SECRETS_SECRET_ID=world.secret_id)
    before = accessors(bao)
    # The first fsync prepare makes is the state file's, right after the login.
    p = subprocess.Popen(["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync",
                          "-e", "inject=fsync:delay_enter=3000000:when=1",
                          str(crunch_secrets_bin()), "prepare", "--container", str(rec),
                          "--secrets-dir", str(host_dir)], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not any(e.name.startswith(".secrets.state.tmp-") for e in work.iterdir()):
        assert p.poll() is None, f"prepare ended ({p.returncode}) before writing its state file"
        assert time.monotonic() < deadline, "timed out waiting for the state file"
        time.sleep(0.02)
    child = [int(line) for line in
             Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()]
    assert child, "strace has no child"
    os.kill(child[0], signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    CANARIES.check(out, "prepare stdout")
    CANARIES.check(err, "prepare stderr")
    clean = run_cleanup(state)
    assert clean.returncode == 0, clean.stderr.decode(errors="replace")
    left = [e.name for e in work.iterdir() if e.name.startswith(".secrets.state")]
    assert not left, f"a temporary state file holding the Vault token is left: {left}"
    assert accessors(bao) == before, "a token prepare obtained is still valid after cleanup"
    assert not host_dir.exists()
