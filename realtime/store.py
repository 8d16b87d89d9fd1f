"""Who is in which voice room: in this process's memory, or in Redis shared by every process.

A participant entry is a dict {sid, ns, cid, serverId, userId, micToggle, serverMuted, userData,
owner}. `owner` names the process holding the socket. In Redis each process renews a heartbeat
key; entries whose owner stopped renewing it (crashed, killed) are ignored by readers and swept
(see `sweep`), so a dead process leaves no ghost participants behind.

Redis keys (prefix pv:rt:):
  proc:<owner>       heartbeat, expires after `ttl` seconds without renewal
  room:<cid>         hash sid -> entry JSON
  sock:<sid>         "<cid> <ns> <owner>", expires with its owner's heartbeat
  rooms              set of cids that have (or recently had) participants
  user:<uid>         set of "<ns> <sid>" of the user's identified sockets
  rights             a counter every rights change increments before its evictions look for
                     participants (see `rights_changed`)

The rights counter lets a join check its rights with one statement: a join reads the counter,
then the database, then enters the room (which returns the counter again, atomically). A kick,
ban, role, channel, server, account or session change commits, increments the counter, then
evicts whoever it finds in the rooms. Either its eviction finds the joiner, or it incremented the
counter before the joiner entered: then the counter moved during the join, and the join checks
its rights once more, now that it is in the room. (If it incremented before the join read the
counter, it committed before, and the join's one statement saw it.)

RedisStore keeps, per process, where the sockets it signals between are (`locate`): every
socket's room in Redis on each `signal` made the check a round trip per signal. Filled by this
process's joins and by lookups; an entry is dropped when this process removes the socket, and
when any process announces its departure (`forget`, called as `user-disconnected` for the
socket passes through this process's Socket.IO manager, before anyone here is told), so a
socket that left, or was kicked or banned, is refused as soon as anyone hears that it is gone.
"""
from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, cast

Entry = dict[str, Any]
_WHERE_MAX = 100_000  # sockets whose room a process remembers (RedisStore.where)


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class MemoryStore:
    """One process: plain dictionaries (every method runs without awaiting anything inside)."""

    def __init__(self) -> None:
        self.owner = new_owner_id()
        self.rooms: dict[int, dict[str, Entry]] = {}
        self.socks: dict[str, int] = {}
        self.users: dict[int, set[tuple[str, str]]] = {}
        self.rights = 0

    async def start(self) -> None:
        return None

    async def rights_epoch(self) -> int:
        return self.rights

    async def rights_changed(self) -> None:
        """Before an eviction looks for participants (see the module's doc)."""
        self.rights += 1

    def forget(self, sid: str) -> None:
        return None  # nothing cached: the dictionaries are the truth

    async def publish(self, message: dict[str, Any]) -> None:
        return None  # one process: nobody else to tell

    async def stop(self) -> None:
        return None

    async def join(self, entry: Entry) -> tuple[list[Entry], int]:
        """Add the entry to its room; every participant (the joiner included) and the rights
        counter, read at the same instant."""
        room = self.rooms.setdefault(entry["cid"], {})
        room[entry["sid"]] = dict(entry, owner=self.owner)
        self.socks[entry["sid"]] = entry["cid"]
        return list(room.values()), self.rights

    async def leave(self, sid: str, cid: int | None = None) -> Entry | None:
        """Remove the socket from its room (only from `cid` when given); the removed entry, or
        None when it was in no room (so exactly one caller gets to announce a departure)."""
        current = self.socks.get(sid)
        if current is None or (cid is not None and current != cid):
            return None
        del self.socks[sid]
        room = self.rooms.get(current, {})
        entry = room.pop(sid, None)
        if not room:
            self.rooms.pop(current, None)
        return entry

    def known(self, sid: str, peer: str) -> list[tuple[int, str] | None] | None:
        """locate(sid, peer) when it needs no I/O (here: always), else None."""
        socks, rooms = self.socks, self.rooms
        a, b = socks.get(sid), socks.get(peer)
        return [None if a is None else (a, rooms[a][sid]["ns"]), None if b is None else (b, rooms[b][peer]["ns"])]

    async def locate(self, *sids: str) -> list[tuple[int, str] | None]:
        """(cid, ns) of each socket's room, or None."""
        out: list[tuple[int, str] | None] = []
        for sid in sids:
            cid = self.socks.get(sid)
            out.append(None if cid is None else (cid, self.rooms[cid][sid]["ns"]))
        return out

    async def entry(self, sid: str) -> Entry | None:
        cid = self.socks.get(sid)
        return None if cid is None else dict(self.rooms[cid][sid])

    async def contains(self, sid: str) -> bool:
        return sid in self.socks

    async def update(self, sid: str, **fields: Any) -> Entry | None:
        cid = self.socks.get(sid)
        if cid is None:
            return None
        e = self.rooms[cid][sid]
        e.update(fields)
        return dict(e)

    async def participants(self, cid: int) -> list[Entry]:
        return [dict(e) for e in self.rooms.get(cid, {}).values()]

    async def all_entries(self) -> list[Entry]:
        return [dict(e) for room in self.rooms.values() for e in room.values()]

    async def add_user_sock(self, uid: int, ns: str, sid: str) -> None:
        self.users.setdefault(uid, set()).add((ns, sid))

    async def remove_user_sock(self, uid: int, ns: str, sid: str) -> None:
        socks = self.users.get(uid)
        if socks is not None:
            socks.discard((ns, sid))
            if not socks:
                del self.users[uid]

    async def user_socks(self, uid: int) -> list[tuple[str, str]]:
        return sorted(self.users.get(uid, ()))

    async def renew(self, local_sids: Iterable[str]) -> None:
        return None

    async def sweep(self) -> list[Entry]:
        return []


