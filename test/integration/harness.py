"""Integration-test harness: real OpenBao dev servers, seeding over the HTTP API, canary
secrets, and a runner for crunch-secrets with the probe child.

Only the standard library (and PyYAML in the tests) is used. Nothing here prints a secret: the
canary scanner reports "canary N (label) found in <where> at offset K", never the value.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def fail(msg: str) -> None:
    """Fails the current test loudly (never skips)."""
    pytest.fail(msg, pytrace=False)


# ---------------------------------------------------------------------------------------------
# Binaries


def _existing_executable(path: Path, what: str, how: str) -> Path:
    if not path.is_file() or not os.access(path, os.X_OK):
        fail(f"{what} not found or not executable at {path}; {how}")
    return path


def crunch_secrets_bin() -> Path:
    p = Path(os.environ.get("CRUNCH_SECRETS_BIN", REPO_ROOT / "build" / "crunch-secrets"))
    if not p.is_absolute():
        p = REPO_ROOT / p
    return _existing_executable(
        p, "crunch-secrets", "build it with `meson setup build && ninja -C build` or set CRUNCH_SECRETS_BIN"
    )


def probe_bin() -> Path:
    p = Path(os.environ.get("PROBE_BIN", REPO_ROOT / "build" / "test" / "probe" / "probe"))
    if not p.is_absolute():
        p = REPO_ROOT / p
    return _existing_executable(
        p, "probe", "build it with `ninja -C build` (test/probe) or set PROBE_BIN"
    )


_bao_path: Path | None = None


def bao_bin() -> Path:
    """The OpenBao binary: $BAO_BIN, else whatever test/openbao/build.sh builds (cached)."""
    global _bao_path
    if _bao_path is not None:
        return _bao_path
    if os.environ.get("BAO_BIN"):
        _bao_path = _existing_executable(Path(os.environ["BAO_BIN"]), "bao", "fix BAO_BIN")
        return _bao_path
    script = REPO_ROOT / "test" / "openbao" / "build.sh"
    proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=3600)
    if proc.returncode != 0:
        fail(f"test/openbao/build.sh failed (exit {proc.returncode}):\n{proc.stderr.decode(errors='replace')[-4000:]}")
    _bao_path = _existing_executable(
        Path(proc.stdout.decode().strip().splitlines()[-1]), "bao", "see test/openbao/build.sh"
    )
    return _bao_path


# ---------------------------------------------------------------------------------------------
# Canaries and the output scanner


@dataclass
class Sensitive:
    index: int
    label: str
    value: str
    # A unique substring: finding it anywhere (even in an escaped rendering) is a leak.
    marker: str


class Canaries:
    """Every secret value of the run. `scan` looks for each in a captured output."""

    def __init__(self) -> None:
        self.items: list[Sensitive] = []

    def new(self, label: str, suffix: str = "") -> str:
        """A fresh canary value `CANARY-<32 hex><suffix>`; the hex part alone marks a leak."""
        hexid = uuid.uuid4().hex
        value = f"CANARY-{hexid}{suffix}"
        self.items.append(Sensitive(len(self.items) + 1, label, value, hexid))
        return value

    def add(self, label: str, value: str, marker: str | None = None) -> str:
        """Registers an externally made secret (a token, a secret id)."""
        self.items.append(Sensitive(len(self.items) + 1, label, value, marker or value))
        return value

    def findings(self, data: bytes | str, where: str, exclude: frozenset[int] = frozenset()) -> list[str]:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        out = []
        for s in self.items:
            if s.index in exclude:
                continue
            for needle in (s.value, s.marker):
                if not needle:
                    continue
                off = data.find(needle.encode("utf-8", "surrogateescape"))
                if off >= 0:
                    out.append(f"canary {s.index} ({s.label}) found in {where} at offset {off}")
                    break
        return out

    def check(self, data: bytes | str, where: str, exclude: frozenset[int] = frozenset()) -> None:
        found = self.findings(data, where, exclude)
        if found:
            fail("secret leak: " + "; ".join(found))


CANARIES = Canaries()


def special_suffixes() -> dict[str, str]:
    """Awkward characters appended to canaries: each must survive byte for byte."""
    return {
        "newline": "\nline two\n",
        "quotes": "'single' \"double\" `back`",
        "dollar": "$HOME ${HOME} $(id) $$",
        "backslash": "C:\\path\\n\\\\end\\",
        "unicode": " pässwörd ✓ 日本 🔑",
        "mixed": "a\"b'c$d\\e\nf ${vault:x#y} é",
    }


# ---------------------------------------------------------------------------------------------
# HTTP


class ApiError(Exception):
    def __init__(self, status: int, body: Any, path: str):
        super().__init__(f"HTTP {status} for {path}")
        self.status = status
        self.body = body


def http_json(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    ctx: ssl.SSLContext | None = None,
    timeout: float = 10,
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("X-Vault-Token", token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as e:
        raw = e.read()
        status = e.code
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return status, parsed


# ---------------------------------------------------------------------------------------------
# OpenBao dev server


def free_port_pair() -> int:
    """A loopback port P such that P and P+1 (the dev cluster port) are both free."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as s1, socket.socket() as s2:
                s1.bind(("127.0.0.1", port))
                s2.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    return free_port()


