"""Regression tests for the defects of issue 7 ("hardening"), one or more per defect, against
a real OpenBao dev server. Each test names its defect number; each failed before the fix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from faultproxy import Action, FaultProxy
from harness import CANARIES, closed_port, crunch_secrets_bin, probe_bin

RUN = ["run", "--", "{probe}"]


def open_defect(n: int, what: str):
    """Marks a test that reproduces an open defect of issue 7: it must fail (strict xfail) until
    the fix lands with the marker removed."""
    return pytest.mark.xfail(strict=True, reason=f"issue 7, defect {n}: {what}")


def write_manifest(d: Path, doc: dict, name: str = "m.yml") -> Path:
    p = d / name
    p.write_text(yaml.safe_dump({"version": 1, **doc}))
    return p


def proxy_for(bao, decide=None) -> FaultProxy:
    u = urlparse(bao.addr)
    return FaultProxy(u.hostname, u.port, decide)


def raw_report_env(r) -> list[tuple[str, str]]:
    """The child's environment as (name, value) pairs, duplicates kept."""
    data = (r.secrets_dir.parent / "report.json").read_bytes().decode("utf-8", "surrogateescape")
    pairs: list = []

    def hook(items):
        pairs.append(items)
        return dict(items)

    json.loads(data, object_pairs_hook=hook)
    # The env object is the one holding PATH.
    for items in pairs:
        if any(k == "PATH" for k, _ in items):
            return items
    raise AssertionError("no env object in the probe report")


def entries(d: Path) -> list[str]:
    if not d.exists():
        return []
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


# ---------------------------------------------------------------------------------------------
# 1. One address validation for every source.


def test_d1_vault_addr_flag_without_scheme_refused(cs, bao, world):
    hostport = bao.addr.removeprefix("http://")
    r = cs.run(["run", "--vault-addr", hostport, "--", "{probe}"],
               {"X": "vault:secret/data/app#password"})
    assert r.code == 78, "an address without a scheme must be refused like VAULT_ADDR: " + r.describe()
    assert r.report is None, "the command ran"
    assert "--vault-addr" in r.err, r.describe()


def test_d1_vault_addr_flag_other_scheme_refused(cs, bao):
    hostport = bao.addr.removeprefix("http://")
    r = cs.run(["run", "--vault-addr", "ftp://" + hostport, "--", "{probe}"],
               {"X": "vault:secret/data/app#password"})
    assert r.code == 78, r.describe()
    assert r.report is None


def test_d1_trailing_slashes_same_for_flag_and_env(cs, bao, world):
    for args, env in ((["--vault-addr", bao.addr + "//"], {}), ([], {"VAULT_ADDR": bao.addr + "//"})):
        r = cs.run(["run", *args, "--", "{probe}"], {"X": "vault:secret/data/app#password", **env})
        assert r.code == 0, r.describe()
        assert r.env["X"] == world.values["password"]


# ---------------------------------------------------------------------------------------------
# 2. No reference may deliver a token; crunch-secrets' own login token is revoked before exec.

TOKEN_REFS = [
    "vault:auth/token/lookup-self#id",
    "vault:auth/token/lookup-self#accessor",
    "vault:sys/wrapping/lookup#token",
    "vault:auth/approle/login#client_token",
    "vault:auth/token/create#client_token",
]


def test_d2_references_that_return_tokens_refused(cs, bao):
    for ref in TOKEN_REFS:
        r = cs.run(RUN, {"X": ref})
        assert r.code == 65, f"{ref}: must be refused before any request: " + r.describe()
        assert r.report is None, f"{ref}: the command ran"
        assert ref.removeprefix("vault:").split("#")[0] in r.err, r.describe()


def test_d2_response_carrying_a_token_refused(cs, bao, world):
    # A response with an auth block (as a login or token-create endpoint would give) is refused
    # whatever its path: here the proxy answers a read with one.
    body = json.dumps({"data": {"password": "not-a-secret"}, "auth": {"client_token": world.reader_token}}).encode()
    proxy = proxy_for(bao, lambda n, m, p: Action("status", 200, body) if "app" in p else Action())
    try:
        r = cs.run(RUN, {"X": "vault:secret/data/app#password", "VAULT_ADDR": proxy.addr})
    finally:
        proxy.close()
    assert r.code == 76, r.describe()
    assert r.report is None


