"""Adversarial review of the issue-9 performance changes (attack9): libcurl loaded on first use
(src/util/curl_library.cpp), the window of 64 transfers in flight (vault::TransferWindow in
src/vault/curl_transport.cpp) and full jitter on retries (src/vault/client.cpp).

Every secret is a unique canary (CANARIES), so a value delivered to the wrong variable shows, and
every output is scanned for canaries (Runner.run). The faulty server is faultproxy.FaultProxy in
front of the real OpenBao dev server.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

from faultproxy import Action, FaultProxy
from harness import CANARIES, crunch_secrets_bin, fail

LINE = re.compile(r"fetched (\d+) secret\(s\) with (\d+) request\(s\)")


# --- libcurl loaded on first use --------------------------------------------------------------

FAKE_LIBCURL = r"""
#include <stdlib.h>

/* The head of curl_version_info_data: age, version, version_num (then more, unread here). */
struct info { int age; const char *version; unsigned int version_num; void *rest[32]; };
static struct info info = {10, VERSION_TEXT, VERSION_NUM, {0}};

struct info *curl_version_info(int a) { (void)a; return &info; }
int curl_global_init(long f) { (void)f; return GLOBAL_INIT_RC; }
#define DIE(name) void name(void) { abort(); }
DIE(curl_easy_init) DIE(curl_easy_setopt) DIE(curl_easy_getinfo) DIE(curl_easy_reset)
DIE(curl_easy_cleanup) DIE(curl_easy_strerror) DIE(curl_slist_append) DIE(curl_slist_free_all)
DIE(curl_multi_init) DIE(curl_multi_setopt) DIE(curl_multi_add_handle)
DIE(curl_multi_remove_handle) DIE(curl_multi_perform) DIE(curl_multi_info_read)
DIE(curl_multi_cleanup) DIE(curl_multi_strerror)
#ifndef WITHOUT_POLL
DIE(curl_multi_poll)
#endif
"""


def fake_libcurl(d: Path, *, version: str = "7.84.0", num: int = 0x075400, global_rc: int = 0,
                 without_poll: bool = False) -> Path:
    """A libcurl.so.4 in `d` that reports `version` and aborts on any real use."""
    cc = shutil.which("cc")
    if cc is None:
        fail("no C compiler (cc) to build the fake libcurl")
    d.mkdir(parents=True, exist_ok=True)
    src = d / "fake.c"
    src.write_text(FAKE_LIBCURL)
    args = [cc, "-shared", "-fPIC", "-w", f'-DVERSION_TEXT="{version}"', f"-DVERSION_NUM={num}",
            f"-DGLOBAL_INIT_RC={global_rc}", "-o", str(d / "libcurl.so.4"), str(src)]
    if without_poll:
        args.insert(1, "-DWITHOUT_POLL")
    subprocess.run(args, check=True, capture_output=True)
    return d


def assert_one_line_78(r, must_contain: str) -> None:
    err = r.err
    assert r.code == 78, r.describe()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line: {r.describe()}"
    assert lines[0].startswith("crunch-secrets: error: "), r.describe()
    assert must_contain in lines[0], r.describe()
    assert r.report is None, "the command ran"
    assert not r.secrets_dir.exists(), "the secrets directory was made"


def test_libcurl_older_than_785_is_refused_before_use(cs):
    lib = fake_libcurl(cs.tmpfs_dir() / "lib")
    r = cs.run(["run", "--no-manifest", "--", "{probe}"],
               {"A": "vault:secret/data/app#password", "LD_LIBRARY_PATH": str(lib)})
    assert_one_line_78(r, "7.84.0")


def test_libcurl_lacking_a_function_is_refused(cs):
    lib = fake_libcurl(cs.tmpfs_dir() / "lib", version="8.5.0", num=0x080500, without_poll=True)
    r = cs.run(["run", "--no-manifest", "--", "{probe}"],
               {"A": "vault:secret/data/app#password", "LD_LIBRARY_PATH": str(lib)})
    assert_one_line_78(r, "curl_multi_poll")


def test_libcurl_whose_global_init_fails_is_refused(cs):
    lib = fake_libcurl(cs.tmpfs_dir() / "lib", version="8.5.0", num=0x080500, global_rc=2)
    r = cs.run(["run", "--no-manifest", "--", "{probe}"],
               {"A": "vault:secret/data/app#password", "LD_LIBRARY_PATH": str(lib)})
    assert_one_line_78(r, "libcurl")


def test_libcurl_missing_with_vault_and_arvados_references_is_one_line(cs):
    """The Vault and Arvados transports load libcurl on two threads at once (core/credentials.cpp);
    both fail to load it, and the README promises one error line for it, not one per thread."""
    lib = fake_libcurl(cs.tmpfs_dir() / "lib")
    token = CANARIES.new("arvados token (attack9)")
    r = cs.run(["run", "--no-manifest", "--", "{probe}"],
               {"A": "vault:secret/data/app#password",
                "B": "arvados:credential/lab-aws#secret",
                "ARVADOS_API_HOST": "127.0.0.1:9", "ARVADOS_API_TOKEN": token,
                "LD_LIBRARY_PATH": str(lib)})
    assert_one_line_78(r, "7.84.0")


# --- the window of 64 transfers ---------------------------------------------------------------

def seed(bao, n: int, tag: str) -> dict[str, tuple[str, str]]:
    refs = {}
    for i in range(n):
        value = CANARIES.new(f"{tag} {i}")
        bao.api("POST", f"secret/data/{tag}/s{i}", {"data": {"k": value}})
        refs[f"W_{i}"] = (f"vault:secret/data/{tag}/s{i}#k", value)
    return refs


def window_run(cs, bao, n: int, tag: str, fault_at: dict[int, Action], *, dups: int = 0,
               wait: float = 60.0):
    """N reads (+ `dups` duplicate references) through a proxy that answers the n-th request
    (counting from 0, over all connections) with `fault_at[n]` and forwards all else."""
    refs = seed(bao, n, tag)
    u = urlparse(bao.addr)
    proxy = FaultProxy(u.hostname, u.port, lambda k, m, p: fault_at.get(k, Action()))
    env = {k: ref for k, (ref, _) in refs.items()}
    for i in range(dups):
        env[f"DUP_{i}"] = refs[f"W_{(i * 37) % n}"][0]
    env["VAULT_ADDR"] = proxy.addr
    try:
        r = cs.run(["run", "-v", "--no-manifest", "--", "{probe}"], env, wait=f"{wait}s",
                   timeout=wait + 120)
    finally:
        proxy.close()
    return r, proxy, refs


def assert_every_secret_right(r, refs, dups: int = 0) -> None:
    assert r.code == 0, r.describe()
    wrong = [k for k, (_, v) in refs.items() if r.env.get(k) != v]
    assert wrong == [], f"{len(wrong)} variables without their own secret, first {wrong[:5]}"
    n = len(refs)
    for i in range(dups):
        assert r.env.get(f"DUP_{i}") == refs[f"W_{(i * 37) % n}"][1], f"DUP_{i} differs"


def request_counts(proxy, tag: str) -> Counter:
    return Counter(p for p in proxy.paths() if f"/{tag}/" in p)


def test_window_refills_while_some_fail_every_secret_right(cs, bao):
    """200 reads and 20 duplicate references; failures (503, 502, a reset in the middle of a body,
    a 1 s stall) land before, at and after the window's edge (64) and at the end, so the window
    refills while failed reads wait for their retry. Every variable gets its own secret, each
    failed read is sent exactly twice, every other exactly once."""
    n = 200
    faults = {0: Action("status", 503), 5: Action("stall_before", seconds=1.0),
              63: Action("status", 502), 64: Action("reset_mid_body"),
              65: Action("status", 503), 100: Action("reset_mid_body"),
              150: Action("status", 500), 199: Action("status", 503)}
    r, proxy, refs = window_run(cs, bao, n, "win200", faults, dups=20)
    assert_every_secret_right(r, refs, dups=20)
    counts = request_counts(proxy, "win200")
    failed = sum(1 for k, a in faults.items() if a.kind != "stall_before")
    assert len(counts) == n, f"{len(counts)} distinct paths read for {n}"
    assert sum(counts.values()) == n + failed, f"{sum(counts.values())} reads for {n} + {failed} retries"
    assert max(counts.values()) <= 2, f"a path read {max(counts.values())} times"
    # A reset after the request was sent, over http://, makes the client ask sys/health once
    # (Client::diagnose_scheme): the only request besides the reads.
    assert proxy.count("sys/health") == 1, proxy.count("sys/health")
    m = LINE.search(r.err)
    assert m and int(m.group(1)) == n and int(m.group(2)) == n + failed + 1, r.describe()


def test_window_1000_reads_with_a_failure_at_500(cs, bao):
    n = 1000
    r, proxy, refs = window_run(cs, bao, n, "win1000", {500: Action("status", 503)})
    assert_every_secret_right(r, refs)
    counts = request_counts(proxy, "win1000")
    assert len(counts) == n and sum(counts.values()) == n + 1, \
        f"{sum(counts.values())} reads of {len(counts)} paths for {n} + 1 retry"


def test_window_permanent_failure_mid_batch_fails_cleanly(cs, bao):
    """An oversized answer at read 100 of 300 fails the run (76) with no partial output, and the
    reads after it are not all sent again."""
    n = 300
    r, proxy, refs = window_run(cs, bao, n, "winbig", {100: Action("oversized", size=40 * 1024 * 1024)},
                                wait=10)
    assert r.code == 76, r.describe()
    assert r.report is None, "the command ran"
    left = [p for p in r.secrets_dir.rglob("*") if not p.is_dir()] if r.secrets_dir.exists() else []
    assert left == []
    counts = request_counts(proxy, "winbig")
    assert max(counts.values()) == 1, f"a read sent {max(counts.values())} times after a permanent failure"


# --- full jitter ------------------------------------------------------------------------------

def test_503_storm_is_no_busy_loop(cs, bao):
    """A server answering 503 to every read for --wait 5s: full jitter may pick a delay of 0 ms,
    but the retries must stay few (the ceiling doubles from 100 ms to 2 s) and cheap in CPU."""
    u = urlparse(bao.addr)
    proxy = FaultProxy(u.hostname, u.port,
                       lambda k, m, p: Action("status", 503) if "secret/data/app" in p else Action())
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        r = cs.run(["run", "--no-manifest", "--", "{probe}"],
                   {"A": "vault:secret/data/app#password", "VAULT_ADDR": proxy.addr}, wait="5s")
    finally:
        proxy.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert r.code == 69, r.describe()
    reads = proxy.count("secret/data/app")
    assert 3 <= reads <= 30, f"{reads} reads in 5 s"
    assert cpu < 1.0, f"{cpu:.2f} s CPU in a 5 s 503 storm"
    assert 4.5 < r.elapsed < 9, f"gave up after {r.elapsed:.1f} s with --wait 5s"


def slow_run(cs, bao, tag: str, extra_env: dict[str, str]):
    """100 reads from a healthy but slow server: each answer takes 0.3 s (the proxy waits, then
    forwards), far below VAULT_CLIENT_TIMEOUT=2s. Over http:// libcurl opens at most 8
    connections (CURLMOPT_MAX_HOST_CONNECTIONS); with 64 transfers in the window 56 waited for a
    connection with their timeout running. The window is now 8 wide until an answer comes over
    HTTP/2 (vault::k_max_connections)."""
    n = 100
    refs = seed(bao, n, tag)
    u = urlparse(bao.addr)
    proxy = FaultProxy(u.hostname, u.port, lambda k, m, p: Action("stall_before", seconds=0.3))
    env = {k: ref for k, (ref, _) in refs.items()}
    env.update(VAULT_ADDR=proxy.addr, VAULT_CLIENT_TIMEOUT="2s", **extra_env)
    try:
        r = cs.run(["run", "-v", "--no-manifest", "--", "{probe}"], env, wait="30s", timeout=150)
    finally:
        proxy.close()
    return r, proxy, refs


def test_slow_healthy_server_without_retries_succeeds(cs, bao):
    """With VAULT_MAX_RETRIES=0 nothing may fail that the server answered in time: each answer
    takes 0.3 s against a 2 s timeout. Failed before the window followed the protocol: the
    transfers queued behind the 8 connections timed out ("Connection timed out after 0
    milliseconds") and the run exited 69."""
    r, proxy, refs = slow_run(cs, bao, "slow0", {"VAULT_MAX_RETRIES": "0"})
    assert_every_secret_right(r, refs)


def test_slow_healthy_server_no_read_sent_twice(cs, bao):
    """With retries allowed the run succeeds, but no read of a server that answers every request
    in 0.3 s may be sent twice (a wasted request; issue 9: exactly N reads)."""
    r, proxy, refs = slow_run(cs, bao, "slowr", {})
    assert_every_secret_right(r, refs)
    counts = request_counts(proxy, "slowr")
    twice = [p for p, c in counts.items() if c > 1]
    assert twice == [], f"{len(twice)} reads sent more than once ({sum(counts.values())} for 100)"
    assert "unavailable" not in r.err, r.describe()


def test_child_inherits_nothing_from_the_loaded_libcurl(cs_tls, bao_tls):
    """A run that loaded libcurl and OpenSSL (8 reads over TLS) hands the child the same
    descriptors, blocked and ignored signals and environment (but the secrets) as a run that
    never loaded them."""
    refs = seed(bao_tls, 8, "child")
    plain = cs_tls.run(["run", "--no-manifest", "--", "{probe}"], {"PLAIN": "value"})
    env = {k: ref for k, (ref, _) in refs.items()}
    env["PLAIN"] = "value"
    loaded = cs_tls.run(["run", "--no-manifest", "--", "{probe}"], env)
    assert plain.code == 0 and loaded.code == 0, plain.describe() + loaded.describe()
    for k, (_, v) in refs.items():
        assert loaded.env[k] == v
    for field in ("open_fds", "sigmask", "sigignored"):
        assert loaded.report[field] == plain.report[field], \
            f"{field}: {loaded.report[field]} after loading libcurl, {plain.report[field]} without"
    extra = set(loaded.env) - set(plain.env) - set(refs)
    assert extra == set(), f"variables added after loading libcurl: {sorted(extra)}"
