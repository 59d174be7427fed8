"""Never two writers (issue 13): `logfs kafka DATA` while a mount owns DATA's logs is
refused in one line that says what to do instead, and the mount is unharmed."""

from __future__ import annotations

import subprocess

from fuse_helpers import LOGFS, run


def test_logfs_kafka_refuses_data_owned_by_a_mount(mount_factory):
    m = mount_factory()
    run(f"mkdir {m.p('t')} && echo one >> {m.p('t', '0')}")
    r = subprocess.run([LOGFS, "kafka", str(m.data), "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, (r.returncode, r.stderr)
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("logfs kafka:") and "logfs mount -o kafka=" in err, err
    assert r.stdout == ""  # it never said it was listening
    run(f"echo two >> {m.p('t', '0')}")
    assert open(m.p("t", "0")).read() == "one\ntwo\n"
