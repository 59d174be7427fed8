"""The package builds without warnings and ships the LICENSE pyproject names
(issue 11: pip warned three times that `project.license` as a table is deprecated)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from fuse_helpers import REPO


def _warnings(output: str) -> list[str]:
    # this machine's pip config names index folders that may not exist: not ours
    return [ln for ln in output.splitlines()
            if ("warn" in ln.lower() or "deprecat" in ln.lower())
            and "is ignored: it is neither a file nor a directory" not in ln]


def test_wheel_builds_without_warnings_and_carries_the_license(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path),
                        str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert _warnings(r.stdout + r.stderr) == []
    (wheel,) = tmp_path.glob("logfs-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "License-Expression: MIT" in meta
    assert (REPO / "LICENSE").read_text().startswith("MIT License")


def test_editable_install_is_quiet_too(tmp_path):
    """What scripts/bootstrap.sh does (pip install -e), into a throwaway venv."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                        "install", "--no-deps", "-e", str(REPO)],
                       capture_output=True, text=True, timeout=300)
    if "no such option: --python" in r.stderr:  # pip < 22.3
        subprocess.run([str(venv / "bin" / "python"), "-m", "ensurepip", "-q"], check=True)
        r = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-deps", "-e", str(REPO)],
                           capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert _warnings(r.stdout + r.stderr) == []


def test_what_make_run_and_make_man_leave_is_ignored_by_git():
    """`make run` creates data/ and the live mount mnt/; `make man` writes build/."""
    import shutil
    if not (REPO / ".git").exists() or not shutil.which("git"):
        pytest.skip("not a git checkout")
    for path in ("mnt/", "mnt/orders/eu", "data/", "build/man/logfs.1"):
        r = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", path])
        assert r.returncode == 0, f"{path} is not ignored by .gitignore"