def approle_tokens(bao) -> set[str]:
    """Accessors of live tokens issued by the AppRole role 'test'."""
    out = set()
    resp = bao.api("LIST", "auth/token/accessors")
    for acc in resp["data"]["keys"]:
        status, info = bao.api_status("POST", "auth/token/lookup-accessor", {"accessor": acc})
        if status == 200 and (info["data"].get("meta") or {}).get("role_name") == "test":
            out.add(acc)
    return out


def approle_env(bao, world) -> dict:
    sid = bao.api("POST", "auth/approle/role/test/secret-id")["data"]["secret_id"]
    CANARIES.add("approle secret id (d2)", sid)
    return {"CRUNCH_SECRETS_ROLE_ID": world.role_id, "CRUNCH_SECRETS_SECRET_ID": sid,
            "X": "vault:secret/data/app#password"}


def test_d2_login_token_revoked_before_exec(cs, bao, world):
    before = approle_tokens(bao)
    r = cs.run(["run", "--auth", "approle", "-v", "--", "{probe}"], approle_env(bao, world), token=None)
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]
    assert approle_tokens(bao) == before, "the AppRole login token outlived the run"
    assert "revoked" in r.err, "--verbose must say the token was revoked: " + r.describe()


# `--keep-token` exists since supervise mode (which revokes the token it obtained at exit);
# this checks that exec mode with it leaves the login token valid.
def test_d2_keep_token_keeps_it(cs, bao, world):
    before = approle_tokens(bao)
    r = cs.run(["run", "--auth", "approle", "--keep-token", "--", "{probe}"], approle_env(bao, world),
               token=None)
    assert r.code == 0, r.describe()
    assert len(approle_tokens(bao) - before) == 1, "--keep-token must leave the login token valid"


def test_d2_given_token_is_never_revoked(cs, bao, world):
    tok = bao.token(["reader"], label="d2 given token")
    r = cs.run(RUN, {"X": "vault:secret/data/app#password"}, token=tok)
    assert r.code == 0, r.describe()
    status, _ = bao.api_status("GET", "auth/token/lookup-self", token=tok)
    assert status == 200, "a token the caller gave must stay valid"


# ---------------------------------------------------------------------------------------------
# 3. A run's child sees only that run's files; a failed run leaves no secret behind.

PW = {"pw": {"path": "secret/data/app", "key": "password"}, "key": {"path": "secret/data/app", "key": "api_key"}}


def test_d3_earlier_runs_files_not_seen(cs, world):
    d = cs.tmpfs_dir()
    sdir = d / "secrets"
    m1 = write_manifest(d, {"secrets": PW, "files": [{"path": "old", "secret": "key"}]}, "m1.yml")
    r1 = cs.run(["run", "-m", str(m1), "--", "{probe}"], secrets_dir=sdir)
    assert r1.code == 0, r1.describe()
    m2 = write_manifest(d, {"secrets": PW, "files": [{"path": "new", "secret": "pw"}]}, "m2.yml")
    r2 = cs.run(["run", "-m", str(m2), "--", "{probe}"], secrets_dir=sdir, probe_files=[sdir / "old", sdir / "new"])
    assert r2.code == 0, r2.describe()
    assert r2.file_bytes(sdir / "new") == world.values["password"].encode()
    assert not r2.file(sdir / "old").get("exists"), "the second run's child sees the first run's file"


