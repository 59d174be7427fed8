"""``python -m logfs.exporter DATA ...`` (and ``logfs serve``): parse options,
configure logging, serve until SIGINT/SIGTERM.

``logfs serve`` can call :func:`main` with its remaining arguments, or put
:func:`add_arguments` on its subparser and call :func:`run` with the parsed options.

Once listening, one line goes to stdout: ``logfs exporter listening on
http://HOST:PORT`` (with ``--port 0`` the kernel picks the port; scripts read it
there). The access log (one JSON object per request) goes to stderr, or to
``--access-log FILE``.
"""

from __future__ import annotations

import argparse
import logging
import sys

import trio

from logfs.datadir import DataDirError, check_data_dir
from logfs.serving import report_failure, until_stopped

from .protocol import Limits
from .server import serve_exporter

__all__ = ["add_arguments", "build_parser", "main", "run"]

DEFAULT_PORT = 8480


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0 (any free port) to 65535."""
    try:
        port = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: use 1-65535, or 0 for any "
                                         "free port")
    return port


def _at_least_one(text: str) -> int:
    try:
        n = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is too small: at least 1")
    return n


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The exporter's options, for ``logfs serve`` to put on its subparser."""
    p.add_argument("data", metavar="DATA", help="the logfs data directory").complete = \
        {"bash": "_shtab_compgen_dirs", "zsh": "_files -/", "tcsh": "d"}  # shtab.DIRECTORY
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--token-file", help="require 'Authorization: Bearer <token>' with the token in this file")
    p.add_argument("--max-connections", type=_at_least_one, default=Limits.max_connections,
                   help=f"clients served at once; more get 503 (default {Limits.max_connections})")
    p.add_argument("--request-timeout", type=_seconds, default=Limits.request_timeout_s,
                   help="seconds a client has to send a complete request head (default %(default)s)")
    p.add_argument("--send-timeout", type=_seconds, default=Limits.send_timeout_s,
                   help="seconds a client may accept no bytes before it is dropped (default %(default)s)")
    p.add_argument("--access-log", help="write the access log (JSON lines) to this file instead of stderr")
    p.add_argument("--debug", action="store_true", help="verbose logging")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (the usage is one --help away)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser(prog: str = "logfs serve") -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="Serve logfs logs read-only over HTTP/1.1 "
                                "(zero-copy with sendfile). See docs/exporter.md.")
    add_arguments(p)
    return p


def _read_token(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            token = f.read().strip()
    except OSError as exc:
        raise ValueError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    if not token:
        raise ValueError(f"token file {path} is empty")
    if any(c < 0x21 or c > 0x7e for c in token):
        raise ValueError(f"token file {path}: the token must be printable ASCII without spaces")
    return token


def _configure_logging(access_log: str | None, debug: bool) -> None:
    # one access line per request: skip what no format here prints (the logging
    # HOWTO's "Optimization": caller lookup walks the stack, thread and process ids)
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    err = logging.StreamHandler(sys.stderr)
    err.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    err.addFilter(lambda record: record.name != "logfs.exporter.access")
    root.addHandler(err)
    access = logging.getLogger("logfs.exporter.access")
    access.propagate = False
    access.handlers.clear()
    handler = logging.FileHandler(access_log) if access_log else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)


async def _run(args: argparse.Namespace, token: bytes | None, limits: Limits) -> None:
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(lambda task_status: serve_exporter(
            args.data, host=args.bind, port=args.port, token=token, limits=limits,
            task_status=task_status))
        shown = f"[{host}]" if ":" in host else host
        print(f"logfs exporter listening on http://{shown}:{port}", flush=True)
        await until_stopped(logging.getLogger(__name__))
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None, prog: str = "logfs serve") -> int:
    """Run the exporter; returns the exit code (0 after SIGINT/SIGTERM)."""
    return run(build_parser(prog).parse_args(argv), prog)


def run(args: argparse.Namespace, prog: str = "logfs serve") -> int:
    """Run the exporter from options parsed with :func:`add_arguments`.

    The exporter's one error boundary: bad input is one line on stderr and exit 2,
    a failure to start (address in use, DATA unreadable) one line and exit 1; never
    a traceback (LOGFS_DEBUG=1 shows one for a bug)."""
    try:
        data = check_data_dir(args.data, must_exist=True)
        token = _read_token(args.token_file) if args.token_file else None
        if args.access_log:
            with open(args.access_log, "a"):
                pass
    except (DataDirError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{prog}: cannot write the access log {args.access_log}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.max_connections < 1:
        print(f"{prog}: --max-connections must be at least 1", file=sys.stderr)
        return 2
    args.data = data
    _configure_logging(args.access_log, args.debug)
    limits = Limits(max_connections=args.max_connections, request_timeout_s=args.request_timeout,
                    send_timeout_s=args.send_timeout)
    try:
        trio.run(_run, args, token, limits)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - nurseries wrap what serve_exporter raises
        return report_failure(prog, exc, f"{args.bind}:{args.port}")
    return 0
