"""Hostile inputs to what a launcher or an operator hands crunch-secrets: a state file that
prepare did not write (cleanup often runs as root, and state files live in shared /dev/shm), a
container record built to crash the parser, the descriptors a supervised child inherits, and a
launcher that stops prepare half-way."""

from __future__ import annotations

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


def run_cs(args, *, stdin=None, timeout=120):
    proc = subprocess.run([str(crunch_secrets_bin()), *args], env=BIN_ENV, input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    CANARIES.check(proc.stdout, "stdout")
    CANARIES.check(proc.stderr, "stderr")
    return proc


def victim(work: Path) -> Path:
    d = work / "victim"
    d.mkdir()
    (d / "passwd").write_text("precious\n")
    return d


@pytest.mark.offline
@pytest.mark.parametrize("case", ["owned by another user", "group-writable", "another directory"])
def test_cleanup_refuses_a_state_file_prepare_did_not_write(cs, case):
    """cleanup removes what a state file names: one planted by someone else, or naming a directory
    that is not its own DIR, must be refused (exit 65) with nothing removed."""
    work = cs.tmpfs_dir()
    target = victim(work)
    if case == "another directory":
        state = work / "secrets.state"  # its own DIR would be work/secrets
    else:
        state = work / "victim.state"  # consistent with DIR, but not the caller's
    state.write_text(json.dumps({"version": 1, "secrets_dir": str(target), "files": ["passwd"],
                                 "dirs": [], "leases": []}))
    state.chmod(0o600)
    if case == "owned by another user":
        assert os.geteuid() == 0, "this case needs root to give the state file to another uid"
        os.chown(state, 65534, 65534)
    elif case == "group-writable":
        state.chmod(0o620)
    proc = run_cs(["cleanup", "--state", str(state)])
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 65, (proc.returncode, err)
    assert err.count("\n") == 1 and str(state) in err, err
    assert (target / "passwd").read_text() == "precious\n", "cleanup removed a file it did not write"
    assert state.exists(), "cleanup removed a state file it refused"


@pytest.mark.offline
def test_cleanup_accepts_its_own_state_file_by_another_spelling(cs):
    """The consistency check compares directories, not strings: DIR given with a trailing slash
    and a dotted path to the state file still clean up."""
    work = cs.tmpfs_dir()
    d = work / "secrets"
    d.mkdir(mode=0o700)
    (d / "f").write_text("x")
    state = work / "secrets.state"
    state.write_text(json.dumps({"version": 1, "secrets_dir": str(d) + "/", "files": ["f"],
                                 "dirs": [], "leases": []}))
    state.chmod(0o600)
    proc = run_cs(["cleanup", "--state", str(work / "." / "secrets.state")])
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert not d.exists() and not state.exists()


@pytest.mark.offline
def test_prepare_survives_a_deeply_nested_json_mount(cs):
    """A container record is user-controlled: a json mount nested a million levels deep must be
    refused with exit 65 and one line, not crash prepare (it did: SIGSEGV in the serialiser)."""
    work = cs.tmpfs_dir()
    depth = 1_000_000
    record = ('{"uuid":"zzzzz-dz642-deepdeepdeep01","command":["true"],"environment":{},'
              '"mounts":{"/etc/deep.json":{"kind":"json","content":' + "[" * depth + "]" * depth + "}}}")
    proc = run_cs(["prepare", "--container", "-", "--secrets-dir", str(work / "s")],
                  stdin=record.encode())
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 65, (proc.returncode, err[-300:])
    assert err.count("\n") == 1 and "nested deeper" in err, err[-300:]
    assert proc.stdout == b"", "a result was written although prepare failed"
    assert not (work / "s").exists() and not (work / "s.state").exists()


@pytest.mark.offline
def test_prepare_accepts_an_ordinary_nested_json_mount(cs):
    """The depth limit leaves real content alone: a json manifest mount nested a few levels."""
    work = cs.tmpfs_dir()
    content = {"version": 1, "env": {"A": "b"}, "x": [[[[{"y": [1, 2, {"z": []}]}]]]]}
    record = {"uuid": "zzzzz-dz642-shallowshallo", "command": ["true"], "environment": {},
              "mounts": {"/etc/other.json": {"kind": "json", "content": content}}}
    proc = run_cs(["prepare", "--container", "-", "--secrets-dir", str(work / "s")],
                  stdin=json.dumps(record).encode())
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    result = json.loads(proc.stdout)
    clean = run_cs(["cleanup", "--state", result["state"]])
    assert clean.returncode == 0, clean.stderr.decode(errors="replace")


# Prints one line per open descriptor of the child: number, target, and "tcp" when the target is
# a TCP socket (its inode is in /proc/net/tcp or tcp6).
FD_LISTER = (
    "import os\n"
    "tcp = set()\n"
    "for t in ('/proc/net/tcp', '/proc/net/tcp6'):\n"
    "    for line in open(t).read().splitlines()[1:]:\n"
    "        tcp.add(line.split()[9])\n"
    "for n in sorted(os.listdir('/proc/self/fd'), key=int):\n"
    "    try: target = os.readlink('/proc/self/fd/' + n)\n"
    "    except OSError: continue\n"
    "    inode = target[8:-1] if target.startswith('socket:[') else ''\n"
    "    print(n, target, 'tcp' if inode in tcp else '')\n")


def supervised_fds(cs) -> list[str]:
    res = cs.run(["run", "--supervise", "--no-manifest", "--", "python3", "-c", FD_LISTER],
                 {"X": "vault:secret/data/app#password"})
    assert res.code == 0, res.err
    return res.stdout.decode().splitlines()


def test_supervised_child_inherits_no_connection_to_vault(cs):
    """The supervisor keeps its keep-alive connection to Vault; COMMAND must not inherit it (over
    plain HTTP it could read the answers, and a token renewal's answer names the token)."""
    fds = supervised_fds(cs)
    assert fds, "the child listed no descriptor"
    assert not [l for l in fds if l.endswith(" tcp")], f"the child inherited a TCP socket: {fds}"


def test_supervised_child_inherits_no_socket_of_the_supervisor(cs):
    """Nor any other socket crunch-secrets opened: libcurl's wakeup socket pair has no
    close-on-exec; crunch-secrets marks every descriptor it did not inherit before forking."""
    fds = supervised_fds(cs)
    assert not [l for l in fds if "socket:" in l], f"the child inherited sockets: {fds}"


def test_prepare_killed_by_sigterm_after_login_leaves_no_valid_token(cs, bao, world):
    """SIGTERM while prepare waits for a read (after logging in with AppRole) must not leave a
    valid token that no state file records: prepare writes the state file right after its login
    (test_prepare_signals.py covers SIGINT and the other points). The cleanup the launcher runs
    after it (docs/crunch-run-protocol.md, "Interrupted prepare") revokes the token, and whatever
    the outcome no token of this test outlives it: the dev server is shared."""
    u = urlparse(bao.addr)
    stall = Action(kind="stall_before", seconds=30, then=FORWARD)
    proxy = FaultProxy(u.hostname, u.port,
                       lambda n, m, p: stall if "secret/data/app" in p else FORWARD)
    work = cs.tmpfs_dir()
    host_dir = work / "secrets"
    record = {"uuid": "zzzzz-dz642-sigtermsigter", "command": ["true"],
              "environment": {"X": "vault:secret/data/app#password"}}

    def accessors():
        return set(bao.api("GET", "auth/token/accessors?list=true")["data"]["keys"])

    before = accessors()
    env = dict(BIN_ENV, VAULT_ADDR=proxy.addr, CRUNCH_SECRETS_ROLE_ID=world.role_id,
               CRUNCH_SECRETS_SECRET_ID=world.secret_id)
    p = None
    try:
        rec = work / "container.json"
        rec.write_text(json.dumps(record))
        p = subprocess.Popen([str(crunch_secrets_bin()), "prepare", "--container", str(rec),
                              "--secrets-dir", str(host_dir)], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while proxy.count("secret/data/app") == 0:
            assert time.monotonic() < deadline and p.poll() is None, "prepare never read the secret"
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        CANARIES.check(out, "prepare stdout")
        CANARIES.check(err, "prepare stderr")
        state = Path(str(host_dir) + ".state")
        assert state.exists() or accessors() == before, (
            f"prepare ended ({p.returncode}) with a valid token and no state file to revoke it")
        # The state file names the proxy's address, which forwards the revocation at once.
        done = run_cs(["cleanup", "--state", str(state)])
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        assert accessors() == before, "cleanup after the killed prepare left its token valid"
    finally:
        proxy.close()
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        # A failed assertion must not leave a live AppRole token in the shared server until its
        # TTL: revoke whatever token appeared meanwhile (pytest runs one test at a time).
        for accessor in accessors() - before:
            bao.api("POST", "auth/token/revoke-accessor", {"accessor": accessor})


@pytest.mark.offline
@pytest.mark.parametrize("container_dir", ["/", "/x/../../etc", "/run//s", "/run/./s"])
def test_prepare_refuses_a_container_secrets_dir_that_is_not_a_plain_path(cs, container_dir):
    """The launcher bind-mounts DIR at the result's mount.container_path: '/' would cover the
    container's root and '/x/../../etc' its /etc, while `files` would name paths that do not
    exist. Exit 65, nothing written."""
    work = cs.tmpfs_dir()
    manifest = {"version": 1, "files": [{"path": "f", "template": "plain"}]}
    record = {"uuid": "zzzzz-dz642-dotdotdotdot1", "command": ["true"],
              "environment": {"CRUNCH_SECRETS_MANIFEST_JSON": json.dumps(manifest),
                              "CRUNCH_SECRETS_DIR": container_dir}}
    proc = run_cs(["prepare", "--container", "-", "--secrets-dir", str(work / "s")],
                  stdin=json.dumps(record).encode())
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 65, (proc.returncode, err, proc.stdout[:300])
    assert err.count("\n") == 1 and "secrets directory" in err, err
    assert not (work / "s").exists() and not (work / "s.state").exists()