def test_d3_failed_run_leaves_no_secret(cs, world):
    d = cs.tmpfs_dir()
    sdir = d / "secrets"
    m1 = write_manifest(d, {"secrets": PW, "files": [{"path": "old", "secret": "key"}]}, "m1.yml")
    assert cs.run(["run", "-m", str(m1), "--", "{probe}"], secrets_dir=sdir).code == 0
    m2 = write_manifest(d, {"secrets": {"bad": {"path": "secret/data/app", "key": "nope"}},
                            "files": [{"path": "new", "secret": "bad"}]}, "m2.yml")
    r = cs.run(["run", "-m", str(m2), "--", "{probe}"], secrets_dir=sdir)
    assert r.code == 79, r.describe()
    left = [e for e in entries(sdir) if not e.endswith("/") and (sdir / e).is_file()]
    assert left == [], f"a failed run left files behind: {left}"
    # Nor anywhere beside it (the per-run directories live in the same parent).
    stray = [str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and p.suffix != ".yml"]
    assert stray == [], f"a failed run left files beside the secrets directory: {stray}"


def test_d3_stale_tmp_files_swept(cs, world):
    d = cs.tmpfs_dir()
    sdir = d / "secrets"
    m = write_manifest(d, {"secrets": PW, "files": [{"path": "pw", "secret": "pw"}]})
    assert cs.run(["run", "-m", str(m), "--", "{probe}"], secrets_dir=sdir).code == 0
    # What a run killed by SIGKILL in the middle of writing leaves.
    real = sdir.resolve()
    stale = real / ".pw.tmp-123456"
    stale.write_bytes(b"stale")
    r = cs.run(["run", "-m", str(m), "--", "{probe}"], secrets_dir=sdir)
    assert r.code == 0, r.describe()
    assert not any(".tmp-" in e for e in entries(sdir)), f"stale temporaries remain: {entries(sdir)}"


def test_d3_parent_owned_by_another_user_refused(cs):
    d = cs.tmpfs_dir()
    parent = d / "shared"
    parent.mkdir(mode=0o755)
    os.chown(parent, 65534, 65534)
    m = write_manifest(d, {"secrets": PW, "files": [{"path": "pw", "secret": "pw"}]})
    r = cs.run(["run", "-m", str(m), "--", "{probe}"], secrets_dir=parent / "secrets")
    assert r.code == 73, "a secrets directory inside another user's directory must be refused: " + r.describe()
    assert r.report is None


# ---------------------------------------------------------------------------------------------
# 4. Single-use logins are retried only when the request was provably not sent.


def test_d4_approle_login_not_retried_after_send(cs, bao, world):
    proxy = proxy_for(bao, lambda n, m, p: Action("forward_status", 502) if "login" in p else Action())
    try:
        env = approle_env(bao, world)
        env["VAULT_ADDR"] = proxy.addr
        r = cs.run(["run", "--auth", "approle", "--", "{probe}"], env, token=None, wait="5s")
    finally:
        proxy.close()
    assert r.report is None
    assert proxy.count("/login") == 1, f"a sent single-use login was retried ({proxy.count('/login')} attempts)"
    assert r.code == 69, r.describe()
    assert "unknown" in r.err, "the error must say the outcome is unknown: " + r.describe()


def test_d4_unwrap_not_retried_after_send(cs, bao, world):
    proxy = proxy_for(bao, lambda n, m, p: Action("forward_status", 503) if "unwrap" in p else Action())
    try:
        r = cs.run(["run", "--auth", "wrapped", "--", "{probe}"],
                   {"X": "vault:secret/data/app#password", "VAULT_ADDR": proxy.addr,
                    "CRUNCH_SECRETS_WRAPPED_TOKEN": world.wrapped_token()}, token=None, wait="5s")
    finally:
        proxy.close()
    assert proxy.count("unwrap") == 1, f"a sent unwrap was retried ({proxy.count('unwrap')} attempts)"
    assert r.code == 69, r.describe()
    assert "possible compromise" not in r.err, r.describe()
    assert "unknown" in r.err, r.describe()


def test_d4_login_retried_when_not_sent(cs, bao, world):
    # Nothing listens at first (connection refused: provably not sent); the proxy starts
    # listening on that port a second later. The login is retried and sent exactly once.
    port = closed_port()
    u = urlparse(bao.addr)
    holder: list[FaultProxy] = []
    starter = threading.Timer(1.0, lambda: holder.append(FaultProxy(u.hostname, u.port, port=port)))
    starter.start()
    try:
        env = approle_env(bao, world)
        env["VAULT_ADDR"] = f"http://127.0.0.1:{port}"
        r = cs.run(["run", "--auth", "approle", "--", "{probe}"], env, token=None, wait="15s")
    finally:
        starter.join()
        for p in holder:
            p.close()
    assert r.code == 0, r.describe()
    assert holder and holder[0].count("/login") == 1, "the login should reach Vault exactly once"


