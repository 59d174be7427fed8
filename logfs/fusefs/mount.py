"""The composition root of the daemon: store + operations + trio nursery.

``run_mount`` opens the store (the writer lock makes a second mount of the same DATA
fail), mounts with pyfuse3, and runs in one trio nursery:

- ``pyfuse3.main()`` — the FUSE request loop;
- the control socket (``logfs config|describe|umount``, see control.py);
- the maintenance task (maintenance.py: retention, segment.ms rolls, flush.ms);
- a signal watcher: SIGINT/SIGTERM/SIGHUP -> ``pyfuse3.terminate()``.

When the loop ends (signal, ``fusermount3 -u``, ``logfs umount``) it unmounts with
``pyfuse3.close()`` and closes the store, which flushes every log and writes the
clean-shutdown marker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from dataclasses import dataclass, field
from typing import Any, Callable

import pyfuse3
import trio

from logfs.core import open_log_store, parse_config
from logfs.core.manifest import CHUNK_BYTES
from logfs.core.remote import DEFAULT_CACHE_BYTES
from logfs.core.config import CONFIG_KEYS
from logfs.core.errors import StoreLocked
from logfs.datadir import DataDirError, check_data_dir
from logfs.core.objectstore import ObjectStoreError
from logfs.fusefs import control, fastloop, mounts, pyfuse3_features, replica
from logfs.fusefs.maintenance import Maintenance
from logfs.fusefs.operations import LogfsOperations

log = logging.getLogger(__name__)

DEFAULT_READ_AHEAD_KB: int | None = None  # keep the kernel's 128 KiB: measured faster (docs/fuse.md)
PID_FILE = "daemon.pid"
LOG_FILE = "daemon.log"

ADAPTER_OPTIONS = {
    "allow_other": "let other users use the mount (needs user_allow_other in /etc/fuse.conf)",
    "allow_root": "let root use the mount",
    "noauto_unmount": "do not unmount automatically if the daemon dies",
    "mtime_granularity=S": "report log mtimes rounded down to S seconds (default: exact, or 60 "
                           "where auto_inval_data cannot be turned off; 0 = exact)",
    "auto_inval_data": "keep libfuse's auto_inval_data: a changed mtime then drops a log's "
                       "cached pages (default: turned off, docs/fuse.md)",
    "read_ahead_kb=N": "kernel readahead for the mount in KiB (default: the kernel's, 128)",
    "spin_us=N": "after each request, poll for the next one this many microseconds before "
                 "sleeping (default 50; 0 = never spin)",
    "debug": "log every request at DEBUG level",
    "kafka=HOST:PORT": "serve Kafka's wire protocol on HOST:PORT from this daemon, the logs' "
                       "writer (docs/kafka.md); loopback unless told otherwise",
    "kafka.advertise=HOST:PORT": "the address Kafka clients are told to connect to (default: "
                                 "kafka=)",
    "kafka.auto_create=BOOL": "create a topic on its first Produce/Metadata (default true; "
                              "false: like auto.create.topics.enable=false)",
    "remote=s3://BUCKET/PREFIX": "the object store that logs with remote.storage.enable=true "
                                 "tier their sealed segments to (docs/tiered-storage.md); "
                                 "remembered in DATA/.logfs/remote.json",
    "remote.endpoint=URL": "the S3-compatible server to use instead of AWS (e.g. "
                           "http://127.0.0.1:8333)",
    "remote.cache.bytes=N": "local cache of remote segment chunks (default 1073741824)",
}


_VALUE_OPTIONS = {k.split("=")[0] for k in ADAPTER_OPTIONS if "=" in k}
_FLAG_OPTIONS = {k for k in ADAPTER_OPTIONS if "=" not in k} | {"auto_unmount"}


class MountError(Exception):
    """The mount could not be set up; the message says why and what to do."""


@dataclass
class MountOptions:
    defaults: dict[str, str] = field(default_factory=dict)
    allow_other: bool = False
    allow_root: bool = False
    auto_unmount: bool = True
    mtime_granularity_s: float | None = None  # None: exact, or 60 s if auto_inval_data stays on
    auto_inval_data: bool = False
    read_ahead_kb: int | None = DEFAULT_READ_AHEAD_KB
    spin_us: int = fastloop.DEFAULT_SPIN_US
    debug: bool = False
    kafka: tuple[str, int] | None = None
    kafka_advertise: tuple[str, int] | None = None
    kafka_auto_create: bool = True
    remote: str | None = None
    remote_endpoint: str | None = None
    remote_cache_bytes: int | None = None
    replica: str | None = None  # logfs mount --replica s3://BUCKET/PREFIX: read-only


_KAFKA_KEYS = ("kafka", "kafka.advertise", "kafka.auto_create")


def _kafka_option(opts: MountOptions, key: str, value: str) -> None:
    from logfs.kafka.cli import parse_address  # noqa: PLC0415 - only with -o kafka

    if key == "kafka":
        opts.kafka = parse_address(value)
    elif key == "kafka.advertise":
        opts.kafka_advertise = parse_address(value)
    elif value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        opts.kafka_auto_create = value.lower() in ("true", "1", "yes", "on")
    else:
        raise ValueError(value)


def _remote_option(opts: MountOptions, key: str, value: str) -> None:
    if key == "remote":
        from logfs.tier.s3 import parse_remote_url  # noqa: PLC0415 - only with -o remote
        try:
            parse_remote_url(value)
        except ValueError as exc:
            raise MountError(f"mount option remote: {exc}") from None
        opts.remote = value
    elif key == "remote.endpoint":
        if not value.startswith(("http://", "https://")):
            raise MountError(f"mount option remote.endpoint: {value!r} is not an http:// or "
                             "https:// URL")
        opts.remote_endpoint = value
    else:
        opts.remote_cache_bytes = int(value)
        if opts.remote_cache_bytes < 2 * CHUNK_BYTES:
            raise MountError(f"mount option remote.cache.bytes: {value} is less than two chunks "
                             f"({2 * CHUNK_BYTES} bytes)")


def open_remote(data_dir: str, opts: MountOptions):
    """The object store of the mount (-o remote=, or what DATA/.logfs/remote.json
    remembers), checked: None without one. Raises MountError (missing bucket, bad
    credentials, unreachable: nothing is touched then)."""
    from logfs.core.tiering import read_remote_config, write_remote_config  # noqa: PLC0415

    url, endpoint = opts.replica or opts.remote, opts.remote_endpoint
    if url is None:
        recorded = read_remote_config(data_dir)
        if not recorded.get("url"):
            if endpoint is not None:
                raise MountError("mount option remote.endpoint needs remote=s3://BUCKET/PREFIX")
            return None
        url, endpoint = recorded["url"], endpoint or recorded.get("endpoint")
        log.info("tiering to %s (remembered in %s/.logfs/remote.json)", url, data_dir)
    from logfs.tier.s3 import S3ObjectStore  # noqa: PLC0415 - boto3 only with a remote
    try:
        objects = S3ObjectStore(url, endpoint=endpoint)  # a bad AWS profile raises here
        objects.check()
    except ObjectStoreError as exc:
        raise MountError(f"remote {url}: {exc}") from None
    write_remote_config(data_dir, url, endpoint, replica=opts.replica is not None)
    return objects


def parse_mount_options(specs: list[str]) -> MountOptions:
    """Parse ``-o`` values ("a=b,c"); Kafka keys become mount-wide log defaults.

    Raises MountError naming a bad option or value.
    """
    opts = MountOptions()
    for spec in specs:
        for item in filter(None, (s.strip() for s in spec.split(","))):
            key, eq, value = item.partition("=")
            try:
                if key == "allow_other" and not eq:
                    opts.allow_other = True
                elif key == "allow_root" and not eq:
                    opts.allow_root = True
                elif key == "noauto_unmount" and not eq:
                    opts.auto_unmount = False
                elif key == "auto_unmount" and not eq:
                    opts.auto_unmount = True
                elif key == "debug" and not eq:
                    opts.debug = True
                elif key == "auto_inval_data" and not eq:
                    opts.auto_inval_data = True
                elif key == "mtime_granularity" and eq:
                    opts.mtime_granularity_s = float(value)
                    if not 0 <= opts.mtime_granularity_s <= 86400:  # also refuses nan
                        raise ValueError
                elif key == "read_ahead_kb" and eq:
                    opts.read_ahead_kb = int(value)
                    if opts.read_ahead_kb < 0:
                        raise ValueError
                elif key == "spin_us" and eq:
                    opts.spin_us = int(value)
                    if not 0 <= opts.spin_us <= 10_000:
                        raise ValueError
                elif key in _KAFKA_KEYS and eq:
                    _kafka_option(opts, key, value)
                elif key in ("remote", "remote.endpoint", "remote.cache.bytes") and eq:
                    _remote_option(opts, key, value)
                elif key in CONFIG_KEYS or "." in key:
                    if not eq or not value.strip():
                        raise MountError(f"mount option {key!r} needs a value: -o {key}=N "
                                         "(see `logfs mount --help` for the config keys)")
                    opts.defaults[key] = value
                elif key in _VALUE_OPTIONS and not eq:
                    raise MountError(f"mount option {key!r} needs a value: -o {key}=N")
                elif key in _FLAG_OPTIONS and eq:
                    raise MountError(f"mount option {key!r} takes no value (got {item!r})")
                else:
                    raise MountError(
                        f"unknown mount option {item!r}: use a log config key "
                        f"(segment.bytes=..., retention.ms=...) or one of "
                        f"{', '.join(ADAPTER_OPTIONS)}")
            except ValueError:
                raise MountError(f"bad value for mount option {key!r}: {value!r}") from None
    if opts.defaults:
        try:
            parse_config(opts.defaults)
        except Exception as exc:  # ConfigError names the key
            raise MountError(f"bad mount option: {exc}") from None
    return opts


def _fuse_options(data_dir: str, opts: MountOptions) -> set[str]:
    fsname = data_dir.replace("\\", "\\\\").replace(",", "\\,")
    options = {"fsname=" + fsname, "subtype=logfs", "default_permissions"}
    if opts.allow_other:
        options.add("allow_other")
    if opts.allow_root:
        options.add("allow_root")
    if opts.auto_unmount:
        options.add("auto_unmount")
    if opts.replica is not None:
        options.add("ro")  # the kernel answers every write EROFS
    return options


def _set_read_ahead(mountpoint: str, kb: int) -> None:
    """Write the mount's bdi read_ahead_kb (docs/fuse.md, "Readahead", has the
    measurements: the kernel's 128 KiB is the default because it was faster here)."""
    entry = mounts.logfs_mount_at(mountpoint)
    if entry is None:
        return
    path = f"/sys/class/bdi/{entry.device}/read_ahead_kb"
    try:
        with open(path, "w") as f:
            f.write(str(kb))
        log.info("readahead set to %d KiB (%s)", kb, path)
    except OSError as exc:
        log.info("could not set readahead (%s): %s", path, exc)


