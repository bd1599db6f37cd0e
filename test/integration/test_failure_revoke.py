"""A `run` that fails after its own login (SECURITY.md, "Token revocation"): a missing key, a NUL
byte in an environment value, an engine mismatch or a refused read ends the run with its
documented exit code, and the token crunch-secrets obtained (AppRole, wrapped, Arvados) is
revoked first, leases it created included: a failed run delivers nothing, so nothing may depend
on them. --keep-token keeps it; a token the caller gave is never revoked; a revocation that fails
is one warning line and the run still ends with its own error. Exec and supervise mode.

The token is caught on its way back from Vault by a proxy (and registered as a canary), then
looked up with the root token: revoked, Vault answers 403 "bad token"."""

from __future__ import annotations

import json
import time
from urllib.parse import urlparse

import pytest

from faultproxy import FORWARD, Action, FaultProxy
from harness import CANARIES, Runner
from postgres import configure_database_engine
from test_supervise_db import approle as db_approle
from test_supervise_db import live_leases
from test_arvados_plugin import arv, plugin_dir, standin  # noqa: F401 (fixtures)

# A file that renders fine, so that a failure in the environment would leave it behind if the
# run wrote anything before rendering everything.
FILES = [{"path": "app.conf", "template": "password = ${vault:secret/data/app#password}\n"}]
MANIFEST = json.dumps({"version": 1, "files": FILES})
MISSING_KEY = "vault:secret/data/app#no_such_key"
LOGINS = ("/v1/auth/approle/login", "/v1/sys/wrapping/unwrap", "/v1/auth/arvados/login")
REVOKE = "/v1/auth/token/revoke-self"


class TokenCatcher:
    """A proxy in front of `bao` that forwards every request and keeps the client token of every
    login or unwrap answer, so that the test can ask Vault about it afterwards."""

    def __init__(self, bao) -> None:
        u = urlparse(bao.addr)
        self.tokens: list[str] = []
        self.proxy = FaultProxy(u.hostname, u.port, self._decide)
        self.addr = self.proxy.addr

    def _decide(self, n, method, path):
        if path.startswith(LOGINS):
            return Action(kind="rewrite", rewrite=self._keep)
        return FORWARD

    def _keep(self, body: bytes) -> bytes:
        try:
            token = json.loads(body)["auth"]["client_token"]
        except (ValueError, KeyError, TypeError):
            return body  # an unwrapped secret id, or an error
        self.tokens.append(CANARIES.add("token of a failed run", token))
        return body

    def close(self) -> None:
        self.proxy.close()


def token_status(bao, token: str) -> tuple[int, str]:
    """Vault's answer to a root lookup of `token`: (200, "") while valid, (403, "bad token")
    once revoked."""
    status, resp = bao.api_status("POST", "auth/token/lookup", {"token": token})
    errors = "; ".join(resp.get("errors", [])) if isinstance(resp, dict) else str(resp)
    return status, errors


def assert_revoked(bao, token: str, what: str) -> None:
    status, errors = token_status(bao, token)
    assert (status, errors) == (403, "bad token"), \
        f"{what}: the token the run obtained is still valid (lookup: HTTP {status} {errors})"


def assert_valid(bao, token: str, what: str) -> None:
    status, errors = token_status(bao, token)
    assert status == 200, f"{what}: the token was revoked (lookup: HTTP {status} {errors})"


def failed_run(cs, bao, env: dict, mode: str, *extra: str, token=None, manifest=MANIFEST):
    """Runs crunch-secrets through a TokenCatcher; returns the result, the tokens Vault issued
    and how many revoke-self requests were sent."""
    catcher = TokenCatcher(bao)
    try:
        args = ["run", *(["--supervise"] if mode == "supervise" else []), *extra, "--", "{probe}"]
        r = cs.run(args, dict(env, VAULT_ADDR=catcher.addr, CRUNCH_SECRETS_MANIFEST_JSON=manifest),
                   bao=bao, token=token)
    finally:
        catcher.close()
    assert r.report is None, "the command ran: " + r.describe()
    assert not r.secrets_dir.exists() and not r.secrets_dir.is_symlink(), \
        f"the secrets directory is left: {r.describe()}"
    return r, catcher.tokens, catcher.proxy.count(REVOKE)


def approle_env(world) -> dict[str, str]:
    return {"CRUNCH_SECRETS_ROLE_ID": world.role_id, "CRUNCH_SECRETS_SECRET_ID": world.secret_id}


MODES = pytest.mark.parametrize("mode", ["exec", "supervise"])


