"""Zero-flag container markers (README "Zero-flag container markers"): `crunch-secrets run --
CMD` with no option at all, as in an Arvados container, against real OpenBao with
vault-plugin-auth-arvados and the Arvados stand-in. The conventional paths under /etc
(`/etc/crunch-secrets/manifest.json`, a `json` mount of the container request, and crunch-run's
`/etc/arvados/ca-certificates.crt`) are tested in a private mount namespace (`unshare -m`) with
an overlay over /etc, so the host's /etc is never touched.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from harness import Result, crunch_secrets_bin, probe_bin
from test_arvados_plugin import (  # noqa: F401 (fixtures)
    ALICE, ALICE_RUN1, acs, arv, container_token, plugin_dir, standin,
)

LAB = "secret/data/lab/db#password"
MINE = f"secret/data/arvados/{ALICE}/personal#value"


def zero_flag(acs, env: dict, *args: str) -> Result:
    """`crunch-secrets run -- probe ARGS` with the container's Arvados token and no Vault token."""
    return acs.run(["run", "--", "{probe}", *args],
                   dict({"ARVADOS_API_TOKEN": container_token(ALICE_RUN1)}, **env),
                   token=None, wait=None)


def test_environment_references_and_arvados_auth_by_default(acs, arv):
    r = zero_flag(acs, {"CRUNCH_SECRETS_ARVADOS_ROLE": "lab", "PGPASSWORD": "vault:" + LAB,
                        "DB_URL": "postgres://app:${vault:" + MINE + "}@db/app"})
    assert r.code == 0, r.describe()
    assert r.env["PGPASSWORD"] == arv.values["lab"]
    assert r.env["DB_URL"] == f"postgres://app:{arv.values['alice']}@db/app"
    assert r.env["ARVADOS_API_TOKEN"] == container_token(ALICE_RUN1), "the container token is kept"


def test_inline_manifest_gives_role_env_files_and_argv(acs, arv):
    manifest = {"version": 1, "auth": {"role": "lab"}, "argv": True,
                "env": {"FROM_MANIFEST": "${vault:" + MINE + "}"},
                "files": [{"path": "db/password", "template": "${vault:" + LAB + "}"}]}
    work = acs.tmpfs_dir()
    sdir = work / "secrets"
    r = zero_flag(acs, {"CRUNCH_SECRETS_MANIFEST_JSON": json.dumps(manifest),
                        "CRUNCH_SECRETS_DIR": str(sdir), "PROBE_FILES": str(sdir / "db/password")},
                  "--password", "${vault:" + LAB + "}")
    assert r.code == 0, r.describe()
    assert r.env["FROM_MANIFEST"] == arv.values["alice"]
    assert r.argv[1:] == ["--password", arv.values["lab"]], "argv reference not substituted"
    assert r.file_bytes(sdir / "db/password") == arv.values["lab"].encode()
    # The marker reaches the child as written: references, never values.
    assert r.env["CRUNCH_SECRETS_MANIFEST_JSON"] == json.dumps(manifest)


def test_manifest_path_variable(acs, arv):
    m = acs.tmpfs_dir() / "manifest.yml"
    m.write_text("version: 1\nauth:\n  role: lab\nenv:\n  X: ${vault:" + LAB + "}\n")
    r = zero_flag(acs, {"CRUNCH_SECRETS_MANIFEST": str(m)})
    assert r.code == 0, r.describe()
    assert r.env["X"] == arv.values["lab"]


def test_argv_marker(acs, arv):
    env = {"CRUNCH_SECRETS_ARVADOS_ROLE": "lab"}
    r = zero_flag(acs, dict(env, CRUNCH_SECRETS_ARGV="1"), "${vault:" + LAB + "}")
    assert r.code == 0, r.describe()
    assert r.argv[1] == arv.values["lab"]
    # Without the marker a reference in the command is refused, never passed through.
    r = zero_flag(acs, env, "${vault:" + LAB + "}")
    assert r.code == 65 and r.report is None, r.describe()
    r = zero_flag(acs, dict(env, CRUNCH_SECRETS_ARGV="perhaps"), "x")
    assert r.code == 64 and "CRUNCH_SECRETS_ARGV" in r.err, r.describe()


