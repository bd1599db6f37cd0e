"""The host-side protocol (docs/crunch-run-protocol.md) end to end: `crunch-secrets prepare` on a
container record, the reference launcher (launcher.py) starting the probe as the container's
process with the result, and `crunch-secrets cleanup`. Real OpenBao with vault-plugin-auth-arvados
(the launcher logs in with the container's Arvados token, as crunch-run would have it), the
Arvados stand-in, canary values, and checks that files are gone and the Vault token no longer
works afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import CANARIES, REPO_ROOT, crunch_secrets_bin, probe_bin
from test_arvados_plugin import (  # noqa: F401 (fixtures)
    ALICE, ALICE_DONE, ALICE_RUN1, acs, arv, container_token, plugin_dir, standin,
)

LAUNCHER = REPO_ROOT / "test" / "integration" / "launcher.py"
LAB_REF = "vault:secret/data/lab/db#password"
MINE_REF = f"secret/data/arvados/{ALICE}/personal#value"


def accessors(arv) -> set[str]:
    return set(arv.api("GET", "auth/token/accessors?list=true")["data"]["keys"])


def record_for(ctr_dir: str, report: Path, *, command_refs: bool = True, extra_env=None) -> dict:
    """A container record in the shape GET /arvados/v1/containers/{uuid} returns, with every
    marker: environment references, an inline manifest, argv references (CRUNCH_SECRETS_ARGV)."""
    manifest = {"version": 1,
                "files": [{"path": "db/password", "template": "${" + LAB_REF + "}"},
                          {"path": "app.conf", "mode": "0440",
                           "template": "user = app\npassword = ${vault:" + MINE_REF + "}\n"}]}
    env = {
        "CRUNCH_SECRETS_ARVADOS_ROLE": "lab",
        "CRUNCH_SECRETS_MANIFEST_JSON": json.dumps(manifest),
        "CRUNCH_SECRETS_DIR": ctr_dir,
        "PGPASSWORD": LAB_REF,
        "DB_URL": "postgres://app:${vault:" + MINE_REF + "}@db/app",
        "PLAIN": "not a reference",
        "PROBE_REPORT": str(report),
        "PROBE_FILES": f"{ctr_dir}/db/password:{ctr_dir}/app.conf",
    }
    command = [str(probe_bin()), "--password", "${" + LAB_REF + "}" if command_refs else "x"]
    if command_refs:
        env["CRUNCH_SECRETS_ARGV"] = "1"
    env.update(extra_env or {})
    return {"uuid": ALICE_RUN1, "state": "Running", "command": command, "environment": env,
            "mounts": {"/out": {"kind": "tmp", "capacity": 1 << 20}},
            "runtime_constraints": {"API": True}, "some_future_field": {"x": 1}}


def launcher_env(arv, token: str, *, vault_addr: bool = True) -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "ARVADOS_API_TOKEN": token}
    if vault_addr:
        env["VAULT_ADDR"] = arv.addr
    return env


def run(argv, env, *, stdin=None, pass_fds=()):
    proc = subprocess.run(argv, env=env, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=120, pass_fds=pass_fds)
    CANARIES.check(proc.stderr, f"{Path(argv[0]).name} stderr")
    return proc


def test_launcher_end_to_end(acs, arv):
    """prepare → launcher → child gets env, argv and files → cleanup removes them and revokes."""
    work = acs.tmpfs_dir()
    report = work / "report.json"
    ctr_dir = str(work / "in-container" / "secrets")
    host_dir = work / "host-secrets"
    rec = work / "container.json"
    rec.write_text(json.dumps(record_for(ctr_dir, report)))
    before = accessors(arv)
    # The launcher's environment has no VAULT_ADDR here: the record's is used.
    env = launcher_env(arv, container_token(ALICE_RUN1), vault_addr=False)
    record = json.loads(rec.read_text())
    record["environment"]["VAULT_ADDR"] = arv.addr
    rec.write_text(json.dumps(record))
    proc = run([sys.executable, str(LAUNCHER), str(crunch_secrets_bin()), str(rec), str(host_dir)], env)
    CANARIES.check(proc.stdout, "launcher stdout")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    got = json.loads(report.read_bytes())
    lab, mine = arv.values["lab"], arv.values["alice"]
    assert got["env"]["PGPASSWORD"] == lab, "whole-value reference not substituted"
    assert got["env"]["DB_URL"] == f"postgres://app:{mine}@db/app", "inline reference not substituted"
    assert got["env"]["PLAIN"] == "not a reference"
    assert got["env"]["CRUNCH_SECRETS_DIR"] == ctr_dir
    for marker in ("CRUNCH_SECRETS_MANIFEST_JSON", "CRUNCH_SECRETS_ARGV", "ARVADOS_API_TOKEN"):
        assert marker not in got["env"], f"{marker} reached the container: {sorted(got['env'])}"
    assert got["argv"][1:] == ["--password", lab], "argv reference not substituted"
    f = got["files"][f"{ctr_dir}/db/password"]
    assert f["regular"] and f["mode"] == "0400" and f["content"] == lab, "db/password wrong"
    f = got["files"][f"{ctr_dir}/app.conf"]
    assert f["mode"] == "0440" and f["content"] == f"user = app\npassword = {mine}\n", "app.conf wrong"
    # Cleanup ran: nothing on the host, and no token prepare made is left in Vault.
    assert not host_dir.exists(), "the secrets directory is still there"
    assert not Path(str(host_dir) + ".state").exists(), "the state file is still there"
    assert accessors(arv) == before, "a Vault token prepare obtained was not revoked"
    report.unlink()


def prepare(acs, arv, record: dict, host_dir: Path, *, token=None, extra=(), env_extra=None):
    """Runs prepare with the result on fd 3 (a pipe); returns (process, result or None)."""
    rec = acs.tmpfs_dir() / "container.json"
    rec.write_text(json.dumps(record))
    env = launcher_env(arv, token or container_token(ALICE_RUN1))
    env.update(env_extra or {})
    r, w = os.pipe()
    os.set_inheritable(w, True)
    with os.fdopen(r, "rb") as pipe:
        p = subprocess.Popen([str(crunch_secrets_bin()), "prepare", "--container", str(rec),
                              "--secrets-dir", str(host_dir), "--result-fd", str(w), *extra],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(w,))
        os.close(w)
        raw = pipe.read()
        out, err = p.communicate(timeout=120)
    CANARIES.check(out, "prepare stdout")
    CANARIES.check(err, "prepare stderr")
    p.stderr_text = err.decode(errors="replace")
    assert out == b"", "prepare wrote to stdout although --result-fd was given"
    return p, (json.loads(raw) if raw else None)


def test_prepare_result_state_and_cleanup_revokes_the_token(acs, arv):
    work = acs.tmpfs_dir()
    host_dir = work / "secrets"
    before = accessors(arv)
    p, result = prepare(acs, arv, record_for("/var/run/crunch-secrets", work / "r.json",
                                             extra_env={"CRUNCH_SECRETS_DIR": ""}), host_dir)
    assert p.returncode == 0, p.stderr_text
    assert result["version"] == 1 and result["container_uuid"] == ALICE_RUN1
    # Only changed variables, and the markers to unset.
    assert set(result["environment"]) == {"PGPASSWORD", "DB_URL", "CRUNCH_SECRETS_DIR"}, sorted(result["environment"])
    assert sorted(result["unset_environment"]) == ["CRUNCH_SECRETS_ARGV", "CRUNCH_SECRETS_MANIFEST_JSON"]
    assert result["mount"] == {"host_path": str(host_dir), "container_path": "/var/run/crunch-secrets",
                               "read_only": True}, result["mount"]
    assert [(f["path"], f["container_path"], f["mode"]) for f in result["files"]] == [
        ("db/password", "/var/run/crunch-secrets/db/password", "0400"),
        ("app.conf", "/var/run/crunch-secrets/app.conf", "0440")], result["files"]
    assert result["files"][0]["size"] == len(arv.values["lab"].encode())
    state = Path(result["state"])
    assert state == Path(str(host_dir) + ".state") and oct(state.stat().st_mode & 0o777) == "0o600"
    data = json.loads(state.read_bytes())
    token = CANARIES.add("vault token from prepare", data["token"])
    assert arv.api_status("GET", "auth/token/lookup-self", token=token)[0] == 200
    assert (host_dir / "db" / "password").read_text() == arv.values["lab"]
    assert len(accessors(arv)) == len(before) + 1

    clean = run([str(crunch_secrets_bin()), "cleanup", "--state", str(state)], {"PATH": "/usr/bin:/bin"})
    assert clean.returncode == 0, clean.stderr.decode(errors="replace")
    assert not host_dir.exists() and not state.exists(), "cleanup left files behind"
    status, _ = arv.api_status("GET", "auth/token/lookup-self", token=token)
    assert status == 403, f"the token still works after cleanup (HTTP {status})"
    assert accessors(arv) == before
    # Idempotent.
    again = run([str(crunch_secrets_bin()), "cleanup", "--state", str(state)], {"PATH": "/usr/bin:/bin"})
    assert again.returncode == 0, again.stderr.decode(errors="replace")


def test_prepare_on_stdout_without_references(acs, arv):
    """No marker: no login, no files, no mount; the command comes back unchanged."""
    work = acs.tmpfs_dir()
    rec = {"uuid": ALICE_RUN1, "command": ["echo", "hello"], "environment": {"A": "b"}}
    proc = run([str(crunch_secrets_bin()), "prepare", "--container", "-", "--secrets-dir",
                str(work / "s")], {"PATH": "/usr/bin:/bin"}, stdin=json.dumps(rec).encode())
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    result = json.loads(proc.stdout)
    assert result["command"] == ["echo", "hello"] and result["environment"] == {}
    assert result["files"] == [] and "mount" not in result
    assert not (work / "s").exists()
    clean = run([str(crunch_secrets_bin()), "cleanup", "--state", result["state"]], {"PATH": "/usr/bin:/bin"})
    assert clean.returncode == 0 and not Path(result["state"]).exists()


@pytest.mark.parametrize("case", ["denied", "not running", "argv without marker", "template_file",
                                  "missing key"])
def test_prepare_failure_leaves_nothing(acs, arv, case):
    work = acs.tmpfs_dir()
    host_dir = work / "secrets"
    record = record_for("/run/s", work / "r.json")
    token = container_token(ALICE_RUN1)
    want = {"denied": 77, "not running": 80, "argv without marker": 65, "template_file": 65,
            "missing key": 79}[case]
    if case == "denied":
        record["environment"]["X"] = "vault:secret/data/other/db#password"
    elif case == "not running":
        token = container_token(ALICE_DONE)
    elif case == "argv without marker":
        del record["environment"]["CRUNCH_SECRETS_ARGV"]
    elif case == "template_file":
        record["environment"]["CRUNCH_SECRETS_MANIFEST_JSON"] = json.dumps(
            {"version": 1, "files": [{"path": "x", "template_file": "/etc/shadow"}]})
    elif case == "missing key":
        record["environment"]["X"] = "vault:secret/data/lab/db#nosuchkey"
    before = accessors(arv)
    p, result = prepare(acs, arv, record, host_dir, token=token)
    assert p.returncode == want, (case, p.returncode, p.stderr_text)
    assert p.stderr_text.count("\n") == 1, p.stderr_text
    assert result is None, "a result was written although prepare failed"
    assert not host_dir.exists() and not Path(str(host_dir) + ".state").exists()
    assert accessors(arv) == before, "the token of a failed prepare was not revoked"


def test_prepare_refuses_a_used_directory_and_a_disk_directory(acs, arv):
    work = acs.tmpfs_dir()
    used = work / "used"
    used.mkdir(mode=0o700)
    (used / "other").write_text("x")
    p, result = prepare(acs, arv, record_for("/run/s", work / "r.json"), used)
    assert p.returncode == 73 and "not empty" in p.stderr_text, p.stderr_text
    assert (used / "other").exists() and result is None
    disk = acs.disk_dir()
    p, result = prepare(acs, arv, record_for("/run/s", work / "r.json"), disk / "s")
    assert p.returncode == 73 and "tmpfs" in p.stderr_text, p.stderr_text
