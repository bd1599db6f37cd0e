"""Defects an adversarial review found in the first-hour work (issue 11), each reproduced here
against a real OpenBao before it was fixed:

- D4 credentials with control characters (header injection, NUL truncation) are refused before
  any request, naming their source and never their value;
- D1 a 403 on auth/token/lookup-self cannot tell an invalid token from one without the
  `default` policy, and is worded so;
- D2 a scheme mismatch (https:// on plain HTTP, http:// on TLS) fails at once with exit 78 for
  every login method, not only for token auth;
- D3 `check --online` finds a wrapped AppRole secret id without a role id without unwrapping it;
- D5/D6 log lines are valid UTF-8 JSON in JSON mode, and show control characters escaped in
  text mode;
- D7 -q/-v win over an invalid CRUNCH_SECRETS_LOG_LEVEL;
- D8 small ones: doubled words, stdin conventions documented and bounded by --wait, long
  inputs not echoed whole, an unknown option named.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from faultproxy import Action, FaultProxy as RawProxy
from harness import CANARIES, FaultProxy, http_json
from test_arvados_source import arvs, env_for  # noqa: F401 (fixture)
from test_firsthour import MESSAGES

RUN = ["run", "--no-manifest", "--", "{probe}"]


def todo(defect: str):
    """A defect reproduced here and not fixed yet: the test must fail until the fix lands with
    this marker removed."""
    return pytest.mark.xfail(strict=True, reason=f"{defect}: not fixed yet")
REF = {"X": "vault:secret/data/app#password"}

# Characters of a terminal escape sequence and of invalid UTF-8, which no log line may carry raw.
C0_RAW = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
C1_RAW = re.compile(rb"\xc2[\x80-\x9f]")


def secret_file(cs, name: str, content: bytes) -> Path:
    p = cs.tmpfs_dir() / name
    p.write_bytes(content)
    os.chmod(p, 0o600)
    return p


def error_lines(r) -> list[str]:
    return [line for line in r.err.splitlines() if line.strip()]


def assert_json_lines(data: bytes, what: str) -> list[dict]:
    """Every line of `data` is valid UTF-8 and one JSON object."""
    objs = []
    for n, line in enumerate(data.splitlines(), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise AssertionError(f"{what} line {n} is not valid UTF-8 ({e.reason} at {e.start})")
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise AssertionError(f"{what} line {n} is not JSON: {e}")
        assert isinstance(obj, dict), f"{what} line {n} is not an object"
        objs.append(obj)
    return objs


# --- D4: credentials with control characters ---------------------------------------------------


def injected(label: str) -> tuple[str, str]:
    """A canary credential followed by an injected header line; (value, canary)."""
    canary = CANARIES.new(f"D4 {label}")
    return f"{canary}\r\nX-Injected: yes", canary


# Each case: (id, how the credential is given, the source's name in the error). `given(cs,
# world, value)` returns (args before "--", env, stdin bytes or None).
def _env(var, **extra):
    return lambda cs, world, v: ([], {var: v, **extra}, None)


def _file(option, *, tail=b"", **extra):
    def given(cs, world, v):
        p = secret_file(cs, "cred", v.encode() + tail)
        return [option, str(p)], dict(extra), None
    return given


def _stdin(option, **extra):
    return lambda cs, world, v: ([option, "-"], dict(extra), v.encode() + b"\n")


def _home(cs, world, v):
    home = cs.tmpfs_dir("cs-home-")
    (home / ".vault-token").write_bytes(v.encode() + b"\n")
    return [], {"HOME": str(home)}, None


def _role(world):
    return {"CRUNCH_SECRETS_ROLE_ID": world.role_id}


D4_CASES = [
    ("VAULT_TOKEN", _env("VAULT_TOKEN"), "VAULT_TOKEN"),
    ("BAO_TOKEN", _env("BAO_TOKEN"), "BAO_TOKEN"),
    ("token-file", _file("--token-file"), "--token-file"),
    ("token-file-stdin", _stdin("--token-file"), "--token-file -"),
    ("vault-token-helper", _home, ".vault-token"),
    ("wrapped-token-file", _file("--wrapped-token-file"), "--wrapped-token-file"),
    ("wrapped-token-env", _env("CRUNCH_SECRETS_WRAPPED_TOKEN"), "CRUNCH_SECRETS_WRAPPED_TOKEN"),
    ("secret-id-file", lambda cs, w, v: _file("--secret-id-file", **_role(w))(cs, w, v),
     "--secret-id-file"),
    ("secret-id-stdin", lambda cs, w, v: _stdin("--secret-id-file", **_role(w))(cs, w, v),
     "--secret-id-file -"),
    ("secret-id-env", lambda cs, w, v: _env("CRUNCH_SECRETS_SECRET_ID", **_role(w))(cs, w, v),
     "CRUNCH_SECRETS_SECRET_ID"),
    ("role-id-file", lambda cs, w, v: _file("--role-id-file", CRUNCH_SECRETS_SECRET_ID=w.secret_id)(cs, w, v),
     "--role-id-file"),
    ("role-id-env", lambda cs, w, v: ([], {"CRUNCH_SECRETS_ROLE_ID": v,
                                           "CRUNCH_SECRETS_SECRET_ID": w.secret_id}, None),
     "CRUNCH_SECRETS_ROLE_ID"),
    ("arvados-token-env", _env("ARVADOS_API_TOKEN"), "ARVADOS_API_TOKEN"),
    ("arvados-token-file", _file("--arvados-token-file"), "--arvados-token-file"),
]


@pytest.mark.parametrize("case, given, source", D4_CASES, ids=[c[0] for c in D4_CASES])
def test_d4_credential_with_line_break_is_refused_before_any_request(cs, world, case, given, source):
    value, canary = injected(case)
    args, env, stdin = given(cs, world, value)
    proxy = FaultProxy(cs.bao)
    try:
        r = cs.run(["run", "--no-manifest", *args, "--", "{probe}"],
                   dict(REF, VAULT_ADDR=proxy.addr, **env), token=None, stdin=stdin)
    finally:
        proxy.close()
    assert proxy.requests == [], f"{len(proxy.requests)} request(s) reached Vault: " + r.describe()
    assert r.code == 78, r.describe()
    assert r.report is None, "the command ran"
    lines = error_lines(r)
    assert len(lines) == 1 and source in lines[0], r.describe()
    assert "control character" in lines[0] or "line break" in lines[0], r.describe()


@pytest.mark.parametrize("content, what", [
    (b"\x00tail", "NUL"),
    (b"\x1b[2J", "escape"),
    (b"\n\n", "two trailing newlines"),
    (b"\r\n", "a Windows line ending"),
    (b" ", "a trailing space"),
])
def test_d4_token_file_bytes_are_refused(cs, content, what):
    canary = CANARIES.new(f"D4 token file {what}")
    p = secret_file(cs, "tok", canary.encode() + content)
    proxy = FaultProxy(cs.bao)
    try:
        r = cs.run(["run", "--no-manifest", "--token-file", str(p), "--", "{probe}"],
                   dict(REF, VAULT_ADDR=proxy.addr), token=None)
    finally:
        proxy.close()
    assert proxy.requests == [], f"{what}: a request reached Vault: " + r.describe()
    assert r.code == 78 and "--token-file" in r.err, r.describe()


def test_d4_leading_space_and_single_newline(cs, world):
    """One trailing newline is a file's line end and is fine; a leading space is not."""
    p = secret_file(cs, "tok", (world.reader_token + "\n").encode())
    r = cs.run(["run", "--no-manifest", "--token-file", str(p), "--", "{probe}"], dict(REF), token=None)
    assert r.code == 0, r.describe()
    p = secret_file(cs, "tok2", (" " + world.reader_token + "\n").encode())
    r = cs.run(["run", "--no-manifest", "--token-file", str(p), "--", "{probe}"], dict(REF), token=None)
    assert r.code == 78 and "whitespace" in r.err, r.describe()
    # An environment value has no line end: a newline there is refused too.
    r = cs.run(RUN, dict(REF, VAULT_TOKEN=world.reader_token + "\n"), token=None)
    assert r.code == 78 and "VAULT_TOKEN" in r.err, r.describe()


