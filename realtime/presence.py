"""Presence: who is online, across processes, and telling the people who care.

A user is online while at least one of their sockets is connected and authenticated (a valid
handshake token, or an event that carried one). Their chosen status (`PUT /api/users/` `status`,
stored in `users.status`: online, idle, dnd, invisible) is what others see while they are online;
`invisible` and not connected both show as `offline` to everyone else, while the user sees their
own choice on themselves (`offline` when they have no socket at all).

State
  One process (no REDIS_URL): a map user id -> this process's socket ids, and their choice.
  Redis (prefix pv:pr:; the process heartbeat key is the participant store's pv:rt:proc:<owner>):
    u:<uid>       hash: <owner> -> number of the user's sockets on that process, pref -> choice
    on:<uid>      the choice, expiring with the heartbeat window: what REST answers read, one MGET
                  per response; renewed every beat by each process holding one of the user's sockets
    ou:<owner>    set of user ids with sockets on that process (for sweeping a dead one)
    owners        set of owners that have (or had) sockets counted
  Connect and disconnect run one Lua script each, which also says whether this socket made the
  user go online or offline (so exactly one process announces each change). A process that dies
  stops renewing: its users' on: keys expire within three beats, and a live process's sweep
  removes its counts and announces those who went offline with it.

Delivery (`presence-updated {userId, status}`)
  An authenticated socket enters `presence:server:<id>` for each server of its user and
  `presence:user:<uid>`. A change is emitted once, to the rooms of the user's servers and of their
  friends (python-socketio delivers once per socket however many of the rooms it is in), skipping
  the sockets of users on either side of a block with them and the user's own sockets, which get
  their own view in `presence:user:<uid>`. Nobody else is in those rooms, so strangers get nothing.
  Connecting costs one statement for the user's server ids plus one room entry per server; the
  audience (one statement: servers, friends, blocks) is read by a per-process worker after the
  connect handler has returned, never by walking members.
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import cast

import socketio

from generated import rest
from generated.events import PresenceUpdated

from models.storage import presence as q
from models.storage import sql
from realtime import running
from realtime.store import RedisStore, Store

log = logging.getLogger("projectvoice.realtime")

CHOICES = ("online", "idle", "dnd", "invisible")


def choice_of(value: str | None) -> str:
    """The stored column as a choice (rows from before presence say `offline`: no choice made)."""
    return value if value in CHOICES else "online"


def seen_by_others(pref: str | None) -> rest.Presence:
    """What everyone else sees, given the user's choice while online (None: not online)."""
    if pref is None or pref == "invisible":
        return "offline"
    return cast(rest.Presence, pref)  # a choice: what choice_of() stored


def seen_by_self(pref: str | None) -> rest.Presence:
    return "offline" if pref is None else cast(rest.Presence, pref)


def server_room(server_id: int) -> str:
    return f"presence:server:{server_id}"


def user_room(user_id: int) -> str:
    return f"presence:user:{user_id}"


# ------------------------------------------------------------------------------ state backends

class MemoryPresence:
    """One process: every method completes without awaiting."""

    def __init__(self) -> None:
        self.socks: dict[int, set[str]] = {}
        self.prefs: dict[int, str] = {}

    async def connect(self, uid: int, sid: str, pref: str) -> str | None:
        """Count the socket; the user's choice before it if they were online already, else None."""
        socks = self.socks.setdefault(uid, set())
        before = self.prefs.get(uid) if socks else None
        socks.add(sid)
        self.prefs[uid] = pref
        return before

    async def disconnect(self, uid: int, sid: str) -> str | None:
        """Uncount the socket; the user's choice if this made them go offline, else None."""
        socks = self.socks.get(uid)
        if not socks or sid not in socks:
            return None
        socks.discard(sid)
        if socks:
            return None
        del self.socks[uid]
        return self.prefs.pop(uid, "online")

    async def set_pref(self, uid: int, pref: str) -> str | None:
        """Record a new choice; the previous one if the user is online, else None."""
        if uid not in self.socks:
            return None
        before, self.prefs[uid] = self.prefs.get(uid, "online"), pref
        return before

    async def lookup(self, uids: Iterable[int]) -> dict[int, str]:
        return {u: self.prefs[u] for u in uids if u in self.socks}

    async def renew(self, uids: list[int]) -> list[int]:
        return []

    async def restore(self, uid: int, count: int, pref: str) -> str | None:
        return None

    async def counted_here(self) -> set[int]:
        return set()

    async def drop_here(self, uid: int) -> str | None:
        return None

    async def sweep(self) -> list[tuple[int, str]]:
        return []


