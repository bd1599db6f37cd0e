"""Users enter their own credentials (docs/user-credentials.md), end to end with a real OpenBao,
vault-plugin-auth-arvados and the Arvados stand-in, using only the standard `bao` CLI:

1. alice logs in with her *personal* Arvados token to a role with `require_container: false`
   whose templated policy grants create/update/read under `secret/data/arvados/<her uuid>/`;
2. she stores a secret there with `bao kv put` (the value from stdin, never on argv);
3. her Running container reads it through `crunch-secrets run --auth arvados`;
4. bob, logged in the same way, can neither read nor overwrite it;
5. a response-wrapped token alice hands to a container request works exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from harness import CANARIES, BaoServer, Runner, bao_bin, fail
from test_arvados_plugin import (  # noqa: F401 (fixtures)
    ALICE, ALICE_RUN1, ALICE_RUN2, BOB, LAB, OTHER, PLUGIN_NAME, ADMIN_TOKEN_UUID,
    container_token, plain_token, plugin_dir, standin,
)

ALICE_PERSONAL = "zzzzz-gj3su-alicetoken00001"

# The personal role's policy: read and write under the user's own uuid, nothing else. The
# entity alias the plugin creates is named by the Arvados user uuid.
PERSONAL_RW = """
path "secret/data/arvados/{{identity.entity.aliases.%s.name}}/*" {
  capabilities = ["create", "update", "read"]
}
path "auth/token/create" { capabilities = ["update"] }
"""
CONTAINER_READ = """
path "secret/data/arvados/{{identity.entity.aliases.%s.name}}/*" { capabilities = ["read"] }
"""


@pytest.fixture(scope="module")
def uv(plugin_dir, standin):
    bao = BaoServer(name="bao-user-creds", extra_args=[f"-dev-plugin-dir={plugin_dir}"]).start()
    bao.api("POST", "sys/auth/arvados", {"type": PLUGIN_NAME})
    accessor = bao.api("GET", "sys/auth")["arvados/"]["accessor"]
    bao.api("POST", "auth/arvados/config", {
        "arvados_api_host": standin.url, "privileged_token": plain_token(ADMIN_TOKEN_UUID),
        "cluster_id": "zzzzz", "allowed_policies": "arvados-*", "cache_ttl": 0,
    })
    bao.policy("arvados-personal-rw", PERSONAL_RW % accessor)
    bao.policy("arvados-own-read", CONTAINER_READ % accessor)
    bao.api("POST", "auth/arvados/role/personal", {
        "bound_user_uuids": ["*"], "require_container": False,
        "token_policies": ["arvados-personal-rw"], "token_ttl": "10m",
    })
    bao.api("POST", "auth/arvados/role/mine", {
        "bound_group_uuids": [LAB, OTHER], "token_policies": ["arvados-own-read"],
    })
    # KV v2 answers 400 for a moment after the dev server mounts it; poll once as root.
    bao.kv2_put("secret", "warmup", {"x": "y"})
    yield bao
    bao.close()


def cli(bao: BaoServer, args: list[str], *, token: str | None, stdin: str = "") -> subprocess.CompletedProcess:
    """Runs the standard `bao` CLI with VAULT_ADDR (and VAULT_TOKEN); scans its output."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent",
           "VAULT_ADDR": bao.addr}
    if token:
        env["VAULT_TOKEN"] = token
    proc = subprocess.run([str(bao_bin()), *args], input=stdin.encode(), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    where = "bao " + " ".join(args[:2])
    CANARIES.check(proc.stderr, f"stderr of {where}")
    return proc


def personal_login(bao: BaoServer, arvados_token: str) -> str:
    # arvados_token=- reads the value from stdin: the token is never on a command line.
    proc = cli(bao, ["write", "-field=token", "auth/arvados/login", "role=personal",
                     "arvados_token=-"], token=None, stdin=arvados_token)
    if proc.returncode != 0:
        fail("personal login failed: " + proc.stderr.decode(errors="replace")[-500:])
    return CANARIES.add("vault token from a personal login", proc.stdout.decode().strip())


def test_users_store_and_their_containers_read(uv, standin):
    value = CANARIES.new("alice's own database password")
    alice = personal_login(uv, plain_token(ALICE_PERSONAL))
    proc = cli(uv, ["kv", "put", "-mount=secret", f"arvados/{ALICE}/db", "password=-"],
               token=alice, stdin=value)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-500:]
    CANARIES.check(proc.stdout, "bao kv put output")
    # Reading back with the same login works.
    proc = cli(uv, ["kv", "get", "-mount=secret", "-field=password", f"arvados/{ALICE}/db"],
               token=alice)
    assert proc.returncode == 0 and proc.stdout.decode() == value, "alice cannot read her own secret"

    # Her Running container reads it through crunch-secrets with the container's own token.
    runner = Runner(uv)
    try:
        r = runner.run(["run", "--no-manifest", "--auth", "arvados", "--arvados-role", "mine",
                        "--", "{probe}"],
                       {"ARVADOS_API_TOKEN": container_token(ALICE_RUN1),
                        "DB_PASSWORD": f"vault:secret/data/arvados/{ALICE}/db#password"},
                       token=None)
        assert r.code == 0, r.describe()
        assert r.env["DB_PASSWORD"] == value, "the container did not receive alice's secret"
    finally:
        runner.cleanup()


