#!/usr/bin/env python3
"""Figures for docs/supervise.md: a 60 s `crunch-secrets run --supervise` holding one database
lease (OpenBao's database secrets engine, real PostgreSQL) and a KV v2 secret refreshed every
10 s, while the child sleeps (`on_change: none`: `sleep` would die of the default SIGHUP). Prints when each renewal and rotation happened (seconds after the
child started, and as a fraction of the lease's TTL) and the supervisor's CPU time and RSS.

    BAO_BIN=... CRUNCH_SECRETS_BIN=build/crunch-secrets python3 bench/supervise_idle.py [SECONDS]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "integration"))

from harness import BaoServer, crunch_secrets_bin, seed  # noqa: E402
from postgres import PostgresServer, configure_database_engine  # noqa: E402

MANIFEST = """version: 1
secrets:
  db:
    path: database/creds/app
    engine: generic
    on_change: none
  app:
    path: secret/data/app
    refresh: 10s
files:
  - path: db.json
    secret: db
    format: json
  - path: app.json
    secret: app
    format: json
"""


def proc_stats(pid: int) -> tuple[float, int, int]:
    """CPU seconds (user+system), VmRSS and VmHWM in KiB."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
    return cpu, rss, hwm


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60
    pg = PostgresServer().start()
    bao = BaoServer(name="bao-idle").start()
    try:
        seed(bao)
        configure_database_engine(bao, pg, default_ttl="24s", max_ttl="40s")
        work = Path("/dev/shm") / f"cs-idle-{os.getpid()}"
        work.mkdir()
        (work / "manifest.yml").write_text(MANIFEST)
        env = {"PATH": os.environ["PATH"], "VAULT_ADDR": bao.addr, "VAULT_TOKEN": bao.root_token,
               "CRUNCH_SECRETS_DIR": str(work / "secrets")}
        proc = subprocess.Popen([str(crunch_secrets_bin()), "run", "-v", "-m", str(work / "manifest.yml"),
                                 "--", "sleep", str(seconds)], env=env, stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL)
        events: list[tuple[float, str]] = []
        lines: list[str] = []
        t0 = [0.0]

        def read() -> None:
            for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                now = time.monotonic()
                lines.append(line)
                if "started" in line and "as pid" in line:
                    t0[0] = now
                if re.search(r"supervise: (holding|renewed|rotated|renewing|fetching|revoked)", line):
                    events.append((now, line.split("supervise: ", 1)[1]))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        while t0[0] == 0.0 and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(0.5)
        cpu0, rss0, _ = proc_stats(proc.pid)
        start = time.monotonic()
        rss_max = rss0
        while time.monotonic() - start < seconds - 1.5:
            time.sleep(1)
            if proc.poll() is not None:
                sys.exit("crunch-secrets exited early:\n" + "\n".join(lines[-20:]))
            _, rss, _ = proc_stats(proc.pid)
            rss_max = max(rss_max, rss)
        cpu1, rss1, hwm = proc_stats(proc.pid)
        span = time.monotonic() - start
        proc.wait(30)
        reader.join(5)
        print(f"supervisor over {span:.1f} s: CPU {1000 * (cpu1 - cpu0):.0f} ms "
              f"({100 * (cpu1 - cpu0) / span:.3f} %), RSS {rss0} KiB at start, {rss1} KiB at end, "
              f"max sampled {rss_max} KiB, peak (VmHWM) {hwm} KiB")
        print("events (seconds after the child started):")
        for t, what in events:
            print(f"  {t - t0[0]:7.2f}  {what}")
    finally:
        bao.close()
        pg.stop()


if __name__ == "__main__":
    main()
