#!/usr/bin/env bash
# ngircd-down.sh [WORKDIR] [PORT] — stop the ngIRCd started by ngircd-up.sh (by its recorded PID only).
set -euo pipefail
PORT="${2:-26668}"
WORK="${1:-/tmp/ngircd-$PORT}"
bash "$(dirname "$0")/pid-down.sh" "$WORK/ngircd.pid" ngircd
