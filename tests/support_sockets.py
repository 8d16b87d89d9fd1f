"""Socket.IO test support: a recording client that holds every event it receives to
asyncapi/projectvoice.yaml, and the scenario helpers the socket tests share (a voice setup,
subscriptions, permission bits taken away). The `clients` fixture is in tests/conftest.py."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
import json
import time
from pathlib import Path
from urllib.parse import quote

import jsonschema
import socketio
import yaml

from tests.support import Account, Api, create_channel, create_server, join_server, unique

ROOT = Path(__file__).resolve().parent.parent
ASYNCAPI = yaml.safe_load((ROOT / "asyncapi" / "projectvoice.yaml").read_text())
SCHEMAS = ASYNCAPI["components"]["schemas"]


def resolve(ref: str) -> tuple[str, dict]:
    """Follow `$ref`s from a local JSON pointer; the final pointer and the node."""
    while True:
        node = ASYNCAPI
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        if "$ref" not in node:
            return ref, node
        ref = node["$ref"]


def _server_events() -> dict[str, str]:
    """Event name -> JSON pointer of its payload schema, for every message of the document's
    `send` operations (what the server emits), so the check follows the document as it changes."""
    events = {}
    for op in ASYNCAPI["operations"].values():
        if op["action"] != "send":
            continue
        for msg in op["messages"]:
            pointer, message = resolve(msg["$ref"])
            events[message["name"]] = pointer + "/payload"
    return events


EVENT_SCHEMAS = _server_events()
_VALIDATORS: dict[str, jsonschema.Draft202012Validator] = {}


def validate_event(event: str, args: tuple) -> None:
    """An emitted event must be one the server `send`s in asyncapi/projectvoice.yaml, and its
    arguments must match the message payload (an array payload lists the arguments in order,
    any other payload is the event's single argument)."""
    assert event in EVENT_SCHEMAS, f"server emitted an undocumented event {event!r}"
    pointer = EVENT_SCHEMAS[event]
    if pointer not in _VALIDATORS:
        _VALIDATORS[pointer] = jsonschema.Draft202012Validator({**ASYNCAPI, "$ref": pointer},
                                                               format_checker=jsonschema.FormatChecker())
    if resolve(pointer)[1].get("type") == "array":
        _VALIDATORS[pointer].validate(list(args))
    else:
        assert len(args) == 1, f"{event} carried {len(args)} arguments"
        _VALIDATORS[pointer].validate(args[0])


class Client:
    """One Socket.IO client recording (and validating) every event it receives.

    form "seed": io('http://host/socket', {auth: {token}}) -> namespace /socket on /socket.io
    form "desktop": io(base, {path: '/socket', query: {token}}) -> namespace / on /socket
    """

    def __init__(self, base: str, form: str = "seed", token: str | None = None, transports=("websocket",)):
        self.base, self.form, self.token, self.transports = base, form, token, list(transports)
        self.ns = "/socket" if form == "seed" else "/"
        self.sio = socketio.AsyncClient(reconnection=False)
        self.log: list[tuple[str, tuple]] = []
        self.taken = 0
        self.changed = asyncio.Event()
        self.violations: list[str] = []
        self.sio.on("*", self._any, namespace=self.ns)

    async def _any(self, event, *args):
        # python-socketio logs and swallows a handler's exception, so a violation is kept and
        # raised by the next wait() and by close(): it fails the test with its own message.
        try:
            validate_event(event, args)
        except (AssertionError, jsonschema.ValidationError) as e:
            self.violations.append(f"{event} {args!r}: {getattr(e, 'message', e)}")
        self.log.append((event, args))
        self.changed.set()

    def check_events(self) -> None:
        assert not self.violations, "events that break asyncapi/projectvoice.yaml:\n" + "\n".join(self.violations)

    async def connect(self) -> Client:
        if self.form == "seed":
            await self.sio.connect(self.base, namespaces=[self.ns], socketio_path="socket.io",
                                   auth={"token": self.token} if self.token is not None else None,
                                   transports=self.transports, wait_timeout=10)
        else:
            url = f"{self.base}?token={quote(self.token or '')}"
            await self.sio.connect(url, namespaces=[self.ns], socketio_path="socket",
                                   transports=self.transports, wait_timeout=10)
        return self

    @property
    def sid(self) -> str:
        return self.sio.get_sid(self.ns)

    async def emit(self, event: str, *args) -> None:
        await self.sio.emit(event, tuple(args) if len(args) != 1 else args[0], namespace=self.ns)

    async def wait(self, event: str, timeout: float = 10.0, where=None):
        """The next not-yet-taken occurrence of `event` (matching `where`); its argument."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_events()
            for i, (ev, args) in enumerate(self.log):
                if i >= self.taken and ev == event and (where is None or where(args[0])):
                    self.log[i] = ("<taken>", args)
                    return args[0]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {event!r} within {timeout}s; got {self.log[self.taken:]}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                pass

    async def quiet(self, event: str, within: float = 0.4) -> None:
        await asyncio.sleep(within)
        got = [a for ev, a in self.log if ev == event]
        assert not got, f"unexpected {event}: {got}"

    def events(self, event: str) -> list:
        return [a[0] for ev, a in self.log if ev == event]

    async def join(self, room, token: str | None = None) -> dict:
        if token is None:
            await self.emit("join-room", room)
        else:
            await self.emit("join-room", room, token)
        return await self.wait("created")

    async def close(self) -> None:
        if self.sio.connected:
            try:
                await asyncio.wait_for(self.sio.disconnect(), 5)
            except Exception:
                pass
        self.check_events()


# scenario helpers -----------------------------------------------------------------------------
def add_members(api: Api, owner: Account, server_id: int, *members: Account) -> None:
    """Members join through an invite, as people do."""
    join_server(api, owner, server_id, *members)


def member_id(api: Api, owner: Account, server_id: int, user_id: int) -> int:
    r = api.get(f"/servers/{server_id}", owner.token)
    assert r.status_code == 200, r.text
    return next(m["id"] for m in r.json()["members"] if m["userId"] == user_id)


def voice_setup(api: Api, n_members: int = 1):
    """An owner, members, one server with a voice and a text channel."""
    owner = api.register()
    members = [api.register() for _ in range(n_members)]
    sv = create_server(api, owner)
    add_members(api, owner, sv["id"], *members)
    voice = create_channel(api, owner, sv["id"], type="voice")
    text = create_channel(api, owner, sv["id"], type="text")
    return owner, members, sv, voice, text


# permissions taken away while connected -----------------------------------------------------------
CONNECT, READ_MESSAGE_HISTORY = 1 << 20, 1 << 16


def take_bits(api: Api, owner: Account, server_id: int, bits: int, names=("@everyone", "Member")) -> None:
    for role in api.get(f"/servers/{server_id}/roles", owner.token).json():
        if role["name"] in names:
            r = api.patch(f"/servers/{server_id}/roles/{role['id']}", owner.token,
                          json={"permissions": str(int(role["permissions"]) & ~bits)})
            assert r.status_code == 200, r.text


async def subscribe(client: Client, channel_id: int) -> None:
    await client.emit("subscribe-channel", channel_id)
    assert await client.wait("subscribed") == {"channelId": channel_id}


async def ends_live_messages(api: Api, poster: Account, client: Client, channel_id: int) -> None:
    """The client was told it is unsubscribed, and a message posted next does not reach it."""
    assert await client.wait("unsubscribed") == {"channelId": channel_id}
    r = api.post("/messages", poster.token, json={"channelId": channel_id, "content": unique("unseen")})
    assert r.status_code == 201, r.text
    await client.quiet("message-created", 0.8)


# presence ---------------------------------------------------------------------------------------
def presence_of(client: Client, user_id: int) -> list[str]:
    """Every presence-updated about the user this client received, taken by wait() or not."""
    out = []
    for ev, args in client.log:
        e = args[0] if args else None
        if ev in ("presence-updated", "<taken>") and isinstance(e, dict) and set(e) == {"userId", "status"} \
                and e["userId"] == user_id:
            out.append(e["status"])
    return out


async def quiet_about(client: Client, user_id: int, within: float = 0.5) -> None:
    """No presence-updated about `user_id` that was not taken yet (a socket also hears about
    its own user: its own view)."""
    await asyncio.sleep(within)
    got = [a[0] for ev, a in client.log if ev == "presence-updated" and a[0]["userId"] == user_id]
    assert not got, f"unexpected presence-updated about {user_id}: {got}"


async def wait_presence(client: Client, user_id: int, status: str, timeout: float = 10) -> None:
    got = await client.wait("presence-updated", timeout, where=lambda e: e["userId"] == user_id)
    assert got == {"userId": user_id, "status": status}


def member_status(api: Api, viewer: Account, server_id: int, user_id: int) -> str:
    """The user's status in the three REST answers that list a server's members."""
    seen = set()
    r = api.get(f"/servers/{server_id}", viewer.token)
    seen.add(next(m["user"]["status"] for m in r.json()["members"] if m["userId"] == user_id))
    r = api.get(f"/serverMembers/{server_id}/members", viewer.token)
    seen.add(next(m["user"]["status"] for m in r.json() if m["userId"] == user_id))
    r = api.get("/servers", viewer.token)
    sv = next(s for s in r.json() if s["id"] == server_id)
    seen.add(next(m["user"]["status"] for m in sv["members"] if m["userId"] == user_id))
    assert len(seen) == 1, seen
    return seen.pop()


async def eventually_status(api: Api, viewer: Account, server_id: int, user_id: int, want: str,
                            timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := member_status(api, viewer, server_id, user_id)) != want:
        assert asyncio.get_running_loop().time() < deadline, f"status {got!r}, wanted {want!r}"
        await asyncio.sleep(0.1)


# Node.js clients (tests/js) ------------------------------------------------------------------------
JS = ROOT / "tests" / "js"


class NodeProc:
    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.lines: list[dict] = []

    @classmethod
    async def start(cls, node: str, script: str, *args) -> NodeProc:
        proc = await asyncio.create_subprocess_exec(node, str(JS / script), *map(str, args), cwd=str(JS),
                                                    stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE)
        return cls(proc)

    async def until(self, pred, timeout: float = 15.0) -> dict:
        """Read lines until one matches; every received event is validated on the way."""
        for line in self.lines:
            if pred(line):
                return line

        async def read():
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"node exited; saw {self.lines}")
                line = json.loads(raw)
                if "recv" in line:
                    validate_event(line["recv"], tuple(line["args"]))
                self.lines.append(line)
                if pred(line):
                    return line

        return await asyncio.wait_for(read(), timeout)

    def received(self, event: str) -> list:
        return [line["args"][0] for line in self.lines if line.get("recv") == event]

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.stdin.close()
            rest = b""
            try:
                rest = await asyncio.wait_for(self.proc.stdout.read(), 5)
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
            # Events no until() read are held to the AsyncAPI document as well.
            for raw in rest.splitlines():
                line = json.loads(raw)
                if "recv" in line:
                    validate_event(line["recv"], tuple(line["args"]))
                self.lines.append(line)


@asynccontextmanager
async def presence_clients(node: str, base: str | None = None):
    """Yields start(token, base=`base`): a tests/js/presence_client.mjs client for that token,
    returned once connected; every client started is stopped on leaving (its last events are
    validated then too)."""
    procs: list[NodeProc] = []

    async def start(token: str, at: str | None = None) -> NodeProc:
        p = await NodeProc.start(node, "presence_client.mjs", at or base, token)
        procs.append(p)
        await p.until(lambda x: "connected" in x)
        return p

    try:
        yield start
    finally:
        for p in procs:
            await p.stop()


def recv(event, where=lambda a: True):
    return lambda line: line.get("recv") == event and where(line["args"][0])


async def node_send(p: NodeProc, cmd: dict) -> None:
    """One command line to a tests/js driver that answers {done: line} (presence_client.mjs);
    returns once it was carried out, so everything printed before is in `p.lines`."""
    line = json.dumps(cmd)
    p.proc.stdin.write((line + "\n").encode())
    await p.proc.stdin.drain()
    await p.until(lambda x: x.get("done") == line)


def presence_about(user_id: int, status: str | None = None):
    """until() predicate: a presence-updated about `user_id` (with that status)."""
    return recv("presence-updated", lambda a: a["userId"] == user_id and (status is None or a["status"] == status))


def node_presence(p: NodeProc, user_id: int) -> list[str]:
    """Every presence-updated status about the user this Node client printed so far."""
    return [e["status"] for e in p.received("presence-updated") if e["userId"] == user_id]


@asynccontextmanager
async def socket_clients(base: str):
    """`make(token=None, form="seed", **kw)` connects a Client to `base`; all are closed (and
    their events checked) on the way out. The `clients` and `sockets` fixtures use it."""
    made: list[Client] = []

    async def make(token=None, form="seed", **kw) -> Client:
        c = Client(base, form=form, token=token, **kw)
        made.append(c)
        return await c.connect()

    try:
        yield make
    finally:
        for c in made:
            await c.close()
