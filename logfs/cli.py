"""The `logfs` command line: one entry point, one subcommand per job.

Only this module configures logging. Each subcommand is a small function
``cmd_<name>(args) -> exit code``; add one with ``_add_<name>(subparsers)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

from logfs import __version__

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

EPILOG = """\
examples:
  logfs mount ./data /mnt/logs                 # returns once the mount is ready
  mkdir /mnt/logs/orders                       # a topic
  echo '{"id":1}' >> /mnt/logs/orders/eu       # append a record to the log orders/eu
  tail -F /mnt/logs/orders/eu                  # follow it
  logfs describe /mnt/logs/orders/eu           # offsets, records, segments, config
  logfs config /mnt/logs/orders retention.ms=604800000
  logfs serve ./data --port 8480               # the HTTP exporter: curl localhost:8480/orders/eu
  logfs consume --group billing --follow /mnt/logs/orders   # every log of the topic, at least once
  logfs groups describe billing /mnt/logs      # committed records, lag, last commit
  logfs mount -o kafka=127.0.0.1:9092 ./data /mnt/logs   # and serve Kafka clients (docs/kafka.md)
  kcat -b 127.0.0.1:9092 -C -t orders.eu -o beginning    # the log orders/eu as a Kafka topic
  logfs umount /mnt/logs

views (read-only files, looked up by name, never listed; docs/spec.md section 10):
  MOUNT/TOPIC/LOG@KEY=VALUE[,KEY=VALUE]
    start (at most one): offset=BYTE  record=N  since=TIME  last=N  group=GROUP
    end: until=TIME (without it the view grows with the log)
    TIME: ISO 8601 (2026-12-01T09:00, ...Z, ...+01:00; no zone = UTC),
          a duration before now (500ms 90s 10m 2h 7d 1w), or epoch milliseconds
  cat '/mnt/logs/orders/eu@since=1h'           # what was appended in the last hour
  tail -n +1 -f '/mnt/logs/orders/eu@last=100' # like tail -n 100 -f, exact

Run `logfs COMMAND --help` for each command's options.
"""


CONFIG_KEYS_HELP = """\
config keys (Kafka's names; per log, inherited from the topic, then from the mount):
  segment.bytes          roll the active segment at this size (default 1 GiB)
  segment.ms             roll the active segment at this age (default 7 days)
  retention.bytes        delete oldest sealed segments while the log is larger (-1: keep all)
  retention.ms           delete sealed segments whose newest data is older (-1: keep all)
  index.interval.bytes   bytes between sparse index entries (default 4096)
  flush.ms               fsync the active segment at least this often (default: never;
                         the page cache decides, as in Kafka)
  remote.storage.enable  tier sealed segments to the mount's object store (-o remote=;
                         default false)
  local.retention.bytes  keep at most this much of a tiered log on the local disk
                         (-2, the default: as retention.bytes)
  local.retention.ms     keep local copies of a tiered log this long (-2: as retention.ms)
"""


# -------------------------------------------------------------------- logging

def _configure_logging(data_dir: str | None, to_stderr: bool, debug: bool) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    fmt = logging.Formatter(LOG_FORMAT)
    if data_dir is not None:
        from logfs.fusefs.control import control_dir
        from logfs.fusefs.mount import LOG_FILE
        d = control_dir(data_dir)
        os.makedirs(d, exist_ok=True)
        fh = logging.FileHandler(os.path.join(d, LOG_FILE))
        fh.setFormatter(fmt)
        root.addHandler(fh)
    if to_stderr:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(fmt)
        root.addHandler(sh)
    # pyfuse3 logs every request at DEBUG; keep it quiet unless asked
    if not debug:
        logging.getLogger("pyfuse3").setLevel(logging.WARNING)


def _die(msg: str, code: int = 1) -> int:
    print(f"logfs: {msg}", file=sys.stderr)
    return code


class CliError(Exception):
    """Bad input or a refusal: ``main`` prints the message as one line and exits
    with ``code``. Raised anywhere below a ``cmd_*`` function."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (the usage is one --help away)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


