"""The holes the original Node.js implementation had, each as a test that fails if it comes back,
and the effective permissions the engine reports."""
from __future__ import annotations

import pytest

from models.permissions import ALL_BITS, EVERYONE_BITS, MAX_BITS, Perm, parse_bits
from core.errors import BadRequest
from tests.support import create_channel, create_server, join_server, unique

MEMBER_BITS = EVERYONE_BITS | Perm.CHANGE_NICKNAME
MODERATOR_BITS = (EVERYONE_BITS | Perm.MANAGE_CHANNELS | Perm.MANAGE_MESSAGES | Perm.KICK_MEMBERS
                  | Perm.BAN_MEMBERS | Perm.MUTE_MEMBERS | Perm.DEAFEN_MEMBERS | Perm.MOVE_MEMBERS
                  | Perm.CREATE_INSTANT_INVITE)


def check_denied(r, status: int = 403) -> None:
    assert r.status_code == status, r.text
    text = r.json()["error"].lower()
    assert "unauthorized" not in text and "invalid token" not in text and "token expired" not in text


def server_detail(api, acct, sid) -> dict:
    r = api.get(f"/servers/{sid}", acct.token)
    assert r.status_code == 200, r.text
    return r.json()


def roles_by_name(api, acct, sid) -> dict[str, dict]:
    return {r["name"]: r for r in server_detail(api, acct, sid)["roles"]}


def me(api, acct, sid) -> dict:
    r = api.get(f"/serverMembers/{sid}/members/me", acct.token)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def community(api):
    """owner; admin (Admin role); mod (Moderator role); member (plain)."""
    owner, admin, mod, member = (api.register() for _ in range(4))
    server = create_server(api, owner)
    sid = server["id"]
    join_server(api, owner, sid, admin, mod, member)
    roles = roles_by_name(api, owner, sid)
    mids = {m["userId"]: m["id"] for m in server_detail(api, owner, sid)["members"]}
    for acct, name in ((admin, "Admin"), (mod, "Moderator")):
        r = api.post(f"/servers/{sid}/roles/members/{mids[acct.id]}/roles/{roles[name]['id']}", owner.token)
        assert r.status_code == 201, r.text
    c = type("Community", (), {})()
    c.sid, c.owner, c.admin, c.mod, c.member, c.roles, c.mids = sid, owner, admin, mod, member, roles, mids
    c.name = server["name"]
    return c


def assert_nobody_promoted(api, c) -> None:
    detail = server_detail(api, c.owner, c.sid)
    assert detail["ownerId"] == c.owner.id
    by_user = {m["userId"]: m for m in detail["members"]}
    assert by_user[c.member.id]["role"] == "member"
    assert by_user[c.mod.id]["role"] == "moderator"
    assert by_user[c.admin.id]["role"] == "admin"
    assert me(api, c.member, c.sid)["totalPermissions"] == str(MEMBER_BITS)
    roles = roles_by_name(api, c.owner, c.sid)
    assert roles == c.roles, "a role was changed"


# ---------------------------------------------------------------------------------- servers
def test_plain_member_cannot_rename_or_delete_the_server(api, community):
    c = community
    for acct in (c.member, c.mod):
        check_denied(api.put(f"/servers/{c.sid}", acct.token, json={"name": "pwned"}))
        check_denied(api.delete(f"/servers/{c.sid}", acct.token))
    detail = server_detail(api, c.owner, c.sid)
    assert detail["name"] == c.name and detail["ownerId"] == c.owner.id


def test_stranger_cannot_rename_or_delete_a_server(api, alice, bob):
    sid = create_server(api, alice)["id"]
    check_denied(api.put(f"/servers/{sid}", bob.token, json={"name": "pwned"}))
    check_denied(api.delete(f"/servers/{sid}", bob.token))
    assert server_detail(api, alice, sid)["name"] != "pwned"


