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

if ((${#missing[@]})) && command -v apt-get >/dev/null; then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="no"; fi
  fi
  if [[ "$sudo" != "no" ]]; then
    echo "installing test tools: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "not root and no sudo: tests needing ${missing[*]} will skip"
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
go test -race -count=1 ./... "$@"
