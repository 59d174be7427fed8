#!/usr/bin/env bash
# Back up the sealed segments of a data directory, while logfs runs.
#
#   examples/backup-sealed.sh /var/lib/logfs /backup/logfs
#
# A sealed segment (every .log of a log but the highest-numbered one) never changes,
# nor do its two index files, so copying them while logfs appends is safe and a
# re-run copies only segments sealed since. Each log's log.json and each topic's
# .logfs-topic.json (settings, start offset) come along. The active segment and the
# checkpoint are left out: they change under rsync. The backup so lags each log by
# at most its active segment (segment.bytes). To restore, copy DEST into an empty
# directory and mount it: the first mount checks every log (docs/operations.md).
set -euo pipefail
data=${1:?usage: backup-sealed.sh DATA DEST}
dest=${2:?usage: backup-sealed.sh DATA DEST}
cd "$data"
list=$(mktemp)
trap 'rm -f "$list"' EXIT
# every log: DATA/<topic>/<log>/log.json (names may hold spaces: NUL-separated lists)
find . -mindepth 3 -maxdepth 3 -name log.json -not -path './.logfs*' -print0 |
while IFS= read -r -d '' meta; do
  dir=${meta%/log.json}
  printf '%s\0' "$meta"
  mapfile -d '' segments < <(find "$dir" -maxdepth 1 -regextype posix-extended \
                               -regex '.*/[0-9]{20}\.log' -print0 | sort -z)
  n=${#segments[@]}
  for ((i = 0; i < n - 1; i++)); do
    base=${segments[i]%.log}
    printf '%s\0' "$base.log" "$base.index" "$base.timeindex"
  done
done > "$list"
find . -mindepth 2 -maxdepth 2 -name .logfs-topic.json -print0 >> "$list"
mkdir -p "$dest"
rsync -a --from0 --files-from="$list" . "$dest"/
echo "backed up $(tr -cd '\0' < "$list" | wc -c) files of $data to $dest"
