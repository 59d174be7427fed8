"""Tiered storage's pieces outside the core: the S3 adapter of the core's
:class:`~logfs.core.objectstore.ObjectStore` (s3.py), the object store a data
directory records (recorded.py) and the daemon's tiering task (task.py)."""
