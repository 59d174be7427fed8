"""What ``logfs consume`` is asked, and the refusal of what cannot be asked.

:class:`ConsumeOptions` is the command line's options as a value (the tests build
it directly too); :func:`check_options` refuses a bad one before anything is opened,
with exit status 2, as a :class:`ConsumeError`. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from logfs.core import InvalidName
from logfs.core.groups import check_group_name
from logfs.core.selection import RESETS, BadSelection, parse_time

from .output import FORMATS
from .starts import parse_from
from .window import DEFAULT_COMMIT_EVERY, DEFAULT_COMMIT_MS

__all__ = ["ConsumeError", "ConsumeOptions", "check_options"]


class ConsumeError(Exception):
    """A refusal or failure, one line for the person; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ConsumeOptions:
    """What ``logfs consume`` was asked (the command line's options)."""

    paths: tuple[str, ...]
    group: str | None = None
    start: str = "earliest"              # --from
    reset: str = "earliest"              # --reset
    until: str | None = None             # --until TIME
    max_records: int | None = None       # --max
    follow: bool = False
    fmt: str = "raw"                     # --format
    print_offset: bool = False
    commit_every: int = DEFAULT_COMMIT_EVERY
    commit_ms: int = DEFAULT_COMMIT_MS


def check_options(opts: ConsumeOptions) -> None:
    """Refuse what cannot be asked (exit 2). Raises ConsumeError."""
    if opts.fmt not in FORMATS:
        raise ConsumeError(f"--format {opts.fmt!r}: use one of {', '.join(FORMATS)}", 2)
    if opts.print_offset and opts.fmt == "json":
        raise ConsumeError("--print-offset is for raw lines: --format json has record and offset", 2)
    if opts.reset not in RESETS:
        raise ConsumeError(f"--reset {opts.reset!r}: use earliest or latest", 2)
    if opts.max_records is not None and opts.max_records < 0:
        raise ConsumeError("--max must be 0 or more", 2)
    if opts.commit_every < 1 or opts.commit_ms < 1:
        raise ConsumeError("--commit-every and --commit-ms must be at least 1", 2)
    try:
        parse_from(opts.start, 0)
    except BadSelection as exc:
        raise ConsumeError(f"--from {exc}", 2) from None
    if opts.until is not None:
        try:
            parse_time(opts.until, 0)
        except BadSelection as exc:
            raise ConsumeError(f"--until: {exc}", 2) from None
    if opts.group is not None:
        try:
            check_group_name(opts.group)
        except InvalidName as exc:
            raise ConsumeError(f"--group: {exc}", 2) from None