def test_d4_check_online_refuses_before_the_wrapping_lookup(cs):
    value, _ = injected("check wrapped")
    p = secret_file(cs, "w", value.encode())
    proxy = FaultProxy(cs.bao)
    try:
        r = cs.run(["check", "--no-manifest", "--online", "--wrapped-token-file", str(p)],
                   dict(REF, VAULT_ADDR=proxy.addr), token=None)
    finally:
        proxy.close()
    assert proxy.requests == [], r.describe()
    assert r.code == 78 and "--wrapped-token-file" in r.err, r.describe()


def test_d4_arvados_credential_source_sends_no_request(cs, arvs):
    value, _ = injected("arvados credentials token")
    before = len(arvs.control("GET", "log")["items"])
    r = cs.run(RUN, env_for(arvs, A="arvados:credential/lab-db#secret", ARVADOS_API_TOKEN=value))
    after = arvs.control("GET", "log")["items"][before:]
    assert after == [], f"{len(after)} request(s) reached the Arvados stand-in: " + r.describe()
    assert r.code == 78 and "ARVADOS_API_TOKEN" in r.err, r.describe()


# --- D1: a 403 on lookup-self cannot tell ------------------------------------------------------


def no_default_token(bao) -> str:
    resp = bao.api("POST", "auth/token/create", {"policies": ["reader"], "no_default_policy": True,
                                                  "ttl": "1h"})
    return CANARIES.add("token without the default policy", resp["auth"]["client_token"])


