"""What the serving commands share (``logfs serve``, ``logfs kafka``): how they stop
(SIGINT or SIGTERM), and their error boundary: what a server that failed to start or
died says, in one line, never a traceback."""

from __future__ import annotations

import logging
import os
import signal
import sys

import trio

from logfs.core import StorageError

__all__ = ["leaf", "report_failure", "until_stopped"]


async def until_stopped(logger: logging.Logger) -> None:
    """Return at the first SIGINT or SIGTERM (logged as one line)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            logger.info("signal %d: stopping", signum)
            return


def leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def report_failure(prog: str, exc: BaseException, address: str) -> int:
    """Print why a server stopped (*exc*, as trio.run raised it) and return the exit
    code: an OSError is a failure to listen on *address*, a StorageError is said as it
    is, anything else is a bug (re-raised with LOGFS_DEBUG=1)."""
    cause = leaf(exc)
    if isinstance(cause, OSError):
        print(f"{prog}: cannot listen on {address}: {cause.strerror or cause}", file=sys.stderr)
    elif isinstance(cause, StorageError):  # NotFound for a missing DATA, and the like
        print(f"{prog}: {cause}", file=sys.stderr)
    elif os.environ.get("LOGFS_DEBUG"):
        raise exc
    else:
        print(f"{prog}: unexpected error: {type(cause).__name__}: {cause} (run with "
              "LOGFS_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
    return 1