# completion hints for shtab (shtab.DIRECTORY / shtab.FILE; argparse ignores them)
_DIRECTORY = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/", "tcsh": "d"}
_FILE = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f"}


# ---------------------------------------------------------------------- mount

def _add_mount(sub) -> None:
    from logfs.fusefs.mount import ADAPTER_OPTIONS
    opt_help = "\n".join(f"  {k:<22} {v}" for k, v in ADAPTER_OPTIONS.items())
    p = sub.add_parser(
        "mount", help="mount DATA on MOUNTPOINT (returns once the mount is ready)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Mount the logfs data directory DATA on MOUNTPOINT. Topics are the "
                    "directories of the mount, logs the files in them.\nThe command "
                    "returns once the mount is ready and the daemon keeps serving in the "
                    "background\n(log: DATA/.logfs/daemon.log). Stop it with `logfs "
                    "umount MOUNTPOINT`.",
        epilog="-o options: log config keys set mount-wide defaults, e.g.\n"
               "  -o segment.bytes=1048576,retention.bytes=104857600\n"
               + CONFIG_KEYS_HELP + "\nand these adapter options:\n" + opt_help)
    p.add_argument("-f", "--foreground", action="store_true",
                   help="stay in the foreground and log to stderr too; stop with Ctrl-C")
    p.add_argument("-o", dest="options", action="append", default=[], metavar="KEY=VALUE,...",
                   help="mount options (repeatable, comma-separated)")
    p.add_argument("--replica", metavar="s3://BUCKET/PREFIX",
                   help="mount every tiered log of the bucket read-only (another machine's "
                        "logs; docs/tiered-storage.md): then give MOUNTPOINT alone, or a "
                        "local state directory and MOUNTPOINT")
    p.add_argument("data", metavar="DATA", help="the data directory (created if missing)"
                   ).complete = _DIRECTORY
    p.add_argument("mountpoint", metavar="MOUNTPOINT", nargs="?", help="an existing directory"
                   ).complete = _DIRECTORY
    p.set_defaults(func=cmd_mount)


def cmd_mount(args) -> int:
    from logfs.fusefs.mount import MountError, check_mount_setup, parse_mount_options, run_mount
    try:
        opts = parse_mount_options(args.options)
        if args.replica is not None:
            replica_arguments(args, opts)
        elif args.mountpoint is None:
            raise MountError("give DATA and MOUNTPOINT (or --replica s3://BUCKET/PREFIX MOUNTPOINT)")
    except MountError as exc:
        return _die(str(exc), 2)
    try:  # refuse here, before DATA is created: the daemon checks again
        data = check_mount_setup(args.data, os.path.realpath(args.mountpoint))
    except MountError as exc:
        return _die(str(exc))
    try:
        os.makedirs(data, exist_ok=True)
    except OSError as exc:
        return _die(f"cannot create data directory {data}: {exc.strerror}")
    if args.foreground:
        _configure_logging(data, to_stderr=True, debug=opts.debug)
        try:
            return run_mount(data, args.mountpoint, opts)
        except MountError as exc:
            return _die(str(exc))
    return _daemonize_mount(data, args.mountpoint, opts)


def replica_arguments(args, opts) -> None:
    """``--replica URL [STATE] MOUNTPOINT``: the state directory defaults to one per
    bucket and prefix under /var/cache/logfs (root) or ~/.cache/logfs."""
    import hashlib
    from logfs.fusefs.mount import MountError
    from logfs.tier.s3 import parse_remote_url
    try:
        bucket, _prefix = parse_remote_url(args.replica)
    except ValueError as exc:
        raise MountError(f"--replica: {exc}") from None
    if opts.remote is not None:
        raise MountError("--replica and -o remote= exclude each other (a replica only reads)")
    opts.replica = args.replica
    if args.mountpoint is None:
        args.mountpoint = args.data
        root = "/var/cache/logfs" if os.geteuid() == 0 else os.path.expanduser("~/.cache/logfs")
        key = hashlib.sha256(f"{args.replica} {opts.remote_endpoint}".encode()).hexdigest()[:12]
        args.data = os.path.join(root, "replica", f"{bucket}-{key}")


