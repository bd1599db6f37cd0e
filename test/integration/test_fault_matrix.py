"""The fault matrix: crunch-secrets behind a fault-injecting proxy (faultproxy.py) in front of a
real OpenBao dev server, and against a hostile file system.

Every scenario ends in one of two ways, and the test checks which: the run succeeds after
retrying (the child sees the right values), or it fails with exactly one error line and a
documented exit code within the --wait deadline (plus one request timeout), without running
the command and without leaving a file. Every output is scanned for canaries (Runner.run).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from faultproxy import Action, FaultProxy, TlsHandshakeFailure

WAIT = 4.0  # --wait for scenarios that must give up
CLIENT_TIMEOUT = 2.0  # VAULT_CLIENT_TIMEOUT for them


def manifest(d: Path) -> Path:
    p = d / "m.yml"
    p.write_text(yaml.safe_dump({
        "version": 1,
        "secrets": {"pw": {"path": "secret/data/app", "key": "password"},
                    "key": {"path": "secret/data/app", "key": "api_key"},
                    "tok": {"path": "kv/app", "key": "token"}},
        "env": {"PW": "${secret:pw}", "TOK": "${secret:tok}"},
        "files": [{"path": "key", "secret": "key"}, {"path": "sub/pw", "secret": "pw"}],
    }))
    return p


def run_through(cs, bao, decide, *, wait: float = 20.0, addr: str | None = None, extra_env=None):
    u = urlparse(bao.addr)
    proxy = FaultProxy(u.hostname, u.port, decide) if addr is None else None
    d = cs.tmpfs_dir()
    sdir = d / "secrets"
    env = {"VAULT_ADDR": addr or proxy.addr, "VAULT_CLIENT_TIMEOUT": f"{CLIENT_TIMEOUT}s", **(extra_env or {})}
    try:
        r = cs.run(["run", "-m", str(manifest(d)), "--", "{probe}"], env, secrets_dir=sdir,
                   probe_files=[sdir / "key", sdir / "sub" / "pw"], wait=f"{wait}s", timeout=wait + 60)
    finally:
        if proxy is not None:
            proxy.close()
    return r, proxy


def assert_success(r, world) -> None:
    assert r.code == 0, r.describe()
    assert r.env["PW"] == world.values["password"], "PW has the wrong value"
    assert r.env["TOK"] == world.kv1["token"], "TOK has the wrong value"
    assert r.file_bytes(r.secrets_dir / "key") == world.values["api_key"].encode()


def assert_clean_failure(r, codes: tuple[int, ...], wait: float) -> None:
    assert r.code in codes, f"expected exit {codes}: " + r.describe()
    assert r.report is None, "the command ran after a failure"
    # At most one line per failed read (README, "Logging"): each is a complete error line. The
    # info lines announcing each retry (README, "Vault connection") are not errors.
    lines = [ln for ln in r.err.splitlines() if ln.strip() and not ln.startswith("crunch-secrets: info: ")]
    assert 1 <= len(lines) <= 3, f"expected one error line per read, got {len(lines)}: " + r.describe()
    assert all(ln.startswith("crunch-secrets: error: ") for ln in lines), r.describe()
    assert r.elapsed < wait + CLIENT_TIMEOUT + 3, f"took {r.elapsed:.1f}s with --wait {wait}s"
    left = [p for p in r.secrets_dir.rglob("*") if not p.is_dir()] if r.secrets_dir.exists() else []
    assert left == [], f"files left behind: {[str(p) for p in left]}"


def first_read(n, m, p):
    return "secret/data/app" in p


RECOVERS = {
    "reset mid-body once": lambda n, m, p: Action("reset_mid_body") if n == 0 else Action(),
    "reset before answering, twice": lambda n, m, p: Action("reset_before") if n < 2 else Action(),
    "stall 1 s before headers": lambda n, m, p: Action("stall_before", seconds=1.0) if n == 0 else Action(),
    "stall 1 s after headers": lambda n, m, p: Action("stall_after", seconds=1.0) if n == 0 else Action(),
    "slow body": lambda n, m, p: Action("slow_body", chunk=64, seconds=0.01),
    "burst of five 503": lambda n, m, p: Action("status", 503) if n < 5 else Action(),
    "burst of 500/502/504": lambda n, m, p: Action("status", (500, 502, 504)[n]) if n < 3 else Action(),
    "429 with Retry-After": lambda n, m, p: Action("status", 429, headers={"Retry-After": "1"}) if n < 2 else Action(),
    "412 (eventual consistency)": lambda n, m, p: Action("status", 412) if n < 2 else Action(),
    "stall past the client timeout once": lambda n, m, p: Action("stall_before", seconds=CLIENT_TIMEOUT + 1) if n == 0 else Action(),
}


@pytest.mark.parametrize("name", sorted(RECOVERS))
def test_recovers(cs, bao, world, name):
    r, proxy = run_through(cs, bao, RECOVERS[name])
    assert_success(r, world)
    assert proxy.injected > 0, "the fault was never injected"


FAILS = {
    "truncated JSON": (lambda n, m, p: Action("truncate") if first_read(n, m, p) else Action(), (76,)),
    "garbage body": (lambda n, m, p: Action("garbage") if first_read(n, m, p) else Action(), (76,)),
    "oversized body": (lambda n, m, p: Action("oversized", size=40 * 1024 * 1024) if first_read(n, m, p) else Action(), (76,)),
    "deeply nested JSON": (lambda n, m, p: Action("deep", size=1_000_000) if first_read(n, m, p) else Action(), (76,)),
    "503 until the deadline": (lambda n, m, p: Action("status", 503), (69,)),
    "429 until the deadline": (lambda n, m, p: Action("status", 429, headers={"Retry-After": "1"}), (69,)),
    "reset mid-body always": (lambda n, m, p: Action("reset_mid_body"), (69,)),
    "stall forever": (lambda n, m, p: Action("stall_before", seconds=60), (69,)),
    "501 not implemented": (lambda n, m, p: Action("status", 501), (76,)),
    "403 on one read": (lambda n, m, p: Action("status", 403) if "kv/app" in p else Action(), (77,)),
}


@pytest.mark.parametrize("name", sorted(FAILS))
def test_fails_cleanly(cs, bao, name):
    decide, codes = FAILS[name]
    r, proxy = run_through(cs, bao, decide, wait=WAIT)
    assert_clean_failure(r, codes, WAIT)
    if name in ("oversized body", "deeply nested JSON", "truncated JSON", "garbage body", "501 not implemented"):
        # Not retryable: each request is sent once.
        reads = [p for p in proxy.paths() if "secret/data/app" in p]
        assert len(reads) == 1, f"{name}: sent {len(reads)} times"


def test_tls_handshake_failure(cs, bao):
    server = TlsHandshakeFailure()
    try:
        r, _ = run_through(cs, bao, None, wait=WAIT, addr=server.addr)
    finally:
        server.close()
    # A fatal handshake_failure alert is a negotiation failure: permanent, not retried.
    assert_clean_failure(r, (78,), WAIT)
    # One connection per parallel read at most (the manifest reads two paths), none retried.
    assert 1 <= server.accepted <= 2, f"retried a refused handshake: {server.accepted} connections"
    assert r.elapsed < 3, f"took {r.elapsed:.1f}s"


# ---------------------------------------------------------------------------------------------
# The file system


@pytest.fixture
def small_tmpfs():
    d = Path(os.path.realpath(os.environ.get("TMPDIR", "/tmp"))) / f"cs-full-{os.getpid()}-{time.monotonic_ns()}"
    d.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k,mode=0700", "tmpfs", str(d)], check=True)
    yield d
    subprocess.run(["umount", str(d)], check=False)
    d.rmdir()


def test_tmpfs_full(cs, bao, small_tmpfs):
    big = "x" * 64 * 1024
    bao.kv2_put("secret", "fm-big", {"v": big})
    d = cs.tmpfs_dir()
    m = d / "m.yml"
    m.write_text(yaml.safe_dump({"version": 1, "secrets": {"b": {"path": "secret/data/fm-big", "key": "v"},
                                                           "pw": {"path": "secret/data/app", "key": "password"}},
                                 "files": [{"path": "pw", "secret": "pw"}, {"path": "big", "secret": "b"}]}))
    sdir = small_tmpfs / "secrets"
    r = cs.run(["run", "-m", str(m), "--", "{probe}"], secrets_dir=sdir)
    assert_clean_failure(r, (73,), 10)
    assert "space" in r.err.lower(), r.describe()


def test_read_only_secrets_dir(cs, bao):
    d = Path(os.path.realpath("/tmp")) / f"cs-ro-{os.getpid()}-{time.monotonic_ns()}"
    d.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k,mode=0700", "tmpfs", str(d)], check=True)
    try:
        dm = cs.tmpfs_dir()
        m = dm / "m.yml"
        m.write_text(yaml.safe_dump({"version": 1, "secrets": {"pw": {"path": "secret/data/app", "key": "password"}},
                                     "files": [{"path": "pw", "secret": "pw"}]}))
        # The secrets directory is made inside the read-only file system (crunch-secrets makes
        # a per-run directory beside the configured name, in its parent).
        r = cs.run(["run", "-m", str(m), "--", "{probe}"], secrets_dir=d / "secrets")
        assert_clean_failure(r, (73,), 10)
        assert "read-only" in r.err.lower(), r.describe()
    finally:
        subprocess.run(["umount", str(d)], check=False)
        d.rmdir()


def test_symlinks_swapped_in_while_writing(cs, bao, world):
    """A racing helper keeps replacing the manifest's file and directory names with symlinks to
    a victim directory while crunch-secrets runs; nothing may ever be written there, and each run
    either succeeds with regular files or fails cleanly with 73."""
    d = cs.tmpfs_dir()
    victim = d / "victim"
    victim.mkdir()
    sdir = d / "secrets"
    m = manifest(d)
    stop = threading.Event()

    def racer():
        names = ["key", "sub", "sub/pw"]
        while not stop.is_set():
            for name in names:
                p = sdir / name
                try:
                    if p.is_symlink() or p.is_file():
                        p.unlink()
                    p.symlink_to(victim / name.replace("/", "_"))
                except OSError:
                    pass
            time.sleep(0.0005)

    t = threading.Thread(target=racer, daemon=True)
    t.start()
    outcomes = {"ok": 0, "refused": 0}
    try:
        for _ in range(15):
            r = cs.run(["run", "-m", str(m), "--", "{probe}"], secrets_dir=sdir, wait="10s")
            assert r.code in (0, 73), r.describe()
            outcomes["ok" if r.code == 0 else "refused"] += 1
            assert list(victim.iterdir()) == [], "a secret was written through a symlink"
    finally:
        stop.set()
        t.join(5)
    assert outcomes["refused"] > 0 or outcomes["ok"] > 0


TRAVERSALS = ["../escape", "a/../../escape", "/etc/passwd-cs", "sub/../../escape", "./../escape", "a//b/../../../x"]


@pytest.mark.parametrize("field", ["files.path", "secrets_dir"])
def test_path_traversal_in_manifest_fields(cs, bao, field):
    # template_file is not in the list: the manifest's author may read any file the user can
    # (README, "Manifest"); only where secrets are written is confined.
    d = cs.tmpfs_dir()
    inner = d / "inner"
    inner.mkdir(mode=0o700)
    for bad in TRAVERSALS:
        doc = {"version": 1, "secrets": {"pw": {"path": "secret/data/app", "key": "password"}}}
        if field == "files.path":
            doc["files"] = [{"path": bad, "secret": "pw"}]
        else:
            # The manifest's secrets_dir wins over CRUNCH_SECRETS_DIR (README, "Usage").
            doc["files"] = [{"path": "pw", "secret": "pw"}]
            doc["secrets_dir"] = bad if not bad.startswith("/") else "/dev/shm/../../" + bad.lstrip("/")
        m = inner / "m.yml"
        m.write_text(yaml.safe_dump(doc))
        r = cs.run(["run", "-m", str(m), "--", "{probe}"])
        assert r.code in (65, 73), f"{field}={bad!r}: " + r.describe()
        assert r.report is None, f"{field}={bad!r}: the command ran"
        assert not (d / "escape").exists() and not Path("/etc/passwd-cs").exists()
        assert not (Path.cwd() / "escape").exists() and not (Path.cwd().parent / "escape").exists()