async def _set_read_ahead_after_init(mountpoint: str, kb: int) -> None:
    # The kernel caps the bdi's readahead when the FUSE INIT reply arrives, so set it
    # after that: a statfs through the mount (from a thread) waits for INIT.
    try:
        await trio.to_thread.run_sync(os.statvfs, mountpoint, abandon_on_cancel=True)
    except OSError as exc:
        log.info("could not statfs %s: %s", mountpoint, exc)
        return
    _set_read_ahead(mountpoint, kb)


def describe(store, ops: LogfsOperations, parts: tuple[str, ...]) -> dict[str, Any]:
    """JSON-ready figures for the mount root, a topic or a log (`logfs describe`)."""
    if not parts:
        return {
            "kind": "mount",
            "data": ops.data_dir,
            "pid": os.getpid(),
            "topics": store.topics(),
            "fuse": dict(ops.totals),
            "mtime_granularity_s": ops.mtime_granularity_ns / 1e9,
            "auto_inval_data": ops.auto_inval_data,
            "kafka": ops.kafka_address,
            "pyfuse3": {
                "version": pyfuse3_features.pyfuse3_version(),
                "auto_inval_data_switch": pyfuse3_features.has_auto_inval_data_switch(),
                "busy_poll": pyfuse3_features.has_busy_poll(),
                "write_sync": ops.write_sync is not None,
            },
        }
    if len(parts) == 1:
        return control.describe_topic(store, parts[0])
    d = control.describe_log(store, *parts)
    d["fuse"] = ops.log_counters(*parts)
    return d


