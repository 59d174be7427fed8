"""The FUSE adapter's one error boundary.

Nothing in logfs but this module raises ``pyfuse3.FUSEError``. Handlers in
:mod:`logfs.fusefs.operations` (async, and the plain ``write`` body that pyfuse3 may
call directly) are wrapped by :func:`fuse_handler`, which turns

- a :class:`Refused` (a refusal decided by the adapter itself, e.g. "a directory
  inside a topic"),
- a storage-core exception (the table :data:`CORE_ERRNOS`),
- an ``OSError`` (its own errno),
- and anything else (EIO, logged with a traceback and the request's arguments)

into a ``FUSEError``. Any other exception escaping a handler would end
``pyfuse3.main()`` and kill the mount, so the wrapper catches ``Exception``
(``trio.Cancelled`` is a ``BaseException`` and passes through).

Every refusal is logged as one line (docs/spec.md#8-crashes-and-bad-input). Only
ENOENT answers to ``lookup`` and ``getattr`` are logged at DEBUG: they say whether
a name or an inode still exists, which the kernel asks before every create, tools
probe all the time, and a ``tail -f`` of a deleted log asks once a second. ENOENT
from any other request (a write or a read on a log deleted while open) refuses
something and is logged at INFO like every other refusal, and so is the lookup of a
view whose log does not exist (``Refused(..., loud=True)``): a name that reads as a
view is a request for something, not a probe.
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
from typing import Any, Callable, TypeVar, overload

import pyfuse3

from logfs.core import errors as core_errors
from logfs.core.selection import BadSelection

log = logging.getLogger(__name__)


class Refused(Exception):
    """A request the adapter refuses on its own authority, with the errno to send.

    ``loud``: log it at INFO even where its (request, errno) pair is normally an
    answer logged at DEBUG (a view of a missing log: ENOENT from ``lookup``, but a
    mistake in the name the user typed, so it gets its line)."""

    def __init__(self, errno_: int, reason: str, *, loud: bool = False) -> None:
        super().__init__(reason)
        self.errno = errno_
        self.reason = reason
        self.loud = loud


# Most specific classes first: the first isinstance match wins.
CORE_ERRNOS: list[tuple[type[BaseException], int]] = [
    (core_errors.NotFound, errno.ENOENT),
    (core_errors.AlreadyExists, errno.EEXIST),
    (core_errors.NotEmpty, errno.ENOTEMPTY),
    (core_errors.InvalidName, errno.EINVAL),
    (BadSelection, errno.EINVAL),
    (core_errors.ConfigError, errno.EINVAL),
    (core_errors.NotAppendable, errno.EPERM),
    (core_errors.OffsetOutOfRange, errno.ENODATA),
    (core_errors.DataGap, errno.EIO),
    (core_errors.ReadOnlyStore, errno.EROFS),
    (core_errors.StorageIOError, errno.EIO),  # refined by .errno below
    (core_errors.StorageError, errno.EIO),
]

# (request, errno) pairs that are answers rather than refusals: logged at DEBUG only.
_QUIET = {("lookup", errno.ENOENT), ("getattr", errno.ENOENT)}


def errno_for(exc: BaseException) -> int:
    """The errno the mount reports for ``exc`` (EIO for anything unknown)."""
    if isinstance(exc, Refused):
        return exc.errno
    if isinstance(exc, core_errors.StorageIOError):
        return getattr(exc, "errno", None) or errno.EIO
    for cls, code in CORE_ERRNOS:
        if isinstance(exc, cls):
            return code
    if isinstance(exc, OSError):
        return exc.errno or errno.EIO
    return errno.EIO


def _describe_args(args: tuple[Any, ...]) -> str:
    parts = []
    for a in args:
        if isinstance(a, (bytes, bytearray, memoryview)) and len(a) > 64:
            parts.append(f"<{len(a)} bytes>")
        elif isinstance(a, pyfuse3.RequestContext):
            parts.append(f"pid={a.pid}")
        elif isinstance(a, pyfuse3.EntryAttributes):
            parts.append(f"attr(size={a.st_size}, mode={a.st_mode:o})")
        elif isinstance(a, pyfuse3.SetattrFields):
            parts.append("fields(" + ",".join(
                f for f in ("update_size", "update_mode", "update_uid", "update_gid",
                            "update_atime", "update_mtime") if getattr(a, f)) + ")")
        else:
            parts.append(repr(a))
    return ", ".join(parts)


def to_fuse_error(op: str, args: tuple[Any, ...], exc: Exception) -> pyfuse3.FUSEError:
    """Log ``exc`` as the outcome of request ``op(args)`` and return its FUSEError."""
    code = errno_for(exc)
    name = errno.errorcode.get(code, str(code))
    if isinstance(exc, (Refused, core_errors.StorageError)) and not isinstance(
        exc, core_errors.StorageIOError
    ):
        quiet = (op, code) in _QUIET and not getattr(exc, "loud", False)
        level = logging.DEBUG if quiet else logging.INFO
        log.log(level, "refused %s(%s): %s: %s", op, _describe_args(args), name, exc)
    elif isinstance(exc, (OSError, core_errors.StorageIOError)):
        log.warning("%s(%s) failed: %s: %s", op, _describe_args(args), name, exc)
    else:
        log.error("unexpected error in %s(%s), answering EIO", op, _describe_args(args),
                  exc_info=exc)
    return pyfuse3.FUSEError(code)


F = TypeVar("F", bound=Callable[..., Any])


@overload
def fuse_handler(func: F) -> F: ...
@overload
def fuse_handler(*, op: str) -> Callable[[F], F]: ...


def fuse_handler(func: F | None = None, *, op: str | None = None) -> Any:
    """Wrap an Operations method so that every exception becomes a FUSEError.

    An async method is a pyfuse3 request handler; a plain one is a request answered
    without a coroutine (``write_sync``, which pyfuse3 with patches/0003 calls instead of
    ``write``: operations.py). Both get the same boundary. ``op`` names the request in
    log lines (default: the method's name): ``@fuse_handler(op="write")``."""
    if func is None:
        return functools.partial(fuse_handler, op=op)
    name = op or func.__name__

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def wrapper(self: Any, *args: Any) -> Any:
            try:
                return await func(self, *args)
            except pyfuse3.FUSEError:
                raise
            except Exception as exc:  # noqa: BLE001 - this is the boundary
                raise to_fuse_error(name, args, exc) from None
        return wrapper

    @functools.wraps(func)
    def sync_wrapper(self: Any, *args: Any) -> Any:
        try:
            return func(self, *args)
        except pyfuse3.FUSEError:
            raise
        except Exception as exc:  # noqa: BLE001 - this is the boundary
            raise to_fuse_error(name, args, exc) from None
    return sync_wrapper