SERVERS: list["BaoServer"] = []


def _stop_all_servers() -> None:
    """Last resort (interpreter exit): no dev server outlives the test run."""
    for server in SERVERS:
        try:
            server.kill()
        except Exception:
            pass


import atexit  # noqa: E402

atexit.register(_stop_all_servers)


class BaoServer:
    """One `bao server -dev` process (in-memory storage, one unseal key, known root token)."""

    def __init__(self, *, tls: bool = False, extra_args: list[str] | None = None, name: str = "bao"):
        self.tls = tls
        self.extra_args = list(extra_args or [])
        self.name = name
        self.workdir = Path(tempfile.mkdtemp(prefix=f"cs-{name}-"))
        self.root_token = CANARIES.add(f"{name} root token", "root-" + uuid.uuid4().hex)
        # The dev server prints its own root token and unseal key; its log may contain those.
        self.own_secrets: set[int] = {CANARIES.items[-1].index}
        self.port = free_port_pair()
        self.proc: subprocess.Popen | None = None
        self.unseal_key: str | None = None
        self.log_path = self.workdir / "server.log"
        self.ca_path = self.workdir / "tls" / "vault-ca.pem" if tls else None
        self._log_offset = 0
        self.logs: list[str] = []  # paths of every log file this server wrote
        SERVERS.append(self)

    @property
    def addr(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=str(self.ca_path))

    def start(self, timeout: float = 60) -> "BaoServer":
        args = [
            str(bao_bin()),
            "server",
            "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
            "-dev-no-store-token",
        ]
        if self.tls:
            tlsdir = self.workdir / "tls"
            if tlsdir.exists():
                shutil.rmtree(tlsdir)
            tlsdir.mkdir()
            args += ["-dev-tls", f"-dev-tls-cert-dir={tlsdir}"]
        args += self.extra_args
        n = len(self.logs)
        self.log_path = self.workdir / f"server-{n}.log"
        self.logs.append(str(self.log_path))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.workdir)
        logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            args, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            cwd=self.workdir, start_new_session=True,
        )
        logf.close()
        try:
            self._await_banner(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _await_banner(self, timeout: float) -> None:
        self.wait_ready(timeout)
        # The banner with the unseal key may be printed just after the listener is ready.
        deadline = time.monotonic() + 15
        while True:
            m = re.search(rb"Unseal Key: (\S+)", self.log_path.read_bytes())
            if m or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not m:
            fail(f"{self.name}: no unseal key in the dev server output ({self.log_path})")
        self.unseal_key = m.group(1).decode()
        if all(s.value != self.unseal_key for s in CANARIES.items):
            CANARIES.add(f"{self.name} unseal key", self.unseal_key)
            self.own_secrets.add(CANARIES.items[-1].index)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                fail(f"{self.name}: bao exited with {self.proc.returncode} during start; log: {self.log_path}\n"
                     + self.log_tail())
            if self.ca_path is None or self.ca_path.exists():
                try:
                    status, body = http_json("GET", self.addr + "/v1/sys/health", ctx=self.ssl_context(), timeout=2)
                    if status == 200:
                        return
                    last = f"health status {status}"
                except (OSError, ssl.SSLError) as e:
                    last = str(e)
            time.sleep(0.1)
        fail(f"{self.name}: not ready after {timeout}s ({last}); log: {self.log_path}\n" + self.log_tail())

    def log_tail(self, n: int = 4000) -> str:
        try:
            text = self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""
        # The tail may show the root token / unseal key; never put those in a failure message.
        for s in CANARIES.items:
            text = text.replace(s.value, f"[canary {s.index}]")
        return text

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self, delay: float = 0) -> None:
        """Stops and starts again on the same port. Dev storage is in memory: data is lost."""
        self.stop()
        time.sleep(delay)
        self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # --- API --------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, *, token: str | None = "root",
            headers: dict[str, str] | None = None, ok: tuple[int, ...] = (200, 204)) -> Any:
        """Calls /v1/<path>; token "root" = the root token. Fails unless the status is in `ok`."""
        tok = self.root_token if token == "root" else token
        status, resp = http_json(method, f"{self.addr}/v1/{path}", token=tok, body=body,
                                 headers=headers, ctx=self.ssl_context())
        if status not in ok:
            raise ApiError(status, resp, path)
        return resp

    def api_status(self, method: str, path: str, body: Any = None, *, token: str | None = "root",
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        tok = self.root_token if token == "root" else token
        return http_json(method, f"{self.addr}/v1/{path}", token=tok, body=body, headers=headers,
                         ctx=self.ssl_context())

    def seal(self) -> None:
        self.api("PUT", "sys/seal")

    def unseal(self) -> None:
        resp = self.api("PUT", "sys/unseal", {"key": self.unseal_key}, token=None)
        if resp.get("sealed"):
            fail(f"{self.name}: still sealed after unseal")

    def kv2_put(self, mount: str, path: str, data: dict, *, timeout: float = 20) -> int:
        """Writes a KV v2 secret (polling through the 'upgrading' phase after a mount)."""
        deadline = time.monotonic() + timeout
        while True:
            status, resp = self.api_status("POST", f"{mount}/data/{path}", {"data": data})
            if status == 200:
                return int(resp["data"]["version"])
            if status in (400, 503) and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            raise ApiError(status, resp, f"{mount}/data/{path}")

    def mount(self, path: str, type_: str, options: dict | None = None) -> None:
        body: dict[str, Any] = {"type": type_}
        if options:
            body["options"] = options
        self.api("POST", f"sys/mounts/{path}", body)

    def policy(self, name: str, hcl: str) -> None:
        self.api("PUT", f"sys/policies/acl/{name}", {"policy": hcl})

    def token(self, policies: list[str], *, ttl: str = "1h", wrap_ttl: str | None = None,
              label: str = "token", **extra: Any) -> str:
        """Creates a token (or, with `wrap_ttl`, a wrapping token for one) and registers it."""
        headers = {"X-Vault-Wrap-TTL": wrap_ttl} if wrap_ttl else None
        resp = self.api("POST", "auth/token/create",
                        {"policies": policies, "ttl": ttl, "no_default_policy": False, **extra},
                        headers=headers)
        tok = resp["wrap_info"]["token"] if wrap_ttl else resp["auth"]["client_token"]
        CANARIES.add(f"{self.name} {label}", tok)
        return tok

    def scan_logs(self) -> None:
        """Fails if any canary (other than this server's own root token/unseal key) is in a log."""
        for path in self.logs:
            try:
                data = Path(path).read_bytes()
            except OSError:
                continue
            CANARIES.check(data, f"{self.name} server log {Path(path).name}", frozenset(self.own_secrets))

    def close(self) -> None:
        """Stops the server, scans its logs, and removes its work directory."""
        self.stop()
        try:
            self.scan_logs()
        finally:
            if not os.environ.get("CS_KEEP_SERVER_LOGS"):
                shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Seeded world


@dataclass
class World:
    """What `seed` wrote into a server: canary values by name, tokens, AppRole credentials."""

    bao: BaoServer
    values: dict[str, str] = field(default_factory=dict)
    specials: dict[str, str] = field(default_factory=dict)
    versions: dict[int, str] = field(default_factory=dict)  # secret/data/versioned#value
    aws: dict[str, str] = field(default_factory=dict)
    dotenv: dict[str, str] = field(default_factory=dict)
    kv1: dict[str, str] = field(default_factory=dict)
    reader_token: str = ""
    role_id: str = ""
    secret_id: str = ""

    def __repr__(self) -> str:
        # Test failure output shows fixture values: never the secrets.
        return f"World(bao={self.bao.name}, [values redacted])"

    def wrapped_token(self, policies: tuple[str, ...] = ("reader",)) -> str:
        return self.bao.token(list(policies), wrap_ttl="300s", label="wrapping token")


READER_POLICY = """
path "secret/data/*" { capabilities = ["read"] }
path "secret/data/forbidden" { capabilities = ["deny"] }
path "secret/data/forbidden/*" { capabilities = ["deny"] }
path "kv/*" { capabilities = ["read"] }
"""

DENY_ALL_POLICY = """
path "secret/*" { capabilities = ["deny"] }
path "kv/*" { capabilities = ["deny"] }
"""


def seed(bao: BaoServer) -> World:
    w = World(bao)
    c = CANARIES.new
    # The plain application secret.
    w.values["password"] = c("app password")
    w.values["username"] = "app-user"
    w.values["api_key"] = c("api key")
    bao.kv2_put("secret", "app", {"password": w.values["password"], "username": w.values["username"],
                                  "api_key": w.values["api_key"]})
    # Several versions, the second one deleted.
    for v in (1, 2, 3):
        w.versions[v] = c(f"versioned v{v}")
        got = bao.kv2_put("secret", "versioned", {"value": w.versions[v]})
        assert got == v, f"expected version {v}, got {got}"
    bao.api("POST", "secret/delete/versioned", {"versions": [2]})
    # A secret whose latest version is deleted.
    w.values["gone"] = c("gone")
    bao.kv2_put("secret", "gone", {"value": w.values["gone"]})
    bao.api("DELETE", "secret/data/gone")
    # Awkward characters.
    for name, suffix in special_suffixes().items():
        w.specials[name] = c(f"special {name}", suffix)
    bao.kv2_put("secret", "special", dict(w.specials))
    # A denied path that exists.
    w.values["forbidden"] = c("forbidden")
    bao.kv2_put("secret", "forbidden", {"value": w.values["forbidden"]})
    # Whole objects for the file formats.
    w.aws = {"access_key": "AKIA" + uuid.uuid4().hex[:16].upper(), "secret_key": c("aws secret key"),
             "session_token": c("aws session token")}
    bao.kv2_put("secret", "aws", dict(w.aws))
    w.dotenv = {"DB_HOST": "db.example", "DB_PASS": c("dotenv pass", "\\ \" $ \n x"), "API_TOKEN": c("dotenv token")}
    bao.kv2_put("secret", "dotenv", dict(w.dotenv))
    w.values["typed_secret"] = c("typed")
    bao.kv2_put("secret", "typed", {"num": 42, "flag": True, "obj": {"a": [1, 2]}, "s": w.values["typed_secret"]})
    w.values["ini_value"] = c("ini value")
    bao.kv2_put("secret", "ini", {"user": "app", "password": w.values["ini_value"]})
    # KV v1.
    bao.mount("kv", "kv", {"version": "1"})
    w.kv1 = {"token": c("kv1 token"), "other": "plain"}
    bao.api("POST", "kv/app", dict(w.kv1))
    # Policies and a reader token.
    bao.policy("reader", READER_POLICY)
    bao.policy("denier", DENY_ALL_POLICY)
    w.reader_token = bao.token(["reader"], label="reader token")
    # AppRole.
    bao.api("POST", "sys/auth/approle", {"type": "approle"})
    bao.api("POST", "auth/approle/role/test", {"token_policies": ["reader"], "token_ttl": "1h"})
    w.role_id = bao.api("GET", "auth/approle/role/test/role-id")["data"]["role_id"]
    w.secret_id = CANARIES.add(f"{bao.name} approle secret id",
                               bao.api("POST", "auth/approle/role/test/secret-id")["data"]["secret_id"])
    return w


# ---------------------------------------------------------------------------------------------
# Running crunch-secrets


@dataclass
class Result:
    code: int
    stdout: bytes
    stderr: bytes
    report: dict | None
    elapsed: float
    secrets_dir: Path
    args: list[str]
    pid: int = 0

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="replace")

    @property
    def out(self) -> str:
        return self.stdout.decode(errors="replace")

    def __repr__(self) -> str:
        return f"Result(code={self.code}, [outputs redacted])"

    def describe(self) -> str:
        """For assertion messages: exit code and stderr (already scanned: no canary inside)."""
        return f"exit {self.code}; stderr: {self.err.strip()[-2000:]!r}"

    @property
    def env(self) -> dict[str, str]:
        assert self.report is not None, "the probe did not run: " + self.describe()
        return {k: (v if v is None else v) for k, v in self.report["env"].items()}

    @property
    def argv(self) -> list[str]:
        assert self.report is not None, "the probe did not run: " + self.describe()
        return self.report["argv"]

    def file(self, path: str | Path) -> dict:
        assert self.report is not None, "the probe did not run: " + self.describe()
        return self.report["files"][str(path)]

    def file_bytes(self, path: str | Path) -> bytes:
        f = self.file(path)
        assert f.get("exists") and f.get("regular"), f"{path}: not a regular file in the probe report"
        return base64.b64decode(f["content_b64"])


