#!/usr/bin/env bash
# npm run bench:discord — start Synapse on its own ports, run the Discord benchmark (bench/discord.mjs),
# which starts the fake Discord in-process and the bridge as a child process, and prints JSON figures.
# Never pass/fail on speed: it prints what it measured. Run `npm run build` first.
# Env: BENCH_DIR (/tmp/trestle-bench-discord), BENCH_SYNAPSE_PORT (28408), BENCH_AS_PORT (29730),
#      BENCH_DISCORD_PORT (27410), BENCH_MESSAGES (3000 Matrix → Discord), BENCH_INBOUND (600 Discord → Matrix),
#      BENCH_CHANNELS (5 channels, each plumbed to its own room).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${BENCH_DIR:-/tmp/trestle-bench-discord}"
SYN_PORT="${BENCH_SYNAPSE_PORT:-28408}" AS_PORT="${BENCH_AS_PORT:-29730}" DISCORD_PORT="${BENCH_DISCORD_PORT:-27410}"
SYN_WORK="${SYNAPSE_ROOT:-/tmp/synroot}/srv/trestle-bench-discord-$SYN_PORT"
log() { echo "[bench $(date +%T)] $*" >&2; }
[[ -f packages/core/dist/cli/main.js && -f test/dist/harness/fake-discord/server.js ]] || { log "not built: run npm run build first"; exit 1; }
bash test/harness/synapse-down.sh "$SYN_WORK" "$SYN_PORT" >/dev/null 2>&1 || true
rm -rf "$DIR" "$SYN_WORK/homeserver.db"*; mkdir -p "$DIR"
# bench/discord.mjs adds the static channel → room mappings once it has made the rooms and channels
cat > "$DIR/bridge.yaml" <<YAML
homeserver: { url: "http://127.0.0.1:$SYN_PORT", domain: localhost }
appservice: { id: trestle-bench-discord, port: $AS_PORT, registration: "$DIR/registration.yaml", botLocalpart: benchbot }
database: { path: "$DIR/bridge.db" }
permissions: { localhost: user }
logging: { level: warn }
networks:
  discord:
    token: fake-bot-token
    restUrl: http://127.0.0.1:$DISCORD_PORT/api
    cdnUrl: http://127.0.0.1:$DISCORD_PORT/cdn
    maxMessageAgeSeconds: 0
YAML
node packages/core/dist/cli/main.js generate-registration --config "$DIR/bridge.yaml" --output "$DIR/registration.yaml" >/dev/null
log "starting Synapse on 127.0.0.1:$SYN_PORT (builds the chroot on first use)"
SYNAPSE_APPSERVICE_FILES="$DIR/registration.yaml" SYNAPSE_SERVER_NAME=localhost bash test/harness/synapse-up.sh "$SYN_WORK" "$SYN_PORT" >/dev/null
trap 'bash test/harness/synapse-down.sh "$SYN_WORK" "$SYN_PORT" >/dev/null 2>&1' EXIT
node bench/discord.mjs "$DIR" "$SYN_PORT" "$AS_PORT" "$DISCORD_PORT"
