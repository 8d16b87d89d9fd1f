"""Several processes (REDIS_URL): python-socketio's Redis manager with a channel per process.

python-socketio's AsyncRedisManager publishes every emit on one channel that every process reads
and decodes, even an emit to a socket of the sending process. Here (in the manner of socket.io's
own cluster adapters):

- An emit to a socket of this process is delivered here and never touches Redis.
- Every socket's process is written in a directory in Redis (`<prefix>sid:<sid>` -> the process's
  host id) when it connects, and removed when it disconnects. An emit to a socket of another process
  (a signal across processes, an `error` to an evicted participant) is published on that process's
  own channel (`<channel>#<host id>`) only: one process decodes it, whatever the number of processes.
  A list of sockets (the join fan-out) is split by process: one message per process concerned.
- `user-disconnected` passing through (from this process or another) tells the participant
  store's per-process memory of who is where to forget the socket (RedisStore.forget) first.
- Emits to rooms (voice:<id>, text:<id>) and everything else python-socketio publishes (room
  changes of remote sockets, close_room, disconnects) still go on the shared channel, which every
  process reads, as before.
- Everything this process publishes goes through one FIFO queue drained by one publisher task,
  which sends what has gathered as one pipeline (one round trip for many PUBLISHes), in order: the
  order of messages per channel, and across channels as a subscriber sees them, is the order they
  were emitted in. An emit to a socket of another process (a signal across processes) is queued
  without waiting for Redis: the handler goes on while the publisher sends. Everything else
  (room emits, disconnects, room changes) waits until its pipeline has been sent, as when it was
  published directly (a kick's `user-disconnected` is out before the kick's response). The queue
  is bounded (_OUTBOX_MAX): when full, an emit waits for room (backpressure, nothing dropped). A
  pipeline that fails is retried once on a new connection, as python-socketio's own publish, then
  logged with the number of messages lost.
- A process renews its directory entries every heartbeat (VOICE_HEARTBEAT_SECONDS); they expire
  after three missed beats, so a crashed process leaves no entries behind. A lookup that finds no
  entry (a socket that is gone, or a room name) falls back to the shared channel, so nothing is
  lost by a missing entry, only the targeting.

Each process counts the messages it takes from Redis, by channel (shared or own): GET /metrics,
projectvoice_socket_cluster_messages_total (tests/test_voice_cluster.py checks with it that a
signal across processes is decoded by exactly one other process).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import orjson
import socketio

from core.observability import CLUSTER_MESSAGES
from realtime import fastpath

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger("projectvoice.realtime")

_CACHE_MAX = 100_000
_OUTBOX_MAX = 10_000  # messages queued for Redis before emitting waits for room
_BATCH_MAX = 500  # PUBLISHes per pipeline


class ClusterManager(socketio.AsyncRedisManager):
    name = "projectvoice-cluster"

    def __init__(self, url: str, channel: str, ttl: float = 15.0, **kwargs: Any) -> None:
        super().__init__(url, channel=channel, **kwargs)
        self.ttl = max(2, int(round(ttl)))
        self.own_channel = f"{channel}#{self.host_id}"
        self.prefix = f"pv:sio:{channel}:"
        self.hosts: dict[str, str] = {}  # remote sid -> host id (a sid never changes process)
        self.local: set[str] = set()  # sids of this process in the directory
        self._renew_task: Any = None  # the server's background task (an asyncio.Task under ASGI)
        # (channel, text, future of a waiting publisher or None), FIFO: see the module's doc
        self._outbox: asyncio.Queue[tuple[str, str, asyncio.Future[None] | None]] | None = None
        self._publisher_task: asyncio.Task[None] | None = None
        self._pub_conn: tuple[Any, Any] | None = None  # (pool, connection) held by the publisher

    # the directory ------------------------------------------------------------------------
    def _key(self, sid: str) -> str:
        return f"{self.prefix}sid:{sid}"

    def _r(self) -> aioredis.Redis:
        if not self.connected:
            self._redis_connect()
        return self.redis

    def _redis_connect(self) -> Any:  # (as python-socketio's, untyped: nothing)
        """As python-socketio's, with a pool that waits for a free connection instead of failing
        (200 sockets joining at once would otherwise exceed the default pool of 100)."""
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            return super()._redis_connect()
        import redis.asyncio as aioredis  # only with REDIS_URL: one process runs without Redis code

        pool = aioredis.BlockingConnectionPool.from_url(self.redis_url, max_connections=64, timeout=20,
                                                        **self.redis_options)
        self.redis = aioredis.Redis(connection_pool=pool)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True

    def initialize(self) -> None:
        super().initialize()
        if not self.write_only:
            self._renew_task = self.server.start_background_task(self._renew_loop)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                sids = list(self.local)
                if sids:
                    async with self._r().pipeline(transaction=False) as p:
                        for sid in sids:
                            p.expire(self._key(sid), self.ttl)
                        await p.execute()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("socket directory renewal failed")

    async def pre_connect(self, eio_sid: str, namespace: str) -> Any:  # the sid, or None (python-socketio's)
        sid = await super().pre_connect(eio_sid, namespace)
        if sid is not None:
            self.local.add(sid)
            try:
                await self._r().set(self._key(sid), self.host_id, ex=self.ttl)
            except Exception:
                log.exception("socket directory: could not record %s", sid)
        return sid

    async def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> Any:
        was_local = self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace)
        result = await super().disconnect(sid, namespace, **kwargs)
        if was_local and sid in self.local:
            self.local.discard(sid)
            try:
                await self._r().delete(self._key(sid))
            except Exception:
                log.exception("socket directory: could not remove %s", sid)
        return result

    async def _hosts_of(self, sids: list[str]) -> list[str | None]:
        """Each socket's host id (None: not in the directory), in one round trip for those not cached."""
        missing = [s for s in sids if s not in self.hosts]
        if missing:
            raws = await self._r().mget([self._key(s) for s in missing])
            if len(self.hosts) + len(missing) >= _CACHE_MAX:
                self.hosts.clear()
            for s, raw in zip(missing, raws, strict=True):
                if raw is not None:
                    self.hosts[s] = raw.decode() if isinstance(raw, bytes) else raw
        return [self.hosts.get(s) for s in sids]

    async def _host_of(self, sid: str) -> str | None:
        return (await self._hosts_of([sid]))[0]

    # emits ------------------------------------------------------------------------------
    def _is_local_sid(self, sid: object, namespace: str) -> bool:
        return isinstance(sid, str) and self.is_connected(sid, namespace)

    async def emit(self, event: str, data: Any, namespace: str | None = None, room: Any = None,
                   skip_sid: Any = None, callback: Any = None, to: Any = None, **kwargs: Any) -> Any:
        room = to or room
        namespace = namespace or "/"
        if kwargs.get("ignore_queue") or callback is not None:
            return await super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid,
                                      callback=callback, **kwargs)
        if isinstance(room, str) and ":" not in room:
            # One socket (socket ids never hold ':', the app's room names always do).
            if self._is_local_sid(room, namespace):
                return await self._deliver(event, data, namespace, room, skip_sid)
            host = await self._host_of(room)
            if host is not None:
                if host != self.host_id:
                    await self._publish_to(host, event, data, namespace, room, skip_sid)
                return None  # this process's own entry for a socket no longer here: gone
        elif isinstance(room, list) and room and all(isinstance(s, str) and ":" not in s for s in room):
            # Several sockets (the join fan-out): those here now, the rest once per process.
            here = [s for s in room if self._is_local_sid(s, namespace)]
            if here:
                await self._deliver(event, data, namespace, here, skip_sid)
            by_host: dict[str, list[str]] = {}
            unknown = []
            here_set = set(here)
            others = [s for s in room if s not in here_set]
            for s, host in zip(others, await self._hosts_of(others) if others else [], strict=True):
                if host is None:
                    unknown.append(s)
                elif host != self.host_id:
                    by_host.setdefault(host, []).append(s)
            for host, sids in by_host.items():
                await self._publish_to(host, event, data, namespace, sids, skip_sid)
            if not unknown:
                return None
            room = unknown
        # A room, or sockets the directory does not know: python-socketio's own way (delivered
        # here, and published on the shared channel for every process).
        return await super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid, **kwargs)

    async def _deliver(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any) -> None:
        if fastpath.enabled():
            await fastpath.fast_emit(self, event, data, namespace, room, skip_sid)
        else:
            await socketio.AsyncManager.emit(self, event, data, namespace, room=room, skip_sid=skip_sid)

    async def _publish_to(self, host: str, event: str, data: Any, namespace: str, room: Any, skip_sid: Any) -> None:
        if isinstance(data, tuple):
            data = list(data)
        else:
            data = [data]
        message = {"method": "emit", "event": event, "data": data, "binary": False, "namespace": namespace,
                   "room": room, "skip_sid": skip_sid, "callback": None, "host_id": self.host_id}
        try:
            # orjson refuses bytes: a payload it encodes has no binary parts, found without
            # walking it first (a walk per signal that crosses processes).
            text: str | None = orjson.dumps(message).decode()
        except TypeError:
            text = None
            if socketio.packet.Packet.data_is_binary(data):  # not used by this app: the shared way
                await super().emit(event, data[0] if len(data) == 1 else tuple(data), namespace=namespace,
                                   room=room, skip_sid=skip_sid)
                return
        await self._publish(message, channel=f"{self.channel}#{host}", text=text, wait=False)

    async def can_disconnect(self, sid: str, namespace: str | None) -> Any:  # a bool (python-socketio's)
        if self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace):
            return await super().can_disconnect(sid, namespace)
        host = await self._host_of(sid) if isinstance(sid, str) else None
        if host is not None and host != self.host_id:
            await self._publish({"method": "disconnect", "sid": sid, "namespace": namespace or "/",
                                 "host_id": self.host_id}, channel=f"{self.channel}#{host}")
            return False
        return await super().can_disconnect(sid, namespace)

    # Redis ------------------------------------------------------------------------------
    async def _publish(self, data: dict[str, Any], channel: str | None = None, text: str | None = None,
                       wait: bool = True) -> None:
        """Queue a message for the publisher task; with `wait`, return once it has been sent (or
        given up on), as python-socketio's publish did. Without, return at once."""
        item_text = self.json.dumps(data) if text is None else text
        outbox = self._outbox
        if outbox is None or self._publisher_task is None or self._publisher_task.done():
            outbox = self._outbox = asyncio.Queue(_OUTBOX_MAX)
            self._publisher_task = asyncio.ensure_future(self._publisher(outbox))
        future = asyncio.get_running_loop().create_future() if wait else None
        item = (channel or self.channel, item_text, future)
        try:
            outbox.put_nowait(item)
        except asyncio.QueueFull:
            await outbox.put(item)  # backpressure: wait for room, never drop
        if future is not None:
            await future

    async def _publisher(self, outbox: asyncio.Queue[tuple[str, str, asyncio.Future[None] | None]]) -> None:
        while True:
            batch = [await outbox.get()]
            while len(batch) < _BATCH_MAX and not outbox.empty():
                batch.append(outbox.get_nowait())
            try:
                await self._send(batch)
            except asyncio.CancelledError:
                for _c, _t, future in batch:
                    if future is not None and not future.done():
                        future.cancel()
                raise
            except Exception:  # pragma: no cover (_send logs its own failures)
                log.exception("cluster publisher: unexpected error")
            for _c, _t, future in batch:
                if future is not None and not future.done():
                    future.set_result(None)

    async def _send(self, batch: list[tuple[str, str, asyncio.Future[None] | None]]) -> None:
        # On a connection of its own, held by the publisher: redis-py's publish and pipeline take
        # a connection from the pool and wrap each command in retries, about half the CPU of a
        # small batch (measured in-process, 1-16 PUBLISHes: 33 vs 64 us for one, 16 vs 29 us each
        # for four).
        for retries_left in range(1, -1, -1):  # two attempts, as python-socketio's own
            try:
                if self._pub_conn is None:
                    pool = self._r().connection_pool
                    self._pub_conn = (pool, await pool.get_connection())
                conn = self._pub_conn[1]
                await conn.send_packed_command(conn.pack_commands([("PUBLISH", c, t) for c, t, _f in batch]),
                                               check_health=False)
                for _ in batch:
                    await conn.read_response()
                return
            except asyncio.CancelledError:
                await self._drop_pub_conn()
                raise
            except Exception as exc:
                await self._drop_pub_conn()
                if retries_left == 0:
                    self.connected = False
                    self._get_logger().error("Cannot publish to redis... giving up (%d messages lost)",
                                             len(batch), extra={"redis_exception": str(exc)})

    async def _drop_pub_conn(self) -> None:
        """The publisher's connection is in an unknown state (an error mid-batch): never reuse it."""
        if self._pub_conn is not None:
            pool, conn = self._pub_conn
            self._pub_conn = None
            try:
                await conn.disconnect()
                await pool.release(conn)
            except Exception:
                pass

    async def _redis_listen_with_retries(self) -> AsyncIterator[dict[str, Any]]:
        retry_sleep = 1
        subscribed = False
        while True:
            try:
                if not subscribed:
                    self._redis_connect()
                    await self.pubsub.subscribe(self.channel, self.own_channel)
                    subscribed = True
                    retry_sleep = 1
                async for message in self.pubsub.listen():
                    yield message
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._get_logger().error(f"Cannot receive from redis... retrying in {retry_sleep} secs",
                                         extra={"redis_exception": str(exc)})
                subscribed = False
                await asyncio.sleep(retry_sleep)
                retry_sleep = min(60, retry_sleep * 2)

    async def _listen(self) -> AsyncIterator[bytes]:
        shared, own = self.channel.encode(), self.own_channel.encode()
        async for message in self._redis_listen_with_retries():
            if message["type"] == "message" and "data" in message and message["channel"] in (shared, own):
                kind = "own" if message["channel"] == own else "shared"
                CLUSTER_MESSAGES.labels(channel=kind).inc()
                yield message["data"]

    # Called with a socket's id when `user-disconnected` for it passes through this process,
    # before anyone here gets it (realtime/store.py RedisStore.forget).
    on_departure: Callable[[str], None] | None = None

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        if message.get("event") == "user-disconnected" and self.on_departure is not None:
            data = message.get("data")
            sid = data[0] if isinstance(data, list) and data else data
            if isinstance(sid, str):
                self.on_departure(sid)
        if message.get("callback") is None and not message.get("binary") and fastpath.enabled():
            data = message["data"]
            if isinstance(data, list):
                data = data[0] if len(data) == 1 else tuple(data)
            await fastpath.fast_emit(self, message["event"], data, message.get("namespace"),
                                     message.get("room"), message.get("skip_sid"))
            return
        await super()._handle_emit(message)
