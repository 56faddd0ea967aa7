#!/usr/bin/env bash
# inspircd-down.sh [WORKDIR] [PORT] — stop the InspIRCd started by inspircd-up.sh (by its recorded PID only).
set -euo pipefail
PORT="${2:-26669}"
WORK="${1:-/tmp/inspircd-$PORT}"
bash "$(dirname "$0")/pid-down.sh" "$WORK/inspircd.pid" inspircd