# ---------------------------------------------------------------------------------- channels
def test_channel_of_another_server_cannot_be_reached_through_ones_own_server(api, alice, bob):
    victim = create_server(api, alice)["id"]
    channel = create_channel(api, alice, victim)
    mine = create_server(api, bob)["id"]
    path = f"/servers/{mine}/channels/{channel['id']}"
    for r in (api.get(path, bob.token),
              api.put(path, bob.token, json={"name": "pwned", "description": "x"}),
              api.delete(path, bob.token)):
        assert r.status_code == 404, r.text
        assert r.json()["code"] == "channel_not_found"
    r = api.get(f"/servers/{victim}/channels/{channel['id']}", alice.token)
    assert r.status_code == 200 and r.json() == channel
    # Through the right server, as a stranger: 403.
    check_denied(api.put(f"/servers/{victim}/channels/{channel['id']}", bob.token, json={"name": "pwned"}))
    check_denied(api.delete(f"/servers/{victim}/channels/{channel['id']}", bob.token))


def test_plain_member_cannot_edit_or_delete_channels(api, community):
    c = community
    channel = create_channel(api, c.owner, c.sid)
    path = f"/servers/{c.sid}/channels/{channel['id']}"
    check_denied(api.put(path, c.member.token, json={"name": "pwned"}))
    check_denied(api.delete(path, c.member.token))
    check_denied(api.post(f"/servers/{c.sid}/channels", c.member.token, json={"name": "x"}))
    assert api.get(path, c.member.token).json() == channel


# ---------------------------------------------------------------------------------- self-promotion
def test_member_cannot_promote_themselves_by_any_route(api, community):
    c = community
    sid, member, mid = c.sid, c.member, c.mids[c.member.id]
    for name in ("Owner", "Admin", "Moderator"):
        rid = c.roles[name]["id"]
        check_denied(api.post(f"/servers/{sid}/roles/members/{mid}/roles/{rid}", member.token))
    # Give their own (Member) role, or @everyone, ADMINISTRATOR.
    for name in ("Member", "@everyone"):
        check_denied(api.patch(f"/servers/{sid}/roles/{c.roles[name]['id']}", member.token,
                               json={"permissions": str(Perm.ADMINISTRATOR)}))
    # Create a role with ADMINISTRATOR (then assign it).
    check_denied(api.post(f"/servers/{sid}/roles", member.token,
                          json={"name": "root", "permissions": Perm.ADMINISTRATOR}))
    # The member routes: coarse role, role replacement, ownership transfer to self.
    check_denied(api.put(f"/serverMembers/{sid}/members/{mid}", member.token, json={"role": "admin"}))
    check_denied(api.put(f"/serverMembers/{sid}/members/{mid}/roles", member.token,
                         json={"roleIds": [c.roles["Owner"]["id"], c.roles["Admin"]["id"]]}))
    r = api.post(f"/serverMembers/{sid}/owner", member.token, json={"userId": member.id})
    check_denied(r)
    assert_nobody_promoted(api, c)


def test_moderator_cannot_grant_manage_roles_or_administrator(api, community):
    c = community
    sid, mod = c.sid, c.mod
    mod_role = c.roles["Moderator"]
    # Without MANAGE_ROLES, nothing about roles.
    for bits in (int(mod_role["permissions"]) | Perm.MANAGE_ROLES, int(mod_role["permissions"]) | Perm.ADMINISTRATOR):
        check_denied(api.patch(f"/servers/{sid}/roles/{mod_role['id']}", mod.token, json={"permissions": bits}))
        check_denied(api.patch(f"/servers/{sid}/roles/{c.roles['Member']['id']}", mod.token, json={"permissions": bits}))
    check_denied(api.post(f"/servers/{sid}/roles", mod.token, json={"name": "x", "permissions": Perm.MANAGE_ROLES}))
    for name in ("Admin", "Owner"):
        check_denied(api.post(f"/servers/{sid}/roles/members/{c.mids[mod.id]}/roles/{c.roles[name]['id']}", mod.token))
    check_denied(api.put(f"/serverMembers/{sid}/members/{c.mids[mod.id]}", mod.token, json={"role": "admin"}))
    assert_nobody_promoted(api, c)


