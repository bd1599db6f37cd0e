"""libcurl is loaded on first use (src/util/curl_library.cpp), not linked: a run with nothing to
fetch never loads it, and a host without it fails with one line and exit code 78 only when
something must be fetched. libcurl is hidden by bind-mounting /dev/null over it in a private
mount namespace (`unshare -m`), so the rest of the machine keeps it."""

from __future__ import annotations

import json
import subprocess

from harness import crunch_secrets_bin, fail, probe_bin


def libcurl_path() -> str:
    """The file the dynamic loader finds for libcurl.so.4 (its cache, as dlopen uses)."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        name, _, path = line.strip().partition(" => ")
        if name.startswith("libcurl.so.4 "):
            return path.strip()
    fail("libcurl.so.4 is not in the loader cache (ldconfig -p): install libcurl4")
    raise AssertionError


def run_cs(cs, args: list[str], env: dict[str, str], *, hide_libcurl: bool):
    work = cs.tmpfs_dir()
    full = cs.base_env(cs.bao, "root")
    full.update(CRUNCH_SECRETS_DIR=str(work / "secrets"), PROBE_REPORT=str(work / "report.json"))
    full.update(env)
    argv = [str(crunch_secrets_bin()), *[a.replace("{probe}", str(probe_bin())) for a in args]]
    if hide_libcurl:
        script = 'mount --bind /dev/null "$1" && shift && exec "$@"'
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                libcurl_path(), *argv]
    proc = subprocess.run(argv, env=full, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    cs.scan(proc.stdout, "stdout")
    cs.scan(proc.stderr, "stderr")
    report = work / "report.json"
    return proc, (json.loads(report.read_bytes()) if report.exists() else None), work / "secrets"


def test_dynamic_build_does_not_link_libcurl():
    dyn = subprocess.run(["readelf", "-d", str(crunch_secrets_bin())], capture_output=True,
                         text=True, check=True).stdout
    assert "(NEEDED)" in dyn, "not a dynamic build: this file tests the dlopen path"
    assert "libcurl" not in dyn, dyn


def test_no_reference_runs_without_libcurl(cs):
    proc, report, _ = run_cs(cs, ["run", "--no-manifest", "--", "{probe}"], {"PLAIN": "value"},
                             hide_libcurl=True)
    assert proc.returncode == 0, proc.stderr
    assert report is not None and report["env"]["PLAIN"] == "value"


def test_reference_without_libcurl_is_one_line_and_exit_78(cs):
    proc, report, secrets = run_cs(cs, ["run", "--no-manifest", "--", "{probe}"],
                                   {"A": "vault:secret/data/app#password"}, hide_libcurl=True)
    err = proc.stderr.decode()
    assert proc.returncode == 78, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("crunch-secrets: error: cannot load libcurl"), err
    assert "install libcurl" in lines[0], err
    assert report is None, "the command ran"
    assert not secrets.exists(), "the secrets directory was made"


def test_version_without_libcurl_says_so(cs):
    proc, _, _ = run_cs(cs, ["--version"], {}, hide_libcurl=True)
    assert proc.returncode == 0, proc.stderr
    assert "libcurl: cannot be loaded" in proc.stdout.decode(), proc.stdout


def test_libcurl_is_loaded_only_to_fetch(cs):
    """The dynamic loader's own report (LD_DEBUG=files) names every object it loads."""
    proc, _, _ = run_cs(cs, ["run", "--no-manifest", "--", "{probe}"],
                        {"PLAIN": "value", "LD_DEBUG": "files"}, hide_libcurl=False)
    assert proc.returncode == 0, proc.stderr
    assert b"libcurl" not in proc.stderr, "a run with nothing to fetch loaded libcurl"
    proc, _, _ = run_cs(cs, ["run", "--no-manifest", "--", "{probe}"],
                        {"A": "vault:secret/data/app#password", "LD_DEBUG": "files"},
                        hide_libcurl=False)
    assert proc.returncode == 0, proc.stderr
    assert b"libcurl.so.4" in proc.stderr, "the loader did not report loading libcurl"
