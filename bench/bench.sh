#!/usr/bin/env bash
# npm run bench / bench:irc — start Synapse and ergo on their own ports, run the IRC benchmark
# (bench/irc.mjs) which starts the bridge as a child process, print JSON figures. Never pass/fail
# on speed: it prints what it measured.
# Env: BENCH_USERS (1000), BENCH_MESSAGES (5000), BENCH_DIR (/tmp/trestle-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${BENCH_DIR:-/tmp/trestle-bench}"
SYN_PORT=28308 IRC_PORT=26967 AS_PORT=29630
SYN_WORK="${SYNAPSE_ROOT:-/tmp/synroot}/srv/trestle-bench-$SYN_PORT"
log() { echo "[bench $(date +%T)] $*" >&2; }
bash test/harness/ergo-down.sh "$DIR/ergo" "$IRC_PORT" >/dev/null 2>&1 || true
bash test/harness/synapse-down.sh "$SYN_WORK" "$SYN_PORT" >/dev/null 2>&1 || true
rm -rf "$DIR" "$SYN_WORK/homeserver.db"*; mkdir -p "$DIR"
cat > "$DIR/bridge.yaml" <<YAML
homeserver: { url: "http://127.0.0.1:$SYN_PORT", domain: localhost }
appservice: { id: trestle-bench, port: $AS_PORT, registration: "$DIR/registration.yaml", botLocalpart: benchbot }
database: { path: "$DIR/bridge.db" }
permissions: { localhost: user }
logging: { level: warn }
networks:
  irc:
    passwordKeyFile: $DIR/irc.key
    servers:
      bench:
        host: 127.0.0.1
        port: $IRC_PORT
        botNick: benchbot
        maxClients: 5000
        lineLimit: 10
        reconnect: { maxConcurrent: 1000 }
        # the bench's ergo has no flood limits (fakelag off): the bridge's own pacing would measure
        # itself (2 lines a second per sender by default), not the bridge's cost
        flood: { enabled: false }
YAML
node packages/core/dist/cli/main.js generate-registration --config "$DIR/bridge.yaml" --output "$DIR/registration.yaml" >/dev/null
log "starting Synapse (builds the chroot on first use) and ergo"
SYNAPSE_APPSERVICE_FILES="$DIR/registration.yaml" SYNAPSE_SERVER_NAME=localhost bash test/harness/synapse-up.sh "$SYN_WORK" "$SYN_PORT" >/dev/null
ERGO_EXTRA_SETTINGS=$'limits.nicklen=32' bash test/harness/ergo-up.sh "$DIR/ergo" "$IRC_PORT" >/dev/null
trap 'bash test/harness/ergo-down.sh "$DIR/ergo" "$IRC_PORT" >/dev/null 2>&1; bash test/harness/synapse-down.sh "$SYN_WORK" "$SYN_PORT" >/dev/null 2>&1' EXIT
node bench/irc.mjs "$DIR" "$SYN_PORT" "$IRC_PORT" "$AS_PORT"