_JOIN = """
local p = ARGV[1]
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SET', p .. 'sock:' .. ARGV[2], ARGV[4], 'EX', ARGV[5])
redis.call('SADD', p .. 'rooms', ARGV[6])
local out = redis.call('HVALS', KEYS[1])
table.insert(out, 1, redis.call('GET', p .. 'rights') or '0')
return out
"""

_LEAVE = """
local p = ARGV[1]
local v = redis.call('GET', p .. 'sock:' .. ARGV[2])
if not v then return false end
local cid = string.match(v, '^(%S+)')
if ARGV[3] ~= '' and ARGV[3] ~= cid then return false end
local room = p .. 'room:' .. cid
local e = redis.call('HGET', room, ARGV[2])
redis.call('DEL', p .. 'sock:' .. ARGV[2])
if not e then return false end
redis.call('HDEL', room, ARGV[2])
if redis.call('HLEN', room) == 0 then redis.call('SREM', p .. 'rooms', cid) end
return e
"""

_UPDATE = """
local p = ARGV[1]
local v = redis.call('GET', p .. 'sock:' .. ARGV[2])
if not v then return false end
local cid = string.match(v, '^(%S+)')
local room = p .. 'room:' .. cid
local e = redis.call('HGET', room, ARGV[2])
if not e then return false end
local d = cjson.decode(e)
local f = cjson.decode(ARGV[3])
for k, val in pairs(f) do d[k] = val end
local out = cjson.encode(d)
redis.call('HSET', room, ARGV[2], out)
return out
"""

# Remove one entry only if it is still the one a sweeper saw (owner dead); returns 1 when removed.
_SWEEP_ONE = """
local p = ARGV[1]
local room = p .. 'room:' .. ARGV[3]
local e = redis.call('HGET', room, ARGV[2])
if not e then return 0 end
local d = cjson.decode(e)
if d['owner'] ~= ARGV[4] then return 0 end
redis.call('HDEL', room, ARGV[2])
local v = redis.call('GET', p .. 'sock:' .. ARGV[2])
if v and string.match(v, '^(%S+)') == ARGV[3] then redis.call('DEL', p .. 'sock:' .. ARGV[2]) end
if redis.call('HLEN', room) == 0 then redis.call('SREM', p .. 'rooms', ARGV[3]) end
return 1
"""