def make_control_handler(store, ops: LogfsOperations, opts: MountOptions,
                         mountpoint: str) -> Callable[[dict[str, Any]], Any]:
    def handle(req: dict[str, Any]) -> Any:
        op = req.get("op")
        parts = tuple(req.get("path") or ())
        if len(parts) > 2:
            raise ValueError("a logfs path is MOUNT, MOUNT/topic or MOUNT/topic/log")
        if op == "ping":
            return {"pid": os.getpid(), "mountpoint": mountpoint, "data": ops.data_dir}
        if op == "describe":
            d = describe(store, ops, parts)
            if not parts:
                d["mountpoint"] = mountpoint
                d["defaults"] = control.typed_config(opts.defaults)
            return d
        if op == "config":
            new = req.get("set") or {}
            if new:
                if not parts:
                    raise ValueError("mount-wide defaults are set with -o key=value at mount")
                if len(parts) == 1:
                    store.set_topic_config(parts[0], new)
                else:
                    store.set_log_config(parts[0], parts[1], new)
                log.info("config of %s set: %s", "/".join(parts),
                         ", ".join(f"{k}={v}" for k, v in new.items()))
            return control.config_view(store, parts, opts.defaults)
        raise ValueError(f"unknown control request {op!r}")

    return handle


async def _watch_signals() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("got %s: unmounting", signal.Signals(signum).name)
            pyfuse3.terminate()


