#!/usr/bin/env bash
# npm run demo — Synapse, ergo and the Trestle IRC bridge on 127.0.0.1, a Matrix user, #demo bridged,
# a short scripted conversation in both directions, then it keeps running until Ctrl-C.
# Env: DEMO_SYNAPSE_PORT (18008), DEMO_IRC_PORT (16667), DEMO_BRIDGE_PORT (19000), DEMO_DIR (demo/.state)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SYN_PORT="${DEMO_SYNAPSE_PORT:-18008}"
IRC_PORT="${DEMO_IRC_PORT:-16667}"
AS_PORT="${DEMO_BRIDGE_PORT:-19000}"
DIR="${DEMO_DIR:-$ROOT/demo/.state}"
SYN_ROOT="${SYNAPSE_ROOT:-/tmp/synroot}"
SYN_WORK="$SYN_ROOT/srv/trestle-demo-$SYN_PORT"
step=0
say() { step=$((step + 1)); echo "[demo $(date +%T)] ($step/7) $*"; }

say "building Trestle"
npm run --silent build

# a fresh start every time: the demo keeps no state between runs
bash test/harness/synapse-down.sh "$SYN_WORK" "$SYN_PORT" >/dev/null 2>&1 || true
bash test/harness/ergo-down.sh "$DIR/ergo" "$IRC_PORT" >/dev/null 2>&1 || true
rm -rf "$DIR" "$SYN_WORK/homeserver.db"*
mkdir -p "$DIR"
cat > "$DIR/trestle.yaml" <<YAML
homeserver:
  url: http://127.0.0.1:$SYN_PORT
  domain: localhost
appservice:
  id: trestle-demo
  port: $AS_PORT
  # where IRC users open files shared from Matrix: this machine, for the demo
  publicUrl: http://127.0.0.1:$AS_PORT
  registration: $DIR/registration.yaml
database:
  path: $DIR/trestle.db
permissions:
  localhost: user
  "@demo:localhost": admin
networks:
  irc:
    passwordKeyFile: $DIR/irc-passwords.key
    servers:
      demo:
        host: 127.0.0.1
        port: $IRC_PORT
        name: Demo IRC
        botNick: TrestleBot
        mappings: {}
YAML
say "generating the appservice registration"
node packages/core/dist/cli/main.js generate-registration --config "$DIR/trestle.yaml" --output "$DIR/registration.yaml"

say "starting Synapse on 127.0.0.1:$SYN_PORT (the first run builds a Debian sid chroot: about a minute)"
SYNAPSE_APPSERVICE_FILES="$DIR/registration.yaml" SYNAPSE_SERVER_NAME=localhost \
  bash test/harness/synapse-up.sh "$SYN_WORK" "$SYN_PORT" >/dev/null

say "starting ergo on 127.0.0.1:$IRC_PORT"
bash test/harness/ergo-up.sh "$DIR/ergo" "$IRC_PORT" >/dev/null

BRIDGE_PID=""
cleanup() {
  trap - EXIT INT TERM
  echo "[demo] stopping"
  [[ -n "$BRIDGE_PID" ]] && kill -TERM "$BRIDGE_PID" 2>/dev/null && wait "$BRIDGE_PID" 2>/dev/null || true
  bash test/harness/ergo-down.sh "$DIR/ergo" "$IRC_PORT" >/dev/null 2>&1 || true
  bash test/harness/synapse-down.sh "$SYN_WORK" "$SYN_PORT" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

say "starting the bridge (log: $DIR/bridge.log)"
node packages/core/dist/cli/main.js start --config "$DIR/trestle.yaml" >> "$DIR/bridge.log" 2>&1 &
BRIDGE_PID=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$AS_PORT/health" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "http://127.0.0.1:$AS_PORT/health" >/dev/null || { echo "[demo] the bridge did not start; see $DIR/bridge.log"; tail -20 "$DIR/bridge.log"; exit 1; }

say "creating a Matrix user, bridging #demo and holding a short conversation"
node demo/conversation.mjs "http://127.0.0.1:$SYN_PORT" "$IRC_PORT" "$DIR"

say "running. Try it yourself:"
cat <<TXT

  IRC:    connect any IRC client to 127.0.0.1 port $IRC_PORT (no TLS) and /join #demo
          e.g.  irssi -c 127.0.0.1 -p $IRC_PORT -n yournick
  Matrix: log in with any Matrix client to http://127.0.0.1:$SYN_PORT
          user: demo   password: $(cat "$DIR/demo-password")
          the room is #irc_demo_#demo:localhost (any other channel: join #irc_demo_#<channel>:localhost)
  Bridge: http://127.0.0.1:$AS_PORT/health and /metrics; log in $DIR/bridge.log

  Ctrl-C stops everything.
TXT
wait "$BRIDGE_PID"