def test_moderator_with_manage_roles_still_cannot_escalate(api, community):
    c = community
    sid, mod = c.sid, c.mod
    mod_role = c.roles["Moderator"]
    with_mr = int(mod_role["permissions"]) | Perm.MANAGE_ROLES
    assert api.patch(f"/servers/{sid}/roles/{mod_role['id']}", c.owner.token, json={"permissions": with_mr}).status_code == 200
    # Own role: at their highest, so not manageable at all.
    r = api.patch(f"/servers/{sid}/roles/{mod_role['id']}", mod.token, json={"permissions": with_mr | Perm.ADMINISTRATOR})
    check_denied(r)
    assert r.json()["code"] == "role_hierarchy"
    # A lower role: cannot add ADMINISTRATOR or MANAGE_GUILD.
    for extra in (Perm.ADMINISTRATOR, Perm.MANAGE_GUILD):
        r = api.patch(f"/servers/{sid}/roles/{c.roles['Member']['id']}", mod.token,
                      json={"permissions": MEMBER_BITS | extra})
        check_denied(r)
        assert r.json()["code"] == "permission_escalation"
        r = api.post(f"/servers/{sid}/roles", mod.token, json={"name": "x", "permissions": extra})
        check_denied(r)
        assert r.json()["code"] == "permission_escalation"
    # Admin and Owner roles: above them.
    for name in ("Admin", "Owner"):
        r = api.post(f"/servers/{sid}/roles/members/{c.mids[mod.id]}/roles/{c.roles[name]['id']}", mod.token)
        check_denied(r)
        assert r.json()["code"] == "role_hierarchy"
    # A role placed above them.
    r = api.post(f"/servers/{sid}/roles", mod.token, json={"name": "x", "position": 3})
    check_denied(r)
    assert r.json()["code"] == "role_hierarchy"
    total = int(me(api, mod, sid)["totalPermissions"])
    assert not total & (Perm.ADMINISTRATOR | Perm.MANAGE_GUILD)


def test_admin_cannot_touch_the_owner_role_or_the_owner(api, community):
    c = community
    sid, admin = c.sid, c.admin
    owner_role = c.roles["Owner"]
    for body in ({"name": "Mine"}, {"permissions": 0}, {"position": 1}, {"color": "#000000"}):
        r = api.patch(f"/servers/{sid}/roles/{owner_role['id']}", admin.token, json=body)
        check_denied(r)
        assert r.json()["code"] == "role_hierarchy"
    check_denied(api.delete(f"/servers/{sid}/roles/{owner_role['id']}", admin.token))
    check_denied(api.post(f"/servers/{sid}/roles/members/{c.mids[admin.id]}/roles/{owner_role['id']}", admin.token))
    check_denied(api.delete(f"/servers/{sid}/roles/members/{c.mids[c.owner.id]}/roles/{owner_role['id']}", admin.token))
    check_denied(api.put(f"/serverMembers/{sid}/members/{c.mids[c.owner.id]}", admin.token, json={"role": "member"}))
    check_denied(api.post(f"/serverMembers/{sid}/owner", admin.token, json={"userId": admin.id}))
    # Their own Admin role is at their highest: not editable by them either.
    check_denied(api.patch(f"/servers/{sid}/roles/{c.roles['Admin']['id']}", admin.token, json={"name": "x"}))
    assert_nobody_promoted(api, c)


# ---------------------------------------------------------------------------------- bit input
@pytest.mark.parametrize("bits", [2 ** 64, 10 ** 30, MAX_BITS + 1, str(2 ** 64), "99999999999999999999999",
                                  -1, "-1", "12a", "0x10", "1e3", " 8", "", 1.5, True, None, "１２", "²",
                                  1 << 62, 1 << 41])
def test_bad_permission_values_are_400(api, alice, bits):
    sid = create_server(api, alice)["id"]
    r = api.post(f"/servers/{sid}/roles", alice.token, json={"name": unique("r"), "permissions": bits})
    assert r.status_code == 400, r.text
    member_role = roles_by_name(api, alice, sid)["Member"]
    r = api.patch(f"/servers/{sid}/roles/{member_role['id']}", alice.token, json={"permissions": bits})
    assert r.status_code == 400, r.text
    assert roles_by_name(api, alice, sid)["Member"] == member_role


