"""The man page and the bash/zsh completions are generated from the argument parser
(argparse-manpage, shtab: `make man`, and `make install` installs them), so they
name every subcommand and option the CLI has."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess

import pytest

from fuse_helpers import REPO
from logfs.cli import build_parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: p for name, p in sub.choices.items() if name != "unmount"}  # an alias


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    subprocess.run([str(REPO / "scripts" / "install.sh"), "generate", str(out)], check=True,
                   capture_output=True, timeout=120)
    return out


def test_man_page_names_every_subcommand_and_option(generated):
    page = (generated / "man" / "logfs.1").read_text()
    text = page.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "")
    for name, p in _subcommands().items():
        assert f"logfs {name}" in text, name
        for action in p._actions:
            for opt in action.option_strings:
                if opt.startswith("--") and opt != "--help":
                    assert opt in text, f"{name} {opt} missing from the man page"
    for key in ("segment.bytes", "retention.ms", "flush.ms", "spin_us", "daemon.log",
                "mount.fuse.logfs", "logfs@.service"):
        assert key in text, key


def test_man_page_renders(generated):
    if not shutil.which("man"):
        pytest.skip("man is not installed")
    r = subprocess.run(["man", "-l", str(generated / "man" / "logfs.1")], capture_output=True,
                       text=True, timeout=60, env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    shown = re.sub(".\b", "", r.stdout)  # overstrike bold and underline
    assert "logfs mount" in shown and "SYNOPSIS" in shown and "CONFIGURATION" in shown
    assert "warning" not in r.stderr.lower(), r.stderr


def test_bash_completion_completes_every_subcommand(generated):
    script = generated / "completions" / "logfs.bash"
    names = sorted(_subcommands())
    for name in names:
        r = subprocess.run(["bash", "-c", f'source "{script}"; COMP_WORDS=(logfs {name[:2]}); '
                            f'COMP_CWORD=1; _shtab_logfs logfs {name[:2]} logfs; '
                            'printf "%s\\n" "${COMPREPLY[@]}"'],
                           capture_output=True, text=True, timeout=30)
        assert name in r.stdout.split(), (name, r.stdout, r.stderr)
    r = subprocess.run(["bash", "-c", f'source "{script}"; COMP_WORDS=(logfs serve --to); '
                        'COMP_CWORD=2; _shtab_logfs logfs --to serve; '
                        'printf "%s\\n" "${COMPREPLY[@]}"'], capture_output=True, text=True)
    assert r.stdout.split() == ["--token-file"], r.stdout


def test_zsh_completion_names_every_subcommand(generated):
    script = (generated / "completions" / "_logfs").read_text()
    assert script.startswith("#compdef logfs")
    for name in _subcommands():
        assert f"\n    {name}:" in script, name
    if shutil.which("zsh"):
        r = subprocess.run(["zsh", "-n", str(generated / "completions" / "_logfs")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
