#!/usr/bin/env bash
# Runs the whole test suite: vet, then every test with the race detector.
# Interop tests use real BitTorrent tools from Debian (scripts/deps.txt);
# missing ones are installed when this runs as root or with sudo, and the
# tests that need a tool still missing skip with a message saying which.
# With CI set, a missing tool fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done < scripts/deps.txt

# Node.js runs the npm tracker and DHT node; many machines already have a
# newer one than Debian's, so the Debian packages are only a fallback.
if ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi

if ((${#missing[@]})) && command -v apt-get >/dev/null; then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="no"; fi
  fi
  if [[ "$sudo" != "no" ]]; then
    echo "installing test tools: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian's opentracker package enables a machine-wide service on port
    # 6969 where systemd runs; the tests start their own, on other ports.
    if command -v systemctl >/dev/null && systemctl is-enabled opentracker >/dev/null 2>&1; then
      $sudo systemctl disable --now opentracker >/dev/null 2>&1 || true
    fi
  else
    echo "not root and no sudo: tests needing ${missing[*]} will skip"
  fi
fi

# The npm tracker and DHT node (bittorrent-dht) some interop tests run
# (internal/swarmtest/node): install them from package-lock.json when
# missing or older than the lock file.
# --ignore-scripts: the package's client needs a WebRTC add-on that cannot
# build offline; the tests use only its server.
node_dir=internal/swarmtest/node
if [[ ! -d "$node_dir/node_modules" || "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]]; then
  if command -v npm >/dev/null; then
    echo "installing $node_dir/node_modules (npm ci)"
    (cd "$node_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  else
    echo "npm not found: tests needing bittorrent-tracker and bittorrent-dht ($node_dir) will skip"
  fi
fi

if [[ -n "${CI:-}" ]]; then
  export AIOTORRENT_REQUIRE_INTEROP=1
fi

go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n "$unformatted" ]]; then
  echo "gofmt needed:" $unformatted >&2
  exit 1
fi
go test -race -count=1 -timeout 30m ./... "$@"
