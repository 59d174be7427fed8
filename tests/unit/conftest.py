"""Shared fixtures of the core's unit tests.

Any ERROR logged by logfs during a test fails it (recovery's WARNINGs are expected
in the corruption tests; an error or a logged traceback never is)."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def no_logged_errors(caplog):
    caplog.set_level(logging.WARNING, logger="logfs")
    yield
    bad = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR and r.name.startswith("logfs")]
    assert not bad, "logfs logged errors:\n" + "\n".join(f"{r.name}: {r.getMessage()}" for r in bad)