async def _serve(store, ops: LogfsOperations, opts: MountOptions, mountpoint: str,
                 ready: Callable[[str | None], None]) -> None:
    async with trio.open_nursery() as nursery:
        ops.spawn = nursery.start_soon
        nursery.start_soon(_watch_signals)
        await nursery.start(control.serve_control, ops.data_dir,
                            make_control_handler(store, ops, opts, mountpoint))
        if opts.replica is None:
            nursery.start_soon(Maintenance(store, ops).run)
        else:
            nursery.start_soon(replica.run_replica_sync, store, ops)
        if store.tiering is not None:
            from logfs.tier.task import run_tiering  # noqa: PLC0415
            nursery.start_soon(run_tiering, store)
        if opts.kafka is not None:
            host, port = await nursery.start(_serve_kafka, store, ops, opts)
            ops.kafka_address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if opts.read_ahead_kb:
            nursery.start_soon(_set_read_ahead_after_init, mountpoint, opts.read_ahead_kb)
        ready(None)
        await fastloop.run_request_loop(opts.spin_us)  # cheaper waits (fastloop's docstring)
        log.info("FUSE session ended")
        nursery.cancel_scope.cancel()


async def _serve_kafka(store, ops: LogfsOperations, opts: MountOptions,
                       task_status=trio.TASK_STATUS_IGNORED) -> None:
    """The Kafka listener in this daemon (logfs/kafka/): its appends go through
    MountWriter, and every write through the mount wakes its long-poll Fetches."""
    from logfs.fusefs.kafka_writer import MountWriter  # noqa: PLC0415 - only with -o kafka
    from logfs.kafka.broker import Broker, BrokerOptions  # noqa: PLC0415
    from logfs.kafka.server import serve_kafka  # noqa: PLC0415

    host, port = opts.kafka
    options = BrokerOptions(host=host, port=port, auto_create=opts.kafka_auto_create)
    if opts.kafka_advertise:
        options.advertise_host, options.advertise_port = opts.kafka_advertise
    broker = Broker(store, MountWriter(ops), options)
    ops.on_append = broker.notify
    try:
        await serve_kafka(broker, task_status=task_status)
    except OSError as exc:  # before it listens (then the mount is refused): a busy port
        raise MountError(f"cannot listen for Kafka clients on {host}:{port}: "
                         f"{exc.strerror or exc}") from None
    finally:
        ops.on_append = None


def run_mount(data_dir: str, mountpoint: str, opts: MountOptions,
              ready: Callable[[str | None], None] = lambda err: None) -> int:
    """Mount DATA on MOUNTPOINT and serve until unmounted. Blocks; returns an exit code.

    ``ready(None)`` is called once the mount is usable, ``ready(message)`` if it
    could not be set up (then MountError is raised as well).
    """
    data_dir = os.path.realpath(data_dir)
    mountpoint = os.path.realpath(mountpoint)  # as the kernel will record it
    try:
        return _run_mount(data_dir, mountpoint, opts, ready)
    except MountError as exc:
        ready(str(exc))
        raise


def check_mount_setup(data_dir: str, mountpoint: str) -> str:
    """Refuse a mount that cannot work, before anything is created or mounted:
    MOUNTPOINT missing, not a directory or already a logfs mount; DATA not usable as
    a data directory (logfs/datadir.py); DATA and MOUNTPOINT laid out so that the
    daemon would use its own mount (mounts.check_mount_layout). Returns DATA's real
    path (DATA itself may not exist yet). Raises MountError; blocks briefly (stat).

    A dead mountpoint (its daemon was killed) is not checked here: ``run_mount``
    clears it first and then checks again.
    """
    if not mounts.is_dead_mountpoint(mountpoint):
        if not os.path.lexists(mountpoint):
            raise MountError(f"mountpoint {mountpoint} does not exist: create it first "
                             f"(mkdir -p {mountpoint})")
        if not os.path.isdir(mountpoint):
            raise MountError(f"mountpoint {mountpoint} is not a directory")
        if mounts.logfs_mount_at(mountpoint) is not None:
            raise MountError(f"{mountpoint} is already a logfs mount; `logfs umount "
                             f"{mountpoint}` first")
    try:
        real = check_data_dir(data_dir, must_exist=False)
        if not mounts.is_dead_mountpoint(mountpoint):
            mounts.check_mount_layout(data_dir, mountpoint)
    except (DataDirError, mounts.LayoutError) as exc:
        raise MountError(f"refusing to mount: {exc}") from None
    return real


