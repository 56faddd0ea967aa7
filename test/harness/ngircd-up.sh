#!/usr/bin/env bash
# ngircd-up.sh [WORKDIR] [PORT] — start an isolated ngIRCd on 127.0.0.1:PORT: an IRC server with no
# IRCv3 beyond CAP and multi-prefix (no message-tags, echo-message, labeled-response, server-time),
# like many networks' servers. The bridge's plain-IRC fallbacks are tested against it.
# Idempotent: if the instance in WORKDIR is already running and answering, it just prints the address.
#
# Env (all optional):
#   NGIRCD_CACHE   where the fetched .debs (ngircd and libident, which the host may lack) are unpacked
#                  (default /tmp/ngircd-bin); the binary runs from there with LD_LIBRARY_PATH
#   NGIRCD_SUITE   Debian suite to fetch from (default bookworm: 26.1)
#   NGIRCD_MIRROR  Debian mirror (default: first URI in /etc/apt/sources.list.d/debian.sources, else deb.debian.org)
#   NGIRCD_OPER_PASS password for '/OPER admin <pass>' (default: oper-pass)
# Prints one line on stdout: 127.0.0.1:PORT. Everything else goes to stderr.
set -euo pipefail

PORT="${2:-26668}"
WORK="${1:-/tmp/ngircd-$PORT}"
CACHE="${NGIRCD_CACHE:-/tmp/ngircd-bin}"
SUITE="${NGIRCD_SUITE:-bookworm}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
NAME=ngircd PIDFILE="$WORK/ngircd.pid"
source "$(dirname "$0")/irc-up-lib.sh"

# ---------------------------------------------------------------- binary (private apt state: the host's is not touched)
BIN="$CACHE/root/usr/sbin/ngircd"
LIBS="$CACHE/root/usr/lib/x86_64-linux-gnu:$CACHE/root/lib/x86_64-linux-gnu"
[[ -x "$BIN" ]] || bash "$(dirname "$0")/deb-unpack.sh" "$CACHE" "$SUITE" "${NGIRCD_MIRROR:-}" ngircd libident
missing="$(LD_LIBRARY_PATH="$LIBS" ldd "$BIN" | awk '/not found/{print $1}' | tr '\n' ' ')"
[[ -z "$missing" ]] || { log "ERROR: ngircd needs libraries this host lacks: $missing"; exit 1; }
log "binary: $BIN ($(LD_LIBRARY_PATH="$LIBS" "$BIN" --version | head -n1))"

# ---------------------------------------------------------------- config
cat > "$WORK/ngircd.conf" <<CONF
[Global]
Name = plain.bridge.test
Info = ngIRCd test server (no IRCv3 tags)
Listen = 127.0.0.1
Ports = $PORT
MotdPhrase = "ngIRCd test server on 127.0.0.1:$PORT"
[Limits]
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
[Options]
DNS = no
Ident = no
PAM = no
OperCanUseMode = yes
[Operator]
Name = admin
Password = ${NGIRCD_OPER_PASS:-oper-pass}
CONF

# ---------------------------------------------------------------- start
t0=$(date +%s.%N)
(
  cd "$WORK"
  LD_LIBRARY_PATH="$LIBS" exec setsid "$BIN" --nodaemon --config "$WORK/ngircd.conf" </dev/null >>"$WORK/ngircd.log" 2>&1
) &
pid=$!
wait_up "$pid" "$WORK/ngircd.log" "$t0"
