"""The secrets directory: tmpfs only, safe paths (no `..`, no symlinks), modes, leftovers."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from harness import is_tmpfs


def manifest(d: Path, files: list[dict], secrets: dict | None = None) -> Path:
    p = d / "m.yml"
    doc = {"version": 1, "files": files}
    if secrets:
        doc["secrets"] = secrets
    p.write_text(yaml.safe_dump(doc))
    return p


PW = {"pw": {"path": "secret/data/app", "key": "password"}}


def regular_files(d: Path) -> list[Path]:
    if not d.exists():
        return []
    return [p for p in d.rglob("*") if p.is_file() or p.is_symlink()]


def test_non_tmpfs_dir_refused(cs):
    d = cs.tmpfs_dir()
    disk = cs.disk_dir()
    assert not is_tmpfs(disk), f"{disk} is unexpectedly on tmpfs"
    sdir = disk / "secrets"
    man = manifest(d, [{"path": "pw", "secret": "pw"}], PW)
    r = cs.run(["run", "-m", str(man), "--secrets-dir", str(sdir), "--", "{probe}"])
    assert r.code == 73, r.describe()
    assert r.report is None
    assert regular_files(disk) == []


def test_non_tmpfs_dir_allowed_with_option(cs, world):
    d = cs.tmpfs_dir()
    disk = cs.disk_dir()
    sdir = disk / "secrets"
    man = manifest(d, [{"path": "pw", "secret": "pw"}], PW)
    r = cs.run(["run", "-m", str(man), "--secrets-dir", str(sdir), "--allow-non-tmpfs", "--", "{probe}"],
               probe_files=[sdir / "pw"])
    assert r.code == 0, r.describe()
    assert r.file_bytes(sdir / "pw") == world.values["password"].encode()
    assert r.file(sdir / "pw")["mode"] == "0400"


def test_dotdot_and_absolute_paths_refused(cs):
    d = cs.tmpfs_dir()
    for bad in ["../escape", "a/../../escape", "a/../b", "/abs/path", "./../x", ""]:
        sdir = d / f"s{abs(hash(bad))}"
        sdir.mkdir(mode=0o700)
        man = manifest(d, [{"path": bad, "secret": "pw"}], PW)
        r = cs.run(["run", "-m", str(man), "--secrets-dir", str(sdir), "--", "{probe}"])
        assert r.code in (65, 73), f"{bad!r}: {r.describe()}"
        assert r.report is None, bad
        assert regular_files(sdir) == [], f"{bad!r}: file left behind"
    assert not (d / "escape").exists()
    assert not Path("/abs/path").exists()


def test_symlink_in_file_path_refused(cs):
    d = cs.tmpfs_dir()
    sdir = d / "secrets"
    sdir.mkdir(mode=0o700)
    target = cs.tmpfs_dir()
    (sdir / "link").symlink_to(target)
    (sdir / "flink").symlink_to(target / "victim")
    for path in ["link/pw", "flink"]:
        man = manifest(d, [{"path": "ok", "secret": "pw"}, {"path": path, "secret": "pw"}], PW)
        r = cs.run(["run", "-m", str(man), "--secrets-dir", str(sdir), "--", "{probe}"])
        assert r.code == 73, f"{path}: {r.describe()}"
        assert r.report is None
        assert list(target.iterdir()) == [], f"{path}: something was written through the symlink"
        left = sorted(p.name for p in sdir.iterdir())
        assert left == ["flink", "link"], f"{path}: unexpected entries left: {len(left)}"


def test_symlinked_secrets_dir_refused(cs):
    d = cs.tmpfs_dir()
    real = d / "real"
    real.mkdir(mode=0o700)
    link = d / "link"
    link.symlink_to(real)
    man = manifest(d, [{"path": "pw", "secret": "pw"}], PW)
    r = cs.run(["run", "-m", str(man), "--secrets-dir", str(link), "--", "{probe}"])
    assert r.code == 73, r.describe()
    assert list(real.iterdir()) == []


def test_group_writable_secrets_dir_refused(cs):
    d = cs.tmpfs_dir()
    sdir = d / "s"
    sdir.mkdir()
    os.chmod(sdir, 0o770)
    man = manifest(d, [{"path": "pw", "secret": "pw"}], PW)
    r = cs.run(["run", "-m", str(man), "--secrets-dir", str(sdir), "--", "{probe}"])
    assert r.code == 73, r.describe()
    assert list(sdir.iterdir()) == []


def test_existing_dir_accepted_and_file_modes(cs, world):
    d = cs.tmpfs_dir()
    sdir = d / "s"
    sdir.mkdir(mode=0o700)
    man = manifest(d, [{"path": "a", "secret": "pw"}, {"path": "b/c", "secret": "pw", "mode": "0600"},
                       {"path": "d", "secret": "pw", "mode": "0640"}], PW)
    r = cs.run(["run", "-m", str(man), "--secrets-dir", str(sdir), "--", "{probe}"],
               probe_files=[sdir / "a", sdir / "b/c", sdir / "d"])
    assert r.code == 0, r.describe()
    assert r.file(sdir / "a")["mode"] == "0400"
    assert r.file(sdir / "b/c")["mode"] == "0600"
    assert r.file(sdir / "d")["mode"] == "0640"
    for n in ("a", "b/c", "d"):
        assert r.file_bytes(sdir / n) == world.values["password"].encode()
        assert r.file(sdir / n)["uid"] == os.getuid()


def test_special_characters_byte_for_byte_in_files(cs, world):
    d = cs.tmpfs_dir()
    sdir = d / "s"
    secrets = {k: {"path": "secret/data/special", "key": k} for k in world.specials}
    files = [{"path": f"raw-{k}", "secret": k} for k in world.specials]
    files += [{"path": f"tmpl-{k}", "template": f"[${{secret:{k}}}]"} for k in world.specials]
    man = manifest(d, files, secrets)
    r = cs.run(["run", "-m", str(man), "--secrets-dir", str(sdir), "--", "{probe}"],
               probe_files=[sdir / f["path"] for f in files])
    assert r.code == 0, r.describe()
    for k, v in world.specials.items():
        assert r.file_bytes(sdir / f"raw-{k}") == v.encode(), f"raw file for special {k!r} differs"
        assert r.file_bytes(sdir / f"tmpl-{k}") == f"[{v}]".encode(), f"template file for special {k!r} differs"


def test_no_files_means_no_crunch_secrets_dir_var(cs):
    r = cs.run(["run", "--no-manifest", "--", "{probe}"], {"X": "vault:secret/data/app#password",
                                                          "CRUNCH_SECRETS_DIR": None})
    assert r.code == 0, r.describe()
    assert "CRUNCH_SECRETS_DIR" not in r.env
