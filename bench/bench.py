#!/usr/bin/env python3
"""Side-by-side benchmark of crunch-secrets and the usual alternatives against one real OpenBao
server over TLS on loopback. Started by bench/run.sh, which installs and builds what this needs
and passes the paths in; see docs/bench/README.md for the method.

For every N in the list, N KV v2 secrets (secret/bench/s0..s<N-1>, one field "v") are fetched by
each tool, which then starts the same child, bench/stamp.c. The child writes the monotonic time
of its start and how many secrets reached it (BS_* variables or rendered files): a run in which
fewer than N arrived fails the benchmark. Per tool and N: one warm-up run (also the correctness
check and the time-budget probe), one run under `strace -f -e connect` to count connections,
then R timed runs, the tools taking turns in an order that rotates from run to run.

Figures per run: wall time from spawn to the child's first instruction (CLOCK_MONOTONIC on both
sides), CPU time and peak RSS of the whole process tree (wait4: user + system time of the tool
and every descendant it reaped; the largest resident set of any process in the tree), and the
requests OpenBao saw (lines of its file audit log). Secret values are random, used only here,
and never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

READ_POLICY = 'path "secret/data/bench/*" { capabilities = ["read"] }\n'


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# OpenBao


def free_port_pair() -> int:
    """A loopback port P with P+1 (the dev server's cluster port) free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free loopback port pair")


class Bao:
    """One `bao server -dev -dev-tls` with a file audit device declared in its config file
    (OpenBao 2.x refuses to enable audit devices through the API)."""

    def __init__(self, bao_bin: str, workdir: Path, plugin_dir: str | None = None):
        self.bin = bao_bin
        self.workdir = workdir
        self.port = free_port_pair()
        self.addr = f"https://127.0.0.1:{self.port}"
        self.root = "root-" + secrets.token_hex(16)
        self.tlsdir = workdir / "tls"
        self.ca = self.tlsdir / "vault-ca.pem"
        self.audit = workdir / "audit.log"
        self.config = workdir / "server.hcl"
        self.plugin_dir = plugin_dir
        self.proc: subprocess.Popen | None = None
        self.ctx: ssl.SSLContext | None = None

    def start(self) -> "Bao":
        self.tlsdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            'audit "file" "bench" {\n  options {\n    file_path = "%s"\n  }\n}\n' % self.audit)
        args = [self.bin, "server", "-dev", "-dev-tls", f"-dev-tls-cert-dir={self.tlsdir}",
                f"-dev-root-token-id={self.root}", f"-dev-listen-address=127.0.0.1:{self.port}",
                "-dev-no-store-token", f"-config={self.config}", "-log-level=warn"]
        if self.plugin_dir:
            args.append(f"-dev-plugin-dir={self.plugin_dir}")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.workdir)
        with open(self.workdir / "server.log", "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, cwd=self.workdir,
                                         start_new_session=True)
        deadline = time.monotonic() + 60
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bao exited with {self.proc.returncode}; see {self.workdir}/server.log")
            if self.ca.exists():
                try:
                    self.ctx = ssl.create_default_context(cafile=str(self.ca))
                    status, _ = self.call("GET", "sys/health", token=None)
                    if status == 200:
                        return self
                    last = f"health {status}"
                except (OSError, ssl.SSLError) as e:
                    last = str(e)
            time.sleep(0.1)
        raise RuntimeError(f"OpenBao not ready after 60 s ({last})")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def call(self, method: str, path: str, body=None, token: str | None = "root"):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.addr}/v1/{path}", data=data, method=method)
        if token:
            req.add_header("X-Vault-Token", self.root if token == "root" else token)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.ctx) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        return status, (json.loads(raw) if raw else None)

    def api(self, method: str, path: str, body=None, token: str | None = "root"):
        status, resp = self.call(method, path, body, token)
        if status not in (200, 204):
            errors = resp.get("errors") if isinstance(resp, dict) else resp
            raise RuntimeError(f"OpenBao {method} {path}: HTTP {status}: {errors}")
        return resp

    def audit_size(self) -> int:
        try:
            return self.audit.stat().st_size
        except FileNotFoundError:
            return 0

    def audit_requests(self, start: int) -> list[str]:
        """Paths of the requests logged since byte offset `start`."""
        with open(self.audit, "rb") as f:
            f.seek(start)
            data = f.read()
        paths = []
        for line in data.splitlines():
            entry = json.loads(line)
            if entry.get("type") == "request":
                paths.append(entry.get("request", {}).get("path", "?"))
        return paths


