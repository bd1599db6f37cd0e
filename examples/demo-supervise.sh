#!/usr/bin/env bash
# Part 4 of examples/demo.sh: supervise mode with dynamic credentials. OpenBao's database
# secrets engine hands out PostgreSQL users with a 4 s lease capped at 10 s; a job holds them
# for 14 s while crunch-secrets renews the lease, fetches new credentials before max_ttl, rewrites
# the file and sends SIGHUP; when the job ends the users are revoked (PostgreSQL refuses them).
# Expects BAO_ADDR, ROOT_TOKEN, WORK and CS from demo.sh.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

bash test/postgres/pg.sh install >/dev/null
pgdir=$(mktemp -u -d /tmp/cs-demo-pg-XXXXXX) # pg.sh creates it for the postgres account
pgport=$(bash test/postgres/pg.sh start "$pgdir" | tail -n 1)
trap 'bash test/postgres/pg.sh stop "$pgdir" >/dev/null 2>&1 || true' EXIT
echo "  PostgreSQL 15 (Debian) on 127.0.0.1:$pgport"

api() { curl -sf -X "$1" -H "X-Vault-Token: $ROOT_TOKEN" ${3:+-d "$3"} "$BAO_ADDR/v1/$2"; }
api POST sys/mounts/database '{"type":"database"}' >/dev/null
python3 - "$pgport" "$pgdir/admin-password" >"$WORK/dbconfig.json" <<'PY'
import json, sys
print(json.dumps({"plugin_name": "postgresql-database-plugin", "allowed_roles": "*",
                  "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:%s/postgres?sslmode=disable" % sys.argv[1],
                  "username": "cs_admin", "password": open(sys.argv[2]).read()}))
PY
api POST database/config/pg "@$WORK/dbconfig.json" >/dev/null
rm -f "$WORK/dbconfig.json"
api POST database/roles/app '{"db_name":"pg","default_ttl":"4s","max_ttl":"10s","creation_statements":["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '"'"'{{password}}'"'"' VALID UNTIL '"'"'{{expiration}}'"'"';"]}' >/dev/null
api PUT sys/policies/acl/db '{"policy":"path \"database/creds/app\" { capabilities = [\"read\"] }\npath \"sys/leases/*\" { capabilities = [\"update\"] }"}' >/dev/null
api POST sys/auth/approle '{"type":"approle"}' >/dev/null
api POST auth/approle/role/db '{"token_policies":["db"],"token_ttl":"1m"}' >/dev/null
role_id=$(api GET auth/approle/role/db/role-id | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["role_id"])')
secret_id=$(api POST auth/approle/role/db/secret-id | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["secret_id"])')
echo "  database/creds/app: PostgreSQL users, lease 4 s, max_ttl 10 s; AppRole 'db' may read them"

cat >"$WORK/supervise.yml" <<'YAML'
version: 1
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
YAML
# The job: checks its login every 2 s with the current file and says which user it is.
cat >"$WORK/job.sh" <<'SH'
#!/bin/sh
trap 'echo "  job: SIGHUP: credentials file rewritten, reconnecting"' HUP
end=$(( $(date +%s) + 14 ))
while [ "$(date +%s)" -lt "$end" ]; do
  # User and password from one read of the file (it may be replaced between two reads).
  set -- $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["username"], d["password"])' "$CRUNCH_SECRETS_DIR/db.json")
  user=$1
  PGPASSWORD=$2 psql -X -q -A -t -h 127.0.0.1 -p "$PGPORT" -U "$user" -d postgres -c 'SELECT current_user' >/dev/null 2>&1 \
    && echo "  job: logged in as $user" || echo "  job: LOGIN FAILED as $user"
  echo "$user" >>"$LAST_USERS"
  sleep 2 & wait $!
done
SH
chmod +x "$WORK/job.sh"
echo "  \$ crunch-secrets run -v --auth approle -m supervise.yml -- job.sh"
CRUNCH_SECRETS_ROLE_ID=$role_id CRUNCH_SECRETS_SECRET_ID=$secret_id PGPORT=$pgport \
  LAST_USERS=$WORK/users "$CS" run -v --auth approle -m "$WORK/supervise.yml" \
  --secrets-dir /dev/shm/crunch-secrets-demo-supervise -- "$WORK/job.sh" 2>&1 |
  grep -E 'job:|supervise: (renewed|rotated|revoked)' | sed 's/^crunch-secrets: /  crunch-secrets: /'
echo "  after the job: the secrets directory is gone: $(ls /dev/shm/crunch-secrets-demo-supervise 2>&1 | head -1 | sed 's/^ls: //')"
for user in $(sort -u "$WORK/users"); do
  exists=$(PGPASSWORD=$(cat "$pgdir/admin-password") psql -X -q -A -t -h 127.0.0.1 -p "$pgport" -U cs_admin -d postgres \
    -c "SELECT count(*) FROM pg_roles WHERE rolname = '$user'")
  echo "  PostgreSQL: user $user $([[ $exists == 0 ]] && echo "no longer exists (lease revoked)" || echo "STILL EXISTS")"
done