class RedisStore:
    """Several processes: participant state in Redis, with owner heartbeats."""

    prefix = "pv:rt:"

    def __init__(self, url: str, ttl: float = 15.0) -> None:
        import redis.asyncio as aioredis  # only with REDIS_URL: one process runs without Redis code

        self.owner = new_owner_id()
        self.ttl = max(2, int(round(ttl)))
        # A pool that waits for a free connection rather than failing when hundreds of sockets
        # join at once (the default pool raises past 100 connections).
        self.r = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
            url, decode_responses=True, max_connections=64, timeout=20))
        self._join = self.r.register_script(_JOIN)
        self._leave = self.r.register_script(_LEAVE)
        self._update = self.r.register_script(_UPDATE)
        self._sweep_one = self.r.register_script(_SWEEP_ONE)
        self.where: dict[str, tuple[int, str]] = {}  # sid -> (cid, ns): see the module's doc
        self.forgotten = 0  # departures seen: a lookup begun before one does not fill `where`

    def k(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    async def start(self) -> None:
        await self.r.set(self.k("proc", self.owner), "1", ex=self.ttl)

    async def publish(self, message: dict[str, Any]) -> None:
        """Tell the other processes something about their own sockets (see notices())."""
        await self.r.publish(self.k("notices"), json.dumps({**message, "from": self.owner}))

    async def notices(self) -> AsyncIterator[dict[str, Any]]:
        """What other processes published, as it comes (an endless async iterator)."""
        pubsub = self.r.pubsub()
        await pubsub.subscribe(self.k("notices"))
        try:
            async for msg in pubsub.listen():
                if msg.get("type") == "message":
                    data = json.loads(msg["data"])
                    if data.get("from") != self.owner:
                        yield data
        finally:
            await pubsub.aclose()

    async def stop(self) -> None:
        try:
            await self.r.delete(self.k("proc", self.owner))
        finally:
            await self.r.aclose()

    async def _alive(self, owners: set[str]) -> set[str]:
        ordered = sorted(owners)
        if not ordered:
            return set()
        flags = await self.r.mget([self.k("proc", o) for o in ordered])
        return {o for o, f in zip(ordered, flags, strict=True) if f is not None}

    async def _live(self, raw: Iterable[str]) -> list[Entry]:
        entries = [json.loads(v) for v in raw]
        alive = await self._alive({e["owner"] for e in entries})
        return [e for e in entries if e["owner"] in alive]

    async def rights_epoch(self) -> int:
        return int(await self.r.get(self.k("rights")) or 0)

    async def rights_changed(self) -> None:
        """Before an eviction looks for participants (see the module's doc)."""
        await self.r.incr(self.k("rights"))

    def forget(self, sid: str) -> None:
        """The socket left its room (any process said so): locate asks Redis again."""
        self.forgotten += 1
        self.where.pop(sid, None)

    async def join(self, entry: Entry) -> tuple[list[Entry], int]:
        entry = dict(entry, owner=self.owner)
        sid, cid = entry["sid"], entry["cid"]
        seen = self.forgotten
        raw = await self._join(keys=[self.k("room", cid)],
                               args=[self.prefix, sid, json.dumps(entry),
                                     f"{cid} {entry['ns']} {self.owner}", self.ttl, cid])
        everyone = await self._live(raw[1:])
        if seen == self.forgotten:  # no departure announced meanwhile: all of them are still there
            self._remember({e["sid"]: (e["cid"], e["ns"]) for e in everyone})
        else:
            self._remember({sid: (cid, entry["ns"])})
        return everyone, int(raw[0])

    def _remember(self, found: dict[str, tuple[int, str]]) -> None:
        if len(self.where) + len(found) > _WHERE_MAX:
            self.where.clear()
        self.where.update(found)

    async def leave(self, sid: str, cid: int | None = None) -> Entry | None:
        raw = await self._leave(keys=[], args=[self.prefix, sid, "" if cid is None else str(cid)])
        if raw:
            self.forget(sid)
        return json.loads(raw) if raw else None

    async def _locate(self, sids: Sequence[str]) -> list[tuple[int, str] | None]:
        # (Text, not bytes: the client decodes responses; the casts below say so to the type checker.)
        values = cast("list[str | None]", await self.r.mget([self.k("sock", s) for s in sids]))
        out: list[tuple[int, str] | None] = []
        for v in values:
            if v is None:
                out.append(None)
            else:
                cid, ns, _owner = v.split(" ", 2)
                out.append((int(cid), ns))
        return out

    def known(self, sid: str, peer: str) -> list[tuple[int, str] | None] | None:
        """locate(sid, peer) when this process's memory has both, else None (then locate reads Redis)."""
        where = self.where
        if sid in where and peer in where:
            return [where[sid], where[peer]]
        return None

    async def locate(self, *sids: str) -> list[tuple[int, str] | None]:
        """(cid, ns) of each socket's room, or None: from this process's memory when it knows."""
        where = self.where
        if all(s in where for s in sids):
            return [where[s] for s in sids]
        seen = self.forgotten
        out = await self._locate(sids)
        if seen == self.forgotten:
            self._remember({s: loc for s, loc in zip(sids, out, strict=True) if loc is not None})
        return out

    async def entry(self, sid: str) -> Entry | None:
        loc = (await self._locate([sid]))[0]
        if loc is None:
            return None
        raw = await self.r.hget(self.k("room", loc[0]), sid)
        return json.loads(raw) if raw else None

    async def contains(self, sid: str) -> bool:
        return bool(await self.r.exists(self.k("sock", sid)))

    async def update(self, sid: str, **fields: Any) -> Entry | None:
        raw = await self._update(keys=[], args=[self.prefix, sid, json.dumps(fields)])
        return json.loads(raw) if raw else None

    async def participants(self, cid: int) -> list[Entry]:
        return await self._live(cast("list[str]", await self.r.hvals(self.k("room", cid))))

    async def all_entries(self) -> list[Entry]:
        cids = await self.r.smembers(self.k("rooms"))
        out: list[Entry] = []
        for cid in cids:
            out.extend(await self.participants(int(cid)))
        return out

    async def add_user_sock(self, uid: int, ns: str, sid: str) -> None:
        key = self.k("user", uid)
        async with self.r.pipeline(transaction=True) as p:
            p.sadd(key, f"{ns} {sid}")
            p.expire(key, 7 * 24 * 3600)
            await p.execute()

    async def remove_user_sock(self, uid: int, ns: str, sid: str) -> None:
        await self.r.srem(self.k("user", uid), f"{ns} {sid}")

    async def user_socks(self, uid: int) -> list[tuple[str, str]]:
        members = cast("set[str]", await self.r.smembers(self.k("user", uid)))
        # (Each member was written as "ns sid": two parts, which the type checker cannot know.)
        return sorted(tuple(m.split(" ", 1)) for m in members)  # type: ignore[misc]

    async def renew(self, local_sids: Iterable[str]) -> None:
        """The heartbeat: this process is alive, and so are its sockets' room keys."""
        async with self.r.pipeline(transaction=False) as p:
            p.set(self.k("proc", self.owner), "1", ex=self.ttl)
            for sid in local_sids:
                p.expire(self.k("sock", sid), self.ttl)
            await p.execute()

    async def sweep(self) -> list[Entry]:
        """Remove entries of processes that stopped renewing; returns those this call removed."""
        removed: list[Entry] = []
        for cid in await self.r.smembers(self.k("rooms")):
            raw = await self.r.hvals(self.k("room", cid))
            if not raw:
                await self.r.srem(self.k("rooms"), cid)
                continue
            entries = [json.loads(v) for v in raw]
            alive = await self._alive({e["owner"] for e in entries})
            for e in entries:
                if e["owner"] not in alive:
                    n = await self._sweep_one(keys=[], args=[self.prefix, e["sid"], cid, e["owner"]])
                    if n:
                        self.forget(e["sid"])
                        removed.append(e)
        return removed


# The participant store a process runs with: memory (one process) or Redis (several).
Store = MemoryStore | RedisStore