_LIVE = """
local function live(u, rt)
  local fields = redis.call('HGETALL', u)
  local n = 0
  for i = 1, #fields, 2 do
    local f = fields[i]
    if f ~= 'pref' then
      if redis.call('EXISTS', rt .. 'proc:' .. f) == 1 then n = n + tonumber(fields[i + 1])
      else redis.call('HDEL', u, f) end
    end
  end
  return n
end
"""

# ARGV: prefix, rt prefix, uid, owner, pref, ttl -> the choice before (online already) or false
_CONNECT = """
local p, uid, owner = ARGV[1], ARGV[3], ARGV[4]
local u, on = p .. 'u:' .. uid, p .. 'on:' .. uid
local before = redis.call('GET', on)
redis.call('HINCRBY', u, owner, 1)
redis.call('HSET', u, 'pref', ARGV[5])
redis.call('SET', on, ARGV[5], 'EX', ARGV[6])
redis.call('SADD', p .. 'ou:' .. owner, uid)
redis.call('SADD', p .. 'owners', owner)
return before
"""

# ARGV: prefix, rt prefix, uid, owner -> the choice when the user went offline, else false
_DISCONNECT = _LIVE + """
local p, uid, owner = ARGV[1], ARGV[3], ARGV[4]
local u = p .. 'u:' .. uid
local c = tonumber(redis.call('HGET', u, owner) or '0')
if c <= 0 then return false end
if c == 1 then
  redis.call('HDEL', u, owner)
  redis.call('SREM', p .. 'ou:' .. owner, uid)
else
  redis.call('HINCRBY', u, owner, -1)
end
if live(u, ARGV[2]) > 0 then return false end
local pref = redis.call('HGET', u, 'pref') or 'online'
redis.call('DEL', u, p .. 'on:' .. uid)
return pref
"""

# ARGV: prefix, rt prefix, uid, dead owner -> the choice when the user went offline with it
_SWEEP_USER = _LIVE + """
local p, uid, dead = ARGV[1], ARGV[3], ARGV[4]
local u = p .. 'u:' .. uid
if not redis.call('HGET', u, dead) then return false end
redis.call('HDEL', u, dead)
if live(u, ARGV[2]) > 0 then return false end
local pref = redis.call('HGET', u, 'pref') or 'online'
redis.call('DEL', u, p .. 'on:' .. uid)
return pref
"""

# ARGV: prefix, uid, pref -> the choice before when online, else false
_SET_PREF = """
local u, on = ARGV[1] .. 'u:' .. ARGV[2], ARGV[1] .. 'on:' .. ARGV[2]
if redis.call('EXISTS', u) == 0 then return false end
local before = redis.call('HGET', u, 'pref') or 'online'
redis.call('HSET', u, 'pref', ARGV[3])
if redis.call('EXISTS', on) == 1 then redis.call('SET', on, ARGV[3], 'KEEPTTL') end
return before
"""

# ARGV: prefix, owner, ttl, then this process's user ids. Renews the on: key of each user this
# process still has counted; returns those it has not (counted nowhere: see RedisPresence.renew).
# Never writes a count: a disconnect between the caller's snapshot and this script would
# otherwise be undone.
_RENEW = """
local p, owner, ttl = ARGV[1], ARGV[2], ARGV[3]
local missing = {}
for i = 4, #ARGV do
  local uid = ARGV[i]
  local u = p .. 'u:' .. uid
  if redis.call('HEXISTS', u, owner) == 1 then
    redis.call('SET', p .. 'on:' .. uid, redis.call('HGET', u, 'pref') or 'online', 'EX', ttl)
  else
    missing[#missing + 1] = uid
  end
end
return missing
"""

# ARGV: prefix, rt prefix, uid, owner, count, pref, ttl: restate this process's count of a user
# whose entry was swept while the process lived (a stall longer than the heartbeat window);
# returns the choice before if the user was online, else false.
_RESTORE = """
local p, uid, owner = ARGV[1], ARGV[3], ARGV[4]
local u, on = p .. 'u:' .. uid, p .. 'on:' .. uid
local before = redis.call('GET', on)
redis.call('HSET', u, owner, ARGV[5])
local pref = redis.call('HGET', u, 'pref')
if not pref then pref = ARGV[6]; redis.call('HSET', u, 'pref', pref) end
redis.call('SET', on, pref, 'EX', ARGV[7])
redis.call('SADD', p .. 'ou:' .. owner, uid)
redis.call('SADD', p .. 'owners', owner)
return before
"""


