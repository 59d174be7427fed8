# Shared by the example scripts: use the mount in $LOGFS_MNT, or make a throwaway one.
# (Sourced, not run.) at_exit CMD runs CMD when the script ends, before the unmount.
LOGFS=${LOGFS:-logfs}
if ! command -v "$LOGFS" >/dev/null 2>&1; then
  LOGFS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/logfs"
fi
_at_exit=""
at_exit() { _at_exit="$1; $_at_exit"; }
trap 'eval "$_at_exit"' EXIT
if [ -z "${LOGFS_MNT:-}" ]; then
  _tmp=$(mktemp -d)
  mkdir "$_tmp/data" "$_tmp/mnt"
  "$LOGFS" mount "$_tmp/data" "$_tmp/mnt"
  LOGFS_MNT="$_tmp/mnt"
  at_exit '"$LOGFS" umount "$_tmp/mnt"; rm -rf "$_tmp"'
  echo "(using a throwaway mount at $LOGFS_MNT; set LOGFS_MNT to use yours)" >&2
fi
