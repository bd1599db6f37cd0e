#!/usr/bin/env bash
# The benchmark (docs/bench/README.md): crunch-secrets side by side with curl, Python hvac,
# consul-template, `bao agent` and a `bao kv get` loop against one real OpenBao over TLS on
# loopback, then the load test (200 concurrent Arvados logins through vault-plugin-auth-arvados
# and the Arvados stand-in). Regenerates docs/bench/results.md, results.json, bench.png,
# load.md and load.json.
#
# Usage: bash bench/run.sh [--quick] [--out DIR] [--only side-by-side|load] [--nice N] [--budget S]
#   --quick   N in {0, 1, 10}, 3 runs each, and 20 concurrent logins, written to
#             build-release/bench-quick (the CI smoke test: it checks that every tool still
#             works and no login fails; it asserts no timing).
#   --nice N  run the servers and the tools at this nice value (e.g. -10 as root on a machine
#             busy with other work, so the figures measure the tools rather than the queue).
#   --budget S  seconds a warm-up run may take before the tool is reported as over budget
#             (default 30; a busy machine may need more for the `bao kv get` loop at N = 100).
#
# Installs what it needs: Debian packages (packaging/install-deps.sh, strace), OpenBao
# (test/openbao/build.sh, cached), hvac and matplotlib from PyPI into a virtualenv and
# consul-template from the Go module proxy, both cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/bench.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export PATH=${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/toolchain/go1.25.8/bin:$PATH:/usr/local/go/bin
export GOFLAGS=${GOFLAGS:--mod=mod} GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/bench
readonly CONSUL_TEMPLATE_VERSION=v0.41.1 HVAC_VERSION=2.4.0
log() { printf 'bench/run.sh: %s\n' "$*" >&2; }

quick=0
out=
only=
nice_value=0
budget=
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    --only) only=$2; shift ;;
    --nice) nice_value=$2; shift ;;
    --budget) budget=$2; shift ;;
    *) log "unknown argument $1 (usage: bash bench/run.sh [--quick] [--out DIR] [--only side-by-side|load] [--nice N] [--budget S])"; exit 64 ;;
  esac
  shift
done
if [[ -z $out ]]; then
  if ((quick)); then out=build-release/bench-quick; else out=docs/bench; fi
fi

bash packaging/install-deps.sh
need=()
command -v strace >/dev/null || need+=(strace)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  log "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bao=$(bash test/openbao/build.sh)

log "crunch-secrets release build (build-release)"
[[ -f build-release/build.ninja ]] || meson setup build-release --buildtype=release -Dtests=false >/dev/null
ninja -C build-release -j2 >/dev/null
strip -o build-release/crunch-secrets.stripped build-release/crunch-secrets
mkdir -p build-release/bench
for c in stamp launch; do
  gcc -O2 -static -Wall -Wextra -Werror -o "build-release/bench/$c" "bench/$c.c"
done
log "vault-plugin-auth-arvados (build-release/plugins)"
mkdir -p build-release/plugins
bash vault-plugin-auth-arvados/build.sh build-release/plugins/vault-plugin-auth-arvados

mkdir -p "$cache/bin"
venv=$cache/venv
if ! "$venv/bin/python" -c "import importlib.metadata as m, matplotlib; assert m.version('hvac') == '$HVAC_VERSION'" 2>/dev/null; then
  log "pip install hvac==$HVAC_VERSION matplotlib into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "hvac==$HVAC_VERSION" matplotlib
fi

ct=$cache/bin/consul-template
ct_note=
if [[ ! -x $ct || $("$ct" -version 2>&1) != *"${CONSUL_TEMPLATE_VERSION}"* ]]; then
  log "go install github.com/hashicorp/consul-template@$CONSUL_TEMPLATE_VERSION"
  if ! GOBIN=$cache/bin go install -trimpath -ldflags='-s -w' \
      "github.com/hashicorp/consul-template@$CONSUL_TEMPLATE_VERSION" >"$cache/consul-template.log" 2>&1; then
    reason=$(grep -v '^go: downloading' "$cache/consul-template.log" | tail -n 3 | tr '\n' ' ')
    ct_note="consul-template $CONSUL_TEMPLATE_VERSION could not be built from the Go module proxy: $reason"
    log "$ct_note"
    ct=
  fi
fi
if [[ -n $ct ]]; then
  ct_note="consul-template $CONSUL_TEMPLATE_VERSION, built with \`go install\` from the Go module proxy."
fi

args=(--bao "$bao" --crunch-secrets "$repo/build-release/crunch-secrets.stripped"
  --stamp "$repo/build-release/bench/stamp" --launch "$repo/build-release/bench/launch" --python "$venv/bin/python"
  --consul-template "$ct" --consul-template-note "$ct_note" --out "$out")
if ((quick)); then
  args+=(--quick --ns 0,1,10 --runs 3 --budget "${budget:-20}")
elif [[ -n $budget ]]; then
  args+=(--budget "$budget")
fi
load_args=(--bao "$bao" --plugin "$repo/build-release/plugins/vault-plugin-auth-arvados"
  --crunch-secrets "$repo/build-release/crunch-secrets.stripped" --stamp "$repo/build-release/bench/stamp"
  --launch "$repo/build-release/bench/launch" --out "$out")
if ((quick)); then
  load_args+=(--quick --processes 20)
fi
start=$(date +%s)
if [[ $only != load ]]; then
  nice -n "$nice_value" "$venv/bin/python" bench/bench.py "${args[@]}"
fi
if [[ $only != side-by-side ]]; then
  nice -n "$nice_value" "$venv/bin/python" bench/load.py "${load_args[@]}"
fi
log "done in $(($(date +%s) - start)) s: $out/results.md, $out/bench.png, $out/load.md"
