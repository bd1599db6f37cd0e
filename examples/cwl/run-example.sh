#!/usr/bin/env bash
# The CWL example end to end on this machine: builds crunch-secrets (if needed), installs the
# pinned cwltool, starts a throw-away OpenBao dev server with one secret, and runs
# examples/cwl/secret-tool.cwl with `cwltool --no-container`. The program prints only SHA-256
# digests of what it received; this script compares them with the digest of the stored value.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bash packaging/install-deps.sh
bao=$(bash test/openbao/build.sh)
cwltool=$(bash packaging/install-cwltool.sh)
build=${BUILD_DIR:-build}
[[ -f $build/build.ninja ]] || meson setup "$build" >/dev/null
ninja -C "$build" crunch-secrets >/dev/null

work=$(mktemp -d /var/tmp/crunch-secrets-cwl-XXXXXX)
shm=$(mktemp -d /dev/shm/crunch-secrets-cwl-XXXXXX)
mkdir -p "$work/bin" "$work/out"
ln -s "$repo/$build/crunch-secrets" "$work/bin/crunch-secrets"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
root_token=cwl-example-$RANDOM$RANDOM
"$bao" server -dev -dev-root-token-id="$root_token" -dev-listen-address="127.0.0.1:$port" \
  -dev-no-store-token >"$work/bao.log" 2>&1 &
bao_pid=$!
trap 'kill $bao_pid 2>/dev/null || true; rm -rf "$work" "$shm"' EXIT
export VAULT_ADDR=http://127.0.0.1:$port VAULT_TOKEN=$root_token
value="cwl-example-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
for _ in $(seq 100); do
  curl -sf -H "X-Vault-Token: $VAULT_TOKEN" -d "{\"data\":{\"password\":\"$value\"}}" \
    "$VAULT_ADDR/v1/secret/data/app" >/dev/null && break
  sleep 0.1
done
say "stored secret/data/app#password in OpenBao at $VAULT_ADDR"

cat >"$work/job.yml" <<JOB
db_password: \${vault:secret/data/app#password}
secrets_dir: $shm/secrets
JOB
say "cwltool $("$cwltool" --version | awk '{print $2}') --no-container examples/cwl/secret-tool.cwl"
PATH=$work/bin:$PATH "$cwltool" --quiet --no-container \
  --preserve-environment VAULT_ADDR --preserve-environment VAULT_TOKEN \
  --outdir "$work/out" examples/cwl/secret-tool.cwl "$work/job.yml" >/dev/null
say "what the program reported (digests only)"
cat "$work/out/report.json"
want=$(printf '%s' "$value" | sha256sum | cut -d' ' -f1)
python3 - "$work/out/report.json" "$want" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["all_equal"] and r["argv_sha256"] == sys.argv[2] and not r["vault_token_in_env"]
print("\nargv, environment and config file all received the stored value:", "yes" if ok else "NO")
sys.exit(0 if ok else 1)
PY
if grep -rqF "$value" "$work"; then
  echo "the secret value was found in a file under $work" >&2
  exit 1
fi
echo "no file under the cwltool run directory holds the value"
