#!/usr/bin/env bash
# inspircd-up.sh [WORKDIR] [PORT] — start an isolated InspIRCd 3 on 127.0.0.1:PORT, with its IRCv3
# modules (echo-message, labeled-response, msgid, server-time, batch, client tags) and the channel
# modes ergo lacks: delayed join (+D, m_delayjoin) and auditorium (+u, m_auditorium), under which
# NAMES does not list everyone. Idempotent: an instance in WORKDIR already answering is kept.
#
# Env (all optional):
#   INSPIRCD_CACHE   where the fetched .deb is unpacked (default /tmp/inspircd-bin)
#   INSPIRCD_SUITE   Debian suite to fetch from (default bookworm: 3.15)
#   INSPIRCD_MIRROR  Debian mirror (default: first URI in /etc/apt/sources.list.d/debian.sources, else deb.debian.org)
# Linking two instances into one network (the netsplit suite):
#   INSPIRCD_NAME         this server's name (default insp.bridge.test); INSPIRCD_SID its id (3 characters)
#   INSPIRCD_SERVER_PORT  also listen for server links on this port
#   INSPIRCD_PEER         NAME:PORT of the server to link with (a link block: an operator's CONNECT links them)
#   INSPIRCD_LINK_PASS    the password both ends of the link send (required with INSPIRCD_PEER)
#   INSPIRCD_OPER_PASS    an IRC operator "tester" with this password, allowed SQUIT and CONNECT
# INSPIRCD_STRICT_FLOOD=1: clients sending faster than 2 commands a second past a burst of 20 are
#   disconnected ("Excess Flood"), as on strict networks, instead of the defaults below (no limit)
# Prints one line on stdout: 127.0.0.1:PORT. Everything else goes to stderr.
set -euo pipefail

PORT="${2:-26669}"
WORK="${1:-/tmp/inspircd-$PORT}"
CACHE="${INSPIRCD_CACHE:-/tmp/inspircd-bin}"
SUITE="${INSPIRCD_SUITE:-bookworm}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
NAME=inspircd PIDFILE="$WORK/inspircd.pid"
source "$(dirname "$0")/irc-up-lib.sh"

# ---------------------------------------------------------------- binary (private apt state: the host's is not touched)
BIN="$CACHE/root/usr/sbin/inspircd"
MODULES="$CACHE/root/usr/lib/inspircd/modules"
[[ -x "$BIN" ]] || bash "$(dirname "$0")/deb-unpack.sh" "$CACHE" "$SUITE" "${INSPIRCD_MIRROR:-}" inspircd
missing="$(ldd "$BIN" "$MODULES"/m_delayjoin.so | awk '/not found/{print $1}' | sort -u | tr '\n' ' ')"
[[ -z "$missing" ]] || { log "ERROR: inspircd needs libraries this host lacks: $missing"; exit 1; }
log "binary: $BIN ($("$BIN" --version 2>/dev/null | head -n1))"

# ---------------------------------------------------------------- config
# No host name lookups (each would wait for a resolver); queues and rates far above what tests send.
echo "InspIRCd test server on 127.0.0.1:$PORT" > "$WORK/inspircd.motd"
SID_ATTR=""; [[ -z "${INSPIRCD_SID:-}" ]] || SID_ATTR=" id=\"$INSPIRCD_SID\""
FLOOD_ATTRS='threshold="100000" commandrate="1000000"'
[[ "${INSPIRCD_STRICT_FLOOD:-}" != 1 ]] || FLOOD_ATTRS='threshold="20" commandrate="2000"'
cat > "$WORK/inspircd.conf" <<CONF
<config format="xml">
<server name="${INSPIRCD_NAME:-insp.bridge.test}" description="InspIRCd test server" network="InspTest"$SID_ATTR>
<admin name="test" nick="test" email="test@bridge.test">
<bind address="127.0.0.1" port="$PORT" type="clients">
<connect name="main" allow="*" timeout="60" pingfreq="120" hardsendq="16777216" softsendq="16777216" recvq="65536"
         localmax="100000" globalmax="100000" $FLOOD_ATTRS fakelag="no" maxchans="1000"
         limit="100000" useident="no" resolvehostnames="no" motd="main">
<files main="$WORK/inspircd.motd">
<path moduledir="$MODULES" configdir="$WORK" datadir="$WORK" logdir="$WORK" runtimedir="$WORK">
<pid file="$WORK/inspircd.pid">
<security hidesplits="no">
<module name="cap">
<module name="ircv3">
<module name="ircv3_echomessage">
<module name="ircv3_labeledresponse">
<module name="ircv3_msgid">
<module name="ircv3_servertime">
<module name="ircv3_batch">
<module name="ircv3_ctctags">
<module name="delayjoin">
<module name="auditorium">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="$WORK/inspircd.log">
CONF
if [[ -n "${INSPIRCD_SERVER_PORT:-}${INSPIRCD_PEER:-}" ]]; then
  echo '<module name="spanningtree">' >> "$WORK/inspircd.conf"
  [[ -z "${INSPIRCD_SERVER_PORT:-}" ]] || echo "<bind address=\"127.0.0.1\" port=\"$INSPIRCD_SERVER_PORT\" type=\"servers\">" >> "$WORK/inspircd.conf"
fi
if [[ -n "${INSPIRCD_PEER:-}" ]]; then
  [[ -n "${INSPIRCD_LINK_PASS:-}" ]] || { log "ERROR: INSPIRCD_PEER needs INSPIRCD_LINK_PASS"; exit 1; }
  cat >> "$WORK/inspircd.conf" <<CONF
<link name="${INSPIRCD_PEER%%:*}" ipaddr="127.0.0.1" port="${INSPIRCD_PEER##*:}" allowmask="127.0.0.1/32"
      sendpass="$INSPIRCD_LINK_PASS" recvpass="$INSPIRCD_LINK_PASS" timeout="5">
CONF
fi
if [[ -n "${INSPIRCD_OPER_PASS:-}" ]]; then
  cat >> "$WORK/inspircd.conf" <<CONF
<class name="ServerLink" commands="CONNECT SQUIT" privs="servers/auspex">
<type name="NetAdmin" classes="ServerLink">
<oper name="tester" password="$INSPIRCD_OPER_PASS" host="*@127.0.0.1" type="NetAdmin">
CONF
fi

# ---------------------------------------------------------------- start
# (--runasroot: InspIRCd refuses root otherwise, and CI runs as root)
t0=$(date +%s.%N)
(
  cd "$WORK"
  exec setsid "$BIN" --runasroot --nofork --config="$WORK/inspircd.conf" </dev/null >>"$WORK/inspircd.out" 2>&1
) &
pid=$!
wait_up "$pid" "$WORK/inspircd.out" "$t0"
