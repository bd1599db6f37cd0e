"""One login, then parallel reads over reused connections (HTTP/2 over TLS), no wasted requests.

crunch-secrets --verbose reports what its transport did: requests sent, new connections opened
and the protocol of the last answer. These tests pin those numbers.
"""

from __future__ import annotations

import os
import re
import subprocess

from harness import CANARIES, crunch_secrets_bin, probe_bin

LINE = re.compile(r"fetched (\d+) secret\(s\) with (\d+) request\(s\) over (\d+) new connection\(s\) \(([^)]*)\)")


def seed_paths(bao, n: int) -> dict[str, str]:
    refs = {}
    for i in range(n):
        value = CANARIES.new(f"efficiency {i}")
        bao.api("POST", f"secret/data/eff/s{i}", {"data": {"k": value}})
        refs[f"EFF_{i}"] = (f"vault:secret/data/eff/s{i}#k", value)
    return refs


def stats(r):
    m = LINE.search(r.err.decode() if isinstance(r.err, bytes) else r.err)
    assert m, f"no transport line in --verbose output: {r.describe()}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)


def test_tls_login_and_reads_share_one_http2_connection(cs_tls, bao_tls):
    refs = seed_paths(bao_tls, 8)
    world = bao_tls.world
    env = {k: ref for k, (ref, _) in refs.items()}
    env.update(CRUNCH_SECRETS_ROLE_ID=world.role_id, CRUNCH_SECRETS_SECRET_ID=world.secret_id)
    r = cs_tls.run(["run", "-v", "--no-manifest", "--", "{probe}"], env, token=None)
    assert r.code == 0, r.describe()
    for k, (_, value) in refs.items():
        assert r.env[k] == value, f"{k} differs"
    secrets, requests, connections, proto = stats(r)
    assert secrets == 8, f"{secrets} secrets"
    assert requests == 9, f"{requests} requests for 1 login + 8 reads"
    assert connections == 1, f"{connections} connections: the login's connection was not reused"
    assert proto == "HTTP/2", f"protocol {proto}"


def test_duplicate_references_are_read_once(cs):
    env = {"A": "vault:secret/data/app#password", "B": "vault:secret/data/app#password",
           "C": "x${vault:secret/data/app#password}y", "D": "vault:secret/data/app#password#1"}
    r = cs.run(["run", "-v", "--no-manifest", "--", "{probe}"], env)
    assert r.code == 0, r.describe()
    secrets, requests, _, _ = stats(r)
    assert (secrets, requests) == (2, 2), f"{secrets} reads, {requests} requests for 2 unique path/versions"


def test_plain_http_reads_in_parallel_connections(cs, bao):
    refs = seed_paths(bao, 4)
    r = cs.run(["run", "-v", "--no-manifest", "--", "{probe}"], {k: ref for k, (ref, _) in refs.items()})
    assert r.code == 0, r.describe()
    secrets, requests, connections, proto = stats(r)
    assert (secrets, requests) == (4, 4)
    # HTTP/1.1 cannot multiplex: parallel reads need parallel connections, at most one each.
    assert 1 <= connections <= 4 and proto == "HTTP/1.1", f"{connections} connections over {proto}"


def test_no_reference_no_request(cs):
    r = cs.run(["run", "-v", "--no-manifest", "--", "{probe}"], {"PLAIN": "value"}, token=None, bao=None)
    assert r.code == 0, r.describe()
    assert "fetched" not in r.err, "a run with no reference talked to Vault"


def test_batch_larger_than_the_window_keeps_one_connection(cs_tls, bao_tls):
    """150 reads go through CurlTransport's window of 64 transfers in flight (handles reused as
    transfers finish): still exactly 1 login + 150 reads over one HTTP/2 connection."""
    refs = seed_paths(bao_tls, 150)
    world = bao_tls.world
    env = {k: ref for k, (ref, _) in refs.items()}
    env.update(CRUNCH_SECRETS_ROLE_ID=world.role_id, CRUNCH_SECRETS_SECRET_ID=world.secret_id)
    r = cs_tls.run(["run", "-v", "--no-manifest", "--", "{probe}"], env, token=None)
    assert r.code == 0, r.describe()
    for k, (_, value) in refs.items():
        assert r.env[k] == value, f"{k} differs"
    assert stats(r) == (150, 151, 1, "HTTP/2"), stats(r)


def peak_rss_kib(cs, bao, env: dict[str, str]) -> int:
    """Peak RSS of one `crunch-secrets run` (before its exec: the probe is far smaller), from
    the kernel's accounting of that one child (wait4)."""
    work = cs.tmpfs_dir()
    full = cs.base_env(bao, "root")
    full.update(env, CRUNCH_SECRETS_DIR=str(work / "secrets"), PROBE_REPORT=str(work / "r.json"))
    # In an ASan build freed memory waits in a quarantine (256 MB by default) instead of being
    # reused, so every transfer freed early would still count; without it the growth measured is
    # the program's own (no effect on other builds).
    asan = os.environ.get("ASAN_OPTIONS", "")
    full["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
    with open(work / "out", "wb") as out, open(work / "err", "wb") as err:
        proc = subprocess.Popen([str(crunch_secrets_bin()), "run", "--no-manifest", "--",
                                 str(probe_bin())], env=full, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    cs.scan((work / "out").read_bytes(), "stdout")
    cs.scan((work / "err").read_bytes(), "stderr")
    assert proc.returncode == 0, (work / "err").read_text()
    return usage.ru_maxrss


def test_peak_memory_does_not_grow_with_the_batch(cs_tls, bao_tls):
    """Memory flat in N (issue 9): 600 reads may take no more than 5 KiB per extra secret over 100
    (the values, their variables and a transfer record each; measured with the window of 64:
    under 1 KiB). It guards against state kept per request for the whole batch."""
    refs = seed_paths(bao_tls, 600)
    env = {k: ref for k, (ref, _) in refs.items()}
    small = peak_rss_kib(cs_tls, bao_tls, dict(list(env.items())[:100]))
    large = peak_rss_kib(cs_tls, bao_tls, env)
    per_secret = (large - small) / 500
    assert per_secret < 5, f"peak RSS {small} KiB for 100 reads, {large} KiB for 600: {per_secret:.1f} KiB per secret"
