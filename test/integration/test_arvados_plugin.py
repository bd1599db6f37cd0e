"""vault-plugin-auth-arvados end to end: a real OpenBao dev server with the plugin registered from
a plugin directory, the Arvados stand-in, and `crunch-secrets run --auth arvados`.

The plugin binary is $ARVADOS_PLUGIN_BIN (test/run-all.sh builds it), else it is built here with
vault-plugin-auth-arvados/build.sh. Every Arvados token secret and credential secret of the
stand-in's fixtures is a canary: no OpenBao log, stand-in log, crunch-secrets output or HTTP
answer may contain one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import harness
from harness import CANARIES, REPO_ROOT, BaoServer, Runner, bao_bin, fail, http_json

PLUGIN_NAME = "vault-plugin-auth-arvados"
STANDIN = REPO_ROOT / "test" / "arvados-standin" / "standin.py"
FIXTURES = REPO_ROOT / "test" / "arvados-standin" / "fixtures.json"

ALICE = "zzzzz-tpzed-aliceinlab00001"
BOB = "zzzzz-tpzed-bobinother00001"
LAB = "zzzzz-j7d0g-labgroup0000001"
OTHER = "zzzzz-j7d0g-othergroup00001"
ALICE_RUN1 = "zzzzz-dz642-alicerunning001"
ALICE_RUN2 = "zzzzz-dz642-alicerunning002"
ALICE_DONE = "zzzzz-dz642-alicecomplete01"
BOB_RUN = "zzzzz-dz642-bobrunning00001"
DAVE_RUN = "zzzzz-dz642-daverunning0001"
EVE_RUN = "zzzzz-dz642-everunning00001"
ADMIN_TOKEN_UUID = "zzzzz-gj3su-admintoken00001"

FIXTURE_DATA = json.loads(FIXTURES.read_text())
TOKEN_SECRETS = {t["uuid"]: t["secret"] for t in FIXTURE_DATA["tokens"]}
CONTAINER_AUTH = {c["uuid"]: c["auth_uuid"] for c in FIXTURE_DATA["containers"]}

# Register every fixture secret as a canary once per session.
if not any(s.label.startswith("arvados token ") for s in CANARIES.items):
    for _uuid, _secret in TOKEN_SECRETS.items():
        CANARIES.add(f"arvados token {_uuid}", _secret)
    for _cred in FIXTURE_DATA.get("credentials", []):
        CANARIES.add(f"arvados credential {_cred['uuid']}", _cred["secret"])


def plain_token(auth_uuid: str) -> str:
    return f"v2/{auth_uuid}/{TOKEN_SECRETS[auth_uuid]}"


def container_token(ctr: str) -> str:
    return plain_token(CONTAINER_AUTH[ctr]) + "/" + ctr


# ---------------------------------------------------------------------------------------------
# The stand-in and the plugin


class Standin:
    """A running standin.py; its stderr is scanned for canaries when it stops."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="cs-standin-"))
        port_file = self.workdir / "port"
        self.log_path = self.workdir / "standin.log"
        logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(STANDIN), "--fixtures", str(FIXTURES), "--port", "0",
             "--port-file", str(port_file), "--verbose"],
            stdout=subprocess.DEVNULL, stderr=logf, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        logf.close()
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                fail(f"the Arvados stand-in did not start; log: {self.log_path}")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{int(port_file.read_text())}"

    def control(self, method: str, path: str, body=None):
        status, resp = http_json(method, f"{self.url}/_control/{path}", body=body)
        if status != 200:
            fail(f"stand-in control {method} {path}: {status} {resp}")
        return resp

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        CANARIES.check(self.log_path.read_bytes(), "the Arvados stand-in's log")