def _daemonize_mount(data: str, mountpoint: str, opts) -> int:
    """Fork: the child mounts and reports readiness over a pipe; the parent waits."""
    from logfs.fusefs.control import control_dir
    from logfs.fusefs.mount import LOG_FILE, MountError, run_mount
    r, w = os.pipe()  # both ends close-on-exec: fusermount3 children don't hold them
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        with os.fdopen(r, "rb") as pipe:
            answer = pipe.readline().decode(errors="replace").strip()
        if answer == "ok":
            return 0
        if not answer:
            os.waitpid(pid, os.WNOHANG)
            answer = (f"the daemon exited before the mount was ready; see "
                      f"{os.path.join(control_dir(data), LOG_FILE)}")
        return _die(answer)

    # child: the daemon
    code = 1
    try:
        os.close(r)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.close(devnull)
        _configure_logging(data, to_stderr=False, debug=opts.debug)
        logfile = os.open(os.path.join(control_dir(data), LOG_FILE),
                          os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(logfile, 2)  # C-level errors and stray tracebacks go to the log
        os.close(logfile)
        sent = False

        def ready(err: str | None) -> None:
            nonlocal sent
            if sent:
                return
            sent = True
            try:
                os.write(w, b"ok\n" if err is None else (err.replace("\n", " ") + "\n").encode())
                os.close(w)
            except OSError:
                pass

        try:
            code = run_mount(data, mountpoint, opts, ready)
        except MountError as exc:
            logging.getLogger("logfs.cli").warning("mount refused: %s", exc)
            code = 1
        except BaseException as exc:  # noqa: BLE001
            logging.getLogger("logfs.cli").exception("daemon failed")
            ready(f"daemon failed: {exc}")
            code = 1
    finally:
        logging.shutdown()
        os._exit(code)


# --------------------------------------------------------------------- umount

def _add_umount(sub) -> None:
    p = sub.add_parser("umount", aliases=["unmount"],
                       help="unmount a logfs mount and wait for its daemon to finish",
                       description="Unmount MOUNTPOINT (like fusermount3 -u) and wait until "
                                   "the daemon has flushed and closed its logs.")
    p.add_argument("mountpoint", metavar="MOUNTPOINT").complete = _DIRECTORY
    p.add_argument("--timeout", type=positive_float, default=60.0,
                   help="seconds to wait for the daemon to exit (default 60)")
    p.set_defaults(func=cmd_umount)


def _daemon_pid(data: str) -> int | None:
    from logfs.fusefs.control import control_dir
    from logfs.fusefs.mount import PID_FILE
    try:
        with open(os.path.join(control_dir(data), PID_FILE)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def cmd_umount(args) -> int:
    from logfs.fusefs import mounts
    mp = os.path.realpath(args.mountpoint)  # as the kernel records it (a symlink resolved)
    entry = mounts.logfs_mount_at(mp)
    if entry is None:
        if mounts.is_dead_mountpoint(mp):
            r = mounts.fusermount_unmount(mp, lazy=True)
            return 0 if r.returncode == 0 else _die(r.stderr.strip() or "unmount failed")
        return _die(f"{mp} is not a logfs mount")
    pid = _daemon_pid(entry.source)
    r = mounts.fusermount_unmount(mp)
    if r.returncode != 0:
        msg = r.stderr.strip() or f"fusermount3 -u {mp} failed"
        if "busy" in msg.lower():
            msg += " (a process is using the mount: close it, or see `fuser -m`)"
        return _die(msg)
    if pid is not None:
        deadline = time.monotonic() + args.timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _pid_alive(pid):
            return _die(f"unmounted, but daemon {pid} is still closing its logs")
    return 0


# ---------------------------------------------------------- config & describe

class _Target:
    """What `describe`/`config` talk to: the daemon of a mount, or DATA itself."""

    def __init__(self, path: str) -> None:
        from logfs.paths import PathError, locate
        self.path = path
        self.store = None
        try:
            found = locate(path)
        except PathError as exc:
            raise CliError(str(exc)) from None
        self.data, self.parts, self.via_mount = found.data, found.parts, found.via_mount

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        """Ask the daemon; without one (DATA not mounted) answer from a read-only
        store, as the exporter reads DATA. ``mounted`` says which answered."""
        from logfs.fusefs import control
        try:
            result = control.request(self.data, {**message, "path": list(self.parts)})
            result["mounted"] = True
            return result
        except control.DaemonUnreachable as exc:
            if self.via_mount:
                raise CliError(f"{self.path}: {exc}") from None
        except control.ControlError as exc:
            raise CliError(f"{self.path}: {exc}") from None
        if message.get("set"):
            raise CliError(f"{self.data} is not mounted: `logfs config` shows the config of "
                           "DATA without a mount, but changing it needs the mount "
                           f"(logfs mount {self.data} MOUNTPOINT)")
        return self._offline(message["op"])

    def _offline(self, op: str) -> dict[str, Any]:
        from logfs.core import StorageError, open_log_store
        from logfs.fusefs import control
        from logfs.tier.recorded import recorded_remote
        try:
            store = open_log_store(self.data, readonly=True, remote=recorded_remote(self.data))
        except StorageError as exc:
            raise CliError(f"{self.path}: {exc}") from None
        try:
            if op == "config":
                result = control.config_view(store, self.parts, {})
            elif not self.parts:
                result = {"kind": "data", "data": self.data, "topics": store.topics()}
            elif len(self.parts) == 1:
                result = control.describe_topic(store, self.parts[0])
            else:
                result = control.describe_log(store, *self.parts)
        except StorageError as exc:
            raise CliError(f"{self.path}: {exc}") from None
        finally:
            store.close()
        result["mounted"] = False
        return result


# Output for people: numbers with their unit, "none" and "on"/"off", never a
# Python value. --json prints the same dict as JSON (types in docs/config.md).

_BYTE_KEYS = {"segment.bytes", "retention.bytes", "index.interval.bytes", "local.retention.bytes"}
_DURATION_KEYS = {"segment.ms", "retention.ms", "flush.ms", "local.retention.ms"}
_TIMESTAMP_KEYS = {"last_append_ms", "created_ms"}


def _bytes(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n} bytes" if n != 1 else "1 byte"


def _duration(ms: int) -> str:
    for unit, size in (("days", 86_400_000), ("hours", 3_600_000), ("minutes", 60_000),
                       ("s", 1000)):
        if ms >= size:
            v = ms / size
            text = f"{v:.0f}" if v == int(v) else f"{v:.1f}"
            return f"{text} {unit[:-1] if text == '1' and unit != 's' else unit}"
    return f"{ms} ms"


def format_value(key: str, value: Any) -> str:
    """One value of describe/config as a person reads it."""
    if value is None:
        return {"flush.ms": "none (the page cache decides)",
                "last_append_ms": "none (nothing appended yet)"}.get(key, "none")
    if key == "mounted":
        return "yes" if value else "no (read from DATA)"
    if isinstance(value, bool):
        return "on" if value else "off"
    if key == "remote.storage.enable" and value in (0, 1):
        return "true" if value else "false"
    if key.startswith("local.retention.") and value == -2:
        return f"-2 (as {key[len('local.'):]})"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) if value else "none"
    if key in _BYTE_KEYS and isinstance(value, int):
        if value == -1:
            return "-1 (keep all)"
        return f"{value} ({_bytes(value)})" if value >= 1024 else f"{value} bytes"
    if key in _DURATION_KEYS and isinstance(value, int):
        return "-1 (keep all)" if value == -1 else f"{value} ({_duration(value)})"
    if key in _TIMESTAMP_KEYS and isinstance(value, int):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value / 1000))
        return f"{value} ({when}.{value % 1000:03d})"
    if key == "mtime_granularity_s" and isinstance(value, (int, float)):
        return "0 s (exact)" if value == 0 else f"{value:g} s"
    return str(value)


