"""packaging/fetch-go-toolchain.sh (run by install-deps.sh when no new-enough Go is installed):
the Go toolchain archive from the Go module proxy is used only if its SHA-256 is the pinned one.

The proxy is a local file:// directory (GOPROXY may name any mirror, and curl reads file:// URLs),
so the refusal and the installation logic are tested offline with a small stand-in archive. The
real download from proxy.golang.org (64 MB) runs when RUN_NETWORK_TESTS=1, which .ci/run sets.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from harness import REPO_ROOT

SCRIPT = REPO_ROOT / "packaging" / "fetch-go-toolchain.sh"
INSTALL_DEPS = REPO_ROOT / "packaging" / "install-deps.sh"
TOOLCHAIN = "go1.25.8"
ZIP_NAME = f"v0.0.1-{TOOLCHAIN}.linux-amd64.zip"
ROOT_IN_ZIP = f"golang.org/toolchain@v0.0.1-{TOOLCHAIN}.linux-amd64"
# A PATH without any `go`: the fetch must not depend on one.
NO_GO_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

pytestmark = pytest.mark.offline


def pinned_sha256() -> str:
    m = re.search(r"^sha256=([0-9a-f]{64})$", SCRIPT.read_text(), re.M)
    assert m, "fetch-go-toolchain.sh has no pinned sha256= line"
    return m.group(1)


def fake_toolchain_zip() -> bytes:
    """A zip laid out like the proxy's toolchain module, whose bin/go only prints a version."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{ROOT_IN_ZIP}/bin/go", "#!/bin/sh\necho 'go version go1.25.8 stand-in'\n")
        z.writestr(f"{ROOT_IN_ZIP}/bin/gofmt", "#!/bin/sh\nexit 0\n")
        z.writestr(f"{ROOT_IN_ZIP}/pkg/tool/linux_amd64/compile", "#!/bin/sh\nexit 0\n")
        z.writestr(f"{ROOT_IN_ZIP}/VERSION", "go1.25.8\n")
    return buf.getvalue()


