"""Print the man page's extra sections (argparse-manpage --include format) from the
code's own tables, so they cannot drift: config keys (logfs.core.config), mount
adapter options (logfs.fusefs.mount.ADAPTER_OPTIONS), and the files logfs uses."""

from __future__ import annotations

from logfs.cli import CONFIG_KEYS_HELP
from logfs.exporter.cli import DEFAULT_PORT
from logfs.fusefs.mount import ADAPTER_OPTIONS


def roff(text: str) -> str:
    return text.replace("\\", "\\e").replace("-", "\\-")


def main() -> None:
    print("[CONFIGURATION]")
    print(".nf")
    for line in CONFIG_KEYS_HELP.splitlines():
        print(roff(line))
    print(".fi")
    print(".PP")
    print("Mount options besides config keys (logfs mount \\-o):")
    for key, text in ADAPTER_OPTIONS.items():
        print(f".TP\n\\fB{roff(key)}\\fR\n{roff(text)}")
    print()
    print("[FILES]")
    for path, text in [
        ("DATA/<topic>/<log>/<base>.log", "segment data: the raw bytes appended "
                                           "(cat DATA/topic/log/*.log prints the log)"),
        ("DATA/.logfs/daemon.log", "the mount daemon's log"),
        ("DATA/.logfs/control.sock", "the socket logfs config, describe and umount use"),
        ("/sbin/mount.fuse.logfs", "the mount(8) helper: fstab lines of type fuse.logfs"),
        ("/etc/systemd/system/logfs@.service", "systemd template unit; logfs@NAME reads "
                                               "/etc/logfs/NAME.conf (DATA=, MOUNTPOINT=, OPTIONS=)"),
    ]:
        print(f".TP\n\\fI{roff(path)}\\fR\n{roff(text)}")
    print()
    print("[EXIT STATUS]")
    print("0 on success; 1 when a command was refused or failed (the reason is one line "
          "on stderr); 2 for bad input (an unknown option, a value out of range).")
    print()
    print("[SEE ALSO]")
    print(roff(f"fusermount3(1), mount(8), fstab(5). The exporter listens on port {DEFAULT_PORT} "
               "by default. Documentation in the source tree: README.md, docs/spec.md "
               "(the guarantees), docs/config.md, docs/operations.md, docs/exporter.md."))


if __name__ == "__main__":
    main()
