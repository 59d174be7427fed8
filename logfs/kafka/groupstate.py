"""The in-memory state of one consumer group (Kafka's GroupMetadata): its members,
generation, protocol, leader, assignments and deadlines, and the waits of members'
JoinGroup and SyncGroup requests. The transitions are coordinator.py's (its docstring
draws them); this module holds no store and does no I/O."""

from __future__ import annotations

import enum
import logging
from collections import Counter
from dataclasses import dataclass
import trio

from .errors import Err

__all__ = ["Group", "Member", "Reply", "State", "join_error", "sync_error"]

log = logging.getLogger("logfs.kafka.coordinator")


class State(enum.Enum):
    EMPTY = "Empty"
    PREPARING = "PreparingRebalance"
    COMPLETING = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


class Reply:
    """The answer to one waiting request, given once by whatever settles it."""

    __slots__ = ("_done", "value")

    def __init__(self) -> None:
        self._done = trio.Event()
        self.value: dict = {}

    def give(self, value: dict) -> None:
        if not self._done.is_set():
            self.value = value
            self._done.set()

    async def wait(self) -> dict:
        await self._done.wait()
        return self.value


@dataclass(eq=False)
class Member:
    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    session_s: float
    rebalance_s: float
    protocols: list[tuple[str, bytes]]
    deadline: float  # when its session expires (trio.current_time())
    assignment: bytes = b""
    joining: Reply | None = None  # its JoinGroup, waiting for the rebalance
    syncing: Reply | None = None  # its SyncGroup, waiting for the leader's
    synced: bool = False  # sent SyncGroup in this generation

    @property
    def names(self) -> list[str]:
        return [name for name, _meta in self.protocols]

    @property
    def waiting(self) -> bool:
        return self.joining is not None or self.syncing is not None

    def metadata(self, protocol: str | None) -> bytes:
        return next((meta for name, meta in self.protocols if name == protocol), b"")

    def renew(self, now: float) -> None:
        self.deadline = now + self.session_s

    def answer_join(self, value: dict, now: float) -> None:
        """Answer its waiting JoinGroup, if any (its session runs again from now)."""
        reply, self.joining = self.joining, None
        if reply is not None:
            reply.give(value)
            self.renew(now)

    def answer_sync(self, value: dict, now: float) -> None:
        """Answer its waiting SyncGroup, if any (its session runs again from now)."""
        reply, self.syncing = self.syncing, None
        if reply is not None:
            reply.give(value)
            self.renew(now)


def join_error(code: int, member_id: str = "") -> dict:
    return {"error_code": code, "generation_id": -1, "protocol_type": None,
            "protocol_name": None, "leader": "", "member_id": member_id, "members": []}


def sync_error(code: int) -> dict:
    return {"error_code": code, "protocol_type": None, "protocol_name": None, "assignment": b""}


