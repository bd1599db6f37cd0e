"""Manifests (YAML and JSON): env templates, file sinks and their formats, modes, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from harness import env_bytes


def write_manifest(dirpath: Path, doc: dict, kind: str) -> Path:
    if kind == "yaml":
        p = dirpath / "manifest.yml"
        p.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    else:
        p = dirpath / "manifest.json"
        p.write_text(json.dumps(doc, indent=2))
    return p


def dotenv_escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("\n", "\\n")


def full_manifest(tmpl_file: Path) -> dict:
    return {
        "version": 1,
        "secrets": {
            "db": {"path": "secret/data/app", "engine": "kv2", "key": "password"},
            "old": {"path": "secret/data/versioned", "key": "value", "version": 1},
            "aws": {"path": "secret/data/aws"},
            "dot": {"path": "secret/data/dotenv"},
            "ini": {"path": "secret/data/ini"},
            "legacy": {"path": "kv/app", "engine": "kv1"},
            "special": {"path": "secret/data/special", "key": "mixed"},
        },
        "env": {
            "DB_PASSWORD": "${secret:db}",
            "DB_URL": "postgres://app:${secret:db}@db/app",
            "API_KEY": "${vault:secret/data/api#key}".replace("api#key", "app#api_key"),
            "OLD": "${secret:old}",
            "AWS_SECRET": "${secret:aws#secret_key}",
            "LEGACY": "${secret:legacy#token}",
            "AWS_JSON": "${secret:aws}",
            "SPECIAL": "${secret:special}",
            "LIT": "$${secret:db}",
        },
        "files": [
            {"path": "db/password", "secret": "db"},
            {"path": "aws/credentials", "secret": "aws", "format": "aws-credentials", "profile": "default"},
            {"path": "aws/named", "secret": "aws", "format": "aws-credentials", "profile": "prod"},
            {"path": "app.env", "secret": "dot", "format": "dotenv"},
            {"path": "app.ini", "secret": "ini", "format": "ini", "section": "database"},
            {"path": "default.ini", "secret": "ini", "format": "ini"},
            {"path": "aws.json", "secret": "aws", "format": "json"},
            {"path": "aws.raw", "secret": "aws"},
            {"path": "key.json", "secret": "aws", "key": "secret_key", "format": "json"},
            {"path": "key.raw", "secret": "aws", "key": "secret_key"},
            {"path": "special.raw", "secret": "special"},
            {"path": "app.conf", "mode": "0440", "template": "user = app\npassword = ${secret:db}\n"},
            {"path": "other.conf", "template_file": str(tmpl_file)},
        ],
    }


@pytest.mark.parametrize("kind", ["yaml", "json"])
def test_manifest_env_and_files(cs, world, kind):
    d = cs.tmpfs_dir()
    tmpl = d / "other.conf.tmpl"
    tmpl.write_text("key=${secret:aws#access_key}\nold=${secret:old}\nliteral=$${secret:db}\n")
    man = write_manifest(d, full_manifest(tmpl), kind)
    sdir = d / "secrets"
    names = ["db/password", "aws/credentials", "aws/named", "app.env", "app.ini", "default.ini", "aws.json",
             "aws.raw", "key.json", "key.raw", "special.raw", "app.conf", "other.conf"]
    r = cs.run(["run", "-m", str(man), "--", "{probe}"], secrets_dir=sdir,
               probe_files=[sdir / n for n in names] + [sdir])
    assert r.code == 0, r.describe()
    e = r.env
    pw = world.values["password"]
    assert e["DB_PASSWORD"] == pw
    assert e["DB_URL"] == f"postgres://app:{pw}@db/app"
    assert e["API_KEY"] == world.values["api_key"]
    assert e["OLD"] == world.versions[1]
    assert e["AWS_SECRET"] == world.aws["secret_key"]
    assert e["LEGACY"] == world.kv1["token"]
    assert json.loads(e["AWS_JSON"]) == world.aws
    assert env_bytes(e["SPECIAL"]) == world.specials["mixed"].encode()
    assert e["LIT"] == "${secret:db}"
    assert e["CRUNCH_SECRETS_DIR"] == str(sdir)

    def content(name: str) -> bytes:
        return r.file_bytes(sdir / name)

    assert content("db/password") == pw.encode()
    assert content("special.raw") == world.specials["mixed"].encode()
    assert content("key.raw") == world.aws["secret_key"].encode()
    assert json.loads(content("key.json")) == world.aws["secret_key"]
    assert json.loads(content("aws.json")) == world.aws
    assert json.loads(content("aws.raw")) == world.aws
    assert content("app.conf") == f"user = app\npassword = {pw}\n".encode()
    assert content("other.conf") == (
        f"key={world.aws['access_key']}\nold={world.versions[1]}\nliteral=${{secret:db}}\n").encode()

    # dotenv: NAME="value" lines sorted by name, with \\ \" \$ \n escapes.
    expected = "".join(f'{k}="{dotenv_escape(v)}"\n' for k, v in sorted(world.dotenv.items()))
    assert content("app.env") == expected.encode(), "dotenv content differs"

    # ini: [section] then key = value lines (order of keys not specified by README).
    ini = content("app.ini").decode()
    assert ini.endswith("\n"), "ini does not end with a newline"
    lines = ini.splitlines()
    assert lines[0] == "[database]", "ini section line differs"
    assert sorted(lines[1:]) == sorted([f"password = {world.values['ini_value']}", "user = app"]), "ini lines differ"
    assert content("default.ini").decode().splitlines()[0] == "[default]"

    # aws-credentials: [profile] then the three keys in README order.
    for name, profile in (("aws/credentials", "default"), ("aws/named", "prod")):
        expected = (f"[{profile}]\naws_access_key_id = {world.aws['access_key']}\n"
                    f"aws_secret_access_key = {world.aws['secret_key']}\n"
                    f"aws_session_token = {world.aws['session_token']}\n")
        assert content(name) == expected.encode(), f"{name}: aws-credentials content differs"

    # Modes: 0400 by default, as asked otherwise; regular files, no symlinks.
    for n in names:
        f = r.file(sdir / n)
        assert f["regular"] and not f["symlink"], n
        assert f["mode"] == ("0440" if n == "app.conf" else "0400"), f"{n}: mode {f['mode']}"
    # The configured name is crunch-secrets' symlink to this run's own directory, made 0700.
    assert r.file(sdir)["symlink"], "the secrets directory is not the per-run symlink"
    assert oct(os.stat(sdir).st_mode & 0o777) == "0o700"
    # Nothing else (no temporary files) in the directory.
    found = sorted(str(p.relative_to(sdir)) for p in sdir.rglob("*") if p.is_file() or p.is_symlink())
    assert found == sorted(names)


def test_manifest_from_environment_variable(cs, world):
    d = cs.tmpfs_dir()
    man = write_manifest(d, {"version": 1, "env": {"X": "${vault:secret/data/app#password}"}}, "yaml")
    r = cs.run(["run", "--", "{probe}"], {"CRUNCH_SECRETS_MANIFEST": str(man)})
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]


def test_manifest_env_overrides_inherited(cs, world):
    d = cs.tmpfs_dir()
    man = write_manifest(d, {"version": 1, "env": {"X": "${vault:secret/data/app#api_key}"}}, "yaml")
    r = cs.run(["run", "-m", str(man), "--", "{probe}"], {"X": "inherited", "Y": "vault:secret/data/app#password"})
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["api_key"]
    assert r.env["Y"] == world.values["password"]


def test_manifest_json_detected_by_content(cs, world):
    d = cs.tmpfs_dir()
    p = d / "manifest.conf"
    p.write_text(json.dumps({"version": 1, "env": {"X": "${vault:kv/app#token}"}}))
    r = cs.run(["run", "-m", str(p), "--", "{probe}"])
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.kv1["token"]


def test_secret_without_key_is_whole_object_json(cs, world):
    d = cs.tmpfs_dir()
    man = write_manifest(d, {"version": 1, "secrets": {"a": {"path": "secret/data/aws"}},
                             "env": {"A": "${secret:a}"}}, "yaml")
    r = cs.run(["run", "-m", str(man), "--", "{probe}"])
    assert r.code == 0, r.describe()
    assert json.loads(r.env["A"]) == world.aws


def test_engine_kv2_on_kv1_mount_is_unexpected(cs):
    d = cs.tmpfs_dir()
    man = write_manifest(d, {"version": 1, "secrets": {"a": {"path": "kv/app", "engine": "kv2", "key": "token"}},
                             "env": {"A": "${secret:a}"}}, "yaml")
    r = cs.run(["run", "-m", str(man), "--", "{probe}"])
    assert r.code == 76, r.describe()
    assert r.report is None


@pytest.mark.offline
@pytest.mark.parametrize("kind", ["yaml", "json"])
def test_unknown_field_reports_file_and_line(cs, kind):
    d = cs.tmpfs_dir()
    if kind == "yaml":
        p = d / "bad.yml"
        p.write_text("version: 1\nsecrets:\n  db:\n    path: secret/data/app\n    colour: blue\n")
        line = 5
    else:
        p = d / "bad.json"
        p.write_text('{\n  "version": 1,\n  "secrets": {\n    "db": {"path": "secret/data/app"}\n  },\n'
                     '  "enviroment": {}\n}\n')
        line = 6
    r = cs.run(["run", "-m", str(p), "--", "{probe}"], {"VAULT_ADDR": "http://127.0.0.1:9"}, bao=None)
    assert r.code == 65, r.describe()
    assert r.report is None
    assert f"{p.name}:{line}" in r.err, f"expected {p.name}:{line} in: {r.describe()}"


@pytest.mark.offline
def test_bad_manifest_syntax_and_values(cs):
    d = cs.tmpfs_dir()
    cases = {
        "noversion.yml": "secrets: {}\n",
        "version2.yml": "version: 2\n",
        "badname.yml": "version: 1\nsecrets:\n  9bad:\n    path: secret/data/app\n",
        "badyaml.yml": "version: 1\nenv: [unclosed\n",
        "undefined.yml": "version: 1\nenv:\n  X: ${secret:nope}\n",
        "badmode.yml": "version: 1\nfiles:\n  - path: a\n    mode: \"0999\"\n    template: x\n",
        "badversion.yml": "version: 1\nsecrets:\n  a:\n    path: kv/app\n    engine: kv1\n    version: 2\n",
    }
    for name, text in cases.items():
        p = d / name
        p.write_text(text)
        r = cs.run(["run", "-m", str(p), "--", "{probe}"], {"VAULT_ADDR": "http://127.0.0.1:9"}, bao=None)
        assert r.code == 65, f"{name}: {r.describe()}"
        assert p.name in r.err, f"{name}: message does not name the file: {r.describe()}"


@pytest.mark.offline
def test_missing_manifest_is_66(cs):
    r = cs.run(["run", "-m", "/nonexistent/manifest.yml", "--", "{probe}"], {"VAULT_ADDR": "http://127.0.0.1:9"},
               bao=None)
    assert r.code == 66, r.describe()
    assert "/nonexistent/manifest.yml" in r.err


def test_missing_template_file_is_66(cs):
    d = cs.tmpfs_dir()
    man = write_manifest(d, {"version": 1, "files": [{"path": "x", "template_file": str(d / "missing.tmpl")}]}, "yaml")
    r = cs.run(["run", "-m", str(man), "--", "{probe}"])
    assert r.code == 66, r.describe()
    assert r.report is None


def test_dotenv_invalid_field_name_is_error(cs):
    d = cs.tmpfs_dir()
    # secret/data/typed has field names that are valid; secret/data/special too. Use a bad one.
    cs.bao.kv2_put("secret", "badnames", {"good": "x", "bad-name": "y"})
    man = write_manifest(d, {"version": 1, "secrets": {"b": {"path": "secret/data/badnames"}},
                             "files": [{"path": "b.env", "secret": "b", "format": "dotenv"}]}, "yaml")
    r = cs.run(["run", "-m", str(man), "--", "{probe}"], secrets_dir=d / "s")
    assert r.code == 65, r.describe()
    assert r.report is None
    assert not any(p.is_file() for p in (d / "s").rglob("*")) if (d / "s").exists() else True


def test_ini_value_with_newline_is_error(cs):
    d = cs.tmpfs_dir()
    man = write_manifest(d, {"version": 1, "secrets": {"s": {"path": "secret/data/special"}},
                             "files": [{"path": "s.ini", "secret": "s", "format": "ini"}]}, "yaml")
    r = cs.run(["run", "-m", str(man), "--", "{probe}"], secrets_dir=d / "s")
    assert r.code == 65, r.describe()
    assert r.report is None


def test_all_or_nothing_files(cs):
    d = cs.tmpfs_dir()
    sdir = d / "secrets"
    man = write_manifest(d, {
        "version": 1,
        "secrets": {"good": {"path": "secret/data/app", "key": "password"},
                    "bad": {"path": "secret/data/does-not-exist", "key": "x"}},
        "files": [{"path": "a", "secret": "good"}, {"path": "sub/b", "secret": "good"},
                  {"path": "c", "secret": "bad"}],
        "env": {"G": "${secret:good}"},
    }, "yaml")
    r = cs.run(["run", "-m", str(man), "--", "{probe}"], secrets_dir=sdir)
    assert r.code == 79, r.describe()
    assert r.report is None
    left = [p for p in sdir.rglob("*") if not p.is_dir()] if sdir.exists() else []
    assert left == [], f"{len(left)} file(s) left behind in the secrets directory"


def test_manifest_auth_and_secrets_dir_settings(cs, world):
    d = cs.tmpfs_dir()
    sdir = d / "from-manifest"
    man = write_manifest(d, {"version": 1, "auth": {"method": "token"}, "secrets_dir": str(sdir),
                             "files": [{"path": "p", "template": "${vault:secret/data/app#password}"}]}, "yaml")
    r = cs.run(["run", "-m", str(man), "--", "{probe}"], {"CRUNCH_SECRETS_DIR": None}, probe_files=[sdir / "p"])
    assert r.code == 0, r.describe()
    assert r.file_bytes(sdir / "p") == world.values["password"].encode()
    # Command line beats manifest.
    other = d / "from-cli"
    r = cs.run(["run", "-m", str(man), "--secrets-dir", str(other), "--", "{probe}"], probe_files=[other / "p"])
    assert r.code == 0, r.describe()
    assert r.file_bytes(other / "p") == world.values["password"].encode()
    assert r.env["CRUNCH_SECRETS_DIR"] == str(other)


def test_aws_credentials_field_aliases(cs):
    from harness import CANARIES
    a = {"aws_access_key_id": "AKIAALIAS1", "aws_secret_access_key": CANARIES.new("aws alias secret 1")}
    b = {"access_key_id": "AKIAALIAS2", "secret_access_key": CANARIES.new("aws alias secret 2"),
         "security_token": CANARIES.new("aws alias token 2")}
    cs.bao.kv2_put("secret", "aws-a", a)
    cs.bao.kv2_put("secret", "aws-b", b)
    d = cs.tmpfs_dir()
    sdir = d / "s"
    man = write_manifest(d, {"version": 1, "secrets": {"a": {"path": "secret/data/aws-a"}, "b": {"path": "secret/data/aws-b"}},
                             "files": [{"path": "a", "secret": "a", "format": "aws-credentials"},
                                       {"path": "b", "secret": "b", "format": "aws-credentials", "profile": "x"}]}, "yaml")
    r = cs.run(["run", "-m", str(man), "--", "{probe}"], secrets_dir=sdir, probe_files=[sdir / "a", sdir / "b"])
    assert r.code == 0, r.describe()
    assert r.file_bytes(sdir / "a") == (f"[default]\naws_access_key_id = AKIAALIAS1\n"
                                        f"aws_secret_access_key = {a['aws_secret_access_key']}\n").encode(), "a differs"
    assert r.file_bytes(sdir / "b") == (f"[x]\naws_access_key_id = AKIAALIAS2\n"
                                        f"aws_secret_access_key = {b['secret_access_key']}\n"
                                        f"aws_session_token = {b['security_token']}\n").encode(), "b differs"
