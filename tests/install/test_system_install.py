"""`make install` really installs logfs system-wide, mount(8) really finds it, and
`make uninstall` removes every file again (issue 11: the fstab helper failed under
mount(8) with `exec: /usr/local/bin/logfs: not found`).

The test picks its own VENV, PREFIX and SYSTEMDDIR under its temporary directory;
the mount helper goes where mount(8) looks for it, /sbin/mount.fuse.logfs (a file
already there is put back afterwards). Then: `mount -t fuse.logfs`, an fstab line
mounted with `mount -a -T FILE`, the systemd unit (verified with systemd-analyze and
started the way systemd would), uninstall, and nothing left. Teardown unmounts,
uninstalls and restores whatever happened.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time

import pytest

from fuse_helpers import REPO, mounted, require_fuse, run, wait_for
from hang_helpers import rescue

pytestmark = [pytest.mark.fuse, pytest.mark.slow]

HELPER = "/sbin/mount.fuse.logfs"


def _daemon_pid(data) -> int:
    return int((data / ".logfs" / "daemon.pid").read_text())


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] == "Z"
    except (OSError, IndexError):
        return True


@pytest.fixture
def system(tmp_path):
    require_fuse()
    if os.geteuid() != 0:
        pytest.skip("a system-wide install (/sbin/mount.fuse.logfs) needs root")
    for tool in ("mount", "umount"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} (util-linux) is missing")
    where = {"VENV": str(tmp_path / "opt" / "logfs"), "PREFIX": str(tmp_path / "usr-local"),
             "SBINDIR": "/sbin", "SYSTEMDDIR": str(tmp_path / "systemd")}
    backup = None
    if os.path.lexists(HELPER):
        if "/pytest-of-" in open(HELPER, errors="replace").read():
            os.unlink(HELPER)  # left by an earlier run of this test that was killed
        else:
            backup = tmp_path / "mount.fuse.logfs.before"  # a real install: put it back after
            shutil.move(HELPER, backup)
    env = {**os.environ, **where}
    try:
        yield where, env
    finally:
        rescue(tmp_path)  # every mount and daemon under tmp_path, whatever state
        if os.path.exists(os.path.join(where["VENV"], "install-manifest")):
            subprocess.run(["make", "-s", "-C", str(REPO), "uninstall"], env=env,
                           capture_output=True, timeout=120)
        if os.path.lexists(HELPER) and str(tmp_path) in open(HELPER).read():
            os.unlink(HELPER)  # ours, if uninstall did not get to it
        if backup is not None:
            shutil.move(backup, HELPER)


def test_install_mount_through_mount8_and_fstab_then_uninstall(system, tmp_path):
    where, env = system
    prefix = where["PREFIX"]
    t0 = time.monotonic()
    r = run(["make", "-s", "-C", str(REPO), "install"], env=env, timeout=600)
    install_s = time.monotonic() - t0
    print(f"make install took {install_s:.1f} s")
    logfs = os.path.join(prefix, "bin", "logfs")

    # what install put where
    assert os.path.realpath(logfs) == os.path.join(where["VENV"], "bin", "logfs")
    assert run([logfs, "--version"]).stdout.startswith("logfs ")
    # the same patched pyfuse3 the suite runs (patches/README.md), not PyPI's
    import pyfuse3
    installed = run([os.path.join(where["VENV"], "bin", "python"), "-c",
                     "import pyfuse3; print(pyfuse3.__version__, "
                     "hasattr(pyfuse3.Operations, 'enable_auto_inval_data'))"]).stdout.split()
    assert installed == [pyfuse3.__version__, "True"], installed
    assert f"LOGFS=${{LOGFS:-{logfs}}}" in open(HELPER).read()
    assert os.access(HELPER, os.X_OK)
    unit = os.path.join(where["SYSTEMDDIR"], "logfs@.service")
    assert f"ExecStart={logfs} mount -f" in open(unit).read()
    man = run(["man", "-w", "logfs"], env={**env, "MANPATH": f"{prefix}/share/man"}).stdout
    assert man.strip() == f"{prefix}/share/man/man1/logfs.1"
    assert os.path.isfile(f"{prefix}/share/bash-completion/completions/logfs")
    assert os.path.isfile(f"{prefix}/share/zsh/site-functions/_logfs")

    # 1. mount -t fuse.logfs: mount(8) runs /sbin/mount.fuse.logfs, which runs logfs
    data, mnt = tmp_path / "data", tmp_path / "mnt"
    data.mkdir()
    mnt.mkdir()
    clean_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # no .venv: the installed logfs only
    run(["mount", "-t", "fuse.logfs", "-o", "segment.bytes=16384", str(data), str(mnt)],
        env=clean_env, timeout=60)
    assert mounted(str(mnt))
    pid = _daemon_pid(data)
    assert os.path.realpath(f"/proc/{pid}/exe").startswith(where["VENV"]) or \
        where["VENV"] in open(f"/proc/{pid}/cmdline").read()
    os.mkdir(mnt / "orders")
    with open(mnt / "orders" / "eu", "a") as f:
        f.write('{"id":1}\n{"id":2}\n')
    assert (mnt / "orders" / "eu").read_text() == '{"id":1}\n{"id":2}\n'
    d = run([logfs, "describe", str(mnt / "orders" / "eu")], env=clean_env).stdout
    assert re.search(r"segment\.bytes\s+16384", d), d
    run(["umount", str(mnt)], env=clean_env)
    wait_for(lambda: _gone(pid), 15, "the daemon to exit after umount(8)")
    assert not mounted(str(mnt))
    assert "store closed cleanly" in (data / ".logfs" / "daemon.log").read_text()

    # 2. an fstab line, mounted by `mount -a -T FILE` (what boot does with /etc/fstab)
    data2, mnt2 = tmp_path / "data2", tmp_path / "mnt two"
    data2.mkdir()
    mnt2.mkdir()
    fstab = tmp_path / "fstab"
    escaped = str(mnt2).replace(" ", "\\040")  # fstab(5) and mountinfo escape spaces so
    fstab.write_text(f"# a logfs mount\n{data2}  {escaped}  fuse.logfs  "
                     "defaults,_netdev,nofail,retention.ms=604800000  0  0\n")
    run(["mount", "-a", "-T", str(fstab)], env=clean_env, timeout=60)
    assert mounted(escaped)
    os.mkdir(mnt2 / "t")
    with open(mnt2 / "t" / "l", "a") as f:
        f.write("hello\n")
    assert (data2 / "t" / "l" / "00000000000000000000.log").read_text() == "hello\n"
    cfg = run([logfs, "config", str(mnt2 / "t" / "l")], env=clean_env).stdout
    assert re.search(r"retention\.ms\s+604800000 \(7 days\)\s+mount", cfg), cfg
    run(["mount", "-a", "-T", str(fstab)], env=clean_env, timeout=60)  # already mounted: no-op
    with open("/proc/self/mountinfo") as f:
        assert sum("fuse.logfs" in ln and "data2" in ln for ln in f) == 1
    run([logfs, "umount", str(mnt2)], env=clean_env)
    assert not mounted(escaped)

    # 3. the systemd unit: valid for systemd, and it runs as systemd would run it
    if shutil.which("systemd-analyze"):
        r = run(["systemd-analyze", "verify", "--man=no", unit], check=False, timeout=60)
        assert r.returncode == 0, r.stderr
    conf = {"DATA": str(tmp_path / "data3"), "MOUNTPOINT": str(tmp_path / "mnt3"),
            "OPTIONS": "segment.bytes=1048576"}
    lines = dict(ln.split("=", 1) for ln in open(unit).read().splitlines()
                 if "=" in ln and not ln.startswith("#"))

    def expand(cmd: str) -> list[str]:
        return [re.sub(r"\$\{(\w+)\}", lambda m: conf[m.group(1)], w) for w in shlex.split(cmd)]

    run(expand(lines["ExecStartPre"]))
    p = subprocess.Popen(expand(lines["ExecStart"]), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=clean_env)
    try:
        wait_for(lambda: mounted(conf["MOUNTPOINT"]), 15, "the unit's mount")
        os.mkdir(os.path.join(conf["MOUNTPOINT"], "t"))
        p.send_signal(signal.SIGTERM)  # systemctl stop
        assert p.wait(timeout=20) == 0
        assert not mounted(conf["MOUNTPOINT"])
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()

    # 4. uninstall: nothing left
    run(["make", "-s", "-C", str(REPO), "uninstall"], env=env, timeout=120)
    assert not os.path.lexists(HELPER)
    assert not os.path.lexists(where["VENV"])
    assert not os.path.lexists(prefix), sorted(os.walk(prefix))
    assert not os.path.lexists(where["SYSTEMDDIR"])
    r = run(["mount", "-t", "fuse.logfs", str(data), str(mnt)], env=clean_env, check=False)
    assert r.returncode != 0 and not mounted(str(mnt))
