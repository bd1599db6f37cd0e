"""Attacks on the changes landed on 2026-12-05 (second session), from outside.

1. A run that fails after its own login revokes the token it obtained (revoke_after_failure,
   SECURITY.md "Token revocation"). A hostile Vault answers that revoke-self slowly, with a 5xx
   and a Retry-After, or with an error that echoes the credentials crunch-secrets sent: the run
   must end within the documented 2 s limit of the revocation, with its own exit code, one
   warning, and no credential in its output (the Vault client redacts the credentials it sent
   from a server's message; the revocation must too).
2. The Arvados client honours Retry-After within --wait: hostile values (huge, negative, dates
   long past or far ahead, garbage) never keep it past --wait, never make it spin.
3. The shared body cap: a Vault answer over 32 MiB fails fast with exit 76.
"""

from __future__ import annotations

import email.utils
import json
import time
from urllib.parse import urlparse

import pytest

from faultproxy import FORWARD, Action, FaultProxy
from harness import CANARIES
from test_arvados_retry_after import api_calls, fetch
from test_arvados_retry_after import standin  # noqa: F401 (a pytest fixture: a reset stand-in)
from test_arvados_source import arvs  # noqa: F401 (a pytest fixture: the TLS stand-in)
from test_failure_revoke import LOGINS, MANIFEST, MISSING_KEY, REVOKE, approle_env, assert_revoked

MODES = pytest.mark.parametrize("mode", ["exec", "supervise"])


class HostileRevoke:
    """A proxy in front of `bao` that forwards everything, keeps the token of every login (as a
    canary) and answers auth/token/revoke-self with `on_revoke(token)` instead, when given."""

    def __init__(self, bao, on_revoke=None) -> None:
        u = urlparse(bao.addr)
        self.tokens: list[str] = []
        self.on_revoke = on_revoke
        self.proxy = FaultProxy(u.hostname, u.port, self._decide)
        self.addr = self.proxy.addr

    def _decide(self, n, method, path):
        if path.startswith(LOGINS):
            return Action(kind="rewrite", rewrite=self._keep)
        if path.startswith(REVOKE) and self.on_revoke is not None:
            return self.on_revoke(self.tokens[-1] if self.tokens else "")
        return FORWARD

    def _keep(self, body: bytes) -> bytes:
        try:
            token = json.loads(body)["auth"]["client_token"]
        except (ValueError, KeyError, TypeError):
            return body
        self.tokens.append(CANARIES.add("token of an attacked failed run", token))
        return body

    def close(self) -> None:
        self.proxy.close()


def failing_run(cs, bao, env, mode, on_revoke, *extra):
    hostile = HostileRevoke(bao, on_revoke)
    try:
        args = ["run", *(["--supervise"] if mode == "supervise" else []), *extra, "--", "{probe}"]
        r = cs.run(args, dict(env, VAULT_ADDR=hostile.addr, CRUNCH_SECRETS_MANIFEST_JSON=MANIFEST),
                   bao=bao, token=None, timeout=60)
    finally:
        hostile.close()
    assert r.report is None, "the command ran: " + r.describe()
    return r, hostile.tokens, hostile.proxy.count(REVOKE)