def test_d1_token_without_default_policy_is_not_called_invalid(cs, world):
    token = no_default_token(cs.bao)
    # It is valid: it reads what its policy allows.
    assert cs.run(RUN, dict(REF), token=token).code == 0
    r = cs.run(RUN, {"X": "vault:secret/data/forbidden#value"}, token=token)
    assert r.code == 80, r.describe()
    assert "invalid or expired" in r.err, r.describe()  # one of the possibilities, named
    assert "the token is invalid or expired" not in r.err, "claims what it cannot know: " + r.describe()
    assert "cannot tell" in r.err and "default" in r.err, r.describe()
    # A token with the default policy and no grant for the path is still told apart.
    r = cs.run(RUN, {"X": "vault:secret/data/forbidden#value"}, token=world.reader_token)
    assert r.code == 77 and "the token is valid but no policy grants read" in r.err, r.describe()


def test_d1_check_online_with_a_refused_token_does_not_blame_the_endpoint(cs):
    token = no_default_token(cs.bao)
    for tok in (token, "not-a-valid-token"):
        r = cs.run(["check", "--no-manifest", "--online"], dict(REF), token=tok)
        assert r.code == 80, r.describe()
        assert "cannot tell" in r.err and "the token may not use this endpoint" not in r.err, r.describe()


# --- D2: a scheme mismatch fails at once for every login method --------------------------------


def login_env(method: str, world, bao) -> tuple[list[str], dict, str | None]:
    if method == "token":
        return [], {"VAULT_TOKEN": world.reader_token}, None
    if method == "approle":
        bao.api("POST", "auth/approle/role/once", {"token_policies": ["reader"], "secret_id_num_uses": 1})
        role_id = bao.api("GET", "auth/approle/role/once/role-id")["data"]["role_id"]
        sid = CANARIES.add("D2 single-use secret id",
                           bao.api("POST", "auth/approle/role/once/secret-id")["data"]["secret_id"])
        return [], {"CRUNCH_SECRETS_ROLE_ID": role_id, "CRUNCH_SECRETS_SECRET_ID": sid}, sid
    if method == "wrapped":
        w = world.wrapped_token()
        return [], {"CRUNCH_SECRETS_WRAPPED_TOKEN": w}, w
    assert method == "arvados"
    return ["--auth", "arvados"], {"ARVADOS_API_TOKEN": "v2/zzzzz-gj3su-000000000000000/" + "x" * 40}, None


@pytest.mark.parametrize("method", ["token", "approle", "wrapped", "arvados"])
def test_d2_https_on_plain_http_every_method(cs, world, method):
    args, env, _ = login_env(method, world, cs.bao)
    r = cs.run(["run", "--no-manifest", *args, "--", "{probe}"],
               dict(REF, VAULT_ADDR=cs.bao.addr.replace("http:", "https:"), **env), token=None, wait="20s")
    assert r.code == 78, r.describe()
    assert r.elapsed < 5, f"took {r.elapsed:.1f}s"
    assert "speaks plain HTTP" in r.err and cs.bao.addr in r.err, r.describe()


@pytest.mark.parametrize("method", ["token", "approle", "wrapped", "arvados"])
def test_d2_http_on_tls_every_method(cs_tls, bao_tls, method):
    args, env, single_use = login_env(method, bao_tls.world, bao_tls)
    r = cs_tls.run(["run", "--no-manifest", *args, "--", "{probe}"],
                   dict(REF, VAULT_ADDR=bao_tls.addr.replace("https:", "http:"), **env), token=None, wait="20s")
    assert r.code == 78, r.describe()
    assert r.elapsed < 5, f"took {r.elapsed:.1f}s"
    assert "speaks HTTPS" in r.err and bao_tls.addr in r.err, r.describe()
    if single_use is not None:
        # The credential never reached Vault: the right address still logs in with it.
        r = cs_tls.run(["run", "--no-manifest", *args, "--", "{probe}"], dict(REF, **env), token=None)
        assert r.code == 0, "the single-use credential was used up by the failed run: " + r.describe()


