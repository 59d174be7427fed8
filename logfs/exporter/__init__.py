"""The exporter: logfs logs served read-only over HTTP/1.1, bodies sent zero-copy
with ``os.sendfile``. See docs/exporter.md.

- query.py, protocol.py: sans-IO (query strings, times, Range, routes, path safety,
  auth, limits, response heads)
- planner.py: a request as a byte span of a log, through the core's reader view
- inotify.py: waking followers when a log's directory changes
- server.py: the trio server (sendfile, follow, limits); cli.py: ``main(argv)``
"""

from .cli import main
from .protocol import Limits
from .server import serve_exporter

__all__ = ["Limits", "main", "serve_exporter"]