def one_warning(r) -> str:
    # Exec mode (revoke_after_failure) and supervise mode's session, which owns the token by the
    # time the key is found missing, word it differently.
    warnings = [ln for ln in r.err.splitlines()
                if "could not revoke" in ln or "revoking the token failed" in ln]
    assert len(warnings) == 1, r.describe()
    errors = [ln for ln in r.err.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "no_such_key" in errors[0], r.describe()
    return warnings[0]


@MODES
@pytest.mark.parametrize("echo", ["secret_id", "token"])
def test_a_revocation_error_echoing_a_credential_is_redacted(cs, bao, world, mode, echo):
    """Vault answers the revoke-self of a failed run 500 with an error quoting the AppRole secret
    id (or the token) it was sent: the warning may quote the server, never the credential. The
    harness fails the run on any canary in its output; the assertions say which."""
    def on_revoke(token):
        quoted = world.secret_id if echo == "secret_id" else token
        body = json.dumps({"errors": [f"cannot revoke, credential {quoted} is odd"]}).encode()
        return Action(kind="status", status=500, body=body)

    start = time.monotonic()
    r, tokens, revokes = failing_run(cs, bao, dict(approle_env(world), X=MISSING_KEY), mode,
                                     on_revoke)
    assert r.code == 79, r.describe()
    # Supervise mode's session retries its revocation for up to 2 s (docs/supervise.md).
    assert revokes == 1 if mode == "exec" else 1 <= revokes <= 60, \
        f"{revokes} revoke-self request(s)"
    warning = one_warning(r)
    assert "HTTP 500" in warning and "[redacted]" in warning, warning
    print(f"{mode}: revoke-self answered 500 quoting the {echo}: exit {r.code} after "
          f"{time.monotonic() - start:.2f}s, the warning redacts it")


@MODES
def test_a_revocation_that_stalls_ends_within_its_limit(cs, bao, world, mode):
    """Vault holds the revoke-self of a failed run for 30 s. Exec mode (revoke_after_failure)
    gives it the documented 2 s; in supervise mode the key is found missing by the session,
    whose revocation is a request like any other: one VAULT_CLIENT_TIMEOUT (5 s here), then no
    retry past its 2 s round (docs/supervise.md). Either way one warning and the run's own code,
    never the server's 30 s."""
    env = dict(approle_env(world), X=MISSING_KEY, VAULT_CLIENT_TIMEOUT="5s")
    # The same run without the stall, for the time the failure itself takes.
    quick, _, _ = failing_run(cs, bao, env, mode, None)
    assert quick.code == 79, quick.describe()
    r, tokens, revokes = failing_run(
        cs, bao, env, mode, lambda _t: Action(kind="stall_before", seconds=30, then=FORWARD))
    assert r.code == 79, r.describe()
    assert revokes == 1, f"{revokes} revoke-self request(s)"
    one_warning(r)
    extra = r.elapsed - quick.elapsed
    limit = 2.0 if mode == "exec" else 5.0
    assert limit - 0.5 <= extra < limit + 1.5, \
        f"{mode}: the stalled revocation added {extra:.2f}s (limit {limit:g} s)"
    print(f"{mode}: revoke-self stalled 30 s: exit 79 after {r.elapsed:.2f}s "
          f"(+{extra:.2f}s over {quick.elapsed:.2f}s)")


def test_a_read_unavailable_until_wait_then_a_stalled_revocation_ends_by_wait_plus_2s(cs, bao,
                                                                                   world):
    """The read answers 503 until --wait 3s ends, then revoke-self stalls: exit 69 by --wait plus
    the revocation's 2 s limit (plus process start-up), one revoke-self."""
    wait = 3.0
    u = urlparse(bao.addr)
    tokens: list[str] = []

    def keep(body: bytes) -> bytes:
        try:
            tokens.append(CANARIES.add("token (wait attack)", json.loads(body)["auth"]["client_token"]))
        except (ValueError, KeyError, TypeError):
            pass
        return body

    def decide(n, method, path):
        if path.startswith(LOGINS):
            return Action(kind="rewrite", rewrite=keep)
        if path.startswith(REVOKE):
            return Action(kind="stall_before", seconds=30, then=FORWARD)
        if path.startswith("/v1/secret/data/app"):
            return Action(kind="status", status=503)
        return FORWARD

    proxy = FaultProxy(u.hostname, u.port, decide)
    try:
        r = cs.run(["run", "--wait", f"{wait:g}s", "--", "{probe}"],
                   dict(approle_env(world), VAULT_ADDR=proxy.addr,
                        X="vault:secret/data/app#password"), bao=bao, token=None, timeout=60)
        revokes = proxy.count(REVOKE)
    finally:
        proxy.close()
    assert r.code == 69, r.describe()
    assert r.report is None, "the command ran: " + r.describe()
    assert revokes == 1, f"{revokes} revoke-self request(s)"
    assert len([ln for ln in r.err.splitlines() if "could not revoke" in ln]) == 1, r.describe()
    assert r.elapsed < wait + 2 + 1.5, f"exit after {r.elapsed:.2f}s with --wait {wait:g}s"
    bao.api_status("POST", "auth/token/revoke", {"token": tokens[0]})
    print(f"503 until --wait {wait:g}s, then revoke-self stalled: exit 69 after {r.elapsed:.2f}s")


@pytest.mark.parametrize("status", [503, 429])
def test_a_revocation_refused_with_retry_after_is_not_retried(cs, bao, world, status):
    """A 503/429 with Retry-After: 3600 on the revoke-self of a failed run: no retry, no wait."""
    r, tokens, revokes = failing_run(
        cs, bao, dict(approle_env(world), X=MISSING_KEY), "exec",
        lambda _t: Action(kind="status", status=status, headers={"Retry-After": "3600"}))
    assert r.code == 79, r.describe()
    assert revokes == 1, f"{revokes} revoke-self request(s)"
    one_warning(r)
    assert r.elapsed < 5, f"exit after {r.elapsed:.2f}s"
    print(f"revoke-self {status} Retry-After 3600: 1 request, exit 79 after {r.elapsed:.2f}s")


def test_a_revocation_answered_with_a_reset_still_revokes_nothing_else(cs, bao, world):
    """The connection of the revoke-self is reset: one warning, the run's own code; a later
    look-up shows the token valid (so the warning is true), and no second request was sent."""
    r, tokens, revokes = failing_run(cs, bao, dict(approle_env(world), X=MISSING_KEY), "exec",
                                     lambda _t: Action(kind="reset_before"))
    assert r.code == 79, r.describe()
    assert revokes == 1, f"{revokes} revoke-self request(s)"
    one_warning(r)
    # Clean up the token the hostile proxy kept alive, and check that it was.
    status, _ = bao.api_status("POST", "auth/token/revoke", {"token": tokens[0]})
    assert status == 204, f"revoking the surviving token: HTTP {status}"
    assert_revoked(bao, tokens[0], "after cleanup")


# --- 2. Hostile Retry-After from the Arvados API ---------------------------------------------


def hostile_values():
    now = time.time()
    return {
        "huge": "99999999999999999999999",
        "nine-digits": "999999999",
        "negative": "-1",
        "far-future-date": "Fri, 31 Dec 9999 23:59:59 GMT",
        "past-date": email.utils.formatdate(now - 86400 * 365 * 30, usegmt=True),
        "epoch": "Thu, 01 Jan 1970 00:00:00 GMT",
        "garbage": "nonsense; x=1",
        "zero": "0",
        "blank": "",
        "repeated-short-then-huge": ["1", "100"],
        "repeated-huge-then-short": ["100", "1"],
        "repeated-garbage-last": ["1", "x"],
    }


@pytest.mark.offline
@pytest.mark.parametrize("name", sorted(hostile_values()))
def test_hostile_arvados_retry_after_stays_within_wait(cs, standin, name):
    """Every call refused 503 with a hostile Retry-After and --wait 3s: exit 69 within --wait
    (plus process start-up), and no busy loop: the retries keep the backoff (at most ~40 calls
    per path in 3 s; a spin would send thousands)."""
    wait = 3.0
    standin.control("POST", "outage", {"status": 503, "retry_after": hostile_values()[name]})
    r = fetch(cs, standin, f"{wait:g}s")
    assert r.code == 69, r.describe()
    assert r.report is None, "the command ran after a failure"
    assert r.elapsed < wait + 1.5, f"{name}: gave up after {r.elapsed:.2f}s with --wait {wait:g}s"
    calls = api_calls(standin)
    per_path: dict[str, int] = {}
    for e in calls:
        per_path[e["path"]] = per_path.get(e["path"], 0) + 1
    assert calls and max(per_path.values()) <= 40, f"{name}: {per_path}"
    errors = [ln for ln in r.err.splitlines() if ln.startswith("crunch-secrets: error: ")]
    assert len(errors) == 1, r.describe()
    print(f"Arvados 503 Retry-After {name}: exit 69 after {r.elapsed:.2f}s, "
          f"{max(per_path.values())} calls of one path")


# --- 3. The shared body cap ------------------------------------------------------------------

def test_an_oversized_vault_answer_fails_fast(cs, bao, world):
    """A 40 MiB answer to the read: exit 76 naming the 32 MiB cap, in seconds, not retried."""
    u = urlparse(bao.addr)

    def decide(n, method, path):
        if path.startswith("/v1/secret/data/app"):
            return Action(kind="oversized", size=40 * 1024 * 1024)
        return FORWARD

    proxy = FaultProxy(u.hostname, u.port, decide)
    try:
        r = cs.run(["run", "--", "{probe}"],
                   {"VAULT_ADDR": proxy.addr, "X": "vault:secret/data/app#password"},
                   bao=bao, timeout=60)
        reads = proxy.count("/v1/secret/data/app")
    finally:
        proxy.close()
    assert r.code == 76, r.describe()
    assert "too large (over 32 MiB)" in r.err, r.describe()
    assert reads == 1, f"{reads} reads of an oversized answer"
    assert r.elapsed < 10, f"exit after {r.elapsed:.2f}s"
    print(f"Vault 40 MiB answer: exit 76 after {r.elapsed:.2f}s, {reads} read")


# --- 1b. A stop signal during the revocation after a failure ---------------------------------

@MODES
def test_a_stop_during_the_revocation_after_a_failure_revokes_anew_and_dies(cs, bao, world, mode):
    """A refused read fails the run; Vault holds its revoke-self; SIGTERM arrives meanwhile. The
    held request is dropped, the stop's action sends one more revoke-self (answered) and the run
    dies of SIGTERM within the action's 2 s: the token is revoked, nothing is left behind."""
    import signal
    import subprocess

    from harness import crunch_secrets_bin
    from test_signal_revoke import BIN_ENV, accessors, wait_until

    u = urlparse(bao.addr)
    held = Action(kind="stall_before", seconds=30, then=Action(kind="reset_before"))

    def decide(n, method, path):
        if path.startswith(REVOKE):
            return held if proxy.count(REVOKE) <= 1 else FORWARD
        return FORWARD

    proxy = FaultProxy(u.hostname, u.port, decide)
    secrets = cs.tmpfs_dir() / "secrets"
    env = dict(BIN_ENV, VAULT_ADDR=proxy.addr, X="vault:secret/data/forbidden#value",
               **approle_env(world))
    extra = ["--supervise"] if mode == "supervise" else []
    before = accessors(bao)
    try:
        p = subprocess.Popen([str(crunch_secrets_bin()), "run", "--secrets-dir", str(secrets),
                              *extra, "--", "true"], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_until(lambda: proxy.count(REVOKE) > 0, p, "the revocation after the failure")
        time.sleep(0.3)
        sent = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        took = time.monotonic() - sent
        revokes = proxy.count(REVOKE)
    finally:
        proxy.close()
    CANARIES.check(out, "run stdout")
    CANARIES.check(err, "run stderr")
    text = err.decode(errors="replace")
    assert p.returncode == -signal.SIGTERM, (p.returncode, text)
    assert took < 3, f"{mode}: {took:.2f}s from the signal to the exit"
    assert revokes == 2, f"{mode}: {revokes} revoke-self request(s): {text}"
    assert accessors(bao) == before, f"{mode}: the token the run obtained is still valid"
    assert not secrets.exists(), f"the secrets directory is left: {list(secrets.rglob('*'))}"
    print(f"{mode}: SIGTERM during a held revocation after a failure: died of it "
          f"{took:.2f}s later, {revokes} revoke-self, token revoked")
