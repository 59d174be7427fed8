"""Consumers on the command line: ``logfs consume`` and ``logfs groups``.

Both read a data directory as the exporter does (the core's read-only store, no
lock, never a write to a log) and keep consumer groups in the core's group store
(logfs/core/groups.py), which the exporter's ``?group=`` reads too. A path in a mount
is mapped to the mount's data directory (logfs/paths.py), so nothing here goes through
FUSE.

- starts.py: where a consumer starts in a log (``--from``, a group's position,
  ``--reset``) and the record number of a byte offset
- output.py: the record formats (raw lines with sendfile, ``--print-offset``,
  ``--format json``); times.py: the append time the sparse time index gives a record
- member.py: one consumer per group at a time (an flock per group)
- progress.py: the catch-up progress line on a terminal's stderr
- window.py: when written records must be committed; signals.py: Ctrl-C and
  SIGTERM without losing a batch's bookkeeping
- options.py: what ``logfs consume`` is asked, checked; commands.py: the command
  lines of both commands
- runner.py: ``logfs consume``: catching up, following (inotify, logfs/watch.py),
  committing
- groupcli.py: ``logfs groups`` list, describe, reset, delete

docs/consumers.md is the user's guide.
"""
