"""The first hour of a new operator (issue 11): a `check` that never uses up a credential,
errors that tell causes apart, configuration without flags, help and JSON logs, and the
credential conventions of the Vault CLI. Each message asserted here is quoted in README.md's
"Troubleshooting" section (`test_readme_troubleshooting_quotes_tested_messages`)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from harness import CANARIES, REPO_ROOT

RUN = ["run", "--no-manifest", "--", "{probe}"]
REF = {"X": "vault:secret/data/app#password"}

# The messages README.md's Troubleshooting section quotes; each is asserted by a test below.
MESSAGES = {
    "unknown_subcommand": "unknown subcommand 'frobnicate'",
    "invalid_token": "cannot tell whether it is invalid or expired, or valid but without the default",
    "no_policy": "the token is valid but no policy grants read on",
    "did_you_mean": "did you mean secret/data/app",
    "https_to_http": "speaks plain HTTP",
    "http_to_https": "speaks HTTPS",
    "login_no_mount": "no auth method of that type is mounted at auth/nothere",
    "approle_check": "check --online does not log in with an AppRole secret id",
    "wrapping_used": "another process, an earlier run, or check --online --consume-credentials",
    "secret_id_used": "the secret id may have been used up",
    "grouped": "5 references",
    "env_invalid": "CRUNCH_SECRETS_AUTH='kerberos'",
    "retrying": "next try in",
    "wrapped_secret_id_no_role": "holds an AppRole secret id",
    "stdin_not_ended": "standard input did not end before the deadline",
}

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def secret_file(cs, name: str, value: str) -> Path:
    d = cs.tmpfs_dir()
    p = d / name
    p.write_text(value + "\n")
    os.chmod(p, 0o600)
    return p


def json_lines(r) -> list[dict]:
    """Every stderr line as a JSON object with time (RFC 3339), level and msg."""
    objs = []
    for line in r.err.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError(f"stderr line is not one JSON object: {r.describe()}")
        assert isinstance(obj, dict), r.describe()
        assert RFC3339.match(obj.get("time", "")), f"time is not RFC 3339: {r.describe()}"
        assert obj.get("level") in ("debug", "info", "warning", "error"), r.describe()
        assert isinstance(obj.get("msg"), str) and obj["msg"], r.describe()
        objs.append(obj)
    return objs


def single_use_secret_id(bao) -> tuple[str, str]:
    """A role whose secret ids work once, and a fresh secret id for it."""
    bao.api("POST", "auth/approle/role/once", {"token_policies": ["reader"], "secret_id_num_uses": 1})
    role_id = bao.api("GET", "auth/approle/role/once/role-id")["data"]["role_id"]
    sid = CANARIES.add("single-use secret id",
                       bao.api("POST", "auth/approle/role/once/secret-id")["data"]["secret_id"])
    return role_id, sid


# --- 3. Configuration without flags ------------------------------------------------------------


def test_env_auth_method_and_flag_wins(cs, world):
    env = dict(REF, VAULT_TOKEN="not-a-valid-token", CRUNCH_SECRETS_AUTH="approle",
               CRUNCH_SECRETS_ROLE_ID=world.role_id, CRUNCH_SECRETS_SECRET_ID=world.secret_id)
    r = cs.run(RUN, env, token=None)
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]
    r = cs.run(["run", "--no-manifest", "--auth", "token", "--", "{probe}"], env, token=None)
    assert r.code == 80, r.describe()


@pytest.mark.offline
def test_env_invalid_values_name_the_variable(cs):
    for var, value, needle in (("CRUNCH_SECRETS_AUTH", "kerberos", MESSAGES["env_invalid"]),
                               ("CRUNCH_SECRETS_WAIT", "soon", "CRUNCH_SECRETS_WAIT='soon'"),
                               ("CRUNCH_SECRETS_LOG_LEVEL", "loud", "CRUNCH_SECRETS_LOG_LEVEL='loud'"),
                               ("CRUNCH_SECRETS_LOG_FORMAT", "xml", "CRUNCH_SECRETS_LOG_FORMAT='xml'")):
        r = cs.run(RUN, dict(REF, VAULT_ADDR="http://127.0.0.1:9", **{var: value}), bao=None, wait=None)
        assert r.code == 64, r.describe()
        assert needle in r.err, r.describe()


def test_env_wait_and_flag_wins(cs, make_bao):
    server = make_bao(seeded=False, start=False)
    r = cs.run(RUN, dict(REF, CRUNCH_SECRETS_WAIT="1s"), bao=server, wait=None)
    assert r.code == 69, r.describe()
    assert 0.9 <= r.elapsed <= 5, f"elapsed {r.elapsed:.2f}s with CRUNCH_SECRETS_WAIT=1s"
    r = cs.run(RUN, dict(REF, CRUNCH_SECRETS_WAIT="1s"), bao=server, wait="3s")
    assert r.code == 69, r.describe()
    assert r.elapsed >= 2.9, f"elapsed {r.elapsed:.2f}s: --wait 3s must win over CRUNCH_SECRETS_WAIT"


def test_env_log_level_and_flags_win(cs):
    r = cs.run(RUN, dict(REF, CRUNCH_SECRETS_LOG_LEVEL="debug"))
    assert r.code == 0, r.describe()
    assert "debug:" in r.err, r.describe()
    r = cs.run(["run", "--no-manifest", "-q", "--", "{probe}"], dict(REF, CRUNCH_SECRETS_LOG_LEVEL="debug"))
    assert r.code == 0 and r.err == "", r.describe()
    r = cs.run(RUN, dict(REF, CRUNCH_SECRETS_LOG_LEVEL="error", X="vault:secret/data/nothing#k"))
    assert r.code == 79 and "error:" in r.err, r.describe()


def test_env_log_format_and_flag_wins(cs):
    env = dict(REF, CRUNCH_SECRETS_LOG_FORMAT="json", CRUNCH_SECRETS_LOG_LEVEL="debug")
    r = cs.run(RUN, env)
    assert r.code == 0, r.describe()
    assert json_lines(r), r.describe()
    r = cs.run(["run", "--no-manifest", "--log-format", "text", "--", "{probe}"], env)
    assert r.code == 0 and r.err.startswith("crunch-secrets: debug:"), r.describe()


def test_retry_info_line_per_attempt(cs, make_bao):
    server = make_bao(seeded=False, start=False)
    r = cs.run(RUN, dict(REF), bao=server, wait="2s")
    assert r.code == 69, r.describe()
    infos = [line for line in r.err.splitlines() if line.startswith("crunch-secrets: info:")]
    assert len(infos) >= 2, r.describe()
    assert MESSAGES["retrying"] in infos[0] and "attempt 1" in infos[0] and "gives up" in infos[0], r.describe()
    assert server.addr in infos[0], r.describe()
    r = cs.run(["run", "--no-manifest", "--log-format", "json", "--", "{probe}"], dict(REF), bao=server, wait="1s")
    assert r.code == 69, r.describe()
    attempts = [o["attempt"] for o in json_lines(r) if o["level"] == "info"]
    assert attempts[:2] == [1, 2], r.describe()


# --- 4. Help and logs ------------------------------------------------------------------------


@pytest.mark.offline
def test_help_shows_usage_metavariables_and_epilog(cs):
    r = cs.run(["run", "--help"], {}, bao=None, wait=None)
    assert r.code == 0, r.describe()
    for needle in ("crunch-secrets run [OPTIONS] -- COMMAND [ARG...]", "--manifest FILE", "--wait DURATION",
                   "--vault-addr URL", "--auth METHOD", "vault:PATH#KEY[#VERSION]", "CRUNCH_SECRETS_WAIT",
                   "CRUNCH_SECRETS_AUTH", "CRUNCH_SECRETS_LOG_LEVEL", "CRUNCH_SECRETS_LOG_FORMAT", "VAULT_ADDR",
                   "EXIT STATUS", "77", "80"):
        assert needle in r.out, f"--help lacks {needle!r}"
    top = cs.run(["--help"], {}, bao=None, wait=None)
    assert top.code == 0 and "crunch-secrets check [OPTIONS]" in top.out, top.describe()


@pytest.mark.offline
def test_unknown_subcommand_is_named(cs):
    r = cs.run(["frobnicate"], {}, bao=None, wait=None)
    assert r.code == 64, r.describe()
    assert MESSAGES["unknown_subcommand"] in r.err, r.describe()


def test_json_mode_every_stderr_line_is_an_object(cs, world, make_bao):
    """Usage errors, read errors, retries and debug lines: every line parses, with fields."""
    j = ["--log-format", "json"]
    r = cs.run(j + ["frobnicate"], {}, wait=None)
    (obj,) = json_lines(r)
    assert r.code == 64 and obj["exit_code"] == 64 and obj["level"] == "error", r.describe()
    r = cs.run(["run", "--log-format", "json", "--no-such-option", "--", "{probe}"], dict(REF))
    assert r.code == 64 and json_lines(r)[-1]["exit_code"] == 64, r.describe()
    r = cs.run(["run", "--no-manifest", *j, "-v", "--", "{probe}"], dict(REF))
    assert r.code == 0 and all(o["level"] == "debug" for o in json_lines(r)), r.describe()
    r = cs.run(["run", "--no-manifest", *j, "--", "{probe}"], {"X": "vault:secret/data/forbidden#value"},
               token=world.reader_token)
    objs = json_lines(r)
    assert r.code == 77, r.describe()
    err = [o for o in objs if o["level"] == "error"][-1]
    assert err["exit_code"] == 77 and err["status"] == 403, r.describe()
    assert err["path"] == "secret/data/forbidden" and err["reference"] == "vault:secret/data/forbidden#value", \
        r.describe()
    server = make_bao(seeded=False, start=False)
    r = cs.run(["run", "--no-manifest", *j, "--", "{probe}"], dict(REF), bao=server, wait="1s")
    objs = json_lines(r)
    assert r.code == 69 and objs[-1]["exit_code"] == 69, r.describe()
    assert any("attempt" in o for o in objs), r.describe()


# --- 5. Credential conventions -----------------------------------------------------------------


def test_token_file_from_stdin(cs, world):
    r = cs.run(["run", "--no-manifest", "--token-file", "-", "--", "{probe}"], dict(REF), token=None,
               stdin=(world.reader_token + "\n").encode())
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]


def test_secret_id_file_from_stdin(cs, world):
    r = cs.run(["run", "--no-manifest", "--role-id", world.role_id, "--secret-id-file", "-", "--", "{probe}"],
               dict(REF), token=None, stdin=world.secret_id.encode())
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]


def test_vault_token_file_after_vault_token(cs, world):
    home = cs.tmpfs_dir()
    (home / ".vault-token").write_text(world.reader_token + "\n")
    r = cs.run(RUN, dict(REF, HOME=str(home)), token=None)
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]
    # VAULT_TOKEN comes first, as with the Vault CLI: an invalid one is not skipped.
    r = cs.run(RUN, dict(REF, HOME=str(home), VAULT_TOKEN="not-a-valid-token"), token=None)
    assert r.code == 80, r.describe()


def test_wrapped_approle_secret_id(cs, world):
    resp = cs.bao.api("POST", "auth/approle/role/test/secret-id", headers={"X-Vault-Wrap-TTL": "300s"})
    wrapping = CANARIES.add("wrapped secret id", resp["wrap_info"]["token"])
    p = secret_file(cs, "wrapped-sid", wrapping)
    r = cs.run(["run", "--no-manifest", "--wrapped-token-file", str(p), "--role-id", world.role_id, "--",
                "{probe}"], dict(REF), token=None)
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]


# --- 1. `check --online` never consumes a single-use credential -------------------------------


def test_check_online_does_not_unwrap(cs, world):
    wrapped = world.wrapped_token()
    p = secret_file(cs, "wrapped", wrapped)
    r = cs.run(["check", "--no-manifest", "--online", "--wrapped-token-file", str(p)], dict(REF), token=None)
    assert r.code == 0, r.describe()
    assert "not unwrapped" in r.out + r.err, r.describe()
    r = cs.run(["run", "--no-manifest", "--wrapped-token-file", str(p), "--", "{probe}"], dict(REF), token=None)
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]
    # Now it is used: check says so, truthfully, without trying to unwrap.
    r = cs.run(["check", "--no-manifest", "--online", "--wrapped-token-file", str(p)], dict(REF), token=None)
    assert r.code == 80, r.describe()
    assert MESSAGES["wrapping_used"] in r.err, r.describe()


def test_run_with_used_wrapping_token_says_who_may_have_used_it(cs, world):
    p = secret_file(cs, "wrapped", world.wrapped_token())
    args = ["run", "--no-manifest", "--wrapped-token-file", str(p), "--", "{probe}"]
    assert cs.run(args, dict(REF), token=None).code == 0
    r = cs.run(args, dict(REF), token=None)
    assert r.code == 80, r.describe()
    assert MESSAGES["wrapping_used"] in r.err, r.describe()


def test_check_online_refuses_approle_login(cs, world):
    role_id, sid = single_use_secret_id(cs.bao)
    env = dict(REF, CRUNCH_SECRETS_ROLE_ID=role_id, CRUNCH_SECRETS_SECRET_ID=sid)
    r = cs.run(["check", "--no-manifest", "--online"], env, token=None)
    assert r.code == 64, r.describe()
    assert MESSAGES["approle_check"] in r.err and "--consume-credentials" in r.err, r.describe()
    # The secret id was not used: run still logs in with it.
    r = cs.run(RUN, env, token=None)
    assert r.code == 0, r.describe()


def test_check_online_consume_credentials_then_run_explains(cs, world):
    role_id, sid = single_use_secret_id(cs.bao)
    env = dict(REF, CRUNCH_SECRETS_ROLE_ID=role_id, CRUNCH_SECRETS_SECRET_ID=sid)
    r = cs.run(["check", "--no-manifest", "--online", "--consume-credentials"], env, token=None)
    assert r.code == 0, r.describe()
    assert "[readable]" in r.out, r.describe()
    r = cs.run(RUN, env, token=None)
    assert r.code == 80, r.describe()
    assert MESSAGES["secret_id_used"] in r.err, r.describe()


# --- 2. Errors that tell the cause apart -------------------------------------------------------


def test_invalid_token_is_not_a_missing_policy(cs, world):
    r = cs.run(RUN, dict(REF), token="not-a-valid-token")
    assert r.code == 80, r.describe()
    assert MESSAGES["invalid_token"] in r.err, r.describe()
    r = cs.run(RUN, {"X": "vault:secret/data/forbidden#value"}, token=world.reader_token)
    assert r.code == 77, r.describe()
    assert MESSAGES["no_policy"] in r.err, r.describe()


def test_login_at_unmounted_path(cs, world):
    r = cs.run(["run", "--no-manifest", "--role-id", world.role_id, "--approle-mount", "nothere", "--", "{probe}"],
               dict(REF, CRUNCH_SECRETS_SECRET_ID=world.secret_id), token=None)
    assert r.code == 80, r.describe()
    assert MESSAGES["login_no_mount"] in r.err, r.describe()


def test_kv2_path_without_data_suggests_it(cs):
    r = cs.run(RUN, {"X": "vault:secret/app#password"})
    assert r.code == 79, r.describe()
    assert MESSAGES["did_you_mean"] in r.err, r.describe()


def test_https_against_plain_http_fails_at_once(cs, bao):
    r = cs.run(RUN, dict(REF, VAULT_ADDR=bao.addr.replace("http:", "https:")), wait="20s")
    assert r.code == 78, r.describe()
    assert r.elapsed < 5, f"retried for {r.elapsed:.1f}s"
    assert MESSAGES["https_to_http"] in r.err and bao.addr in r.err, r.describe()


def test_http_against_tls_fails_at_once(cs_tls, bao_tls):
    r = cs_tls.run(RUN, dict(REF, VAULT_ADDR=bao_tls.addr.replace("https:", "http:")), wait="20s")
    assert r.code == 78, r.describe()
    assert r.elapsed < 5, f"took {r.elapsed:.1f}s"
    assert MESSAGES["http_to_https"] in r.err and bao_tls.addr in r.err, r.describe()


def test_many_references_one_cause_one_line(cs):
    env = {f"M{i}": f"vault:secret/data/missing-{i}#k" for i in range(5)}
    r = cs.run(RUN, env)
    assert r.code == 79, r.describe()
    errors = [line for line in r.err.splitlines() if ": error: " in line]
    assert len(errors) == 1, r.describe()
    assert MESSAGES["grouped"] in errors[0] and "secret/data/missing-" in errors[0], r.describe()


def test_missing_key_message_has_no_repeated_fragment(cs):
    r = cs.run(RUN, {"DB": "vault:secret/data/app#nokey"})
    assert r.code == 79, r.describe()
    assert "environment variable DB" in r.err, r.describe()
    assert "(environment)" not in r.err, r.describe()


# --- 6. Docs match behaviour -------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["kv1", "generic"])
def test_kv1_and_generic_engine_on_kv2_mount_deliver_data_data(cs, world, engine):
    d = cs.tmpfs_dir()
    m = d / "m.yml"
    m.write_text(yaml.safe_dump({"version": 1,
                                 "secrets": {"db": {"path": "secret/data/app", "engine": engine, "key": "password"}},
                                 "env": {"DB": "${secret:db}"}}))
    r = cs.run(["run", "-m", str(m), "--", "{probe}"], {})
    assert r.code == 0, r.describe()
    assert r.env["DB"] == world.values["password"]


@pytest.mark.offline
def test_readme_troubleshooting_quotes_tested_messages():
    text = (REPO_ROOT / "README.md").read_text()
    assert "## Troubleshooting" in text
    section = text.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    for key, message in MESSAGES.items():
        assert message in section, f"README Troubleshooting does not quote the tested message {key!r}"

