"""``logfs kafka DATA --listen HOST:PORT``: the Kafka listener without a mount.

The process opens DATA as its writer (the store's lock: a running mount of DATA owns
the logs, and then this command refuses with one line: use ``logfs mount -o
kafka=HOST:PORT`` instead). Once listening, one line goes to stdout: ``logfs kafka
listening on HOST:PORT`` (with port 0 the kernel picks it; scripts read it there).
"""

from __future__ import annotations

import argparse
import logging
import sys
from functools import partial

import trio

from logfs.core import StoreLocked, open_log_store
from logfs.tier.recorded import recorded_remote
from logfs.tier.task import run_tiering
from logfs.datadir import DataDirError, check_data_dir
from logfs.serving import leaf, report_failure, until_stopped

from .broker import Broker, BrokerOptions, PlainWriter
from .server import serve_kafka

__all__ = ["add_arguments", "parse_address", "run"]

DEFAULT_PORT = 9092


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """HOST:PORT (or :PORT, or PORT) -> (host, port). Raises ValueError."""
    host, sep, port_s = text.rpartition(":")
    if not sep:
        host, port_s = "", text
    host = host.strip("[]") or default_host
    try:
        port = int(port_s, 10)
    except ValueError:
        raise ValueError(f"{text!r} is not HOST:PORT") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{port} is not a port: use 1-65535, or 0 for any free port")
    return host, port


def _address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", metavar="DATA", help="the logfs data directory (not mounted)")
    p.add_argument("--listen", type=_address, default=("127.0.0.1", DEFAULT_PORT),
                   metavar="HOST:PORT", help=f"address to listen on (default 127.0.0.1:{DEFAULT_PORT})")
    p.add_argument("--advertise", type=_address, metavar="HOST:PORT",
                   help="address clients are told to connect to (Metadata); default: --listen")
    p.add_argument("--no-auto-create", action="store_true",
                   help="refuse Produce/Metadata for topics that do not exist (Kafka's "
                        "auto.create.topics.enable=false)")
    p.add_argument("--max-connections", type=int, default=BrokerOptions.max_connections)
    p.add_argument("--debug", action="store_true", help="verbose logging")


def options_from(args: argparse.Namespace) -> BrokerOptions:
    host, port = args.listen
    o = BrokerOptions(host=host, port=port, auto_create=not args.no_auto_create,
                      max_connections=args.max_connections)
    if args.advertise:
        o.advertise_host, o.advertise_port = args.advertise
    return o


async def _run(data: str, options: BrokerOptions) -> None:
    remote = recorded_remote(data)
    store = await trio.to_thread.run_sync(partial(open_log_store, data, remote=remote))
    try:
        broker = Broker(store, PlainWriter(), options)
        async with trio.open_nursery() as nursery:
            if store.tiering is not None:  # the writer tiers, as the mount does
                nursery.start_soon(run_tiering, store)
            host, port = await nursery.start(serve_kafka, broker)
            print(f"logfs kafka listening on {host}:{port}", flush=True)
            await until_stopped(logging.getLogger(__name__))
            nursery.cancel_scope.cancel()
    finally:
        store.close()


def run(args: argparse.Namespace, prog: str = "logfs kafka") -> int:
    """The command's one error boundary: one line and a non-zero exit, no traceback."""
    try:
        data = check_data_dir(args.data, must_exist=True)
    except DataDirError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        trio.run(_run, data, options_from(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - nurseries wrap what the server raises
        if isinstance(leaf(exc), StoreLocked):
            print(f"{prog}: {leaf(exc)}: a mount (or another logfs kafka) owns DATA's logs; "
                  "serve Kafka from it: logfs mount -o kafka=HOST:PORT DATA MOUNTPOINT",
                  file=sys.stderr)
            return 1
        host, port = args.listen
        return report_failure(prog, exc, f"{host}:{port}")
    return 0