class RedisPresence:
    """Several processes: counts per user and process in Redis, bound to the process heartbeat
    of the participant store (realtime/store.py RedisStore), whose connection it shares."""

    prefix = "pv:pr:"

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.r = store.r
        self.owner = store.owner
        self.ttl = store.ttl
        self.rt = store.prefix
        self._connect = self.r.register_script(_CONNECT)
        self._disconnect = self.r.register_script(_DISCONNECT)
        self._sweep_user = self.r.register_script(_SWEEP_USER)
        self._set_pref = self.r.register_script(_SET_PREF)
        self._renew = self.r.register_script(_RENEW)
        self._restore = self.r.register_script(_RESTORE)

    async def connect(self, uid: int, sid: str, pref: str) -> str | None:
        return await self._connect(keys=[], args=[self.prefix, self.rt, uid, self.owner, pref, self.ttl]) or None

    async def disconnect(self, uid: int, sid: str) -> str | None:
        return await self._disconnect(keys=[], args=[self.prefix, self.rt, uid, self.owner]) or None

    async def set_pref(self, uid: int, pref: str) -> str | None:
        return await self._set_pref(keys=[], args=[self.prefix, uid, pref]) or None

    async def lookup(self, uids: Iterable[int]) -> dict[int, str]:
        uids = list(dict.fromkeys(uids))
        if not uids:
            return {}
        # (Text, not bytes: the client decodes responses, as realtime/store.py says to the checker.)
        values = cast("list[str | None]", await self.r.mget([f"{self.prefix}on:{u}" for u in uids]))
        return {u: v for u, v in zip(uids, values, strict=True) if v is not None}

    async def renew(self, uids: list[int]) -> list[int]:
        """Keep this process's users online; the ones it holds no count for (swept)."""
        if not uids:
            return []
        return [int(u) for u in await self._renew(keys=[], args=[self.prefix, self.owner, self.ttl, *uids])]

    async def restore(self, uid: int, count: int, pref: str) -> str | None:
        return await self._restore(keys=[], args=[self.prefix, self.rt, uid, self.owner, count, pref,
                                                  self.ttl]) or None

    async def counted_here(self) -> set[int]:
        """The users this process has a count for in Redis."""
        return {int(u) for u in await self.r.smembers(f"{self.prefix}ou:{self.owner}")}

    async def drop_here(self, uid: int) -> str | None:
        """Remove this process's count of the user (it has no socket of theirs any more); the
        choice when that made them go offline."""
        pref = await self._sweep_user(keys=[], args=[self.prefix, self.rt, uid, self.owner])
        await self.r.srem(f"{self.prefix}ou:{self.owner}", uid)
        return pref or None

    async def sweep(self) -> list[tuple[int, str]]:
        """Counts of processes that stopped renewing their heartbeat: removed, and the users who
        went offline with them returned (each claimed by exactly one sweeper through SPOP)."""
        gone: list[tuple[int, str]] = []
        for owner in cast("set[str]", await self.r.smembers(f"{self.prefix}owners")):  # (text, as above)
            if owner == self.owner or await self.r.exists(f"{self.rt}proc:{owner}"):
                continue
            while (uid := cast("str | None", await self.r.spop(f"{self.prefix}ou:{owner}"))) is not None:
                pref = await self._sweep_user(keys=[], args=[self.prefix, self.rt, uid, owner])
                if pref:
                    gone.append((int(uid), pref))
            await self.r.srem(f"{self.prefix}owners", owner)
        return gone


# ------------------------------------------------------------------------------ the coordinator

