#!/usr/bin/env bash
# Run the end-to-end suites against real peers on 127.0.0.1: Synapse (Debian sid, in a chroot that
# is built on first use, ~1 minute) and the bridge under test. Prints what it is doing as it goes.
# Usage: bash test/harness/e2e.sh [vitest args...]     (from the repo root, after `npm run build`)
# Env: TRESTLE_E2E_DIR (work dir, default .trestle-test), TRESTLE_E2E_SYNAPSE_PORT (28008),
#      TRESTLE_E2E_AS_PORT (29330), TRESTLE_E2E_IRC_PORT (26667), TRESTLE_E2E_IRC_TLS_PORT (ergo's TLS
#      listener, 26697), TRESTLE_E2E_DISCORD_PORT (27110), TRESTLE_E2E_KEEP=1 leaves Synapse running afterwards.
#      The ngIRCd and InspIRCd suites start their servers themselves: TRESTLE_E2E_PLAIN_IRC_PORT (26668),
#      TRESTLE_E2E_INSPIRCD_PORT (26669), TRESTLE_E2E_NETSPLIT_PORT (26670: two linked InspIRCd servers
#      take it and the next three), TRESTLE_E2E_FLOOD_PORT (26674: an InspIRCd strict about flooding).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT_DIR="$PWD"
DIR="${TRESTLE_E2E_DIR:-$ROOT_DIR/.trestle-test}"
SYN_PORT="${TRESTLE_E2E_SYNAPSE_PORT:-28008}"
AS_PORT="${TRESTLE_E2E_AS_PORT:-29330}"
IRC_PORT="${TRESTLE_E2E_IRC_PORT:-26667}"
IRC_TLS_PORT="${TRESTLE_E2E_IRC_TLS_PORT:-26697}"
DISCORD_PORT="${TRESTLE_E2E_DISCORD_PORT:-27110}"
ERGO_WORK="$DIR/ergo"
SYN_ROOT="${SYNAPSE_ROOT:-/tmp/synroot}"
SYN_WORK="$SYN_ROOT/srv/trestle-e2e-$SYN_PORT"
log() { echo "[e2e $(date +%T)] $*" >&2; }

[[ -f packages/core/dist/cli/main.js && -f test/dist/harness/test-network.js ]] || { log "not built: run npm run build first"; exit 1; }
bash test/harness/ergo-down.sh "$ERGO_WORK" "$IRC_PORT" >/dev/null 2>&1 || true   # a leftover from an interrupted run
rm -rf "$DIR"; mkdir -p "$DIR"

# 1. the bridge's config and registration, made with the real CLI
cat > "$DIR/bridge.yaml" <<YAML
homeserver:
  url: http://127.0.0.1:$SYN_PORT
  domain: localhost
appservice:
  id: trestle-e2e
  bindAddress: 127.0.0.1
  port: $AS_PORT
  registration: $DIR/registration.yaml
  botLocalpart: trestlebot
database:
  path: $DIR/bridge.db
permissions:
  localhost: user
  "@admin:localhost": admin
delivery:
  maxAttempts: 3
  initialBackoffMs: 200
provisioning:
  enabled: true
  secret: e2e-provisioning-secret
logging:
  level: ${TRESTLE_E2E_LOG_LEVEL:-warn}
networks:
  testa:
    module: $ROOT_DIR/test/dist/harness/test-network.js
    displayName: Test A
    userPrefix: testa_
    aliasPrefix: testa_
    failChats: ["refuses"]
  testb:
    module: $ROOT_DIR/test/dist/harness/test-network.js
    displayName: Test B
    userPrefix: testb_
  irc:
    passwordKeyFile: $DIR/irc-passwords.key
    servers:
      test:
        host: 127.0.0.1
        port: $IRC_PORT
        name: ErgoTest
        botNick: trestlebot
        lineLimit: 3
        idleTimeoutMinutes: 0
        # ergo here has no flood limits (fakelag off): suites send fast; irc-flood.test.ts tests it on
        flood: { enabled: false }
        reconnect:
          initialDelayMs: 300
          maxDelayMs: 2000
        dynamicChannels:
          exclude: ["#secret"]
          aliasTemplate: "#ergo_\$CHANNEL"
  discord:
    token: fake-bot-token
    restUrl: http://127.0.0.1:$DISCORD_PORT/api
    cdnUrl: http://127.0.0.1:$DISCORD_PORT/cdn
    linkApproval:
      timeoutSeconds: 6
YAML
log "generating the appservice registration with the trestle CLI"
node packages/core/dist/cli/main.js generate-registration --config "$DIR/bridge.yaml" --output "$DIR/registration.yaml" >&2

# 2. Synapse, restarted so it loads this run's registration
cleanup() {
  local rc=$?
  if [[ "${TRESTLE_E2E_KEEP:-0}" != 1 ]]; then
    bash test/harness/synapse-down.sh "$SYN_WORK" "$SYN_PORT" >/dev/null 2>&1 || true
    bash test/harness/ergo-down.sh "$ERGO_WORK" "$IRC_PORT" >/dev/null 2>&1 || true
  fi
  exit $rc
}
trap cleanup EXIT
bash test/harness/synapse-down.sh "$SYN_WORK" "$SYN_PORT" >/dev/null 2>&1 || true
rm -f "$SYN_WORK/homeserver.db"*   # a fresh homeserver each run: no state leaks between runs
[[ -f "$SYN_ROOT/.synapse-ready" ]] || log "building the Synapse chroot (Debian sid, first run only, about a minute)"
SYNAPSE_APPSERVICE_FILES="$DIR/registration.yaml" SYNAPSE_SERVER_NAME=localhost \
  bash test/harness/synapse-up.sh "$SYN_WORK" "$SYN_PORT" > "$DIR/synapse.url"
log "Synapse is up at $(cat "$DIR/synapse.url")"

# 3. ergo (IRCv3 server; Debian's ergochat package from trixie, fetched on first use), with a TLS
# listener too (self-signed; its certificate is $ERGO_WORK/tls.crt). Exported, so a suite that
# restarts ergo with ergo-up.sh gets the same listeners back.
export ERGO_TLS_PORT="$IRC_TLS_PORT"
log "starting ergo on 127.0.0.1:$IRC_PORT (TLS: $IRC_TLS_PORT)"
bash test/harness/ergo-down.sh "$ERGO_WORK" "$IRC_PORT" >/dev/null 2>&1 || true
bash test/harness/ergo-up.sh "$ERGO_WORK" "$IRC_PORT" >/dev/null
log "ergo is up"

# 4. the suites
export TRESTLE_E2E_IRC_PORT="$IRC_PORT" TRESTLE_E2E_IRC_TLS_PORT="$IRC_TLS_PORT" TRESTLE_E2E_ERGO_WORK="$ERGO_WORK"
export TRESTLE_E2E_DISCORD_PORT="$DISCORD_PORT"
export TRESTLE_E2E_DIR="$DIR" TRESTLE_E2E_CONFIG="$DIR/bridge.yaml" TRESTLE_E2E_SYNAPSE_URL="http://127.0.0.1:$SYN_PORT"
export TRESTLE_E2E_SHARED_SECRET="test-shared-secret" TRESTLE_E2E_SYNAPSE_LOG="$SYN_WORK/homeserver.log"
export TRESTLE_E2E_SYNAPSE_WORK="$SYN_WORK"   # for suites that stop and start this same Synapse
log "running the e2e suites"
npx vitest run --project e2e "$@"
