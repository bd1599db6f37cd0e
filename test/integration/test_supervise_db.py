"""Supervise mode against OpenBao's database secrets engine and a real PostgreSQL: a child holds
a live connection across several renewals and one rotation (short TTL and max_ttl), the
credentials file is replaced atomically and the child signalled; after the run the credentials
no longer log in (checked against PostgreSQL) and crunch-secrets' token is revoked. Vault sealed
for a while keeps the last good files, and renewal resumes after unseal."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from pathlib import Path

from harness import CANARIES, fail
from postgres import configure_database_engine
from supervised import DBCHILD, Supervised, read_lines, wait_for

DB_POLICY = """
path "database/creds/app" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
"""

MANIFEST = """version: 1
secrets:
  db:
    path: database/creds/app
    engine: generic
    on_change: signal
    signal: HUP
files:
  - path: db.json
    secret: db
    format: json
"""


def approle(bao, *, token_ttl: str, token_max_ttl: str) -> dict[str, str]:
    """An AppRole whose tokens may read database credentials; returns the login environment."""
    bao.policy("db", DB_POLICY)
    bao.api("POST", "sys/auth/approle", {"type": "approle"})
    bao.api("POST", "auth/approle/role/db", {"token_policies": ["db"], "token_ttl": token_ttl,
                                             "token_max_ttl": token_max_ttl})
    role_id = bao.api("GET", "auth/approle/role/db/role-id")["data"]["role_id"]
    secret_id = CANARIES.add("approle secret id (db)",
                             bao.api("POST", "auth/approle/role/db/secret-id")["data"]["secret_id"])
    return {"CRUNCH_SECRETS_ROLE_ID": role_id, "CRUNCH_SECRETS_SECRET_ID": secret_id}


def accessors(bao) -> set[str]:
    return set(bao.api("LIST", "auth/token/accessors")["data"]["keys"])


class FileWatcher(threading.Thread):
    """Reads the credentials file every 10 ms while the run lasts: every read must be complete
    JSON (the file is replaced by rename, never rewritten in place). Registers each password."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stop = False
        self.users: list[str] = []
        self.partial = 0
        self.reads = 0
        self.samples: list[tuple[float, str]] = []

    def run(self) -> None:
        while not self.stop:
            try:
                raw = self.path.read_bytes()
            except (FileNotFoundError, PermissionError):
                time.sleep(0.01)
                continue
            self.reads += 1
            try:
                data = json.loads(raw)
            except ValueError:
                self.partial += 1
                continue
            if data["password"] and all(s.value != data["password"] for s in CANARIES.items):
                CANARIES.add("dynamic database password", data["password"])
            if not self.users or self.users[-1] != data["username"]:
                self.users.append(data["username"])
            self.samples.append((time.monotonic(), data["username"]))
            time.sleep(0.01)


def creds_of(samples_path: Path) -> dict:
    return json.loads(samples_path.read_text())


def test_live_connection_across_renewals_and_a_rotation_then_revoked(cs, make_bao, postgres):
    bao = make_bao(seeded=False)
    # 3 s leases capped at 9 s: renewals at about 2, 4, 6 and 8 s; the last one is capped
    # (max_ttl) so new credentials are fetched before 9 s, and the child is sent SIGHUP.
    configure_database_engine(bao, postgres, default_ttl="3s", max_ttl="9s")
    login = approle(bao, token_ttl="6s", token_max_ttl="120s")
    work = cs.tmpfs_dir()
    manifest = work / "manifest.yml"
    manifest.write_text(MANIFEST)
    report = work / "dbchild.report"
    before = accessors(bao)
    run = Supervised(cs, ["run", "-v", "--wait", "20s", "--auth", "approle", "-m", str(manifest), "--",
                          sys.executable, str(DBCHILD)],
                     dict(login, DBCHILD_CREDS="{secrets}/db.json", DBCHILD_PORT=str(postgres.port),
                          DBCHILD_REPORT=str(report), DBCHILD_SECONDS="12"),
                     bao=bao, token=None)
    creds = run.secrets_dir / "db.json"
    watcher = FileWatcher(creds)
    watcher.start()
    try:
        wait_for(lambda: any(l.startswith("connected ") for l in read_lines(report)), 30,
                 "the child's first connection")
        during = accessors(bao) - before
        assert len(during) == 1, f"expected crunch-secrets' token, got {len(during)} new accessors"
        code = run.wait(60)
    finally:
        watcher.stop = True
        watcher.join(5)
    assert code == 0, run.describe()
    lines = read_lines(report)
    assert not [l for l in lines if l.startswith("fail")], lines
    connected = [l for l in lines if l.startswith("connected ")]
    rotated = [l for l in lines if l.startswith("rotated ")]
    assert len(connected) == 1 and len(rotated) == 1, lines
    first = connected[0].split()[1]
    old, new = rotated[0].split()[1], rotated[0].split()[3]
    assert old == first and new != first, lines
    queries = [l for l in lines if l.startswith("ok ")]
    assert len(queries) >= 40, f"only {len(queries)} queries in 12 s"
    assert {l.split()[2] for l in queries} == {first, new}
    # The file went from the first user to the second, never through a partial state.
    assert watcher.users == [first, new], watcher.users
    assert watcher.partial == 0, f"{watcher.partial} of {watcher.reads} reads saw a partial file"
    # Status lines: several renewals, one rotation, hashed lease ids only.
    err = run.err
    renewals = re.findall(r"renewed (lease-[0-9a-f]{12}) of db: ttl (\d+)s", err)
    assert len(renewals) >= 3, err[-3000:]
    assert len(re.findall(r"rotated db: lease-[0-9a-f]{12} -> lease-[0-9a-f]{12}", err)) == 1, err[-3000:]
    assert "database/creds/app/" not in err, "a raw lease id reached the log"
    assert re.search(r"revoked lease-[0-9a-f]{12}", err), err[-2000:]
    assert "revoked the token" in err, err[-2000:]
    # After the run: the files are gone, neither user logs in or exists, the token is revoked.
    assert not creds.exists()
    for user in (first, new):
        assert not postgres.role_exists(user), f"role {user} still exists after the run"
    assert accessors(bao) - before == set(), "crunch-secrets' token was not revoked"