class Presence:
    """This process's side of presence: its authenticated sockets, the state backend, and a
    worker that announces changes in the order they happened here."""

    def __init__(self, sio: socketio.AsyncServer, store: Store, namespaces: tuple[str, ...]) -> None:
        self.sio = sio
        self.store = store  # the participant store: user -> socket ids across processes
        self.namespaces = namespaces
        # (A store with a Redis connection is a RedisStore.)
        self.backend = RedisPresence(cast(RedisStore, store)) if hasattr(store, "r") else MemoryPresence()
        self.local: dict[int, dict[str, str]] = {}  # uid -> {sid: ns}, this process
        self.prefs: dict[int, str] = {}  # this process's last known choice of its users
        self._locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._queue: asyncio.Queue[tuple[int, str | None, str | None]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except (asyncio.CancelledError, Exception):
                pass
            self._worker = None

    def _release(self, uid: int) -> None:
        lock = self._locks.get(uid)
        if lock is not None and not lock.locked() and uid not in self.local:
            self._locks.pop(uid, None)

    # sockets -----------------------------------------------------------------------------
    async def socket_authenticated(self, sid: str, ns: str, uid: int, stored_status: str | None,
                                   still_connected: Callable[[], bool]) -> None:
        """A socket proved to be `uid` (handshake or event token): count it, enter its rooms, and
        announce the user if this made them go online. `still_connected()` is checked once the
        server list is read, so a socket that went away meanwhile leaves nothing behind."""
        pref = choice_of(stored_status)
        async with sql.connection() as conn:
            servers = await q.server_ids(conn, uid)
        async with self._locks[uid]:
            if not still_connected() or sid in self.local.get(uid, {}):
                return
            for room in [user_room(uid), *(server_room(s) for s in servers)]:
                await self.sio.enter_room(sid, room, namespace=ns)
            self.local.setdefault(uid, {})[sid] = ns
            self.prefs[uid] = pref
            try:
                before = await self.backend.connect(uid, sid, pref)
            except Exception:
                # Redis failed: counted here, so the heartbeat's renewal restores the entry.
                log.exception("presence: counting a socket failed")
                return
            if before is None:
                self._announce(uid, None, pref)
            elif before != pref:  # the stored choice is newer than what the others last heard
                self._announce(uid, before, pref)
        self._release(uid)

    async def socket_gone(self, sid: str, uid: int) -> None:
        """A counted socket disconnected, or now speaks for another user."""
        async with self._locks[uid]:
            mine = self.local.get(uid)
            if not mine or sid not in mine:
                return
            ns = mine.pop(sid)
            if not mine:
                del self.local[uid]
                self.prefs.pop(uid, None)
            for room in self.sio.manager.get_rooms(sid, ns) or ():
                if isinstance(room, str) and room.startswith("presence:"):
                    await self.sio.leave_room(sid, room, namespace=ns)
            try:
                before = await self.backend.disconnect(uid, sid)
            except Exception:
                # Redis failed: the next heartbeat finds the count without a local socket and
                # drops it (beat()), announcing the user then if that was their last.
                log.exception("presence: uncounting a socket failed")
                return
            if before is not None:
                self._announce(uid, before, None)
        self._release(uid)

    def is_counted(self, sid: str, uid: int) -> bool:
        return sid in self.local.get(uid, {})

    # choices and membership --------------------------------------------------------------
    async def choice_changed(self, uid: int, stored_status: str) -> None:
        """PUT /api/users/ changed the user's status (after the commit)."""
        pref = choice_of(stored_status)
        async with self._locks[uid]:
            if uid in self.prefs:
                self.prefs[uid] = pref
            before = await self.backend.set_pref(uid, pref)
            if before is not None and before != pref:
                self._announce(uid, before, pref)
        self._release(uid)

    async def rooms_changed(self, server_id: int, uid: int, joined: bool) -> None:
        """The user joined or left a server: their sockets in this process enter or leave its
        presence room (other processes do the same on a notice, see realtime/voice.py)."""
        room = server_room(server_id)
        for sid, ns in list(self.local.get(uid, {}).items()):
            if joined:
                await self.sio.enter_room(sid, room, namespace=ns)
            else:
                await self.sio.leave_room(sid, room, namespace=ns)

    async def introduce(self, server_id: int, uid: int) -> None:
        """A user joined a server: its members see their presence from now on, so if they are
        online the server's room hears it once (the newcomer reads the members' from REST)."""
        status = seen_by_others((await self.backend.lookup([uid])).get(uid))
        if status == "offline":
            return
        async with sql.connection() as conn:
            aud = await q.audience(conn, uid)
        skip = [sid for _ns, sid in await self.store.user_socks(uid)]
        for other in sorted(aud.blocked):
            skip.extend(sid for _ns, sid in await self.store.user_socks(other))
        for ns in self.namespaces:
            payload: PresenceUpdated = {"userId": uid, "status": status}
            await self.sio.emit("presence-updated", payload, room=server_room(server_id),
                                namespace=ns, skip_sid=skip)

    # the heartbeat -----------------------------------------------------------------------
    async def beat(self) -> None:
        """Renew this process's users (Redis) and announce those a dead process took offline."""
        for uid in await self.backend.renew([uid for uid, socks in self.local.items() if socks]):
            # Swept while this process lived (it stalled past the window): count it again, under
            # the user's lock so that no connect or disconnect interleaves.
            async with self._locks[uid]:
                socks = self.local.get(uid)
                if socks:
                    pref = self.prefs.get(uid, "online")
                    if await self.backend.restore(uid, len(socks), pref) is None:
                        self._announce(uid, None, pref)
            self._release(uid)
        for uid in await self.backend.counted_here():
            if uid in self.local:
                continue
            # Counted in Redis without a socket here (an uncount that failed): drop it.
            async with self._locks[uid]:
                if uid not in self.local and (dropped := await self.backend.drop_here(uid)) is not None:
                    self._announce(uid, dropped, None)
            self._release(uid)
        for uid, pref in await self.backend.sweep():
            log.info("presence: user %s went offline with a stopped process", uid)
            self._announce(uid, pref, None)

    # REST --------------------------------------------------------------------------------
    async def statuses(self, viewer: int | None, uids: Iterable[int]) -> dict[int, str]:
        """uid -> the status `viewer` sees (users not listed are offline); one lookup."""
        online = await self.backend.lookup(uids)
        return {u: (seen_by_self(p) if u == viewer else seen_by_others(p)) for u, p in online.items()}

    # announcing --------------------------------------------------------------------------
    def _announce(self, uid: int, before: str | None, after: str | None) -> None:
        self._queue.put_nowait((uid, before, after))
        if self._worker is None:  # not started (a test of the pieces): nobody to tell
            self._queue.get_nowait()

    async def _work(self) -> None:
        while True:
            uid, before, after = await self._queue.get()
            try:
                await self._deliver(uid, before, after)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("presence: announcing user %s failed", uid)

    async def _deliver(self, uid: int, before: str | None, after: str | None) -> None:
        own = [sid for _ns, sid in await self.store.user_socks(uid)]
        if seen_by_self(before) != seen_by_self(after):
            for ns in self.namespaces:
                mine: PresenceUpdated = {"userId": uid, "status": seen_by_self(after)}
                await self.sio.emit("presence-updated", mine, room=user_room(uid), namespace=ns)
        if seen_by_others(before) == seen_by_others(after):
            return
        async with sql.connection() as conn:
            aud = await q.audience(conn, uid)
        rooms = [server_room(s) for s in aud.servers] + [user_room(f) for f in aud.friends]
        if not rooms:
            return
        skip = list(own)
        for other in sorted(aud.blocked):
            skip.extend(sid for _ns, sid in await self.store.user_socks(other))
        payload: PresenceUpdated = {"userId": uid, "status": seen_by_others(after)}
        for ns in self.namespaces:
            await self.sio.emit("presence-updated", payload, room=rooms, namespace=ns, skip_sid=skip)

    async def drain(self) -> None:
        """Wait until every change queued so far was announced (tests, the benchmark)."""
        while not self._queue.empty():
            await asyncio.sleep(0.01)


def current() -> Presence | None:
    rt = running.current()
    return getattr(rt, "presence", None) if rt is not None else None


async def statuses(viewer: int | None, uids: Iterable[int]) -> dict[int, str]:
    """For REST answers: uid -> the presence `viewer` sees, in one lookup per response (a map in
    memory, or one Redis MGET). Without a running Socket.IO server, or if Redis fails, everyone
    is offline rather than the request failing."""
    p = current()
    if p is None:
        return {}
    try:
        return await p.statuses(viewer, uids)
    except Exception:
        log.exception("presence lookup failed")
        return {}


def seen_for(viewer: int | None) -> Callable[[Iterable[int]], Awaitable[dict[int, str]]]:
    """statuses() bound to a viewer: what models.membership.server_details takes."""
    async def lookup(uids: Iterable[int]) -> dict[int, str]:
        return await statuses(viewer, uids)
    return lookup