def _print_human(d: dict[str, Any], indent: str = "") -> None:
    width = max((len(k) for k in d), default=0)
    for k, v in d.items():
        if isinstance(v, dict):
            print(f"{indent}{k}:")
            if v:
                _print_human(v, indent + "  ")
            else:
                print(f"{indent}  none")
        else:
            print(f"{indent}{k.ljust(width)}  {format_value(k, v)}")


def _print_config_human(d: dict[str, Any]) -> None:
    if d["kind"] == "mount":
        print("mount-wide defaults (-o at mount):")
        _print_human(d["defaults"] or {"(none set)": ""}, "  ")
        return
    what = d["topic"] if d["kind"] == "topic" else f"{d['topic']}/{d['log']}"
    print(f"{d['kind']} {what}" + ("" if d.get("mounted", True) else
                                    "  (DATA not mounted: mount-wide -o defaults unknown)"))
    shown = {k: format_value(k, v) for k, v in d["effective"].items()}
    kw = max(len(k) for k in shown)
    vw = max(len(v) for v in shown.values())
    names = {"log": "log", "topic": "topic", "mount": "mount (-o)", "default": "default"}
    print(f"  {'key'.ljust(kw)}  {'value'.ljust(vw)}  set by")
    for key, text in shown.items():
        print(f"  {key.ljust(kw)}  {text.ljust(vw)}  {names[d['sources'][key]]}")


