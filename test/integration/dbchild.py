"""The child of the supervise-mode database tests: holds a live PostgreSQL connection made with
the credentials crunch-secrets wrote, queries it every 0.2 s, and on SIGHUP reconnects with the
re-read credentials. It writes one line per event to $DBCHILD_REPORT (never a password):

  connected <user>      ok <n> <user>      rotated <old user> -> <new user>      fail <what>

It exits 0 after $DBCHILD_SECONDS when every query succeeded, 3 otherwise."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pg8000.native

creds_path = os.environ["DBCHILD_CREDS"]
port = int(os.environ["DBCHILD_PORT"])
report = open(os.environ["DBCHILD_REPORT"], "a", buffering=1)
seconds = float(os.environ.get("DBCHILD_SECONDS", "10"))
hup = False


def on_hup(signo, frame):
    global hup
    hup = True


signal.signal(signal.SIGHUP, on_hup)


def connect():
    with open(creds_path) as f:
        c = json.load(f)
    conn = pg8000.native.Connection(c["username"], password=c["password"], host="127.0.0.1",
                                    port=port, database="postgres", timeout=10)
    return conn, c["username"]


failures = 0
conn, user = connect()
report.write(f"connected {user}\n")
n = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    if hup:
        hup = False
        try:
            new_conn, new_user = connect()
            conn.close()
            report.write(f"rotated {user} -> {new_user}\n")
            conn, user = new_conn, new_user
        except Exception as e:  # noqa: BLE001 - the report names the error class only
            failures += 1
            report.write(f"fail reconnect {type(e).__name__}\n")
    try:
        row = conn.run("SELECT current_user")
        n += 1
        report.write(f"ok {n} {row[0][0]}\n")
    except Exception as e:  # noqa: BLE001
        failures += 1
        report.write(f"fail query {type(e).__name__}\n")
    time.sleep(0.2)
conn.close()
sys.exit(0 if failures == 0 else 3)
