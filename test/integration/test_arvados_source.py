"""Arvados credentials as a second source (README "Arvados credentials"): references
`arvados:credential/<uuid-or-name>#secret|#external_id`, whole value and inline, manifest
secrets with `source: arvados-credential`, the `aws-credentials` file format for
`arv:aws_access_key`, each failure as one line with nothing executed, and Vault and Arvados
references in one run fetched concurrently. crunch-secrets talks to the Arvados stand-in over
HTTPS (ARVADOS_API_HOST as host:port, a CA bundle) and, for Vault references, to a real OpenBao
with vault-plugin-auth-arvados (which asks a second, plain-HTTP stand-in with the same fixtures).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness import CANARIES, FaultProxy, crunch_secrets_bin, fail, http_json
from test_prepare import accessors, prepare
from test_prepare import run as run_cs
from test_arvados_plugin import (  # noqa: F401 (fixtures)
    ALICE_RUN1, BOB_RUN, FIXTURE_DATA, FIXTURES, STANDIN, acs, arv, container_token, plugin_dir,
    standin,
)

CRED = {c["name"]: c for c in FIXTURE_DATA["credentials"]}
LAB_DB_UUID = CRED["lab-db"]["uuid"]
ALICE_LOCKED = "zzzzz-dz642-alicelocked0001"


class TlsStandin:
    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="cs-arv-src-"))
        cert, key = self.work / "cert.pem", self.work / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=arvados-standin", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.work / "port"
        self.log = self.work / "standin.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(STANDIN), "--fixtures", str(FIXTURES), "--port", "0",
                 "--port-file", str(port_file), "--tls-cert", str(cert), "--tls-key", str(key),
                 "--verbose"], stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                fail("the TLS stand-in did not start")
            time.sleep(0.05)
        self.host = f"127.0.0.1:{int(port_file.read_text())}"
        self.ca = str(cert)
        self.ctx = ssl.create_default_context(cafile=self.ca)

    def control(self, method: str, path: str, body=None):
        status, resp = http_json(method, f"https://{self.host}/_control/{path}", body=body, ctx=self.ctx)
        if status != 200:
            fail(f"stand-in control {method} {path}: {status}")
        return resp

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        CANARIES.check(self.log.read_bytes(), "the TLS stand-in's log")
        subprocess.run(["rm", "-rf", str(self.work)])


@pytest.fixture(scope="module")
def arvs():
    s = TlsStandin()
    yield s
    s.stop()


def env_for(arvs, ctr=ALICE_RUN1, **extra) -> dict:
    env = {"ARVADOS_API_HOST": arvs.host, "CRUNCH_SECRETS_ARVADOS_CACERT": arvs.ca,
           "ARVADOS_API_TOKEN": container_token(ctr), "CRUNCH_SECRETS_ARVADOS_ROLE": "lab"}
    env.update(extra)
    return env


def run(acs, env: dict, *args: str, manifest: str | None = None):
    opts = ["--manifest", manifest] if manifest else ["--no-manifest"]
    return acs.run(["run", *opts, "--", "{probe}", *args], env, token=None)


def test_whole_value_by_name_and_uuid(acs, arvs):
    r = run(acs, env_for(arvs, S="arvados:credential/lab-db#secret",
                         ID="arvados:credential/lab-db#external_id",
                         U=f"arvados:credential/{LAB_DB_UUID}#secret"))
    assert r.code == 0, r.describe()
    assert r.env["S"] == CRED["lab-db"]["secret"], "secret by name not delivered"
    assert r.env["ID"] == "labdbuser"
    assert r.env["U"] == CRED["lab-db"]["secret"], "secret by uuid not delivered"


def test_inline_in_env_and_argv(acs, arvs):
    r = run(acs, env_for(arvs, CRUNCH_SECRETS_ARGV="1",
                         URL="pg://${arvados:credential/lab-db#external_id}:"
                             "${arvados:credential/lab-db#secret}@db/x"),
            "--key=${arvados:credential/lab-aws#secret}")
    assert r.code == 0, r.describe()
    assert r.env["URL"] == f"pg://labdbuser:{CRED['lab-db']['secret']}@db/x"
    assert r.argv[1] == "--key=" + CRED["lab-aws"]["secret"]


def test_manifest_source_and_aws_credentials_file(acs, arvs):
    sdir = acs.tmpfs_dir() / "s"
    m = acs.tmpfs_dir() / "m.yml"
    m.write_text(
        "version: 1\n"
        "secrets:\n"
        "  aws:\n    source: arvados-credential\n    credential: lab-aws\n"
        f"  db:\n    source: arvados-credential\n    credential: {LAB_DB_UUID}\n    key: secret\n"
        "env:\n"
        "  KEY_ID: ${secret:aws#external_id}\n"
        "  DB_PASSWORD: ${secret:db}\n"
        "files:\n"
        "  - path: aws/credentials\n    secret: aws\n    format: aws-credentials\n    profile: lab\n"
        "  - path: db.conf\n    template: \"password = ${arvados:credential/lab-db#secret}\\n\"\n")
    r = run(acs, env_for(arvs, CRUNCH_SECRETS_DIR=str(sdir),
                         PROBE_FILES=f"{sdir}/aws/credentials:{sdir}/db.conf"), manifest=str(m))
    assert r.code == 0, r.describe()
    assert r.env["KEY_ID"] == "AKIAEXAMPLELAB"
    assert r.env["DB_PASSWORD"] == CRED["lab-db"]["secret"]
    assert r.file_bytes(sdir / "aws/credentials").decode() == (
        "[lab]\naws_access_key_id = AKIAEXAMPLELAB\n"
        f"aws_secret_access_key = {CRED['lab-aws']['secret']}\n"), "aws credentials file wrong"
    assert r.file_bytes(sdir / "db.conf").decode() == f"password = {CRED['lab-db']['secret']}\n"


def test_aws_credentials_format_needs_an_aws_credential(acs, arvs):
    m = acs.tmpfs_dir() / "m.yml"
    m.write_text("version: 1\nsecrets:\n  db:\n    source: arvados-credential\n    credential: lab-db\n"
                 "files:\n  - path: aws\n    secret: db\n    format: aws-credentials\n")
    r = run(acs, env_for(arvs), manifest=str(m))
    assert r.code == 65 and r.report is None, r.describe()
    assert "arv:aws_access_key" in r.err and "example:password" in r.err, r.describe()


@pytest.mark.parametrize("ref, ctr, code, text", [
    ("arvados:credential/lab-expired#secret", ALICE_RUN1, 77, "expired"),
    ("arvados:credential/no-such-name#secret", ALICE_RUN1, 79, "no credential with this name"),
    ("arvados:credential/shared-name#secret", ALICE_RUN1, 65, "2 credentials have this name"),
    ("arvados:credential/zzzzz-oss07-otheronly000001#secret", ALICE_RUN1, 79, "not readable"),
    ("arvados:credential/lab-aws#secret", ALICE_LOCKED, 77, "is Locked, not Running"),
    ("arvados:credential/lab-aws#password", ALICE_RUN1, 65, "'secret' or 'external_id'"),
])
def test_each_failure_is_one_line_and_nothing_runs(acs, arvs, ref, ctr, code, text):
    sdir = acs.tmpfs_dir() / "s"
    m = acs.tmpfs_dir() / "m.yml"
    m.write_text("version: 1\nfiles:\n  - path: f\n    template: x\n")
    r = run(acs, env_for(arvs, ctr, X=ref, CRUNCH_SECRETS_DIR=str(sdir)), manifest=str(m))
    assert r.code == code, r.describe()
    assert text in r.err and r.err.count("\n") == 1, r.describe()
    assert r.report is None, "the command ran although a credential failed"
    assert not sdir.exists() or not any(sdir.iterdir()), "a file was left behind"


def test_vault_and_arvados_in_one_run_concurrently(acs, arv, arvs):
    """Each Arvados answer takes 600 ms (two round trips: 1.2 s); Vault's login and read must
    not wait for them."""
    proxy = FaultProxy(arv)
    arvs.control("POST", "delay", {"ms": 600})
    try:
        start = time.monotonic()
        r = acs.run(["run", "--no-manifest", "--", "{probe}"],
                    env_for(arvs, VAULT_ADDR=proxy.addr, V="vault:secret/data/lab/db#password",
                            A="arvados:credential/lab-db#secret"), token=None)
    finally:
        arvs.control("POST", "delay", {"ms": 0})
        proxy.close()
    assert r.code == 0, r.describe()
    assert r.env["V"] == arv.values["lab"] and r.env["A"] == CRED["lab-db"]["secret"]
    reads = [q for q in proxy.requests if q["path"].startswith("/v1/secret/")]
    assert len(reads) == 1, proxy.paths()
    waited = reads[0]["time"] - start
    assert waited < 1.0, f"the Vault read started {waited:.2f}s after launch: it waited for Arvados"
    assert r.elapsed >= 1.2, f"the run took {r.elapsed:.2f}s: the delay did not apply"


def test_check_lists_arvados_references_offline(acs, arvs):
    r = acs.run(["check", "--no-manifest", "--json"],
                env_for(arvs, A="arvados:credential/lab-db#secret"), token=None)
    assert r.code == 0, r.describe()
    plan = json.loads(r.out)
    assert plan["credentials"] == [{"credential": "lab-db", "used_by": ["environment variable A"]}], plan


def test_prepare_mixes_vault_and_arvados_references(acs, arv, arvs):
    """The host-side protocol with both sources: the launcher's ARVADOS_API_* settings are
    prepare's, the record only holds references."""
    work = acs.tmpfs_dir()
    host_dir = work / "secrets"
    record = {"uuid": ALICE_RUN1, "command": ["prog"],
              "environment": {"CRUNCH_SECRETS_ARVADOS_ROLE": "lab",
                              "V": "vault:secret/data/lab/db#password",
                              "A": "arvados:credential/lab-db#secret",
                              "CRUNCH_SECRETS_MANIFEST_JSON": json.dumps({
                                  "version": 1,
                                  "secrets": {"aws": {"source": "arvados-credential",
                                                      "credential": "lab-aws"}},
                                  "files": [{"path": "aws", "secret": "aws",
                                             "format": "aws-credentials"}]})}}
    p, result = prepare(acs, arv, record, host_dir,
                        env_extra={"ARVADOS_API_HOST": arvs.host,
                                   "CRUNCH_SECRETS_ARVADOS_CACERT": arvs.ca})
    assert p.returncode == 0, p.stderr_text
    assert result["environment"]["V"] == arv.values["lab"]
    assert result["environment"]["A"] == CRED["lab-db"]["secret"]
    assert (host_dir / "aws").read_text() == (
        f"[default]\naws_access_key_id = AKIAEXAMPLELAB\n"
        f"aws_secret_access_key = {CRED['lab-aws']['secret']}\n"), "aws file wrong"
    clean = run_cs([str(crunch_secrets_bin()), "cleanup", "--state", result["state"]],
                   {"PATH": "/usr/bin:/bin"})
    assert clean.returncode == 0 and not host_dir.exists()
    # An Arvados failure in prepare leaves nothing either (and revokes the Vault token).
    before = accessors(arv)
    record["environment"]["A"] = "arvados:credential/lab-expired#secret"
    p, result = prepare(acs, arv, record, host_dir,
                        env_extra={"ARVADOS_API_HOST": arvs.host,
                                   "CRUNCH_SECRETS_ARVADOS_CACERT": arvs.ca})
    assert p.returncode == 77 and "expired" in p.stderr_text and result is None, p.stderr_text
    assert not host_dir.exists() and not Path(str(host_dir) + ".state").exists()
    assert accessors(arv) == before, "the Vault token of the failed prepare was not revoked"

