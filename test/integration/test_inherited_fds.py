"""Which descriptors COMMAND inherits (docs/supervise.md, "Descriptors"): exactly those
crunch-secrets was started with — a socket a service manager passed (LISTEN_FDS), a pipe a
launcher handed over — and nothing crunch-secrets opened itself (libcurl's wakeup socket pair,
connections to Vault, the signalfd, output pipes), in exec mode and in supervise mode. A descriptor
number that was closed at the start and that crunch-secrets reused must not reach COMMAND either.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from harness import crunch_secrets_bin

# Prints one line per open descriptor of the child: number and target ("socket:[inode]",
# "pipe:[inode]", a path). The descriptor os.listdir itself uses is gone by the time readlink
# runs and is skipped.
FD_LISTER = (
    "import os\n"
    "for n in sorted(os.listdir('/proc/self/fd'), key=int):\n"
    "    try: print(n, os.readlink('/proc/self/fd/' + n))\n"
    "    except OSError: pass\n")

MODES = {
    "exec": ["run"],
    "supervise": ["run", "--supervise"],
    "supervise --redact": ["run", "--supervise", "--redact"],
}


def child_fds(cs, mode: str, *, pass_fds=(), env=None, close_stdin=False) -> dict[int, str]:
    """Runs the lister under crunch-secrets (one Vault reference, one file) and returns the
    child's descriptors as {number: target}."""
    work = cs.tmpfs_dir()
    full = cs.base_env(cs.bao, "root")
    full.update({"CRUNCH_SECRETS_DIR": str(work / "secrets"), "X": "vault:secret/data/app#password",
                 "CRUNCH_SECRETS_MANIFEST_JSON":
                     '{"version": 1, "files": [{"path": "p", "template": '
                     '"${vault:secret/data/app#password}"}]}'})
    full.update(env or {})
    argv = [str(crunch_secrets_bin()), *MODES[mode], "--wait", "10s", "--", "python3", "-c",
            FD_LISTER]
    proc = subprocess.run(argv, env=full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, pass_fds=pass_fds, timeout=60,
                          preexec_fn=(lambda: os.close(0)) if close_stdin else None)
    cs.scan(proc.stdout, f"stdout ({mode})")
    cs.scan(proc.stderr, f"stderr ({mode})")
    assert proc.returncode == 0, (proc.returncode, proc.stderr.decode(errors="replace"))
    fds = {}
    for line in proc.stdout.decode().splitlines():
        n, _, target = line.strip().partition(" ")
        fds[int(n)] = target
    assert fds, "the child listed no descriptor"
    return fds


def target_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@pytest.mark.parametrize("mode", list(MODES))
def test_child_inherits_exactly_the_descriptors_passed_in(cs, mode):
    """A listening socket passed the systemd way (LISTEN_FDS) and a pipe reach COMMAND under the
    same numbers; nothing else beyond stdin/stdout/stderr does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    r, w = os.pipe()
    try:
        passed = {listener.fileno(): target_of(listener.fileno()), r: target_of(r)}
        fds = child_fds(cs, mode, pass_fds=tuple(passed),
                        env={"LISTEN_FDS": "1", "LISTEN_PID": "0"})
    finally:
        listener.close()
        os.close(r)
        os.close(w)
    for n, target in passed.items():
        assert fds.get(n) == target, f"{mode}: passed descriptor {n} ({target}) missing: {fds}"
    extra = {n: t for n, t in fds.items() if n > 2 and n not in passed}
    assert not extra, f"{mode}: the child inherited descriptors crunch-secrets opened: {extra}"
    assert not [t for n, t in fds.items() if n <= 2 and t.startswith("socket:")], fds


@pytest.mark.parametrize("mode", ["exec", "supervise"])
def test_a_descriptor_number_closed_at_start_is_not_inherited(cs, mode):
    """Started with stdin closed, crunch-secrets' own descriptors may take number 0 (libcurl's
    socket pair does): COMMAND must then start with 0 closed, as crunch-secrets did, not holding
    a socket of the supervisor."""
    fds = child_fds(cs, mode, close_stdin=True)
    assert 0 not in fds, f"{mode}: descriptor 0 was closed at the start, the child has {fds[0]}"
    assert not [t for t in fds.values() if t.startswith("socket:")], f"{mode}: {fds}"
