"""The command lines of ``logfs consume`` and ``logfs groups``: their options (for
``logfs``'s subparsers, as the exporter's cli.py does for ``logfs serve``) and the
two commands, from parsed options to an exit status.

Bad input is a :class:`CommandError` with exit status 2, a refusal or failure one
with status 1; ``logfs`` prints its message as one line. Nothing here imports the
rest of a command until it runs (``logfs --help`` stays quick).
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

from .window import DEFAULT_COMMIT_EVERY, DEFAULT_COMMIT_MS

__all__ = ["CONSUME_DESCRIPTION", "CONSUME_EPILOG", "CommandError", "GROUPS_DESCRIPTION",
           "GROUPS_EPILOG", "add_consume_arguments", "add_groups_arguments", "run_consume_command",
           "run_groups_command"]


class CommandError(Exception):
    """One line for the person; ``code`` is the exit status (2: bad input)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _count(text: str) -> int:
    try:
        n = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is negative")
    return n


def _at_least_one(text: str) -> int:
    n = _count(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is too small: at least 1")
    return n


# ------------------------------------------------------------------ consume

CONSUME_DESCRIPTION = (
    "Print the records (lines) of one or many logs to stdout, whole: a topic means all its logs.\n"
    "Works on a mount or on DATA directly (no mount needed). With --group, positions are\n"
    "committed after the records were written to stdout, so a second run continues where\n"
    "the first stopped and a consumer killed at any moment skips nothing (it re-reads at\n"
    "most what it had not committed).")
CONSUME_EPILOG = (
    "examples:\n"
    "  logfs consume /mnt/logs/orders/eu                     # the whole log, then exit\n"
    "  logfs consume -f --from latest /mnt/logs/orders       # like tail -f, every log of the topic\n"
    "  logfs consume --group billing -f /mnt/logs/orders     # at least once, resumable\n"
    "  logfs consume --from 2026-12-01T09:00Z --until 1h --format json ./data/orders/eu\n"
    "  logfs consume --from record=1000 --max 10 --print-offset ./data/orders/eu\n"
    "TIME: ISO 8601 (no zone: UTC), a duration before now (90s, 10m, 2h, 7d) or epoch ms.\n"
    "see docs/consumers.md")


def add_consume_arguments(p: argparse.ArgumentParser, file_hint: Any = None) -> None:
    """The options of ``logfs consume``; *file_hint* is the shell completion of paths."""
    paths = p.add_argument("paths", metavar="PATH", nargs="+",
                           help="MOUNT/topic or MOUNT/topic/log (or DATA/topic, DATA/topic/log)")
    paths.complete = file_hint  # type: ignore[attr-defined]
    p.add_argument("-g", "--group", metavar="G",
                   help="consumer group: start at its committed positions, commit as records are written")
    p.add_argument("--from", dest="start", default="earliest", metavar="earliest|latest|TIME|record=N",
                   help="where to start a log the group has no position for (without --group: "
                        "every log); default earliest")
    p.add_argument("--reset", default="earliest", choices=("earliest", "latest"),
                   help="where to go on when retention removed the records to read (a group's "
                        "position too); default earliest: lose nothing retention kept")
    p.add_argument("--until", metavar="TIME", help="stop after the records appended at or before TIME")
    p.add_argument("-n", "--max", dest="max_records", type=_count, metavar="N",
                   help="stop after N records (in all)")
    p.add_argument("-f", "--follow", action="store_true",
                   help="at the end, wait for new records (and new logs of a topic) and print them "
                        "as they come")
    p.add_argument("--format", dest="fmt", choices=("raw", "json"), default="raw",
                   help="raw lines (default) or one JSON object per record: topic, log, record, "
                        "offset, time, value")
    p.add_argument("--print-offset", action="store_true",
                   help="prefix each raw line with TOPIC/LOG, record and byte offset (tab-separated)")
    p.add_argument("--commit-every", type=_at_least_one, default=DEFAULT_COMMIT_EVERY, metavar="N",
                   help="with --group: commit at the latest after N records (the most a killed "
                        "consumer re-reads); default %(default)s")
    p.add_argument("--commit-ms", type=_at_least_one, default=DEFAULT_COMMIT_MS, metavar="MS",
                   help="with --group: commit at the latest MS ms after a record was written; "
                        "default %(default)s")


def run_consume_command(args: argparse.Namespace) -> int:
    """``logfs consume`` with parsed options. Raises CommandError."""
    from .runner import ConsumeError, ConsumeOptions, run_consume
    opts = ConsumeOptions(paths=tuple(args.paths), group=args.group, start=args.start,
                          reset=args.reset, until=args.until, max_records=args.max_records,
                          follow=args.follow, fmt=args.fmt, print_offset=args.print_offset,
                          commit_every=args.commit_every, commit_ms=args.commit_ms)
    try:
        return run_consume(opts)
    except ConsumeError as exc:
        raise CommandError(str(exc), exc.code) from None


# ------------------------------------------------------------------- groups

GROUPS_DESCRIPTION = (
    "Consumer groups: their committed positions per log (the next record to read), kept in DATA\n"
    "beside the logs and shared by `logfs consume --group` and the exporter's ?group=.\n"
    "`logfs groups [PATH]` is `logfs groups list [PATH]`. PATH is a mount or a data directory\n"
    "(default: the current directory).")
GROUPS_EPILOG = (
    "examples:\n"
    "  logfs groups /mnt/logs                                  # the groups, one a line\n"
    "  logfs groups describe billing /mnt/logs                 # per log: committed, end, lag\n"
    "  logfs groups reset billing --to earliest --dry-run /mnt/logs/orders\n"
    "  logfs groups reset billing --to 2026-12-01T09:00Z /mnt/logs/orders/eu\n"
    "  logfs groups delete billing /mnt/logs\n"
    "see docs/consumers.md")


def add_groups_arguments(p: argparse.ArgumentParser, file_hint: Any, func: Callable) -> None:
    """The subcommands of ``logfs groups``, each calling *func* with its options."""
    sub = p.add_subparsers(dest="groups_command", metavar="COMMAND")
    path_help = "a mount or data directory, or a path in one (default: .)"

    def path(q: argparse.ArgumentParser) -> None:
        q.add_argument("path", metavar="PATH", nargs="?", default=".", help=path_help).complete = \
            file_hint  # type: ignore[attr-defined]

    q = sub.add_parser("list", help="the groups, one a line (--json: with their logs and lag)")
    path(q)
    q.add_argument("--json", action="store_true", help="print JSON (logs, lag, last commit, consumer)")
    q = sub.add_parser("describe", help="per log: committed record, end record, lag, last commit")
    q.add_argument("group", metavar="G")
    path(q)
    q.add_argument("--json", action="store_true", help="print JSON")
    q = sub.add_parser("reset", help="move a group's positions (like --reset-offsets)",
                       description="Move group G's positions in the logs named (a topic: all its "
                                   "logs; the mount or DATA: every log G has a position for).")
    q.add_argument("group", metavar="G")
    q.add_argument("--to", required=True, metavar="earliest|latest|TIME|record=N",
                   help="the first retained record, after the last one, the first appended at or "
                        "after TIME, or record N")
    q.add_argument("--dry-run", action="store_true", help="show what would change, commit nothing")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.add_argument("paths", metavar="LOG", nargs="*", default=["."],
                   help="MOUNT/topic/log, MOUNT/topic or MOUNT (or the same in DATA); default: ."
                   ).complete = file_hint  # type: ignore[attr-defined]
    q = sub.add_parser("delete", help="remove a group and its positions")
    q.add_argument("group", metavar="G")
    path(q)
    p.set_defaults(func=func, groups_command=None)


def run_groups_command(args: argparse.Namespace) -> int:
    """``logfs groups ...`` with parsed options. Raises CommandError."""
    from logfs.core import GroupStore, InvalidName, StorageError, open_log_store
    from logfs.core.groups import check_group_name
    from logfs.core.selection import BadSelection
    from logfs.paths import PathError, locate, locate_all
    from logfs.tier.recorded import recorded_remote

    from . import groupcli
    from .starts import parse_from

    command = args.groups_command or "list"
    if command != "list":
        try:
            check_group_name(args.group)
        except InvalidName as exc:
            raise CommandError(str(exc), 2) from None
    to = None
    if command == "reset":
        try:
            to = parse_from(args.to, time.time_ns() // 1_000_000)
        except BadSelection as exc:
            raise CommandError(f"--to {exc}", 2) from None
    try:
        if command == "reset":
            data, located = locate_all(args.paths, what="logs to reset")
        else:
            located = [locate(getattr(args, "path", "."))]
            data = located[0].data
    except PathError as exc:
        raise CommandError(str(exc)) from None
    try:
        store = open_log_store(data, readonly=True, remote=recorded_remote(data))
    except StorageError as exc:
        raise CommandError(f"{data}: {exc}") from None
    groups = GroupStore(data)
    try:
        if command == "list":
            groupcli.show_list(groupcli.list_groups(store, groups), args.json)
        elif command == "describe":
            groupcli.show_describe(groupcli.describe_group(store, groups, args.group), args.json)
        elif command == "reset":
            rows = groupcli.plan_reset(store, groups, args.group, to, located)
            if not args.dry_run:
                groupcli.reset_group(groups, args.group, rows)
            groupcli.show_reset(args.group, to, rows, args.dry_run, args.json)
        else:
            groupcli.delete_group(groups, args.group)
    except (groupcli.GroupsError, StorageError) as exc:
        raise CommandError(str(exc)) from None
    finally:
        store.close()
    return 0