class Env:
    """An empty cache (XDG_CACHE_HOME), an empty TMPDIR, a file:// proxy and a PATH without go."""

    def __init__(self, tmp_path: Path, archive: bytes | None) -> None:
        self.cache = tmp_path / "cache"
        self.tmpdir = tmp_path / "tmp"
        self.proxy = tmp_path / "proxy"
        self.cache.mkdir()
        self.tmpdir.mkdir()
        if archive is not None:
            d = self.proxy / "golang.org" / "toolchain" / "@v"
            d.mkdir(parents=True)
            (d / ZIP_NAME).write_bytes(archive)
        self.dest = self.cache / "crunch-secrets" / "toolchain" / TOOLCHAIN

    def vars(self, **extra: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
        env.update(PATH=NO_GO_PATH, XDG_CACHE_HOME=str(self.cache), TMPDIR=str(self.tmpdir),
                   GOPROXY=f"file://{self.proxy}")
        env.update(extra)
        return env

    def run(self, script: Path, **extra: str) -> subprocess.CompletedProcess:
        assert shutil.which("go", path=NO_GO_PATH) is None, "a go binary is on the test's PATH"
        return subprocess.run(["bash", str(script)], env=self.vars(**extra), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.tmpdir.iterdir())


def test_an_archive_with_another_sha256_is_refused(tmp_path):
    archive = fake_toolchain_zip()
    env = Env(tmp_path, archive)
    r = env.run(SCRIPT)
    assert r.returncode == 1, f"exit {r.returncode}, stderr: {r.stderr}"
    got = hashlib.sha256(archive).hexdigest()
    assert "refusing the Go toolchain archive" in r.stderr, r.stderr
    assert f"its SHA-256 is {got}, not the pinned {pinned_sha256()}" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 2, f"expected the fetch line and one error line: {r.stderr}"
    assert not env.dest.exists(), "a refused toolchain was installed"
    assert not Path(f"{env.dest}.partial").exists(), "a refused toolchain was left half-installed"
    assert env.leftovers() == [], f"temporary files left behind: {env.leftovers()}"


def packaging_copy(tmp_path: Path, pin: str | None = None) -> Path:
    """A copy of packaging/ whose install-deps.sh does not find the machine's /usr/local/go (so
    that, with NO_GO_PATH, it has no Go and must fetch one), optionally with another pin."""
    d = tmp_path / "packaging"
    d.mkdir()
    deps = INSTALL_DEPS.read_text()
    assert "/usr/local/go/bin/go" in deps, "install-deps.sh no longer looks in /usr/local/go"
    (d / "install-deps.sh").write_text(deps.replace("/usr/local/go/bin/go", str(tmp_path / "no-go/bin/go")))
    fetch = SCRIPT.read_text()
    (d / SCRIPT.name).write_text(fetch.replace(pinned_sha256(), pin) if pin else fetch)
    return d / "install-deps.sh"


@pytest.mark.parametrize("matching", [False, True], ids=["refused", "installed"])
def test_install_deps_without_go_fetches_a_verified_toolchain(tmp_path, matching):
    archive = fake_toolchain_zip()
    env = Env(tmp_path, archive)
    script = packaging_copy(tmp_path, hashlib.sha256(archive).hexdigest() if matching else None)
    r = env.run(script)
    if matching:
        assert r.returncode == 0, f"exit {r.returncode}, stderr: {r.stderr}"
        assert f"use {env.dest}/bin/go" in r.stderr, r.stderr
        assert os.access(env.dest / "bin" / "go", os.X_OK), "no toolchain installed"
    else:
        assert r.returncode == 1, f"exit {r.returncode}, stderr: {r.stderr}"
        assert "refusing the Go toolchain archive" in r.stderr, r.stderr
        assert "use " not in r.stderr, f"install-deps.sh went on after the refusal: {r.stderr}"
        assert not env.dest.exists(), "a refused toolchain was installed"
    assert env.leftovers() == [], f"temporary files left behind: {env.leftovers()}"


def test_a_matching_archive_is_installed_once(tmp_path):
    """The installation logic, with a copy of the script pinned to the stand-in archive."""
    archive = fake_toolchain_zip()
    env = Env(tmp_path, archive)
    copy = tmp_path / "fetch-go-toolchain.sh"
    copy.write_text(SCRIPT.read_text().replace(pinned_sha256(), hashlib.sha256(archive).hexdigest()))
    r = env.run(copy)
    assert r.returncode == 0, f"exit {r.returncode}, stderr: {r.stderr}"
    assert "SHA-256 verified" in r.stderr, r.stderr
    go = env.dest / "bin" / "go"
    assert os.access(go, os.X_OK), "bin/go is not executable"
    assert os.access(env.dest / "pkg" / "tool" / "linux_amd64" / "compile", os.X_OK), "tools not executable"
    out = subprocess.run([str(go)], stdout=subprocess.PIPE, text=True, check=True).stdout
    assert "go1.25.8" in out, out
    assert env.leftovers() == [], f"temporary files left behind: {env.leftovers()}"
    # Installed: a second run fetches nothing (the proxy is gone) and succeeds quietly.
    shutil.rmtree(env.proxy)
    r = env.run(copy)
    assert r.returncode == 0 and r.stderr == "", f"exit {r.returncode}, stderr: {r.stderr}"


def test_an_unreachable_proxy_fails_with_advice(tmp_path):
    env = Env(tmp_path, None)
    r = env.run(SCRIPT)
    assert r.returncode == 1, f"exit {r.returncode}, stderr: {r.stderr}"
    assert "cannot download the Go toolchain from file://" in r.stderr, r.stderr
    assert "install Go >= 1.24.6" in r.stderr, r.stderr
    assert not env.dest.exists() and env.leftovers() == [], "something was left behind"


@pytest.mark.skipif(os.environ.get("RUN_NETWORK_TESTS") != "1",
                    reason="downloads 64 MB from proxy.golang.org; .ci/run sets RUN_NETWORK_TESTS=1")
def test_the_real_archive_matches_the_pin(tmp_path):
    """The happy path for real: an empty cache, no go on PATH, the archive from the Go module
    proxy (GOPROXY as the environment says, else proxy.golang.org), and a working go1.25.8."""
    env = Env(tmp_path, None)
    proxy = os.environ.get("GOPROXY", "https://proxy.golang.org")
    r = env.run(SCRIPT, GOPROXY=proxy)
    assert r.returncode == 0, f"exit {r.returncode}, stderr: {r.stderr}"
    assert "SHA-256 verified" in r.stderr, r.stderr
    out = subprocess.run([str(env.dest / "bin" / "go"), "version"], env=env.vars(GOTOOLCHAIN="local"),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120).stdout
    assert out.startswith("go version go1.25.8 linux/amd64"), out
    assert env.leftovers() == [], f"temporary files left behind: {env.leftovers()}"