def seed(bao: Bao, n: int) -> dict:
    """KV v2 secrets, a read-only policy, a token holding it, and an AppRole with it."""
    deadline = time.monotonic() + 30
    while True:  # Right after mounting, KV v2 answers 400 "Upgrading..." for a moment.
        status, _ = bao.call("POST", "secret/data/bench/probe", {"data": {"v": "x"}})
        if status == 200:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"KV v2 not writable after 30 s (HTTP {status})")
        time.sleep(0.2)
    for i in range(n):
        bao.api("POST", f"secret/data/bench/s{i}", {"data": {"v": secrets.token_hex(16)}})
    bao.api("PUT", "sys/policies/acl/bench-read", {"policy": READ_POLICY})
    token = bao.api("POST", "auth/token/create",
                    {"policies": ["bench-read"], "ttl": "4h", "display_name": "bench"})["auth"]["client_token"]
    bao.api("POST", "sys/auth/approle", {"type": "approle"})
    bao.api("POST", "auth/approle/role/bench",
            {"token_policies": ["bench-read"], "secret_id_num_uses": 0, "token_ttl": "1h"})
    role_id = bao.api("GET", "auth/approle/role/bench/role-id")["data"]["role_id"]
    secret_id = bao.api("POST", "auth/approle/role/bench/secret-id")["data"]["secret_id"]
    return {"token": token, "role_id": role_id, "secret_id": secret_id}


def classify(path: str) -> str:
    if path.startswith("auth/") and path.endswith("/login"):
        return "login"
    if path.startswith("secret/data/"):
        return "read"
    if path.startswith("auth/token/"):
        return path[len("auth/token/"):]
    if path.startswith("sys/internal/ui/mounts"):
        return "mount preflight"
    return path


# ---------------------------------------------------------------------------------------------
# Tools


@dataclass
class Invocation:
    argv: list[str]
    env: dict[str, str]
    files_dir: Path | None = None  # rendered files the child must find (file-based tools)


@dataclass
class Tool:
    key: str
    label: str
    binary: str  # the executable whose size is reported
    make: object  # callable(n) -> Invocation | None (None: not applicable at this N)
    note: str = ""


