"""The one thing pyproject.toml cannot say without a warning: the C extensions, built
by `pip install`: the Kafka RecordBatch codec's hot path (logfs/kafka/records.py) and
the exporter's connection loop (logfs/exporter/fastpath.py)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("logfs.kafka._records", sources=["logfs/kafka/_records.c"],
                             extra_compile_args=["-O2", "-Wall"]),
                   Extension("logfs.exporter._fastpath", sources=["logfs/exporter/_fastpath.c"],
                             extra_compile_args=["-O2", "-Wall"])])