@MODES
def test_a_missing_key_after_an_approle_login_revokes_the_token(cs, bao, world, mode):
    r, tokens, _ = failed_run(cs, bao, dict(approle_env(world), X=MISSING_KEY), mode)
    assert r.code == 79, r.describe()
    assert "no_such_key" in r.err, r.describe()
    assert len(tokens) == 1, f"{len(tokens)} logins"
    assert_revoked(bao, tokens[0], mode)


@MODES
def test_a_nul_in_an_environment_value_after_a_login_revokes_the_token(cs, bao, world, mode):
    bao.kv2_put("secret", "frnul", {"v": CANARIES.new("failure revoke nul value", "\x00tail")})
    r, tokens, _ = failed_run(cs, bao, dict(approle_env(world), X="vault:secret/data/frnul#v"),
                              mode)
    assert r.code == 65, r.describe()
    assert len(tokens) == 1, f"{len(tokens)} logins"
    assert_revoked(bao, tokens[0], mode)


def test_an_engine_mismatch_after_a_login_revokes_the_token(cs, bao, world):
    # A KV v1 secret declared KV v2: the answer has no data.data, which the resolver refuses
    # after the read.
    manifest = json.dumps({"version": 1, "files": FILES, "env": {"X": "${secret:a}"},
                           "secrets": {"a": {"path": "kv/app", "engine": "kv2", "key": "token"}}})
    r, tokens, _ = failed_run(cs, bao, approle_env(world), "exec", manifest=manifest)
    assert r.code == 76, r.describe()
    assert len(tokens) == 1, f"{len(tokens)} logins"
    assert_revoked(bao, tokens[0], "engine mismatch")


@MODES
def test_a_refused_read_after_a_login_revokes_the_token(cs, bao, world, mode):
    r, tokens, _ = failed_run(cs, bao, dict(approle_env(world),
                                            X="vault:secret/data/forbidden#value"), mode)
    assert r.code == 77, r.describe()
    assert len(tokens) == 1, f"{len(tokens)} logins"
    assert_revoked(bao, tokens[0], mode)


def test_a_failure_after_unwrapping_revokes_the_token(cs, bao, world):
    r, tokens, _ = failed_run(cs, bao, {"CRUNCH_SECRETS_WRAPPED_TOKEN": world.wrapped_token(),
                                        "X": MISSING_KEY}, "exec", "--auth", "wrapped")
    assert r.code == 79, r.describe()
    assert len(tokens) == 1, f"{len(tokens)} unwraps"
    assert_revoked(bao, tokens[0], "wrapped token")


@MODES
def test_keep_token_keeps_the_token_of_a_failed_run(cs, bao, world, mode):
    r, tokens, revokes = failed_run(cs, bao, dict(approle_env(world), X=MISSING_KEY), mode,
                                    "--keep-token")
    assert r.code == 79, r.describe()
    assert len(tokens) == 1, f"{len(tokens)} logins"
    assert revokes == 0, f"{revokes} revoke-self request(s) with --keep-token"
    assert_valid(bao, tokens[0], "--keep-token")


@MODES
def test_a_given_token_is_never_revoked_by_a_failed_run(cs, bao, mode):
    given = bao.token(["reader"], ttl="10m", label="given token of a failed run")
    r, tokens, revokes = failed_run(cs, bao, {"X": MISSING_KEY}, mode, token=given)
    assert r.code == 79, r.describe()
    assert tokens == [] and revokes == 0, "a given token was revoked (or a login was made)"
    assert_valid(bao, given, "VAULT_TOKEN")


def test_a_revocation_that_fails_is_one_warning_and_the_original_error(cs, bao):
    # Without the default policy the token may not revoke itself (403).
    bao.api("POST", "auth/approle/role/nodefault", {"token_policies": ["reader"],
                                                    "token_no_default_policy": True,
                                                    "token_ttl": "10m"})
    role_id = bao.api("GET", "auth/approle/role/nodefault/role-id")["data"]["role_id"]
    secret_id = CANARIES.add("approle secret id (no default policy)", bao.api(
        "POST", "auth/approle/role/nodefault/secret-id")["data"]["secret_id"])
    r, tokens, revokes = failed_run(cs, bao, {"CRUNCH_SECRETS_ROLE_ID": role_id,
                                              "CRUNCH_SECRETS_SECRET_ID": secret_id,
                                              "X": MISSING_KEY}, "exec")
    assert r.code == 79, r.describe()
    assert revokes == 1, f"{revokes} revoke-self request(s)"
    warnings = [l for l in r.err.splitlines() if "could not revoke" in l]
    assert len(warnings) == 1, r.describe()
    errors = [l for l in r.err.splitlines() if "error:" in l]
    assert len(errors) == 1 and "no_such_key" in errors[0], r.describe()
    assert_valid(bao, tokens[0], "a token that may not revoke itself")


