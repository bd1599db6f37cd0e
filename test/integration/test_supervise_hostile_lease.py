"""Supervise mode against a hostile or broken Vault (docs/supervise.md, "Renewal and rotation",
"When Vault is down"): the fault proxy gives the KV secret a 3-second renewable lease and then
answers every renewal itself — a TTL of zero, negative, beyond int64, absurdly large, missing,
a string; renewable turning false; an answer carrying a token; another lease id — or answers
500 for longer than the lease. Whatever it answers: crunch-secrets neither crashes nor spins
(its CPU time and the number of requests stay small), never prints a value or a token, renews
or fetches new credentials as documented, and on expiry stops the child (on_expiry: stop)."""

from __future__ import annotations

import json
import os
import time
from urllib.parse import urlparse

import pytest

from faultproxy import FORWARD, Action, FaultProxy
from harness import CANARIES
from supervised import Supervised, wait_for

LEASE_TTL = 3
RUN_SECONDS = 7
CLK_TCK = os.sysconf("SC_CLK_TCK")


def with_lease(counter: list[int]):
    """Rewrites a KV read's answer into a leased secret (a fresh lease id per read)."""
    def rewrite(body: bytes) -> bytes:
        j = json.loads(body)
        if "data" not in j:
            return body
        counter[0] += 1
        j.update(lease_id=f"hostile/creds/lease-{counter[0]}", lease_duration=LEASE_TTL,
                 renewable=True)
        return json.dumps(j).encode()
    return rewrite


def renewal(fields: dict | None) -> Action:
    body = {"request_id": "x", "lease_id": "hostile/creds/lease-1", "renewable": True,
            "data": None, "warnings": None}
    if fields is None:
        return Action(kind="status", status=500, body=b'{"errors":["injected: internal error"]}')
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not ...}
    return Action(kind="status", status=200, body=json.dumps(body).encode())


TOKEN = CANARIES.new("token in a renewal answer")
CASES = {
    "ttl zero": {"lease_duration": 0},
    "ttl negative": {"lease_duration": -5},
    "ttl beyond int64": {"lease_duration": 2**63},
    "ttl huge": {"lease_duration": 2**63 - 1},
    "ttl missing": {"lease_duration": ...},
    "ttl a string": {"lease_duration": "3600"},
    "not renewable any more": {"lease_duration": LEASE_TTL, "renewable": False},
    "auth block with a token": {"lease_duration": LEASE_TTL,
                                "auth": {"client_token": TOKEN, "accessor": "a", "policies": ["root"]}},
    "another lease id": {"lease_duration": LEASE_TTL, "lease_id": "hostile/creds/somebody-else"},
}


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def run_against(cs, bao, decide_renewal, *, child_seconds=RUN_SECONDS, manifest=None):
    u = urlparse(bao.addr)
    reads = [0]
    leased = Action(kind="rewrite", rewrite=with_lease(reads))

    def decide(n, method, path):
        if "secret/data/app" in path:
            return decide_renewal(path, reads[0]) or leased
        if "sys/leases/renew" in path:
            return decide_renewal(path, reads[0]) or FORWARD
        if "sys/leases/revoke" in path:
            return Action(kind="status", status=204, body=b" ")
        return FORWARD

    proxy = FaultProxy(u.hostname, u.port, decide)
    # on_change none: `sleep` would die of the default change signal (SIGHUP) at a rotation.
    manifest = manifest or {"version": 1,
                            "secrets": {"app": {"path": "secret/data/app", "on_change": "none"}},
                            "env": {"X": "${secret:app#password}"}}
    env = {"VAULT_ADDR": proxy.addr, "CRUNCH_SECRETS_MANIFEST_JSON": json.dumps(manifest)}
    try:
        sup = Supervised(cs, ["run", "--supervise", "--verbose", "--wait", "5s", "--",
                              "sleep", str(child_seconds)], env, bao=bao)
        time.sleep(child_seconds - 0.7)
        cpu = cpu_seconds(sup.pid) if sup.proc.poll() is None else None
        code = sup.wait(60)
    finally:
        proxy.close()
    return sup, code, cpu, proxy


def check_calm(sup, cpu, proxy, case):
    assert cpu is not None, f"{case}: crunch-secrets ended before the child: {sup.describe()}"
    # An idle supervisor uses next to nothing; a spinning one a whole core.
    assert cpu < 1.0, f"{case}: crunch-secrets used {cpu:.2f}s CPU in {RUN_SECONDS}s"
    requests = proxy.count("secret/data/app") + proxy.count("sys/leases/renew")
    assert requests < 25, f"{case}: {requests} requests in {RUN_SECONDS}s: {proxy.paths()[-10:]}"
    assert "Traceback" not in sup.err and "terminate called" not in sup.err, sup.describe()


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_renewal_answers(cs, bao, case):
    answer = renewal(CASES[case])
    sup, code, cpu, proxy = run_against(
        cs, bao, lambda path, reads: answer if "sys/leases/renew" in path else None)
    check_calm(sup, cpu, proxy, case)
    assert code == 0, f"{case}: {sup.describe()}"
    renewals = proxy.count("sys/leases/renew")
    reads = proxy.count("secret/data/app")
    if case in ("ttl huge", "ttl beyond int64"):
        # Granted for ages (capped at a year; beyond int64 counts as the largest): nothing more
        # to do during the run.
        assert reads == 1 and renewals == 1, (case, reads, renewals)
    elif case in ("auth block with a token", "another lease id"):
        # An ordinary renewal otherwise: renewed again at 2/3 of 3 s, nothing re-read.
        assert renewals >= 2 and reads == 1, (case, reads, renewals)
    else:
        # The lease cannot be extended: new credentials before the old ones expire.
        assert reads >= 2, f"{case}: no new credentials were fetched ({reads} read(s), " \
                           f"{renewals} renewal(s)): {sup.err[-1500:]}"
    assert "rotated" in sup.err or reads == 1, sup.describe()


@pytest.mark.slow
def test_vault_failing_longer_than_the_lease_stops_the_child(cs, bao):
    """500 for every renewal and re-read after the first read: the lease runs out, the child is
    stopped (on_expiry: stop, SIGTERM → 143), with retries spaced out, not a busy loop."""
    fail = renewal(None)
    sup, code, cpu, proxy = run_against(
        cs, bao, lambda path, reads: fail if reads >= 1 and ("renew" in path or "secret/data" in path)
        else None, child_seconds=12)
    assert code == 143, sup.describe()
    assert "expired before new ones could be fetched" in sup.err, sup.describe()
    requests = proxy.count("secret/data/app") + proxy.count("sys/leases/renew")
    assert requests < 60, f"{requests} requests: {proxy.paths()[-10:]}"
