"""A cheaper wait for the next FUSE request (the hot path of small writes).

Theory of operation
-------------------
pyfuse3's request loop (``_session_loop``) waits for every request with::

    async with read_lock:                         # a trio.Lock: yields even when free
        await trio.lowlevel.wait_readable(fd)     # always a trip through trio's epoll
    fuse_session_receive_buf(...)                 # then reads it (no await in between)

For a stream of 100-byte appends that trip — park the task, epoll_ctl, epoll_wait,
reschedule, and a free lock that still yields — was about a third of the daemon's CPU
per request (py-spy, docs/performance.md). The cheaper wait:

* when no other task is waiting for the fd, first ask ``poll(fd, 0)``: when a request
  is already queued (the usual case under load) it is read at once, without yielding.
  After ``MAX_INLINE`` such reads in a row the loop takes the event loop's path once,
  so the signal watcher, the control socket and the maintenance task are never starved;
* when none is queued, keep asking for up to ``spin_us`` microseconds (``-o spin_us=N``,
  default 50) before parking in epoll. A producer writing line after line sends its next
  request a few microseconds after our reply; catching it while still awake saves the
  sleep, the wake-up and trio's rescheduling on every write (16-20k -> 25-30k lines/s,
  docs/fuse.md). The spin happens only right after a request, so an idle mount burns
  nothing; a producer slower than one write per ``spin_us`` costs at most that much CPU
  per write.

Correctness: only this thread reads the FUSE fd; the fast path is taken only while no
other task waits for it, and between the poll and ``fuse_session_receive_buf`` there is
no ``await``, so "readable" still holds when pyfuse3 reads (exactly as with trio's own
wait). An unmounted or aborted connection polls as readable (POLLERR); the read then
reports it and the loop ends as before. Requests are handled in the same order by the
same handlers.

Two ways to get it, chosen by :func:`run_request_loop`:

1. **pyfuse3's busy polling** (``pyfuse3.main(busy_poll_us=N)``, added by
   ``patches/0002``, which logfs's build of pyfuse3 carries; pyfuse3_features.py
   detects it). pyfuse3 does all of the above itself; nothing of pyfuse3 is replaced.
2. **A proxy of trio**, for a stock pyfuse3: :func:`install` points the module global
   ``pyfuse3.trio`` at a proxy that differs in ``lowlevel.wait_readable`` (poll, spin,
   then trio's wait) and ``Lock`` (a free lock is taken without yielding). This relies
   on pyfuse3 internals, checked by tests/fuse/test_conninfo.py against the installed
   pyfuse3: (a) pyfuse3 looks ``trio`` up through that module global at call time
   (the hook ``pyfuse3.asyncio.enable()`` uses); (b) the session loop waits with
   ``trio.lowlevel.wait_readable(fd)`` inside ``async with read_lock`` and reads right
   after, and creates ``read_lock`` with ``trio.Lock()`` on the first wait (3.5; 3.4
   created it in ``pyfuse3.init()``, before the proxy is installed, which only loses the
   lock's share of the gain). If a pyfuse3 release changes that, the proxy stops
   helping — the loop stays correct, since the proxy's answers are trio's — and the
   tests say so.
"""

from __future__ import annotations

import logging
import select
import time
from typing import Any

import pyfuse3
import trio

from logfs.fusefs import pyfuse3_features

log = logging.getLogger(__name__)

MAX_INLINE = 32
DEFAULT_SPIN_US = 50


async def run_request_loop(spin_us: int = DEFAULT_SPIN_US) -> None:
    """Run ``pyfuse3.main()`` with the cheaper wait (busy polling if this pyfuse3 has it,
    else the proxy). Returns when the FUSE session ends; raises what pyfuse3.main raises."""
    if pyfuse3_features.has_busy_poll():
        log.info("request loop: pyfuse3 busy polling, spin_us=%d", spin_us)
        await pyfuse3.main(busy_poll_us=spin_us)  # type: ignore[call-arg]
        return
    log.info("request loop: fastloop's proxy of trio (%s), spin_us=%d",
             pyfuse3_features.why_missing(), spin_us)
    install(spin_us)
    try:
        await pyfuse3.main()
    finally:
        uninstall()


class _Lock:
    """trio.Lock's ``async with``, minus the yield when the lock is free."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = trio.Lock()

    async def __aenter__(self) -> None:
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


class _Lowlevel:
    def __init__(self, spin_us: int) -> None:
        self._pollers: dict[int, Any] = {}
        self._inline = 0
        self._spin_ns = spin_us * 1000

    async def wait_readable(self, fd: int) -> None:
        if self._inline < MAX_INLINE:
            p = self._pollers.get(fd)
            if p is None:
                p = self._pollers[fd] = select.poll()
                p.register(fd, select.POLLIN)
            if p.poll(0):
                self._inline += 1
                return
            if self._spin_ns:
                now = time.perf_counter_ns
                deadline = now() + self._spin_ns
                while now() < deadline:
                    if p.poll(0):
                        self._inline += 1
                        return
        self._inline = 0
        await trio.lowlevel.wait_readable(fd)

    def __getattr__(self, name: str) -> Any:
        return getattr(trio.lowlevel, name)


class _Trio:
    Lock = _Lock

    def __init__(self, spin_us: int) -> None:
        self.lowlevel = _Lowlevel(spin_us)

    def __getattr__(self, name: str) -> Any:
        return getattr(trio, name)


def install(spin_us: int = DEFAULT_SPIN_US) -> None:
    """Make a stock pyfuse3's request loop use the proxy. Call before ``pyfuse3.main()``;
    does not block."""
    pyfuse3.trio = _Trio(spin_us)  # type: ignore[attr-defined]


def uninstall() -> None:
    """Point ``pyfuse3.trio`` back at trio."""
    pyfuse3.trio = trio  # type: ignore[attr-defined]
