"""logfs: Kafka's log, as files."""

__version__ = "0.1.0"