class Group:
    """One group's membership and its state machine (Kafka's GroupMetadata); no I/O."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.state = State.EMPTY
        self.generation = 0
        self.protocol_type: str | None = None
        self.protocol: str | None = None
        self.leader: str | None = None
        self.members: dict[str, Member] = {}
        self.pending: dict[str, float] = {}  # member ids handed out -> their deadline
        self.deadline: float | None = None  # end of the join phase, or of the sync phase

    def supports(self, protocol_type: str, names: list[str], member_id: str) -> bool:
        """Whether a member of *protocol_type* offering *names* fits the others."""
        others = [m for mid, m in self.members.items() if mid != member_id]
        if not others:
            return True
        common = set.intersection(*(set(m.names) for m in others))
        return protocol_type == self.protocol_type and bool(common & set(names))

    def by_instance(self, instance_id: str | None) -> Member | None:
        if instance_id is None:
            return None
        return next((m for m in self.members.values() if m.instance_id == instance_id), None)

    def add(self, member: Member) -> None:
        self.members[member.member_id] = member
        if self.leader is None:
            self.leader = member.member_id

    def remove(self, member_id: str, now: float) -> None:
        """Drop a member (its waiting requests answer UNKNOWN_MEMBER_ID), if still in."""
        member = self.members.pop(member_id, None)
        if member is None:  # one removal can end a rebalance, which removes others
            return
        member.answer_join(join_error(Err.UNKNOWN_MEMBER_ID, member_id), now)
        member.answer_sync(sync_error(Err.UNKNOWN_MEMBER_ID), now)
        if self.leader == member_id:
            self.leader = next(iter(self.members), None)

    def all_joined(self) -> bool:
        return not self.pending and all(m.joining is not None for m in self.members.values())

    def rebalance(self, now: float) -> None:
        """Start preparing a rebalance (Kafka's prepareRebalance); SyncGroups still
        waiting for the leader's are answered REBALANCE_IN_PROGRESS."""
        for m in self.members.values():
            m.assignment = b""
            m.answer_sync(sync_error(Err.REBALANCE_IN_PROGRESS), now)
        self.state = State.PREPARING
        self.deadline = now + max((m.rebalance_s for m in self.members.values()), default=0.0)

    def complete_join(self, now: float) -> None:
        """End the join phase: drop who did not rejoin, start the next generation and
        answer every waiting JoinGroup."""
        for mid in [mid for mid, m in self.members.items() if m.joining is None]:
            log.info("group %r: member %s did not rejoin in time: removed", self.group_id, mid)
            self.remove(mid, now)
        self.generation += 1
        if not self.members:
            self.state, self.protocol, self.leader, self.deadline = State.EMPTY, None, None, None
            return
        self.protocol = self.select_protocol()
        self.state = State.COMPLETING
        self.deadline = now + max(m.rebalance_s for m in self.members.values())
        listing = self.listing()
        log.info("group %r: generation %d, %d members, protocol %s", self.group_id,
                 self.generation, len(self.members), self.protocol)
        for m in self.members.values():
            m.synced = False
            m.answer_join(self.join_result(m.member_id, listing), now)

    def select_protocol(self) -> str:
        members = list(self.members.values())
        common = set.intersection(*(set(m.names) for m in members))
        order = self.members[self.leader].names if self.leader in self.members else members[0].names
        if not common:  # cannot happen: supports() admitted every member
            return order[0]
        votes = Counter(next(n for n in m.names if n in common) for m in members)
        return max(votes, key=lambda n: (votes[n], -order.index(n) if n in order else -len(order)))

    def listing(self) -> list[dict]:
        """The members and their metadata, as the leader's JoinGroup answer has them."""
        return [{"member_id": m.member_id, "group_instance_id": m.instance_id,
                 "metadata": m.metadata(self.protocol)} for m in self.members.values()]

    def join_result(self, member_id: str, listing: list[dict]) -> dict:
        """A JoinGroup's answer in the current generation (*listing* for the leader)."""
        return {"error_code": Err.NONE, "generation_id": self.generation,
                "protocol_type": self.protocol_type, "protocol_name": self.protocol,
                "leader": self.leader or "", "member_id": member_id,
                "members": listing if member_id == self.leader else []}

    def sync_result(self, member: Member) -> dict:
        return {"error_code": Err.NONE, "protocol_type": self.protocol_type,
                "protocol_name": self.protocol, "assignment": member.assignment}

    def assign(self, assignments: dict[str, bytes], now: float) -> None:
        """The leader's SyncGroup: store the assignments, become Stable, answer the
        waiting syncs."""
        self.state = State.STABLE
        for m in self.members.values():
            m.assignment = assignments.get(m.member_id, b"")
            m.answer_sync(self.sync_result(m), now)
        self.sync_done()

    def sync_done(self) -> None:
        if all(m.synced for m in self.members.values()):
            self.deadline = None

    def expire_sync(self) -> list[str]:
        """The sync phase's deadline passed: the members that never synced."""
        self.deadline = None
        return [mid for mid, m in self.members.items() if not m.synced]

    def summary(self) -> dict:
        stable = self.state is State.STABLE
        members = [{"member_id": m.member_id, "group_instance_id": m.instance_id,
                    "client_id": m.client_id, "client_host": m.client_host,
                    "member_metadata": m.metadata(self.protocol) if stable else b"",
                    "member_assignment": m.assignment if stable else b""}
                   for m in self.members.values()]
        return {"group_state": self.state.value, "protocol_type": self.protocol_type or "",
                "protocol_data": (self.protocol or "") if stable else "", "members": members}