# ---------------------------------------------------------------------------------------------
# 5. --wait bounds retrying, not a request's own time.


def test_d5_wait_zero_against_healthy_vault(cs, bao, world):
    # A healthy Vault 100 ms away (the proxy adds the latency): one attempt must be enough.
    proxy = proxy_for(bao, lambda n, m, p: Action("stall_before", seconds=0.1))
    try:
        for wait in ("0", "1ms"):
            r = cs.run(["run", "--wait", wait, "--", "{probe}"],
                       {"X": "vault:secret/data/app#password", "VAULT_ADDR": proxy.addr})
            assert r.code == 0, f"--wait {wait}: " + r.describe()
            assert r.env["X"] == world.values["password"]
    finally:
        proxy.close()


def test_d5_slow_answer_within_client_timeout(cs, bao, world):
    proxy = proxy_for(bao, lambda n, m, p: Action("stall_before", seconds=1.5))
    try:
        r = cs.run(["run", "--wait", "100ms", "--", "{probe}"],
                   {"X": "vault:secret/data/app#password", "VAULT_ADDR": proxy.addr})
    finally:
        proxy.close()
    assert r.code == 0, "one full attempt of VAULT_CLIENT_TIMEOUT per request: " + r.describe()


# ---------------------------------------------------------------------------------------------
# 6. A response over the size cap fails once.


def test_d6_oversized_response_fails_once(cs, bao):
    proxy = proxy_for(bao, lambda n, m, p: Action("oversized", size=40 * 1024 * 1024))
    try:
        r = cs.run(RUN, {"X": "vault:secret/data/app#password", "VAULT_ADDR": proxy.addr}, wait="20s")
    finally:
        proxy.close()
    assert r.code == 76, r.describe()
    assert "too large" in r.err, r.describe()
    assert len(proxy.paths()) == 1, f"retried {len(proxy.paths())} times"
    assert r.elapsed < 10, f"took {r.elapsed:.1f}s"


# ---------------------------------------------------------------------------------------------
# 7. Deeply nested JSON is a clear error, not a crash.


def test_d7_deeply_nested_response(cs, bao):
    proxy = proxy_for(bao, lambda n, m, p: Action("deep", size=1_000_000))
    try:
        r = cs.run(RUN, {"X": "vault:secret/data/app#password", "VAULT_ADDR": proxy.addr})
    finally:
        proxy.close()
    assert r.code == 76, "deep nesting must be a protocol error, not a crash: " + r.describe()
    assert "nest" in r.err, r.describe()


def test_d7_nesting_within_cap_still_works(cs, bao):
    bao.kv2_put("secret", "d7nested", {"k": json.loads("[" * 50 + "]" * 50)})
    r = cs.run(RUN, {"X": "vault:secret/data/d7nested#k"})
    assert r.code == 0, r.describe()
    assert r.env["X"] == "[" * 50 + "]" * 50


# ---------------------------------------------------------------------------------------------
# 8. A NUL byte is refused for env and argv; files keep it.


def test_d8_nul_refused_for_env_and_argv(cs, bao):
    value = CANARIES.new("nul value", "\x00tail")
    bao.kv2_put("secret", "d8nul", {"v": value})
    r = cs.run(RUN, {"X": "vault:secret/data/d8nul#v"})
    assert r.code == 65, "a NUL in an env value must be refused: " + r.describe()
    assert r.report is None
    r = cs.run(["run", "--argv-templates", "--", "{probe}", "a${vault:secret/data/d8nul#v}b"])
    assert r.code == 65, r.describe()
    assert r.report is None


