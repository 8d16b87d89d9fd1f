"""Socket.IO event handlers: voice rooms, WebRTC signalling, mic state, live message events.

The contract is asyncapi/projectvoice.yaml. Every handler is registered on both namespaces
("/" under engine.io path /socket, "/socket" under /socket.io) and behaves identically.

Events of one client are handled one after the other (async_handlers=False in server.py), so a
sender's signals are relayed in the order they were sent. Room membership is decided by the
participant store (memory or Redis), never by what a client claims.

A join-room costs at most one statement (models/storage/voice.py join_rights: the token's account
and session, the channel, the caller's membership and roles, what the room shows of them). Its
rights are checked once more after it entered the room only when a rights change happened
meanwhile: every hook below that can take rights away increments the store's rights counter before
it looks for participants to evict (realtime/store.py explains why that leaves no ghost). For the
same reason a granted join's rows may serve the same token's next joins of that channel while the
counter has not moved (at most RIGHTS_CACHE_SECONDS, which bounds how stale the name and picture
the room shows can be): a reconnect storm or a user's many sockets cost one statement.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs

import socketio
from typing_extensions import TypedDict, Unpack

from core.errors import ApiError, Forbidden, NotFound, Unauthorized
from core.observability import OPEN_SOCKETS, VOICE_PARTICIPANTS, VOICE_ROOMS
from core.ratelimit import limiter
from generated.events import ChannelRef, Created, IceCandidate, MicToggled, Participant, Sdp, SignalRelay
from generated.events import SocketError, UserConnected, UserData, UserDisconnected
from models import auth
from models.permissions import Access, Perm, channel_access_from_rows, read_channel_access
from models.storage import sql
from models.storage import voice as storage
from models.tables import stored_id
from realtime import codec
from realtime.presence import Presence
from realtime.store import Entry, RedisStore, Store
from realtime.typing_notices import Typing
from realtime.validation import UNREADABLE, Malformed, check_event

log = logging.getLogger("projectvoice.realtime")

NAMESPACES = ("/", "/socket")
MAX_SIGNAL_BYTES = 64 * 1024
MAX_ID = 2**31 - 1
SIGNAL_TYPES = ("offer", "answer", "candidate")
SESSION_ENDED = "Your session has ended (password changed or signed out): sign in again"
RIGHTS_CACHE_SECONDS = 5.0
_RIGHTS_CACHE_MAX = 10_000
_ROOM_RE = re.compile(r"^(?:channel-)?([0-9]{1,10})$")


class ErrorExtra(TypedDict, total=False, closed=True):
    """What an `error` event may carry besides message and code (SocketError)."""

    retryAfter: int


class EventError(Exception):
    def __init__(self, message: str, code: str, **extra: Unpack[ErrorExtra]) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.extra = extra


async def check_rate(name: str, sid: str, event: str) -> None:
    """Count one `event` of this socket; over the limit, an EventError (`rate_limited`)."""
    retry_after = await limiter.hit(name, sid)
    if retry_after is not None:
        raise EventError(f"Too many {event} events: try again in {retry_after} s", "rate_limited",
                         retryAfter=retry_after)


@dataclass
class Sock:
    ns: str
    handshake_token: str | None
    user_id: int | None = None
    token: str | None = None  # the token that identified the socket (checked again by revalidate)
    texts: set[int] = field(default_factory=set)


def voice_room(cid: int) -> str:
    return f"voice:{cid}"


def text_room(cid: int) -> str:
    return f"text:{cid}"


def parse_channel_id(value: object, what: str = "roomId") -> int:
    """A channel id from a number, a numeric string or "channel-<id>"."""
    if isinstance(value, bool):
        raise EventError(f"{what} must be a channel id", "invalid_room_id")
    if isinstance(value, int):
        cid = value
    elif isinstance(value, float) and value.is_integer():
        cid = int(value)
    elif isinstance(value, str) and (m := _ROOM_RE.match(value.strip())):
        cid = int(m.group(1))
    else:
        raise EventError(f"{what} must be a channel id (a number, a numeric string or \"channel-<id>\")",
                         "invalid_room_id")
    if cid < 1 or cid > MAX_ID:
        raise EventError("Voice channel not found", "channel_not_found")
    return cid


_EVENTS = {"on_join_room": "join-room", "on_leave_room": "leave-room", "on_signal": "signal",
           "on_toggle_mic": "toggle-mic", "on_subscribe": "subscribe-channel",
           "on_unsubscribe": "unsubscribe-channel", "on_typing": "typing", "on_unreadable": UNREADABLE}

_RATED = {"join-room": "join_room", "signal": "signal"}


def _join_access(rows: list[sql.Row], uid: int, need: int) -> tuple[Access, sql.Row]:
    """The caller's access to the channel of join_rights' rows (a missing channel is NULL channel
    columns): not found / not a member / server blocked / missing permission, as REST answers."""
    return channel_access_from_rows([] if rows[0].channel_id is None else rows, uid, need)


def _handler(fn: Callable[..., Awaitable[None]]) -> Callable[..., Coroutine[Any, Any, None]]:
    """Run an event handler on arguments that passed realtime/validation.py; EventError,
    Malformed and permission failures become an `error` event."""

    # Only these change room membership; the gauges are not recounted per signal.
    changes_rooms = fn.__name__ in ("on_join_room", "on_leave_room")
    event = _EVENTS.get(fn.__name__)  # None: a handler of no documented event (walked, no schema)

    async def wrapper(self: Realtime, sid: str, *args: Any) -> None:
        sock = self.socks.get(sid)
        if sock is None:
            return None
        try:
            try:
                checked = check_event(event, args)
            except Malformed:
                if event in _RATED:  # a refused event still counts towards the limit, and says so first
                    await check_rate(_RATED[event], sid, event)
                raise
            return await fn(self, sid, sock, *checked)
        except Malformed as e:
            await self._error(sid, sock.ns, e.message, e.code)
        except EventError as e:
            await self._error(sid, sock.ns, e.message, e.code, **e.extra)
        except ApiError as e:
            await self._error(sid, sock.ns, e.message, e.code)
        except Exception:
            log.exception("socket event failed")
            await self._error(sid, sock.ns, "The server could not handle this event", "internal_error")
        finally:
            if changes_rooms:
                self.refresh_gauges()
        return None

    wrapper.__name__ = fn.__name__
    return wrapper


class Realtime:
    def __init__(self, sio: socketio.AsyncServer, store: Store, heartbeat: float = 5.0) -> None:
        self.sio = sio
        self.store = store
        self.heartbeat = heartbeat
        self.socks: dict[str, Sock] = {}
        # channel id -> its server's id, for the channels this process's sockets subscribed to:
        # a deleted server's channels can no longer be read from the database (server_closed).
        self.text_servers: dict[int, int] = {}
        # (user, session, channel, rights counter) -> (when, join_rights' rows, or the read in
        # flight) of granted joins: see on_join_room.
        self.rights_cache: dict[tuple[int, int, int, int], tuple[float, asyncio.Future[list[sql.Row]]]] = {}
        self.rights_seen: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._notices_task: asyncio.Task[None] | None = None
        # Revalidations this process has begun (any user): a join or subscribe that checked its
        # token before one began checks it again once it is in the room (see _recheck).
        self.revalidations = 0
        self.presence = Presence(sio, store, NAMESPACES)  # realtime/presence.py
        self.typing = Typing(sio, store, NAMESPACES, text_room)  # realtime/typing_notices.py
        if hasattr(sio.manager, "on_departure"):  # realtime/cluster.py: the store's memory of rooms
            sio.manager.on_departure = store.forget
        for ns in NAMESPACES:
            sio.on("connect", self._connect_handler(ns), namespace=ns)
            sio.on("disconnect", self.on_disconnect, namespace=ns)
            sio.on("join-room", self.on_join_room, namespace=ns)
            sio.on("leave-room", self.on_leave_room, namespace=ns)
            sio.on("signal", self.on_signal, namespace=ns)
            sio.on("toggle-mic", self.on_toggle_mic, namespace=ns)
            sio.on("subscribe-channel", self.on_subscribe, namespace=ns)
            sio.on("unsubscribe-channel", self.on_unsubscribe, namespace=ns)
            sio.on(UNREADABLE, self.on_unreadable, namespace=ns)
            sio.on("typing", self.on_typing, namespace=ns)

    # lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await self.store.start()
        self.presence.start()
        if self._task is None and hasattr(self.store, "r"):
            self._task = asyncio.create_task(self._renew_loop())
            self._notices_task = asyncio.create_task(self._notices_loop())

    async def stop(self) -> None:
        for task in (self._task, self._notices_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._task = self._notices_task = None
        await self.presence.stop()
        await self.store.stop()

    async def _notices_loop(self) -> None:
        """Several processes: what another process asks of this one's sockets."""
        while True:
            try:
                async for notice in cast(RedisStore, self.store).notices():  # (started with Redis only)
                    kind = notice.get("kind")
                    if kind == "recheck-texts":
                        await self._recheck_texts(int(notice["serverId"]), notice.get("userId"))
                    elif kind == "revalidate-user":
                        await self._revalidate_here(int(notice["userId"]), notice["message"], notice["code"])
                    elif kind == "server-closed":
                        await self._close_texts(int(notice["serverId"]))
                    elif kind == "presence-rooms":
                        await self.presence.rooms_changed(int(notice["serverId"]), int(notice["userId"]),
                                                          bool(notice["joined"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("voice: notices from other processes failed")
            await asyncio.sleep(1)

    async def _renew_loop(self) -> None:
        while True:
            try:
                await self.store.renew(list(self.socks))
                for e in await self.store.sweep():
                    log.info("voice: dropped %s of a stopped process from room %s", e["sid"], e["cid"])
                    await self._broadcast(e["cid"], "user-disconnected", e["sid"])
                await self.presence.beat()
                self.refresh_gauges()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("voice: participant renewal failed")
            await asyncio.sleep(self.heartbeat)

    # helpers -----------------------------------------------------------------------------
    async def _error(self, sid: str, ns: str, message: str, code: str, **extra: Unpack[ErrorExtra]) -> None:
        # (`code` is one the contract lists: ApiError and EventError hold it as a plain str.)
        error: SocketError = {"message": message, "code": cast(Any, code), **extra}
        await self.sio.emit("error", error, to=sid, namespace=ns)

    def refresh_gauges(self) -> None:
        """Prometheus gauges of this process: its open sockets, and its sockets in voice rooms
        (the manager's rooms hold only this process's sockets, also with Redis)."""
        rooms: set[str] = set()
        participants = 0
        try:
            for by_room in list(self.sio.manager.rooms.values()):
                for name, members in list(by_room.items()):
                    if isinstance(name, str) and name.startswith("voice:"):
                        here = sum(1 for s in list(members) if s in self.socks)
                        if here:
                            participants += here
                            rooms.add(name)
        except Exception:  # never let a metric break an event
            log.debug("voice gauges not refreshed", exc_info=True)
            return
        OPEN_SOCKETS.set(len(self.socks))
        VOICE_ROOMS.set(len(rooms))
        VOICE_PARTICIPANTS.set(participants)

    async def _broadcast(self, cid: int, event: str, data: MicToggled | UserDisconnected,
                         skip_sid: str | None = None) -> None:
        for ns in NAMESPACES:
            await self.sio.emit(event, data, room=voice_room(cid), namespace=ns, skip_sid=skip_sid)

    async def _identify(self, sid: str, ns: str, token: object) -> int:
        """The caller's user id: the event's token argument, else the handshake token."""
        sock = self.socks.get(sid)
        if token is not None and not isinstance(token, str):
            raise EventError("token must be a string", "invalid_argument")
        user = None
        for candidate in (token, sock.handshake_token if sock else None):
            if candidate:
                user = await auth.user_for_token(candidate)
                if user is not None:
                    break
        if user is None:
            raise EventError("Sign in to join voice rooms and channels: no valid session token was given",
                             "authentication_required")
        # (A stored row's id, and the token that found it: both set, whatever their declared types.)
        assert user.id is not None and candidate is not None
        if sock is not None:
            await self._bind(sid, sock, user.id, user.status, candidate)
        return user.id

    async def _bind(self, sid: str, sock: Sock, uid: int, status: str | None, token: str) -> None:
        """The socket speaks for `uid` (identified by `token`) from now on."""
        sock.token = token
        if sock.user_id != uid:
            if sock.user_id is not None:
                await self.store.remove_user_sock(sock.user_id, sock.ns, sid)
                await self.presence.socket_gone(sid, sock.user_id)
            sock.user_id = uid
            await self.store.add_user_sock(uid, sock.ns, sid)
            await self.presence.socket_authenticated(sid, sock.ns, uid, status, lambda: sid in self.socks)

    def _connected(self, sid: str, ns: str) -> bool:
        return sid in self.socks and self.sio.manager.is_connected(sid, ns)

    async def _leave(self, sid: str, ns: str, cid: int | None = None) -> Entry | None:
        entry = await self.store.leave(sid, cid)
        if entry is None:
            return None
        await self.sio.leave_room(sid, voice_room(entry["cid"]), namespace=entry["ns"])
        await self._broadcast(entry["cid"], "user-disconnected", sid)
        return entry

    async def evict(self, entry: Entry, message: str, code: str) -> None:
        """Remove a participant the server no longer allows in its room (any process)."""
        removed = await self.store.leave(entry["sid"], entry["cid"])
        if removed is None:
            return
        await self.sio.leave_room(entry["sid"], voice_room(entry["cid"]), namespace=entry["ns"])
        await self._broadcast(entry["cid"], "user-disconnected", entry["sid"])
        await self._error(entry["sid"], entry["ns"], message, code)
        self.refresh_gauges()

    # connection --------------------------------------------------------------------------
    def _connect_handler(self, ns: str) -> Callable[..., Coroutine[Any, Any, bool]]:
        async def connect(sid: str, environ: dict[str, Any], auth_data: object = None) -> bool:
            return await self.on_connect(ns, sid, environ, auth_data)
        return connect

    async def on_connect(self, ns: str, sid: str, environ: dict[str, Any], auth_data: object = None) -> bool:
        token = None
        if isinstance(auth_data, dict) and isinstance(auth_data.get("token"), str):
            token = auth_data["token"]
        if not token:
            q = parse_qs(environ.get("QUERY_STRING", ""))
            token = (q.get("token") or [None])[0]
        sock = self.socks[sid] = Sock(ns=ns, handshake_token=token or None)
        OPEN_SOCKETS.set(len(self.socks))
        if token:
            # A valid handshake token makes the socket its user's at once (presence counts it).
            # The connection is accepted whatever happens here (identity is settled again by
            # join-room and subscribe-channel), so a database or Redis failure only delays it.
            try:
                user = await auth.user_for_token(token)
                if user is not None and self.socks.get(sid) is sock and sock.user_id is None:
                    sock.user_id = user.id
                    sock.token = token  # what revalidate_user_sockets checks again
                    await self.store.add_user_sock(stored_id(user), ns, sid)
                    await self.presence.socket_authenticated(sid, ns, stored_id(user), user.status,
                                                             lambda: self.socks.get(sid) is sock)
            except Exception:
                log.warning("socket connect: the handshake token could not be checked", exc_info=True)
        return True

    async def on_disconnect(self, sid: str, reason: object = None) -> None:
        sock = self.socks.pop(sid, None)
        ns = sock.ns if sock else "/"
        try:
            await self._leave(sid, ns)
        finally:
            if sock and sock.user_id is not None:
                await self.store.remove_user_sock(sock.user_id, ns, sid)
                await self.presence.socket_gone(sid, sock.user_id)
            self.refresh_gauges()

    # voice rooms -------------------------------------------------------------------------
    @_handler
    async def on_join_room(self, sid: str, sock: Sock, room_id: int | str | None = None, token: object = None,
                           *_rest: object) -> None:
        await check_rate("join_room", sid, "join-room")
        if room_id is None:
            raise EventError("join-room needs a roomId", "invalid_room_id")
        cid = parse_channel_id(room_id)
        if token is not None and not isinstance(token, str):
            raise EventError("token must be a string", "invalid_argument")
        epoch = await self.store.rights_epoch()  # before the rights are read (see realtime/store.py)
        rows = None
        for candidate in (token, sock.handshake_token):
            claims = auth.decode_token(candidate) if candidate else None
            if claims is not None:
                rows = await self._join_rights(claims, cid, epoch)
                if rows is not None:
                    break
        if rows is None:
            raise EventError("Sign in to join voice rooms and channels: no valid session token was given",
                             "authentication_required")
        assert claims is not None and candidate is not None  # the rows came from them
        uid = claims["sub"]
        row = rows[0]
        await self._bind(sid, sock, uid, row.user_status, candidate)
        try:
            _join_access(rows, uid, Perm.CONNECT)
            if row.channel_type != "voice":
                raise EventError("This channel is not a voice channel", "not_a_voice_channel")
        except ApiError as refused:
            self._refused(claims, cid, epoch)
            if refused.code == "channel_not_found":
                raise EventError("Voice channel not found", "channel_not_found") from None
            raise
        except EventError:
            self._refused(claims, cid, epoch)
            raise
        current = await self.store.entry(sid)
        if current is not None and current["cid"] != cid:
            await self._leave(sid, sock.ns)
        rejoin = current is not None and current["cid"] == cid
        mic = bool(cast(Entry, current)["micToggle"]) if rejoin else True  # (rejoin: there is an entry)
        user_data: UserData = {"id": uid, "username": row.username, "profilePicture": row.profile_picture,
                               "role": row.user_role}
        entry: Entry = {
            "sid": sid, "ns": sock.ns, "cid": cid, "serverId": row.id, "userId": uid,
            "joinedAt": time.time(), "micToggle": mic and not row.is_member_muted, "serverMuted": bool(row.is_member_muted),
            "userData": user_data,
        }
        await self.sio.enter_room(sid, voice_room(cid), namespace=sock.ns)
        everyone, now = await self.store.join(entry)
        refusal = None
        if now != epoch:
            # A rights change began while we were checking: its eviction may have looked for us
            # before we were here, so check again now that we are (one that comes later finds us).
            refusal = await self._join_rights_again(sid, sock, uid, cid, entry)
        if refusal is not None and refusal.code == "session_ended":
            await self._end_socket(sid, sock, refusal.message, refusal.code)
            return None
        if refusal is not None or not self._connected(sid, sock.ns):
            # Refused or disconnected while we were checking: leave no ghost behind (and tell
            # anyone who saw us in their `created` that we are gone).
            await self._leave(sid, sock.ns, cid)
            if refusal is not None:
                raise refusal
            return None
        everyone.sort(key=lambda e: (e.get("joinedAt", 0), e["sid"]))
        participants: list[Participant] = [
            {"socketId": e["sid"], "micToggle": e["micToggle"], "userData": e["userData"]}
            if e["sid"] != sid else
            {"socketId": sid, "micToggle": entry["micToggle"], "userData": user_data}
            for e in everyone]
        created: Created = {"roomId": room_id, "participants": participants}
        await self.sio.emit("created", created, to=sid, namespace=sock.ns)
        if not rejoin:
            # Only those already present when we joined: a later joiner learns of us from `created`.
            # One emit per namespace to the list of sockets: the packet is encoded once.
            by_ns: dict[str, list[str]] = {}
            for e in everyone:
                if e["sid"] != sid:
                    by_ns.setdefault(e["ns"], []).append(e["sid"])
            for ns, sids in by_ns.items():
                connected: UserConnected = {"socketId": sid, "userData": user_data}
                await self.sio.emit("user-connected", connected, to=sids, namespace=ns)
            if by_ns and not await self.store.contains(sid):
                # Evicted while we announced ourselves: whoever got our user-connected after the
                # eviction's user-disconnected must not keep us as a participant.
                await self._broadcast(cid, "user-disconnected", sid)
        return None

    async def _join_rights(self, claims: auth.Claims, cid: int, epoch: int | None = None) -> list[sql.Row] | None:
        """join_rights' rows for a decoded token, or None when its account or session fails the
        bearer check's verdict (models.auth.check_account). With the rights counter read
        before (`epoch`), the rows of a read begun at the same counter (in flight, or of a granted
        join less than RIGHTS_CACHE_SECONDS ago) serve."""
        rows = await (self._read_join_rights(claims, cid) if epoch is None else
                      self._shared_join_rights(claims, cid, epoch))
        try:
            auth.check_account(rows[0] if rows else None, claims)
        except Unauthorized:
            self._refused(claims, cid, epoch)
            return None
        return rows

    @staticmethod
    async def _read_join_rights(claims: auth.Claims, cid: int) -> list[sql.Row]:
        async with sql.connection() as conn:
            return await storage.join_rights(conn, claims["sub"], claims["sid"], cid)

    async def _shared_join_rights(self, claims: auth.Claims, cid: int, epoch: int) -> list[sql.Row]:
        key = (claims["sub"], claims["sid"], cid, epoch)
        now = time.monotonic()
        hit = self.rights_cache.get(key)
        if hit is not None and now - hit[0] < RIGHTS_CACHE_SECONDS:
            return await asyncio.shield(hit[1])
        if epoch != self.rights_seen or len(self.rights_cache) >= _RIGHTS_CACHE_MAX:
            self.rights_cache.clear()  # read at another counter: of no use any more
            self.rights_seen = epoch
        read: asyncio.Future[list[sql.Row]] = asyncio.get_running_loop().create_future()
        self.rights_cache[key] = (now, read)
        try:
            rows = await self._read_join_rights(claims, cid)
        except BaseException as e:
            if self.rights_cache.get(key, (0, None))[1] is read:
                del self.rights_cache[key]
            read.set_exception(e if isinstance(e, Exception) else RuntimeError("join rights read cancelled"))
            read.exception()  # retrieved: the waiters, if any, get it too
            raise
        read.set_result(rows)
        return rows

    def _refused(self, claims: auth.Claims, cid: int, epoch: int | None) -> None:
        """Only granted joins' rows are kept: a refusal is read again next time (a grant, such as
        an accepted invite, does not move the rights counter)."""
        if epoch is not None:
            self.rights_cache.pop((claims["sub"], claims["sid"], cid, epoch), None)

    async def _join_rights_again(self, sid: str, sock: Sock, uid: int, cid: int,
                                 entry: Entry) -> EventError | ApiError | None:
        """The refusal for a socket that has just entered voice room `cid`, or None: its token,
        the channel's CONNECT and type, in the same one statement; a server mute that came
        meanwhile is applied to its entry."""
        claims = auth.decode_token(sock.token) if sock.token else None
        rows = await self._join_rights(claims, cid) if claims is not None and claims["sub"] == uid else None
        if rows is None:
            return EventError(SESSION_ENDED, "session_ended")
        try:
            _join_access(rows, uid, Perm.CONNECT)
        except ApiError as e:
            return e
        if rows[0].channel_type != "voice":
            return EventError("This channel is not a voice channel", "not_a_voice_channel")
        muted = bool(rows[0].is_member_muted)
        if muted != entry["serverMuted"]:
            fields = {"serverMuted": muted, **({"micToggle": False} if muted else {})}
            if await self.store.update(sid, **fields) is not None:
                entry.update(fields)
        return None

    async def _recheck(self, sid: str, sock: Sock, uid: int, cid: int, need: int, kind: str,
                       seen: int) -> EventError | ApiError | None:
        """The refusal for a socket that has just entered channel `cid`'s room, or None: the
        channel's permission `need` and type in one statement, and the token again (the same
        check as every event's, models.auth) when a revalidation began since `seen`."""
        if self.revalidations != seen:
            user = await auth.user_for_token(sock.token)
            if user is None or user.id != uid:
                return EventError(SESSION_ENDED, "session_ended")
        async with sql.connection() as conn:
            try:
                _access, row = await read_channel_access(conn, uid, cid, need)
            except ApiError as e:
                return e
        if row.channel_type != kind:
            return EventError(f"This channel is not a {kind} channel", f"not_a_{kind}_channel")
        return None

    @_handler
    async def on_leave_room(self, sid: str, sock: Sock, room_id: object = None, *_rest: object) -> None:
        cid = None if room_id is None else parse_channel_id(room_id)
        current = await self.store.entry(sid)
        if current is None:
            return None
        if cid is not None and current["cid"] != cid:
            raise EventError("You are not in that voice room", "not_in_room")
        await self._leave(sid, sock.ns, current["cid"])
        return None

    @_handler
    async def on_signal(self, sid: str, sock: Sock, payload: object = None, *_rest: object) -> None:
        # (The per-event work here is what the signalling benchmark measures: no await that can
        # be avoided, each check once.)
        if limiter.enabled("signal"):
            await check_rate("signal", sid, "signal")
        if not isinstance(payload, dict):
            raise EventError("signal needs an object {to, type, sdp | candidate}", "invalid_signal")
        to, kind = payload.get("to"), payload.get("type")
        if not isinstance(to, str) or not to or len(to) > 64:
            raise EventError("signal.to must be the socket id of a participant", "invalid_signal")
        if kind not in SIGNAL_TYPES:
            raise EventError("signal.type must be offer, answer or candidate", "invalid_signal")
        out: SignalRelay = {"from": sid, "to": sid, "type": kind}
        if kind in ("offer", "answer"):
            sdp = payload.get("sdp")
            if not (isinstance(sdp, str) and sdp) and not (isinstance(sdp, dict) and isinstance(sdp.get("sdp"), str)):
                raise EventError(f"signal.sdp is required for {kind}: a string or {{type, sdp}}", "invalid_signal")
            out["sdp"] = cast(Sdp, sdp)  # a string, or {type, sdp} with a string sdp (just checked)
        else:
            cand = payload.get("candidate")
            if not isinstance(cand, dict):
                raise EventError("signal.candidate is required for candidate: an object", "invalid_signal")
            out["candidate"] = cast(IceCandidate, cand)  # its fields checked by realtime/validation.py
        size = codec.size(out)  # as it goes on the wire (realtime/codec.py)
        if size > MAX_SIGNAL_BYTES:
            raise EventError(f"signal payload is too large ({size} bytes, at most {MAX_SIGNAL_BYTES})",
                             "signal_too_large")
        if to == sid:
            raise EventError("signal.to must be another participant", "invalid_signal")
        mine, theirs = self.store.known(sid, to) or await self.store.locate(sid, to)
        if mine is None:
            raise EventError("Join a voice room before signalling", "not_in_room")
        if theirs is None or theirs[0] != mine[0]:
            raise EventError("signal.to is not in your voice room", "peer_not_in_room")
        await self.sio.emit("signal", out, to=to, namespace=theirs[1])
        return None

    @_handler
    async def on_toggle_mic(self, sid: str, sock: Sock, value: object = None, *_rest: object) -> None:
        if not isinstance(value, bool):
            raise EventError("toggle-mic needs a boolean", "invalid_argument")
        current = await self.store.entry(sid)
        if current is None:
            raise EventError("Join a voice room first", "not_in_room")
        if value and current.get("serverMuted"):
            raise EventError("You are muted in this server by a moderator", "server_muted")
        entry = await self.store.update(sid, micToggle=value)
        if entry is None:
            raise EventError("Join a voice room first", "not_in_room")
        await self._broadcast(entry["cid"], "mic-toggled", {"socketId": sid, "micToggle": value})
        return None

    @_handler
    async def on_unreadable(self, sid: str, sock: Sock, *_args: object) -> None:
        return None  # check_event has already refused it

    # live messages -----------------------------------------------------------------------
    @_handler
    async def on_subscribe(self, sid: str, sock: Sock, channel_id: object = None, token: object = None,
                           *_rest: object) -> None:
        if channel_id is None:
            raise EventError("subscribe-channel needs a channelId", "invalid_channel_id")
        cid = parse_channel_id(channel_id, "channelId")
        seen = self.revalidations
        uid = await self._identify(sid, sock.ns, token)
        async with sql.connection() as conn:
            _access, row = await read_channel_access(conn, uid, cid, Perm.READ_MESSAGE_HISTORY)
        if row.channel_type != "text":
            raise EventError("This channel is not a text channel", "not_a_text_channel")
        self.text_servers[cid] = row.id
        await self.sio.enter_room(sid, text_room(cid), namespace=sock.ns)
        refusal = await self._recheck(sid, sock, uid, cid, Perm.READ_MESSAGE_HISTORY, "text", seen)
        if refusal is not None and refusal.code == "session_ended":
            await self._end_socket(sid, sock, refusal.message, refusal.code)
            return None
        if refusal is not None:
            await self.sio.leave_room(sid, text_room(cid), namespace=sock.ns)
            raise refusal
        if not self._connected(sid, sock.ns):
            return None
        sock.texts.add(cid)
        subscribed: ChannelRef = {"channelId": cid}
        await self.sio.emit("subscribed", subscribed, to=sid, namespace=sock.ns)
        return None

    @_handler
    async def on_unsubscribe(self, sid: str, sock: Sock, channel_id: object = None, *_rest: object) -> None:
        if channel_id is None:
            raise EventError("unsubscribe-channel needs a channelId", "invalid_channel_id")
        cid = parse_channel_id(channel_id, "channelId")
        await self.sio.leave_room(sid, text_room(cid), namespace=sock.ns)
        sock.texts.discard(cid)
        unsubscribed: ChannelRef = {"channelId": cid}
        await self.sio.emit("unsubscribed", unsubscribed, to=sid, namespace=sock.ns)
        return None

    @_handler
    async def on_typing(self, sid: str, sock: Sock, channel_id: object = None, *_rest: object) -> None:
        if channel_id is None:
            raise EventError("typing needs a channelId", "invalid_channel_id")
        await self.typing.typing(sid, sock, parse_channel_id(channel_id, "channelId"))
        return None

    # what the REST side tells us (realtime/hooks.py) -------------------------------------
    async def _drop_text(self, uid: int, channel_ids: list[int] | None) -> None:
        for ns, sid in await self.store.user_socks(uid):
            sock = self.socks.get(sid)
            if channel_ids is None:
                targets = list(sock.texts) if sock else []
            else:
                targets = channel_ids
            for cid in targets:
                await self.sio.leave_room(sid, text_room(cid), namespace=ns)
                if sock:
                    sock.texts.discard(cid)

    async def user_gone(self, user_id: int) -> None:
        """A blocked or deleted account: none of its sockets passes the token check any more."""
        await self.revalidate_user_sockets(user_id, "Your account can no longer be used", "account_unavailable")

    async def revalidate_user_sockets(self, user_id: int, message: str | None = None,
                                      code: str = "session_ended") -> None:
        """Check every socket of the user again, here and (through a notice) in every other
        process, with the token check that identified it; end those that fail."""
        message = message or SESSION_ENDED
        await self.store.rights_changed()
        await self._revalidate_here(user_id, message, code)
        await self.store.publish({"kind": "revalidate-user", "userId": user_id, "message": message, "code": code})

    async def _revalidate_here(self, user_id: int, message: str, code: str) -> None:
        self.revalidations += 1
        verdicts: dict[str | None, bool] = {}
        for sid, sock in list(self.socks.items()):
            if sock.user_id != user_id:
                continue
            if sock.token not in verdicts:
                user = await auth.user_for_token(sock.token)
                verdicts[sock.token] = user is not None and user.id == user_id
            if not verdicts[sock.token]:
                await self._end_socket(sid, sock, message, code)

    async def _end_socket(self, sid: str, sock: Sock, message: str, code: str) -> None:
        """A socket of this process whose session ended: out of its voice room (the room gets
        `user-disconnected`), out of every live-message channel, then `error` and disconnect."""
        entry = await self.store.leave(sid)
        if entry is not None:
            await self.sio.leave_room(sid, voice_room(entry["cid"]), namespace=entry["ns"])
            await self._broadcast(entry["cid"], "user-disconnected", sid)
        for cid in sorted(sock.texts):
            await self.sio.leave_room(sid, text_room(cid), namespace=sock.ns)
        sock.texts.clear()
        # Straight to the socket (it is ours): through Redis it could come after the disconnect.
        ended: SocketError = {"message": message, "code": cast(Any, code)}  # (a code the contract lists)
        await self.sio.emit("error", ended, to=sid, namespace=sock.ns,
                            ignore_queue=True)
        await self.sio.disconnect(sid, namespace=sock.ns, ignore_queue=True)
        self.refresh_gauges()

    async def _entries_of(self, socks: list[tuple[str, str]]) -> list[Entry]:
        out = []
        for _ns, sid in socks:
            e = await self.store.entry(sid)
            if e is not None:
                out.append(e)
        return out

    async def member_removed(self, server_id: int, user_id: int) -> None:
        await self.store.rights_changed()
        socks = await self.store.user_socks(user_id)
        for e in await self._entries_of(socks):
            if e["serverId"] == server_id:
                await self.evict(e, "You were removed from this server", "removed_from_server")
        await self._drop_text(user_id, sorted(await self._channel_ids(server_id)))
        await self.presence_rooms(server_id, user_id, joined=False)

    async def presence_rooms(self, server_id: int, user_id: int, joined: bool) -> None:
        """A membership began or ended: the user's sockets enter or leave the server's presence
        room here, and in the other processes through a notice."""
        await self.presence.rooms_changed(server_id, user_id, joined)
        await self.store.publish({"kind": "presence-rooms", "serverId": server_id, "userId": user_id,
                                  "joined": joined})
        if joined:
            await self.presence.introduce(server_id, user_id)

    @staticmethod
    async def _channel_ids(server_id: int) -> set[int]:
        async with sql.connection() as conn:
            return await storage.channel_ids(conn, server_id)

    async def _still_allowed(self, uid: int, cid: int, need: int) -> bool:
        async with sql.connection() as conn:
            try:
                await read_channel_access(conn, uid, cid, need)
            except (Forbidden, NotFound):
                return False
        return True

    async def permissions_changed(self, server_id: int, user_id: int | None = None) -> None:
        """Voice rooms in every process (the participant store is shared); live message
        subscriptions here, and in the other processes through a notice (they are per process)."""
        await self.store.rights_changed()
        for e in await self.store.all_entries():
            if e["serverId"] != server_id or (user_id is not None and e["userId"] != user_id):
                continue
            if not await self._still_allowed(e["userId"], e["cid"], Perm.CONNECT):
                await self.evict(e, "You no longer have permission to connect to this voice channel",
                                 "missing_permission")
        await self._recheck_texts(server_id, user_id)
        await self.store.publish({"kind": "recheck-texts", "serverId": server_id, "userId": user_id})

    async def _recheck_texts(self, server_id: int, user_id: int | None) -> None:
        """This process's sockets subscribed to the server's channels: still allowed to read?"""
        if not any(sock.texts for sock in self.socks.values()):
            return
        mine = await self._channel_ids(server_id)
        for sid, sock in list(self.socks.items()):
            if sock.user_id is None or (user_id is not None and sock.user_id != user_id):
                continue
            for cid in sorted(sock.texts & mine):
                if not await self._still_allowed(sock.user_id, cid, Perm.READ_MESSAGE_HISTORY):
                    await self.sio.leave_room(sid, text_room(cid), namespace=sock.ns)
                    sock.texts.discard(cid)
                    await self.sio.emit("unsubscribed", {"channelId": cid}, to=sid, namespace=sock.ns)

    async def server_closed(self, server_id: int) -> None:
        """A server was blocked or deleted: its voice rooms are emptied, and the live message
        events of its channels end here and (through a notice) in the other processes. The
        channels are known from the subscriptions themselves: a deleted server's rows are gone."""
        await self.store.rights_changed()
        for e in await self.store.all_entries():
            if e["serverId"] == server_id:
                await self.evict(e, "This server is no longer available", "server_unavailable")
        await self._close_texts(server_id)
        await self.store.publish({"kind": "server-closed", "serverId": server_id})

    async def _close_texts(self, server_id: int) -> None:
        """This process's live-message subscriptions to the server's channels end."""
        closed = sorted(cid for cid, owner in self.text_servers.items() if owner == server_id)
        for cid in closed:
            del self.text_servers[cid]
            for ns in NAMESPACES:
                await self.sio.close_room(text_room(cid), namespace=ns)
        for sock in self.socks.values():
            sock.texts.difference_update(closed)

    async def channel_type_changed(self, channel_id: int, channel_type: str) -> None:
        """A channel's type changed: a voice room that is no longer voice is emptied, live
        message events of one that is no longer text end."""
        await self.store.rights_changed()
        if channel_type != "voice":
            for e in await self.store.participants(channel_id):
                await self.evict(e, "This channel is no longer a voice channel", "not_a_voice_channel")
        if channel_type != "text":
            for ns in NAMESPACES:
                await self.sio.close_room(text_room(channel_id), namespace=ns)

    async def channel_deleted(self, channel_id: int) -> None:
        await self.store.rights_changed()
        for e in await self.store.participants(channel_id):
            await self.evict(e, "This voice channel was deleted", "channel_deleted")
        for ns in NAMESPACES:
            await self.sio.close_room(text_room(channel_id), namespace=ns)

    async def message_event(self, event: str, channel_id: int, payload: dict[str, Any]) -> None:
        if event == "message-deleted":
            payload = {"id": payload.get("id"), "channelId": channel_id}
        elif event == "message-created" and isinstance(payload.get("userId"), int):
            await self.typing.message_posted(channel_id, payload["userId"])
        for ns in NAMESPACES:
            await self.sio.emit(event, payload, room=text_room(channel_id), namespace=ns)

    async def voice_state_changed(self, server_id: int, user_id: int, is_muted: bool, is_deafened: bool) -> None:
        await self.store.rights_changed()  # a join that read the mute before re-reads it (on_join_room)
        for e in await self._entries_of(await self.store.user_socks(user_id)):
            if e["serverId"] != server_id:
                continue
            fields = {"serverMuted": bool(is_muted)}
            if is_muted:
                fields["micToggle"] = False
            updated = await self.store.update(e["sid"], **fields)
            if updated is not None and is_muted:
                await self._broadcast(e["cid"], "mic-toggled", {"socketId": e["sid"], "micToggle": False})
