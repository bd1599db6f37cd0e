"""`check`: the offline plan (never a value) and `--online` capability checks."""

from __future__ import annotations

import json

import pytest
import yaml


def manifest(cs) -> str:
    d = cs.tmpfs_dir()
    m = d / "m.yml"
    m.write_text(yaml.safe_dump({
        "version": 1,
        "secrets": {"db": {"path": "secret/data/app", "key": "password"},
                    "forbidden": {"path": "secret/data/forbidden", "key": "value"}},
        "env": {"DB": "${secret:db}", "F": "${secret:forbidden}"},
        "files": [{"path": "db/password", "secret": "db"}],
    }))
    return str(m)


@pytest.mark.offline
def test_check_offline_prints_plan(cs):
    m = manifest(cs)
    r = cs.run(["check", "-m", m, "--", "{probe}"], {"VAULT_ADDR": "http://127.0.0.1:9",
                                                     "E": "vault:kv/app#token"}, bao=None)
    assert r.code == 0, r.describe()
    text = r.out + r.err
    for needle in ("secret/data/app", "secret/data/forbidden", "kv/app", "db/password"):
        assert needle in text, f"plan does not mention {needle}: {r.describe()}"
    assert r.report is None, "check must not run the command"
    assert r.elapsed < 5


@pytest.mark.offline
def test_check_json(cs):
    m = manifest(cs)
    r = cs.run(["check", "-m", m, "--json"], {"VAULT_ADDR": "http://127.0.0.1:9"}, bao=None)
    assert r.code == 0, r.describe()
    plan = json.loads(r.out)
    assert "secret/data/app" in json.dumps(plan)


@pytest.mark.offline
def test_check_offline_rejects_bad_reference(cs):
    r = cs.run(["check", "--no-manifest"], {"VAULT_ADDR": "http://127.0.0.1:9", "E": "vault:kv/app"}, bao=None)
    assert r.code == 65, r.describe()


def test_check_online_reports_denied_path(cs, world):
    m = manifest(cs)
    r = cs.run(["check", "-m", m, "--online"], token=world.reader_token)
    text = r.out + r.err
    assert "secret/data/forbidden" in text, r.describe()
    denied_lines = [line for line in text.splitlines() if "secret/data/forbidden" in line]
    assert any(w in " ".join(denied_lines).lower() for w in ("denied", "deny", "not readable", "forbidden")), \
        r.describe()
    assert r.code == 77, r.describe()
    assert r.report is None


def test_check_online_ok(cs, world):
    d = cs.tmpfs_dir()
    m = d / "m.yml"
    m.write_text(yaml.safe_dump({"version": 1, "env": {"DB": "${vault:secret/data/app#password}"}}))
    r = cs.run(["check", "-m", str(m), "--online", "--json"], token=world.reader_token)
    assert r.code == 0, r.describe()
    json.loads(r.out)