def test_both_manifest_variables_are_refused(acs):
    r = zero_flag(acs, {"CRUNCH_SECRETS_MANIFEST": "/nonexistent.yml",
                        "CRUNCH_SECRETS_MANIFEST_JSON": '{"version": 1}'})
    assert r.code == 64 and "set only one" in r.err and r.report is None, r.describe()


def test_inline_manifest_error_names_the_variable(acs):
    r = zero_flag(acs, {"CRUNCH_SECRETS_MANIFEST_JSON": '{"version": 1, "sekrets": {}}'})
    assert r.code == 65 and "$CRUNCH_SECRETS_MANIFEST_JSON:1:" in r.err, r.describe()


# ---------------------------------------------------------------------------------------------
# The conventional paths, in a mount namespace


def run_with_etc(acs, bao, etc_files: dict[str, str], env: dict, args: list[str],
                 token: str | None) -> Result:
    """Runs crunch-secrets with `etc_files` (relative to /etc, mode 0444 like crunch-run's
    mounts) visible under /etc through an overlay in a private mount namespace. A value of
    None in `env` removes the variable."""
    work = acs.tmpfs_dir()
    upper, scratch = work / "upper", work / "scratch"
    upper.mkdir()
    scratch.mkdir()
    for rel, content in etc_files.items():
        p = upper / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        p.chmod(0o444)
    report = work / "report.json"
    full = acs.base_env(bao, token)
    full.update(CRUNCH_SECRETS_DIR=str(work / "secrets"), PROBE_REPORT=str(report))
    for k, v in env.items():
        if v is None:
            full.pop(k, None)
        else:
            full[k] = v
    script = ('mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc '
              '&& shift 2 && exec "$@"')
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            str(upper), str(scratch), str(crunch_secrets_bin()),
            *[a.replace("{probe}", str(probe_bin())) for a in args]]
    start = time.monotonic()
    proc = subprocess.run(argv, env=full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)
    acs.scan(proc.stdout, "stdout")
    acs.scan(proc.stderr, "stderr")
    rep = json.loads(report.read_bytes()) if report.exists() else None
    return Result(proc.returncode, proc.stdout, proc.stderr, rep, time.monotonic() - start,
                  work / "secrets", argv)


def test_conventional_manifest_path_from_a_json_mount(acs, arv):
    """A container request's `json` mount at /etc/crunch-secrets/manifest.json is found with no
    variable and no flag."""
    manifest = {"version": 1, "auth": {"role": "lab"}, "env": {"X": "${vault:" + LAB + "}"}}
    r = run_with_etc(acs, arv, {"crunch-secrets/manifest.json": json.dumps(manifest)},
                     {"ARVADOS_API_TOKEN": container_token(ALICE_RUN1)}, ["run", "--", "{probe}"],
                     token=None)
    assert r.code == 0, r.describe()
    assert r.env["X"] == arv.values["lab"]


def test_container_ca_bundle_verifies_vault(acs, bao_tls):
    """With no VAULT_CACERT, crunch-run's /etc/arvados/ca-certificates.crt is Vault's CA."""
    ca = Path(bao_tls.ca_path).read_text()
    env = {"VAULT_CACERT": None, "X": "vault:secret/data/app#password"}
    args = ["run", "--no-manifest", "--wait", "2s", "--", "{probe}"]
    r = run_with_etc(acs, bao_tls, {"arvados/ca-certificates.crt": ca}, env, args, "root")
    assert r.code == 0, r.describe()
    assert r.env["X"] == bao_tls.world.values["password"]
    # Without the bundle (and without VAULT_CACERT) the private CA is not trusted.
    r = run_with_etc(acs, bao_tls, {}, env, args, "root")
    assert r.code == 78 and r.report is None, r.describe()
    # VAULT_CACERT wins over the bundle: a wrong one fails although the bundle is right.
    wrong = acs.tmpfs_dir() / "other-ca.pem"
    wrong.write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text())
    r = run_with_etc(acs, bao_tls, {"arvados/ca-certificates.crt": ca},
                     dict(env, VAULT_CACERT=str(wrong)), args, "root")
    assert r.code == 78 and r.report is None, r.describe()