# --- D3: check --online and a wrapped AppRole secret id ---------------------------------------


def test_d3_check_online_wrapped_secret_id_without_role_id(cs, world):
    resp = cs.bao.api("POST", "auth/approle/role/test/secret-id", headers={"X-Vault-Wrap-TTL": "300s"})
    wrapping = CANARIES.add("D3 wrapped secret id", resp["wrap_info"]["token"])
    p = secret_file(cs, "w", (wrapping + "\n").encode())
    r = cs.run(["check", "--no-manifest", "--online", "--wrapped-token-file", str(p)], dict(REF), token=None)
    assert r.code == 78, r.describe()
    assert MESSAGES["wrapped_secret_id_no_role"] in r.err and "no role id was given" in r.err, r.describe()
    # Nothing was used up: the wrapping token is still valid, and run with the role id works.
    status, _ = http_json("POST", f"{cs.bao.addr}/v1/sys/wrapping/lookup", body={"token": wrapping})
    assert status == 200, f"the wrapping token was used up by check (lookup answered {status})"
    r = cs.run(["check", "--no-manifest", "--online", "--wrapped-token-file", str(p), "--role-id", world.role_id],
               dict(REF), token=None)
    assert r.code == 0 and "secret id" in r.out + r.err, r.describe()
    r = cs.run(["run", "--no-manifest", "--wrapped-token-file", str(p), "--role-id", world.role_id, "--",
                "{probe}"], dict(REF), token=None)
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]


# --- D5 / D6: log lines are valid JSON, and text lines show control characters escaped ---------

# A path name no terminal should see raw: invalid UTF-8, ESC (a colour change), BEL and a title
# change (OSC), and a C1 CSI.
NASTY = "nasty-\udcff\udcfe-\x1b[31mred\x07-\x1b]0;title\x07-\u009b2J"


def nasty_runs(cs, fmt: str):
    """Runs whose error lines carry the nasty name: a manifest path, a token file path, an
    environment variable name, and Vault's own message (through a proxy answering 403)."""
    d = cs.tmpfs_dir()
    yield cs.run(["run", "--log-format", fmt, "-m", str(d / NASTY), "--", "{probe}"], dict(REF))
    yield cs.run(["run", "--no-manifest", "--log-format", fmt, "--token-file", str(d / NASTY), "--", "{probe}"],
                 dict(REF), token=None)
    yield cs.run(["run", "--no-manifest", "--log-format", fmt, "--", "{probe}"],
                 {"N" + NASTY.replace("-", "_"): "vault:secret/data/app"})
    u = urlparse(cs.bao.addr)
    body = json.dumps({"errors": ["denied \u001b[31m\u0007 \u009b2J \u202eevil"]}).encode()
    proxy = RawProxy(u.hostname, u.port, lambda n, m, p: Action("status", status=403, body=body)
                     if "secret/" in p else Action())
    try:
        yield cs.run(["run", "--no-manifest", "--log-format", fmt, "--", "{probe}"],
                     dict(REF, VAULT_ADDR=proxy.addr))
    finally:
        proxy.close()


def test_d5_json_lines_are_valid_utf8_json(cs):
    for r in nasty_runs(cs, "json"):
        assert r.code != 0, r.describe()
        objs = assert_json_lines(r.stderr, "stderr")
        assert objs and objs[-1]["level"] == "error", r.describe()
        for line in r.stderr.splitlines():
            assert not C0_RAW.search(line) and not C1_RAW.search(line), r.describe()


def test_d5_check_json_output_is_valid_utf8(cs):
    r = cs.run(["check", "--no-manifest", "--json"], {"N\udcff\x1b": "vault:secret/data/app#password"})
    assert r.code == 0, r.describe()
    (plan,) = assert_json_lines(r.stdout, "check --json stdout")
    assert plan, r.describe()


def test_d6_text_lines_escape_control_characters(cs):
    for r in nasty_runs(cs, "text"):
        assert r.code != 0, r.describe()
        assert not C0_RAW.search(r.stderr), f"raw control character on stderr: {r.stderr[-300:]!r}"
        assert not C1_RAW.search(r.stderr), f"raw C1 control on stderr: {r.stderr[-300:]!r}"
        assert "\u202e".encode() not in r.stderr, "raw bidi override on stderr"
        assert r.err.startswith("crunch-secrets: error: "), r.describe()
    # Escaped visibly: the reader sees that the name holds an escape character.
    r = next(nasty_runs(cs, "text"))
    assert "\\x1b[31m" in r.err and "\\xff" in r.err, r.describe()


