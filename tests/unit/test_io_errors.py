"""An append the disk refuses (here: RLIMIT_FSIZE, the same short write then error
that a full disk gives) raises StorageIOError with the OS errno, appends nothing
(the segment is cut back), and the log takes appends again once the limit is lifted."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r'''
import errno, os, resource, signal, sys
from logfs.core import StorageIOError, open_log_store
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
data = sys.argv[1]
store = open_log_store(data, defaults={"index.interval.bytes": "1000"})
store.create_topic("t")
log = store.create_log("t", "l")
log.append(b"a" * 5000 + b"\n")
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (8000, hard))
try:
    log.append(b"b" * 5000 + b"\n")   # crosses the limit: a short write, then EFBIG
except StorageIOError as exc:
    assert exc.errno == errno.EFBIG, exc.errno
    print("REFUSED", exc)
else:
    raise SystemExit("append past the file size limit did not fail")
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
assert log.end_offset == 5001, log.end_offset
seg = os.path.join(data, "t", "l", "%020d.log" % 0)
assert os.path.getsize(seg) == 5001, os.path.getsize(seg)
assert log.append(b"c\n") == 5001
assert log.read(0, 10**6) == b"a" * 5000 + b"\n" + b"c\n"
assert log.records == 2
store.close()
store = open_log_store(data)
assert store.log("t", "l").read(0, 10**6) == b"a" * 5000 + b"\n" + b"c\n"
store.close()
print("OK")
'''


def test_refused_append_appends_nothing_and_the_log_recovers(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(data)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "OK" in out.stdout, out.stdout + out.stderr
    assert "REFUSED" in out.stdout
