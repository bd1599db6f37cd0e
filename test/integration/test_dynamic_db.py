"""OpenBao's database secrets engine against a real PostgreSQL: the credentials it hands out
log in, renewal keeps them valid past their first TTL, and revocation makes them stop working.
These check the test environment itself before crunch-secrets' supervise mode relies on it."""

from __future__ import annotations

import time

from postgres import configure_database_engine, new_creds


def test_database_engine_credentials_log_in_and_stop_after_revoke(make_bao, postgres):
    bao = make_bao(seeded=False)
    configure_database_engine(bao, postgres, default_ttl="30s", max_ttl="60s")
    resp = new_creds(bao)
    user, password = resp["data"]["username"], resp["data"]["password"]
    assert resp["lease_id"].startswith("database/creds/app/")
    assert resp["renewable"] is True
    assert 0 < resp["lease_duration"] <= 30
    assert postgres.can_login(user, password)

    bao.api("PUT", "sys/leases/revoke", {"lease_id": resp["lease_id"]})
    assert not postgres.can_login(user, password)
    assert not postgres.role_exists(user)


def test_database_credentials_expire_with_the_lease_unless_renewed(make_bao, postgres):
    bao = make_bao(seeded=False)
    configure_database_engine(bao, postgres, default_ttl="3s", max_ttl="30s")
    kept = new_creds(bao)
    dropped = new_creds(bao)
    time.sleep(2)
    renewed = bao.api("PUT", "sys/leases/renew", {"lease_id": kept["lease_id"], "increment": 3})
    assert renewed["lease_id"] == kept["lease_id"]
    time.sleep(2.5)
    # 4.5 s after issue: the renewed role still logs in; the other one's VALID UNTIL has passed
    # (OpenBao also revokes the expired lease, which drops the role).
    assert postgres.can_login(kept["data"]["username"], kept["data"]["password"])
    assert not postgres.can_login(dropped["data"]["username"], dropped["data"]["password"])