def _add_describe(sub) -> None:
    p = sub.add_parser("describe", help="show offsets, records, segments and config",
                       description="Describe a log (offsets, records, segments, last append, "
                                   "effective config, FUSE counters), a topic (its logs and "
                                   "config overrides) or the mount itself. PATH is in a mount, "
                                   "or in a data directory that is not mounted (then without "
                                   "FUSE counters).")
    p.add_argument("path", metavar="PATH",
                   help="MOUNT, MOUNT/topic or MOUNT/topic/log (or DATA, DATA/topic, "
                        "DATA/topic/log)").complete = _FILE
    p.add_argument("--json", action="store_true", help="print JSON (types: docs/config.md)")
    p.set_defaults(func=cmd_describe)


def cmd_describe(args) -> int:
    result = _Target(args.path).ask({"op": "describe"})
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        _print_human(result)
    return 0


def _add_config(sub) -> None:
    p = sub.add_parser(
        "config", help="show or set the config of a topic or log",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Show (no KEY=VALUE) or set config of a topic or a log. A log inherits "
                    "from its topic,\nwhich inherits from the mount's -o defaults. "
                    "KEY= (empty) removes an override.\nShowing also works on a data "
                    "directory that is not mounted; setting needs the mount.",
        epilog=CONFIG_KEYS_HELP + "\nexamples:\n"
               "  logfs config /mnt/logs/orders retention.ms=604800000   # a week, topic-wide\n"
               "  logfs config /mnt/logs/orders/eu retention.bytes=1073741824\n"
               "  logfs config /mnt/logs/orders/eu retention.bytes=      # back to the topic's\n"
               "  logfs config /mnt/logs/orders/eu                       # show effective config\n"
               "  logfs config /var/lib/logfs/orders/eu                  # the same, without a mount\n"
               "every key, default and scope: docs/config.md")
    p.add_argument("path", metavar="PATH",
                   help="MOUNT/topic or MOUNT/topic/log (or DATA/topic, DATA/topic/log)"
                   ).complete = _FILE
    p.add_argument("settings", metavar="KEY=VALUE", nargs="*")
    p.add_argument("--json", action="store_true", help="print JSON (types: docs/config.md)")
    p.set_defaults(func=cmd_config)


