"""A throwaway PostgreSQL server (test/postgres/pg.sh) and OpenBao's database secrets engine
configured against it, for the dynamic-secrets tests.

Credentials are checked against PostgreSQL itself with `psql` (Debian's postgresql-client);
passwords travel in the PGPASSWORD environment variable of that one psql process, never in
argv or in a failure message.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from pathlib import Path

from harness import CANARIES, REPO_ROOT, BaoServer, fail

PG_SH = REPO_ROOT / "test" / "postgres" / "pg.sh"


class PostgresServer:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cs-pg-"))
        os.rmdir(self.dir)  # pg.sh creates it with the right owner
        self.port = 0
        self.admin_password = ""

    def start(self) -> "PostgresServer":
        proc = subprocess.run(["bash", str(PG_SH), "start", str(self.dir)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=600)
        if proc.returncode != 0:
            fail(f"test/postgres/pg.sh start failed (exit {proc.returncode}):\n"
                 f"{proc.stderr.decode(errors='replace')[-3000:]}")
        self.port = int(proc.stdout.decode().split()[-1])
        self.admin_password = (self.dir / "admin-password").read_text()
        CANARIES.add("postgres admin password", self.admin_password)
        return self

    def stop(self) -> None:
        subprocess.run(["bash", str(PG_SH), "stop", str(self.dir)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)

    def psql(self, user: str, password: str, sql: str, timeout: float = 30) -> tuple[int, str]:
        """Runs `sql` as `user` over TCP; returns (exit status, output). The output is only
        ever compared by the caller, and is scanned for canaries before being shown."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGPASSWORD=password, PGCONNECT_TIMEOUT="5")
        proc = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", user, "-d", "postgres", "-c", sql],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            timeout=timeout)
        out = proc.stdout.decode(errors="replace")
        CANARIES.check(out, f"psql output as {user}")
        return proc.returncode, out

    def can_login(self, user: str, password: str) -> bool:
        rc, out = self.psql(user, password, "SELECT 1")
        return rc == 0 and out.strip() == "1"

    def role_exists(self, user: str) -> bool:
        rc, out = self.psql("cs_admin", self.admin_password,
                            f"SELECT count(*) FROM pg_roles WHERE rolname = '{user}'")
        if rc != 0:
            fail(f"psql as the admin failed: {out[-500:]}")
        return out.strip() == "1"


def configure_database_engine(bao: BaoServer, pg: PostgresServer, *, mount: str = "database",
                              role: str = "app", default_ttl: str = "6s", max_ttl: str = "15s") -> None:
    """Mounts the database secrets engine, connects it to `pg` as the admin, and creates a role
    whose credentials are PostgreSQL login roles valid until the lease's expiry."""
    bao.mount(mount, "database")
    bao.api("POST", f"{mount}/config/pg", {
        "plugin_name": "postgresql-database-plugin",
        "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{pg.port}/postgres?sslmode=disable",
        "username": "cs_admin",
        "password": pg.admin_password,
        "allowed_roles": "*",
        "verify_connection": True,
    })
    add_role(bao, mount=mount, role=role, default_ttl=default_ttl, max_ttl=max_ttl)


def add_role(bao: BaoServer, *, mount: str = "database", role: str, default_ttl: str,
             max_ttl: str) -> None:
    bao.api("POST", f"{mount}/roles/{role}", {
        "db_name": "pg",
        "creation_statements": [
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
            "GRANT pg_read_all_data TO \"{{name}}\";",
        ],
        "default_ttl": default_ttl,
        "max_ttl": max_ttl,
    })


def new_creds(bao: BaoServer, *, mount: str = "database", role: str = "app") -> dict:
    """Reads a fresh set of credentials (registering the password as a canary)."""
    resp = bao.api("GET", f"{mount}/creds/{role}")
    CANARIES.add("dynamic database password", resp["data"]["password"])
    return resp


def unique_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"