def test_d8_nul_kept_in_files(cs, bao):
    value = CANARIES.new("nul file value", "\x00tail")
    bao.kv2_put("secret", "d8nulf", {"v": value})
    d = cs.tmpfs_dir()
    sdir = d / "secrets"
    m = write_manifest(d, {"secrets": {"n": {"path": "secret/data/d8nulf", "key": "v"}},
                           "files": [{"path": "n", "secret": "n"}]})
    r = cs.run(["run", "-m", str(m), "--", "{probe}"], secrets_dir=sdir, probe_files=[sdir / "n"])
    assert r.code == 0, r.describe()
    assert r.file_bytes(sdir / "n") == value.encode()


# ---------------------------------------------------------------------------------------------
# 9. A signal during file delivery leaves no temporary file.


def test_d9_sigterm_during_delivery_cleans_up(cs, bao):
    big = CANARIES.new("d9 big value", "x" * 200_000)
    bao.kv2_put("secret", "d9big", {"v": big})
    d = cs.tmpfs_dir()
    files = [{"path": f"f{i:03d}", "secret": "b"} for i in range(300)]
    m = write_manifest(d, {"secrets": {"b": {"path": "secret/data/d9big", "key": "v"}}, "files": files})
    hits = 0
    for attempt in range(6):
        sdir = d / f"s{attempt}"
        env = cs.base_env(bao, "root")
        env["CRUNCH_SECRETS_DIR"] = str(sdir)
        proc = subprocess.Popen([str(crunch_secrets_bin()), "run", "-m", str(m), "--", "/bin/true"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        # Files are written in a fresh per-run directory beside the secrets directory and
        # swapped in at the end: look for temporaries anywhere under the parent.
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                writing = any(".tmp-" in p.name for p in d.rglob("*"))
            except OSError:
                writing = False
            if writing:
                proc.send_signal(signal.SIGTERM)
                hits += 1
                break
        out, err = proc.communicate(timeout=30)
        cs.scan(out, "stdout")
        cs.scan(err, "stderr")
        left = [p.name for p in d.rglob("*")]
        assert not any(".tmp-" in n for n in left), f"SIGTERM left temporaries: {len(left)} entries"
        if proc.returncode != 0:
            assert proc.returncode == -signal.SIGTERM, f"exit {proc.returncode}: " + err.decode(errors="replace")
            mine = [sdir, *d.glob(f".{sdir.name}.*")]
            secret_files = [p for top in mine if top.exists() for p in top.rglob("*") if p.is_file()]
            assert secret_files == [], "a run ended by a signal left secret files"
    assert hits > 0, "never caught the run while it wrote files; the test did not exercise anything"


# ---------------------------------------------------------------------------------------------
# 10. One entry per variable name.


def test_d10_manifest_sets_crunch_secrets_dir_once(cs, world):
    d = cs.tmpfs_dir()
    m = write_manifest(d, {"secrets": PW, "env": {"CRUNCH_SECRETS_DIR": "/elsewhere"},
                           "files": [{"path": "pw", "secret": "pw"}]})
    r = cs.run(["run", "-m", str(m), "--", "{probe}"])
    assert r.code == 0, r.describe()
    names = [k for k, _ in raw_report_env(r)]
    assert names.count("CRUNCH_SECRETS_DIR") == 1, f"CRUNCH_SECRETS_DIR appears {names.count('CRUNCH_SECRETS_DIR')} times"


def test_d10_manifest_env_vault_token_not_dropped_silently(cs, world):
    d = cs.tmpfs_dir()
    m = write_manifest(d, {"secrets": PW, "env": {"VAULT_TOKEN": "${secret:pw}"}})
    r = cs.run(["run", "-m", str(m), "--", "{probe}"])
    assert "VAULT_TOKEN" in r.err, "setting VAULT_TOKEN in the manifest must be reported: " + r.describe()


# ---------------------------------------------------------------------------------------------
# 11. Error text: no userinfo, no list of a secret's fields.


def test_d11_userinfo_not_printed(cs):
    pw = CANARIES.new("userinfo password")
    r = cs.run(RUN, {"X": "vault:secret/data/app#password",
                     "VAULT_ADDR": f"http://user:{pw}@127.0.0.1:{closed_port()}"}, wait="300ms")
    # The canary scan in cs.run already fails on a leak; also check the user name is gone.
    assert r.code in (69, 78), r.describe()
    assert "user:" not in r.err, r.describe()


def test_d11_missing_key_does_not_list_fields(cs, world):
    r = cs.run(RUN, {"X": "vault:secret/data/app#nokey"})
    assert r.code == 79, r.describe()
    for field in ("api_key", "username"):
        assert field not in r.err, f"the error lists the secret's field '{field}'"


# ---------------------------------------------------------------------------------------------
# 12. Literal-only templates; check --online is not dumpable.


# Under UndefinedBehaviorSanitizer (CI's second pass) a reference bound through a null
# Resolver pointer aborted this run; a normal build happened to work.
def test_d12_literal_only_template_file(cs):
    d = cs.tmpfs_dir()
    sdir = d / "secrets"
    m = write_manifest(d, {"files": [{"path": "plain.conf", "template": "no secrets here\n"}]})
    r = cs.run(["run", "-m", str(m), "--", "{probe}"], secrets_dir=sdir, probe_files=[sdir / "plain.conf"])
    assert r.code == 0, r.describe()
    assert r.file_bytes(sdir / "plain.conf") == b"no secrets here\n"


def _owner_while_stalled(cs, bao, args: list[str], tmp: Path) -> int:
    """Runs crunch-secrets as uid 65534 while the proxy holds its first request; returns the
    owner of /proc/PID/environ (root when the process is not dumpable). Not /proc/PID itself:
    some kernels (6.18 here) keep the directory's owner from when it was first looked up."""
    proxy = proxy_for(bao, lambda n, m, p: Action("stall_before", seconds=3))
    tokfile = tmp / "token"
    tokfile.write_text(bao.root_token)
    os.chown(tokfile, 65534, 65534)
    os.chmod(tmp, 0o755)
    env = {"PATH": "/usr/bin:/bin", "VAULT_ADDR": proxy.addr, "X": "vault:secret/data/app#password",
           "CRUNCH_SECRETS_DIR": str(tmp / "s")}
    exe = str(crunch_secrets_bin())
    proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe, *args,
                             "--token-file", str(tokfile), "--wait", "10s", *(["--", str(probe_bin())] if args[0] == "run" else [])],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not proxy.paths() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proxy.paths(), "crunch-secrets never reached the proxy"
        return os.stat(f"/proc/{proc.pid}/environ").st_uid
    finally:
        out, err = proc.communicate(timeout=30)
        cs.scan(out, "stdout")
        cs.scan(err, "stderr")
        proxy.close()


def test_d12_check_online_not_dumpable(cs, bao):
    d = cs.tmpfs_dir()
    for exe_dir in (Path(crunch_secrets_bin()).parent,):
        assert os.access(exe_dir, os.X_OK)
    uid = _owner_while_stalled(cs, bao, ["check", "--online"], d)
    assert uid == 0, "check --online holds a token while dumpable"
    uid = _owner_while_stalled(cs, bao, ["run"], d)
    assert uid == 0, "run holds a token while dumpable"


# ---------------------------------------------------------------------------------------------
# 13. VAULT_SKIP_VERIFY like Go's strconv.ParseBool.


def test_d13_skip_verify_go_parsebool(cs_tls, world):
    ref = {"X": "vault:secret/data/app#password", "VAULT_CACERT": None}
    for v in ("T", "t", "1", "TRUE", "True"):
        r = cs_tls.run(RUN, dict(ref, VAULT_SKIP_VERIFY=v))
        assert r.code == 0, f"VAULT_SKIP_VERIFY={v}: " + r.describe()
    for v in ("F", "f", "0", "FALSE"):
        r = cs_tls.run(RUN, dict(ref, VAULT_SKIP_VERIFY=v))
        assert r.code == 78, f"VAULT_SKIP_VERIFY={v} must verify (and fail without a CA): " + r.describe()
    for v in ("yes", "on", "2"):
        r = cs_tls.run(RUN, dict(ref, VAULT_SKIP_VERIFY=v))
        assert r.code == 78 and "VAULT_SKIP_VERIFY" in r.err, f"VAULT_SKIP_VERIFY={v}: " + r.describe()

