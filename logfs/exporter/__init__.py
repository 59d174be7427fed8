"""The exporter: logfs logs served read-only over HTTP/1.1, bodies sent zero-copy
with ``os.sendfile``. See docs/exporter.md.

- query.py, protocol.py: sans-IO (query strings, times, Range, routes, path safety,
  auth, limits, response heads)
- errors.py: the one error boundary (storage-core exceptions -> HTTP refusals)
- planner.py: a request as a byte span of a log, through the core's reader view
- listing.py: ``GET /``, ``GET /<topic>`` and the per-log gauges of ``/metrics``
- streaming.py: bodies and follow streams as sendfile'd slices
- logfs.watch (outside the package, shared with `logfs consume`): waking followers
  when a log's directory changes
- connection.py: one client's request cycle over h11; server.py: the accept loop and
  :func:`serve_exporter`; cli.py: ``main(argv)``
"""

from .cli import main
from .protocol import Limits
from .server import serve_exporter

__all__ = ["Limits", "main", "serve_exporter"]
