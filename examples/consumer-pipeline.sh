#!/usr/bin/env bash
# A consumer pipeline: follow a log with tail -F, filter it with grep, and append
# the matches to another log, which other consumers can follow in turn.
#
#   LOGFS_MNT=/mnt/logs examples/consumer-pipeline.sh
#
# tail -F keeps following across a log being deleted and created again; grep needs
# --line-buffered so each match is written (and appended) as soon as it is seen.
set -euo pipefail
source "$(dirname "$0")/_common.sh"

mkdir -p "$LOGFS_MNT/orders"
touch "$LOGFS_MNT/orders/eu" "$LOGFS_MNT/orders/failed"

# the consumer: runs until killed (at exit, kill the pipeline's processes)
(
  tail -F -n +1 "$LOGFS_MNT/orders/eu" 2>/dev/null \
    | grep --line-buffered '"status":"failed"' >> "$LOGFS_MNT/orders/failed"
) &
consumer=$!
at_exit 'pkill -P $consumer; wait $consumer 2>/dev/null || true'

# the producer
for i in $(seq 1 20); do
  if [ $((i % 5)) -eq 0 ]; then status=failed; else status=ok; fi
  printf '{"id":%d,"status":"%s"}\n' "$i" "$status" >> "$LOGFS_MNT/orders/eu"
done

# wait (at most 10 s) until the consumer has caught up: 4 failures
for _ in $(seq 1 100); do
  [ "$(wc -l < "$LOGFS_MNT/orders/failed")" -ge 4 ] && break
  sleep 0.1
done
echo "failed orders:"
cat "$LOGFS_MNT/orders/failed"
