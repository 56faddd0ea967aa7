#!/usr/bin/env bash
# pid-down.sh PIDFILE NAME — stop the process recorded in PIDFILE (only if its command line names
# NAME: a reused PID is left alone): SIGTERM, then SIGKILL after 10 s. Removes PIDFILE. Used by
# ergo-down.sh, ngircd-down.sh and inspircd-down.sh.
set -euo pipefail
PIDFILE="$1" NAME="$2"
log() { echo "[$NAME-down $(date +%T.%3N)] $*" >&2; }
if [[ ! -f "$PIDFILE" ]]; then log "no pid file $PIDFILE; nothing to stop"; exit 0; fi
pid="$(cat "$PIDFILE")"
if kill -0 "$pid" 2>/dev/null && grep -qa "$NAME" "/proc/$pid/cmdline" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "pid $pid ignored SIGTERM for 10s; sending SIGKILL"; kill -KILL "$pid"; fi
  log "stopped pid $pid"
else
  log "pid $pid not running (stale pid file)"
fi
rm -f "$PIDFILE"
