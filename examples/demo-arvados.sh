#!/usr/bin/env bash
# Part 3 of examples/demo.sh: a container logs in to OpenBao with its own Arvados container
# token through vault-plugin-auth-arvados; the Arvados API is the test stand-in with its
# fixture cluster zzzzz. Expects BAO_ADDR, ROOT_TOKEN, WORK (with plugins/) and CS from demo.sh.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
fixtures=test/arvados-standin/fixtures.json

python3 test/arvados-standin/standin.py --fixtures "$fixtures" --port 0 \
  --port-file "$WORK/arv.port" >"$WORK/standin.log" 2>&1 &
standin=$!
trap 'kill $standin 2>/dev/null || true' EXIT
for _ in $(seq 50); do [[ -s $WORK/arv.port ]] && break; sleep 0.1; done
arv=http://127.0.0.1:$(cat "$WORK/arv.port")
echo "  Arvados API stand-in at $arv (cluster zzzzz: alice in group lab, bob in group other)"

# The fixtures' tokens, by uuid; a container token is v2/<auth uuid>/<secret>/<container uuid>.
token() { python3 -c 'import json,sys; print(next(t["secret"] for t in json.load(open(sys.argv[1]))["tokens"] if t["uuid"]==sys.argv[2]))' "$fixtures" "$1"; }
api() { curl -sf -X "$1" -H "X-Vault-Token: $ROOT_TOKEN" ${3:+-d "$3"} "$BAO_ADDR/v1/$2"; }

echo "  Vault admin: enable the plugin, set the ceiling (arvados-*), bind role 'lab' to the lab group"
api POST sys/auth/arvados '{"type":"vault-plugin-auth-arvados"}' >/dev/null
accessor=$(api GET sys/auth | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["arvados/"]["accessor"])')
api PUT sys/policies/acl/arvados-lab '{"policy":"path \"secret/data/lab/*\" { capabilities = [\"read\"] }"}' >/dev/null
api PUT sys/policies/acl/arvados-user "{\"policy\":\"path \\\"secret/data/arvados/{{identity.entity.aliases.$accessor.name}}/*\\\" { capabilities = [\\\"read\\\"] }\"}" >/dev/null
api POST auth/arvados/config "{\"arvados_api_host\":\"$arv\",\"cluster_id\":\"zzzzz\",\"privileged_token\":\"v2/zzzzz-gj3su-admintoken00001/$(token zzzzz-gj3su-admintoken00001)\",\"allowed_policies\":[\"arvados-*\"]}" >/dev/null
api POST auth/arvados/role/lab '{"bound_group_uuids":["zzzzz-j7d0g-labgroup0000001"],"token_policies":["arvados-lab","arvados-user"],"token_ttl":"15m"}' >/dev/null
if api POST auth/arvados/role/lab '{"token_policies":["root"]}' >/dev/null 2>&1; then
  echo "  UNEXPECTED: a role above the ceiling was accepted"; exit 1
else
  echo "  a role write with policy 'root' is refused: it exceeds the admin's ceiling"
fi
api POST secret/data/lab/db '{"data":{"password":"lab-db-password-42"}}' >/dev/null
api POST secret/data/arvados/zzzzz-tpzed-aliceinlab00001/s3 '{"data":{"key":"alice-s3-key-007"}}' >/dev/null

alice="v2/zzzzz-gj3su-alicectrrun0001/$(token zzzzz-gj3su-alicectrrun0001)/zzzzz-dz642-alicerunning001"
bob="v2/zzzzz-gj3su-bobctrrun000001/$(token zzzzz-gj3su-bobctrrun000001)/zzzzz-dz642-bobrunning00001"
refs=(CRUNCH_SECRETS_ARVADOS_ROLE=lab DB_PASSWORD='vault:secret/data/lab/db#password'
      API_KEY='vault:secret/data/arvados/zzzzz-tpzed-aliceinlab00001/s3#key')

echo
echo "  alice's Running container, as examples/container-request.json sets it up (no flags):"
echo "  ARVADOS_API_TOKEN=<container token> CRUNCH_SECRETS_ARVADOS_ROLE=lab DB_PASSWORD=vault:... crunch-secrets run -- ..."
env -u VAULT_TOKEN "${refs[@]}" ARVADOS_API_TOKEN="$alice" \
  "$CS" run -- examples/show-received.sh

echo
echo "  bob's container (not in the lab group) with the same command:"
set +e
env -u VAULT_TOKEN "${refs[@]}" ARVADOS_API_TOKEN="$bob" \
  "$CS" run -- examples/show-received.sh
echo "  -> exit $? (authentication failed); nothing ran"

echo
echo "  alice's container finishes (state Complete); a login with its token now:"
curl -sf -X POST -d '{"state":"Complete"}' "$arv/_control/containers/zzzzz-dz642-alicerunning001" >/dev/null
env -u VAULT_TOKEN "${refs[@]}" ARVADOS_API_TOKEN="$alice" \
  "$CS" run -- examples/show-received.sh
echo "  -> exit $?"
set -e
