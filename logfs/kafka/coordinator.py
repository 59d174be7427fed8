"""Kafka's classic group coordinator (GroupCoordinator.scala, GroupMetadata.scala)
over logfs's consumer groups: the membership of each group lives in memory here; its
committed offsets live in the durable group store (logfs/core/groups.py), the one
``logfs consume --group`` and ``logfs groups`` use.

Theory of operation
-------------------
There is one broker, so it coordinates every group. A group moves through Kafka's
states::

    Empty ──join──> PreparingRebalance ──all joined, or timeout──> CompletingRebalance
    CompletingRebalance ──the leader's SyncGroup──> Stable
    Stable, CompletingRebalance ──a new member, a leave, an expiry──> PreparingRebalance
    PreparingRebalance ──nobody rejoined──> Empty

A rebalance ends when every member, and every member id handed out with
MEMBER_ID_REQUIRED (KIP-394), has sent its JoinGroup, or when the longest rebalance
timeout of the members has passed: members that did not rejoin are removed. Then the
generation goes up, a protocol every member supports is chosen (the members' first
choices among those vote; a tie goes to the leader's preference) and each waiting
JoinGroup is answered, the leader's with the members and their metadata. A SyncGroup
waits for the leader's, which brings the assignments. Heartbeats answer
REBALANCE_IN_PROGRESS while a rebalance is prepared, which makes the members rejoin.

Deadlines: each member's session (renewed by each of its requests, and paused while
its JoinGroup or SyncGroup waits: those waits have their own bound), each pending
member id's session, and the group's rebalance deadline (the join phase's end, then,
as in Kafka 3.2+, the time by which every member must have sent SyncGroup).
:meth:`GroupCoordinator.run` sleeps until the nearest and acts on whatever passed;
a change that may bring a deadline nearer wakes it.

Offsets: a Kafka offset is a logfs record number; the store also keeps the byte
offset where the record starts, computed here, in trio's thread (the LogStore is not
thread-safe), before the commit goes to a worker thread (it fdatasyncs). The store's
calls on one group are serialised by a lock per group. Commit metadata strings are
not stored: OffsetFetch answers "".

Not supported: static membership beyond ids (a static member that rejoins is
replaced and the group rebalances, where Kafka would hand it its old assignment),
the initial rebalance delay (``group.initial.rebalance.delay.ms``: 0 here), a group
size limit, transactions.
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import TYPE_CHECKING, Any

import trio

from logfs.consumer.member import GroupBusy, GroupMember
from logfs.core import (ConsumerGroup, GroupStore, InvalidName, NotFound, OffsetOutOfRange,
                        Position, StorageError, StorageIOError)
from logfs.core.groups import check_group_name

from .errors import Err, error_of
from .groupstate import Group, Member, Reply, State, join_error, sync_error
from .mapping import KafkaTopic
from .wire import ms

if TYPE_CHECKING:
    from .context import BrokerContext

__all__ = ["Group", "GroupCoordinator", "Member", "State"]

log = logging.getLogger(__name__)

MIN_SESSION_MS, MAX_SESSION_MS = 6_000, 1_800_000  # Kafka's group.{min,max}.session.timeout.ms
NO_OPERATIONS = -(1 << 31)  # "authorized operations not asked for"
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)  # READ, DELETE, DESCRIBE: no authorizer
NO_OFFSET = -1


def _group_error(group_id: Any) -> int:
    try:
        check_group_name(group_id)
    except InvalidName:
        return Err.INVALID_GROUP_ID
    return Err.NONE


def _new_member_id(prefix: str) -> str:
    return f"{prefix or 'member'}-{uuid.uuid4()}"


def _finish_join(result: dict, version: int) -> dict:
    """Before v7 the protocol name is not nullable."""
    if version < 7 and result["protocol_name"] is None:
        result = {**result, "protocol_name": ""}
    return {"throttle_time": 0, **result}


class _Durable:
    """A group's handle in the store and the lock that serialises its store calls."""

    def __init__(self, store: GroupStore, group_id: str) -> None:
        self.lock = trio.Lock()
        self.group: ConsumerGroup = store.group(group_id)