@pytest.fixture(scope="module")
def plugin_dir():
    """A directory holding only the plugin binary, named as the plugin is registered."""
    d = Path(tempfile.mkdtemp(prefix="cs-plugins-"))
    target = d / PLUGIN_NAME
    given = os.environ.get("ARVADOS_PLUGIN_BIN")
    if given:
        shutil.copy2(given, target)
    else:
        env = dict(os.environ)
        env["PATH"] = env.get("PATH", "") + ":/usr/local/go/bin"
        proc = subprocess.run(["bash", str(REPO_ROOT / PLUGIN_NAME / "build.sh"), str(target)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
        if proc.returncode != 0:
            fail("building the plugin failed:\n" + proc.stdout.decode(errors="replace")[-3000:])
    os.chmod(target, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def standin():
    s = Standin()
    yield s
    s.stop()


USER_POLICY = """
path "secret/data/arvados/{{identity.entity.aliases.%s.name}}/*" { capabilities = ["read"] }
"""


@pytest.fixture(scope="module")
def arv(plugin_dir, standin):
    """A dev server with the plugin enabled at auth/arvados, configured for the stand-in, with a
    secret per group and per user."""
    bao = BaoServer(name="bao-arvados", extra_args=[f"-dev-plugin-dir={plugin_dir}"]).start()
    bao.api("POST", "sys/auth/arvados", {"type": PLUGIN_NAME})
    accessor = bao.api("GET", "sys/auth")["arvados/"]["accessor"]
    bao.api("POST", "auth/arvados/config", {
        "arvados_api_host": standin.url,
        "privileged_token": plain_token(ADMIN_TOKEN_UUID),
        "cluster_id": "zzzzz",
        "allowed_policies": "arvados-*",
        "cache_ttl": 0,
    })
    bao.policy("arvados-lab", 'path "secret/data/lab/*" { capabilities = ["read"] }')
    bao.policy("arvados-other", 'path "secret/data/other/*" { capabilities = ["read"] }')
    bao.policy("arvados-user", USER_POLICY % accessor)
    bao.policy("admin-everything", 'path "*" { capabilities = ["read", "list"] }')
    bao.api("POST", "auth/arvados/role/lab", {
        "bound_group_uuids": [LAB], "token_policies": ["arvados-lab", "arvados-user"],
        "token_ttl": "10m", "token_max_ttl": "1h",
    })
    bao.api("POST", "auth/arvados/role/other", {
        "bound_group_uuids": [OTHER], "token_policies": ["arvados-other", "arvados-user"],
    })
    values = {
        "lab": CANARIES.new("lab group secret"),
        "other": CANARIES.new("other group secret"),
        "alice": CANARIES.new("alice's own secret"),
        "bob": CANARIES.new("bob's own secret"),
    }
    bao.kv2_put("secret", "lab/db", {"password": values["lab"]})
    bao.kv2_put("secret", "other/db", {"password": values["other"]})
    bao.kv2_put("secret", f"arvados/{ALICE}/personal", {"value": values["alice"]})
    bao.kv2_put("secret", f"arvados/{BOB}/personal", {"value": values["bob"]})
    bao.values = values
    bao.accessor = accessor
    yield bao
    bao.close()


@pytest.fixture
def acs(arv):
    runner = Runner(arv)
    yield runner
    runner.cleanup()


def run_arvados(acs, role: str, token: str, env: dict, *extra: str):
    """crunch-secrets run --auth arvados with ARVADOS_API_TOKEN=token and no Vault token."""
    return acs.run(["run", "--no-manifest", "--auth", "arvados", "--arvados-role", role, *extra,
                    "--", "{probe}"], dict(env, ARVADOS_API_TOKEN=token), token=None)


def login(arv, role: str, token: str, mount: str = "arvados"):
    status, resp = arv.api_status("POST", f"auth/{mount}/login", {"role": role, "arvados_token": token},
                                  token=None)
    CANARIES.check(json.dumps(resp), f"the login answer (role {role})")
    if status == 200:
        CANARIES.add("vault token from an arvados login", resp["auth"]["client_token"])
    return status, resp


def errors_of(resp) -> str:
    return "; ".join(resp.get("errors", [])) if isinstance(resp, dict) else str(resp)


# ---------------------------------------------------------------------------------------------
# crunch-secrets with a container token


def test_group_bound_secret_is_delivered(acs, arv):
    r = run_arvados(acs, "lab", container_token(ALICE_RUN1), {"X": "vault:secret/data/lab/db#password"})
    assert r.code == 0, r.describe()
    assert r.env["X"] == arv.values["lab"], "the lab secret was not delivered"


def test_nested_group_member_gets_the_group_secret(acs, arv):
    r = run_arvados(acs, "lab", container_token(DAVE_RUN), {"X": "vault:secret/data/lab/db#password"})
    assert r.code == 0, r.describe()
    assert r.env["X"] == arv.values["lab"], "the lab secret was not delivered to a nested member"


def test_other_groups_secret_is_denied(acs):
    r = run_arvados(acs, "lab", container_token(ALICE_RUN1), {"X": "vault:secret/data/other/db#password"})
    assert r.code == 77, r.describe()
    assert r.report is None, "the command ran although a secret was denied"
    assert "secret/data/other/db" in r.err, r.describe()


def test_role_of_another_group_is_refused(acs):
    r = run_arvados(acs, "other", container_token(ALICE_RUN1), {"X": "vault:secret/data/other/db#password"})
    assert r.code == 80, r.describe()
    assert r.report is None


def test_per_user_templated_path(acs, arv):
    r = run_arvados(acs, "lab", container_token(ALICE_RUN1),
                    {"MINE": f"vault:secret/data/arvados/{ALICE}/personal#value"})
    assert r.code == 0, r.describe()
    assert r.env["MINE"] == arv.values["alice"], "alice's own secret was not delivered"
    r = run_arvados(acs, "lab", container_token(ALICE_RUN1),
                    {"THEIRS": f"vault:secret/data/arvados/{BOB}/personal#value"})
    assert r.code == 77, r.describe()
    r = run_arvados(acs, "other", container_token(BOB_RUN),
                    {"MINE": f"vault:secret/data/arvados/{BOB}/personal#value"})
    assert r.code == 0, r.describe()
    assert r.env["MINE"] == arv.values["bob"], "bob's own secret was not delivered"


def test_complete_container_token_is_refused_at_login(acs):
    r = run_arvados(acs, "lab", container_token(ALICE_DONE), {"X": "vault:secret/data/lab/db#password"})
    assert r.code == 80, r.describe()
    assert r.report is None


def test_non_member_is_refused(acs):
    r = run_arvados(acs, "lab", container_token(EVE_RUN), {"X": "vault:secret/data/lab/db#password"})
    assert r.code == 80, r.describe()


def test_token_file_option(acs, arv):
    d = acs.tmpfs_dir()
    p = d / "arvados-token"
    p.write_text(container_token(ALICE_RUN1) + "\n")
    os.chmod(p, 0o600)
    r = acs.run(["run", "--no-manifest", "--auth", "arvados", "--arvados-role", "lab",
                 "--arvados-token-file", str(p), "--", "{probe}"],
                {"X": "vault:secret/data/lab/db#password"}, token=None)
    assert r.code == 0, r.describe()
    assert r.env["X"] == arv.values["lab"]


# ---------------------------------------------------------------------------------------------
# Plain HTTP against OpenBao


def test_login_answer(arv):
    status, resp = login(arv, "lab", container_token(ALICE_RUN1))
    assert status == 200, errors_of(resp)
    auth = resp["auth"]
    assert sorted(auth["token_policies"]) == ["arvados-lab", "arvados-user", "default"], auth["token_policies"]
    assert auth["metadata"] == {"role": "lab", "user_uuid": ALICE, "username": "alice",
                                "container_uuid": ALICE_RUN1}, auth["metadata"]
    assert auth["lease_duration"] == 600 and auth["renewable"], auth
    assert auth["entity_id"], "no entity for the login"
    entity = arv.api("GET", f"identity/entity/id/{auth['entity_id']}")["data"]
    aliases = [(a["mount_accessor"], a["name"]) for a in entity["aliases"]]
    assert (arv.accessor, ALICE) in aliases, aliases


def test_group_alias_maps_to_an_external_group(arv):
    """A Vault external group aliased to the Arvados lab group gives its members the group's
    policies (the Vault admin's explicit choice); non-members do not get them."""
    arv.policy("arvados-lab-ext", 'path "secret/data/lab-ext/*" { capabilities = ["read"] }')
    gid = arv.api("POST", "identity/group", {"name": "arvados-lab-ext", "type": "external",
                                              "policies": ["arvados-lab-ext"]})["data"]["id"]
    arv.api("POST", "identity/group-alias", {"name": LAB, "mount_accessor": arv.accessor, "canonical_id": gid})
    status, resp = login(arv, "lab", container_token(ALICE_RUN1))
    assert status == 200, errors_of(resp)
    assert resp["auth"]["identity_policies"] == ["arvados-lab-ext"], resp["auth"].get("identity_policies")
    status, resp = login(arv, "other", container_token(BOB_RUN))
    assert status == 200, errors_of(resp)
    assert not resp["auth"].get("identity_policies"), resp["auth"].get("identity_policies")


def project_version() -> str:
    """The version build.sh stamps into the plugin: the project's, from meson.build, with a v."""
    m = re.search(r"^\s*version\s*:\s*'([^']+)'", (REPO_ROOT / "meson.build").read_text(), re.M)
    assert m, "meson.build declares no project version"
    return "v" + m.group(1)


def test_plugin_reports_its_version(arv):
    """The plugin's self-reported version is what OpenBao records at registration and shows for
    the mount (sys/auth and `bao auth list -detailed`)."""
    want = project_version()
    entry = arv.api("GET", "sys/auth")["arvados/"]
    assert entry["running_plugin_version"] == want, f"running_plugin_version {entry.get('running_plugin_version')!r}, want {want}"
    assert entry["plugin_version"] == want, f"plugin_version {entry.get('plugin_version')!r}, want {want}"
    # The catalog holds the binary under its self-reported version, not unversioned.
    versions = [p.get("version") for p in arv.api("GET", "sys/plugins/catalog")["data"]["detailed"]
                if p["name"] == PLUGIN_NAME and p["type"] == "auth"]
    assert versions == [want], f"catalog versions {versions}, want [{want}]"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env.update(BAO_ADDR=arv.addr, BAO_TOKEN=arv.root_token, HOME=str(arv.workdir))
    proc = subprocess.run([str(bao_bin()), "auth", "list", "-detailed"], env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = proc.stdout.decode(errors="replace")
    CANARIES.check(out, "bao auth list -detailed")
    assert proc.returncode == 0, out
    lines = [line for line in out.splitlines() if line.startswith("arvados/ ")]
    assert len(lines) == 1 and want in lines[0].split(), f"no {want} in the arvados/ row: {out}"


def test_role_write_above_the_ceiling_is_refused(arv):
    status, resp = arv.api_status("POST", "auth/arvados/role/greedy",
                                  {"bound_group_uuids": [LAB], "token_policies": ["arvados-lab", "admin-everything"]})
    assert status == 400, (status, resp)
    assert "exceed the ceiling" in errors_of(resp) and "admin-everything" in errors_of(resp), errors_of(resp)
    status, _ = arv.api_status("GET", "auth/arvados/role/greedy")
    assert status == 404, "a refused role was stored"


def test_config_read_hides_the_privileged_token(arv):
    data = arv.api("GET", "auth/arvados/config")["data"]
    CANARIES.check(json.dumps(data), "the config read")
    assert "privileged_token" not in data and data["privileged_token_set"] is True, data


def test_renewal_fails_once_the_container_completed(arv, standin):
    status, resp = login(arv, "lab", container_token(ALICE_RUN2))
    assert status == 200, errors_of(resp)
    vtoken = resp["auth"]["client_token"]
    try:
        status, resp = arv.api_status("POST", "auth/token/renew-self", {"increment": "5m"}, token=vtoken)
        assert status == 200, f"renewal of a running container's token failed: {status} {errors_of(resp)}"
        standin.control("POST", f"containers/{ALICE_RUN2}", {"state": "Complete"})
        status, resp = arv.api_status("POST", "auth/token/renew-self", {"increment": "5m"}, token=vtoken)
        CANARIES.check(json.dumps(resp), "the renew answer")
        assert status != 200, "renewal succeeded after the container completed"
        assert "not Running" in errors_of(resp), errors_of(resp)
        # A fresh login with the (now expired) container token is refused too.
        status, resp = login(arv, "lab", container_token(ALICE_RUN2))
        assert status == 400, (status, errors_of(resp))
    finally:
        standin.control("POST", f"containers/{ALICE_RUN2}", {"state": "Running"})


def test_renewal_fails_once_membership_is_removed(arv, standin):
    status, resp = login(arv, "lab", container_token(DAVE_RUN))
    assert status == 200, errors_of(resp)
    vtoken = resp["auth"]["client_token"]
    link = "zzzzz-o0j2j-linkanallab0001"  # analysts -> lab: dave's path into lab
    standin.control("DELETE", f"links/{link}")
    try:
        status, resp = arv.api_status("POST", "auth/token/renew-self", {}, token=vtoken)
        assert status != 200, "renewal succeeded after the membership was removed"
        assert "no longer a member" in errors_of(resp), errors_of(resp)
    finally:
        standin.control("POST", "links", {"uuid": link, "tail_uuid": "zzzzz-j7d0g-analysts0000001",
                                          "head_uuid": LAB, "name": "can_read"})


def test_login_fails_closed_when_arvados_is_down(arv, acs):
    """A second mount points at its own stand-in, which then goes away."""
    down = Standin()
    try:
        arv.api("POST", "sys/auth/arvados-down", {"type": PLUGIN_NAME})
        arv.api("POST", "auth/arvados-down/config", {
            "arvados_api_host": down.url, "privileged_token": plain_token(ADMIN_TOKEN_UUID),
            "cluster_id": "zzzzz", "allowed_policies": "arvados-*", "cache_ttl": 0,
        })
        arv.api("POST", "auth/arvados-down/role/lab", {"bound_group_uuids": [LAB], "token_policies": ["arvados-lab"]})
        # A freshly mounted plugin backend may need a moment before its first login succeeds.
        for _ in range(50):
            status, resp = login(arv, "lab", container_token(ALICE_RUN1), mount="arvados-down")
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200, errors_of(resp)
        down.control("POST", "shutdown")
        down.proc.wait(10)

        status, resp = login(arv, "lab", container_token(ALICE_RUN1), mount="arvados-down")
        assert status == 502, (status, errors_of(resp))
        assert f"cannot reach Arvados API at {down.url}" in errors_of(resp), errors_of(resp)

        # The plugin answers 502, which crunch-secrets retries, then gives up (exit 69) naming the
        # cause. The retries are bounded by count (VAULT_MAX_RETRIES), not by a short --wait: the
        # last attempt before a --wait deadline gets only the milliseconds left, and on a loaded
        # machine it times out before the plugin's answer, which would then be reported instead.
        r = acs.run(["run", "--no-manifest", "--wait", "60s", "--auth", "arvados", "--arvados-mount", "arvados-down",
                     "--arvados-role", "lab", "--", "{probe}"],
                    {"X": "vault:secret/data/lab/db#password", "ARVADOS_API_TOKEN": container_token(ALICE_RUN1),
                     "VAULT_MAX_RETRIES": "2"},
                    token=None)
        assert r.code == 69, r.describe()
        assert "cannot reach Arvados API" in r.err, r.describe()
        assert r.report is None, "the command ran although Arvados was unreachable"
    finally:
        down.stop()
        arv.api_status("DELETE", "sys/auth/arvados-down")


def test_arvados_calls_per_login(arv, standin):
    """How many Arvados API requests a login makes, counted by the stand-in, on a mount of its
    own: 4 with every cache off; 2 for another container of a user whose record and membership
    are cached (cache_ttl); 0 for the same token again within token_cache_ttl. And the bound:
    once token_cache_ttl has passed, a finished container's token is refused."""
    arv.api("POST", "sys/auth/arvados-calls", {"type": PLUGIN_NAME})

    def configure(**ttls):
        arv.api("POST", "auth/arvados-calls/config", {
            "arvados_api_host": standin.url, "privileged_token": plain_token(ADMIN_TOKEN_UUID),
            "cluster_id": "zzzzz", "allowed_policies": "arvados-*", **ttls})

    def calls(tokens):
        before = len(standin.control("GET", "log")["items"])
        for tok in tokens:
            status, resp = login(arv, "lab", tok, mount="arvados-calls")
            assert status == 200, errors_of(resp)
        return [e["path"].removeprefix("/arvados/v1/")
                for e in standin.control("GET", "log")["items"][before:] if e["path"].startswith("/arvados/v1/")]

    try:
        configure(cache_ttl=0, token_cache_ttl=0)
        arv.api("POST", "auth/arvados-calls/role/lab", {"bound_group_uuids": [LAB], "token_policies": ["arvados-lab"]})
        # A freshly mounted plugin backend may need a moment before its first login succeeds.
        for _ in range(50):
            status, resp = login(arv, "lab", container_token(ALICE_RUN1), mount="arvados-calls")
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200, errors_of(resp)
        alternating = [container_token(c) for c in (ALICE_RUN1, ALICE_RUN2)] * 3
        figures = {}

        got = calls(alternating)
        figures["caches off"] = len(got) / 6
        assert len(got) == 6 * 4, f"caches off: 6 logins made {len(got)} calls, want 24: {got}"
        assert sorted(got[:4]) == ["api_client_authorizations/current", "computed_permissions",
                                   "containers/current", f"users/{ALICE}"], got[:4]

        configure(cache_ttl=60)
        got = calls(alternating)
        figures["cache_ttl=60, alice's 2 containers alternating"] = len(got[4:]) / 5
        assert len(got) == 4 + 5 * 2, f"cache_ttl 60: 6 logins made {len(got)} calls, want 14: {got}"
        assert set(got[4:]) == {"api_client_authorizations/current", "containers/current"}, got

        configure(token_cache_ttl=60)
        got = calls([container_token(ALICE_RUN1)] * 6)
        figures["token_cache_ttl=60, one token"] = len(got[4:]) / 5
        assert len(got) == 4, f"token_cache_ttl 60: 6 logins with one token made {len(got)} calls, want 4: {got}"
        print("\nArvados calls per login (after the first):", figures)

        # The bound: a finished container's token logs in only until its cached answers expire.
        ttl = 3
        configure(token_cache_ttl=ttl)
        filled = time.monotonic()
        calls([container_token(ALICE_RUN2)])
        standin.control("POST", f"containers/{ALICE_RUN2}", {"state": "Complete"})
        status, resp = login(arv, "lab", container_token(ALICE_RUN2), mount="arvados-calls")
        if time.monotonic() - filled < ttl - 0.5:
            assert status == 200, f"within token_cache_ttl the cached answers were not used: {errors_of(resp)}"
        time.sleep(max(0.0, filled + ttl + 0.5 - time.monotonic()))
        status, resp = login(arv, "lab", container_token(ALICE_RUN2), mount="arvados-calls")
        assert status == 400, f"a finished container's token logged in after token_cache_ttl: {status}"
        assert "Arvados rejected the token (401)" in errors_of(resp), errors_of(resp)
    finally:
        standin.control("POST", f"containers/{ALICE_RUN2}", {"state": "Running"})
        arv.api_status("DELETE", "sys/auth/arvados-calls")


# ---------------------------------------------------------------------------------------------
# The stand-in itself (the C++ tests rely on these behaviours too)


def arv_get(standin, path: str, token: str | None, **query):
    from urllib.parse import urlencode
    url = f"{standin.url}/arvados/v1/{path}"
    if query:
        url += "?" + urlencode({k: json.dumps(v) if not isinstance(v, str) else v for k, v in query.items()})
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, body = http_json("GET", url, headers=headers)
    return status, body


def test_standin_error_bodies(standin):
    status, body = arv_get(standin, "users/current", None)
    assert status == 401 and body["errors"] == ["Not logged in"] and body["error_token"], (status, body)
    status, body = arv_get(standin, "containers/current", plain_token("zzzzz-gj3su-alicetoken00001"))
    assert status == 404 and "not associated with a container" in body["errors"][0], (status, body)
    status, body = arv_get(standin, "computed_permissions", container_token(ALICE_RUN1))
    assert status == 403, (status, body)
    status, body = arv_get(standin, "links", plain_token(ADMIN_TOKEN_UUID), filters="[not json")
    assert status == 422, (status, body)


def test_standin_links_filters(standin):
    status, body = arv_get(standin, "links", plain_token(ADMIN_TOKEN_UUID),
                           filters=[["link_class", "=", "permission"], ["tail_uuid", "=", ALICE],
                                    ["head_uuid", "=", LAB]])
    assert status == 200 and [l["name"] for l in body["items"]] == ["can_read"], body
    status, body = arv_get(standin, "groups", container_token(ALICE_RUN1),
                           filters=[["group_class", "=", "role"]])
    assert status == 200 and {g["uuid"] for g in body["items"]} >= {LAB, OTHER}, body


def test_standin_credential_secret_only_for_running_containers(standin):
    cred = FIXTURE_DATA["credentials"][0]["uuid"]
    status, body = arv_get(standin, "credentials", container_token(ALICE_RUN1))
    assert status == 200 and cred in [c["uuid"] for c in body["items"]], body
    assert all("secret" not in c for c in body["items"]), "the list shows a secret"
    status, body = arv_get(standin, f"credentials/{cred}/secret", container_token(ALICE_RUN1))
    assert status == 200 and body["external_id"] == "AKIAEXAMPLELAB" and body["secret"], status
    assert arv_get(standin, f"credentials/{cred}/secret", plain_token("zzzzz-gj3su-alicetoken00001"))[0] == 403
    assert arv_get(standin, f"credentials/{cred}/secret", container_token(ALICE_DONE))[0] == 401
    assert arv_get(standin, f"credentials/{cred}/secret", container_token(BOB_RUN))[0] == 404
    log = standin.control("GET", "log")["items"]
    assert any(e.get("event", {}).get("event_type") == "secret_access" for e in log), "no secret_access event"
