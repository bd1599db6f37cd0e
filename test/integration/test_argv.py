"""Command-line templates: only with --argv-templates (or `argv: true`), byte for byte."""

from __future__ import annotations

import yaml

from harness import env_bytes


def test_argv_reference_without_option_refused(cs):
    for arg in ["${vault:secret/data/app#password}", "x=${vault:secret/data/app#password}", "${secret:db}"]:
        r = cs.run(["run", "--no-manifest", "--", "{probe}", "plain", arg])
        assert r.code == 65, f"{arg!r}: {r.describe()}"
        assert r.report is None


def test_argv_templates(cs, world):
    r = cs.run(["run", "--no-manifest", "--argv-templates", "--", "{probe}", "plain",
                "${vault:secret/data/app#password}", "--pw=${vault:secret/data/app#password}!",
                "$${vault:secret/data/app#password}", "vault:secret/data/app#password"])
    assert r.code == 0, r.describe()
    pw = world.values["password"]
    assert r.argv[1:] == ["plain", pw, f"--pw={pw}!", "${vault:secret/data/app#password}",
                          "vault:secret/data/app#password"]


def test_argv_special_characters(cs, world):
    args = [f"${{vault:secret/data/special#{k}}}" for k in world.specials]
    r = cs.run(["run", "--no-manifest", "--argv-templates", "--", "{probe}", *args])
    assert r.code == 0, r.describe()
    for i, (k, v) in enumerate(world.specials.items()):
        assert env_bytes(r.argv[1 + i]) == v.encode(), f"argv special {k!r} differs"


def test_argv_true_in_manifest(cs, world):
    d = cs.tmpfs_dir()
    m = d / "m.yml"
    m.write_text(yaml.safe_dump({"version": 1, "argv": True,
                                 "secrets": {"db": {"path": "secret/data/app", "key": "password"}}}))
    r = cs.run(["run", "-m", str(m), "--", "{probe}", "${secret:db}", "${vault:kv/app#token}"])
    assert r.code == 0, r.describe()
    assert r.argv[1:] == [world.values["password"], world.kv1["token"]]