def test_sealed_vault_keeps_the_files_and_renewal_resumes_after_unseal(cs, make_bao, postgres):
    bao = make_bao(seeded=False)
    # 15 s leases: the renewal at 10 s falls in the sealed window (about 4 s to 12 s); the
    # retries must keep the files and succeed after the unseal, before the lease ends at 15 s.
    configure_database_engine(bao, postgres, default_ttl="15s", max_ttl="120s")
    login = approle(bao, token_ttl="120s", token_max_ttl="600s")
    work = cs.tmpfs_dir()
    manifest = work / "manifest.yml"
    manifest.write_text(MANIFEST)
    report = work / "dbchild.report"
    run = Supervised(cs, ["run", "-v", "--log-format", "json", "--wait", "20s", "--auth", "approle",
                          "-m", str(manifest), "--", sys.executable, str(DBCHILD)],
                     dict(login, DBCHILD_CREDS="{secrets}/db.json", DBCHILD_PORT=str(postgres.port),
                          DBCHILD_REPORT=str(report), DBCHILD_SECONDS="22"),
                     bao=bao, token=None)
    creds = run.secrets_dir / "db.json"
    watcher = FileWatcher(creds)
    watcher.start()
    try:
        wait_for(lambda: any(l.startswith("connected ") for l in read_lines(report)), 30,
                 "the child's first connection")
        started = time.monotonic()
        first = json.loads(creds.read_text())
        time.sleep(3)
        bao.seal()
        sealed_at = time.monotonic()
        time.sleep(8)
        during = json.loads(creds.read_text())
        assert during == first, "the files changed while Vault was sealed"
        bao.unseal()
        unsealed_at = time.monotonic()
        # 17 s after the first read: past the lease's first expiry (15 s), so only a renewal
        # made after the unseal keeps the password valid.
        time.sleep(max(0.0, started + 17 - time.monotonic()))
        assert postgres.can_login(first["username"], first["password"]), \
            "the credentials stopped working: the renewal did not resume after unseal"
        code = run.wait(60)
    finally:
        watcher.stop = True
        watcher.join(5)
    assert code == 0, run.describe()
    assert unsealed_at - sealed_at >= 7
    lines = read_lines(report)
    assert not [l for l in lines if l.startswith("fail")], lines
    assert watcher.users == [first["username"]], watcher.users
    # --log-format json: every line crunch-secrets wrote is one JSON object.
    records = [json.loads(line) for line in run.err.splitlines()]
    assert all(set(r) >= {"time", "level", "msg"} for r in records), records[:3]
    err = "\n".join(r["msg"] for r in records)
    # The renewal met the sealed Vault (503, retried within the round or backed off between
    # rounds) before it succeeded.
    renewed = re.search(r"renewed lease-[0-9a-f]{12} of db", err)
    assert renewed, err[-3000:]
    sealed = re.search(r"unavailable \(HTTP 503\)|renewing lease-[0-9a-f]{12} of db failed", err)
    assert sealed and sealed.start() < renewed.start(), err[-3000:]
    assert "expired" not in err, err[-3000:]
    assert not postgres.role_exists(first["username"])


