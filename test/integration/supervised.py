"""Running crunch-secrets in supervise mode from the tests: started in the background (the test
signals it, seals Vault or reads the files meanwhile), outputs captured to files on tmpfs and
scanned for every canary when the run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from harness import CANARIES, REPO_ROOT, BaoServer, Runner, crunch_secrets_bin, fail

SIGPROBE = Path(os.environ.get("SIGPROBE_BIN", REPO_ROOT / "build" / "test" / "probe" / "sigprobe"))
if os.environ.get("PROBE_BIN"):
    SIGPROBE = Path(os.environ["PROBE_BIN"]).parent / "sigprobe"
DBCHILD = REPO_ROOT / "test" / "integration" / "dbchild.py"


class Supervised:
    """One background run of `crunch-secrets <args>`; "{secrets}" in an `env` value is replaced
    by the run's secrets directory."""

    def __init__(self, runner: Runner, args: list[str], env: dict[str, str | None] | None = None, *,
                 bao: BaoServer | None = None, token: str | None = "root", prefix: list[str] = (),
                 stdin=subprocess.DEVNULL, stdout=None, stderr=None) -> None:
        self.work = runner.tmpfs_dir("cs-sup-")
        self.secrets_dir = self.work / "secrets"
        self.runner = runner
        full = runner.base_env(bao, token)
        full["CRUNCH_SECRETS_DIR"] = str(self.secrets_dir)
        for k, v in (env or {}).items():
            if v is None:
                full.pop(k, None)
            else:
                full[k] = v.replace("{secrets}", str(self.secrets_dir))
        self.argv = list(prefix) + [str(crunch_secrets_bin())] + args
        self.out_path = self.work / "stdout"
        self.err_path = self.work / "stderr"
        self._out = open(self.out_path, "wb") if stdout is None else None
        self._err = open(self.err_path, "wb") if stderr is None else None
        self.start = time.monotonic()
        self.proc = subprocess.Popen(self.argv, env=full, stdin=stdin,
                                     stdout=stdout if stdout is not None else self._out,
                                     stderr=stderr if stderr is not None else self._err)
        self.code: int | None = None
        self.stdout = b""
        self.stderr = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, signo: int) -> None:
        self.proc.send_signal(signo)

    def wait(self, timeout: float = 60) -> int:
        try:
            self.code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            self._collect()
            fail(f"crunch-secrets did not exit within {timeout}s: {self.argv[-3:]}")
        self._collect()
        return self.code

    def _collect(self) -> None:
        for f in (self._out, self._err):
            if f is not None:
                f.close()
        if self._out is not None:
            self.stdout = self.out_path.read_bytes()
            self.runner.scan(self.stdout, "stdout (supervised)")
        if self._err is not None:
            self.stderr = self.err_path.read_bytes()
            self.runner.scan(self.stderr, "stderr (supervised)")

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="replace")

    def describe(self) -> str:
        return f"exit {self.code}; stderr: {self.err.strip()[-3000:]!r}"


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    fail(f"timed out after {timeout}s waiting for {what}")


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def sigprobe() -> str:
    if not SIGPROBE.is_file():
        fail(f"sigprobe not found at {SIGPROBE}: build it with `ninja -C build` (test/probe)")
    return str(SIGPROBE)


def register_file_secrets(path: Path, keys: tuple[str, ...] = ("password",)) -> dict:
    """Reads a JSON credentials file the run wrote and registers its secret fields as canaries."""
    import json

    data = json.loads(path.read_text())
    for k in keys:
        if data.get(k) and all(s.value != data[k] for s in CANARIES.items):
            CANARIES.add(f"dynamic {k}", data[k])
    return data


SIGNALS_FORWARDED = [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT,
                     signal.SIGALRM, signal.SIGQUIT, signal.SIGPWR]
