"""Kafka's wire protocol over the logfs store (docs/kafka.md).

wire.py frames and codes messages (kio, generated from Kafka's schemas); records.py is
the RecordBatch v2 codec (the hot path, hand-written); broker.py holds the shared state
and the API table; topics.py, produce.py, fetch.py and coordinator.py are the handlers;
server.py is the trio listener; cli.py is ``logfs kafka``. The listener runs in the
process that owns the logs' writer: a mount (``-o kafka=HOST:PORT``) or ``logfs kafka``.
"""