def test_daaas_example_renders_and_refreshes_the_aws_credentials_file(cs, make_bao):
    """examples/supervise-aws.yml with its dynamic path replaced by a KV v2 secret re-checked
    every second (no S3-compatible secrets engine is available here; the lease machinery is the
    database tests' subject): the credentials file is rendered, replaced when the keys change,
    and the job signalled; at exit the file is gone."""
    from harness import REPO_ROOT
    from supervised import sigprobe

    bao = make_bao(seeded=False)
    keys1 = {"access_key": "AKIA" + uuid4hex()[:16].upper(), "secret_key": CANARIES.new("s3 secret 1")}
    bao.kv2_put("secret", "daaas", keys1)
    work = cs.tmpfs_dir()
    text = (REPO_ROOT / "examples" / "supervise-aws.yml").read_text()
    assert "path: aws/creds/daaas-user" in text
    sdir = work / "daaas"
    text = (text.replace("path: aws/creds/daaas-user", "path: secret/data/daaas\n    refresh: 1s")
            .replace("engine: generic", "engine: kv2")
            .replace("/dev/shm/daaas", str(sdir)))
    manifest = work / "aws.yml"
    manifest.write_text(text)
    log = work / "sig.log"
    run = Supervised(cs, ["run", "-v", "-m", str(manifest), "--", sigprobe()],
                     {"SIGPROBE_LOG": str(log), "SIGPROBE_SECONDS": "8", "CRUNCH_SECRETS_DIR": None},
                     bao=bao)
    creds = sdir / "aws" / "credentials"
    wait_for(lambda: creds.exists(), 20, "the credentials file")
    first = creds.read_text()
    assert first == (f"[default]\naws_access_key_id = {keys1['access_key']}\n"
                     f"aws_secret_access_key = {keys1['secret_key']}\n"), "unexpected rendering"
    keys2 = {"access_key": "AKIA" + uuid4hex()[:16].upper(), "secret_key": CANARIES.new("s3 secret 2")}
    bao.kv2_put("secret", "daaas", keys2)
    wait_for(lambda: creds.exists() and keys2["secret_key"] in creds.read_text(), 10,
             "the rewritten credentials file")
    wait_for(lambda: "sig 1" in read_lines(log), 10, "SIGHUP at the job")
    assert run.wait(30) == 0, run.describe()
    assert not creds.exists(), "the credentials file outlived the run"
    assert re.search(r"rotated storage: no lease -> no lease, 1 file\(s\) rewritten, action signal 1",
                     run.err), run.describe()


def uuid4hex() -> str:
    import uuid

    return uuid.uuid4().hex


def live_leases(bao) -> list[str]:
    status, resp = bao.api_status("LIST", "sys/leases/lookup/database/creds/app")
    if status == 404:
        return []
    assert status == 200, f"HTTP {status} listing leases"
    return resp["data"]["keys"]


def test_a_failure_before_the_child_starts_revokes_what_was_fetched(cs, make_bao, postgres):
    bao = make_bao(seeded=False)
    configure_database_engine(bao, postgres, default_ttl="60s", max_ttl="120s")
    work = cs.tmpfs_dir()
    manifest = work / "manifest.yml"
    manifest.write_text(MANIFEST.replace("    secret: db\n    format: json\n",
                                         "    template: \"${secret:db#no_such_key}\"\n"))
    run = Supervised(cs, ["run", "--supervise", "-m", str(manifest), "--", "true"], bao=bao)
    assert run.wait(30) == 79, run.describe()
    assert "no_such_key" in run.err
    assert not (run.secrets_dir / "db.json").exists()
    assert live_leases(bao) == [], "the lease fetched before the failure was not revoked"


def test_on_change_restart_starts_the_child_again_with_the_new_environment(cs, make_bao):
    from supervised import sigprobe

    bao = make_bao(seeded=False)
    v1 = CANARIES.new("restart v1")
    bao.kv2_put("secret", "rot", {"value": v1})
    work = cs.tmpfs_dir()
    manifest = work / "m.yml"
    manifest.write_text("""version: 1
secrets:
  rot:
    path: secret/data/rot
    key: value
    refresh: 1s
    on_change: restart
env:
  ROT: ${secret:rot}
supervise:
  stop_signal: TERM
  grace: 5s
""")
    log = work / "sig.log"
    # Each incarnation's environment is read from /proc/<pid>/environ (compared, never printed).
    run = Supervised(cs, ["run", "-v", "-m", str(manifest), "--", sigprobe()],
                     {"SIGPROBE_LOG": str(log), "SIGPROBE_SECONDS": "6"}, bao=bao)
    first = wait_for(lambda: [l for l in read_lines(log) if l.startswith("ready ")], 20, "the probe")
    pid1 = int(first[0].split()[1])
    assert Path(f"/proc/{pid1}/environ").read_bytes().split(b"\0").count(b"ROT=" + v1.encode()) == 1
    v2 = CANARIES.new("restart v2")
    bao.kv2_put("secret", "rot", {"value": v2})
    second = wait_for(lambda: [l for l in read_lines(log) if l.startswith("ready ")][1:], 20,
                      "the restarted probe")
    pid2 = int(second[0].split()[1])
    assert pid2 != pid1
    assert Path(f"/proc/{pid2}/environ").read_bytes().split(b"\0").count(b"ROT=" + v2.encode()) == 1
    assert "sig 15" in read_lines(log), "the first child did not get the stop signal"
    assert run.wait(30) == 0, run.describe()
    assert "restarting the child with the new credentials" in run.err