class Tools:
    def __init__(self, args, bao: Bao, creds: dict, work: Path):
        self.a = args
        self.bao = bao
        self.creds = creds
        self.work = work
        self.shm = Path(tempfile.mkdtemp(prefix="cs-bench-", dir="/dev/shm"))
        self.base_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                         "HOME": str(work / "home"), "VAULT_ADDR": bao.addr,
                         "VAULT_CACERT": str(bao.ca)}
        (work / "home").mkdir(exist_ok=True)
        self.token_file = work / "token"
        self.token_file.write_text(creds["token"])
        self.token_file.chmod(0o600)

    def cleanup(self) -> None:
        shutil.rmtree(self.shm, ignore_errors=True)

    def env(self, **extra) -> dict[str, str]:
        e = dict(self.base_env)
        e.update(extra)
        return e

    def refs(self, n: int) -> dict[str, str]:
        return {f"BS_{i}": f"vault:secret/data/bench/s{i}#v" for i in range(n)}

    def files_dir(self, key: str, n: int) -> Path:
        d = self.shm / f"{key}-{n}"
        d.mkdir(exist_ok=True)
        return d

    def all(self) -> list[Tool]:
        a = self.a
        tools = [
            Tool("child", "the child alone (exec, no secrets)", a.stamp, self.child),
            Tool("cs-token", "crunch-secrets, token", a.crunch_secrets, self.cs_token),
            Tool("cs-approle", "crunch-secrets, AppRole login", a.crunch_secrets, self.cs_approle),
            Tool("curl", "curl floor (HTTP/2, one connection)", shutil.which("curl") or "curl", self.curl),
            Tool("hvac", "Python hvac", a.python, self.hvac),
            Tool("agent", "bao agent one-shot", a.bao, self.agent),
            Tool("cli", "bao kv get loop", a.bao, self.cli),
        ]
        if a.consul_template:
            tools.insert(5, Tool("consul-template", "consul-template -once", a.consul_template,
                                 self.consul_template))
        return tools

    def child(self, n: int) -> Invocation:
        return Invocation([self.a.stamp], self.env())

    def cs_token(self, n: int) -> Invocation:
        return Invocation([self.a.crunch_secrets, "run", "--no-manifest", "--", self.a.stamp],
                          self.env(VAULT_TOKEN=self.creds["token"], **self.refs(n)))

    def cs_approle(self, n: int) -> Invocation:
        return Invocation([self.a.crunch_secrets, "run", "--no-manifest", "--auth", "approle", "--",
                           self.a.stamp],
                          self.env(CRUNCH_SECRETS_ROLE_ID=self.creds["role_id"],
                                   CRUNCH_SECRETS_SECRET_ID=self.creds["secret_id"], **self.refs(n)))

    def curl(self, n: int) -> Invocation:
        if n == 0:
            return Invocation([self.a.stamp], self.env())
        cfg = self.work / f"curl-{n}.cfg"
        if not cfg.exists():
            lines = ["http2", "fail", "silent", "show-error", f'cacert = "{self.bao.ca}"',
                     f'header = "X-Vault-Token: {self.creds["token"]}"']
            for i in range(n):
                lines += [f'url = "{self.bao.addr}/v1/secret/data/bench/s{i}"', 'output = "/dev/null"']
            cfg.write_text("\n".join(lines) + "\n")
            cfg.chmod(0o600)
        # --parallel multiplexes every transfer over one HTTP/2 connection (it waits for the
        # first connection to learn that the server multiplexes).
        script = f'curl --parallel --parallel-max 100 -K "$1" && exec "$2"'
        return Invocation(["/bin/sh", "-c", script, "sh", str(cfg), self.a.stamp], self.env(),
                          None)

    def hvac(self, n: int) -> Invocation:
        return Invocation([self.a.python, str(Path(__file__).with_name("hvac_read.py")), str(n),
                           self.a.stamp], self.env(VAULT_TOKEN=self.creds["token"]))

    def template(self, i: int) -> str:
        return '{{ with secret "secret/data/bench/s%d" }}{{ .Data.data.v }}{{ end }}' % i

    def agent(self, n: int) -> Invocation:
        out = self.files_dir("agent", n)
        cfg = self.work / f"agent-{n}.hcl"
        if not cfg.exists():
            # Without a template the agent needs a sink: it then only logs in.
            sink = ('\n  sink "file" {\n    config = {\n'
                    f'      path = "{self.shm / "agent-sink-token"}"\n    }}\n  }}' if n == 0 else "")
            parts = [
                f'vault {{\n  address = "{self.bao.addr}"\n  ca_cert = "{self.bao.ca}"\n}}',
                'auto_auth {\n  method "token_file" {\n    config = {\n'
                f'      token_file_path = "{self.token_file}"\n    }}\n  }}{sink}\n}}',
                "exit_after_auth = true",
                "template_config {\n  exit_on_retry_failure = true\n}",
            ]
            for i in range(n):
                parts.append("template {\n  contents = %s\n  destination = %s\n}"
                             % (json.dumps(self.template(i)), json.dumps(str(out / f"s{i}"))))
            cfg.write_text("\n".join(parts) + "\n")
        script = '"$1" agent -log-level=error -config="$2" && exec "$3"'
        return Invocation(["/bin/sh", "-c", script, "sh", self.a.bao, str(cfg), self.a.stamp],
                          self.env(BENCH_FILES_DIR=str(out)), out)

    def consul_template(self, n: int) -> Invocation | None:
        if n == 0:
            return None  # Nothing to render: consul-template refuses to start without a template.
        out = self.files_dir("ct", n)
        cfg = self.work / f"ct-{n}.hcl"
        if not cfg.exists():
            parts = [
                'log_level = "err"',
                f'vault {{\n  address = "{self.bao.addr}"\n  renew_token = false\n'
                f'  ssl {{\n    enabled = true\n    ca_cert = "{self.bao.ca}"\n  }}\n}}',
            ]
            for i in range(n):
                parts.append("template {\n  contents = %s\n  destination = %s\n}"
                             % (json.dumps(self.template(i)), json.dumps(str(out / f"s{i}"))))
            cfg.write_text("\n".join(parts) + "\n")
        script = '"$1" -once -config="$2" && exec "$3"'
        return Invocation(["/bin/sh", "-c", script, "sh", self.a.consul_template, str(cfg),
                           self.a.stamp],
                          self.env(VAULT_TOKEN=self.creds["token"], BENCH_FILES_DIR=str(out)), out)

    def cli(self, n: int) -> Invocation:
        script = ('i=0; while [ "$i" -lt "$1" ]; do '
                  'v=$("$2" kv get -mount=secret -field=v "bench/s$i") || exit 1; '
                  'export "BS_$i=$v"; i=$((i + 1)); done; exec "$3"')
        return Invocation(["/bin/sh", "-c", script, "sh", str(n), self.a.bao, self.a.stamp],
                          self.env(VAULT_TOKEN=self.creds["token"]))


