"""Authentication (token, token file, AppRole, wrapped token) and the child's environment."""

from __future__ import annotations

import os

RUN = ["run", "--no-manifest", "--", "{probe}"]
REF = {"X": "vault:secret/data/app#password"}


def write_secret_file(cs, name: str, value: str):
    d = cs.tmpfs_dir()
    p = d / name
    p.write_text(value + "\n")
    os.chmod(p, 0o600)
    return p


def test_token_from_vault_token(cs, world):
    r = cs.run(RUN, dict(REF), token=world.reader_token)
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]
    assert "VAULT_TOKEN" not in r.env


def test_token_from_bao_token_wins(cs, world):
    r = cs.run(RUN, dict(REF, BAO_TOKEN=world.reader_token, VAULT_TOKEN="not-a-valid-token"), token=None)
    assert r.code == 0, r.describe()
    assert "BAO_TOKEN" not in r.env and "VAULT_TOKEN" not in r.env


def test_bao_addr_wins_over_vault_addr(cs, world):
    r = cs.run(RUN, dict(REF, BAO_ADDR=cs.bao.addr, VAULT_ADDR="http://127.0.0.1:9"))
    assert r.code == 0, r.describe()


def test_token_file(cs, world):
    p = write_secret_file(cs, "token", world.reader_token)
    r = cs.run(["run", "--no-manifest", "--token-file", str(p), "--", "{probe}"], dict(REF), token=None)
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]


def test_missing_token_file_is_66(cs):
    r = cs.run(["run", "--no-manifest", "--token-file", "/nonexistent/token", "--", "{probe}"], dict(REF),
               token=None)
    assert r.code == 66, r.describe()


def test_no_credentials_is_78(cs):
    r = cs.run(RUN, dict(REF), token=None)
    assert r.code == 78, r.describe()
    assert r.report is None


def test_no_address_is_78(cs):
    r = cs.run(RUN, dict(REF, VAULT_ADDR=None))
    assert r.code == 78, r.describe()


def test_approle_options(cs, world):
    sid = write_secret_file(cs, "secret-id", world.secret_id)
    r = cs.run(["run", "--no-manifest", "--auth", "approle", "--role-id", world.role_id, "--secret-id-file", str(sid),
                "--", "{probe}"], dict(REF), token=None)
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]


def test_approle_env_auto_and_scrubbed(cs, world):
    r = cs.run(RUN, dict(REF, CRUNCH_SECRETS_ROLE_ID=world.role_id, CRUNCH_SECRETS_SECRET_ID=world.secret_id),
               token=None)
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]
    assert "CRUNCH_SECRETS_SECRET_ID" not in r.env


def test_approle_role_id_file(cs, world):
    rid = write_secret_file(cs, "role-id", world.role_id)
    sid = write_secret_file(cs, "secret-id", world.secret_id)
    r = cs.run(["run", "--no-manifest", "--role-id-file", str(rid), "--secret-id-file", str(sid),
                "--", "{probe}"], dict(REF), token=None)
    assert r.code == 0, r.describe()


def test_approle_bad_secret_id_is_80(cs, world):
    r = cs.run(RUN, dict(REF, CRUNCH_SECRETS_ROLE_ID=world.role_id,
                         CRUNCH_SECRETS_SECRET_ID="00000000-0000-0000-0000-000000000000"), token=None)
    assert r.code == 80, r.describe()
    assert r.report is None


def test_approle_policy_denies(cs, world):
    r = cs.run(RUN, {"X": "vault:secret/data/forbidden#value", "CRUNCH_SECRETS_ROLE_ID": world.role_id,
                     "CRUNCH_SECRETS_SECRET_ID": world.secret_id}, token=None)
    assert r.code == 77, r.describe()


def test_wrapped_token_once(cs, world):
    wrapped = world.wrapped_token()
    p = write_secret_file(cs, "wrapped", wrapped)
    args = ["run", "--no-manifest", "--wrapped-token-file", str(p), "--", "{probe}"]
    r = cs.run(args, dict(REF), token=None)
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]
    r2 = cs.run(args, dict(REF), token=None)
    assert r2.code == 80, r2.describe()
    assert r2.report is None
    assert len([line for line in r2.err.splitlines() if "error" in line]) == 1, r2.describe()


def test_wrapped_token_env_and_scrubbed(cs, world):
    wrapped = world.wrapped_token()
    r = cs.run(["run", "--no-manifest", "--auth", "wrapped", "--", "{probe}"],
               dict(REF, CRUNCH_SECRETS_WRAPPED_TOKEN=wrapped), token=None)
    assert r.code == 0, r.describe()
    assert "CRUNCH_SECRETS_WRAPPED_TOKEN" not in r.env