class Runner:
    """Runs crunch-secrets for one test. Every output is scanned for every canary."""

    def __init__(self, bao: BaoServer | None):
        self.bao = bao
        self.tmpdirs: list[Path] = []
        self.scanned: list[tuple[str, bytes]] = []

    def tmpfs_dir(self, prefix: str = "cs-test-") -> Path:
        """A fresh 0700 directory on /dev/shm (tmpfs), removed after the test."""
        d = Path(tempfile.mkdtemp(prefix=prefix, dir="/dev/shm"))
        self.tmpdirs.append(d)
        return d

    def disk_dir(self, prefix: str = "cs-disk-") -> Path:
        """A fresh directory on the root filesystem (not tmpfs)."""
        d = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
        self.tmpdirs.append(d)
        return d

    def empty_home(self) -> Path:
        if getattr(self, "_home", None) is None:
            self._home = self.tmpfs_dir("cs-home-")
        return self._home

    def base_env(self, bao: BaoServer | None, token: str | None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            # An empty home: a ~/.vault-token on the machine (the Vault CLI's token file, which
            # crunch-secrets reads after VAULT_TOKEN) must not change what a test runs with.
            "HOME": str(self.empty_home()),
        }
        if bao is not None:
            env["VAULT_ADDR"] = bao.addr
            if bao.tls:
                env["VAULT_CACERT"] = str(bao.ca_path)
            if token is not None:
                env["VAULT_TOKEN"] = bao.root_token if token == "root" else token
        return env

    def run(
        self,
        args: list[str],
        env: dict[str, str | None] | None = None,
        *,
        bao: BaoServer | None | str = "default",
        token: str | None = "root",
        probe_files: list[str | Path] = (),
        probe_exit: int | None = None,
        stdin: bytes | int | None = None,
        stdout: int | None = None,
        timeout: float = 60,
        secrets_dir: Path | None = None,
        wait: str | None = "10s",
    ) -> Result:
        """Runs `crunch-secrets <args>`; "{probe}" in args is replaced by the probe's path.

        `env` is added to a minimal environment (PATH, LANG, HOME, VAULT_ADDR, VAULT_CACERT,
        VAULT_TOKEN unless `token` is None); a value of None removes a variable.
        CRUNCH_SECRETS_DIR points at a fresh, not yet existing directory on tmpfs unless given.
        `wait` adds `--wait` after the subcommand when the args do not already have it.
        """
        server = self.bao if bao == "default" else bao
        work = self.tmpfs_dir()
        report_path = work / "report.json"
        sdir = secrets_dir if secrets_dir is not None else work / "secrets"
        full_env = self.base_env(server, token)
        full_env["CRUNCH_SECRETS_DIR"] = str(sdir)
        full_env["PROBE_REPORT"] = str(report_path)
        if probe_files:
            full_env["PROBE_FILES"] = ":".join(str(p) for p in probe_files)
        if probe_exit is not None:
            full_env["PROBE_EXIT"] = str(probe_exit)
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = v
        pb = str(probe_bin())
        argv = [str(crunch_secrets_bin())] + [a.replace("{probe}", pb) for a in args]
        if wait and args and args[0] in ("run", "check") and not any(a == "--wait" or a.startswith("--wait=") for a in args):
            argv[2:2] = ["--wait", wait]
        if isinstance(stdin, bytes):
            stdin_arg = subprocess.PIPE
        elif stdin is None:
            stdin_arg = subprocess.DEVNULL
        else:
            stdin_arg = stdin
        start = time.monotonic()
        proc = subprocess.Popen(
            argv, env=full_env, stdin=stdin_arg,
            stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            out, err = proc.communicate(stdin if isinstance(stdin, bytes) else None, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.scan(out or b"", "stdout (timed out)")
            self.scan(err or b"", "stderr (timed out)")
            fail(f"crunch-secrets timed out after {timeout}s: {argv[1:3]}")
        elapsed = time.monotonic() - start
        out = out or b""
        self.scan(out, "stdout")
        self.scan(err, "stderr")
        report = None
        if report_path.exists():
            report = json.loads(report_path.read_bytes().decode("utf-8", "surrogateescape"))
        res = Result(proc.returncode, out, err, report, elapsed, sdir, argv)
        res.pid = proc.pid
        return res

    def scan(self, data: bytes, where: str) -> None:
        self.scanned.append((where, data))
        CANARIES.check(data, where)

    def cleanup(self) -> None:
        for d in self.tmpdirs:
            shutil.rmtree(d, ignore_errors=True)


def env_bytes(value: str) -> bytes:
    """The exact bytes of a string from the probe report (see probe.c: surrogateescape)."""
    return value.encode("utf-8", "surrogateescape")


def is_tmpfs(path: Path) -> bool:
    out = subprocess.run(["stat", "-f", "-c", "%T", str(path)], stdout=subprocess.PIPE, text=True).stdout.strip()
    return out in ("tmpfs", "ramfs")


# ---------------------------------------------------------------------------------------------
# A recording, fault-injecting HTTP proxy in front of an HTTP dev server


class FaultProxy:
    """Forwards /v1/... to `upstream` and records every request (method, path, headers).

    `fault(n, method, path)` (n = 0-based request index) may return a status to answer with
    instead of forwarding (body `{"errors":["injected"]}`), or None to forward. `delay(n,
    method, path)` may return seconds to wait first.
    """

    def __init__(self, upstream: BaoServer, fault=None, delay=None):
        import http.server
        import threading

        self.upstream = upstream
        self.fault = fault
        self.delay = delay  # delay(n, method, path) -> seconds to wait before answering
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep quiet: requests may carry tokens
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    n = len(proxy.requests)
                    proxy.requests.append({"method": self.command, "path": self.path,
                                           "headers": {k.lower(): v for k, v in self.headers.items()},
                                           "time": time.monotonic()})
                if proxy.delay:
                    time.sleep(proxy.delay(n, self.command, self.path) or 0)
                status = proxy.fault(n, self.command, self.path) if proxy.fault else None
                if status is not None:
                    data = b'{"errors":["injected"]}'
                else:
                    req = urllib.request.Request(proxy.upstream.addr + self.path, data=body, method=self.command)
                    for k, v in self.headers.items():
                        if k.lower() not in ("host", "content-length", "connection"):
                            req.add_header(k, v)
                    try:
                        with urllib.request.urlopen(req, timeout=30) as resp:
                            status, data = resp.status, resp.read()
                    except urllib.error.HTTPError as e:
                        status, data = e.code, e.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_LIST = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
