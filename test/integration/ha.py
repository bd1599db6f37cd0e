"""A real 3-node OpenBao cluster with integrated storage (Raft) on loopback, for the HA tests.

Each node is a `bao server -config=FILE` process (non-dev mode) with its own Raft directory and
its own API and cluster ports. `RaftCluster.start()` initialises node 1 (one unseal key),
unseals it, joins nodes 2 and 3 to it through `sys/storage/raft/join`, unseals them, and waits
until node 1 is active and the others are standbys. Every node has the same plugin directory,
so a plugin registered in the (replicated) catalog runs on whichever node is active.

The root token and the unseal key are canaries: no crunch-secrets output may contain them, and
they are never printed (node logs are scanned like the dev servers' logs).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import CANARIES, ApiError, bao_bin, fail, free_port, http_json

CONFIG = """
storage "raft" {{
  path    = "{raft}"
  node_id = "{node_id}"
}}
listener "tcp" {{
  address         = "127.0.0.1:{api_port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable     = true
}}
api_addr      = "http://127.0.0.1:{api_port}"
cluster_addr  = "https://127.0.0.1:{cluster_port}"
disable_mlock = true
plugin_directory = "{plugins}"
log_level     = "info"
"""


class RaftNode:
    def __init__(self, cluster: "RaftCluster", index: int):
        self.cluster = cluster
        self.index = index
        self.name = f"raft-node-{index}"
        self.workdir = cluster.workdir / self.name
        (self.workdir / "raft").mkdir(parents=True)
        self.api_port = free_port()
        self.cluster_port = free_port()
        self.config = self.workdir / "config.hcl"
        self.config.write_text(CONFIG.format(raft=self.workdir / "raft", node_id=self.name,
                                             api_port=self.api_port, cluster_port=self.cluster_port,
                                             plugins=cluster.plugin_dir))
        self.proc: subprocess.Popen | None = None
        self.logs: list[Path] = []

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        log = self.workdir / f"server-{len(self.logs)}.log"
        self.logs.append(log)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.workdir)
        with open(log, "wb") as logf:
            self.proc = subprocess.Popen([str(bao_bin()), "server", f"-config={self.config}"], stdout=logf,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                         cwd=self.workdir, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                fail(f"{self.name} exited with {self.proc.returncode} during start; log {log}")
            try:
                status, _ = http_json("GET", self.addr + "/v1/sys/health", timeout=2)
                if status:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        fail(f"{self.name}: no HTTP listener after 60 s; log {log}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def health(self) -> int:
        """sys/health status: 200 active, 429 standby, 501 not initialised, 503 sealed; 0 down."""
        try:
            status, _ = http_json("GET", self.addr + "/v1/sys/health", timeout=2)
            return status
        except OSError:
            return 0

    def api(self, method: str, path: str, body: Any = None, *, token: str | None = "root",
            ok: tuple[int, ...] = (200, 204)) -> Any:
        tok = self.cluster.root_token if token == "root" else token
        status, resp = http_json(method, f"{self.addr}/v1/{path}", token=tok, body=body, timeout=15)
        if status not in ok:
            raise ApiError(status, resp, path)
        return resp

    def unseal(self) -> None:
        resp = self.api("PUT", "sys/unseal", {"key": self.cluster.unseal_key}, token=None)
        if resp.get("sealed") and resp.get("progress", 0) != 0:
            fail(f"{self.name}: unseal made no progress")

    def seal(self) -> None:
        self.api("PUT", "sys/seal")


class RaftCluster:
    def __init__(self, plugin_dir: Path, size: int = 3):
        self.workdir = Path(tempfile.mkdtemp(prefix="cs-raft-"))
        self.plugin_dir = plugin_dir
        self.root_token = ""
        self.unseal_key = ""
        self.nodes = [RaftNode(self, i + 1) for i in range(size)]
        self.timings: dict[str, float] = {}

    @property
    def addrs(self) -> list[str]:
        return [n.addr for n in self.nodes]

    def start(self) -> "RaftCluster":
        t0 = time.monotonic()
        for n in self.nodes:
            n.start()
        first = self.nodes[0]
        init = first.api("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1}, token=None)
        self.root_token = CANARIES.add("raft root token", init["root_token"])
        self.unseal_key = CANARIES.add("raft unseal key", init["keys_base64"][0])
        first.unseal()
        self.wait_for(lambda: first.health() == 200, "node 1 active", 60)
        for n in self.nodes[1:]:
            self.wait_for(lambda n=n: self._join(n), f"{n.name} joined", 60)
            self.wait_for(lambda n=n: self._try_unseal(n), f"{n.name} unsealed", 60)
        for n in self.nodes[1:]:
            self.wait_for(lambda n=n: n.health() == 429, f"{n.name} standby", 90)
        # Autopilot promotes a joined node to a voter only after it has been stable for a while;
        # until all three vote, losing the leader would leave no quorum.
        self.wait_for(self._all_voters, "three Raft voters", 120)
        self.timings["start"] = time.monotonic() - t0
        return self

    def _all_voters(self) -> bool:
        resp = self.nodes[0].api("GET", "sys/storage/raft/configuration")
        servers = resp["data"]["config"]["servers"]
        return len(servers) == len(self.nodes) and all(s.get("voter") for s in servers)

    def _join(self, n: RaftNode) -> bool:
        status, resp = http_json("PUT", n.addr + "/v1/sys/storage/raft/join",
                                 body={"leader_api_addr": self.nodes[0].addr}, timeout=15)
        return status == 200 and bool(resp and resp.get("joined"))

    def _try_unseal(self, n: RaftNode) -> bool:
        status, resp = http_json("PUT", n.addr + "/v1/sys/unseal", body={"key": self.unseal_key}, timeout=15)
        return status == 200 and resp.get("sealed") is False

    @staticmethod
    def wait_for(cond, what: str, timeout: float) -> float:
        t0 = time.monotonic()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            try:
                if cond():
                    return time.monotonic() - t0
            except (OSError, ApiError):
                pass
            time.sleep(0.2)
        fail(f"raft cluster: timed out waiting for {what} after {timeout}s")
        return 0.0

    def active(self) -> RaftNode | None:
        for n in self.nodes:
            if n.alive() and n.health() == 200:
                return n
        return None

    def standbys(self) -> list[RaftNode]:
        return [n for n in self.nodes if n.alive() and n.health() == 429]

    def api(self, method: str, path: str, body: Any = None, **kw) -> Any:
        """Calls the active node."""
        node = self.active()
        if node is None:
            fail("raft cluster: no active node")
        return node.api(method, path, body, **kw)

    def scan_logs(self) -> None:
        own = frozenset(s.index for s in CANARIES.items if s.label in ("raft root token", "raft unseal key"))
        for n in self.nodes:
            for log in n.logs:
                try:
                    CANARIES.check(log.read_bytes(), f"{n.name} log {log.name}", own)
                except OSError:
                    pass

    def close(self) -> None:
        for n in self.nodes:
            n.stop()
        try:
            self.scan_logs()
        finally:
            if not os.environ.get("CS_KEEP_SERVER_LOGS"):
                shutil.rmtree(self.workdir, ignore_errors=True)