def cmd_config(args) -> int:
    new: dict[str, str] = {}
    for s in args.settings:
        key, eq, value = s.partition("=")
        if not eq or not key:
            return _die(f"bad setting {s!r}: expected KEY=VALUE (KEY= removes an override)", 2)
        new[key] = value
    target = _Target(args.path)
    result = target.ask({"op": "config", "set": new} if new else {"op": "config"})
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        _print_config_human(result)
    return 0


def _add_serve(sub) -> None:
    from logfs.exporter.cli import add_arguments
    p = sub.add_parser(
        "serve", help="serve DATA's logs read-only over HTTP (curl is a client)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve the logs in DATA over HTTP/1.1, read-only, zero-copy (sendfile).\n"
                    "Runs beside a mount (or without one) as a separate reader process.",
        epilog="examples:\n"
               "  logfs serve ./data --port 8480\n"
               "  curl localhost:8480/                                 # topics and logs (JSON)\n"
               "  curl localhost:8480/orders/eu                        # a whole log\n"
               "  curl -N 'localhost:8480/orders/eu?follow=1&since=10m' # tail -f over HTTP\n"
               "see docs/exporter.md for ranges, ?record=, ?last=, ?until=, auth and metrics")
    add_arguments(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from logfs.exporter.cli import run
    return run(args, prog="logfs serve")


def _add_kafka(sub) -> None:
    from logfs.kafka.cli import add_arguments
    p = sub.add_parser(
        "kafka", help="serve DATA's logs to Kafka clients (produce and consume), without a mount",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Speak Kafka's wire protocol on DATA: topic T with logs 0..N-1 is the Kafka\n"
                    "topic T with N partitions, any other log L of T is the topic T.L. With a mount,\n"
                    "use `logfs mount -o kafka=HOST:PORT` instead (the mount owns the logs).",
        epilog="examples:\n"
               "  logfs kafka ./data --listen 127.0.0.1:9092\n"
               "  kcat -b 127.0.0.1:9092 -L                        # topics and partitions\n"
               "  echo hi | kcat -b 127.0.0.1:9092 -P -t orders    # produce\n"
               "  kcat -b 127.0.0.1:9092 -C -t orders -o beginning # consume\n"
               "see docs/kafka.md for the mapping, the APIs and what is not supported")
    add_arguments(p)
    p.set_defaults(func=cmd_kafka)


def cmd_kafka(args) -> int:
    from logfs.kafka.cli import run
    return run(args, prog="logfs kafka")


def _add_bench(sub) -> None:
    from logfs.bench.harness import add_arguments
    p = sub.add_parser(
        "bench", help="benchmark logfs against a plain directory, bindfs and nginx on this machine",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run workloads W1-W8 (appends, reads, latency, downloads, seeks, memory) against\n"
                    "a plain directory, bindfs and a logfs mount, and logfs serve against nginx;\n"
                    "write performance.{json,md,png} and print the ratios. Installs bindfs,\n"
                    "nginx-light and matplotlib if missing (--no-install: skip what is missing).",
        epilog="examples:\n"
               "  logfs bench --quick          # small sizes, about two minutes, into bench-results/\n"
               "  logfs bench                  # the full sizes (2 GiB appends, 10M records) into docs/\n"
               "see docs/performance.md")
    add_arguments(p)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from logfs.bench.harness import run_cli
    return run_cli(args, "logfs bench " + " ".join(sys.argv[2:]))


# ------------------------------------------------------------ consume & groups

def _add_consume(sub) -> None:
    from logfs.consumer.commands import CONSUME_DESCRIPTION, CONSUME_EPILOG, add_consume_arguments
    p = sub.add_parser("consume", help="print whole records of logs to stdout; with --group, at least once",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=CONSUME_DESCRIPTION, epilog=CONSUME_EPILOG)
    add_consume_arguments(p, _FILE)
    p.set_defaults(func=cmd_consume)


def cmd_consume(args) -> int:
    from logfs.consumer.commands import CommandError, run_consume_command
    try:
        return run_consume_command(args)
    except CommandError as exc:
        raise CliError(str(exc), exc.code) from None


def _add_groups(sub) -> None:
    from logfs.consumer.commands import GROUPS_DESCRIPTION, GROUPS_EPILOG, add_groups_arguments
    p = sub.add_parser("groups", help="list, describe, reset or delete consumer groups",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=GROUPS_DESCRIPTION, epilog=GROUPS_EPILOG)
    add_groups_arguments(p, _FILE, cmd_groups)


def cmd_groups(args) -> int:
    from logfs.consumer.commands import CommandError, run_groups_command
    try:
        return run_groups_command(args)
    except CommandError as exc:
        raise CliError(str(exc), exc.code) from None


GROUPS_COMMANDS = ("list", "describe", "reset", "delete")

# ----------------------------------------------------------------------- main

_SUBCOMMANDS = {"mount": _add_mount, "umount": _add_umount, "unmount": _add_umount,
                "config": _add_config, "describe": _add_describe, "serve": _add_serve,
                "consume": _add_consume, "groups": _add_groups, "kafka": _add_kafka,
                "bench": _add_bench}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with *command* (a subcommand's name) only that
    subcommand's: the others' options import the FUSE daemon, the exporter and the
    bench (a few hundred ms), which `logfs consume` has no use for."""
    parser = _Parser(
        prog="logfs", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="logfs: Kafka's log, as files. Topics are directories, logs are "
                    "append-only files\nstored as segments with sparse indexes and "
                    "retention.",
        epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"logfs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command in _SUBCOMMANDS:
        _SUBCOMMANDS[command](sub)
        return parser
    for add in dict.fromkeys(_SUBCOMMANDS.values()):
        add(sub)
    return parser


def _with_groups_shorthand(argv: list[str]) -> list[str]:
    """`logfs groups [PATH] [--json]` is `logfs groups list [PATH] [--json]`."""
    if argv[:1] == ["groups"]:
        rest = argv[1:]
        if not rest or (rest[0] not in GROUPS_COMMANDS and rest[0] not in ("-h", "--help")):
            return ["groups", "list", *rest]
    return argv


def main(argv: list[str] | None = None) -> int:
    """The CLI's one error boundary: bad input and refusals are one line on stderr and
    a non-zero exit, never a traceback (LOGFS_DEBUG=1 shows one for a bug)."""
    argv = _with_groups_shorthand(sys.argv[1:] if argv is None else list(argv))
    parser = build_parser(argv[0] if argv else None)
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "groups_command", None) == "reset" and \
            not any(x.startswith("-") for x in extra):
        # argparse (before 3.13) gives LOG... nothing once an option came between G and
        # them (`reset G --to earliest LOG`): they are the extra words
        args.paths = [p for p in args.paths if p != "."] + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed stdout shows here, not in the interpreter's exit
        return code
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        return _die(str(exc), exc.code)
    except BrokenPipeError:  # stdout's reader left (`| head`): as a process SIGPIPE ended
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing left to flush at exit
        return 141
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _die(f"{where}{exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - a bug: say so in one line
        if os.environ.get("LOGFS_DEBUG"):
            raise
        return _die(f"unexpected error: {type(exc).__name__}: {exc} "
                    "(run with LOGFS_DEBUG=1 for the traceback, and please report it)")


if __name__ == "__main__":
    sys.exit(main())
