"""The Debian packages (packaging/build-deb.sh): installed on this machine, they hold what they
promise, and the demo's Arvados part (examples/demo-arvados.sh) runs with the installed
crunch-secrets and the installed plugin, registered with the helper's SHA-256."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import artefact
from harness import CANARIES, REPO_ROOT, BaoServer, bao_bin

PLUGIN = Path("/usr/lib/openbao/plugins/vault-plugin-auth-arvados")


@pytest.fixture(scope="module")
def installed():
    deb_dir = artefact("DEB_DIR", "run bash packaging/build-deb.sh DIR and set DEB_DIR=DIR")
    debs = sorted(d for d in deb_dir.glob("*.deb") if "-dbgsym_" not in d.name)
    names = {d.name.split("_")[0] for d in debs}
    assert {"crunch-secrets", "vault-plugin-auth-arvados"} <= names, debs
    r = subprocess.run(["apt-get", "install", "-y", "-q", "--reinstall", *[str(d) for d in debs]],
                       capture_output=True, text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    assert r.returncode == 0, r.stdout + r.stderr
    yield
    subprocess.run(["apt-get", "remove", "-y", "-q", "crunch-secrets", "vault-plugin-auth-arvados"],
                   capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def listed(package: str) -> set[str]:
    return set(subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout.split())


def test_crunch_secrets_package_contents(installed):
    files = listed("crunch-secrets")
    for path in ["/usr/bin/crunch-secrets", "/usr/share/man/man1/crunch-secrets.1.gz",
                 "/usr/share/bash-completion/completions/crunch-secrets",
                 "/usr/share/zsh/vendor-completions/_crunch-secrets",
                 "/usr/share/doc/crunch-secrets/README.md", "/usr/share/doc/crunch-secrets/SECURITY.md",
                 "/usr/share/doc/crunch-secrets/examples/manifest.yml",
                 "/usr/share/doc/crunch-secrets/examples/Containerfile.example"]:
        # dh_compress gzips documentation of 4 kB and more.
        assert path in files or path + ".gz" in files, f"{path} not in the crunch-secrets package"
    r = subprocess.run(["man", "-w", "crunch-secrets"], capture_output=True, text=True)
    assert r.stdout.strip() == "/usr/share/man/man1/crunch-secrets.1.gz", r
    r = subprocess.run(["/usr/bin/crunch-secrets", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("crunch-secrets "), r


def test_plugin_package_and_sha256_helper(installed):
    files = listed("vault-plugin-auth-arvados")
    assert str(PLUGIN) in files and "/usr/bin/vault-plugin-auth-arvados-sha256" in files
    r = subprocess.run(["vault-plugin-auth-arvados-sha256"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == hashlib.sha256(PLUGIN.read_bytes()).hexdigest()
    r = subprocess.run(["vault-plugin-auth-arvados-sha256", "--command"], capture_output=True, text=True)
    assert r.stdout.startswith("bao plugin register -sha256=" + hashlib.sha256(PLUGIN.read_bytes()).hexdigest()), r.stdout


def test_demo_arvados_part_with_installed_files(installed):
    """The plugin directory is the installed one; the plugin is registered with the command the
    helper prints (a wrong SHA-256 would make the mount fail); crunch-secrets is /usr/bin's."""
    bao = BaoServer(name="bao-pkg-plugin", extra_args=["-dev-plugin-dir=/usr/lib/openbao/plugins"]).start()
    try:
        command = subprocess.run(["vault-plugin-auth-arvados-sha256", "--command"], capture_output=True,
                                 text=True, check=True).stdout.split()
        assert command[0] == "bao"
        env = {**os.environ, "BAO_ADDR": bao.addr, "BAO_TOKEN": bao.root_token}
        # Re-register without a version under the helper's checksum: the mount below runs that entry.
        args = [a for a in command[1:] if not a.startswith("-version=")]
        r = subprocess.run([str(bao_bin()), *args], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        work = Path(tempfile.mkdtemp(prefix="cs-pkg-demo-", dir="/dev/shm"))
        (work / "plugins").mkdir()
        r = subprocess.run(["bash", str(REPO_ROOT / "examples" / "demo-arvados.sh")],
                           env={**os.environ, "BAO_ADDR": bao.addr, "ROOT_TOKEN": bao.root_token,
                                "WORK": str(work), "CS": "/usr/bin/crunch-secrets"},
                           capture_output=True, text=True, timeout=300)
        CANARIES.check(r.stdout, "demo stdout")
        CANARIES.check(r.stderr, "demo stderr")
        assert r.returncode == 0, r.stdout + r.stderr
        out = r.stdout
        # alice received both secrets (the demo masks them: first three characters and length).
        assert "DB_PASSWORD = lab... (18 chars)" in out, out
        assert "API_KEY     = ali... (16 chars)" in out, out
        assert "-> exit 80 (authentication failed); nothing ran" in out, out
        assert out.rstrip().endswith("-> exit 80"), out
    finally:
        bao.close()
