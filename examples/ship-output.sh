#!/usr/bin/env bash
# Ship a program's output into a log with >>: every line it prints becomes a record.
#
#   LOGFS_MNT=/mnt/logs examples/ship-output.sh
#
# `>>` opens the log with O_APPEND; each line the program writes with one write()
# lands whole, even with several producers appending to the same log at once.
set -euo pipefail
source "$(dirname "$0")/_common.sh"

mkdir -p "$LOGFS_MNT/app"

# A stand-in for your program: three workers logging JSON lines concurrently.
worker() {
  for i in $(seq 1 100); do
    printf '{"worker":%d,"seq":%d,"msg":"tick"}\n' "$1" "$i"
  done
}
for w in 1 2 3; do
  worker "$w" >> "$LOGFS_MNT/app/events" &
done
wait

# stderr too, into its own log in the same topic
ls /nonexistent-path 2>> "$LOGFS_MNT/app/errors" || true

echo "records in app/events: $(wc -l < "$LOGFS_MNT/app/events")"
echo "last record:           $(tail -n 1 "$LOGFS_MNT/app/events")"
"$LOGFS" describe "$LOGFS_MNT/app/events" | grep -E '^(end_offset|records|segments) '