def test_child_environment_scrubbing(cs, world):
    env = dict(REF, ARVADOS_API_TOKEN="v2/zzzzz-gj3su-000000000000000/notasecret", BAO_TOKEN=world.reader_token,
               KEEP_ME="yes")
    r = cs.run(RUN, env)
    assert r.code == 0, r.describe()
    for k in ("VAULT_TOKEN", "BAO_TOKEN", "CRUNCH_SECRETS_SECRET_ID", "CRUNCH_SECRETS_WRAPPED_TOKEN"):
        assert k not in r.env, k
    assert r.env["ARVADOS_API_TOKEN"] == env["ARVADOS_API_TOKEN"]
    assert r.env["KEEP_ME"] == "yes"
    assert r.env["VAULT_ADDR"] == cs.bao.addr
    # No value in the child environment is any Vault token (neither given nor obtained).
    for k, v in r.env.items():
        assert not (v or "").startswith(("hvs.", "s.", "b.", "hvb.")), f"{k} looks like a Vault token"

    r = cs.run(["run", "--no-manifest", "--scrub-arvados-token", "--", "{probe}"], env)
    assert r.code == 0, r.describe()
    assert "ARVADOS_API_TOKEN" not in r.env

    r = cs.run(["run", "--no-manifest", "--pass-auth-env", "--", "{probe}"], env)
    assert r.code == 0, r.describe()
    assert r.env["VAULT_TOKEN"] == cs.bao.root_token


def test_obtained_token_not_given_to_child(cs, world):
    r = cs.run(RUN, dict(REF, CRUNCH_SECRETS_ROLE_ID=world.role_id, CRUNCH_SECRETS_SECRET_ID=world.secret_id),
               token=None)
    assert r.code == 0, r.describe()
    for k, v in r.env.items():
        assert "TOKEN" not in k or k == "ARVADOS_API_TOKEN", f"unexpected {k} in the child environment"


def test_explicit_method_without_material_is_78(cs):
    for method in ("token", "approle", "wrapped"):
        r = cs.run(["run", "--no-manifest", "--auth", method, "--", "{probe}"], dict(REF), token=None)
        assert r.code == 78, f"--auth {method}: {r.describe()}"


def test_manifest_approle_role_and_custom_mount(cs, world):
    bao = cs.bao
    st, _ = bao.api_status("GET", "auth/approle2/role/other/role-id")
    if st != 200:
        bao.api("POST", "sys/auth/approle2", {"type": "approle"})
        bao.api("POST", "auth/approle2/role/other", {"token_policies": ["reader"]})
    role_id = bao.api("GET", "auth/approle2/role/other/role-id")["data"]["role_id"]
    from harness import CANARIES
    secret_id = CANARIES.add("approle2 secret id", bao.api("POST", "auth/approle2/role/other/secret-id")["data"]["secret_id"])
    d = cs.tmpfs_dir()
    m = d / "m.yml"
    m.write_text(f"version: 1\nauth:\n  method: approle\n  role: {role_id}\n  mount: approle2\n"
                 "env:\n  X: ${vault:secret/data/app#password}\n")
    r = cs.run(["run", "-m", str(m), "--", "{probe}"], {"CRUNCH_SECRETS_SECRET_ID": secret_id}, token=None)
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]
    # The same with options; the default mount does not know this role.
    sid = write_secret_file(cs, "sid", secret_id)
    r = cs.run(["run", "--no-manifest", "--role-id", role_id, "--secret-id-file", str(sid), "--approle-mount",
                "approle2", "--", "{probe}"], dict(REF), token=None)
    assert r.code == 0, r.describe()
    r = cs.run(["run", "--no-manifest", "--role-id", role_id, "--secret-id-file", str(sid), "--", "{probe}"],
               dict(REF), token=None)
    assert r.code == 80, r.describe()


def test_generic_endpoint(cs, bao):
    # Any readable endpoint that answers with a `data` object works; non-string values arrive
    # as compact JSON. (Token and system endpoints are refused: test_hardening, defect 2.)
    bao.api("POST", "identity/entity", {"name": "cs-generic", "policies": ["p1", "p2"]})
    r = cs.run(RUN, {"P": "vault:identity/entity/name/cs-generic#policies",
                     "D": "vault:identity/entity/name/cs-generic#disabled"})
    assert r.code == 0, r.describe()
    assert r.env["P"] == '["p1","p2"]'
    assert r.env["D"] == "false"
    r = cs.run(RUN, {"N": "vault:sys/mounts/secret/tune#max_lease_ttl"})
    assert r.code == 65, r.describe()
