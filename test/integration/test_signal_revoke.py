"""A `run` stopped by SIGTERM, SIGINT, SIGHUP or SIGQUIT after its own login (SECURITY.md, "Token
revocation"): while a read stalls or Vault is unavailable (--wait), in exec and supervise mode, it
stops at once, revokes the token it obtained with one short request, leaves no secrets directory
and dies of the signal (exit status 128+N). That holds for each way of obtaining a token: an
AppRole login, a wrapped AppRole secret id, an Arvados login (vault-plugin-auth-arvados and the
Arvados stand-in). A token it was given is never revoked."""

from __future__ import annotations

import signal
import subprocess
import time
from urllib.parse import urlparse

import pytest

from faultproxy import FORWARD, Action, FaultProxy
from harness import CANARIES, Runner, crunch_secrets_bin
from test_arvados_plugin import ALICE_RUN1, container_token
from test_arvados_plugin import arv, plugin_dir, standin  # noqa: F401 (fixtures)

BIN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
REF = "vault:secret/data/app#password"
READ = "secret/data/app"
# Held far longer than the test waits; then the request is dropped.
STALL = Action(kind="stall_before", seconds=30, then=Action(kind="reset_before"))
UNAVAILABLE = Action(kind="status", status=503, body=b'{"errors":["sealed"]}')


def accessors(bao) -> set[str]:
    return set(bao.api("GET", "auth/token/accessors?list=true")["data"]["keys"])


def wait_until(predicate, proc, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"run ended ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def stop_run(cs, bao, env_auth: dict[str, str], read_action: Action, signo: int,
             extra_args: list[str] = (), read: str = READ,
             ref: str = REF) -> tuple[float, set[str], set[str]]:
    """Starts a run whose read of `read` (for `ref`) gets `read_action`, sends `signo` once the
    read reached the proxy, and returns the seconds from the signal to the exit and the token
    accessors before and after."""
    u = urlparse(bao.addr)
    proxy = FaultProxy(u.hostname, u.port, lambda n, m, p: read_action if read in p else FORWARD)
    secrets = cs.tmpfs_dir() / "secrets"
    env = dict(BIN_ENV, VAULT_ADDR=proxy.addr, X=ref, **env_auth)
    before = accessors(bao)
    try:
        p = subprocess.Popen([str(crunch_secrets_bin()), "run", "--wait", "60s", "--secrets-dir",
                              str(secrets), *extra_args, "--", "true"], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        wait_until(lambda: proxy.count(read) > 0, p, "the read")
        time.sleep(0.3)  # the read (or the wait before the next try) is in progress
        sent = time.monotonic()
        p.send_signal(signo)
        out, err = p.communicate(timeout=60)
        took = time.monotonic() - sent
        print(f"signal {signo} to exit: {took:.3f} s")
    finally:
        proxy.close()
    CANARIES.check(out, "run stdout")
    CANARIES.check(err, "run stderr")
    assert p.returncode == -signo, (p.returncode, err.decode(errors="replace"))
    assert not secrets.exists(), f"the secrets directory is left: {list(secrets.rglob('*'))}"
    return took, before, accessors(bao)


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT],
                         ids=["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"])
@pytest.mark.parametrize("mode", ["exec", "supervise"])
def test_stopped_during_a_stalled_read_revokes_its_token(cs, bao, world, signo, mode):
    extra = ["--supervise"] if mode == "supervise" else []
    took, before, after = stop_run(cs, bao, {"CRUNCH_SECRETS_ROLE_ID": world.role_id,
                                             "CRUNCH_SECRETS_SECRET_ID": world.secret_id},
                                   STALL, signo, extra)
    assert took < 3, f"the run took {took:.2f} s to stop"
    assert after == before, f"{mode}: the token the run obtained is still valid"


def test_stopped_while_waiting_for_vault_revokes_its_token(cs, bao, world):
    took, before, after = stop_run(cs, bao, {"CRUNCH_SECRETS_ROLE_ID": world.role_id,
                                             "CRUNCH_SECRETS_SECRET_ID": world.secret_id},
                                   UNAVAILABLE, signal.SIGTERM)
    assert took < 3, f"the run took {took:.2f} s to stop its --wait"
    assert after == before, "the token the run obtained is still valid"


def test_stopped_run_keeps_a_token_it_was_given(cs, bao, world):
    given = CANARIES.add("signal revoke given token", bao.api(
        "POST", "auth/token/create", {"policies": ["reader"], "ttl": "10m"})["auth"]["client_token"])
    took, before, after = stop_run(cs, bao, {"VAULT_TOKEN": given}, STALL, signal.SIGTERM)
    assert took < 3, f"the run took {took:.2f} s to stop"
    assert after == before
    status, _ = bao.api_status("GET", "auth/token/lookup-self", token=given)
    assert status == 200, "a token given to the run was revoked"


@pytest.mark.parametrize("mode", ["exec", "supervise"])
def test_stopped_after_a_wrapped_secret_id_login_revokes_its_token(cs, bao, world, mode):
    resp = bao.api("POST", "auth/approle/role/test/secret-id", headers={"X-Vault-Wrap-TTL": "300s"})
    wrapping = CANARIES.add("signal revoke wrapped secret id", resp["wrap_info"]["token"])
    extra = ["--auth", "wrapped", "--role-id", world.role_id]
    extra += ["--supervise"] if mode == "supervise" else []
    took, before, after = stop_run(cs, bao, {"CRUNCH_SECRETS_WRAPPED_TOKEN": wrapping}, STALL,
                                   signal.SIGTERM, extra)
    assert took < 3, f"the run took {took:.2f} s to stop"
    # The wrapping token was used up (its accessor is gone too): no token may be new.
    assert not after - before, f"{mode}: the token the wrapped secret id logged in with is still valid"


@pytest.mark.parametrize("mode", ["exec", "supervise"])
def test_stopped_after_an_arvados_login_revokes_its_token(acs_signal, arv, mode):
    extra = ["--auth", "arvados", "--arvados-role", "lab"]
    extra += ["--supervise"] if mode == "supervise" else []
    took, before, after = stop_run(acs_signal, arv, {"ARVADOS_API_TOKEN": container_token(ALICE_RUN1)},
                                   STALL, signal.SIGTERM, extra, read="secret/data/lab/db",
                                   ref="vault:secret/data/lab/db#password")
    assert took < 3, f"the run took {took:.2f} s to stop"
    assert after == before, f"{mode}: the token of the Arvados login is still valid"


@pytest.fixture
def acs_signal(arv):
    runner = Runner(arv)
    yield runner
    runner.cleanup()
