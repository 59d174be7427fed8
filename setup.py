"""The one thing pyproject.toml cannot say without a warning: the C extension of the
Kafka RecordBatch codec's hot path (logfs/kafka/records.py), built by `pip install`."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("logfs.kafka._records", sources=["logfs/kafka/_records.c"],
                             extra_compile_args=["-O2", "-Wall"])])
