#!/usr/bin/env bash
# deb-unpack.sh CACHE SUITE MIRROR PACKAGE... — fetch Debian packages from SUITE and unpack them all
# into CACHE/root (no install, no maintainer scripts), with apt state of its own under CACHE/apt:
# the host's /etc/apt and /var/lib/apt are not touched. MIRROR empty: the first URI in
# /etc/apt/sources.list.d/debian.sources, else deb.debian.org. Serialised by CACHE.lock; a CACHE/root
# already there is kept. Progress on stderr. Used by ergo-up.sh, ngircd-up.sh and inspircd-up.sh.
set -euo pipefail
CACHE="$1" SUITE="$2" MIRROR="$3"; shift 3
log() { echo "[deb-unpack $(date +%T.%3N)] $*" >&2; }
mkdir -p "$CACHE"
(
  flock 9
  [[ -d "$CACHE/root" ]] && exit 0
  t0=$(date +%s.%N)
  MIRROR="${MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}"
  MIRROR="${MIRROR:-http://deb.debian.org/debian}"
  A="$CACHE/apt"
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main" > "$A/sources.list"
  OPTS=(-o "Dir::Etc::sourcelist=$A/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$A/lists"
        -o "Dir::Cache=$A/cache" -o Acquire::Check-Valid-Until=false -o Acquire::Languages=none
        -o APT::Sandbox::User=root -o Debug::NoLocking=1)
  log "fetching $* from Debian $SUITE ($MIRROR)"
  apt-get -q "${OPTS[@]}" update >&2
  rm -rf "$CACHE/debs" && mkdir -p "$CACHE/debs"
  (cd "$CACHE/debs" && apt-get -q "${OPTS[@]}" download "$@" >&2)
  rm -rf "$CACHE/root.tmp"
  for deb in "$CACHE"/debs/*.deb; do dpkg-deb -x "$deb" "$CACHE/root.tmp"; done
  mv "$CACHE/root.tmp" "$CACHE/root"
  rm -rf "$A" "$CACHE/debs"   # the 10 MB Packages index and the .debs are no longer needed
  log "unpacked in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')s"
) 9>"$CACHE.lock"
