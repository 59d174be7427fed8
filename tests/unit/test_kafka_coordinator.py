"""The Kafka group coordinator (logfs/kafka/coordinator.py) driven directly under trio,
without sockets: requests are kio entities, every answer is built into the kio
response of its version and encoded, and offsets land in the real group store of a
real LogStore. Session timeouts are short and the clock is real."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import trio
import trio.testing

from logfs.core import GroupStore, open_log_store
from logfs.kafka import apis, wire
from logfs.kafka.coordinator import GroupCoordinator
from logfs.kafka.errors import Err
from logfs.kafka.mapping import TopicMap

G = "billing"
SESSION = 300  # ms
LIMIT = 10  # s: no test waits longer for anything


class FakeBroker:
    """What the coordinator uses of the Broker."""

    def __init__(self, data_dir: str) -> None:
        self.store = open_log_store(data_dir)
        self.store.create_topic("orders")
        for name, lines in (("0", 5), ("1", 3)):
            self.store.create_log("orders", name).append(b"".join(b"record %d\n" % i for i in range(lines)))
        self.groups = GroupStore(data_dir)
        self.topics = TopicMap(self.store)
        self.options = SimpleNamespace(node_id=7, group_min_session_timeout_ms=100,
                                       group_max_session_timeout_ms=60_000)

    def broker_entry(self) -> dict:
        return {"node_id": 7, "host": "broker.example", "port": 19092, "rack": None}


@pytest.fixture
def broker(tmp_path):
    b = FakeBroker(str(tmp_path))
    yield b
    b.store.close()


def run(fn, broker, *args):
    """Run ``fn(coordinator, *args)`` under trio with the deadline loop going."""
    async def main():
        coord = GroupCoordinator(broker)
        with trio.fail_after(LIMIT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(coord.run)
                await fn(coord, *args)
                nursery.cancel_scope.cancel()
    trio.run(main)


async def call(handler, api_key: int, version: int, /, **fields):
    """One request through *handler*; the answer as the version's kio entity (also
    encoded, so what the handler returned is sendable)."""
    req = wire.build(wire.request_class(api_key, version), fields)
    result = await handler(req, version)
    cls = wire.response_class(api_key, version)
    resp = wire.build(cls, result)
    wire.encode_response(cls, 1, resp)
    return resp


def protocols(*names: str) -> list[dict]:
    return [{"name": n, "metadata": f"meta-{n}".encode()} for n in names]


async def join(c, member_id="", version=5, group=G, session=SESSION, rebalance=None,
               offered=("range",), instance=None, ptype="consumer"):
    return await call(c.join_group, apis.JOIN_GROUP, version, group_id=group,
                      session_timeout=session, rebalance_timeout=rebalance or session,
                      member_id=member_id, group_instance_id=instance, protocol_type=ptype,
                      protocols=protocols(*offered))


async def new_member_id(c, **kw) -> str:
    resp = await join(c, **kw)
    assert resp.error_code == Err.MEMBER_ID_REQUIRED and resp.member_id, resp
    return resp.member_id


async def sync(c, member_id, generation, assignments=(), version=5, group=G, protocol=None):
    return await call(c.sync_group, apis.SYNC_GROUP, version, group_id=group,
                      generation_id=generation, member_id=member_id, protocol_type="consumer",
                      protocol_name=protocol, assignments=list(assignments))


async def heartbeat(c, member_id, generation, version=4, group=G):
    return (await call(c.heartbeat, apis.HEARTBEAT, version, group_id=group,
                       generation_id=generation, member_id=member_id)).error_code


async def together(*thunks):
    """Run the coroutines *thunks* make at once; their results in order."""
    out: list = [None] * len(thunks)

    async def one(i, thunk):
        out[i] = await thunk()
    async with trio.open_nursery() as nursery:
        for i, thunk in enumerate(thunks):
            nursery.start_soon(one, i, thunk)
    return out


async def form_group(c, n: int, **kw):
    """n members joined and synced; (member ids with the leader first, generation)."""
    ids = [await new_member_id(c, **kw) for _ in range(n)]
    joined = await together(*[functools.partial(join, c, mid, **kw) for mid in ids])
    gen = joined[0].generation_id
    assert {r.error_code for r in joined} == {Err.NONE} and {r.generation_id for r in joined} == {gen}
    leader = joined[0].leader
    await together(*[functools.partial(sync, c, mid, gen,
                                       [{"member_id": m, "assignment": m.encode()} for m in ids]
                                       if mid == leader else []) for mid in ids])
    return [leader] + [m for m in ids if m != leader], gen


async def commit(c, member_id="", generation=-1, offsets=(("orders", 0, 2),), version=8, group=G):
    topics: dict[str, list] = {}
    for name, p, off in offsets:
        topics.setdefault(name, []).append({"partition_index": p, "committed_offset": off,
                                            "committed_metadata": "m"})
    resp = await call(c.offset_commit, apis.OFFSET_COMMIT, version, group_id=group,
                      generation_id_or_member_epoch=generation, member_id=member_id,
                      topics=[{"name": n, "partitions": ps} for n, ps in topics.items()])
    return {(t.name, p.partition_index): p.error_code for t in resp.topics for p in t.partitions}


async def fetch(c, topics=None, version=7, group=G):
    req_topics = None if topics is None else [{"name": n, "partition_indexes": ps} for n, ps in topics]
    resp = await call(c.offset_fetch, apis.OFFSET_FETCH, version, group_id=group, topics=req_topics)
    return resp, {(t.name, p.partition_index): (p.committed_offset, p.error_code)
                  for t in resp.topics for p in t.partitions}


async def describe(c, group=G, version=5):
    resp = await call(c.describe_groups, apis.DESCRIBE_GROUPS, version, groups=[group],
                      include_authorized_operations=False)
    return resp.groups[0]


async def wait_for(what: str, probe, timeout: float = 3.0):
    """Poll *probe* (async, returns a value or None) until it gives a value."""
    with trio.move_on_after(timeout):
        while True:
            value = await probe()
            if value is not None:
                return value
            await trio.sleep(0.02)
    raise AssertionError(f"waited {timeout}s for {what}")


# ---------------------------------------------------------------- FindCoordinator

@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_find_coordinator_names_this_broker_and_refuses_transactions(broker, version):
    async def body(c):
        resp = await call(c.find_coordinator, apis.FIND_COORDINATOR, version, key=G, key_type=0)
        assert (resp.error_code, resp.node_id, resp.host, resp.port) == (Err.NONE, 7, "broker.example", 19092)
        if version >= 1:
            txn = await call(c.find_coordinator, apis.FIND_COORDINATOR, version, key="tx", key_type=1)
            assert txn.error_code == Err.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            assert "transactions" in txn.error_message and txn.node_id == -1
        bad = await call(c.find_coordinator, apis.FIND_COORDINATOR, version, key="", key_type=0)
        assert bad.error_code == Err.INVALID_GROUP_ID
    run(body, broker)


# ---------------------------------------------------------------- membership

def test_two_members_get_one_leader_one_generation_and_their_assignments(broker):
    async def body(c):
        a, b = await new_member_id(c), await new_member_id(c)
        ra, rb = await together(lambda: join(c, a, offered=("range", "roundrobin")),
                                lambda: join(c, b, offered=("roundrobin", "range")))
        assert ra.generation_id == rb.generation_id == 1
        assert ra.leader == rb.leader and ra.leader in (a, b)
        # a tie of votes goes to the leader's first choice
        assert ra.protocol_name == rb.protocol_name == ("range" if ra.leader == a else "roundrobin")
        if ra.leader == b:
            (a, ra), (b, rb) = (b, rb), (a, ra)
        assert sorted(m.member_id for m in ra.members) == sorted([a, b]) and rb.members == ()
        assert {m.member_id: m.metadata for m in ra.members}[b] == b"meta-" + ra.protocol_name.encode()
        follower_done = trio.Event()
        got = {}

        async def follower():
            got["b"] = await sync(c, b, 1, protocol=ra.protocol_name)
            follower_done.set()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follower)
            await trio.testing.wait_all_tasks_blocked()
            assert not follower_done.is_set(), "a follower's SyncGroup must wait for the leader's"
            assert (await describe(c)).group_state == "CompletingRebalance"
            got["a"] = await sync(c, a, 1, [{"member_id": a, "assignment": b"for-a"},
                                            {"member_id": b, "assignment": b"for-b"}])
        assert (got["a"].error_code, got["a"].assignment) == (Err.NONE, b"for-a")
        assert (got["b"].error_code, got["b"].assignment) == (Err.NONE, b"for-b")
        assert got["b"].protocol_name == ra.protocol_name
        d = await describe(c)
        assert (d.group_state, d.protocol_type, d.protocol_data) == ("Stable", "consumer", ra.protocol_name)
        assert {m.member_id: m.member_assignment for m in d.members} == {a: b"for-a", b: b"for-b"}
        assert await heartbeat(c, a, 1) == await heartbeat(c, b, 1) == Err.NONE
    run(body, broker)


def test_a_third_member_makes_the_others_rejoin_in_a_new_generation(broker):
    async def body(c):
        (a, b), gen = await form_group(c, 2)
        c_id = await new_member_id(c)

        async def third():
            return await join(c, c_id)
        async with trio.open_nursery() as nursery:
            results = {}

            async def go(name, thunk):
                results[name] = await thunk()
            nursery.start_soon(go, "c", third)
            await trio.testing.wait_all_tasks_blocked()
            assert (await describe(c)).group_state == "PreparingRebalance"
            assert await heartbeat(c, a, gen) == Err.REBALANCE_IN_PROGRESS
            assert await heartbeat(c, b, gen) == Err.REBALANCE_IN_PROGRESS
            nursery.start_soon(go, "a", lambda: join(c, a))
            nursery.start_soon(go, "b", lambda: join(c, b))
        assert {r.generation_id for r in results.values()} == {gen + 1}
        assert results["a"].leader == a and len(results["a"].members) == 3
        assert await heartbeat(c, a, gen) == Err.ILLEGAL_GENERATION
    run(body, broker)


def test_member_id_required_from_v4_and_given_at_once_before(broker):
    async def body(c):
        old = await join(c, version=3, group="g3")
        assert old.error_code == Err.NONE and old.member_id and old.generation_id == 1
        first = await join(c, version=4, group="g4")
        assert first.error_code == Err.MEMBER_ID_REQUIRED and first.member_id
        again = await join(c, first.member_id, version=4, group="g4")
        assert (again.error_code, again.member_id, again.leader) == \
            (Err.NONE, first.member_id, first.member_id)
        unknown = await join(c, "nobody-1", group="g4")
        assert unknown.error_code == Err.UNKNOWN_MEMBER_ID
    run(body, broker)


def test_a_static_member_gets_an_id_at_once_and_its_new_incarnation_fences_the_old(broker):
    async def body(c):
        first = await join(c, instance="worker-1", version=5)
        assert first.error_code == Err.NONE and first.member_id.startswith("worker-1-")
        await sync(c, first.member_id, first.generation_id, [])
        second = await join(c, instance="worker-1", version=5)
        assert second.error_code == Err.NONE and second.member_id != first.member_id
        assert [(m.member_id, m.group_instance_id) for m in second.members] == \
            [(second.member_id, "worker-1")]
        old = await call(c.heartbeat, apis.HEARTBEAT, 4, group_id=G, member_id=first.member_id,
                         generation_id=second.generation_id, group_instance_id="worker-1")
        assert old.error_code == Err.FENCED_INSTANCE_ID
        d = await describe(c)
        assert [m.group_instance_id for m in d.members] == ["worker-1"]
    run(body, broker)


def test_inconsistent_protocols_and_bad_requests_are_refused(broker):
    async def body(c):
        (a,), _gen = await form_group(c, 1)
        other_type = await join(c, await new_member_id(c), ptype="connect")
        assert other_type.error_code == Err.INCONSISTENT_GROUP_PROTOCOL
        no_common = await join(c, await new_member_id(c), offered=("sticky",))
        assert no_common.error_code == Err.INCONSISTENT_GROUP_PROTOCOL
        assert (await join(c, group="")).error_code == Err.INVALID_GROUP_ID
        assert (await join(c, session=10)).error_code == Err.INVALID_SESSION_TIMEOUT
        assert (await describe(c)).group_state == "Stable"
    run(body, broker)


@pytest.mark.parametrize("rebalance", [SESSION, 8000])
def test_a_member_whose_session_expires_is_removed(broker, rebalance):
    async def body(c):
        (a, b), gen = await form_group(c, 2, rebalance=rebalance)

        async def a_sees_rebalance():  # a heartbeats; b stays silent
            code = await heartbeat(c, a, gen)
            return code if code == Err.REBALANCE_IN_PROGRESS else None
        await wait_for("a's heartbeat to ask for a rebalance after b's session expired", a_sees_rebalance)
        again = await join(c, a, rebalance=rebalance)
        assert (again.error_code, again.generation_id, [m.member_id for m in again.members]) == \
            (Err.NONE, gen + 1, [a])
        assert await heartbeat(c, b, gen) == Err.UNKNOWN_MEMBER_ID
        # and a lone member that goes silent empties the group
        await sync(c, a, gen + 1, [{"member_id": a, "assignment": b"x"}])

        async def empty():
            d = await describe(c)
            return d if d.group_state in ("Empty", "Dead") else None
        assert (await wait_for("the group to empty", empty)).members == ()
    run(body, broker)


def test_a_member_that_does_not_rejoin_is_dropped_when_the_rebalance_times_out(broker):
    async def body(c):
        (a, b), gen = await form_group(c, 2, session=2000, rebalance=300)
        started = trio.current_time()
        resp = await join(c, a, session=2000, rebalance=300)  # b never rejoins
        assert trio.current_time() - started >= 0.25, "the join must wait for b up to the rebalance timeout"
        assert (resp.generation_id, [m.member_id for m in resp.members]) == (gen + 1, [a])
        assert await heartbeat(c, b, gen) == Err.UNKNOWN_MEMBER_ID
    run(body, broker)


def test_a_rebalance_during_the_sync_answers_the_waiting_follower(broker):
    async def body(c):
        a, b = await new_member_id(c), await new_member_id(c)
        ra, _rb = await together(lambda: join(c, a), lambda: join(c, b))
        b = b if ra.leader == a else a  # the follower
        out = {}

        async def follower():
            out["b"] = await sync(c, b, 1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follower)
            await trio.testing.wait_all_tasks_blocked()
            newcomer = await new_member_id(c)
            nursery.start_soon(join, c, newcomer)
        assert out["b"].error_code == Err.REBALANCE_IN_PROGRESS
    run(body, broker)


def test_members_expiring_together_while_a_newcomer_joins(broker):
    async def body(c):
        (a, b), gen = await form_group(c, 2)
        newcomer = await new_member_id(c)
        out = {}

        async def newcomer_joins():
            out["n"] = await join(c, newcomer)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(newcomer_joins)
            await trio.testing.wait_all_tasks_blocked()
            c.expire_due(trio.current_time() + 1.0)  # a late wake: every deadline has passed
        assert (out["n"].error_code, out["n"].generation_id, out["n"].leader) == (Err.NONE, gen + 1, newcomer)
        assert [m.member_id for m in out["n"].members] == [newcomer]
        d = await describe(c)
        assert (d.group_state, [m.member_id for m in d.members]) == ("CompletingRebalance", [newcomer])
    run(body, broker)


@pytest.mark.parametrize("version", [0, 2, 3, 4])
def test_leave_rebalances_the_rest(broker, version):
    async def body(c):
        (a, b), gen = await form_group(c, 2)
        if version >= 3:
            fields = {"members": [{"member_id": b}, {"member_id": "ghost"}]}
        else:
            fields = {"member_id": b}
        resp = await call(c.leave_group, apis.LEAVE_GROUP, version, group_id=G, **fields)
        assert resp.error_code == Err.NONE
        if version >= 3:
            assert [(m.member_id, m.error_code) for m in resp.members] == \
                [(b, Err.NONE), ("ghost", Err.UNKNOWN_MEMBER_ID)]
        assert await heartbeat(c, a, gen) == Err.REBALANCE_IN_PROGRESS
        again = await join(c, a)
        assert (again.generation_id, [m.member_id for m in again.members]) == (gen + 1, [a])
        gone = await call(c.leave_group, apis.LEAVE_GROUP, 1, group_id=G, member_id=b)
        assert gone.error_code == Err.UNKNOWN_MEMBER_ID
    run(body, broker)


def test_sync_and_heartbeat_errors(broker):
    async def body(c):
        (a,), gen = await form_group(c, 1)
        assert (await sync(c, a, gen + 5)).error_code == Err.ILLEGAL_GENERATION
        assert (await sync(c, "ghost", gen)).error_code == Err.UNKNOWN_MEMBER_ID
        assert (await sync(c, a, gen, group="other")).error_code == Err.UNKNOWN_MEMBER_ID
        assert (await sync(c, a, gen, protocol="sticky")).error_code == Err.INCONSISTENT_GROUP_PROTOCOL
        assert (await sync(c, a, gen, version=0)).error_code == Err.NONE
        assert await heartbeat(c, a, gen - 1) == Err.ILLEGAL_GENERATION
        assert await heartbeat(c, "ghost", gen) == Err.UNKNOWN_MEMBER_ID
        assert await heartbeat(c, a, gen, version=0) == Err.NONE
        assert await heartbeat(c, a, gen, group="") == Err.INVALID_GROUP_ID
    run(body, broker)


def test_the_deadline_loop_sleeps_until_a_deadline(broker):
    async def body(c):
        wakes = []
        real = c.expire_due
        c.expire_due = lambda now: (wakes.append(now), real(now))[1]
        await trio.sleep(0.3)
        assert len(wakes) <= 1, f"an idle coordinator woke {len(wakes)} times"
        (a,), gen = await form_group(c, 1, session=300)
        before = len(wakes)
        for _ in range(10):  # heartbeats every 60 ms keep a 300 ms session alive for 0.6 s
            assert await heartbeat(c, a, gen) == Err.NONE
            await trio.sleep(0.06)
        assert len(wakes) - before <= 6, f"woke {len(wakes) - before} times in 0.6 s"
        assert (await describe(c)).group_state == "Stable"
    run(body, broker)


# ---------------------------------------------------------------- offsets

def test_commit_then_fetch_and_the_store_holds_records_and_byte_offsets(broker):
    async def body(c):
        (a,), gen = await form_group(c, 1)
        codes = await commit(c, a, gen, [("orders", 0, 2), ("orders", 1, 3), ("orders", 5, 1),
                                         ("nosuch", 0, 1)])
        assert codes == {("orders", 0): Err.NONE, ("orders", 1): Err.NONE,
                         ("orders", 5): Err.UNKNOWN_TOPIC_OR_PARTITION,
                         ("nosuch", 0): Err.UNKNOWN_TOPIC_OR_PARTITION}
        _resp, got = await fetch(c, [("orders", [0, 1, 2]), ("nosuch", [0])])
        assert got == {("orders", 0): (2, Err.NONE), ("orders", 1): (3, Err.NONE),
                       ("orders", 2): (-1, Err.NONE), ("nosuch", 0): (-1, Err.NONE)}
        resp, everything = await fetch(c, None)
        assert resp.error_code == Err.NONE
        assert everything == {("orders", 0): (2, Err.NONE), ("orders", 1): (3, Err.NONE)}
        _resp, v1 = await fetch(c, [("orders", [0])], version=1)
        assert v1 == {("orders", 0): (2, Err.NONE)}
    run(body, broker)
    positions = GroupStore(broker.store.data_dir).group(G).positions()
    record_len = len(b"record 0\n")
    assert {k: (p.record, p.offset) for k, p in positions.items()} == {
        ("orders", "0"): (2, 2 * record_len), ("orders", "1"): (3, 3 * record_len)}


def test_a_commit_past_the_end_keeps_the_record_and_the_end_offset(broker):
    async def body(c):
        assert await commit(c, offsets=[("orders", 1, 1000)]) == {("orders", 1): Err.NONE}
        assert (await fetch(c, [("orders", [1])]))[1] == {("orders", 1): (1000, Err.NONE)}
        assert await commit(c, offsets=[("orders", 1, -5)]) == {("orders", 1): Err.OFFSET_OUT_OF_RANGE}
    run(body, broker)
    pos = broker.groups.group(G).position("orders", "1")
    assert (pos.record, pos.offset) == (1000, broker.store.log("orders", "1").end_offset)


def test_positions_committed_through_the_store_show_in_offset_fetch(broker):
    broker.groups.group("cli-group").commit({("orders", "1"): (2, 18), ("orders", "0"): (4, 36)})

    async def body(c):
        _resp, got = await fetch(c, None, group="cli-group")
        assert got == {("orders", 0): (4, Err.NONE), ("orders", 1): (2, Err.NONE)}
        listed = await call(c.list_groups, apis.LIST_GROUPS, 4, states_filter=[])
        assert [(g.group_id, g.group_state, g.protocol_type) for g in listed.groups] == \
            [("cli-group", "Empty", "consumer")]
        d = await describe(c, "cli-group")
        assert (d.error_code, d.group_state) == (Err.NONE, "Empty")
    run(body, broker)


def test_commit_generation_checks(broker):
    async def body(c):
        # a simple consumer (assign()) commits to a group nobody is a member of
        assert await commit(c, group="simple") == {("orders", 0): Err.NONE}
        assert await commit(c, "ghost", 3, group="simple") == {("orders", 0): Err.ILLEGAL_GENERATION}
        (a,), gen = await form_group(c, 1)
        assert await commit(c, a, gen + 1) == {("orders", 0): Err.ILLEGAL_GENERATION}
        assert await commit(c, "ghost", gen) == {("orders", 0): Err.UNKNOWN_MEMBER_ID}
        assert await commit(c) == {("orders", 0): Err.UNKNOWN_MEMBER_ID}  # the group has members
        assert await commit(c, a, gen, version=2) == {("orders", 0): Err.NONE}
        b = await new_member_id(c)
        async with trio.open_nursery() as nursery:  # a and b rejoin: generation gen + 1
            nursery.start_soon(join, c, b)
            await trio.testing.wait_all_tasks_blocked()
            # while the rebalance is prepared, a member may still commit (Kafka's rule)
            assert await commit(c, a, gen) == {("orders", 0): Err.NONE}
            nursery.start_soon(join, c, a)
        # joined but not synced: CompletingRebalance
        assert await commit(c, a, gen + 1) == {("orders", 0): Err.REBALANCE_IN_PROGRESS}
        assert await commit(c, a, gen + 1, group="") == {("orders", 0): Err.INVALID_GROUP_ID}
    run(body, broker)
    assert broker.groups.group("simple").position("orders", "0").record == 2


# ---------------------------------------------------------------- list, describe, delete

def test_list_and_describe_groups(broker):
    async def body(c):
        (a,), _gen = await form_group(c, 1)
        await commit(c, group="stored-only")
        listed = await call(c.list_groups, apis.LIST_GROUPS, 4, states_filter=[])
        assert [(g.group_id, g.group_state) for g in listed.groups] == \
            [(G, "Stable"), ("stored-only", "Empty")]
        stable = await call(c.list_groups, apis.LIST_GROUPS, 4, states_filter=["Stable"])
        assert [g.group_id for g in stable.groups] == [G]
        v0 = await call(c.list_groups, apis.LIST_GROUPS, 0)
        assert {g.group_id for g in v0.groups} == {G, "stored-only"}
        d = await describe(c, version=0)
        assert (d.group_state, [m.member_id for m in d.members]) == ("Stable", [a])
        assert d.members[0].member_metadata == b"meta-range"
        unknown = await describe(c, "never-seen")
        assert (unknown.error_code, unknown.group_state, unknown.authorized_operations) == \
            (Err.NONE, "Dead", -(1 << 31))
        assert (await describe(c, "")).error_code == Err.INVALID_GROUP_ID
    run(body, broker)


def test_delete_groups_refuses_a_group_with_members(broker):
    async def body(c):
        await form_group(c, 1)
        await commit(c, group="idle")
        resp = await call(c.delete_groups, apis.DELETE_GROUPS, 2,
                          groups_names=[G, "idle", "never-seen", ""])
        assert [(r.group_id, r.error_code) for r in resp.results] == [
            (G, Err.NON_EMPTY_GROUP), ("idle", Err.NONE), ("never-seen", Err.GROUP_ID_NOT_FOUND),
            ("", Err.INVALID_GROUP_ID)]
        assert (await describe(c, "idle")).group_state == "Dead"
        # a group made again after its delete starts from nothing
        assert (await fetch(c, [("orders", [0])], group="idle"))[1] == {("orders", 0): (-1, Err.NONE)}
        assert await commit(c, offsets=[("orders", 0, 1)], group="idle") == {("orders", 0): Err.NONE}
    run(body, broker)
    assert broker.groups.names() == ["idle"]
    assert broker.groups.group("idle").position("orders", "0").record == 1
