"""The storage layer answers the races the handlers cannot provoke on demand with results, not
driver exceptions (models/storage/messages.py, models/storage/invites.py): a message posted to a
channel deleted since the permission check, and a membership inserted twice. Run in a process of
their own against the test server's database, as the handlers would call them."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support import ROOT, create_channel, create_server

SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from models import db, membership
    from models.storage import invites, messages, sql
    from models.tables import utcnow

    async def main(user, live, gone, server):
        async with sql.connection() as conn:
            print(await messages.insert(conn, gone, user, "into a deleted channel", utcnow()) is None)
            print(isinstance(await messages.insert(conn, live, user, "into a live channel", utcnow()), int))
        try:
            async with db.session() as s:
                async with invites.joining():
                    await membership.join(s, server, user)  # the owner is a member already
        except invites.AlreadyMember:
            print("already a member")
        await db.dispose()
        await sql.shutdown()

    asyncio.run(main(*map(int, sys.argv[1:])))
""")


def test_races_come_back_as_results(api, server):
    owner = api.register()
    sv = create_server(api, owner)
    live = create_channel(api, owner, sv["id"], "text")["id"]
    gone = create_channel(api, owner, sv["id"], "text")["id"]
    assert api.delete(f"/servers/{sv['id']}/channels/{gone}", owner.token).status_code == 204
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(owner.id), str(live), str(gone), str(sv["id"])],
                       cwd=ROOT, env=server.env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split("\n")[:3] == ["True", "True", "already a member"], r.stdout
    # The message posted by storage is the channel's, counted by its trigger like any other.
    page = api.get("/messages", owner.token, params={"channelId": live}).json()
    assert [m["content"] for m in page["messages"]] == ["into a live channel"] and page["total"] == 1
