"""conninfo.py without a kernel: finding libfuse's fuse_conn_info in a session's memory.

The real thing is tested through a mount (test_fuse_read.py::test_appends_keep_the_cache
and the mount's `describe`, which says whether auto_inval_data was turned off)."""

from __future__ import annotations

import ctypes
import struct

import pyfuse3
import pytest

from logfs.fusefs import conninfo

AUTO, RDPLUS = conninfo.FUSE_CAP_AUTO_INVAL_DATA, conninfo.FUSE_CAP_READDIRPLUS


def _session(*conns: tuple[int, bytes]) -> ctypes.Array:
    buf = ctypes.create_string_buffer(bytes(range(256)) * 4)  # noise, not zeros
    for off, raw in conns:
        ctypes.memmove(ctypes.addressof(buf) + off, raw, len(raw))
    return buf


def _conn(minor=44, max_write=1 << 20, capable=AUTO | RDPLUS | 0xFFF, want=AUTO | RDPLUS | 0x1) -> bytes:
    return struct.pack("<7I", 7, minor, max_write, 0, 131072, capable, want)


def test_finds_the_one_conn_and_nothing_else():
    buf = _session((424, _conn()))
    assert conninfo.find_conn(ctypes.addressof(buf)) == ctypes.addressof(buf) + 424


@pytest.mark.parametrize("conns, why", [
    ([], "none"),
    ([(100, _conn()), (600, _conn())], "two"),
    ([(424, _conn(want=AUTO | RDPLUS | (1 << 30)))], "want not within capable"),
    ([(424, _conn(want=RDPLUS))], "AUTO_INVAL_DATA not wanted"),
    ([(424, _conn(max_write=12))], "implausible max_write"),
])
def test_refuses_unless_exactly_one_plausible_conn(conns, why):
    buf = _session(*conns)
    with pytest.raises(conninfo.ConnInfoError):
        conninfo.find_conn(ctypes.addressof(buf))


def test_pyfuse3_session_symbol_is_found():
    value, min_vaddr = conninfo._symbol_value(pyfuse3.__file__, conninfo.SESSION_SYMBOL)
    assert value > 0 and min_vaddr >= 0
    with pytest.raises(conninfo.ConnInfoError):
        conninfo._symbol_value(pyfuse3.__file__, b"no_such_symbol_anywhere")
