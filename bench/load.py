#!/usr/bin/env python3
"""Login throughput at cluster scale: P concurrent `crunch-secrets run --auth arvados` processes
(one distinct Running container each, like a workflow fan-out), each with R references, against
one OpenBao over TLS with vault-plugin-auth-arvados and the Arvados API stand-in answering after
a configurable delay (a real API server is not instant). Loopback only; every round is bounded.

Two rounds: the plugin's membership cache off (`cache_ttl` 0) and at the plugin's default. Per
round: p50/p99/max time from each process's start to its child's first instruction, failures
(must be 0), Arvados API calls per login by endpoint (the stand-in's counters), logins and reads
seen by OpenBao (its audit log), and CPU used by OpenBao (with its plugin processes), the stand-in
and the crunch-secrets processes. Started by bench/run.sh; writes load.md and load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench import Bao, log

REPO = Path(__file__).resolve().parents[1]
STANDIN = REPO / "test" / "arvados-standin" / "standin.py"
FIXTURES = REPO / "test" / "arvados-standin" / "fixtures.json"
PLUGIN = "vault-plugin-auth-arvados"
LAB = "zzzzz-j7d0g-labgroup0000001"
ALICE = "zzzzz-tpzed-aliceinlab00001"
ADMIN_TOKEN = "zzzzz-gj3su-admintoken00001"


def fixtures_with_containers(work: Path, count: int) -> tuple[Path, list[str]]:
    """The stand-in's fixtures plus `count` Running containers of alice (a member of lab), each
    with its own container token. Returns the file and the four-part tokens."""
    data = json.loads(FIXTURES.read_text())
    tokens = []
    for i in range(count):
        ctr = f"zzzzz-dz642-loadctr{i:08d}"
        auth = f"zzzzz-gj3su-loadtok{i:08d}"
        secret = secrets.token_hex(20)
        data["containers"].append({
            "uuid": ctr, "state": "Running", "auth_uuid": auth, "runtime_user_uuid": ALICE,
            "owner_uuid": "zzzzz-tpzed-000000000000000", "priority": 1, "command": ["stamp"],
            "output": None, "exit_code": None})
        data["tokens"].append({"uuid": auth, "secret": secret, "owner_uuid": ALICE,
                               "scopes": ["all"], "expires_at": None})
        tokens.append(f"v2/{auth}/{secret}/{ctr}")
    path = work / "fixtures.json"
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return path, tokens


class Standin:
    def __init__(self, work: Path, fixtures: Path, delay_ms: int):
        port_file = work / "standin.port"
        self.log = open(work / "standin.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(STANDIN), "--fixtures", str(fixtures), "--port", "0",
             "--port-file", str(port_file), "--delay-ms", str(delay_ms)],
            stdout=subprocess.DEVNULL, stderr=self.log, stdin=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Arvados stand-in did not start; see {work}/standin.log")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{int(port_file.read_text())}"

    def control(self, method: str, path: str, body=None):
        req = urllib.request.Request(f"{self.url}/_control/{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its live descendants (OpenBao's plugin processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def run_round(args, bao: Bao, standin: Standin, tokens: list[str], work: Path, label: str) -> dict:
    rdir = work / f"round-{label.split()[0]}"
    rdir.mkdir()
    refs = {f"BS_{i}": f"vault:secret/data/lab/s{i}#v" for i in range(args.refs)}
    base_env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "VAULT_ADDR": bao.addr,
                "VAULT_CACERT": str(bao.ca), **refs}
    counters0 = standin.control("GET", "counters")
    audit0 = bao.audit_size()
    cpu_bao0, cpu_standin0 = cpu_seconds(bao.proc.pid), cpu_seconds(standin.proc.pid)
    pids = {}
    fds = []
    start = time.monotonic()
    for i, token in enumerate(tokens):
        env = dict(base_env, ARVADOS_API_TOKEN=token, BENCH_STAMP=str(rdir / f"{i}.stamp"))
        rep = os.open(rdir / f"{i}.launch", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(rdir / f"{i}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        argv = [args.launch, args.crunch_secrets, "run", "--no-manifest", "--auth", "arvados",
                "--arvados-role", "lab", "--wait", f"{args.budget:.0f}s", "--", args.stamp]
        pid = os.posix_spawn(args.launch, argv, env, setsid=True,
                             file_actions=[(os.POSIX_SPAWN_DUP2, rep, 1), (os.POSIX_SPAWN_DUP2, err, 2)])
        os.close(rep)
        os.close(err)
        pids[pid] = i
    spawned = time.monotonic() - start

    def kill_all():
        for pid in list(pids):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    timer = threading.Timer(args.budget + 30, kill_all)
    timer.start()
    try:
        for pid in list(pids):
            os.waitpid(pid, 0)
    finally:
        timer.cancel()
    wall = time.monotonic() - start
    cpu_bao = cpu_seconds(bao.proc.pid) - cpu_bao0
    cpu_standin = cpu_seconds(standin.proc.pid) - cpu_standin0

    times, cpu_cs, failures, reasons = [], 0.0, 0, {}
    for i in range(len(tokens)):
        fields = (rdir / f"{i}.launch").read_text().split()
        stamp = rdir / f"{i}.stamp"
        ok = len(fields) == 5 and int(fields[1]) == 0 and stamp.exists()
        if ok:
            t_child, env_count, _ = (int(x) for x in stamp.read_text().split())
            ok = env_count == args.refs
        if not ok:
            failures += 1
            last = (rdir / f"{i}.log").read_text(errors="replace").strip().splitlines()[-1:]
            reason = last[0][:200] if last else f"launch report {fields}"
            reasons[reason] = reasons.get(reason, 0) + 1
            continue
        times.append((t_child - int(fields[0])) / 1e6)
        cpu_cs += (int(fields[2]) + int(fields[3])) / 1e6
    counters1 = standin.control("GET", "counters")
    calls = {k: counters1.get(k, 0) - counters0.get(k, 0) for k in counters1}
    calls = {k: v for k, v in sorted(calls.items()) if v}
    requests = bao.audit_requests(audit0)
    logins = sum(1 for p in requests if p == "auth/arvados/login")
    reads = sum(1 for p in requests if p.startswith("secret/data/"))
    n = len(tokens)
    return {
        "cache_ttl": label,
        "processes": n, "refs": args.refs, "delay_ms": args.delay_ms,
        "ok": len(times), "failures": failures, "failure_reasons": reasons,
        "spawn_s": spawned, "wall_s": wall,
        "time_to_exec_ms": {"p50": percentile(times, 50), "p99": percentile(times, 99),
                            "min": min(times), "max": max(times)} if times else None,
        "arvados_calls": calls,
        "arvados_calls_per_login": sum(calls.values()) / max(1, logins),
        "openbao_requests": len(requests), "logins": logins, "reads": reads,
        "cpu_s": {"openbao": cpu_bao, "standin": cpu_standin, "crunch_secrets": cpu_cs},
    }


def write_markdown(result: dict, path: Path) -> None:
    m = result["meta"]
    out = [
        "# Login throughput at cluster scale",
        "",
        "Generated by `bash bench/run.sh" + (" --quick" if m["quick"] else "") + f"` on {m['date']}; "
        "do not edit by hand. Method: [README.md](README.md#load-test).",
        "",
        f"{m['processes']} concurrent `crunch-secrets run --auth arvados` processes, each with "
        f"{m['refs']} references and its own Running container's token, against one OpenBao "
        f"{m['openbao']} over TLS with vault-plugin-auth-arvados, and the Arvados stand-in "
        f"answering every API call after {m['delay_ms']} ms. {m['cpus']} CPUs, load average "
        f"{m['load_before']} before / {m['load_after']} after.",
        "",
        "| plugin `cache_ttl` | ok / failures | time to exec p50 / p99 / max | all done | Arvados calls per login | OpenBao logins / reads | CPU: OpenBao / stand-in / crunch-secrets |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rounds"]:
        t = r["time_to_exec_ms"] or {"p50": 0, "p99": 0, "max": 0}
        out.append(
            f"| {r['cache_ttl']} | {r['ok']} / {r['failures']} | {t['p50']:.0f} / {t['p99']:.0f} / "
            f"{t['max']:.0f} ms | {r['wall_s']:.1f} s | {r['arvados_calls_per_login']:.2f} "
            f"| {r['logins']} / {r['reads']} | {r['cpu_s']['openbao']:.2f} / {r['cpu_s']['standin']:.2f} / "
            f"{r['cpu_s']['crunch_secrets']:.2f} s |")
    out += ["", "Arvados API calls by endpoint (all logins of the round):", ""]
    for r in result["rounds"]:
        calls = ", ".join(f"`{k}` {v}" for k, v in r["arvados_calls"].items())
        out.append(f"- `cache_ttl` {r['cache_ttl']}: {calls}")
        if r["failure_reasons"]:
            reasons = "; ".join(f"{v}× {k}" for k, v in r["failure_reasons"].items())
            out.append(f"  - failures: {reasons}")
    out.append("")
    path.write_text("\n".join(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bao", required=True)
    ap.add_argument("--plugin", required=True, help="vault-plugin-auth-arvados binary")
    ap.add_argument("--crunch-secrets", required=True)
    ap.add_argument("--stamp", required=True)
    ap.add_argument("--launch", required=True)
    ap.add_argument("--processes", type=int, default=200)
    ap.add_argument("--refs", type=int, default=10)
    ap.add_argument("--delay-ms", type=int, default=20)
    ap.add_argument("--budget", type=float, default=120, help="seconds a round may take")
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cs-load-"))
    plugin_dir = work / "plugins"
    plugin_dir.mkdir()
    shutil.copy2(args.plugin, plugin_dir / PLUGIN)
    fixtures, tokens = fixtures_with_containers(work, args.processes)
    admin = next(t for t in json.loads(FIXTURES.read_text())["tokens"] if t["uuid"] == ADMIN_TOKEN)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    bao = Bao(args.bao, work, plugin_dir=str(plugin_dir))
    standin = None
    try:
        standin = Standin(work, fixtures, args.delay_ms)
        bao.start()
        log(f"load: OpenBao {bao.addr}, stand-in {standin.url} ({args.delay_ms} ms per answer)")
        bao.api("POST", "sys/auth/arvados", {"type": PLUGIN})
        bao.api("POST", "auth/arvados/config", {
            "arvados_api_host": standin.url, "privileged_token": f"v2/{ADMIN_TOKEN}/{admin['secret']}",
            "cluster_id": "zzzzz", "allowed_policies": "arvados-*"})
        bao.api("PUT", "sys/policies/acl/arvados-lab",
                {"policy": 'path "secret/data/lab/*" { capabilities = ["read"] }\n'})
        bao.api("POST", "auth/arvados/role/lab", {"bound_group_uuids": [LAB],
                                                  "token_policies": ["arvados-lab"], "token_ttl": "10m"})
        deadline = time.monotonic() + 30
        while bao.call("POST", "secret/data/lab/s0", {"data": {"v": "x"}})[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("KV v2 not writable after 30 s")
            time.sleep(0.2)
        for i in range(args.refs):
            bao.api("POST", f"secret/data/lab/s{i}", {"data": {"v": secrets.token_hex(16)}})
        rounds = []
        # The plugin's default first (its config never set cache_ttl), then the cache off.
        for label in ("default", "0"):
            if label == "0":
                bao.api("POST", "auth/arvados/config", {"cache_ttl": 0})
            log(f"load: {args.processes} processes, cache_ttl {label}")
            r = run_round(args, bao, standin, tokens, work, label)
            rounds.append(r)
            t = r["time_to_exec_ms"] or {}
            log(f"load: cache_ttl {label}: {r['ok']} ok, {r['failures']} failed, p50 {t.get('p50', 0):.0f} ms, "
                f"p99 {t.get('p99', 0):.0f} ms, {r['arvados_calls_per_login']:.2f} Arvados calls per login, "
                f"CPU OpenBao {r['cpu_s']['openbao']:.1f} s, stand-in {r['cpu_s']['standin']:.2f} s")
        version = subprocess.run([args.bao, "version"], capture_output=True, text=True).stdout.split()
        result = {
            "meta": {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "quick": args.quick,
                     "processes": args.processes, "refs": args.refs, "delay_ms": args.delay_ms,
                     "openbao": version[1] if len(version) > 1 else "?", "cpus": os.cpu_count(),
                     "load_before": load_before,
                     "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg())},
            "rounds": rounds,
        }
        (out / "load.json").write_text(json.dumps(result, indent=1) + "\n")
        write_markdown(result, out / "load.md")
        log(f"load: wrote {out}/load.md")
        failed = sum(r["failures"] for r in rounds)
        if failed:
            log(f"load: error: {failed} process(es) failed")
            return 1
        return 0
    finally:
        bao.stop()
        if standin:
            standin.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
