# irc-up-lib.sh — sourced by ngircd-up.sh and inspircd-up.sh: what starting a plain IRC server on
# 127.0.0.1 needs. Set NAME (for the logs), PORT, WORK and PIDFILE before sourcing it: an instance
# already answering there is kept (its address printed, the script ends); a port something else
# holds is an error.
log() { echo "[$NAME-up $(date +%T.%3N)] $*" >&2; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}'; }

irc_ping() { # succeeds when the server registers a client (001)
  timeout 5 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/'"$PORT"' || exit 1
    printf "NICK hc$RANDOM\r\nUSER hc 0 * :health\r\n" >&3
    while IFS= read -r -t 4 line <&3; do
      case "$line" in *" 001 "*) printf "QUIT :bye\r\n" >&3; exit 0;; esac
    done
    exit 1' 2>/dev/null
}

# wait_up PID LOGFILE T0: wait (30 s at most) for the server started as PID to register a client
wait_up() {
  local pid="$1" logfile="$2" t0="$3"
  echo "$pid" > "$PIDFILE"
  for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "ERROR: $NAME exited; last log lines:"; tail -n 20 "$logfile" >&2; rm -f "$PIDFILE"; exit 1
    fi
    if irc_ping; then log "up (pid $pid) in $(since "$t0")s; log $logfile"; echo "127.0.0.1:$PORT"; exit 0; fi
    sleep 0.1
  done
  log "ERROR: no answer on 127.0.0.1:$PORT after 30s"; exit 1
}

if [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && irc_ping; then
  log "already running (pid $(cat "$PIDFILE"))"; echo "127.0.0.1:$PORT"; exit 0
fi
rm -f "$PIDFILE"
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then log "ERROR: something else already listens on 127.0.0.1:$PORT"; exit 1; fi