def test_the_widest_bit_is_accepted_as_number_and_string(api, alice):
    sid = create_server(api, alice)["id"]
    for value in (Perm.MODERATE_MEMBERS, str(Perm.MODERATE_MEMBERS), ALL_BITS, str(ALL_BITS)):
        r = api.post(f"/servers/{sid}/roles", alice.token, json={"name": unique("r"), "permissions": value})
        assert r.status_code == 201 and r.json()["permissions"] == str(int(value)), r.text


def test_parse_bits_rejects_non_ascii_digits():
    """str.isdigit() is true for "²" and "１２"; they must not pass as a bitfield (int("²") raises)."""
    for value in ("²", "１２", "١٢", "8²"):
        with pytest.raises(BadRequest):
            parse_bits(value)
    assert parse_bits("8") == 8 and parse_bits(8) == 8 and parse_bits(str(ALL_BITS)) == ALL_BITS
    for value in (True, -1, MAX_BITS + 1, 1 << 62, 1.0, "08x", None):
        with pytest.raises(BadRequest):
            parse_bits(value)


# ---------------------------------------------------------------------------------- totals
def test_total_permissions_for_each_kind_of_member(api, community):
    c = community
    member = me(api, c.member, c.sid)
    assert member["totalPermissions"] == str(MEMBER_BITS) == "70323264"
    assert member["role"] == "member"
    assert {r["name"] for r in member["roles"]} == {"@everyone", "Member"}
    mod = me(api, c.mod, c.sid)
    assert mod["totalPermissions"] == str(MEMBER_BITS | MODERATOR_BITS)
    assert mod["role"] == "moderator"
    all_bits = str(ALL_BITS)
    assert all_bits == str((1 << 31) - 1 + (1 << 40)) == "1101659111423"
    assert me(api, c.admin, c.sid)["totalPermissions"] == all_bits
    owner = me(api, c.owner, c.sid)
    assert owner["totalPermissions"] == all_bits and owner["role"] == "owner"


def test_total_permissions_follow_role_edits(api, community):
    c = community
    everyone = c.roles["@everyone"]
    r = api.patch(f"/servers/{c.sid}/roles/{everyone['id']}", c.owner.token,
                  json={"permissions": str(EVERYONE_BITS | Perm.ATTACH_FILES)})
    assert r.status_code == 200
    assert me(api, c.member, c.sid)["totalPermissions"] == str(MEMBER_BITS | Perm.ATTACH_FILES)
    # Owner's total does not depend on roles: strip the Owner role's bits, still everything.
    r = api.patch(f"/servers/{c.sid}/roles/{c.roles['Owner']['id']}", c.owner.token, json={"permissions": 0})
    assert r.status_code == 200
    assert me(api, c.owner, c.sid)["totalPermissions"] == str(ALL_BITS)
    # A custom role with ADMINISTRATOR means every bit.
    role = api.post(f"/servers/{c.sid}/roles", c.owner.token,
                    json={"name": "root", "permissions": Perm.ADMINISTRATOR}).json()
    r = api.post(f"/servers/{c.sid}/roles/members/{c.mids[c.member.id]}/roles/{role['id']}", c.owner.token)
    assert r.status_code == 201
    assert me(api, c.member, c.sid)["totalPermissions"] == str(ALL_BITS)
    assert api.delete(f"/servers/{c.sid}/roles/{role['id']}", c.owner.token).status_code == 204
    assert me(api, c.member, c.sid)["totalPermissions"] == str(MEMBER_BITS | Perm.ATTACH_FILES)


def test_members_me_of_a_server_one_is_not_in(api, alice, bob):
    sid = create_server(api, alice)["id"]
    check_denied(api.get(f"/serverMembers/{sid}/members/me", bob.token))
    assert api.get("/serverMembers/2147483647/members/me", bob.token).status_code == 404
