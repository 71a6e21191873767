#!/usr/bin/env bash
# Idempotent set-up for trellis: system packages, npm dependencies, native addon, TypeScript build.
#
# Used by `npm run lab`, by `npm test` (as pretest) and by CI. Runs unattended (no stdin, CI=true).
# Quiet and fast (well under a second) when everything is already in place; says what it does otherwise.
#
# Environment:
#   TRELLIS_SETUP_SKIP_APT=1   do not check or install Debian packages (e.g. on a non-Debian dev box)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# Debian packages the daemon, the tests and the lab use.
packages=(
  iproute2 nftables iptables conntrack tcpdump iperf3 dnsmasq-base dnsperf docker.io
  busybox-static iputils-ping netcat-openbsd procps jq dnsutils
)

say() { printf 'setup: %s\n' "$*"; }
die() {
  printf 'setup: error: %s\n' "$*" >&2
  exit 1
}

# Prints the packages from "${packages[@]}" that dpkg does not report as installed ("ii").
# One dpkg-query call for all of them keeps the no-op path fast.
missing_packages() {
  local installed
  installed="$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${packages[@]}" 2>/dev/null || true)"
  local p
  for p in "${packages[@]}"; do
    if ! grep -qE "^ii +${p}\$" <<<"$installed"; then
      printf '%s\n' "$p"
    fi
  done
}

ensure_packages() {
  [[ "${TRELLIS_SETUP_SKIP_APT:-0}" == 1 ]] && return 0
  command -v dpkg-query >/dev/null || die "dpkg-query not found: this set-up expects Debian 12 (set TRELLIS_SETUP_SKIP_APT=1 to skip)"
  local missing
  mapfile -t missing < <(missing_packages)
  ((${#missing[@]} == 0)) && return 0
  [[ "$(id -u)" == 0 ]] || die "missing Debian packages (${missing[*]}); run this as root"
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  local log
  log="$(mktemp)"
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    </dev/null >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    die "apt-get failed"
  fi
  rm -f "$log"
  mapfile -t missing < <(missing_packages)
  ((${#missing[@]} == 0)) || die "still missing after apt-get install: ${missing[*]}"
}

# True when any file under the given paths (matching -name PATTERN) is newer than STAMP.
newer_than() {
  local stamp="$1" pattern="$2"
  shift 2
  local found
  found="$(find "$@" -name "$pattern" -newer "$stamp" -print -quit 2>/dev/null || true)"
  [[ -n "$found" ]]
}

build_stamp="dist/.setup-build-stamp"

ensure_node_modules() {
  command -v node >/dev/null || die "node not found (Node.js >= 20.19 is required)"
  command -v npm >/dev/null || die "npm not found"
  # npm writes node_modules/.package-lock.json on every install: older than package-lock.json = stale.
  if [[ -f node_modules/.package-lock.json && ! package-lock.json -nt node_modules/.package-lock.json ]]; then
    return 0
  fi
  say "installing npm dependencies (npm ci; builds the native addon and compiles TypeScript too)"
  # npm ci runs our own install (node-gyp) and prepare (tsc) scripts.
  npm ci --no-audit --no-fund --loglevel=error </dev/null || die "npm ci failed"
  mkdir -p dist && touch "$build_stamp"
}

ensure_native() {
  local addon=build/Release/trellis_native.node
  if [[ -f "$addon" ]] && ! newer_than "$addon" '*' native binding.gyp; then
    return 0
  fi
  say "building the native addon (node-gyp rebuild)"
  # `npm run install` runs the package's own "node-gyp rebuild" script with the node-gyp that ships
  # inside npm; `npx node-gyp` would fetch node-gyp from the registry, as it is no local dependency.
  npm run --silent install </dev/null || die "native addon build failed"
}

ensure_dist() {
  if [[ -f "$build_stamp" ]] &&
    ! newer_than "$build_stamp" '*.ts' lib test bench &&
    ! newer_than "$build_stamp" '*.json' tsconfig.json package.json; then
    return 0
  fi
  say "compiling TypeScript (tsc -p tsconfig.json)"
  local rc=0
  npx --no-install tsc -p tsconfig.json </dev/null || rc=$?
  case "$rc" in
  0) touch "$build_stamp" ;;
  # tsc exit 2: type errors, but the JavaScript was emitted. Keep going (the lab can still run; `npm test`
  # compiles again and fails on them); no stamp, so the next run compiles again.
  2) say "warning: TypeScript reported errors (output was still emitted)" ;;
  *) die "TypeScript compilation failed (tsc exit $rc)" ;;
  esac
}

ensure_packages
ensure_node_modules
ensure_native
ensure_dist
