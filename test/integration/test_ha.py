"""A real 3-node OpenBao Raft cluster (non-dev mode: init, unseal, join) with
vault-plugin-auth-arvados registered in its catalog and present on every node. Run with
`bash test/run-all.sh --ha` (these tests are deselected otherwise: starting a cluster takes
tens of seconds).

crunch-secrets is given one node's address (VAULT_ADDR), as Vault's own clients are; a standby
forwards requests to the active node, and while the cluster elects a new leader it answers
5xx, which crunch-secrets retries until --wait runs out.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from faultproxy import Action, FaultProxy
from ha import RaftCluster
import test_arvados_plugin as arvp
from harness import CANARIES, REPO_ROOT, Runner, fail

pytestmark = pytest.mark.ha

PLUGIN_NAME = "vault-plugin-auth-arvados"
TIMINGS: dict[str, float] = {}


def build_plugin(target: Path) -> None:
    given = os.environ.get("ARVADOS_PLUGIN_BIN")
    if given:
        shutil.copy2(given, target)
    else:
        # The plugin's main package is at the module root or, after the layout change, in
        # cmd/vault-plugin-auth-arvados.
        src = REPO_ROOT / PLUGIN_NAME
        pkg = "./cmd/" + PLUGIN_NAME if (src / "cmd" / PLUGIN_NAME).is_dir() else "."
        env = dict(os.environ, GOFLAGS="-mod=mod", GOSUMDB="off")
        go = shutil.which("go") or "/usr/local/go/bin/go"
        proc = subprocess.run([go, "build", "-trimpath", "-o", str(target), pkg], cwd=src, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
        if proc.returncode != 0:
            fail("building the plugin failed:\n" + proc.stdout.decode(errors="replace")[-3000:])
    os.chmod(target, 0o755)


@pytest.fixture(scope="module")
def cluster():
    plugins = Path(tempfile.mkdtemp(prefix="cs-raft-plugins-"))
    build_plugin(plugins / PLUGIN_NAME)
    c = RaftCluster(plugins)
    standin = None
    try:
        c.start()
        TIMINGS["cluster start (3 nodes, init, unseal, join)"] = c.timings["start"]
        c.api("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
        c.values = {}
        for i in range(20):
            c.values[i] = CANARIES.new(f"raft secret {i}")
        deadline = time.monotonic() + 30
        for i, v in c.values.items():
            while True:
                try:
                    c.api("POST", f"secret/data/app{i}", {"data": {"v": v}})
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        c.api("PUT", "sys/policies/acl/reader", {"policy": 'path "secret/data/*" { capabilities = ["read"] }'})
        tok = c.api("POST", "auth/token/create", {"policies": ["reader"], "ttl": "1h"})["auth"]["client_token"]
        c.reader_token = CANARIES.add("raft reader token", tok)
        sha = hashlib.sha256((plugins / PLUGIN_NAME).read_bytes()).hexdigest()
        c.api("PUT", f"sys/plugins/catalog/auth/{PLUGIN_NAME}", {"sha256": sha, "command": PLUGIN_NAME})
        c.api("POST", "sys/auth/arvados", {"type": PLUGIN_NAME})
        standin = arvp.Standin()
        c.api("POST", "auth/arvados/config", {
            "arvados_api_host": standin.url,
            "privileged_token": arvp.plain_token(arvp.ADMIN_TOKEN_UUID),
            "cluster_id": "zzzzz",
            "allowed_policies": "arvados-*",
            "cache_ttl": 0,
        })
        c.api("PUT", "sys/policies/acl/arvados-lab", {"policy": 'path "secret/data/*" { capabilities = ["read"] }'})
        c.api("POST", "auth/arvados/role/lab", {"bound_group_uuids": [arvp.LAB], "token_policies": ["arvados-lab"]})
        yield c
    finally:
        if standin is not None:
            standin.stop()
        c.close()
        shutil.rmtree(plugins, ignore_errors=True)
        if TIMINGS:
            print("\nHA timings: " + json.dumps({k: round(v, 2) for k, v in TIMINGS.items()}))


@pytest.fixture
def hcs(cluster):
    """A runner; afterwards every node is restarted and unsealed as needed, whatever the test
    did to them, and the node logs are scanned for canaries."""
    heal(cluster)
    r = Runner(None)
    yield r
    r.cleanup()
    heal(cluster)
    cluster.scan_logs()


def manifest(d: Path, n: int) -> Path:
    p = d / "m.yml"
    p.write_text(yaml.safe_dump({"version": 1, "env": {f"S{i}": f"${{vault:secret/data/app{i}#v}}" for i in range(n)}}))
    return p


def run_all(hcs, cluster, addr: str, n: int = 20, wait: str = "60s"):
    d = hcs.tmpfs_dir()
    return hcs.run(["run", "-m", str(manifest(d, n)), "--", "{probe}"],
                   {"VAULT_ADDR": addr, "VAULT_TOKEN": cluster.reader_token}, bao=None, token=None,
                   wait=wait, timeout=120)


def check_values(r, cluster, n: int = 20) -> None:
    assert r.code == 0, r.describe()
    for i in range(n):
        assert r.env[f"S{i}"] == cluster.values[i], f"S{i} has the wrong value"


def heal(cluster) -> None:
    """Restarts and unseals every node that is down or sealed, then waits for a leader and two
    standbys."""
    for n in cluster.nodes:
        if not n.alive():
            n.start()
    for n in cluster.nodes:
        cluster.wait_for(lambda n=n: n.health() in (200, 429) or cluster._try_unseal(n), f"{n.name} unsealed", 60)
    cluster.wait_for(lambda: cluster.active() is not None and len(cluster.standbys()) == 2, "a healthy cluster", 90)


def test_read_through_a_standby(hcs, cluster):
    standby = cluster.standbys()[0]
    r = run_all(hcs, cluster, standby.addr)
    check_values(r, cluster)
    TIMINGS["20 reads through a standby"] = r.elapsed


# During a failover a standby answers 307 (a redirect to the leader it last knew). crunch-secrets
# never follows it (the token would go to whatever host it names) but retries at the configured
# address, until the standby forwards to the new leader.


def test_kill_active_mid_batch(hcs, cluster):
    active = cluster.active()
    standby = cluster.standbys()[0]
    u = urlparse(standby.addr)
    # Hold the reads for a moment so the active node dies while they are in flight.
    proxy = FaultProxy(u.hostname, u.port,
                       lambda n, m, p: Action("stall_before", seconds=1.0) if "secret/data" in p else Action())
    killer = threading.Timer(0.5, active.kill)
    try:
        killer.start()
        r = run_all(hcs, cluster, proxy.addr)
    finally:
        killer.cancel()
        proxy.close()
    check_values(r, cluster)
    assert not active.alive()
    TIMINGS["kill active mid-batch: run"] = r.elapsed


def test_kill_active_mid_login(hcs, cluster):
    # AppRole logins are not retried once sent (a secret id may be single use), so the
    # mid-login failover uses the Arvados login: the standby forwards it to the active node,
    # which dies while it is in flight; crunch-secrets retries it and reaches the new leader.
    active = cluster.active()
    standby = cluster.standbys()[0]
    u = urlparse(standby.addr)
    proxy = FaultProxy(u.hostname, u.port,
                       lambda n, m, p: Action("stall_before", seconds=1.0) if n == 0 else Action())
    killer = threading.Timer(0.3, active.kill)
    try:
        killer.start()
        d = hcs.tmpfs_dir()
        r = hcs.run(["run", "-m", str(manifest(d, 3)), "--auth", "arvados", "--arvados-role", "lab", "--", "{probe}"],
                    {"VAULT_ADDR": proxy.addr, "ARVADOS_API_TOKEN": arvp.container_token(arvp.ALICE_RUN1)},
                    bao=None, token=None, wait="60s", timeout=120)
    finally:
        killer.cancel()
        proxy.close()
    assert not active.alive()
    logins = [p for p in proxy.paths() if p.endswith("/login")]
    check_values(r, cluster, 3)
    assert len(logins) >= 1, "no login went through the proxy"
    TIMINGS["kill active mid-login: run"] = r.elapsed


def test_one_node_sealed(hcs, cluster):
    victim = cluster.standbys()[-1]
    victim.kill()
    victim.start()  # comes back sealed
    assert victim.health() == 503, f"{victim.name} should be sealed"
    healthy = next(n for n in cluster.nodes if n is not victim)
    r = run_all(hcs, cluster, healthy.addr)
    check_values(r, cluster)
    # Through the sealed node: unsealed two seconds into the run.
    unsealer = threading.Timer(2.0, lambda: cluster._try_unseal(victim))
    unsealer.start()
    try:
        r = run_all(hcs, cluster, victim.addr)
    finally:
        unsealer.cancel()
    check_values(r, cluster)
    assert r.elapsed >= 1.5, f"finished in {r.elapsed:.1f}s, before the node was unsealed"
    TIMINGS["one node sealed, unsealed after 2 s: run"] = r.elapsed


def test_all_sealed_then_unsealed(hcs, cluster):
    for n in cluster.nodes:
        n.kill()
    for n in cluster.nodes:
        n.start()
    assert all(n.health() == 503 for n in cluster.nodes)

    def unseal_all():
        for n in cluster.nodes:
            cluster._try_unseal(n)

    unsealer = threading.Timer(3.0, unseal_all)
    unsealer.start()
    try:
        r = run_all(hcs, cluster, cluster.nodes[1].addr, wait="90s")
    finally:
        unsealer.cancel()
    check_values(r, cluster)
    TIMINGS["all sealed, unsealed after 3 s: run"] = r.elapsed


def test_all_sealed_past_the_deadline(hcs, cluster):
    for n in cluster.nodes:
        n.kill()
    for n in cluster.nodes:
        n.start()
    r = run_all(hcs, cluster, cluster.nodes[0].addr, wait="3s")
    assert r.code == 69, r.describe()
    assert r.report is None
    assert r.elapsed < 3 + 5, f"gave up after {r.elapsed:.1f}s"
    # One line per failed read, each a complete error line; the info lines announcing each retry
    # (README, "Vault connection") are not errors.
    lines = [ln for ln in r.err.splitlines() if ln.strip() and not ln.startswith("crunch-secrets: info: ")]
    assert lines, r.describe()
    assert all(ln.startswith("crunch-secrets: error: ") for ln in lines), r.describe()
