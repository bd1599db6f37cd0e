"""Arvados credentials in supervise mode (docs/supervise.md, "Arvados credentials"): static
values with an expires_at, delivered once with the Vault reads (concurrently), rendered into
environment, files and redaction like any value, never refreshed; a credential that expires
within a day draws one warning at the start. Real OpenBao with vault-plugin-auth-arvados, the
Arvados stand-in over HTTPS."""

from __future__ import annotations

import time

from test_arvados_plugin import ALICE_RUN1  # noqa: F401
from test_arvados_plugin import acs, arv, plugin_dir, standin  # noqa: F401 (fixtures)
from test_arvados_source import CRED, LAB_DB_UUID, arvs, env_for  # noqa: F401 (fixture)
from test_prepare import LAB_REF

LAB_DB = CRED["lab-db"]["secret"]


def supervised(acs, arvs, *cmd, redact=False, **env):
    sdir = acs.tmpfs_dir() / "s"
    manifest = ('{"version": 1, "files": [{"path": "db.conf", "template": '
                '"password = ${arvados:credential/lab-db#secret}\\n"}]}')
    full = env_for(arvs, CRUNCH_SECRETS_DIR=str(sdir), CRUNCH_SECRETS_MANIFEST_JSON=manifest,
                   PROBE_FILES=f"{sdir}/db.conf", **env)
    args = ["run", "--supervise"] + (["--redact"] if redact else []) + ["--", *cmd]
    return acs.run(args, full, token=None), sdir


def test_credentials_are_delivered_once_with_vault_values(acs, arvs):
    r, sdir = supervised(acs, arvs, "{probe}", S="arvados:credential/lab-db#secret",
                         ID="arvados:credential/lab-db#external_id", V=LAB_REF)
    assert r.code == 0, r.describe()
    assert r.env["S"] == LAB_DB, "the credential's secret was not delivered"
    assert r.env["ID"] == "labdbuser"
    assert r.env["V"] and not r.env["V"].startswith("vault:"), "the Vault value was not delivered"
    assert r.file_bytes(sdir / "db.conf") == f"password = {LAB_DB}\n".encode()
    assert not sdir.exists(), "supervise mode removes its files at exit"
    assert "expires" not in r.err, r.err  # lab-db expires in 2099


def test_credential_values_are_redacted_from_the_output(acs, arvs):
    r, _ = supervised(acs, arvs, "sh", "-c", 'printf "%s\\n" "$S"', redact=True,
                      S="arvados:credential/lab-db#secret")
    assert r.code == 0, r.describe()
    assert r.out.strip() == "[redacted:arvados:credential/lab-db]", "output not redacted"


def test_a_credential_expiring_soon_draws_a_warning(acs, arvs):
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
    arvs.control("POST", f"credentials/{LAB_DB_UUID}", {"expires_at": soon})
    try:
        r, _ = supervised(acs, arvs, "{probe}", S="arvados:credential/lab-db#secret")
    finally:
        arvs.control("POST", f"credentials/{LAB_DB_UUID}",
                     {"expires_at": CRED["lab-db"]["expires_at"]})
    assert r.code == 0, r.describe()
    assert r.env["S"] == LAB_DB
    lines = [l for l in r.err.splitlines() if "expires at" in l]
    assert len(lines) == 1 and "lab-db" in lines[0] and "cannot refresh" in lines[0], r.err