def _only(group: BaseExceptionGroup, kind: type) -> BaseException | None:
    """The one exception of *kind* a (nested) exception group holds, or None."""
    matched, rest = group.split(kind)
    if matched is None or rest is not None:
        return None
    exc: BaseException = matched
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return None if isinstance(exc, BaseExceptionGroup) else exc


def _actions(report: list) -> str:
    return f"{len(report)} recovery action{'s' if len(report) != 1 else ''}"


def _log_opening(store, data_dir: str) -> None:
    """One line on how DATA was found: a first mount (of an empty or an existing
    directory), a clean restart, or a restart after a crash; a warning only when
    recovery had something to repair. The actions themselves are not repeated here:
    the core's recovery logs each one, once (logfs.core.recovery)."""
    report = list(store.recovery_report or [])
    topics = store.topics()
    n_logs = sum(len(store.logs(t)) for t in topics)
    found = f"{n_logs} log{'s' if n_logs != 1 else ''} in {len(topics)} " \
            f"topic{'s' if len(topics) != 1 else ''}"
    if store.first_open:
        if not topics:
            log.info("first mount of %s (an empty data directory)", data_dir)
        elif report:
            log.warning("first mount of existing data directory %s: %s checked, %s",
                        data_dir, found, _actions(report))
        else:
            log.info("first mount of existing data directory %s: %s checked, nothing to "
                     "recover", data_dir, found)
    elif store.was_clean:
        log.info("opened %s after a clean shutdown: %s", data_dir, found)
    elif report:
        log.warning("%s was not shut down cleanly: %s checked, %s", data_dir, found,
                    _actions(report))
    else:
        log.info("%s was not shut down cleanly: %s checked, nothing to recover",
                 data_dir, found)


def _run_mount(data_dir, mountpoint, opts, ready) -> int:
    if mounts.is_dead_mountpoint(mountpoint):
        log.warning("%s is a dead mount (its daemon was killed): unmounting it", mountpoint)
        r = mounts.fusermount_unmount(mountpoint, lazy=True)
        if mounts.is_dead_mountpoint(mountpoint):
            raise MountError(f"{mountpoint} is left over from a killed daemon and could not "
                             f"be cleaned up ({r.stderr.strip()}); run: fusermount3 -u -z "
                             f"{mountpoint}")
    check_mount_setup(data_dir, mountpoint)
    if not os.path.isdir(data_dir):
        raise MountError(f"data directory {data_dir} does not exist")
    try:
        objects = open_remote(data_dir, opts)
        if opts.replica is not None:
            try:
                replica_state = replica.first_sync(data_dir, objects)
            except (ObjectStoreError, OSError) as exc:
                raise MountError(f"replica of {objects.description}: {exc}") from None
        store = open_log_store(data_dir, defaults=opts.defaults, remote=objects,
                               readonly=opts.replica is not None,
                               remote_cache_bytes=opts.remote_cache_bytes or DEFAULT_CACHE_BYTES)
        if opts.replica is not None:
            store.replica = (objects, replica_state)
    except StoreLocked:
        raise MountError(f"{data_dir} is already mounted by another logfs daemon "
                         f"(see {os.path.join(control.control_dir(data_dir), PID_FILE)})") from None
    pid_path = os.path.join(control.control_dir(data_dir), PID_FILE)
    mounted = False
    try:
        _log_opening(store, data_dir)
        ops = LogfsOperations(store, data_dir, mtime_granularity_s=opts.mtime_granularity_s,
                              keep_auto_inval_data=opts.auto_inval_data)
        options = _fuse_options(data_dir, opts)
        if opts.debug:
            options.add("debug")
        try:
            pyfuse3.init(ops, mountpoint, options)
        except RuntimeError as exc:
            raise MountError(f"cannot mount on {mountpoint}: {exc}") from None
        mounted = True
        with open(pid_path, "w") as f:
            f.write(f"{os.getpid()}\n")
        log.info("mounted %s on %s (pid %d)", data_dir, mountpoint, os.getpid())
        try:
            trio.run(_serve, store, ops, opts, mountpoint, ready)
        except BaseExceptionGroup as group:  # a refusal inside the nursery: say it plainly
            refusal = _only(group, MountError)
            if refusal is None:
                raise
            raise refusal from None
        return 0
    finally:
        if mounted:
            try:
                pyfuse3.close(unmount=True)
            except Exception:  # noqa: BLE001
                log.exception("pyfuse3.close failed")
        try:
            store.close()
            log.info("store closed cleanly")
        except Exception:  # noqa: BLE001
            log.exception("closing the store failed")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pid_path)