# ---------------------------------------------------------------------------------------------
# Running


class RunFailed(Exception):
    pass


class OverBudget(Exception):
    pass


@dataclass
class Sample:
    wall_ms: float
    cpu_ms: float
    rss_kib: int
    requests: list[str] = field(default_factory=list)


def spawn(launch: str, inv: Invocation, logfile: Path, budget: float, stamp_file: Path,
          wrapper: list[str] | None = None) -> tuple[int, int, float, int]:
    """Runs the invocation under bench/launch.c (killing its process group after `budget`
    seconds) and returns (t0 ns, wait status, CPU ms, max RSS KiB) as launch measured them."""
    env = dict(inv.env)
    env["BENCH_STAMP"] = str(stamp_file)
    argv = [launch] + (wrapper or []) + inv.argv
    report = logfile.with_suffix(".launch")
    fd_rep = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    fd_out = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    fd_null = os.open("/dev/null", os.O_RDONLY)
    actions = [(os.POSIX_SPAWN_DUP2, fd_null, 0), (os.POSIX_SPAWN_DUP2, fd_rep, 1),
               (os.POSIX_SPAWN_DUP2, fd_out, 2)]
    timed_out = threading.Event()
    pid = os.posix_spawn(launch, argv, env, file_actions=actions, setsid=True)
    for fd in (fd_rep, fd_out, fd_null):
        os.close(fd)

    def kill():
        timed_out.set()
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(budget, kill)
    timer.start()
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        timer.cancel()
    # Whatever the tool left running in its group (nothing, normally) goes too.
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if timed_out.is_set():
        raise OverBudget()
    fields = report.read_text().split()
    if status != 0 or len(fields) != 5:
        raise RunFailed(f"launch failed (status {status}); see {logfile}")
    t0, wstatus, utime, stime, rss = (int(x) for x in fields)
    return t0, wstatus, (utime + stime) / 1000, rss


class Runner:
    def __init__(self, args, bao: Bao, tools: Tools, work: Path):
        self.a = args
        self.bao = bao
        self.tools = tools
        self.work = work
        self.stamp_file = work / "stamp"
        self.counter = 0

    def once(self, tool: Tool, n: int, inv: Invocation, budget: float,
             wrapper: list[str] | None = None) -> Sample:
        if inv.files_dir:
            for p in inv.files_dir.iterdir():
                p.unlink()
        self.stamp_file.unlink(missing_ok=True)
        logfile = self.work / f"{tool.key}-{n}.log"
        audit0 = self.bao.audit_size()
        t0, status, cpu, rss = spawn(self.a.launch, inv, logfile, budget, self.stamp_file, wrapper)
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0 or not self.stamp_file.exists():
            tail = logfile.read_text(errors="replace")[-1500:]
            raise RunFailed(f"{tool.label} at N={n}: wait status {status}, no child report; log tail:\n{tail}")
        stamp_ns, env_count, file_count = (int(x) for x in self.stamp_file.read_text().split())
        got = file_count if inv.files_dir else env_count
        want = n if tool.key != "curl" else 0  # curl only fetches; it delivers nothing.
        if tool.key == "child":
            want = 0
        if got != want:
            raise RunFailed(f"{tool.label} at N={n}: the child received {got} secrets, expected {want}")
        requests = self.bao.audit_requests(audit0)
        return Sample((stamp_ns - t0) / 1e6, cpu, rss, requests)

    def connections(self, tool: Tool, n: int, inv: Invocation, budget: float) -> int:
        trace = self.work / "strace.out"
        wrapper = [self.a.strace, "-f", "-qq", "-e", "trace=connect", "-o", str(trace)]
        self.once(tool, n, inv, budget, wrapper)
        port = f"sin_port=htons({self.bao.port})"
        return sum(1 for line in trace.read_text().splitlines() if port in line and "connect(" in line)


