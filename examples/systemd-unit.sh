#!/usr/bin/env bash
# Print a systemd unit that mounts logfs at boot (foreground daemon, -f).
#
#   examples/systemd-unit.sh /var/lib/logfs /mnt/logs > /etc/systemd/system/logfs-logs.service
#   systemctl daemon-reload && systemctl enable --now logfs-logs
#
# systemd stops it with SIGTERM: logfs flushes, marks DATA clean and unmounts.
set -euo pipefail
data=${1:-/var/lib/logfs}
mnt=${2:-/mnt/logs}
logfs=${LOGFS:-$(command -v logfs || echo "$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/logfs")}
cat <<UNIT
[Unit]
Description=logfs: Kafka's log, as files ($data on $mnt)
After=local-fs.target
RequiresMountsFor=$data

[Service]
Type=simple
ExecStartPre=/bin/mkdir -p $data $mnt
ExecStart=$logfs mount -f $data $mnt
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