def test_another_user_can_neither_read_nor_overwrite(uv, standin):
    value = CANARIES.new("alice's api key")
    alice = personal_login(uv, plain_token(ALICE_PERSONAL))
    assert cli(uv, ["kv", "put", "-mount=secret", f"arvados/{ALICE}/api", "key=-"],
               token=alice, stdin=value).returncode == 0
    bob = personal_login(uv, plain_token("zzzzz-gj3su-bobpersonal0001"))
    got = cli(uv, ["kv", "get", "-mount=secret", f"arvados/{ALICE}/api"], token=bob)
    assert got.returncode != 0 and b"permission denied" in got.stderr, "bob read alice's secret"
    CANARIES.check(got.stdout, "bob's read attempt")
    put = cli(uv, ["kv", "put", "-mount=secret", f"arvados/{ALICE}/api", "key=-"], token=bob,
              stdin="bob-was-here")
    assert put.returncode != 0 and b"permission denied" in put.stderr, "bob overwrote alice's secret"
    # Bob may write under his own uuid, which alice cannot read.
    assert cli(uv, ["kv", "put", "-mount=secret", f"arvados/{BOB}/api", "key=-"], token=bob,
               stdin="bob-own").returncode == 0
    assert cli(uv, ["kv", "get", "-mount=secret", f"arvados/{BOB}/api"], token=alice).returncode != 0
    # Alice's value is unchanged.
    proc = cli(uv, ["kv", "get", "-mount=secret", "-field=key", f"arvados/{ALICE}/api"], token=alice)
    assert proc.stdout.decode() == value, "alice's secret changed"


def test_a_wrapped_token_works_exactly_once(uv, standin):
    value = CANARIES.new("alice's wrapped-once secret")
    alice = personal_login(uv, plain_token(ALICE_PERSONAL))
    assert cli(uv, ["kv", "put", "-mount=secret", f"arvados/{ALICE}/once", "v=-"], token=alice,
               stdin=value).returncode == 0
    # A child of her login, limited to her policy, wrapped: only the wrapping token travels.
    proc = cli(uv, ["token", "create", "-policy=arvados-personal-rw", "-ttl=10m", "-use-limit=0",
                    "-wrap-ttl=10m", "-field=wrapping_token"], token=alice)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-500:]
    wrapping = CANARIES.add("wrapping token from alice", proc.stdout.decode().strip())
    runner = Runner(uv)
    try:
        env = {"CRUNCH_SECRETS_WRAPPED_TOKEN": wrapping,
               "SECRET": f"vault:secret/data/arvados/{ALICE}/once#v"}
        first = runner.run(["run", "--no-manifest", "--", "{probe}"], env, token=None)
        assert first.code == 0, first.describe()
        assert first.env["SECRET"] == value, "the first run did not receive the secret"
        # A retry or a reused container request presents the same wrapping token: refused.
        second = runner.run(["run", "--no-manifest", "--", "{probe}"], env, token=None)
        assert second.code == 80, second.describe()
        assert second.report is None, "the command ran on the second unwrap"
        assert "wrapping token" in second.err, second.describe()
    finally:
        runner.cleanup()
