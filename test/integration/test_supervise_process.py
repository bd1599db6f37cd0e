"""Supervise mode's PID-1 duties with the signal probe (test/probe/sigprobe.c): signals
forwarded, 128+N when the child dies of signal N, exit codes 0-255 passed through, orphans
reaped as PID 1 (a PID namespace made with `unshare --pid --fork`) and as a subreaper, and the
supervisor ending with its child."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from supervised import SIGNALS_FORWARDED, Supervised, read_lines, sigprobe, wait_for

REF = {"X": "vault:secret/data/app#password"}


def test_every_signal_is_forwarded_and_sigterm_gives_143(cs, bao):
    log = cs.tmpfs_dir() / "sig.log"
    run = Supervised(cs, ["run", "--supervise", "--no-manifest", "--", sigprobe()],
                     dict(REF, SIGPROBE_LOG=str(log)), bao=bao)
    ready = wait_for(lambda: [l for l in read_lines(log) if l.startswith("ready ")], 20, "the probe")
    _, pid, ppid, mask = ready[0].split()
    assert int(ppid) == run.pid, "the probe is not crunch-secrets' child"
    assert mask == "blocked=0", f"the child inherited a signal mask: {mask}"
    for s in SIGNALS_FORWARDED:
        run.signal(s)
        wait_for(lambda: f"sig {int(s)}" in read_lines(log), 10, f"signal {s.name} at the child")
    run.signal(signal.SIGTERM)
    code = run.wait(20)
    assert code == 128 + 15, run.describe()
    got = [l for l in read_lines(log) if l.startswith("sig ")]
    assert got == [f"sig {int(s)}" for s in SIGNALS_FORWARDED] + ["sig 15"], got
    assert "SIGCHLD" not in run.err


def test_sigint_reaches_the_child_and_gives_130(cs, bao):
    log = cs.tmpfs_dir() / "sig.log"
    run = Supervised(cs, ["run", "--supervise", "--no-manifest", "--", sigprobe()],
                     dict(REF, SIGPROBE_LOG=str(log)), bao=bao)
    wait_for(lambda: any(l.startswith("ready ") for l in read_lines(log)), 20, "the probe")
    run.signal(signal.SIGINT)
    assert run.wait(20) == 130, run.describe()
    assert "sig 2" in read_lines(log)


def test_exit_codes_0_to_255_pass_through(cs):
    # No reference: no Vault round trip, so all 256 codes are cheap to check.
    for code in range(256):
        run = Supervised(cs, ["run", "--supervise", "--no-manifest", "--", sigprobe()],
                         {"SIGPROBE_SECONDS": "0", "SIGPROBE_EXIT": str(code)}, token=None)
        assert run.wait(20) == code, run.describe()


def test_exit_code_with_secrets_and_the_supervisor_ends_with_its_child(cs, bao, world):
    start = time.monotonic()
    run = Supervised(cs, ["run", "--supervise", "--no-manifest", "--", "sh", "-c",
                          'test "$X" = "$EXPECTED" && sleep 0.3 && exit 42'],
                     dict(REF, EXPECTED=world.values["password"]), bao=bao)
    assert run.wait(30) == 42, run.describe()
    # A batch job's sidecar must not outlive the job: the child ran 0.3 s.
    assert time.monotonic() - start < 10


def test_command_not_found_is_127_and_not_executable_126(cs, bao):
    run = Supervised(cs, ["run", "--supervise", "--no-manifest", "--", "no-such-command-xyz"], dict(REF),
                     bao=bao)
    assert run.wait(30) == 127, run.describe()
    assert "cannot execute 'no-such-command-xyz'" in run.err
    d = cs.tmpfs_dir()
    (d / "noexec").write_text("#!/bin/sh\n")
    run = Supervised(cs, ["run", "--supervise", "--no-manifest", "--", str(d / "noexec")], dict(REF),
                     bao=bao)
    assert run.wait(30) == 126, run.describe()


def _zombie_script(marker_dir) -> str:
    # The subshell forks `sleep` and exits at once: sleep is orphaned and reparented to PID 1
    # (or the nearest subreaper). After it has exited, nobody but the supervisor can reap it.
    return (
        f'(sleep 0.3 & echo $! > {marker_dir}/orphan); '
        f'echo ppid=$PPID > {marker_dir}/info; '
        f'sleep 0.1; awk "{{print \\$4}}" /proc/$(cat {marker_dir}/orphan)/stat > {marker_dir}/orphan-ppid; '
        'sleep 1.2; '
        f'if [ -e /proc/$(cat {marker_dir}/orphan) ]; then echo left > {marker_dir}/result; '
        f'else echo reaped > {marker_dir}/result; fi; '
        f'cat /proc/[0-9]*/stat 2>/dev/null | awk \'$3 == "Z" {{n++}} END {{print n+0}}\' > {marker_dir}/zombies'
    )


def test_orphans_are_reaped_as_pid_1(cs):
    d = cs.tmpfs_dir()
    run = Supervised(cs, ["run", "--supervise", "--no-manifest", "--", "sh", "-c", _zombie_script(d)],
                     token=None, prefix=["unshare", "--pid", "--fork", "--mount-proc"])
    assert run.wait(30) == 0, run.describe()
    assert (d / "info").read_text().strip() == "ppid=1", "crunch-secrets is not PID 1 in the namespace"
    assert (d / "orphan-ppid").read_text().strip() == "1", "the orphan was not reparented to PID 1"
    assert (d / "result").read_text().strip() == "reaped", "the orphan is still a zombie"
    assert (d / "zombies").read_text().strip() == "0"


def test_orphans_are_reaped_as_a_subreaper(cs):
    d = cs.tmpfs_dir()
    run = Supervised(cs, ["run", "--supervise", "--no-manifest", "--", "sh", "-c", _zombie_script(d)],
                     token=None)
    assert run.wait(30) == 0, run.describe()
    assert (d / "info").read_text().strip() == f"ppid={run.pid}"
    assert (d / "orphan-ppid").read_text().strip() == str(run.pid), \
        "the orphan was not reparented to crunch-secrets (child subreaper)"
    assert (d / "result").read_text().strip() == "reaped", "the orphan is still a zombie"


def test_signal_group_reaches_the_childs_children(cs):
    d = cs.tmpfs_dir()
    log = d / "sig.log"
    # The shell's own child (the probe) gets the signal only when the group is signalled.
    run = Supervised(cs, ["run", "--signal-group", "--no-manifest", "--", "sh", "-c",
                          f'trap "" USR1; {sigprobe()} & wait'],
                     {"SIGPROBE_LOG": str(log), "SIGPROBE_SECONDS": "30"}, token=None)
    wait_for(lambda: any(l.startswith("ready ") for l in read_lines(log)), 20, "the probe")
    run.signal(signal.SIGUSR1)
    wait_for(lambda: "sig 10" in read_lines(log), 10, "SIGUSR1 at the grandchild")
    run.signal(signal.SIGTERM)
    assert run.wait(20) in (0, 143), run.describe()


def _approle_tokens(bao) -> set[str]:
    """Accessors of live tokens issued by the seeded AppRole role 'test'."""
    out = set()
    for acc in bao.api("LIST", "auth/token/accessors")["data"]["keys"]:
        status, info = bao.api_status("POST", "auth/token/lookup-accessor", {"accessor": acc})
        if status == 200 and (info["data"].get("meta") or {}).get("role_name") == "test":
            out.add(acc)
    return out


def test_the_login_token_is_revoked_at_exit_unless_keep_token(cs, make_bao):
    bao = make_bao()
    w = bao.world
    env = dict(REF, CRUNCH_SECRETS_ROLE_ID=w.role_id, CRUNCH_SECRETS_SECRET_ID=w.secret_id)
    before = _approle_tokens(bao)
    run = Supervised(cs, ["run", "--supervise", "-v", "--auth", "approle", "--no-manifest", "--", "true"],
                     env, bao=bao, token=None)
    assert run.wait(30) == 0, run.describe()
    assert "revoked the token" in run.err, run.describe()
    assert _approle_tokens(bao) == before, "the login token outlived the supervised run"
    run = Supervised(cs, ["run", "--supervise", "--keep-token", "--auth", "approle", "--no-manifest",
                          "--", "true"], env, bao=bao, token=None)
    assert run.wait(30) == 0, run.describe()
    assert len(_approle_tokens(bao) - before) == 1, "--keep-token must leave the login token valid"
    # A token the caller passed in is theirs: never revoked.
    tok = bao.token(["reader"], label="given token (supervise)")
    run = Supervised(cs, ["run", "--supervise", "--no-manifest", "--", "true"], dict(REF), bao=bao,
                     token=tok)
    assert run.wait(30) == 0, run.describe()
    assert bao.api_status("GET", "auth/token/lookup-self", token=tok)[0] == 200
