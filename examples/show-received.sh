#!/bin/sh
# The demo's "application": shows what it received from crunch-secrets without printing a
# whole secret (first three characters and the length only).
mask() { v=$1; printf '%s... (%d chars)' "$(printf '%s' "$v" | cut -c1-3)" "${#v}"; }
echo "  argv: $*"
echo "  DB_PASSWORD = $(mask "${DB_PASSWORD-}")"
echo "  DB_URL      = $(printf '%s' "${DB_URL-}" | sed 's/:[^:@]*@/:***@/')"
echo "  API_KEY     = $(mask "${API_KEY-}")"
echo "  VAULT_TOKEN = ${VAULT_TOKEN-<removed from the child's environment>}"
if [ -n "${CRUNCH_SECRETS_DIR-}" ]; then
  echo "  files in CRUNCH_SECRETS_DIR=$CRUNCH_SECRETS_DIR (filesystem: $(stat -f -c %T "$CRUNCH_SECRETS_DIR")):"
  find "$CRUNCH_SECRETS_DIR" -type f | sort | while read -r f; do
    printf '    %s  mode %s  %s bytes\n' "${f#"$CRUNCH_SECRETS_DIR"/}" "$(stat -c %a "$f")" "$(stat -c %s "$f")"
  done
  if [ -f "$CRUNCH_SECRETS_DIR/aws/credentials" ]; then
    echo "  aws/credentials (keys only):"
    sed 's/=.*/= .../' "$CRUNCH_SECRETS_DIR/aws/credentials" | sed 's/^/    /'
  fi
fi