# ---------------------------------------------------------------------------------------------
# Report


def fmt_ms(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 100:
        return f"{v:.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    return f"{v:.2f} ms"


def fmt_size(b: int) -> str:
    return f"{b / 1e6:.1f} MB" if b >= 1e6 else f"{b / 1e3:.0f} kB"


def summarize(samples: list[Sample]) -> dict:
    walls = [s.wall_ms for s in samples]
    return {
        "runs": len(samples),
        "wall_ms": {"median": statistics.median(walls), "min": min(walls), "max": max(walls)},
        "cpu_ms": statistics.median(s.cpu_ms for s in samples),
        "rss_kib": statistics.median(s.rss_kib for s in samples),
        "rss_kib_max": max(s.rss_kib for s in samples),
        "requests": statistics.median(len(s.requests) for s in samples),
    }


def write_markdown(results: dict, path: Path) -> None:
    meta = results["meta"]
    out = [
        "# crunch-secrets benchmark results",
        "",
        "Generated by `bash bench/run.sh" + (" --quick" if meta["quick"] else "") + "`"
        + f" on {meta['date']} ({meta['host']}); do not edit by hand. Method: [README.md](README.md).",
        "",
        f"OpenBao {meta['openbao']} over TLS on 127.0.0.1, {meta['cpus']} CPUs, load average "
        f"{meta['load_before']} before / {meta['load_after']} after"
        + (f", benchmark run at nice {meta['nice']}" if meta.get("nice") else "")
        + f"; {meta['runs']} timed runs per cell after one warm-up and one `strace` run. A warm-up "
        f"slower than {meta['budget_s']:.0f} s is stopped and reported as `> {meta['budget_s']:.0f} s` "
        "(the tool is then not run at larger N); a timed run may take three times as long.",
        "",
        "**wall**: spawn → the child's first instruction, median [min–max]. **× floor**: median wall "
        "over the curl floor's. **CPU**: user+system of the whole process tree. **peak RSS**: the "
        "largest process of the tree. **requests**: seen in OpenBao's audit log (kinds from the "
        "warm-up run). **conns**: TCP connections to OpenBao (strace). **binary**: the executable "
        "(shared libraries not counted).",
        "",
    ]
    for n in meta["ns"]:
        out += [f"## N = {n}", "",
                "| tool | wall | × floor | CPU | peak RSS | requests | conns | binary |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        floor = results["cells"].get(f"curl/{n}", {}).get("summary")
        for tool in meta["tools"]:
            cell = results["cells"].get(f"{tool['key']}/{n}")
            if cell is None:
                continue
            label = tool["label"]
            size = fmt_size(tool["size"]) if tool["size"] else "?"
            if cell.get("status") == "n/a":
                out.append(f"| {label} | n/a ({cell['reason']}) | | | | | | {size} |")
                continue
            if cell.get("status") == "over budget":
                out.append(f"| {label} | > {cell['budget_s']:.0f} s | | | | | | {size} |")
                continue
            s = cell["summary"]
            w = s["wall_ms"]
            ratio = f"{w['median'] / floor['wall_ms']['median']:.2f}×" if floor and n > 0 else ""
            kinds = ", ".join(f"{c} {k}" for k, c in sorted(cell["kinds"].items(), key=lambda kv: -kv[1]))
            reqs = f"{s['requests']:g}" + (f" ({kinds})" if kinds else "")
            out.append(
                f"| {label} | {fmt_ms(w['median'])} [{fmt_ms(w['min'])}–{fmt_ms(w['max'])}] | {ratio} "
                f"| {fmt_ms(s['cpu_ms'])} | {s['rss_kib'] / 1024:.1f} MiB | {reqs} "
                f"| {cell['connections']} | {size} |")
        out.append("")
    out += targets_markdown(results)
    if meta.get("notes"):
        out += ["## Notes", ""] + [f"- {x}" for x in meta["notes"]] + [""]
    path.write_text("\n".join(out))


def paired_median(results: dict, a: str, b: str, n: int, op, field: str = "wall_ms") -> float | None:
    """Median over runs of op(sample of tool a, sample of tool b) at N=n. The tools take turns
    within each run, so pairing samples of the same run cancels much of a shared machine's drift."""
    ca = results["cells"].get(f"{a}/{n}", {})
    cb = results["cells"].get(f"{b}/{n}", {})
    sa, sb = ca.get("samples"), cb.get("samples")
    if not sa or not sb or "summary" not in ca or "summary" not in cb:
        return None
    pairs = [op(x[field], y[field]) for x, y in zip(sa, sb)]
    return statistics.median(pairs) if pairs else None


def targets_markdown(results: dict) -> list[str]:
    """The targets of issue 9, checked against this run's figures (crunch-secrets = the token
    row unless said otherwise)."""
    ns = results["meta"]["ns"]
    cells = results["cells"]
    rows = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "**not met**")

    if 0 in ns:
        d = paired_median(results, "cs-token", "child", 0, lambda x, y: x - y)
        lo = None if d is None else min(
            x["wall_ms"] - y["wall_ms"]
            for x, y in zip(cells["cs-token/0"]["samples"], cells["child/0"]["samples"]))
        cpu = paired_median(results, "cs-token", "child", 0, lambda x, y: x - y, "cpu_ms")
        # On a busy machine a run this short is often preempted for a whole time slice; the CPU
        # time it used and its fastest run show its own cost.
        rows.append(("no reference: ≤ 2 ms over the child's own exec (median of per-run differences)",
                     "n/a" if d is None
                     else f"wall +{fmt_ms(d)} (fastest run +{fmt_ms(lo)}); CPU +{fmt_ms(cpu)}",
                     verdict(None if d is None else d <= 2)))
    for n in (100, 1000):
        if n in ns:
            r = paired_median(results, "cs-token", "curl", n, lambda x, y: x / y)
            rows.append((f"N = {n}: ≤ 1.1× the curl floor (median of per-run ratios)",
                         "n/a" if r is None else f"{r:.2f}×", verdict(None if r is None else r <= 1.1)))
    rss = [(n, cells[f"cs-token/{n}"]["summary"]["rss_kib_max"] / 1024) for n in ns
           if "summary" in cells.get(f"cs-token/{n}", {}) and n > 0]
    if rss:
        top = max(rss, key=lambda x: x[0])
        rows.append(("peak RSS flat in N, ≤ 12 MiB at N = 1000 (largest of the runs)",
                     ", ".join(f"N={n}: {m:.1f} MiB" for n, m in rss),
                     verdict(top[1] <= 12 if top[0] == 1000 else None)))
    exact = []
    for n in ns:
        # At N = 0 there is nothing to fetch, so crunch-secrets does not log in either.
        for key, logins in (("cs-token", 0), ("cs-approle", 1 if n > 0 else 0)):
            cell = cells.get(f"{key}/{n}", {})
            if "summary" in cell:
                # A token revocation at the end (revoke-self) is allowed on top.
                revokes = cell["kinds"].get("revoke-self", 0)
                exact.append(cell["summary"]["requests"] - revokes == n + logins
                             and cell["kinds"].get("login", 0) == logins
                             and cell["kinds"].get("read", 0) == n and revokes <= 1)
    if exact:
        rows.append(("exactly 1 login + N reads, + a token revocation if any (token: N reads; "
                     "AppRole: 1 login + N reads)",
                     f"{sum(exact)} of {len(exact)} cells exact", verdict(all(exact))))
    agent = []
    for n in ns:
        r = paired_median(results, "agent", "cs-token", n, lambda x, y: x / y)
        if r is not None:
            agent.append((n, r))
    if agent:
        rows.append(("≥ 5× faster than `bao agent` one-shot at every N",
                     ", ".join(f"N={n}: {r:.1f}×" for n, r in agent), verdict(all(r >= 5 for _, r in agent))))
    if 100 in ns:
        cli = cells.get("cli/100", {})
        cs = cells.get("cs-token/100", {})
        if cli.get("status") == "over budget" and "summary" in cs:
            bound = cli["budget_s"] * 1000 / cs["summary"]["wall_ms"]["median"]
            rows.append(("≥ 100× faster than the `bao kv get` loop at N = 100",
                         f"> {bound:.0f}× (the loop exceeded its budget)", verdict(bound >= 100)))
        else:
            r = paired_median(results, "cli", "cs-token", 100, lambda x, y: x / y)
            rows.append(("≥ 100× faster than the `bao kv get` loop at N = 100",
                         "n/a" if r is None else f"{r:.0f}×", verdict(None if r is None else r >= 100)))
    if not rows:
        return []
    out = ["## Targets (issue 9), from this run", "",
           "Ratios and differences are medians over runs of the per-run figures (the tools take turns "
           "within a run, so both sides of a ratio saw the same machine).", "",
           "| target | measured | |", "| --- | --- | --- |"]
    out += [f"| {t} | {m} | {v} |" for t, m, v in rows]
    return out + [""]


def write_chart(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = results["meta"]
    ns = meta["ns"]
    xs = list(range(len(ns)))
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 5.5))
    markers = "os^vDPX*h"
    for k, tool in enumerate(meta["tools"]):
        xt, med, lo, hi, xm, rss, xc, capped = [], [], [], [], [], [], [], []
        for x, n in zip(xs, ns):
            cell = results["cells"].get(f"{tool['key']}/{n}")
            if not cell:
                continue
            if cell.get("status") == "over budget":
                xc.append(x)
                capped.append(cell["budget_s"] * 1000)
                continue
            if "summary" not in cell:
                continue
            w = cell["summary"]["wall_ms"]
            xt.append(x)
            med.append(w["median"])
            lo.append(w["median"] - w["min"])
            hi.append(w["max"] - w["median"])
            xm.append(x)
            rss.append(cell["summary"]["rss_kib"] / 1024)
        m = markers[k % len(markers)]
        line = ax_t.errorbar(xt, med, yerr=[lo, hi], marker=m, capsize=3, label=tool["label"])
        color = line[0].get_color()
        if xc:
            ax_t.scatter(xc, capped, marker="^", s=90, color=color, edgecolors="black", zorder=5)
            for x, c in zip(xc, capped):
                ax_t.annotate(f"> {c / 1000:.0f} s", (x, c), textcoords="offset points",
                              xytext=(6, 4), fontsize=8, color=color)
        ax_m.plot(xm, rss, marker=m, color=color, label=tool["label"])
    for ax in (ax_t, ax_m):
        ax.set_xticks(xs, [str(n) for n in ns])
        ax.set_xlabel("N secrets")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    ax_t.set_ylabel("ms until the child starts (median, min–max)")
    ax_t.set_title("Time to the child's first instruction")
    ax_m.set_ylabel("MiB (largest process of the tree, median)")
    ax_m.set_title("Peak RSS")
    ax_m.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"OpenBao {meta['openbao']} over TLS on loopback, {meta['cpus']} CPUs, "
                 f"{meta['runs']} runs per point ({meta['date']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bao", required=True)
    ap.add_argument("--crunch-secrets", required=True)
    ap.add_argument("--stamp", required=True)
    ap.add_argument("--launch", required=True)
    ap.add_argument("--python", required=True, help="interpreter with hvac installed")
    ap.add_argument("--consul-template", default="", help="binary; empty: not benchmarked")
    ap.add_argument("--consul-template-note", default="")
    ap.add_argument("--strace", default=shutil.which("strace") or "strace")
    ap.add_argument("--ns", default="0,1,10,100,1000")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--budget", type=float, default=30, help="seconds one run may take")
    ap.add_argument("--out", required=True, help="directory for results.md, results.json, bench.png")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--tools", default="", help="comma-separated tool keys to run (default: all), "
                    "e.g. child,cs-token,curl while working on crunch-secrets")
    args = ap.parse_args()

    ns = [int(x) for x in args.ns.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cs-bench-"))
    bao = Bao(args.bao, work)
    tools = None
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        log(f"starting OpenBao on {bao.addr} (work directory {work})")
        bao.start()
        creds = seed(bao, max(ns))
        log(f"seeded {max(ns)} secrets")
        tools = Tools(args, bao, creds, work)
        tool_list = tools.all()
        if args.tools:
            wanted = args.tools.split(",")
            unknown = set(wanted) - {t.key for t in tool_list}
            if unknown:
                log(f"error: unknown tool(s) {', '.join(sorted(unknown))}")
                return 64
            tool_list = [t for t in tool_list if t.key in wanted]
        runner = Runner(args, bao, tools, work)
        def write_all(ns_done: list[int]) -> None:
            version = subprocess.run([args.bao, "version"], capture_output=True, text=True).stdout.split()
            notes = []
            if args.consul_template_note:
                notes.append(args.consul_template_note)
            notes += [
                "crunch-secrets and curl use the system's libcurl and OpenSSL (shared libraries, not in "
                "`binary`); bao and consul-template are static Go binaries; the hvac row's binary is the "
                "Python interpreter (hvac, requests and urllib3 come on top).",
                "The curl floor fetches with the token (no login) and writes to /dev/null: it parses and "
                "delivers nothing.",
                "`bao kv get` asks `sys/internal/ui/mounts` before every read to learn the KV version.",
            ]
            results = {
                "meta": {
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "host": f"{platform.system()} {platform.release()}",
                    "cpus": os.cpu_count(),
                    "openbao": version[1] if len(version) > 1 else "?",
                    "ns": ns_done, "runs": args.runs, "budget_s": args.budget, "quick": args.quick, "nice": os.nice(0),
                    "load_before": load_before,
                    "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                    "tools": [{"key": t.key, "label": t.label, "size": os.path.getsize(t.binary)
                               if os.path.exists(t.binary) else 0} for t in tool_list],
                    "notes": notes,
                },
                "cells": cells,
            }
            (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
            write_markdown(results, out / "results.md")
            write_chart(results, out / "bench.png")

        cells: dict[str, dict] = {}
        stopped: dict[str, float] = {}  # tool key -> the budget it exceeded
        for n in ns:
            active = []
            for tool in tool_list:
                key = f"{tool.key}/{n}"
                if tool.key in stopped:
                    cells[key] = {"status": "over budget", "budget_s": stopped[tool.key]}
                    continue
                inv = tool.make(n)
                if inv is None:
                    cells[key] = {"status": "n/a", "reason": "nothing to render"}
                    continue
                log(f"N={n}: {tool.label}: warm-up")
                try:
                    warm = runner.once(tool, n, inv, args.budget)
                    conns = runner.connections(tool, n, inv, args.budget * 3)
                except OverBudget:
                    log(f"N={n}: {tool.label}: over the {args.budget:.0f} s budget, not run at N >= {n}")
                    stopped[tool.key] = args.budget
                    cells[key] = {"status": "over budget", "budget_s": args.budget}
                    continue
                kinds: dict[str, int] = {}
                for p in warm.requests:
                    kinds[classify(p)] = kinds.get(classify(p), 0) + 1
                cells[key] = {"samples": [], "connections": conns, "kinds": kinds}
                active.append((tool, inv))
            for r in range(args.runs):
                # Rotate the order so that every tool runs first, second, ... equally often.
                shift = r % len(active) if active else 0
                for tool, inv in active[shift:] + active[:shift]:
                    key = f"{tool.key}/{n}"
                    if cells[key].get("status"):
                        continue
                    # The warm-up fitted the budget; a timed run gets three times as long, as a
                    # busy machine can slow one run down, before the cell counts as over budget.
                    try:
                        s = runner.once(tool, n, inv, 3 * args.budget)
                    except OverBudget:
                        log(f"N={n}: {tool.label}: run {r + 1} over {3 * args.budget:.0f} s")
                        stopped[tool.key] = 3 * args.budget
                        cells[key] = {"status": "over budget", "budget_s": 3 * args.budget}
                        continue
                    cells[key]["samples"].append(s)
            for tool, _ in active:
                cell = cells[f"{tool.key}/{n}"]
                if "samples" in cell:
                    cell["summary"] = summarize(cell["samples"])
                    cell["samples"] = [{"wall_ms": s.wall_ms, "cpu_ms": s.cpu_ms, "rss_kib": s.rss_kib,
                                        "requests": len(s.requests)} for s in cell["samples"]]
                    w = cell["summary"]["wall_ms"]
                    log(f"N={n}: {tool.label}: {fmt_ms(w['median'])} [{fmt_ms(w['min'])}–{fmt_ms(w['max'])}], "
                        f"{cell['summary']['rss_kib'] / 1024:.1f} MiB, {cell['summary']['requests']:g} requests, "
                        f"{cell['connections']} connections")
            # Results so far, so that an interrupted run still leaves its figures.
            write_all(ns_done=ns[: ns.index(n) + 1])
        write_all(ns_done=ns)
        log(f"wrote {out}/results.md, results.json, bench.png")
        return 0
    except RunFailed as e:
        log(f"error: {e}")
        return 1
    finally:
        bao.stop()
        if tools:
            tools.cleanup()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