# --- D7: -q / -v win over an invalid CRUNCH_SECRETS_LOG_LEVEL ----------------------------------


def test_d7_flags_win_over_an_invalid_log_level_variable(cs):
    env = dict(REF, CRUNCH_SECRETS_LOG_LEVEL="loud")
    r = cs.run(["run", "--no-manifest", "-q", "--", "{probe}"], env)
    assert r.code == 0 and r.err == "", r.describe()
    r = cs.run(["run", "--no-manifest", "-v", "--", "{probe}"], env)
    assert r.code == 0, r.describe()
    assert "CRUNCH_SECRETS_LOG_LEVEL='loud'" in r.err and "ignored" in r.err, r.describe()
    assert "debug:" in r.err, r.describe()
    r = cs.run(["run", "--no-manifest", "--log-level", "error", "--", "{probe}"], env)
    assert r.code == 0 and r.err == "", r.describe()
    # Without a flag it is still a usage error.
    r = cs.run(RUN, env)
    assert r.code == 64 and "CRUNCH_SECRETS_LOG_LEVEL='loud'" in r.err, r.describe()


# --- D8: small ones ------------------------------------------------------------------------------


def test_d8_no_doubled_word_for_empty_token_files(cs):
    home = cs.tmpfs_dir("cs-home-")
    (home / ".vault-token").write_text("")
    r = cs.run(RUN, dict(REF, HOME=str(home)), token=None)
    assert r.code == 78 and ".vault-token" in r.err, r.describe()
    assert "file file" not in r.err, r.describe()
    p = secret_file(cs, "empty", b"")
    r = cs.run(["run", "--no-manifest", "--token-file", str(p), "--", "{probe}"], dict(REF), token=None)
    assert r.code == 78 and "empty" in r.err, r.describe()
    assert "file file" not in r.err, r.describe()


def test_d8_wrapped_token_file_stdin_works_and_is_documented(cs, world):
    r = cs.run(["run", "--no-manifest", "--wrapped-token-file", "-", "--", "{probe}"], dict(REF), token=None,
               stdin=(world.wrapped_token() + "\n").encode())
    assert r.code == 0, r.describe()
    h = cs.run(["run", "--help"], {}, bao=None, wait=None)
    for option in ("--token-file", "--secret-id-file", "--wrapped-token-file", "--role-id-file"):
        line = next(ln for ln in h.out.splitlines() if option + " FILE" in ln)
        assert "standard input" in line, f"--help does not say {option} - reads standard input: {line!r}"


def test_d8_token_file_stdin_is_bounded_by_wait(cs):
    rfd, wfd = os.pipe()  # the writer never closes: standard input never ends
    try:
        start = time.monotonic()
        r = cs.run(["run", "--no-manifest", "--token-file", "-", "--", "{probe}"], dict(REF), token=None,
                   stdin=rfd, wait="1s", timeout=20)
        took = time.monotonic() - start
    finally:
        os.close(rfd)
        os.close(wfd)
    assert r.code == 66, r.describe()
    assert took < 5, f"took {took:.1f}s with --wait 1s"
    assert "--token-file -" in r.err and MESSAGES["stdin_not_ended"] in r.err and "--wait" in r.err, r.describe()


@pytest.mark.parametrize("var", ["CRUNCH_SECRETS_WAIT", "CRUNCH_SECRETS_AUTH", "CRUNCH_SECRETS_LOG_FORMAT",
                                 "VAULT_CLIENT_TIMEOUT", "VAULT_SKIP_VERIFY", "VAULT_MAX_RETRIES",
                                 "CRUNCH_SECRETS_ARGV", "VAULT_ADDR"])
def test_d8_long_values_are_not_echoed_whole(cs, var):
    value = "A" * 100_000
    r = cs.run(RUN, dict(REF, **{var: value}), wait=None)
    assert r.code in (64, 78), r.describe()
    assert var in r.err, r.describe()
    assert len(r.stderr) < 1000, f"{len(r.stderr)} bytes of stderr for one error"


def test_d8_unknown_option_is_named(cs):
    for args in (["--log-format", "json", "--bogus"], ["--bogus"], ["--bogus", "run", "--", "{probe}"]):
        r = cs.run(args, dict(REF), wait=None)
        assert r.code == 64, r.describe()
        assert "--bogus" in r.err, r.describe()
        assert "subcommand is required" not in r.err, r.describe()
    r = cs.run(["--log-format", "json", "--bogus"], dict(REF), wait=None)
    (obj,) = assert_json_lines(r.stderr, "stderr")
    assert obj["exit_code"] == 64 and "--bogus" in obj["msg"], obj
