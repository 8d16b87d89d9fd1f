"""The voice exchange on python-socketio/engine.io as shipped (SOCKET_FASTPATH=0): the fast path
(realtime/fastpath.py) replaces their internals on the pinned releases only, and the plain path
must keep working for any other release. Selected tests of tests/test_voice.py run here against
a server of their own with the fast path off; the rest of the suite runs with it on."""
from __future__ import annotations

import engineio.async_socket as async_socket
import pytest

from realtime import fastpath
from tests.support import Api, own_server
from tests.test_voice import (  # noqa: F401 (collected here, against this module's server)
    test_join_created_user_connected_both_forms,
    test_leave_room_and_disconnect_announce_bare_socket_id,
    test_malformed_signals_answered_with_error_only,
    test_message_events_for_subscribers,
    test_offer_answer_candidate_with_server_set_from_and_to,
    test_signals_of_one_sender_keep_their_order,
    test_toggle_mic,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with own_server(tmp_path_factory.mktemp("plain"), {"SOCKET_FASTPATH": "0"}) as proc:
        yield proc


@pytest.fixture(scope="module")
def api(server) -> Api:
    return Api(server.base)


def test_fast_path_is_for_the_pinned_releases_and_comes_off():
    assert fastpath.releases_match(), "pyproject.toml pins the releases realtime/fastpath.py was read from"
    names = ("poll", "send", "_websocket_handler")
    original = {n: getattr(async_socket.AsyncSocket, n) for n in names}
    try:
        assert fastpath.install(True) and fastpath.enabled()
        assert (async_socket.AsyncSocket.poll, async_socket.AsyncSocket.send) == (fastpath._poll, fastpath._send)
        assert fastpath.install(False) is False and not fastpath.enabled()
        assert {n: getattr(async_socket.AsyncSocket, n) for n in names} == {n: fastpath._original[n] for n in names}
    finally:
        for n, fn in original.items():
            setattr(async_socket.AsyncSocket, n, fn)
