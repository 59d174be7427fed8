"""What the installed pyfuse3 offers beyond a stock 3.5: the switches of ``patches/``.

logfs builds pyfuse3 from its sdist with three small patches (``patches/README.md``):

* ``Operations.enable_auto_inval_data`` (0001): ``False`` clears libfuse's
  FUSE_CAP_AUTO_INVAL_DATA in the INIT handshake, so a changed mtime no longer makes
  the kernel drop a file's cached pages (attrs.py, docs/fuse.md);
* ``pyfuse3.main(busy_poll_us=N)`` (0002): the request loop polls the FUSE fd before
  waiting in the event loop, and keeps polling up to N microseconds (fastloop.py);
* ``Operations.write_sync`` (0003): when set (to a plain function), pyfuse3 answers every
  write request by calling it, without a coroutine per request, and with busy polling
  reads the next request at once (operations.py).

Each is detected, never assumed: a stock pyfuse3 (PyPI's, or Debian's python3-pyfuse3)
lacks them, and the mount then falls back (coarse mtimes; fastloop's proxy of trio;
the async ``write`` handler, which runs the same code).
Setting ``LOGFS_IGNORE_PYFUSE3_PATCHES=1`` in the daemon's environment makes logfs
ignore them and take the fallbacks, as with a stock pyfuse3 (the tests use it, and it
is a way to compare).
"""

from __future__ import annotations

import inspect
import os

import pyfuse3

IGNORE_ENV = "LOGFS_IGNORE_PYFUSE3_PATCHES"


def ignoring_patches() -> bool:
    """True when the environment asks logfs to behave as with a stock pyfuse3."""
    return os.environ.get(IGNORE_ENV, "") not in ("", "0")


def has_auto_inval_data_switch() -> bool:
    """Whether ``Operations.enable_auto_inval_data`` exists (and is not ignored)."""
    return hasattr(pyfuse3.Operations, "enable_auto_inval_data") and not ignoring_patches()


def has_busy_poll() -> bool:
    """Whether ``pyfuse3.main()`` takes ``busy_poll_us`` (and it is not ignored)."""
    if ignoring_patches():
        return False
    try:
        return "busy_poll_us" in inspect.signature(pyfuse3.main).parameters
    except (TypeError, ValueError):  # no introspectable signature: treat as stock
        return False


def has_write_sync() -> bool:
    """Whether pyfuse3 answers writes through a plain ``Operations.write_sync`` when one
    is set (0003), without a coroutine per request (and it is not ignored)."""
    return hasattr(pyfuse3.Operations, "write_sync") and not ignoring_patches()


def why_missing() -> str:
    """Why a patch's switch is not used, for the daemon's log."""
    if ignoring_patches():
        return f"{IGNORE_ENV} is set"
    return f"pyfuse3 {pyfuse3_version()} is a stock build, without logfs's patches"


def pyfuse3_version() -> str:
    """pyfuse3's version string; a patched build ends in ``+logfs.<hash>``."""
    return str(getattr(pyfuse3, "__version__", "unknown"))
