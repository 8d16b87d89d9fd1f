"""Typing notices: `typing(channelId)` from a subscribed socket becomes `user-typing
{channelId, userId, username}` for the channel's other live subscribers.

- The sender must be subscribed to the text channel on this socket (`subscribe-channel`), and
  hold SEND_MESSAGES there (checked when a notice is relayed, so at most once per 3 s).
- At most one relay per user and channel every THROTTLE_SECONDS: in memory, or with Redis one
  `SET NX PX` per event, so the limit holds across processes. Events inside the window are
  dropped silently (the client repeats while typing; listeners drop a notice after about 8 s).
- Not echoed: none of the typing user's own sockets get it.
- Posting a message ends typing: listeners drop the notice when the author's `message-created`
  for that channel arrives (no separate event), and the server clears the user's window in that
  channel, so typing again right after posting is relayed at once.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import socketio

from generated.events import UserTyping

from models.storage import sql
from models.permissions import Perm, read_channel_access
from models.storage import voice as storage
from core.errors import BadRequest
from realtime.store import Store

if TYPE_CHECKING:
    from realtime.voice import Sock

THROTTLE_SECONDS = 3.0


class Typing:
    def __init__(self, sio: socketio.AsyncServer, store: Store, namespaces: tuple[str, ...],
                 room_of: Callable[[int], str]) -> None:
        self.sio = sio
        self.store = store
        self.namespaces = namespaces
        self.room_of = room_of  # channel id -> its live-message room (realtime/voice.py text_room)
        self.r = getattr(store, "r", None)
        self._last: dict[tuple[int, int], float] = {}

    def _key(self, uid: int, cid: int) -> str:
        return f"pv:ty:{uid}:{cid}"

    async def _take_window(self, uid: int, cid: int) -> bool:
        """True when no notice of this user in this channel went out in the last window."""
        if self.r is not None:
            return bool(await self.r.set(self._key(uid, cid), "1", nx=True, px=int(THROTTLE_SECONDS * 1000)))
        now = time.monotonic()
        if len(self._last) > 10_000:
            self._last = {k: t for k, t in self._last.items() if now - t < THROTTLE_SECONDS}
        last = self._last.get((uid, cid))
        if last is not None and now - last < THROTTLE_SECONDS:
            return False
        self._last[(uid, cid)] = now
        return True

    async def _give_back(self, uid: int, cid: int) -> None:
        if self.r is not None:
            await self.r.delete(self._key(uid, cid))
        else:
            self._last.pop((uid, cid), None)

    async def typing(self, sid: str, sock: Sock, cid: int) -> None:
        """`sock` is the socket's realtime.voice.Sock; `cid` a parsed channel id."""
        if sock.user_id is None or cid not in sock.texts:
            raise BadRequest("Subscribe to the channel (subscribe-channel) before sending typing",
                             "not_subscribed")
        uid = sock.user_id
        if not await self._take_window(uid, cid):
            return
        # Checked once per window: a socket without SEND_MESSAGES gets one `error` per window.
        async with sql.connection() as conn:
            await read_channel_access(conn, uid, cid, Perm.SEND_MESSAGES)
            username = await storage.username(conn, uid)
        if username is None:
            return
        own = [s for _ns, s in await self.store.user_socks(uid)] or [sid]
        if sid not in own:
            own.append(sid)
        payload: UserTyping = {"channelId": cid, "userId": uid, "username": username}
        for ns in self.namespaces:
            await self.sio.emit("user-typing", payload, room=self.room_of(cid), namespace=ns, skip_sid=own)

    async def message_posted(self, channel_id: int, user_id: int) -> None:
        """The author's message ends their typing: the next `typing` is relayed at once."""
        await self._give_back(user_id, channel_id)
