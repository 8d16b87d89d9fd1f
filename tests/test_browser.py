"""End to end through the reference web client (web/) in two headless Chromium browsers.

Two users of one server log in through the page, join the same voice channel and exchange real
WebRTC audio (Chromium's fake microphone) through our Socket.IO signalling: each side's
`inbound-rtp` statistics must show audio packets arriving, and growing. Without a working
`signal` relay no packet ever arrives and the test fails. Text messages must appear live in the
other browser. Screenshots go to test-artifacts/.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests import browser_setup
from tests.support import ROOT, create_channel, create_server, join_server
from tests.support_sockets import validate_event

pytestmark = pytest.mark.timeout(120)

ARTIFACTS = ROOT / "test-artifacts"

# Audio packets received from every peer connection of the page, by peer socket id.
INBOUND_AUDIO = """async () => {
  const out = {};
  for (const [id, peer] of window.pv.peers) {
    const stats = await peer.pc.getStats();
    let n = 0;
    stats.forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'audio') n += r.packetsReceived || 0; });
    out[id] = n;
  }
  return out;
}"""


# What each peer connection went through, for failure messages.
PEER_STATES = """() => [...window.pv.peers].map(([id, p]) => ({
  id, polite: p.polite, signaling: p.pc.signalingState, ice: p.pc.iceConnectionState,
  connection: p.pc.connectionState, local: p.pc.localDescription && p.pc.localDescription.type,
  remote: p.pc.remoteDescription && p.pc.remoteDescription.type, log: p.log.join(' '),
  status: document.querySelector('#status').textContent}))"""


@pytest.fixture(scope="module")
def browser():
    reason = browser_setup.ensure()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=browser_setup.CHROMIUM, args=browser_setup.ARGS, headless=True)
        except Error as e:
            pytest.skip(f"Chromium cannot start on this machine: {str(e)[:500]}")
        yield b
        b.close()


class Client:
    """One browser context logged in through the page's own login form."""

    def __init__(self, browser, base: str, account, name: str):
        self.name = name
        self.account = account
        self.log: list[str] = []
        self.ctx = watch(browser.new_context())
        self.ctx.grant_permissions(["microphone"], origin=base)
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(15_000)
        self.page.on("console", lambda m: self.log.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.log.append(f"pageerror: {e}"))
        self.page.goto(f"{base}/")
        self.page.fill("#login-form input[name=email]", account.email)
        self.page.fill("#login-form input[name=password]", account.password)
        self.page.click("#login-form button[type=submit]")
        self.wait("() => !document.querySelector('#app').hidden", what="logged in")
        self.wait("() => window.pv.socket && window.pv.socket.connected", what="socket connected")

    def open_channel(self, server_id: int, channel_id: int) -> None:
        self.page.click(f"#server-list li[data-id='{server_id}']")
        self.page.click(f"#channel-list li[data-id='{channel_id}']")

    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def wait(self, expr: str, arg=None, timeout: float = 15_000, what: str = "") -> None:
        try:
            self.page.wait_for_function(expr, arg=arg, timeout=timeout)
        except Exception as e:
            raise AssertionError(f"{self.name}: {what or expr} did not happen: {e}\n{self.console()}") from None

    def console(self) -> str:
        return f"--- {self.name} console:\n" + "\n".join(self.log[-40:])

    def screenshot(self, label: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"browser-{label}-{self.name}.png"
        self.page.screenshot(path=str(path))
        return path

    def close(self) -> None:
        try:
            check_contract(self.ctx)
        finally:
            self.ctx.close()


@pytest.fixture
def clients(browser, api, server):
    made: list[Client] = []

    def make(account, name):
        c = Client(browser, server.base, account, name)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def community(api):
    alice, bob = api.register(), api.register()
    srv = create_server(api, alice)
    text = create_channel(api, alice, srv["id"], "text", "general")
    voice = create_channel(api, alice, srv["id"], "voice", "lounge")
    join_server(api, alice, srv["id"], bob)
    return alice, bob, srv, text, voice


# Every Socket.IO event and every REST response a page receives is held to the documents, like
# those of the Python clients (tests/test_voice.validate_event, tests/contract.py).
RECORD_EVENTS = """(() => {
  window.__pvEvents = [];
  let wrapped;
  Object.defineProperty(window, 'io', {configurable: true, get() { return wrapped; }, set(lib) {
    wrapped = Object.assign((...a) => {
      const socket = lib(...a);
      socket.onAny((event, ...args) => window.__pvEvents.push([event, args]));
      return socket;
    }, lib);
  }});
})()"""


def watch(ctx):
    ctx.add_init_script(RECORD_EVENTS)
    ctx.pv_responses = []
    ctx.on("response", lambda r: ctx.pv_responses.append(r))
    return ctx


def check_contract(ctx) -> None:
    from tests.contract import contract
    for page in ctx.pages:
        for event, args in page.evaluate("() => window.__pvEvents || []"):
            validate_event(event, tuple(args))
    for r in ctx.pv_responses:
        path = urlparse(r.url).path
        if not path.startswith("/api/"):
            continue
        body = r.body() if r.status not in (204, 304) else b""
        contract().check(r.request.method, path, r.status, r.headers.get("content-type", ""),
                         json.loads(body) if body else None)


def inbound(client: Client) -> dict[str, int]:
    return client.js(INBOUND_AUDIO)


def wait_for_audio(a: Client, b: Client, timeout: float = 25.0) -> tuple[dict, dict]:
    """Both sides receive audio packets from the other; returns the last counts."""
    deadline = time.monotonic() + timeout
    while True:
        ra, rb = inbound(a), inbound(b)
        if sum(ra.values()) > 0 and sum(rb.values()) > 0:
            return ra, rb
        if time.monotonic() > deadline:
            raise AssertionError(f"no audio within {timeout}s: {a.name} {ra}, {b.name} {rb}\n"
                                 f"{a.name} peers: {a.js(PEER_STATES)}\n{b.name} peers: {b.js(PEER_STATES)}\n"
                                 f"{a.console()}\n{b.console()}")
        time.sleep(0.25)


def test_page_and_its_files_are_served(server):
    """No browser needed: / is the page, its scripts are ours, nothing else is shadowed."""
    import httpx

    with httpx.Client(base_url=server.base, timeout=10) as http:
        r = http.get("/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert '<script src="/vendor/socket.io.min.js"></script>' in r.text and "/app.js" in r.text
        for path in ("/", "/app.js", "/style.css"):  # nothing fetched from elsewhere
            text = http.get(path).text
            assert "http://" not in text and "https://" not in text, path
        r = http.get("/vendor/socket.io.min.js")
        assert r.status_code == 200 and r.headers["content-type"] == "application/javascript"
        assert r.text.startswith("/*!\n * Socket.IO v4.")
        for path in ("/app.js", "/style.css"):
            assert http.get(path).status_code == 200, path
        # Directories are not listed and unknown paths stay the API's JSON 404.
        for path in ("/vendor", "/vendor/", "/nope.js", "/index.html/x", "/../pyproject.toml"):
            r = http.get(path)
            assert r.status_code == 404 and r.json()["code"], (path, r.status_code, r.text[:200])
        assert http.get("/api/health").status_code == 200


def test_two_browsers_exchange_audio_then_one_leaves(clients, community):
    alice_acct, bob_acct, srv, _text, voice = community
    alice, bob = clients(alice_acct, "alice"), clients(bob_acct, "bob")
    for c in (alice, bob):
        c.open_channel(srv["id"], voice["id"])
        c.page.wait_for_selector("#voice-join:not([hidden])")

    alice.page.click("#voice-join")
    alice.wait("() => document.querySelectorAll('#participants li').length === 1", what="alice alone in the room")
    bob.page.click("#voice-join")
    for c in (alice, bob):
        c.wait("() => document.querySelectorAll('#participants li').length === 2", what="two participants")

    alice_sid, bob_sid = alice.js("window.pv.socket.id"), bob.js("window.pv.socket.id")
    # Each side has exactly one peer connection, keyed by the other's socket id (the relayed `from`).
    assert list(inbound(alice)) == [bob_sid]
    assert list(inbound(bob)) == [alice_sid]

    before_a, before_b = wait_for_audio(alice, bob)
    time.sleep(1.5)
    after_a, after_b = inbound(alice), inbound(bob)
    assert after_a[bob_sid] > before_a[bob_sid], (before_a, after_a)
    assert after_b[alice_sid] > before_b[alice_sid], (before_b, after_b)
    for c in (alice, bob):
        assert c.js("[...window.pv.peers.values()].every((p) => p.pc.connectionState === 'connected')"), c.console()
    alice.screenshot("voice")
    bob.screenshot("voice")

    # Bob mutes himself: his own track stops, Alice sees his mic off.
    bob.page.click("#voice-mute")
    assert bob.js("window.pv.state.micOn") is False
    alice.wait("(sid) => document.querySelector(`#participants li[data-socket-id='${sid}']`)"
               ".classList.contains('muted-mic')", bob_sid, what="bob shown muted")

    # Bob leaves: Alice sees him go and closes her connection to him.
    bob.page.click("#voice-leave")
    alice.wait("() => document.querySelectorAll('#participants li').length === 1 && window.pv.peers.size === 0",
               what="bob gone from alice's room")
    assert alice.js("document.querySelector('#participants li').dataset.socketId") == alice_sid
    assert bob.js("window.pv.peers.size") == 0
    bob.page.wait_for_selector("#voice-join:not([hidden])")
    alice.screenshot("voice-after-leave")


def test_message_appears_live_in_the_other_browser(clients, community):
    alice_acct, bob_acct, srv, text, _voice = community
    alice, bob = clients(alice_acct, "alice"), clients(bob_acct, "bob")
    for c in (alice, bob):
        c.open_channel(srv["id"], text["id"])
        c.wait("(cid) => window.pv.state.subscribed === cid", text["id"], what="subscribed to the text channel")
    bob.js("window.__noReload = true")

    content = f"hello from alice {time.time_ns()}"
    alice.page.fill("#message-form input[name=content]", content)
    alice.page.press("#message-form input[name=content]", "Enter")
    for c in (bob, alice):
        c.wait("(t) => [...document.querySelectorAll('#messages .content')].some((e) => e.textContent === t)",
               content, timeout=5_000, what="the message shown")
    assert bob.js("window.__noReload") is True  # arrived live, no reload
    assert bob.js("document.querySelector('#messages li:last-child .author').textContent") == \
        alice_acct.user["username"]

    reply = f"hi alice {time.time_ns()}"
    bob.page.fill("#message-form input[name=content]", reply)
    bob.page.click("#message-form button[type=submit]")
    alice.wait("(t) => [...document.querySelectorAll('#messages .content')].some((e) => e.textContent === t)",
               reply, timeout=5_000, what="bob's reply shown")
    assert alice.js("document.querySelectorAll('#messages li').length") == 2
    alice.screenshot("text")
    bob.screenshot("text")


def test_new_user_registers_builds_a_server_and_invites_a_friend(browser, api, server):
    """Everything through the page: register, create a server and a text channel, post, invite;
    the invited user joins with the token and reads the history."""
    from tests.support import unique

    made = []
    try:
        carol_ctx = watch(browser.new_context())
        made.append(carol_ctx)
        carol = carol_ctx.new_page()
        carol.set_default_timeout(10_000)
        carol.goto(f"{server.base}/")
        name = unique("carol")
        carol.fill("#register-form input[name=username]", name)
        carol.fill("#register-form input[name=email]", f"{name}@example.com")
        carol.fill("#register-form input[name=password]", "password123")
        carol.click("#register-form button[type=submit]")
        carol.wait_for_selector("#app:not([hidden])")
        assert carol.text_content("#me").startswith(f"{name}#")

        carol.fill("#server-form input[name=name]", "Carol's place")
        carol.click("#server-form button[type=submit]")
        carol.wait_for_selector("#server-list li.selected:text('Carol\\'s place')")
        assert carol.text_content("#server-name") == "Carol's place"
        carol.fill("#channel-form input[name=name]", "chat")
        carol.select_option("#channel-form select[name=type]", "text")
        carol.click("#channel-form button[type=submit]")
        carol.wait_for_selector("#channel-list li.selected[data-type=text]:text('chat')")
        carol.wait_for_function("() => window.pv.state.subscribed !== null")
        carol.fill("#message-form input[name=content]", "first!")
        carol.click("#message-form button[type=submit]")
        carol.wait_for_selector("#messages .content:text('first!')")

        carol.click("#invite-button")
        carol.wait_for_selector("#invite-token:text('Invite token: ')")
        token = carol.text_content("#invite-token").removeprefix("Invite token: ").strip()
        assert token

        dave_acct = api.register()
        dave_ctx = watch(browser.new_context())
        made.append(dave_ctx)
        dave = dave_ctx.new_page()
        dave.set_default_timeout(10_000)
        dave.goto(f"{server.base}/")
        dave.fill("#login-form input[name=email]", dave_acct.email)
        dave.fill("#login-form input[name=password]", dave_acct.password)
        dave.click("#login-form button[type=submit]")
        dave.wait_for_selector("#app:not([hidden])")
        assert dave.locator("#server-list li").count() == 0
        dave.fill("#join-form input[name=token]", token)
        dave.click("#join-form button[type=submit]")
        dave.wait_for_selector("#server-list li.selected:text('Carol\\'s place')")
        dave.click("#channel-list li:text('chat')")
        dave.wait_for_selector("#messages .content:text('first!')")
        assert dave.text_content("#messages li .author") == name
        ARTIFACTS.mkdir(exist_ok=True)
        dave.screenshot(path=str(ARTIFACTS / "browser-invited-dave.png"))
        for ctx in made:
            check_contract(ctx)
    finally:
        for ctx in made:
            ctx.close()


def test_member_role_badges_and_sessions_list(clients, api, community):
    """Issue 18 item 6: the members list shows each member's role badges (highest first, the
    role's colour); the sessions list shows every signed-in device, ends one, and "log out other
    sessions" ends the rest, while this page's own session goes on."""
    alice, bob, srv, _text, _voice = community
    roles = {r["name"]: r for r in api.get(f"/servers/{srv['id']}/roles", alice.token).json()}
    bob_mid = next(m["id"] for m in api.get(f"/serverMembers/{srv['id']}/members", alice.token).json()
                   if m["userId"] == bob.id)
    r = api.put(f"/serverMembers/{srv['id']}/members/{bob_mid}/roles", alice.token,
                json={"roleIds": [roles["Member"]["id"], roles["Moderator"]["id"]]})
    assert r.status_code == 200, r.text
    # Two more sessions of bob's elsewhere, before his page signs in.
    phone = api.post("/auth/login", json={"email": bob.email, "password": bob.password},
                     headers={"User-Agent": "PhoneApp/2.0"}).json()["token"]
    tablet = api.post("/auth/login", json={"email": bob.email, "password": bob.password},
                      headers={"User-Agent": "TabletApp/3.0"}).json()["token"]

    b = clients(bob, "bob")
    b.page.click(f"#server-list li[data-id='{srv['id']}']")
    # Read the badges in one evaluation once the list shows them: a presence update re-renders
    # the list, and a badge read from a detached element has no computed colour.
    badges = b.page.wait_for_function(
        "sel => { const els = [...document.querySelectorAll(sel)];"
        " const out = els.map(e => [e.textContent, getComputedStyle(e).color]);"
        " return els.length && out.every(([, c]) => c) ? out : null; }",
        arg=f"#member-list li[data-user-id='{bob.id}'] .badge").json_value()
    assert [name for name, _ in badges] == ["Moderator", "Member"]
    assert badges[0][1] == "rgb(88, 101, 242)"  # #5865F2
    assert b.page.eval_on_selector_all(f"#member-list li[data-user-id='{alice.id}'] .badge",
                                       "els => els.map(e => e.textContent)") == ["Owner"]

    b.page.click("#sessions-button")
    b.page.wait_for_selector("#sessions-view:not([hidden]) #session-list li")
    assert b.page.locator("#session-list li").count() == 4  # registration, phone, tablet, this page
    assert b.page.locator("#session-list li.current").count() == 1
    assert "PhoneApp/2.0" in b.page.text_content("#session-list")
    # End the tablet's session from the list.
    tablet_row = b.page.locator("#session-list li", has_text="TabletApp/3.0")
    tablet_row.locator("button.end-session").click()
    b.page.wait_for_function("() => !document.querySelector('#session-list').textContent.includes('TabletApp')")
    assert api.get("/auth/me", tablet).status_code == 401
    assert api.get("/auth/me", phone).status_code == 200
    # Then every other one.
    b.page.click("#logout-others")
    b.wait("() => document.querySelectorAll('#session-list li').length === 1", what="only this session left")
    assert b.page.locator("#session-list li.current").count() == 1
    for token in (phone, bob.token):
        assert api.get("/auth/me", token).status_code == 401
    # The page itself is still signed in and working.
    b.page.click(f"#server-list li[data-id='{srv['id']}']")
    b.page.wait_for_selector(f"#member-list li[data-user-id='{bob.id}']")
    assert not b.js("() => document.querySelector('#app').hidden")
    b.screenshot("sessions")
    # Logging out ends the page's session on the server too. (The answers so far are checked
    # now: a reload leaves their bodies unreadable.)
    check_contract(b.ctx)
    b.ctx.pv_responses.clear()
    page_token = b.js("() => window.pv.state.token")
    b.page.click("#logout")
    b.page.wait_for_selector("#auth:not([hidden])")
    assert api.get("/auth/me", page_token).status_code == 401
def test_presence_dots_and_typing_between_two_browsers(clients, community, api):
    """Bob's page shows alice's presence dot (members list and friends list) go online when she
    logs in, red when she picks do-not-disturb, grey when her page's socket goes; and "alice is
    typing..." under his message box while she types, gone when her message arrives."""
    alice_acct, bob_acct, srv, text, _voice = community
    r = api.post("/friends/request", bob_acct.token, json={"friendId": alice_acct.id})
    assert r.status_code == 201, r.text
    assert api.post(f"/friends/accept/{r.json()['request']['id']}", alice_acct.token).status_code == 200
    bob = clients(bob_acct, "bob")
    bob.open_channel(srv["id"], text["id"])
    bob.wait("(cid) => window.pv.state.subscribed === cid", text["id"], what="bob subscribed")
    dots = "(id) => [...document.querySelectorAll(`.people li[data-user-id='${id}'] .dot`)].map((d) => d.dataset.status)"
    member_dot = f"#member-list li[data-user-id='{alice_acct.id}'] .dot"
    friend_dot = f"#friend-list li[data-user-id='{alice_acct.id}'] .dot"
    assert bob.page.get_attribute(member_dot, "data-status") == "offline"
    assert bob.page.get_attribute(friend_dot, "data-status") == "offline"

    alice = clients(alice_acct, "alice")
    bob.wait(f"(id) => ({dots})(id).length === 2 && ({dots})(id).every((s) => s === 'online')",
             alice_acct.id, timeout=5_000, what="alice's dots online")
    alice.open_channel(srv["id"], text["id"])
    alice.wait("(cid) => window.pv.state.subscribed === cid", text["id"], what="alice subscribed")
    # bob is online on alice's page too (from the REST member list)
    assert alice.page.get_attribute(f"#member-list li[data-user-id='{bob_acct.id}'] .dot", "data-status") == "online"

    alice.page.type("#message-form input[name=content]", "hel", delay=50)
    bob.wait("(n) => document.querySelector('#typing').textContent === `${n} is typing...`",
             alice_acct.user["username"], timeout=5_000, what="alice is typing shown")
    bob.screenshot("typing")
    alice.page.type("#message-form input[name=content]", "lo", delay=50)
    alice.page.press("#message-form input[name=content]", "Enter")
    bob.wait("() => [...document.querySelectorAll('#messages .content')].some((e) => e.textContent === 'hello')",
             timeout=5_000, what="alice's message shown")
    assert bob.js("document.querySelector('#typing').textContent") == ""  # her message ended it
    assert alice.js("document.querySelector('#typing').textContent") == ""  # never echoed

    alice.page.select_option("#status-select", "dnd")
    bob.wait(f"(id) => ({dots})(id).every((s) => s === 'dnd')", alice_acct.id, timeout=5_000,
             what="alice's dots dnd")
    bob.screenshot("presence-dnd")
    alice.js("window.pv.socket.disconnect()")  # her page's only socket goes
    bob.wait(f"(id) => ({dots})(id).every((s) => s === 'offline')", alice_acct.id, timeout=5_000,
             what="alice's dots offline")
