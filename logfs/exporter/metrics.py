"""The exporter's own figures, rendered in the Prometheus text format (0.0.4)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["ExporterMetrics"]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


TIER_GAUGES = (
    ("logfs_log_local_start_offset", "local_start_offset", "First byte offset with a local copy."),
    ("logfs_log_local_segments", "local_segments", "Segments on the local disk."),
    ("logfs_log_local_bytes", "local_bytes", "Bytes of the segments on the local disk."),
    ("logfs_log_remote_segments", "remote_segments", "Segments in the object store (the manifest)."),
    ("logfs_log_remote_bytes", "remote_bytes", "Bytes of the segments in the object store."),
    ("logfs_log_upload_backlog_segments", "upload_backlog_segments",
     "Sealed segments not uploaded yet."),
    ("logfs_log_upload_backlog_bytes", "upload_backlog_bytes", "Bytes of the sealed segments not uploaded yet."),
)


@dataclass
class ExporterMetrics:
    """Counters and gauges the server updates as it works."""

    requests: Counter = field(default_factory=Counter)   # (method, status) -> count
    bytes_sent: int = 0          # body bytes of log responses (sendfile)
    other_bytes_sent: int = 0    # heads, chunk framing, JSON and error bodies
    sendfile_calls: int = 0
    sendfile_would_block: int = 0
    connections_open: int = 0
    connections_total: int = 0
    connections_rejected: int = 0
    streams_open: int = 0        # follow responses in progress
    timeouts: int = 0
    fast_path_responses: int = 0  # answered by the C loop (fastpath.py)
    inotify_events: int = 0
    inotify_watches: int = 0

    def count_request(self, method: str, status: int) -> None:
        self.requests[(method, status)] += 1

    def render(self, logs: list[dict] | None = None) -> bytes:
        out: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, int | float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{labels} {value}")

        metric("logfs_exporter_requests_total", "counter", "HTTP requests answered, by method and status.",
               [(f'{{method="{_escape(m)}",code="{s}"}}', n) for (m, s), n in sorted(self.requests.items())])
        metric("logfs_exporter_body_bytes_sent_total", "counter", "Log bytes sent with sendfile.",
               [("", self.bytes_sent)])
        metric("logfs_exporter_other_bytes_sent_total", "counter",
               "Bytes sent other than log bodies (heads, chunk framing, JSON, errors).",
               [("", self.other_bytes_sent)])
        metric("logfs_exporter_sendfile_calls_total", "counter", "os.sendfile calls that sent bytes.",
               [("", self.sendfile_calls)])
        metric("logfs_exporter_sendfile_would_block_total", "counter",
               "sendfile calls that found the socket full (the client reads slower than we send).",
               [("", self.sendfile_would_block)])
        metric("logfs_exporter_connections_open", "gauge", "Client connections open now.",
               [("", self.connections_open)])
        metric("logfs_exporter_connections_total", "counter", "Client connections accepted.",
               [("", self.connections_total)])
        metric("logfs_exporter_connections_rejected_total", "counter",
               "Connections refused with 503 past --max-connections.", [("", self.connections_rejected)])
        metric("logfs_exporter_streams_open", "gauge", "Follow (?follow=1) responses in progress.",
               [("", self.streams_open)])
        metric("logfs_exporter_timeouts_total", "counter",
               "Connections closed for an idle or half-sent request or a stalled reader.",
               [("", self.timeouts)])
        metric("logfs_exporter_fast_path_responses_total", "counter",
               "Responses sent by the fast path (plain GETs of a fixed span on the local disk).",
               [("", self.fast_path_responses)])
        metric("logfs_exporter_inotify_events_total", "counter", "inotify events read.",
               [("", self.inotify_events)])
        metric("logfs_exporter_inotify_watches", "gauge", "Log directories watched for followers.",
               [("", self.inotify_watches)])
        if logs is not None:
            for name, key, help_ in (("logfs_log_start_offset", "start_offset", "First retained byte offset."),
                                     ("logfs_log_end_offset", "end_offset", "Bytes ever appended."),
                                     ("logfs_log_segments", "segments", "Segment files.")):
                metric(name, "gauge", help_,
                       [(f'{{topic="{_escape(d["topic"])}",log="{_escape(d["log"])}"}}', d[key]) for d in logs])
            tiered = [d for d in logs if "upload_backlog_segments" in d]
            for name, key, help_ in TIER_GAUGES:  # tiered logs only (docs/tiered-storage.md)
                if tiered:
                    metric(name, "gauge", help_,
                           [(f'{{topic="{_escape(d["topic"])}",log="{_escape(d["log"])}"}}', d[key])
                            for d in tiered])
        return ("\n".join(out) + "\n").encode()
