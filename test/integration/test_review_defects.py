"""Defects adversarial reviews found in the CLI and core layers, each reproduced by hand before it
was fixed, against a real OpenBao (and the Arvados stand-in where Arvados is involved):

- a wrapped AppRole secret id with no role id (or for another AppRole mount): `run` unwrapped
  it, using it up, and then failed; now it is looked up (sys/wrapping/lookup, which uses nothing
  up) and refused with exit 78 before any unwrap;
- `check`'s text listing printed names from the environment and the manifest raw: an escape
  sequence in a variable's name drove the terminal; `check --json` is ASCII;
- an error naming a bad manifest value echoed all of it (megabytes, or a pasted secret);
- two credential options reading standard input: the second found it ended; and
  `--arvados-token-file -` was opened as a file named "-" by the Arvados credentials source.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from harness import CANARIES, FaultProxy, crunch_secrets_bin, http_json
from test_arvados_source import arvs, env_for  # noqa: F401 (fixture)
from test_arvados_plugin import ALICE_RUN1, FIXTURE_DATA, container_token

REF = {"X": "vault:secret/data/app#password"}
C0_RAW = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]")  # every control character but the newline
C1_RAW = re.compile(rb"\xc2[\x80-\x9f]")
LAB_DB = {c["name"]: c for c in FIXTURE_DATA["credentials"]}["lab-db"]


def credential_file(cs, name: str, value: str) -> Path:
    p = cs.tmpfs_dir() / name
    p.write_text(value + "\n")
    os.chmod(p, 0o600)
    return p


def one_error_line(r) -> str:
    lines = r.err.splitlines()
    assert len(lines) == 1, f"expected one error line: {r.describe()}"
    assert lines[0].startswith("crunch-secrets: error: "), r.describe()
    return lines[0]


# --- 1. A wrapped AppRole secret id that run cannot log in with is not unwrapped ---------------


def wrapped_secret_id(bao, label: str) -> str:
    resp = bao.api("POST", "auth/approle/role/test/secret-id", headers={"X-Vault-Wrap-TTL": "300s"})
    return CANARIES.add(label, resp["wrap_info"]["token"])


def wrapping_token_usable(bao, wrapping: str) -> bool:
    status, _ = http_json("POST", f"{bao.addr}/v1/sys/wrapping/lookup", body={"token": wrapping})
    return status == 200


@pytest.mark.parametrize("case", ["no role id", "another mount"])
def test_run_does_not_unwrap_a_secret_id_it_cannot_log_in_with(cs, bao, world, case):
    wrapping = wrapped_secret_id(bao, f"review wrapped secret id ({case})")
    p = credential_file(cs, "wrapped", wrapping)
    args = ["--role-id", world.role_id, "--approle-mount", "elsewhere"] if case == "another mount" else []
    proxy = FaultProxy(bao)
    try:
        r = cs.run(["run", "--no-manifest", "--wrapped-token-file", str(p), *args, "--", "{probe}"],
                   dict(REF, VAULT_ADDR=proxy.addr), token=None)
    finally:
        proxy.close()
    assert r.code == 78, r.describe()
    assert r.report is None, "the command ran"
    line = one_error_line(r)
    assert "holds an AppRole secret id" in line and "was not unwrapped" in line, line
    if case == "no role id":
        assert "no role id was given" in line, line
    else:
        assert "--approle-mount approle" in line, line
    sent = proxy.paths()
    assert not [q for q in sent if "unwrap" in q or "login" in q], f"requests sent: {sent}"
    assert [q for q in sent if q.endswith("sys/wrapping/lookup")], f"requests sent: {sent}"
    assert wrapping_token_usable(bao, wrapping), "the wrapping token was used up by the failed run"
    # The same token still logs in once the role id is given.
    r = cs.run(["run", "--no-manifest", "--wrapped-token-file", str(p), "--role-id", world.role_id,
                "--", "{probe}"], dict(REF), token=None)
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]


def test_run_with_a_wrapped_token_needs_no_role_id(cs, bao, world):
    wrapping = world.wrapped_token()
    p = credential_file(cs, "wrapped", wrapping)
    proxy = FaultProxy(bao)
    try:
        r = cs.run(["run", "--no-manifest", "--wrapped-token-file", str(p), "--", "{probe}"],
                   dict(REF, VAULT_ADDR=proxy.addr), token=None)
    finally:
        proxy.close()
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]
    sent = proxy.paths()
    assert sum("sys/wrapping/unwrap" in q for q in sent) == 1, sent
    assert not wrapping_token_usable(bao, wrapping), "the wrapping token was not used"


# --- 2. check's text listing shows control characters escaped ----------------------------------


NASTY = "N\x1b]0;owned\x07\x1b[2J\x9b31m\u202eZ"


def nasty_manifest(cs) -> Path:
    d = cs.tmpfs_dir()
    m = d / "m\x1b[31m.yml"
    m.write_text(json.dumps({
        "version": 1,
        "secrets": {"db": {"path": "secret/data/app", "key": "password"}},
        "files": [{"path": "f\x1b[1mX\u202e\x9b", "secret": "db"}],
    }))
    return m


def test_check_text_escapes_control_characters(cs):
    m = nasty_manifest(cs)
    r = cs.run(["check", "--manifest", str(m)], {NASTY: "vault:secret/data/app#password"})
    assert r.code == 0, r.describe()
    assert not C0_RAW.search(r.stdout), f"raw control character in check's output: {r.stdout!r}"
    assert not C1_RAW.search(r.stdout), f"raw C1 control in check's output: {r.stdout!r}"
    assert "\u202e".encode() not in r.stdout, f"raw bidi override in check's output: {r.stdout!r}"
    # Shown, escaped: the reader sees what the names hold.
    assert "N\\x1b]0;owned\\x07\\x1b[2J\\u{009b}31m\\u{202e}Z" in r.out, r.out
    assert "m\\x1b[31m.yml" in r.out and "f\\x1b[1mX\\u{202e}\\u{009b}" in r.out, r.out


def test_check_json_is_ascii_and_keeps_the_names(cs):
    m = nasty_manifest(cs)
    r = cs.run(["check", "--json", "--manifest", str(m)], {NASTY: "vault:secret/data/app#password"})
    assert r.code == 0, r.describe()
    assert re.fullmatch(rb"[\x20-\x7e]*\n", r.stdout), f"check --json wrote raw bytes: {r.stdout!r}"
    plan = json.loads(r.stdout)
    assert NASTY in [e["name"] for e in plan["env"]], plan["env"]
    assert plan["files"][0]["path"] == "f\x1b[1mX\u202e\x9b", plan["files"]
    assert plan["manifest"] == str(m)


# --- 3. Errors echo at most an excerpt of a bad value ------------------------------------------

BIG = 1 << 20


def manifest_cases() -> dict[str, dict]:
    big = "x" * BIG
    # YAML (and so yaml-cpp) takes a mapping key of at most 1024 characters.
    key = "x" * 1000
    return {
        "auth method": {"version": 1, "auth": {"method": big}},
        "unknown field": {"version": 1, key: 1},
        "secret name": {"version": 1, "secrets": {"-" + key: {"path": "secret/data/app"}}},
        "engine": {"version": 1, "secrets": {"db": {"path": "secret/data/app", "engine": big}}},
        "version": {"version": 1, "secrets": {"db": {"path": "secret/data/app", "version": "1" + big}}},
        "env name": {"version": 1, "env": {"1" + key: "v"}},
        "named secret": {"version": 1, "env": {"A": "${secret:" + big + "}"}},
        "file path": {"version": 1, "files": [{"path": "../" + big, "template": "t"}]},
        "mode": {"version": 1, "files": [{"path": "f", "template": "t", "mode": "9" + big}]},
        "undeclared secret": {"version": 1, "files": [{"path": "f", "secret": big}]},
        "grace": {"version": 1, "supervise": {"grace": big}},
        "on_change": {"version": 1, "secrets": {"db": {"path": "secret/data/app", "on_change": big}}},
        "template_file": {"version": 1, "files": [{"path": "f", "template_file": "/nonexistent/" + big}]},
    }


@pytest.mark.offline
@pytest.mark.parametrize("case", sorted(manifest_cases()))
def test_a_megabyte_manifest_value_is_echoed_cut(cs, case):
    m = cs.tmpfs_dir() / "m.json"
    m.write_text(json.dumps(manifest_cases()[case]))
    r = cs.run(["check", "--manifest", str(m)], {}, bao=None)
    assert r.code in (65, 66), r.describe()
    line = one_error_line(r)
    assert len(r.stderr) < 300, f"{len(r.stderr)} bytes: {r.stderr[:400]!r}"
    assert "xxxxxxxx" in line, f"the value is not even named: {line}"
    assert re.search(r"\.\.\. \(\d{4,7} bytes\)", line), f"no mark that the value was cut: {line}"


@pytest.mark.offline
def test_a_long_environment_name_is_echoed_cut(cs):
    # An environment string holds at most 128 KiB (MAX_ARG_STRLEN).
    name = "V" * 100_000
    r = cs.run(["check", "--no-manifest"], {name: "vault:/secret/data/app#password"}, bao=None)
    assert r.code == 65, r.describe()
    one_error_line(r)
    assert len(r.stderr) < 300, f"{len(r.stderr)} bytes: {r.stderr[:400]!r}"


def record_cases() -> dict[str, dict]:
    big = "x" * BIG
    return {
        "environment name": {"environment": {"1" + big: "v"}},
        "environment value type": {"environment": {"A" + big: 1}},
        "deep mount": {"mounts": {"/m" + big: {"kind": "json",
                                              "content": json.loads("[" * 600 + "]" * 600)}}},
        "relative secrets dir": {"environment": {"CRUNCH_SECRETS_DIR": "run/" + big}},
        "secrets dir with ..": {"environment": {"CRUNCH_SECRETS_DIR": "/run/../" + big}},
    }


@pytest.mark.offline
@pytest.mark.parametrize("case", sorted(record_cases()))
def test_a_megabyte_container_record_value_is_echoed_cut(cs, case):
    # The container record prepare reads is hostile input like a manifest (SECURITY.md).
    work = cs.tmpfs_dir()
    record = {"uuid": "zzzzz-dz642-echoechoecho1", "command": ["true"], **record_cases()[case]}
    proc = subprocess.run([str(crunch_secrets_bin()), "prepare", "--container", "-", "--secrets-dir",
                           str(work / "s")], input=json.dumps(record).encode(), env={"PATH": "/usr/bin:/bin"},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    CANARIES.check(proc.stderr, "prepare stderr")
    assert proc.returncode == 65, (proc.returncode, proc.stderr[:400])
    assert proc.stderr.count(b"\n") == 1 and len(proc.stderr) < 300, proc.stderr[:400]
    assert re.search(rb"\.\.\. \(\d{7} bytes\)", proc.stderr), proc.stderr[:400]


def test_a_long_missing_key_is_echoed_cut(cs, world):
    key = "k" * 100_000
    r = cs.run(["run", "--no-manifest", "--", "{probe}"], {"X": f"vault:secret/data/app#{key}"})
    assert r.code == 79, r.describe()
    one_error_line(r)
    assert len(r.stderr) < 400, f"{len(r.stderr)} bytes: {r.stderr[:500]!r}"


# --- 4. At most one credential source reads standard input -------------------------------------


@pytest.mark.parametrize("options", [
    ["--token-file", "-", "--arvados-token-file", "-"],
    ["--role-id-file", "-", "--secret-id-file", "-"],
    ["--wrapped-token-file", "-", "--secret-id-file", "-"],
])
@pytest.mark.parametrize("command", ["run", "check"])
def test_two_options_reading_standard_input_are_refused(cs, bao, options, command):
    proxy = FaultProxy(bao)
    try:
        args = [command, "--no-manifest", *options] + (["--", "{probe}"] if command == "run" else [])
        r = cs.run(args, dict(REF, VAULT_ADDR=proxy.addr), token=None, stdin=b"one\n")
    finally:
        proxy.close()
    assert r.code == 78, r.describe()
    assert r.report is None
    line = one_error_line(r)
    assert f"{options[0]} -" in line and f"{options[2]} -" in line and "standard input" in line, line
    assert proxy.paths() == [], f"requests sent: {proxy.paths()}"


def test_arvados_token_for_login_and_credentials_from_standard_input_is_refused(cs, bao, arvs):
    proxy = FaultProxy(bao)
    token = container_token(ALICE_RUN1)
    try:
        env = env_for(arvs, ARVADOS_API_TOKEN=None, VAULT_ADDR=proxy.addr,
                      S="arvados:credential/lab-db#secret", **REF)
        r = cs.run(["run", "--no-manifest", "--arvados-token-file", "-", "--", "{probe}"], env,
                   token=None, stdin=(token + "\n").encode())
    finally:
        proxy.close()
    assert r.code == 78, r.describe()
    line = one_error_line(r)
    assert "--arvados-token-file -" in line and "Arvados credentials" in line, line
    assert proxy.paths() == [], f"requests sent: {proxy.paths()}"


def test_arvados_credentials_read_the_token_from_standard_input(cs, arvs):
    # A Vault token for the login, the Arvados token on standard input for the credentials: one
    # reader. It was opened as a file named "-".
    env = env_for(arvs, ARVADOS_API_TOKEN=None, S="arvados:credential/lab-db#secret")
    r = cs.run(["run", "--no-manifest", "--arvados-token-file", "-", "--", "{probe}"], env,
               stdin=(container_token(ALICE_RUN1) + "\n").encode())
    assert r.code == 0, r.describe()
    assert r.env["S"] == LAB_DB["secret"]