@MODES
def test_a_failure_after_a_dynamic_secret_revokes_its_lease_too(cs, make_bao, postgres, mode):
    db = make_bao(seeded=False)
    configure_database_engine(db, postgres, default_ttl="60s", max_ttl="120s")
    env = db_approle(db, token_ttl="10m", token_max_ttl="20m")
    env.update(USER="vault:database/creds/app#username", NOPE="vault:database/creds/app#no_such_key")
    catcher = TokenCatcher(db)
    try:
        args = ["run", *(["--supervise"] if mode == "supervise" else []), "--", "{probe}"]
        r = cs.run(args, dict(env, VAULT_ADDR=catcher.addr), bao=db, token=None)
    finally:
        catcher.close()
    assert r.code == 79, r.describe()
    assert r.report is None, "the command ran: " + r.describe()
    assert len(catcher.tokens) == 1, f"{len(catcher.tokens)} logins"
    assert_revoked(db, catcher.tokens[0], mode)
    # Vault revokes a token's leases in the background after revoke-self answered.
    deadline = time.monotonic() + 10
    while live_leases(db) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_leases(db) == [], f"{mode}: the database lease outlived the failed run"


@pytest.mark.parametrize("failure", ["files", "exec"])
def test_a_run_that_fails_to_deliver_revokes_a_token_kept_for_a_lease(cs, make_bao, postgres,
                                                                      failure):
    # Exec mode keeps the token when a secret holds a lease the command needs; when the files
    # then cannot be written (not tmpfs) or the command cannot be executed, nothing was
    # delivered and the token (and the lease) must go.
    db = make_bao(seeded=False)
    configure_database_engine(db, postgres, default_ttl="60s", max_ttl="120s")
    env = db_approle(db, token_ttl="10m", token_max_ttl="20m")
    manifest = json.dumps({"version": 1, "secrets": {"db": {"path": "database/creds/app",
                                                             "engine": "generic"}},
                           "files": [{"path": "db.json", "secret": "db", "format": "json"}]})
    env.update(USER="vault:database/creds/app#username", CRUNCH_SECRETS_MANIFEST_JSON=manifest)
    sdir = (cs.disk_dir() if failure == "files" else cs.tmpfs_dir()) / "secrets"
    command = "{probe}" if failure == "files" else "/nonexistent/command"
    catcher = TokenCatcher(db)
    try:
        r = cs.run(["run", "--", command], dict(env, VAULT_ADDR=catcher.addr), bao=db, token=None,
                   secrets_dir=sdir)
    finally:
        catcher.close()
    assert r.code == (73 if failure == "files" else 127), r.describe()
    assert r.report is None, "the command ran: " + r.describe()
    assert not sdir.exists() and not sdir.is_symlink(), f"the secrets directory is left: {r.describe()}"
    assert len(catcher.tokens) == 1, f"{len(catcher.tokens)} logins"
    assert_revoked(db, catcher.tokens[0], failure)
    deadline = time.monotonic() + 10
    while live_leases(db) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_leases(db) == [], f"{failure}: the database lease outlived the failed run"


@MODES
def test_a_failure_after_an_arvados_login_revokes_the_token(acs_failure, arv, mode):
    from test_arvados_plugin import ALICE_RUN1, container_token

    r, tokens, _ = failed_run(acs_failure, arv, {"ARVADOS_API_TOKEN": container_token(ALICE_RUN1),
                                                 "X": "vault:secret/data/lab/db#no_such_key"},
                              mode, "--auth", "arvados", "--arvados-role", "lab",
                              manifest=json.dumps({"version": 1}))
    assert r.code == 79, r.describe()
    assert len(tokens) == 1, f"{len(tokens)} logins"
    assert_revoked(arv, tokens[0], f"Arvados login, {mode}")


@MODES
def test_a_failure_after_a_wrapped_secret_id_login_revokes_the_token(cs, bao, world, mode):
    resp = bao.api("POST", "auth/approle/role/test/secret-id", headers={"X-Vault-Wrap-TTL": "300s"})
    wrapping = CANARIES.add("failure revoke wrapped secret id", resp["wrap_info"]["token"])
    r, tokens, _ = failed_run(cs, bao, {"CRUNCH_SECRETS_WRAPPED_TOKEN": wrapping, "X": MISSING_KEY},
                              mode, "--auth", "wrapped", "--role-id", world.role_id)
    assert r.code == 79, r.describe()
    assert len(tokens) == 1, f"{len(tokens)} logins"
    assert_revoked(bao, tokens[0], f"wrapped secret id, {mode}")


@pytest.fixture
def acs_failure(arv):
    runner = Runner(arv)
    yield runner
    runner.cleanup()
