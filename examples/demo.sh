#!/usr/bin/env bash
# The crunch-secrets demo: builds everything, starts a real OpenBao dev server (and, for the
# Arvados part, the Arvados API stand-in with vault-plugin-auth-arvados), stores demo secrets,
# runs a command through crunch-secrets three ways, and then supervises a job with dynamic
# PostgreSQL credentials. The command only shows the first three
# characters of each value it received.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export PATH=${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/toolchain/go1.25.8/bin:$PATH:/usr/local/go/bin
export GOFLAGS=${GOFLAGS:--mod=mod} GOSUMDB=${GOSUMDB:-off} GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "installing build dependencies (Debian packages, once)"
bash packaging/install-deps.sh

say "building OpenBao from the Go module proxy (cached after the first run)"
bao=$(bash test/openbao/build.sh)

say "building crunch-secrets and vault-plugin-auth-arvados"
build=${BUILD_DIR:-build}
[[ -f $build/build.ninja ]] || meson setup "$build" >/dev/null
ninja -C "$build" >/dev/null
cs=$repo/$build/crunch-secrets
work=$(mktemp -d)
mkdir -p "$work/plugins"
if [[ -x examples/demo-arvados.sh ]]; then
  bash vault-plugin-auth-arvados/build.sh "$work/plugins/vault-plugin-auth-arvados"
fi
ls -l "$cs" | awk '{print "  crunch-secrets binary:", $5, "bytes"}'

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
root_token=demo-root-$RANDOM$RANDOM
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work" /dev/shm/crunch-secrets-demo
}
trap cleanup EXIT

say "starting OpenBao dev server on 127.0.0.1:$port"
"$bao" server -dev -dev-root-token-id="$root_token" -dev-listen-address="127.0.0.1:$port" \
  -dev-no-store-token -dev-plugin-dir="$work/plugins" >"$work/bao.log" 2>&1 &
pids+=($!)
export VAULT_ADDR=http://127.0.0.1:$port
api() { # METHOD PATH [JSON]
  curl -sf -X "$1" -H "X-Vault-Token: $root_token" ${3:+-d "$3"} "$VAULT_ADDR/v1/$2" >/dev/null
}
for _ in $(seq 100); do curl -sf "$VAULT_ADDR/v1/sys/health" >/dev/null && break; sleep 0.1; done
for _ in $(seq 100); do api POST secret/data/demo/db '{"data":{"password":"s3cr3t-db-password"}}' && break; sleep 0.1; done
api POST secret/data/demo/aws '{"data":{"access_key":"AKIADEMO0000","secret_key":"demo/secret+key","session_token":"demo-session"}}'
api POST sys/mounts/kv1 '{"type":"kv","options":{"version":"1"}}'
api POST kv1/demo/api '{"key":"api-key-1234567"}'
echo "  stored secret/data/demo/db, secret/data/demo/aws (KV v2) and kv1/demo/api (KV v1)"

say "1. references in the environment (vault-env syntax), token auth"
echo "  \$ DB_PASSWORD='vault:secret/data/demo/db#password' API_KEY='vault:kv1/demo/api#key' \\"
echo "    DB_URL='postgres://app:\${vault:secret/data/demo/db#password}@db.example/app' \\"
echo "    crunch-secrets run -- examples/show-received.sh"
DB_PASSWORD='vault:secret/data/demo/db#password' API_KEY='vault:kv1/demo/api#key' \
  DB_URL='postgres://app:${vault:secret/data/demo/db#password}@db.example/app' \
  VAULT_TOKEN=$root_token "$cs" run --no-manifest -- examples/show-received.sh

say "2. a manifest: env, and files on tmpfs (raw, aws-credentials, dotenv, template)"
echo "  \$ crunch-secrets check -m examples/manifest.yml"
VAULT_TOKEN=$root_token "$cs" check -m examples/manifest.yml --secrets-dir /dev/shm/crunch-secrets-demo | sed 's/^/  /'
echo "  \$ crunch-secrets run -v -m examples/manifest.yml --secrets-dir /dev/shm/crunch-secrets-demo -- examples/show-received.sh"
VAULT_TOKEN=$root_token "$cs" run -v -m examples/manifest.yml \
  --secrets-dir /dev/shm/crunch-secrets-demo -- examples/show-received.sh

if [[ -x examples/demo-arvados.sh ]]; then
  say "3. inside an Arvados container: log in with the container's own Arvados token"
  BAO_ADDR=$VAULT_ADDR ROOT_TOKEN=$root_token WORK=$work CS=$cs bash examples/demo-arvados.sh
fi

if [[ -x examples/demo-supervise.sh ]]; then
  say "4. supervise mode: dynamic PostgreSQL credentials renewed, rotated and revoked"
  BAO_ADDR=$VAULT_ADDR ROOT_TOKEN=$root_token WORK=$work CS=$cs bash examples/demo-supervise.sh
fi

say "done: secrets reached the command's environment and tmpfs files; none was printed or logged"