def _delete_durable(groups: GroupStore, group: ConsumerGroup) -> int:
    """Delete a group's file as ``logfs groups delete`` does: under its member lock,
    so refused while a ``logfs consume --group`` runs. Blocks on the disk; raises
    StorageIOError."""
    if not group.exists:
        return Err.GROUP_ID_NOT_FOUND
    try:
        with GroupMember(groups, group.name) as member:
            group.delete()
            member.remove()
    except GroupBusy:
        return Err.NON_EMPTY_GROUP
    except NotFound:
        return Err.GROUP_ID_NOT_FOUND
    except OSError as exc:
        raise StorageIOError.wrap(exc, f"delete of group {group.name!r}") from None
    return Err.NONE


class GroupCoordinator:
    """The group APIs' handlers (``handler(req, version) -> dict``) and :meth:`run`."""

    def __init__(self, broker: "BrokerContext") -> None:
        self.broker = broker
        opts = broker.options
        self.min_session_ms = getattr(opts, "group_min_session_timeout_ms", MIN_SESSION_MS)
        self.max_session_ms = getattr(opts, "group_max_session_timeout_ms", MAX_SESSION_MS)
        self.live: dict[str, Group] = {}
        # a live group holds the group's member lock, as a `logfs consume --group` does:
        # the two never consume one group at once (docs/kafka.md, "Consumer groups")
        self._held: dict[str, GroupMember] = {}
        self._durable: dict[str, _Durable] = {}
        self._wake = trio.Event()

    # -- the deadline loop ---------------------------------------------------------
    async def run(self) -> None:
        """Expire sessions and end rebalances whose time is up, until cancelled.
        Sleeps until the nearest deadline, or until a change may have brought one
        nearer."""
        while True:
            self._wake = trio.Event()
            self.expire_due(trio.current_time())
            nearest = self.nearest_deadline()
            with trio.move_on_at(math.inf if nearest is None else nearest):
                await self._wake.wait()

    def _poke(self) -> None:
        """Make :meth:`run` look at the deadlines again (called before a change:
        the loop runs only once the changing task waits)."""
        self._wake.set()

    def nearest_deadline(self) -> float | None:
        times: list[float] = []
        for g in self.live.values():
            times.extend(g.pending.values())
            if g.deadline is not None:
                times.append(g.deadline)
            times.extend(m.deadline for m in g.members.values() if not m.waiting)
        return min(times, default=None)

    def expire_due(self, now: float) -> None:
        """Act on every deadline at or before *now*."""
        for group in list(self.live.values()):
            for mid in [mid for mid, t in group.pending.items() if t <= now]:
                del group.pending[mid]
            for m in list(group.members.values()):
                # checked one at a time: a removal can end a rebalance, which removes or renews
                if group.members.get(m.member_id) is m and not m.waiting and m.deadline <= now:
                    log.info("group %r: member %s: session expired", group.group_id, m.member_id)
                    self._remove(group, m.member_id, now)
            if group.deadline is not None and group.deadline <= now:
                if group.state is State.PREPARING:
                    group.complete_join(now)
                elif group.state in (State.COMPLETING, State.STABLE):
                    for mid in group.expire_sync():
                        log.info("group %r: member %s never synced: removed", group.group_id, mid)
                        self._remove(group, mid, now)
                else:
                    group.deadline = None
            self._try_complete(group, now)
            self._settle(group)

    # -- state changes shared by the handlers ----------------------------------------
    def _try_complete(self, group: Group, now: float) -> None:
        if group.state is State.PREPARING and (group.all_joined() or
                                               (group.deadline is not None and now >= group.deadline)):
            group.complete_join(now)

    def _settle(self, group: Group) -> None:
        """Forget a group with nobody in it (its offsets stay in the store), and let
        go of its member lock."""
        if group.state is State.EMPTY and not group.members and not group.pending:
            if self.live.get(group.group_id) is group:
                del self.live[group.group_id]
                held = self._held.pop(group.group_id, None)
                if held is not None:
                    held.release()

    def _live_group(self, group_id: str) -> Group | None:
        """The live group *group_id*, made live if need be: that takes the group's
        member lock; None while another consumer (`logfs consume --group`, another
        logfs) holds it. Blocks briefly on the disk."""
        group = self.live.get(group_id)
        if group is not None:
            return group
        member = GroupMember(self.broker.groups, group_id)
        try:
            member.acquire()
        except GroupBusy as exc:
            log.warning("group %r: a Kafka member cannot join: %s", group_id, exc)
            return None
        except OSError as exc:
            log.warning("group %r: a Kafka member cannot join: cannot take the member lock "
                        "%s: %s", group_id, member.path, exc.strerror or exc)
            return None
        self._held[group_id] = member
        group = self.live[group_id] = Group(group_id)
        return group

    def _remove(self, group: Group, member_id: str, now: float) -> None:
        """Remove a member and rebalance the rest."""
        if member_id not in group.members:
            return
        group.remove(member_id, now)
        if group.state in (State.STABLE, State.COMPLETING):
            group.rebalance(now)
        self._try_complete(group, now)
        self._settle(group)
        self._poke()

    def _member_error(self, group: Group | None, member_id: str, instance_id: str | None) -> int:
        """Kafka's validateCurrentMember: FENCED_INSTANCE_ID, UNKNOWN_MEMBER_ID or NONE."""
        if group is None:
            return Err.UNKNOWN_MEMBER_ID
        static = group.by_instance(instance_id)
        if static is not None and static.member_id != member_id:
            return Err.FENCED_INSTANCE_ID
        if member_id not in group.members:
            return Err.UNKNOWN_MEMBER_ID
        return Err.NONE

    # -- FindCoordinator -------------------------------------------------------------
    async def find_coordinator(self, req: Any, version: int) -> dict:
        key_type = getattr(req, "key_type", 0)
        keys = list(getattr(req, "coordinator_keys", None) or ()) or [getattr(req, "key", "")]
        entries = [self._coordinator_of(key, key_type) for key in keys]
        first = entries[0]
        return {"throttle_time": 0, "coordinators": entries,
                **{k: first[k] for k in ("error_code", "error_message", "node_id", "host", "port")}}

    def _coordinator_of(self, key: str, key_type: int) -> dict:
        if key_type == 1:
            code, message = Err.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "logfs does not support transactions"
        elif key_type != 0:
            code, message = Err.INVALID_REQUEST, f"coordinator key type {key_type} is not supported"
        else:
            code = _group_error(key)
            message = None if code == Err.NONE else f"invalid group id {key!r}"
        if code != Err.NONE:
            return {"key": key, "node_id": -1, "host": "", "port": -1, "error_code": code,
                    "error_message": message}
        node = self.broker.broker_entry()
        return {"key": key, "node_id": node["node_id"], "host": node["host"], "port": node["port"],
                "error_code": Err.NONE, "error_message": None}

    # -- JoinGroup -------------------------------------------------------------------
    async def join_group(self, req: Any, version: int, client_id: str = "",
                         client_host: str = "") -> dict:
        # the connection passes the request header's client id and the peer's host
        # (DescribeGroups shows them); other callers may leave them empty
        code = self._join_check(req)
        if code:
            return _finish_join(join_error(code, req.member_id), version)
        group = self._live_group(req.group_id)
        if group is None:  # in use by a consumer that is not a Kafka member
            return _finish_join(join_error(Err.INCONSISTENT_GROUP_PROTOCOL, req.member_id), version)
        if not group.supports(req.protocol_type, [p.name for p in req.protocols], req.member_id):
            self._settle(group)
            return _finish_join(join_error(Err.INCONSISTENT_GROUP_PROTOCOL, req.member_id), version)
        now = trio.current_time()
        self._poke()  # deadlines may come nearer (the loop runs once this task waits)
        member_id, instance = req.member_id, getattr(req, "group_instance_id", None)
        if not member_id:
            member_id = _new_member_id(instance or client_id)
            if instance is None and version >= 4:  # KIP-394: come back with this id
                group.pending[member_id] = now + ms(req.session_timeout) / 1000
                return _finish_join(join_error(Err.MEMBER_ID_REQUIRED, member_id), version)
            static = group.by_instance(instance)
            if static is not None:  # a static member's new incarnation fences the old
                self._remove(group, static.member_id, now)
                if self.live.get(req.group_id) is not group:  # that emptied it: live again
                    group = self._live_group(req.group_id)
                    if group is None:
                        return _finish_join(join_error(Err.INCONSISTENT_GROUP_PROTOCOL, ""), version)
        elif member_id in group.members:
            return _finish_join(await self._rejoin(group, group.members[member_id], req, now), version)
        elif member_id in group.pending:
            del group.pending[member_id]
        else:
            self._settle(group)
            return _finish_join(join_error(self._member_error(group, member_id, instance),
                                           member_id), version)
        member = self._new_member(req, member_id, instance, client_id, client_host, now)
        group.protocol_type = req.protocol_type
        group.add(member)
        return _finish_join(await self._wait_join(group, member, now), version)

    def _join_check(self, req: Any) -> int:
        if _group_error(req.group_id):
            return Err.INVALID_GROUP_ID
        session = ms(req.session_timeout)
        if session <= 0 or not self.min_session_ms <= session <= self.max_session_ms:
            return Err.INVALID_SESSION_TIMEOUT
        if not req.protocol_type or not req.protocols:
            return Err.INCONSISTENT_GROUP_PROTOCOL
        return Err.NONE

    @staticmethod
    def _timeouts(req: Any) -> tuple[float, float]:
        """(session, rebalance) timeouts in seconds; v0 has no rebalance timeout."""
        session = ms(req.session_timeout) / 1000
        rebalance = ms(getattr(req, "rebalance_timeout", None)) / 1000
        return session, rebalance if rebalance > 0 else session

    def _new_member(self, req: Any, member_id: str, instance: str | None, client_id: str,
                    client_host: str, now: float) -> Member:
        session, rebalance = self._timeouts(req)
        return Member(member_id, instance, client_id, client_host, session, rebalance,
                      [(p.name, p.metadata) for p in req.protocols], now + session)

    async def _rejoin(self, group: Group, member: Member, req: Any, now: float) -> dict:
        """A known member's JoinGroup: answered at once when nothing changed, else a
        rebalance (or the one being prepared) it waits for."""
        instance = getattr(req, "group_instance_id", None)
        if instance is not None and member.instance_id != instance:
            return join_error(Err.FENCED_INSTANCE_ID, member.member_id)
        protocols = [(p.name, p.metadata) for p in req.protocols]
        member.session_s, member.rebalance_s = self._timeouts(req)
        member.renew(now)
        same = protocols == member.protocols
        if same and group.state is State.COMPLETING:
            return group.join_result(member.member_id, group.listing())
        if same and group.state is State.STABLE and member.member_id != group.leader:
            return group.join_result(member.member_id, [])
        member.protocols = protocols
        group.protocol_type = req.protocol_type
        return await self._wait_join(group, member, now)

    async def _wait_join(self, group: Group, member: Member, now: float) -> dict:
        member.answer_join(join_error(Err.REBALANCE_IN_PROGRESS, member.member_id), now)
        reply = member.joining = Reply()
        if group.state is not State.PREPARING:
            group.rebalance(now)
        self._try_complete(group, now)
        return await reply.wait()

    # -- SyncGroup -------------------------------------------------------------------
    async def sync_group(self, req: Any, version: int) -> dict:
        group = self.live.get(req.group_id)
        code = self._sync_check(group, req)
        if code:
            return {"throttle_time": 0, **sync_error(code)}
        assert group is not None
        now = trio.current_time()
        self._poke()  # the leader's sync starts the followers' sessions again
        member = group.members[req.member_id]
        member.renew(now)
        member.synced = True
        if group.state is State.COMPLETING and member.member_id == group.leader:
            group.assign({a.member_id: a.assignment for a in req.assignments}, now)
        if group.state is State.STABLE:
            group.sync_done()
            return {"throttle_time": 0, **group.sync_result(member)}
        member.answer_sync(sync_error(Err.REBALANCE_IN_PROGRESS), now)  # a duplicate's
        reply = member.syncing = Reply()
        return {"throttle_time": 0, **await reply.wait()}

    def _sync_check(self, group: Group | None, req: Any) -> int:
        if _group_error(req.group_id):
            return Err.INVALID_GROUP_ID
        code = self._member_error(group, req.member_id, getattr(req, "group_instance_id", None))
        if code:
            return code
        assert group is not None
        if req.generation_id != group.generation:
            return Err.ILLEGAL_GENERATION
        ptype, pname = getattr(req, "protocol_type", None), getattr(req, "protocol_name", None)
        if (ptype is not None and ptype != group.protocol_type) or (
                pname is not None and pname != group.protocol):
            return Err.INCONSISTENT_GROUP_PROTOCOL
        if group.state is State.PREPARING:
            return Err.REBALANCE_IN_PROGRESS
        return Err.NONE

    # -- Heartbeat -------------------------------------------------------------------
    async def heartbeat(self, req: Any, version: int) -> dict:
        group = self.live.get(req.group_id)
        if _group_error(req.group_id):
            code = Err.INVALID_GROUP_ID
        else:
            code = self._member_error(group, req.member_id, getattr(req, "group_instance_id", None))
        if not code:
            assert group is not None
            if req.generation_id != group.generation:
                code = Err.ILLEGAL_GENERATION
            else:
                group.members[req.member_id].renew(trio.current_time())
                if group.state is State.PREPARING:
                    code = Err.REBALANCE_IN_PROGRESS
        return {"throttle_time": 0, "error_code": code}

    # -- LeaveGroup ------------------------------------------------------------------
    async def leave_group(self, req: Any, version: int) -> dict:
        if _group_error(req.group_id):
            return {"throttle_time": 0, "error_code": Err.INVALID_GROUP_ID, "members": []}
        if version >= 3:
            leaving = [(m.member_id, m.group_instance_id) for m in req.members]
        else:
            leaving = [(req.member_id, None)]
        group = self.live.get(req.group_id)
        now = trio.current_time()
        self._poke()
        results = [{"member_id": mid, "group_instance_id": inst,
                    "error_code": self._leave_one(group, mid, inst, now)} for mid, inst in leaving]
        top = results[0]["error_code"] if version < 3 and results else Err.NONE
        return {"throttle_time": 0, "error_code": top, "members": results}

    def _leave_one(self, group: Group | None, member_id: str, instance: str | None,
                   now: float) -> int:
        if group is None:
            return Err.UNKNOWN_MEMBER_ID
        if instance is not None:
            static = group.by_instance(instance)
            if static is None:
                return Err.UNKNOWN_MEMBER_ID
            if member_id and member_id != static.member_id:
                return Err.FENCED_INSTANCE_ID
            member_id = static.member_id
        if member_id in group.pending:
            del group.pending[member_id]
            self._try_complete(group, now)
            self._settle(group)
            return Err.NONE
        if member_id not in group.members:
            return Err.UNKNOWN_MEMBER_ID
        log.info("group %r: member %s left", group.group_id, member_id)
        self._remove(group, member_id, now)
        return Err.NONE

    # -- OffsetCommit ----------------------------------------------------------------
    async def offset_commit(self, req: Any, version: int) -> dict:
        code = self._commit_check(req)
        entries: dict[tuple[str, str], tuple[int, int]] = {}
        committed: list[dict] = []  # the answers of the partitions in *entries*
        topics = []
        for t in req.topics:
            parts = []
            for p in t.partitions:
                answer = {"partition_index": p.partition_index, "error_code": code}
                if not code:
                    answer["error_code"] = self._commit_target(t.name, p.partition_index,
                                                               p.committed_offset, entries)
                    if not answer["error_code"]:
                        committed.append(answer)
                parts.append(answer)
            topics.append({"name": t.name, "partitions": parts})
        if entries:
            failed = await self._store_commit(req.group_id, entries)
            for answer in committed:
                answer["error_code"] = failed
        return {"throttle_time": 0, "topics": topics}

    def _commit_check(self, req: Any) -> int:
        """Kafka's validateOffsetCommit (classic groups)."""
        if _group_error(req.group_id):
            return Err.INVALID_GROUP_ID
        generation, member_id = req.generation_id_or_member_epoch, req.member_id
        instance = getattr(req, "group_instance_id", None)
        group = self.live.get(req.group_id)
        if generation < 0 and not member_id and instance is None:  # assign(), admin tools
            return Err.NONE if group is None or not group.members else Err.UNKNOWN_MEMBER_ID
        if group is None:
            return Err.ILLEGAL_GENERATION if generation >= 0 else Err.UNKNOWN_MEMBER_ID
        code = self._member_error(group, member_id, instance)
        if code:
            return code
        if generation != group.generation:
            return Err.ILLEGAL_GENERATION
        if group.state is State.COMPLETING:
            return Err.REBALANCE_IN_PROGRESS
        group.members[member_id].renew(trio.current_time())
        return Err.NONE

    def _commit_target(self, name: str, partition: int, offset: int,
                       entries: dict[tuple[str, str], tuple[int, int]]) -> int:
        """Add the (record, byte offset) of one partition's commit to *entries*; its
        error code. A record past the end takes the end's byte offset; one retention
        removed is kept with byte offset 0, which readers see as removed."""
        kt = self.broker.topics.find(name)
        if kt is None or not 0 <= partition < kt.partitions:
            return Err.UNKNOWN_TOPIC_OR_PARTITION
        key = (kt.topic, kt.logs[partition])
        if offset < 0:
            return Err.OFFSET_OUT_OF_RANGE
        try:
            position = self.broker.store.log(*key).record_position(offset)
        except OffsetOutOfRange:
            position = 0
        except Exception as exc:  # noqa: BLE001 - every failure becomes the partition's code
            return error_of(exc, f"offset commit to {name}-{partition}")[0]
        entries[key] = (offset, position)
        return Err.NONE

    def _durable_of(self, group_id: str) -> _Durable:
        durable = self._durable.get(group_id)
        if durable is None:
            durable = self._durable[group_id] = _Durable(self.broker.groups, group_id)
        return durable

    async def _store_commit(self, group_id: str,
                            entries: dict[tuple[str, str], tuple[int, int]]) -> int:
        """One atomic, durable commit in a worker thread. A storage failure answers
        NOT_COORDINATOR, as Kafka answers a failed append to __consumer_offsets."""
        durable = self._durable_of(group_id)
        async with durable.lock:
            try:
                await trio.to_thread.run_sync(durable.group.commit, entries)
            except StorageError as exc:
                code, _message = error_of(exc, f"offset commit of group {group_id!r}")
                return Err.NOT_COORDINATOR if code == Err.KAFKA_STORAGE_ERROR else code
        return Err.NONE

    # -- OffsetFetch -----------------------------------------------------------------
    async def offset_fetch(self, req: Any, version: int) -> dict:
        code = _group_error(req.group_id)
        positions: dict[tuple[str, str], Position] = {}
        if not code:
            durable = self._durable_of(req.group_id)
            try:
                async with durable.lock:
                    positions = await trio.to_thread.run_sync(durable.group.positions)
            except StorageError as exc:
                code = error_of(exc, f"offset fetch of group {req.group_id!r}")[0]
        if code or req.topics is not None:
            topics = [{"name": t.name, "partitions": [
                self._fetched(positions, self.broker.topics.find(t.name) if not code else None,
                              p, code) for p in t.partition_indexes]} for t in req.topics or ()]
        else:
            topics = self._all_fetched(positions)
        return {"throttle_time": 0, "error_code": code, "topics": topics}

    @staticmethod
    def _fetched(positions: dict[tuple[str, str], Position], kt: KafkaTopic | None,
                 partition: int, code: int = Err.NONE) -> dict:
        pos = None
        if kt is not None and 0 <= partition < kt.partitions:
            pos = positions.get((kt.topic, kt.logs[partition]))
        return {"partition_index": partition, "error_code": code,
                "committed_offset": NO_OFFSET if pos is None else pos.record,
                "committed_leader_epoch": -1, "metadata": ""}

    def _all_fetched(self, positions: dict[tuple[str, str], Position]) -> list[dict]:
        """Every position of the group under its Kafka name (logs Kafka cannot name
        are left out)."""
        kafka_of = {(kt.topic, lg): (kt.name, i)
                    for kt in self.broker.topics.all() for i, lg in enumerate(kt.logs)}
        by_topic: dict[str, list[dict]] = {}
        for key, pos in positions.items():
            if key in kafka_of:
                name, partition = kafka_of[key]
                by_topic.setdefault(name, []).append(
                    {"partition_index": partition, "error_code": Err.NONE,
                     "committed_offset": pos.record, "committed_leader_epoch": -1, "metadata": ""})
        return [{"name": name, "partitions": sorted(parts, key=lambda p: p["partition_index"])}
                for name, parts in sorted(by_topic.items())]

    # -- ListGroups, DescribeGroups ------------------------------------------------------
    async def list_groups(self, req: Any, version: int) -> dict:
        try:
            names = await trio.to_thread.run_sync(self.broker.groups.names)
        except StorageError as exc:
            return {"throttle_time": 0, "error_code": error_of(exc, "list of groups")[0], "groups": []}
        listed = {name: ("consumer", State.EMPTY.value) for name in names}
        for g in self.live.values():
            listed[g.group_id] = (g.protocol_type or "consumer", g.state.value)
        wanted = {s.lower() for s in getattr(req, "states_filter", ()) or ()}
        groups = [{"group_id": name, "protocol_type": ptype, "group_state": state}
                  for name, (ptype, state) in sorted(listed.items())
                  if not wanted or state.lower() in wanted]
        return {"throttle_time": 0, "error_code": Err.NONE, "groups": groups}

    async def describe_groups(self, req: Any, version: int) -> dict:
        ops = GROUP_OPERATIONS if getattr(req, "include_authorized_operations", False) else NO_OPERATIONS
        return {"throttle_time": 0,
                "groups": [await self._describe(group_id, ops) for group_id in req.groups]}

    async def _describe(self, group_id: str, ops: int) -> dict:
        """A live group's summary; one only in the store is Empty; an unknown one is
        Dead with no error (Kafka's answer)."""
        out = {"error_code": _group_error(group_id), "group_id": group_id,
               "group_state": State.DEAD.value, "protocol_type": "", "protocol_data": "",
               "members": [], "authorized_operations": ops}
        if out["error_code"]:
            return out
        group = self.live.get(group_id)
        if group is not None:
            return {**out, **group.summary()}
        stored = self.broker.groups.group(group_id)
        if await trio.to_thread.run_sync(lambda: stored.exists):
            out.update(group_state=State.EMPTY.value, protocol_type="consumer")
        return out

    # -- DeleteGroups ----------------------------------------------------------------
    async def delete_groups(self, req: Any, version: int) -> dict:
        return {"throttle_time": 0, "results": [
            {"group_id": group_id, "error_code": await self._delete(group_id)}
            for group_id in req.groups_names]}

    async def _delete(self, group_id: str) -> int:
        """Only an Empty (or unknown-in-memory) group goes; its offsets go with it."""
        if _group_error(group_id):
            return Err.INVALID_GROUP_ID
        group = self.live.get(group_id)
        if group is not None and (group.members or group.state is not State.EMPTY):
            return Err.NON_EMPTY_GROUP
        durable = self._durable_of(group_id)
        async with durable.lock:
            try:
                code = await trio.to_thread.run_sync(_delete_durable, self.broker.groups, durable.group)
            except StorageError as exc:
                return error_of(exc, f"delete of group {group_id!r}")[0]
            durable.group = self.broker.groups.group(group_id)  # a fresh view of a new file
        if group is not None and code in (Err.NONE, Err.GROUP_ID_NOT_FOUND):
            self.live.pop(group_id, None)
            return Err.NONE
        return code
