"""Every script in examples/ runs, against a real mount, and does what it says."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess

import pytest

from fuse_helpers import LOGFS, REPO, mounted, run, wait_for

pytestmark = pytest.mark.fuse

EXAMPLES = REPO / "examples"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["LOGFS"] = LOGFS
    env["PATH"] = f"{os.path.dirname(LOGFS)}:{env.get('PATH', '')}"
    env.update(extra)
    return env


def test_ship_output(mnt):
    r = run([str(EXAMPLES / "ship-output.sh")], env=_env(LOGFS_MNT=str(mnt.mnt)))
    assert "records in app/events: 300" in r.stdout
    lines = open(mnt.p("app", "events")).read().splitlines()
    assert len(lines) == 300
    for w in (1, 2, 3):  # each worker's lines whole and in order
        seqs = [int(x.split('"seq":')[1].split(",")[0]) for x in lines if f'"worker":{w},' in x]
        assert seqs == list(range(1, 101))
    assert "No such file or directory" in open(mnt.p("app", "errors")).read()


def test_ship_output_with_its_own_throwaway_mount():
    r = run([str(EXAMPLES / "ship-output.sh")], env=_env(LOGFS_MNT=""))
    assert "records in app/events: 300" in r.stdout
    where = r.stderr.split("throwaway mount at ")[1].split(";")[0]
    assert not mounted(where) and not os.path.exists(where)


def test_consumer_pipeline(mnt):
    r = run([str(EXAMPLES / "consumer-pipeline.sh")], env=_env(LOGFS_MNT=str(mnt.mnt)),
            timeout=60)
    assert r.stdout.count('"status":"failed"') == 4
    assert open(mnt.p("orders", "failed")).read().count("\n") == 4
    assert open(mnt.p("orders", "eu")).read().count("\n") == 20


def test_fstab_mount_helper(mount_factory):
    m = mount_factory(do_mount=False)
    run([str(EXAMPLES / "mount.fuse.logfs"), str(m.data), str(m.mnt),
         "-o", "rw,_netdev,nofail,segment.bytes=4096"], env=_env())
    assert mounted(str(m.mnt))
    m.pids.append(int((m.data / ".logfs" / "daemon.pid").read_text()))
    os.mkdir(m.p("t"))
    run(f"echo x >> {m.p('t', 'l')}")
    assert m.describe("t", "l")["config"]["segment.bytes"] == 4096
    m.umount()


def test_systemd_unit_starts_and_stops_cleanly(mount_factory):
    m = mount_factory(do_mount=False)
    data, mnt = m.data / "sub", m.mnt / "sub"
    unit = run([str(EXAMPLES / "systemd-unit.sh"), str(data), str(mnt)], env=_env()).stdout
    lines = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line)
    assert lines["KillSignal"] == "SIGTERM" and "[Install]" in unit
    run(shlex.split(lines["ExecStartPre"]))
    m.mnt = mnt  # so that the fixture cleans this one up
    p = subprocess.Popen(shlex.split(lines["ExecStart"]), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    m.pids.append(p.pid)
    try:
        wait_for(lambda: mounted(str(mnt)), 10, "the unit's mount")
        os.mkdir(os.path.join(mnt, "t"))
        p.send_signal(signal.SIGTERM)  # what `systemctl stop` does
        assert p.wait(timeout=15) == 0
        assert not mounted(str(mnt))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
